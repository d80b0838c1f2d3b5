#!/usr/bin/env bash
# `make run`: starts the agent in the foreground inside a network namespace that plays the
# node (created here, with no route out of the machine). Settings come from the environment;
# arguments are passed on to the agent (make run ARGS="--policy-audit-mode").
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_NETNS=${MEMBRANE_NODE_NETNS:-membrane-node}
NODE_NAME=${MEMBRANE_NODE_NAME:-membrane}
POD_CIDR=${MEMBRANE_POD_CIDR:-10.244.0.0/24}
STATE_DIR=${MEMBRANE_STATE_DIR:-/var/lib/membrane}
BPFFS_DIR=${MEMBRANE_BPFFS_DIR:-/sys/fs/bpf/membrane}
SOCKET=${MEMBRANE_SOCKET:-/run/membrane/membrane.sock}

if [ ! -e "/run/netns/$NODE_NETNS" ]; then
  ip netns add "$NODE_NETNS"
  ip -n "$NODE_NETNS" link set lo up
fi
echo "membrane: agent in namespace $NODE_NETNS, pod CIDR $POD_CIDR, socket $SOCKET (Ctrl-C stops it; traffic keeps flowing)" >&2
# nsenter switches only the network namespace, so bpffs under /sys/fs/bpf stays visible.
exec nsenter --net="/run/netns/$NODE_NETNS" bin/membrane --socket "$SOCKET" agent \
  --node-name "$NODE_NAME" --pod-cidr "$POD_CIDR" --state-dir "$STATE_DIR" --bpffs-dir "$BPFFS_DIR" "$@"
