// Counts lost datagrams across an interruption. `udp-seq.mjs recv PORT`: counts distinct
// sequence numbers received; `udp-seq.mjs send HOST PORT RATE`: sends numbered datagrams at
// RATE per second. Both print "ready" once set up, and print one JSON line ({received} or
// {sent}) and exit when their stdin says "report" (the sender stops sending first).
import dgram from 'node:dgram';
import readline from 'node:readline';

const [mode, ...rest] = process.argv.slice(2);
const s = dgram.createSocket('udp4');
s.on('error', () => undefined); // a datagram the kernel refused is a lost one: the receiver counts
const onReport = (report, stop = () => undefined) => readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (l !== 'report') return;
  stop();
  // What was handed to the socket has left by now.
  setTimeout(() => {
    console.log(JSON.stringify(report()));
    s.close();
    process.exit(0);
  }, 100);
});

if (mode === 'recv') {
  const seen = new Set();
  s.on('message', (msg) => seen.add(msg.readUInt32BE(0)));
  s.bind(Number(rest[0]), '0.0.0.0', () => console.log('ready'));
  onReport(() => ({ received: seen.size }));
} else {
  const [host, port, rate] = rest;
  const interval = 1000 / Number(rate);
  let sent = 0;
  const started = performance.now();
  s.connect(Number(port), host, () => {
    console.log('ready');
    // Paced by the clock, not by timers firing on time: a late timer sends what is due.
    const tick = () => {
      const due = Math.floor((performance.now() - started) / interval);
      for (; sent < due; sent++) {
        const b = Buffer.alloc(8);
        b.writeUInt32BE(sent, 0);
        s.send(b);
      }
    };
    timer = setInterval(tick, 5);
  });
  let timer;
  onReport(() => ({ sent }), () => clearInterval(timer));
}
