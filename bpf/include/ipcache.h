#ifndef MEMBRANE_IPCACHE_H
#define MEMBRANE_IPCACHE_H

#include "maps.h"

/* Identity of an IPv4 address (network order); anything the agent has not told us about is
 * outside the cluster. */
static __always_inline __u32 ipcache_identity4(__u32 addr)
{
	struct ipcache_key key = {
		.prefixlen = 32 + 32,
		.family = MB_FAMILY_IPV4,
	};
	__builtin_memcpy(key.addr, &addr, 4);
	struct ipcache_value *v = bpf_map_lookup_elem(&mb_ipcache, &key);
	return v ? v->identity : MB_IDENTITY_WORLD;
}

#endif
