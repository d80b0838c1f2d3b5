/* Map definitions shared by every program. All maps are pinned by the agent, which sets the
 * pin paths before load; sizes here are the defaults the agent reports pressure against. */
#ifndef MEMBRANE_MAPS_H
#define MEMBRANE_MAPS_H

#include "layouts.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 512000);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
} mb_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65535);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
} mb_endpoints SEC(".maps");

/* Local endpoints by IPv4 address (network order): the same values as mb_endpoints. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65535);
	__type(key, struct lxc_key);
	__type(value, struct endpoint_info);
} mb_lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
} mb_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1048576);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
} mb_policy SEC(".maps");

/* Per-CPU LRU lists: a new connection takes a free entry without the global list's lock. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
} mb_ct SEC(".maps");

/* The agent's listener ports that endpoints may not reach on the node. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct agent_port_key);
	__type(value, struct agent_port_value);
} mb_agent_ports SEC(".maps");

/* BPF masquerading's NAT table (include/snat.h): LRU, as connections can end unseen. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct snat_key);
	__type(value, struct snat_value);
} mb_snat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} mb_events SEC(".maps");

/* Events that did not fit in the ring (the agent reports them as lost). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} mb_events_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, struct config_key);
	__type(value, struct datapath_config);
} mb_config SEC(".maps");

#endif
