#!/usr/bin/env bash
# What the patch series costs mimalloc's allocation and free paths, alone:
# instructions under valgrind's callgrind, pristine mimalloc v2.5.2 against
# vendor/mimalloc (pristine + vendor/patches/), both built as build.rs builds
# gcmalloc's copy for `cargo bench` and release builds.
#
#   benches/patches_icount.sh     (needs a C compiler and valgrind; about 10 s)
#
# - Both trees: the unity source static.c with build.rs's flags (below) and
#   the same driver, benches/patches_icount.c, linked into an executable each
#   (target/patches-icount/). The pristine tree is the one
#   `vendor/patches.sh pristine` names (libmimalloc-sys2 0.1.65 in the cargo
#   registry). No Rust: csrc/ calls none, and no hook is installed, so the
#   patched run is what a program that does not use QSBR runs. build.rs's
#   second compile through a `gcm_` renaming header changes names only, so
#   there is one compile per tree.
# - The cases of benches/alloc_icount.rs: alloc/free pairs and batches of
#   BATCH (1,000) at each size of benches/common/mod.rs (read from there),
#   20 x BATCH operations after a warm-up as long; each case in its own process,
#   callgrind counting only inside the driver's `measured_region`.
# - Prints case, size, instructions per operation (an allocation and its
#   free) of each tree and their ratio, then the same for the "fast" part:
#   mi_malloc's and mi_free's own instructions (the fast paths are inlined
#   there; the slow paths they call are not counted), so that an instruction
#   added to a fast path shows even where the patches save one elsewhere.
#   Exits 1 if a ratio passes its bound (marked in the table):
#     pair   1.005  the fast paths get nothing from the patches;
#     batch  1.10   a batch takes the slow paths where the hooks are (a page
#                   filled, emptied and freed every few hundred operations:
#                   accounting sync, delayed page reuse's bookkeeping);
#     fast   1.005  in every case.
# `cargo bench --bench alloc_icount` compares gcmalloc itself with stock as
# libmimalloc-sys2's CMake builds it, so its ratios mix the patches with the
# two builds; this script's are the patches alone.
set -euo pipefail
cd "$(dirname "$0")/.."

pair_bound=1.005
batch_bound=1.10
out=target/patches-icount
cc="${CC:-cc}"
# What build.rs has cc-rs run on Linux without the debug feature, no debug
# info (`cargo bench`, release), as a logging CC showed it (cc-rs 1.11): its
# defaults for opt_level(3) (-O3, sections, -fPIC; -m64 -march=x86-64 on
# x86-64), warnings(false) (-w), then build.rs's flags and defines. Other
# architectures get the compiler's default CPU. CFLAGS are not read.
flags=(-O3 -ffunction-sections -fdata-sections -fPIC -w -Wno-error=date-time -ftls-model=initial-exec
  -DMI_VISIT_ABANDONED=1 -DMI_DEBUG=0 -DMI_BUILD_RELEASE -DNDEBUG)
[ "$(uname -m)" = x86_64 ] && flags+=(-m64 -march=x86-64)

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

# count NAME CASE SIZE: into $out/NAME.count, the instructions counted inside
# measured_region and those of mi_malloc's and mi_free's own code (the
# fast paths, inlined there; their callees not included).
count() {
  local log="$out/$1.log" cg="$out/$1.callgrind"
  valgrind --tool=callgrind --callgrind-out-file="$cg" --toggle-collect=measured_region \
    "$out/$1" "$2" "$3" "$batch" "$ops" > "$log" 2>&1 || { cat "$log" >&2; fail "$1 $2 $3 failed"; }
  local total fast
  total=$(sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' "$log")
  fast=$(callgrind_annotate --threshold=100 "$cg" | awk '/:(mi_malloc|mi_free) \[/ { gsub(",", "", $1); n++; s += $1 }
    END { if (n == 2) print s }')
  [ -n "$total" ] && [ -n "$fast" ] || { cat "$log" >&2; fail "no callgrind figures for $1 $2 $3"; }
  echo "$total $fast" > "$out/$1.count"
}

start=$SECONDS
mkdir -p "$out"
pristine=$(vendor/patches.sh pristine)
build pristine "$pristine" & p1=$!
build patched vendor/mimalloc & p2=$!
wait "$p1" && wait "$p2" || fail "build failed"
built=$((SECONDS - start))

printf '%-6s %6s %14s %14s %7s%7s %13s %13s %7s\n' case size "pristine Ir/op" "patched Ir/op" ratio "" \
  "fast pristine" "fast patched" ratio
failed=0
for case in pair batch; do
  bound=$pair_bound
  [ "$case" = batch ] && bound=$batch_bound
  for size in "${sizes[@]}"; do
    count pristine "$case" "$size" & p1=$!
    count patched "$case" "$size" & p2=$!
    wait "$p1" && wait "$p2" || exit 1
    read -r a fa < "$out/pristine.count"
    read -r b fb < "$out/patched.count"
    awk -v c="$case" -v s="$size" -v ops="$ops" -v a="$a" -v b="$b" -v fa="$fa" -v fb="$fb" \
      -v bound="$bound" -v fast_bound="$pair_bound" '
      function mark(r, m) { return r > m + 0 ? " >" m : "" }
      BEGIN {
        r = b / a; fr = fb / fa
        printf "%-6s %6d %14.2f %14.2f %7.4f%-7s %13.2f %13.2f %7.4f%s\n", c, s, a / ops, b / ops, r, mark(r, bound),
          fa / ops, fb / ops, fr, mark(fr, fast_bound)
        exit (mark(r, bound) mark(fr, fast_bound)) != ""
      }' || failed=1
  done
done
echo "patches_icount: built in $built s, all in $((SECONDS - start)) s (bounds: pair and fast $pair_bound, batch $batch_bound)"
[ "$failed" = 0 ] || fail "a ratio passed its bound (marked above): the patches cost these paths more than they may"
