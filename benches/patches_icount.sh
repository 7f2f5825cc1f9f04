#!/usr/bin/env bash
# What the patch series costs mimalloc's allocation and free paths, alone:
# instructions under valgrind's callgrind, pristine mimalloc v2.5.2 against
# vendor/mimalloc (pristine + vendor/patches/), both built as build.rs builds
# gcmalloc's copy for `cargo bench` and release builds.
#
#   benches/patches_icount.sh     (needs a C compiler and valgrind; about 25 s)
#
# - Both trees: the unity source static.c with build.rs's flags (below) and
#   the same driver, benches/patches_icount.c, linked into an executable each
#   (target/patches-icount/). The pristine tree is the one
#   `vendor/patches.sh pristine` names (libmimalloc-sys2 0.1.65 in the cargo
#   registry). No Rust: csrc/ calls none, and no hook is installed, so the
#   patched run is what a program that does not use QSBR runs.
# - The cases of benches/alloc_icount.rs: alloc/free pairs and batches of
#   BATCH (1,000) at each size of benches/common/mod.rs (read from there),
#   20 x BATCH operations after a warm-up as long; each case in its own process,
#   callgrind counting only inside the driver's `measured_region`.
# - Prints case, size, instructions per operation (an allocation and its
#   free) of each tree and their ratio, and exits 1 if a ratio passes its bound:
#     pair   1.005  the fast paths get nothing from the patches;
#     batch  1.10   a batch takes the slow paths where the hooks are (a page
#                   filled, emptied and freed every few hundred operations:
#                   accounting sync, delayed page reuse's bookkeeping).
# `cargo bench --bench alloc_icount` compares gcmalloc itself with stock as
# libmimalloc-sys2's CMake builds it, so its ratios mix the patches with the
# two builds; this script's are the patches alone.
set -euo pipefail
cd "$(dirname "$0")/.."

pair_bound=1.005
batch_bound=1.10
out=target/patches-icount
cc="${CC:-cc}"
# build.rs for a Linux target without the debug feature: cc-rs's defaults
# for opt_level(3) and no debug info (-O3, sections, -fPIC, -m64 on x86-64),
# then its flags and defines. (CFLAGS from the environment are not read.)
flags=(-O3 -ffunction-sections -fdata-sections -fPIC -Wno-error=date-time -DMI_VISIT_ABANDONED=1
  -ftls-model=initial-exec -DMI_DEBUG=0 -DMI_BUILD_RELEASE -DNDEBUG)
[ "$(uname -m)" = x86_64 ] && flags+=(-m64)

fail() { echo "patches_icount: $*" >&2; exit 1; }
command -v valgrind >/dev/null || fail "valgrind not found"

# The workloads' parameters, from benches/common/mod.rs (SIZES may be written
# as shifts: `16 << 10`).
common=benches/common/mod.rs
size_list=$(sed -n 's/^pub const SIZES: \[usize; [0-9]*\] = \[\(.*\)\];$/\1/p' "$common")
batch=$(sed -n 's/^pub const BATCH: usize = \([0-9_]*\);$/\1/p' "$common" | tr -d _)
[ -n "$size_list" ] && [ -n "$batch" ] || fail "SIZES or BATCH not found in $common"
sizes=()
IFS=, read -ra exprs <<< "$size_list"
for e in "${exprs[@]}"; do sizes+=("$((e))"); done
ops=$((20 * batch)) # alloc_icount's OPS

# build NAME TREE: static.c and the driver, into $out/NAME (the crate root on
# the include path for csrc/, as build.rs has it; pristine does not use it).
build() {
  local inc=(-I"$2/include" -I"$2/src" -I.)
  "$cc" "${flags[@]}" "${inc[@]}" -c "$2/src/static.c" -o "$out/$1-mimalloc.o"
  "$cc" "${flags[@]}" "${inc[@]}" -c benches/patches_icount.c -o "$out/$1-driver.o"
  "$cc" "$out/$1-driver.o" "$out/$1-mimalloc.o" -o "$out/$1" -lpthread
}

# count NAME CASE SIZE: the instructions counted inside measured_region, into
# $out/NAME.count (the log stays beside it).
count() {
  local log="$out/$1.log"
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect=measured_region \
    "$out/$1" "$2" "$3" "$batch" "$ops" > "$log" 2>&1 || { cat "$log" >&2; fail "$1 $2 $3 failed"; }
  sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' "$log" > "$out/$1.count"
  [ -s "$out/$1.count" ] || { cat "$log" >&2; fail "no callgrind total for $1 $2 $3"; }
}

start=$SECONDS
mkdir -p "$out"
pristine=$(vendor/patches.sh pristine)
build pristine "$pristine" & p1=$!
build patched vendor/mimalloc & p2=$!
wait "$p1" && wait "$p2" || fail "build failed"
built=$((SECONDS - start))

printf '%-6s %6s %15s %15s %8s\n' case size "pristine Ir/op" "patched Ir/op" ratio
failed=0
for case in pair batch; do
  bound=$pair_bound
  [ "$case" = batch ] && bound=$batch_bound
  for size in "${sizes[@]}"; do
    count pristine "$case" "$size" & p1=$!
    count patched "$case" "$size" & p2=$!
    wait "$p1" && wait "$p2" || exit 1
    awk -v c="$case" -v s="$size" -v a="$(cat "$out/pristine.count")" -v b="$(cat "$out/patched.count")" \
      -v ops="$ops" -v bound="$bound" 'BEGIN {
        r = b / a; over = r > bound + 0
        printf "%-6s %6d %15.2f %15.2f %8.4f%s\n", c, s, a / ops, b / ops, r, (over ? "  > " bound : "")
        exit over
      }' || failed=1
  done
done
echo "patches_icount: built in $built s, all in $((SECONDS - start)) s (bounds: pair $pair_bound, batch $batch_bound)"
[ "$failed" = 0 ] || fail "a ratio passed its bound (marked above): the patches cost the paths above more than allowed"
