// Holds one TCP connection open: `hold-conn.mjs HOST PORT`. Each line on stdin is sent; each
// echo is printed as "echo <line>". Prints "connected" first.
import net from 'node:net';
import readline from 'node:readline';

const [host, port] = process.argv.slice(2);
const s = net.connect(Number(port), host, () => console.log('connected'));
s.setNoDelay(true);
let buf = '';
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    console.log(`echo ${buf.slice(0, i)}`);
    buf = buf.slice(i + 1);
  }
});
s.on('error', (e) => {
  console.log(`error ${e.code}`);
  process.exit(1);
});
s.on('close', () => process.exit(2));
readline.createInterface({ input: process.stdin }).on('line', (line) => s.write(line + '\n'));
