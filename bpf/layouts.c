// SPDX-License-Identifier: GPL-2.0
/* Never loaded. The BPF backend emits BTF only for types that globals and program signatures
 * reach, so structs used through ring-buffer pointers and enums used as plain numbers would be
 * missing from the programs' BTF; this object anchors every shared struct and enum of
 * include/layouts.h, and scripts/gen-bpf-types.ts generates the agent's TypeScript side from its
 * BTF. A new struct or enum in layouts.h gets its anchor here. */
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
struct agent_port_key *anchor_agent_port_key;
struct agent_port_value *anchor_agent_port_value;
struct endpoint_key *anchor_endpoint_key;
struct lxc_key *anchor_lxc_key;
struct config_key *anchor_config_key;
struct lb_maglev_value *anchor_lb_maglev_value;
struct lb_member_value *anchor_lb_member_value;
struct snat_key *anchor_snat_key;
struct snat_value *anchor_snat_value;

enum mb_family anchor_family;
enum mb_ep_flags anchor_ep_flags;
enum mb_policy_prefix anchor_policy_prefix;
enum mb_policy_flags anchor_policy_flags;
enum mb_rule anchor_rule;
enum mb_ct_flags anchor_ct_flags;
enum mb_ct_lifetime anchor_ct_lifetime;
enum mb_aggregation anchor_aggregation;
enum mb_lb_algorithm anchor_lb_algorithm;
enum mb_lb_client anchor_lb_client;
enum mb_event_type anchor_event_type;
enum mb_trace_point anchor_trace_point;
enum mb_verdict anchor_verdict;
enum mb_ct_state anchor_ct_state;
enum mb_match_type anchor_match_type;
enum mb_direction anchor_direction;
enum mb_identity anchor_identity;
enum mb_routing_mode anchor_routing_mode;
enum mb_drop_reason anchor_drop_reason;
enum mb_ipcache_flags anchor_ipcache_flags;
enum mb_snat_direction anchor_snat_direction;
