/* A TCP connect from inside a workload's namespace without starting a process: the socket is
 * created in the namespace with setns, then connected with a bounded timeout. Benchmarks use it
 * to verify that something took effect, so no process start-up is measured. */
import { libc } from '../src/kernel/libc.js';
import { netnsPath, withNetns } from '../src/kernel/netns.js';

const { socket, connect, setsockopt, close } = libc;
const AF_INET = 2;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const SO_SNDTIMEO = 21;

function sockaddr(ip: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  Buffer.from(ip.split('.').map(Number)).copy(b, 4);
  return b;
}

/** One blocking connect (bounded by SO_SNDTIMEO, `timeoutMs`) from a socket living in `netns`. */
export function connectFrom(netns: string, ip: string, port: number, timeoutMs = 200): boolean {
  const fd = withNetns(netnsPath(netns), () => socket(AF_INET, SOCK_STREAM, 0));
  try {
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(BigInt(Math.floor(timeoutMs / 1000)), 0);
    tv.writeBigInt64LE(BigInt((timeoutMs % 1000) * 1000), 8);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, 16);
    return connect(fd, sockaddr(ip, port), 16) === 0;
  } finally {
    close(fd);
  }
}
