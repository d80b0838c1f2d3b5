#!/usr/bin/env bash
# `make clean-run`: removes what `make run` and the quickstart left on this machine: the
# agent (if running), its namespaces, pinned objects and state.
set -uo pipefail
NODE_NETNS=${MEMBRANE_NODE_NETNS:-membrane-node}
NODE_NAME=${MEMBRANE_NODE_NAME:-membrane}
STATE_DIR=${MEMBRANE_STATE_DIR:-/var/lib/membrane}
BPFFS_DIR=${MEMBRANE_BPFFS_DIR:-/sys/fs/bpf/membrane}
SOCKET=${MEMBRANE_SOCKET:-/run/membrane/membrane.sock}
for pid in $(pgrep -f -- "--node-name $NODE_NAME --pod-cidr" || true); do kill "$pid"; done
sleep 0.5
for ns in $(ip netns list | awk '{print $1}' | grep -E "^(${NODE_NAME}-|${NODE_NETNS}$)" || true); do ip netns delete "$ns"; done
rm -rf "$BPFFS_DIR" "$STATE_DIR" "$SOCKET"
echo "membrane: removed namespaces, pins and state"
