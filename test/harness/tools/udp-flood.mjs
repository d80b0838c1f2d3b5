// `udp-flood.mjs HOST PORT COUNT`: sends COUNT small UDP datagrams as fast as the socket allows,
// then prints "sent N". Used by the flow stress test; bounded by COUNT.
import dgram from 'node:dgram';

const [host, port, countText] = process.argv.slice(2);
const count = Number(countText);
const s = dgram.createSocket('udp4');
const payload = Buffer.alloc(16);
let sent = 0;
s.connect(Number(port), host, () => {
  const burst = () => {
    for (let i = 0; i < 256 && sent < count; i++, sent++) s.send(payload);
    if (sent < count) setImmediate(burst);
    else setTimeout(() => (console.log(`sent ${sent}`), s.close()), 50);
  };
  burst();
});
