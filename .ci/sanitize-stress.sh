#!/usr/bin/env bash
# A multi-threaded stress program in the manner of mimalloc's test-stress
# (.ci/stress.c: upstream's v2.5.2 copy is in no registry package) against
# the patched tree (vendor/mimalloc + csrc/), built from source with a
# sanitizer, in a short form (a few seconds each):
#   thread      ThreadSanitizer (MI_TSAN=1, upstream's setting), goal hooks
#               not installed (stock behaviour), then with .ci/goal-hooks.c
#               holding every emptied page back for 20-30 ms
#   undefined   UndefinedBehaviorSanitizer, with the goal hooks
# Any report fails the run: TSan with halt_on_error, UBSan without recovery.
#   usage: .ci/sanitize-stress.sh [thread|undefined]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/sanitize-stress
mkdir -p "$out"
cc="${CC:-cc}"
# THREADS SCALE ITER: 8 threads re-created 10 times, objects passed between
# them (UBSan, 20 times faster, does 5 times the work).
args=(8 10 10)

build() {  # build NAME SANITIZER EXTRA-FLAGS... -- EXTRA-SOURCES...
  local name="$1" san="$2"; shift 2
  local flags=() srcs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  srcs=("$@")
  "$cc" -O1 -g -fno-omit-frame-pointer -fsanitize="$san" -fno-sanitize-recover=all \
    -DMI_DEBUG=2 -Wall -Werror "${flags[@]}" -Ivendor/mimalloc/include -I. \
    vendor/mimalloc/src/static.c .ci/stress.c "${srcs[@]}" \
    -o "$out/$name" -lpthread
}

run() {  # run NAME: its last lines; on failure its whole output, and the script fails
  local start=$SECONDS log="$out/$1.log"
  echo "-- $1 ${args[*]}"
  if ! "$out/$1" "${args[@]}" > "$log" 2>&1; then
    cat "$log"
    echo "sanitize-stress: $1 failed (its output above)" >&2
    return 1
  fi
  tail -4 "$log"
  echo "   ok in $((SECONDS - start)) s"
}

sanitizers=("$@")
[ ${#sanitizers[@]} -gt 0 ] || sanitizers=(thread undefined)
for san in "${sanitizers[@]}"; do
  case "$san" in
    thread)
      export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"
      build tsan thread -DMI_TSAN=1
      build tsan-goals thread -DMI_TSAN=1 -- .ci/goal-hooks.c
      run tsan
      run tsan-goals ;;
    undefined)
      export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
      build ubsan-goals undefined -- .ci/goal-hooks.c
      args=(8 25 20)
      run ubsan-goals ;;
    *) echo "usage: $0 [thread|undefined]..." >&2; exit 2 ;;
  esac
done
