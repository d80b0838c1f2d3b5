// `udp-pingpong.mjs HOST PORT N`: N datagrams from one socket, each sent once the previous one
// was answered (an echo server on the other side); prints "answered K".
import dgram from 'node:dgram';

const [host, portText, nText] = process.argv.slice(2);
const port = Number(portText);
const n = Number(nText);
const s = dgram.createSocket('udp4');
let answered = 0;
for (let i = 0; i < n; i++) {
  const ok = await new Promise((resolve) => {
    const timer = setTimeout(() => (s.off('message', onMessage), resolve(false)), 1000);
    const onMessage = () => (clearTimeout(timer), s.off('message', onMessage), resolve(true));
    s.on('message', onMessage);
    s.send(`ping ${i}`, port, host);
  });
  if (ok) answered++;
}
s.close();
console.log(`answered ${answered}`);
