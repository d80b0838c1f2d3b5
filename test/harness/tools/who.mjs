// `who.mjs tcp|udp HOST PORT N`: N sequential requests; prints JSON {counts: {name: n}, errors:
// {code: n}, peers: [address seen on UDP replies]}. UDP uses one unconnected socket (sendto),
// the case socket-level load balancing translates per datagram.
import net from 'node:net';
import dgram from 'node:dgram';

const [proto, host, portText, nText] = process.argv.slice(2);
const port = Number(portText);
const n = Number(nText);
const counts = {};
const errors = {};
const peers = new Set();
const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);

function tcpOnce() {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, host);
    const timer = setTimeout(() => (bump(errors, 'timeout'), s.destroy(), resolve()), 2000);
    s.on('data', (d) => (got += d));
    s.on('end', () => (clearTimeout(timer), bump(counts, got), resolve()));
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

if (proto === 'tcp') for (let i = 0; i < n; i++) await tcpOnce();
else await udpAll();
console.log(JSON.stringify({ counts, errors, peers: [...peers] }));
