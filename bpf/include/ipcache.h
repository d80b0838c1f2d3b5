#ifndef MEMBRANE_IPCACHE_H
#define MEMBRANE_IPCACHE_H

#include "maps.h"

/* What the agent knows of an IPv4 address (network order): its identity and, in a cluster,
 * the node hosting it; NULL for anything it has not been told about. */
static __always_inline struct ipcache_value *ipcache_lookup4(__u32 addr)
{
	struct ipcache_key key = {
		.prefixlen = 32 + 32,
		.family = MB_FAMILY_IPV4,
	};
	__builtin_memcpy(key.addr, &addr, 4);
	return bpf_map_lookup_elem(&mb_ipcache, &key);
}

/* Identity of an IPv4 address (network order); anything unknown is outside the cluster. */
static __always_inline __u32 ipcache_identity4(__u32 addr)
{
	struct ipcache_value *v = ipcache_lookup4(addr);
	return v ? v->identity : MB_IDENTITY_WORLD;
}

#endif
