#!/usr/bin/env bash
# valgrind (memcheck) on a subset; AddressSanitizer on the tests (nightly).
source "$(dirname "$0")/lib.sh"

step "valgrind (memcheck): a subset, mimalloc built with MI_TRACK_VALGRIND"
vg_tests="runtime_qsbr alloc_threads pacing_trigger alloc_coexistence"
# shellcheck disable=SC2086
GCMALLOC_TRACK_VALGRIND=1 cargo test --release --target-dir target/valgrind --no-run $(printf -- '--test %s ' $vg_tests)
for t in $vg_tests; do
  bin=$(ls -t target/valgrind/release/deps/"$t"-* | grep -v '\.d$' | head -1)
  valgrind --quiet --error-exitcode=99 "$bin" --test-threads=1 | grep 'test result'
done

step "ThreadSanitizer and UBSan: a stress program (.ci/stress.c) on the patched C (vendor/mimalloc + csrc/), goal hooks off and on"
.ci/sanitize-stress.sh thread undefined

# The sanitizer passes need the nightly toolchain the machine image carries
# beside stable (no other toolchain can be fetched here).
if ! has_nightly; then
  step "AddressSanitizer: SKIPPED, no nightly toolchain (rustup toolchain list)"
  exit 0
fi
step "AddressSanitizer: the tests, mimalloc built with MI_TRACK_ASAN (freed blocks poisoned)"
# Skipped: the type-stable-page and held-memory tests read freed blocks on
# purpose (what the guarantee allows and ASan reports), one RSS bound that ASan's
# shadow memory exceeds, and the owns() race (ASan poisons the shadow of
# every 2 GiB mapping: one segment a second, too few for a race).
asan_tests=$(ls tests/*.rs | xargs -n1 basename | sed 's/\.rs$//' | grep -vx 'pages_type_stable\|pages_optimistic_reads\|pages_held_memory\|alloc_owns' \
  | sed 's/^/--test /' | tr '\n' ' ')
# shellcheck disable=SC2086
RUSTFLAGS="-Zsanitizer=address" cargo +nightly test --target "$(rustc -vV | sed -n 's/^host: //p')" \
  --target-dir target/asan --lib $asan_tests -- --skip zeroed_blocks_with_a_huge_alignment_are_not_touched_when_fresh
