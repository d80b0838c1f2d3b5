/* Every reason the datapath drops a packet for: this header owns them all. The numbers are
 * Cilium's, and each name (after MB_DROP_) is Hubble's DropReason name for that number in
 * proto/flow/flow.proto, which flows and metrics print; test/unit/layouts.test.ts checks both
 * against the proto. The agent reads them from the objects' BTF (src/datapath/bpf.generated.ts),
 * so adding one here is all it takes, plus its one-line description in src/flow/printer.ts,
 * which the TypeScript compiler asks for.
 * API: drops are counted per endpoint, direction and peer in mb_metrics (reason 0 is
 * MB_DROP_FORWARDED: no drop) and reported as events (flow_event.subtype). */
#ifndef MEMBRANE_DROP_REASONS_H
#define MEMBRANE_DROP_REASONS_H

enum mb_drop_reason {
	MB_DROP_FORWARDED = 0,                 /* not a drop: metrics_key.reason of forwarded traffic */
	MB_DROP_INVALID_SOURCE_IP = 132,       /* an endpoint sent from an address not its own */
	MB_DROP_POLICY_DENIED = 133,           /* no allow matched (default deny) */
	MB_DROP_INVALID_PACKET_DROPPED = 134,  /* a truncated header */
	MB_DROP_UNSUPPORTED_L3_PROTOCOL = 139, /* not IPv4 (or ARP) */
	MB_DROP_ERROR_WRITING_TO_PACKET = 141, /* a rewrite (service translation) failed */
	MB_DROP_CT_MAP_INSERTION_FAILED = 155, /* connection tracking is full */
	MB_DROP_SERVICE_BACKEND_NOT_FOUND = 158, /* a service without backends */
	MB_DROP_NO_MAPPING_FOR_NAT_MASQUERADE = 167, /* masquerading found no free port */
	MB_DROP_UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE = 168, /* nothing to translate by (no ports) */
	MB_DROP_FIB_LOOKUP_FAILED = 169,       /* the node has no route to the destination */
	MB_DROP_POLICY_DENY = 181,             /* a deny rule matched */
};

#endif
