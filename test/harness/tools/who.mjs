// `who.mjs tcp|udp HOST PORT N [BASEPORT]`: N sequential requests; prints JSON {counts: {name:
// n}, errors: {code: n}, peers: [address seen on UDP replies], byPort: {sourcePort: name}}. With
// BASEPORT, TCP request i comes from source port BASEPORT+i (the same flows again and again).
// UDP uses one unconnected socket (sendto), the case socket-level load balancing translates per
// datagram.
import net from 'node:net';
import dgram from 'node:dgram';

const [proto, host, portText, nText, baseText] = process.argv.slice(2);
const base = baseText ? Number(baseText) : 0;
const byPort = {};
const port = Number(portText);
const n = Number(nText);
const counts = {};
const errors = {};
const peers = new Set();
const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);

function tcpOnce(i) {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(base ? { port, host, localPort: base + i } : { port, host });
    const timer = setTimeout(() => (bump(errors, 'timeout'), s.destroy(), resolve()), 3000);
    s.on('data', (d) => (got += d));
    s.on('end', () => {
      clearTimeout(timer);
      bump(counts, got);
      if (base) byPort[base + i] = got;
      resolve();
    });
    s.on('error', (e) => (clearTimeout(timer), bump(errors, e.code), resolve()));
  });
}

async function udpAll() {
  const u = dgram.createSocket('udp4');
  await new Promise((r) => u.bind(0, r));
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => {
      const timer = setTimeout(() => (u.off('message', onMsg), bump(errors, 'timeout'), resolve()), 1000);
      const onMsg = (m, rinfo) => {
        clearTimeout(timer);
        u.off('message', onMsg);
        bump(counts, m.toString());
        peers.add(`${rinfo.address}:${rinfo.port}`);
        resolve();
      };
      u.on('message', onMsg);
      u.send('who', port, host);
    });
  }
  u.close();
}

if (proto === 'tcp') for (let i = 0; i < n; i++) await tcpOnce(i);
else await udpAll();
console.log(JSON.stringify({ counts, errors, peers: [...peers], byPort }));
