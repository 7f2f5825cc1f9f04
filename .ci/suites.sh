#!/usr/bin/env bash
# The benchmark suite against peer allocators, one tiny round.
source "$(dirname "$0")/lib.sh"
step "benchmark suite vs peer allocators (bench-suite/): built without the JavaScript workload, one tiny round"
bench-suite/run.sh --tiny --out ../target/BENCHMARKS-tiny.md --svg ../target/benchmarks-tiny.svg | tail -12
