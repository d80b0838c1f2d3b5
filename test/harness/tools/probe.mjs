// One probe: `probe.mjs tcp|udp HOST PORT [TIMEOUT_MS]` sends a token and waits for its echo;
// `tcp-connect` only connects (for servers that echo nothing). Exit 0 on echo (or connect), 1
// otherwise; never waits longer than the timeout.
import net from 'node:net';
import dgram from 'node:dgram';

const [proto, host, portText, timeoutText = '1000'] = process.argv.slice(2);
const port = Number(portText);
const token = `probe-${process.pid}-${Date.now()}`;
const done = (ok, why = '') => {
  if (!ok && why) console.error(why);
  process.exit(ok ? 0 : 1);
};
setTimeout(() => done(false, 'timeout'), Number(timeoutText)).unref();

if (proto === 'tcp-connect') {
  const s = net.connect(port, host, () => done(true));
  s.on('error', (e) => done(false, e.code));
} else if (proto === 'tcp') {
  const s = net.connect(port, host, () => s.write(token));
  let got = '';
  s.on('data', (d) => {
    got += d;
    if (got.includes(token)) done(true);
  });
  s.on('error', (e) => done(false, e.code));
} else {
  const u = dgram.createSocket('udp4');
  u.on('message', (m) => m.toString() === token && done(true));
  u.on('error', (e) => done(false, e.code));
  const send = () => u.send(token, port, host);
  send();
  setInterval(send, 200).unref(); // UDP may lose the first datagram while neighbours resolve
}
