#!/usr/bin/env bash
# `make bench`: every benchmark, one table of ratios and goals, recorded in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx bench/run-all.ts "$@"
