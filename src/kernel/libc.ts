/* The libc calls the agent (and its benchmarks) make through koffi: namespaces, mounts,
 * interfaces, signals, memory maps, sockets. The one module that knows their C signatures. */
import koffi from 'koffi';
import { StartupError } from '../errors.js';

/** A shared library, or one line saying what to install (the agent prints it and exits). */
export function loadLibrary(lib: string, debianPackage: string): ReturnType<typeof koffi.load> {
  try {
    return koffi.load(lib);
  } catch (err) {
    throw new StartupError(`${lib} cannot be loaded (${(err as Error).message.split('\n')[0]}): install ${debianPackage} ('make deps' does)`);
  }
}

const lib = loadLibrary('libc.so.6', 'libc6');

export const libc = {
  setns: lib.func('int setns(int fd, int nstype)'),
  unshare: lib.func('int unshare(int flags)'),
  mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  umount2: lib.func('int umount2(const char *target, int flags)'),
  ifNameToIndex: lib.func('unsigned int if_nametoindex(const char *name)'),
  close: lib.func('int close(int fd)'),
  geteuid: lib.func('uint32_t geteuid(void)'),
  pthreadSigmask: lib.func('int pthread_sigmask(int how, const void *set, void *oldset)'),
  mmap: lib.func('uint64_t mmap(uint64_t addr, size_t len, int prot, int flags, int fd, int64_t off)'),
  munmap: lib.func('int munmap(uint64_t addr, size_t len)'),
  sysconf: lib.func('long sysconf(int name)'),
  socket: lib.func('int socket(int domain, int type, int protocol)'),
  connect: lib.func('int connect(int fd, void *addr, uint32_t len)'),
  setsockopt: lib.func('int setsockopt(int fd, int level, int name, void *val, uint32_t len)'),
  sendto: lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
  recv: lib.func('long recv(int fd, void *buf, size_t len, int flags)'),
};

export function errno(): number {
  return koffi.errno();
}

export function closeFd(fd: number): void {
  if (fd >= 0) libc.close(fd);
}

const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** A sigset_t with every signal (glibc's is 128 bytes); the kernel ignores SIGKILL and SIGSTOP in it. */
const ALL_SIGNALS = Buffer.alloc(128, 0xff);

/**
 * Runs `fn` with this thread's signals held back (they are delivered when it returns). The
 * verifier abandons a program with EAGAIN when a signal arrives while it works, and a large
 * program takes long enough for a profiler's or a timer's signals to land every time.
 */
export function withSignalsBlocked<T>(fn: () => T): T {
  const saved = Buffer.alloc(128);
  if (libc.pthreadSigmask(SIG_BLOCK, ALL_SIGNALS, saved) !== 0) return fn();
  try {
    return fn();
  } finally {
    libc.pthreadSigmask(SIG_SETMASK, saved, null);
  }
}
