#!/usr/bin/env bash
# The README's test command, then the loom models.
source "$(dirname "$0")/lib.sh"

step "tests (the README's test command)"
cargo test

step "loom models: QSBR, stop-the-world, accounting hand-off, trigger batching, page hook"
RUSTFLAGS="--cfg loom" cargo test --release --target-dir target/loom --test loom
# and the crate-internal models (the type-stable page hook's online check)
RUSTFLAGS="--cfg loom" cargo test --release --target-dir target/loom --lib loom_
