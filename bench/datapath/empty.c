// SPDX-License-Identifier: GPL-2.0
/* The references of bench/datapath's per-packet cost, attached one after the other where
 * Membrane's from_endpoint runs and measured the same way (kernel.bpf_stats_enabled): a tc
 * program that does nothing (the machine's floor, mostly the clock reads the statistics add), and
 * one that does the least a policy program can: parse Ethernet and IPv4, one hash lookup by the
 * destination address, a counter bump. Compiled by the benchmark itself; never part of the
 * datapath. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TCX_NEXT -1
#define TCX_PASS 0

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} bench_by_daddr SEC(".maps");

SEC("tc")
int bench_empty(struct __sk_buff *skb)
{
	return TCX_NEXT; /* on to bench_one_lookup */
}

SEC("tc")
int bench_one_lookup(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TCX_PASS;
	__u64 *seen = bpf_map_lookup_elem(&bench_by_daddr, &ip->daddr);
	if (seen)
		*seen += 1;
	return TCX_PASS;
}

char LICENSE[] SEC("license") = "GPL";
