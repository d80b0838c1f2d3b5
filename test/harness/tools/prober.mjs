// Long-lived prober for the reachability matrix, run inside a workload namespace. Reads JSON
// lines on stdin, {"id":n,"proto":"tcp"|"udp","host":"10.x.y.z","port":80,"timeoutMs":400},
// and answers each with one line {"id":n,"ok":true|false,"error"?:string}. Requests run
// concurrently; none waits longer than its timeout. Prints "ready" once it reads stdin.
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';

let seq = 0;

function reply(id, ok, error) {
  process.stdout.write(JSON.stringify(error === undefined ? { id, ok } : { id, ok, error }) + '\n');
}

function probe(req) {
  const { id, proto, host, port } = req;
  const timeoutMs = Number(req.timeoutMs ?? 1000);
  const token = `probe-${process.pid}-${id}-${++seq}`;
  let finished = false;
  let timer;
  let closeSocket = () => {};
  const done = (ok, error) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    closeSocket();
    reply(id, ok, ok ? undefined : error);
  };
  timer = setTimeout(() => done(false, 'timeout'), timeoutMs);

  if (proto === 'tcp') {
    const s = net.connect({ port, host });
    closeSocket = () => s.destroy();
    s.setNoDelay(true);
    s.on('connect', () => s.write(token));
    let got = '';
    s.on('data', (d) => {
      got += d;
      if (got.includes(token)) done(true);
    });
    s.on('error', (e) => done(false, e.code ?? e.message));
    s.on('close', () => done(false, 'closed'));
  } else if (proto === 'udp') {
    const u = dgram.createSocket('udp4');
    let interval;
    closeSocket = () => {
      clearInterval(interval);
      try {
        u.close();
      } catch {
        // already closed
      }
    };
    u.on('message', (m) => m.toString() === token && done(true));
    // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket.
    u.on('error', (e) => done(false, e.code ?? e.message));
    u.connect(port, host, (err) => {
      if (err) return done(false, err.code ?? err.message);
      if (finished) return;
      const send = () => u.send(token, (e) => e && done(false, e.code ?? e.message));
      send();
      interval = setInterval(send, 100);
    });
  } else {
    done(false, `unknown protocol ${proto}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    reply(null, false, 'bad request');
    return;
  }
  probe(req);
});
rl.on('close', () => process.exit(0));
console.log('ready');
