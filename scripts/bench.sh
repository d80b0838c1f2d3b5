#!/usr/bin/env bash
# `make bench`: runs every benchmark; each builds its own topology in namespaces and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== bench/endpoints: endpoint add -> first TCP connect, agent memory per endpoint"
node --import tsx bench/endpoints/run.ts
echo
echo "== bench/flows: datapath events decoded per second, CPU per 100k events, packet -> observe --follow latency"
node --import tsx bench/flows/run.ts
