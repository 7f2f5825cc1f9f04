#!/usr/bin/env bash
# 60 s of fuzzing the thread runtime and the allocator (fuzz/), from the seed
# corpus. GCMALLOC_FUZZ_SECONDS changes the length (a long run: 900 or more).
source "$(dirname "$0")/lib.sh"
if ! has_nightly; then
  step "fuzzing: SKIPPED, no nightly toolchain (rustup toolchain list)"
  exit 0
fi
seconds="${GCMALLOC_FUZZ_SECONDS:-60}"
step "fuzzing: the thread runtime and the allocator (fuzz/), $seconds s from the seed corpus"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet --root target/cargo-fuzz
corpus="$(mktemp -d)"
(cd fuzz && cargo +nightly fuzz run runtime "$corpus" corpus/runtime -- \
  -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -12)
