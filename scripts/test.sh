#!/usr/bin/env bash
# Runs the test suites with node's test runner. Unit tests need no privileges; e2e tests need
# root and build their own namespaces. Independent files run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
files=()
case "$which" in
  unit) files=(test/unit/*.test.ts) ;;
  e2e) files=(test/e2e/*.test.ts) ;;
  all) files=(test/unit/*.test.ts test/e2e/*.test.ts) ;;
  *) files=("$@") ;;
esac
# Tests run through tsx, which does not type-check: check them (and the benchmarks) first.
node node_modules/typescript/bin/tsc -p tsconfig.test.json
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-4}" --test-timeout=300000 "${files[@]}"
