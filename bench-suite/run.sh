#!/usr/bin/env bash
# Builds the suite (every allocator binary and the driver) and runs the
# driver with the given arguments. `--tiny` builds without the JavaScript
# workload (boa_engine takes minutes to compile).
set -euo pipefail
export SUITE_COMMAND="bench-suite/run.sh $*"
cd "$(dirname "$0")"
features=()
if [[ " $* " == *" --tiny "* ]]; then
  features=(--no-default-features)
  set -- "$@" --workloads larson,xmalloc,cache-scratch,mstress,alloc-test,rptest,sh6bench,bigheap,syn,json
fi
# mimalloc v3 is built alone, so no other member's features are unified into
# its libmimalloc-sys (stock v2 is libmimalloc-sys2 since the move to v2.5.2).
cargo build --release --workspace --exclude suite-mimalloc-v3 "${features[@]}"
cargo build --release -p suite-mimalloc-v3 "${features[@]}"
# The report lands at the repository root, beside README.md.
exec target/release/driver --out ../BENCHMARKS.md --svg ../benchmarks.svg "$@"
