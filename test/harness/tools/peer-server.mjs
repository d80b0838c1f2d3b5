// `peer-server.mjs PORT`: tells every client the address and port it sees it from — on TCP as the
// first line, then echoes what it receives (hold-conn.mjs speaks to it); on UDP as the answer to
// every datagram. For hosts outside the cluster, which see masqueraded endpoints as their node.
// Prints "ready" once listening.
import net from 'node:net';
import dgram from 'node:dgram';

const port = Number(process.argv[2]);
let pending = 2;
const ready = () => --pending === 0 && console.log('ready');
net
  .createServer((s) => {
    s.on('error', () => {});
    s.write(`${s.remoteAddress}:${s.remotePort}\n`);
    s.pipe(s);
  })
  .listen(port, '0.0.0.0', ready);
const u = dgram.createSocket('udp4');
u.on('message', (_msg, rinfo) => u.send(`${rinfo.address}:${rinfo.port}`, rinfo.port, rinfo.address));
u.bind(port, '0.0.0.0', ready);
