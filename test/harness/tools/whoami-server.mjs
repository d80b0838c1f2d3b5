// `whoami-server.mjs NAME PORT [HOLDPORT]`: answers every TCP connection on PORT with NAME and
// closes it (the server closes first, so clients can reuse their source ports), and every UDP
// datagram with NAME. On HOLDPORT it greets with "NAME\n" and then echoes what it receives, for
// connections held open across service changes. Prints "ready" once listening.
import net from 'node:net';
import dgram from 'node:dgram';

const [name, portText, holdText] = process.argv.slice(2);
const port = Number(portText);
let pending = holdText ? 3 : 2;
const ready = () => --pending === 0 && console.log('ready');
net.createServer((s) => s.end(name).on('error', () => {})).listen(port, '0.0.0.0', ready);
if (holdText) {
  net
    .createServer((s) => {
      s.on('error', () => {});
      s.write(`${name}\n`);
      s.pipe(s);
    })
    .listen(Number(holdText), '0.0.0.0', ready);
}
const u = dgram.createSocket('udp4');
u.on('message', (_m, rinfo) => u.send(name, rinfo.port, rinfo.address));
u.bind(port, '0.0.0.0', ready);
