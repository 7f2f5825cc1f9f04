#!/usr/bin/env bash
# Thread churn against the accounting's heap-list lock (csrc/accounting.c,
# taken at every heap creation and deletion, i.e. every thread start and
# exit): 2 threads each create and join N short threads that allocate and
# free once, with the patched C as is ("lock") and with heap registration
# reduced to the heap counter ("nolock": a copy of the tree, for timing only;
# `usage` and `audit` would miss heaps), alternately, ROUNDS times each.
#   usage: scripts/thread-churn.sh [N=50000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50000}" rounds="${2:-3}"
out=target/thread-churn
rm -rf "$out" && mkdir -p "$out/nolock"
cp -r vendor csrc "$out/nolock/"
python3 - "$out/nolock/csrc/accounting.c" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
a = s.index('void _mi_heap_acct_register(mi_heap_t* heap) {')
b = s.index("// The heap list's lock across fork()")
s = s[:a] + '''void _mi_heap_acct_register(mi_heap_t* heap) {
  (void)heap;
  mi_atomic_increment_relaxed(&mi_acct.heap_count);
}
void _mi_heap_acct_unregister(mi_heap_t* heap) {
  mi_heap_acct_publish(heap);
  mi_atomic_decrement_relaxed(&mi_acct.heap_count);
}

''' + s[b:]
open(p, 'w').write(s)
PY
cat > "$out/churn.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mimalloc.h"
static int N;
static void* shortlived(void* arg) { void* p = mi_malloc(64); ((volatile char*)p)[0] = 1; mi_free(p); return arg; }
static void* spawner(void* arg) {
  for (int i = 0; i < N; i++) { pthread_t t; pthread_create(&t, NULL, shortlived, NULL); pthread_join(t, NULL); }
  return arg;
}
int main(int argc, char** argv) {
  N = atoi(argv[1]);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  pthread_t s[2];
  for (int i = 0; i < 2; i++) pthread_create(&s[i], NULL, spawner, NULL);
  for (int i = 0; i < 2; i++) pthread_join(s[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  const double t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
  printf("%d threads: %.2f s, %.1f us per thread\n", 2 * N, t, t * 1e6 / (2 * N));
  return 0;
}
C
for v in lock nolock; do
  root=.; [ "$v" = nolock ] && root="$out/nolock"
  "${CC:-cc}" -O2 -DMI_DEBUG=0 -DNDEBUG -I"$root/vendor/mimalloc/include" -I"$root" \
    "$root/vendor/mimalloc/src/static.c" "$out/churn.c" -o "$out/churn-$v" -lpthread
done
for _ in $(seq "$rounds"); do
  for v in lock nolock; do printf '%-7s' "$v:"; "$out/churn-$v" "$n"; done
done
