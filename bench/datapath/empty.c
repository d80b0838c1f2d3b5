// SPDX-License-Identifier: GPL-2.0
/* The floor of bench/datapath's per-packet cost: a tc program that does nothing, attached where
 * Membrane's from_endpoint runs, measured the same way (kernel.bpf_stats_enabled). Compiled by
 * the benchmark itself; never part of the datapath. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int bench_empty(struct __sk_buff *skb)
{
	return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "GPL";
