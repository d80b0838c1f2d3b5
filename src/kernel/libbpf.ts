/* Raw bindings to libbpf.so.1 through koffi. Only this module knows libbpf's C signatures
 * (libc's are in libc.ts); everything else uses the typed wrappers in this folder. libbpf 1.x
 * returns -errno from int functions and NULL (0n) with errno set from pointer functions. */
import os from 'node:os';
import { KernelError } from '../errors.js';
import { errno, loadLibrary } from './libc.js';

const libbpf = loadLibrary('libbpf.so.1', 'libbpf1');

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
};

/** The kernel's info struct of a BPF object (map, program, link): bpf_obj_get_info_by_fd into 128 zeroed bytes. */
export function objectInfo(fd: number, what: string): Buffer {
  const info = Buffer.alloc(128);
  check(`${what} info`, c.objGetInfoByFd(fd, info, new Uint32Array([info.length])));
  return info;
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
