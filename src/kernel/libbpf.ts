/* Raw bindings to libbpf.so.1 and a few libc calls through koffi. Only this module knows the C
 * signatures; everything else uses the typed wrappers in this folder. libbpf 1.x returns
 * -errno from int functions and NULL (0n) with errno set from pointer functions. */
import koffi from 'koffi';
import os from 'node:os';
import { KernelError, StartupError } from '../errors.js';

/** A shared library, or one line saying what to install (the agent prints it and exits). */
function load(lib: string, debianPackage: string): ReturnType<typeof koffi.load> {
  try {
    return koffi.load(lib);
  } catch (err) {
    throw new StartupError(`${lib} cannot be loaded (${(err as Error).message.split('\n')[0]}): install ${debianPackage} ('make deps' does)`);
  }
}

const libbpf = load('libbpf.so.1', 'libbpf1');
const libc = load('libc.so.6', 'libc6');

export type Ptr = bigint;

export const c = {
  objectOpenFile: libbpf.func('uint64_t bpf_object__open_file(const char *path, void *opts)'),
  objectLoad: libbpf.func('int bpf_object__load(uint64_t obj)'),
  objectClose: libbpf.func('void bpf_object__close(uint64_t obj)'),
  findMapByName: libbpf.func('uint64_t bpf_object__find_map_by_name(uint64_t obj, const char *name)'),
  findProgramByName: libbpf.func('uint64_t bpf_object__find_program_by_name(uint64_t obj, const char *name)'),
  mapSetPinPath: libbpf.func('int bpf_map__set_pin_path(uint64_t map, const char *path)'),
  mapSetMaxEntries: libbpf.func('int bpf_map__set_max_entries(uint64_t map, uint32_t max)'),
  mapFd: libbpf.func('int bpf_map__fd(uint64_t map)'),
  mapType: libbpf.func('int bpf_map__type(uint64_t map)'),
  mapKeySize: libbpf.func('uint32_t bpf_map__key_size(uint64_t map)'),
  mapValueSize: libbpf.func('uint32_t bpf_map__value_size(uint64_t map)'),
  mapMaxEntries: libbpf.func('uint32_t bpf_map__max_entries(uint64_t map)'),
  mapFlags: libbpf.func('uint32_t bpf_map__map_flags(uint64_t map)'),
  mapIsPinned: libbpf.func('bool bpf_map__is_pinned(uint64_t map)'),
  programFd: libbpf.func('int bpf_program__fd(uint64_t prog)'),

  mapCreate: libbpf.func('int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, void *opts)'),
  mapUpdateElem: libbpf.func('int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)'),
  mapLookupElem: libbpf.func('int bpf_map_lookup_elem(int fd, void *key, void *value)'),
  mapDeleteElem: libbpf.func('int bpf_map_delete_elem(int fd, void *key)'),
  mapGetNextKey: libbpf.func('int bpf_map_get_next_key(int fd, void *key, void *next_key)'),
  mapUpdateBatch: libbpf.func('int bpf_map_update_batch(int fd, void *keys, void *values, void *count, void *opts)'),
  mapDeleteBatch: libbpf.func('int bpf_map_delete_batch(int fd, void *keys, void *count, void *opts)'),
  mapLookupBatch: libbpf.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, void *opts)',
  ),
  objGetInfoByFd: libbpf.func('int bpf_obj_get_info_by_fd(int fd, void *info, void *len)'),

  objPin: libbpf.func('int bpf_obj_pin(int fd, const char *path)'),
  objGet: libbpf.func('int bpf_obj_get(const char *path)'),
  linkCreate: libbpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
  linkUpdate: libbpf.func('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
  probeProgType: libbpf.func('int libbpf_probe_bpf_prog_type(int prog_type, void *opts)'),
  probeMapType: libbpf.func('int libbpf_probe_bpf_map_type(int map_type, void *opts)'),
  setPrint: libbpf.func('void *libbpf_set_print(void *fn)'),

  setns: libc.func('int setns(int fd, int nstype)'),
  mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  umount2: libc.func('int umount2(const char *target, int flags)'),
  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *name)'),
  close: libc.func('int close(int fd)'),
  geteuid: libc.func('uint32_t geteuid(void)'),
  pthreadSigmask: libc.func('int pthread_sigmask(int how, const void *set, void *oldset)'),
};

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
  if (c.pthreadSigmask(SIG_BLOCK, ALL_SIGNALS, saved) !== 0) return fn();
  try {
    return fn();
  } finally {
    c.pthreadSigmask(SIG_SETMASK, saved, null);
  }
}

export function errno(): number {
  return koffi.errno();
}

/** Checks an int-returning libbpf call (negative errno on failure). */
export function check(op: string, ret: number): number {
  if (ret < 0) throw new KernelError(op, -ret);
  return ret;
}

/** Checks a pointer-returning libbpf call (0 with errno on failure). */
export function checkPtr(op: string, ptr: Ptr): Ptr {
  if (ptr === 0n) throw new KernelError(op, errno() || os.constants.errno.ENOENT);
  return ptr;
}

export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}
