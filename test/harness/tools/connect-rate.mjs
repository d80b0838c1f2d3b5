// `connect-rate.mjs HOST PORT SECONDS [PARALLEL]`: new TCP connections per second, each carrying
// one request and its reply (TCP_CRR style) against echo-server.mjs, PARALLEL loops at once
// (default 4). Connections end with a reset so no TIME_WAIT state piles up across runs. Prints
// the rate and, on stderr, the errors seen.
import net from 'node:net';

const [host, portText, secondsText, parallelText] = process.argv.slice(2);
const port = Number(portText);
const end = Date.now() + Number(secondsText) * 1000;
const started = Date.now();
let done = 0;
let running = Number(parallelText ?? 4);
const errors = {};

function one() {
  if (Date.now() > end) {
    if (--running === 0) {
      if (Object.keys(errors).length) console.error(JSON.stringify(errors));
      console.log((done / ((Date.now() - started) / 1000)).toFixed(1));
    }
    return;
  }
  const s = net.connect(port, host, () => s.write('x'));
  s.once('data', () => {
    done++;
    s.resetAndDestroy();
    one();
  });
  s.on('error', (e) => {
    errors[e.code] = (errors[e.code] ?? 0) + 1;
    one();
  });
}
for (let i = running; i > 0; i--) one();
