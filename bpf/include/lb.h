/* Service maps shared by the socket hooks. */
#ifndef MEMBRANE_LB_H
#define MEMBRANE_LB_H

#include "layouts.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb_service_key);
	__type(value, struct lb_service_value);
} mb_lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_backend_key);
	__type(value, struct lb_backend_value);
} mb_lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct lb_revnat_key);
	__type(value, struct lb_revnat_value);
} mb_lb_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4194304);
	__type(key, struct lb_maglev_key);
	__type(value, __u32);
} mb_lb_maglev SEC(".maps");

#endif
