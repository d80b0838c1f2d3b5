// Echo server for tests, run inside a workload namespace: TCP and UDP on every port given.
// Prints "ready" once all sockets listen.
import net from 'node:net';
import dgram from 'node:dgram';

const ports = process.argv.slice(2).map(Number);
let pending = ports.length * 2;
const ready = () => {
  if (--pending === 0) console.log('ready');
};
for (const port of ports) {
  net.createServer((s) => s.pipe(s).on('error', () => {})).listen(port, '0.0.0.0', ready);
  const u = dgram.createSocket('udp4');
  u.on('message', (msg, rinfo) => u.send(msg, rinfo.port, rinfo.address));
  u.bind(port, '0.0.0.0', ready);
}
