// SPDX-License-Identifier: GPL-2.0
/* Programs on each endpoint's host-side interface, attached with tcx:
 *   from_endpoint: tcx ingress, sees what the workload sends;
 *   to_endpoint:   tcx egress, sees what is delivered to the workload.
 * One object serves every endpoint; what differs per endpoint lives in mb_endpoints. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/layouts.h"
#include "include/maps.h"
#include "include/ipcache.h"
#include "include/metrics.h"
#include "include/parse.h"

SEC("tc")
int from_endpoint(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&mb_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_OK; /* not ours yet (being set up or torn down) */
	struct iphdr *ip = parse_ipv4(skb);
	if (!ip)
		return TC_ACT_OK; /* ARP and friends */

	__u32 dst_identity = ipcache_identity4(ip->daddr);
	if (ip->saddr != ep->ipv4) {
		metrics_count(ep->ep_id, dst_identity, MB_DIR_EGRESS, MB_DROP_INVALID_SOURCE_IP, skb->len);
		return TC_ACT_SHOT;
	}
	metrics_count(ep->ep_id, dst_identity, MB_DIR_EGRESS, MB_REASON_FORWARDED, skb->len);
	return TC_ACT_OK; /* routed by the node towards the destination's interface */
}

SEC("tc")
int to_endpoint(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&mb_endpoints, &ifindex);
	if (!ep)
		return TC_ACT_OK;
	struct iphdr *ip = parse_ipv4(skb);
	if (!ip)
		return TC_ACT_OK;

	__u32 src_identity = ipcache_identity4(ip->saddr);
	metrics_count(ep->ep_id, src_identity, MB_DIR_INGRESS, MB_REASON_FORWARDED, skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
