#!/usr/bin/env bash
# The tests again, with mimalloc's MI_DEBUG=2 internal assertions (optimized:
# the assertions are what this pass checks).
source "$(dirname "$0")/lib.sh"
step "tests with mimalloc's MI_DEBUG=2 internal assertions"
cargo test --release --features debug
