// SPDX-License-Identifier: GPL-2.0
/* Never loaded. The BPF backend emits BTF only for types that globals and program signatures
 * reach, so structs used through ring-buffer pointers would be missing from endpoint.o's BTF;
 * this object anchors every shared struct so test/unit/layouts.test.ts can check them all. */
#include "vmlinux.h"
#include "include/layouts.h"

struct ipcache_key *anchor_ipcache_key;
struct ipcache_value *anchor_ipcache_value;
struct endpoint_info *anchor_endpoint_info;
struct metrics_key *anchor_metrics_key;
struct metrics_value *anchor_metrics_value;
struct policy_key *anchor_policy_key;
struct policy_value *anchor_policy_value;
struct ct_key *anchor_ct_key;
struct ct_value *anchor_ct_value;
struct datapath_config *anchor_datapath_config;
struct flow_event *anchor_flow_event;
struct lb_service_key *anchor_lb_service_key;
struct lb_service_value *anchor_lb_service_value;
struct lb_backend_key *anchor_lb_backend_key;
struct lb_backend_value *anchor_lb_backend_value;
struct lb_revnat_key *anchor_lb_revnat_key;
struct lb_revnat_value *anchor_lb_revnat_value;
struct lb_maglev_key *anchor_lb_maglev_key;
struct lb_affinity_key *anchor_lb_affinity_key;
struct lb_affinity_value *anchor_lb_affinity_value;
struct lb_member_key *anchor_lb_member_key;
