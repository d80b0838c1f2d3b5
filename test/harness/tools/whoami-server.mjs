// `whoami-server.mjs NAME PORT`: answers every TCP connection and UDP datagram with NAME.
// Prints "ready" once listening.
import net from 'node:net';
import dgram from 'node:dgram';

const [name, portText] = process.argv.slice(2);
const port = Number(portText);
let pending = 2;
const ready = () => --pending === 0 && console.log('ready');
net.createServer((s) => s.end(name).on('error', () => {})).listen(port, '0.0.0.0', ready);
const u = dgram.createSocket('udp4');
u.on('message', (_m, rinfo) => u.send(name, rinfo.port, rinfo.address));
u.bind(port, '0.0.0.0', ready);
