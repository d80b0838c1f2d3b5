#ifndef MEMBRANE_METRICS_H
#define MEMBRANE_METRICS_H

#include "maps.h"

static __always_inline void metrics_count(__u32 ep_id, __u32 remote_identity, __u8 direction,
					  __u8 reason, __u32 bytes)
{
	struct metrics_key key = {
		.ep_id = ep_id,
		.remote_identity = remote_identity,
		.direction = direction,
		.reason = reason,
	};
	struct metrics_value *v = bpf_map_lookup_elem(&mb_metrics, &key);
	if (v) {
		/* per-CPU value: no atomics needed */
		v->packets++;
		v->bytes += bytes;
		return;
	}
	struct metrics_value init = { .packets = 1, .bytes = bytes };
	bpf_map_update_elem(&mb_metrics, &key, &init, BPF_NOEXIST);
}

#endif
