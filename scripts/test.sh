#!/usr/bin/env bash
# Runs the test suites with node's test runner. Unit tests need no privileges; e2e tests need
# root and build their own namespaces. Independent files run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
files=()
# The benchmark smoke test floods and streams at full speed: it runs on its own, after the
# others, so it does not starve their timing-sensitive probes on a 2-core machine.
solo=(test/e2e/bench-smoke.test.ts)
case "$which" in
  unit) files=(test/unit/*.test.ts); solo=() ;;
  e2e) files=($(ls test/e2e/*.test.ts | grep -v bench-smoke)) ;;
  all) files=(test/unit/*.test.ts $(ls test/e2e/*.test.ts | grep -v bench-smoke)) ;;
  *) files=("$@"); solo=() ;;
esac
# Tests run through tsx, which does not type-check: check them (and the benchmarks) first, and
# that every import in src/ points down the layers (DESIGN.md §2).
node node_modules/typescript/bin/tsc -p tsconfig.test.json
node --import tsx scripts/check-layers.ts
# run TIMEOUT_MS FILES...
run() { local timeout=$1; shift; node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-4}" --test-timeout="$timeout" "$@"; }
status=0
run 300000 "${files[@]}" || status=$?
# Every benchmark's short round takes about four minutes on a busy machine: more time for it.
if [ ${#solo[@]} -gt 0 ]; then run 480000 "${solo[@]}" || status=$?; fi
exit $status
