/* A multi-threaded stress program for the sanitizer runs of the patched C
   (.ci/sanitize-stress.sh), in the manner of mimalloc's test-stress: rounds of
   threads that allocate blocks of random sizes (mostly small, some large,
   a few huge), fill them with a pattern, keep some, free some, and trade
   some through a shared array of slots with other threads, which check the
   pattern and free them. Threads are re-created every round, so pages are
   abandoned at thread exit and reclaimed by the next round's threads.

     usage: stress THREADS SCALE ROUNDS   (each thread: 1,000 x SCALE blocks a round)

   Our own program (mimalloc's v2.5.2 test-stress.c is not in any registry
   package, and fetched code is not committed). It calls only mimalloc's
   public API. Exit status 0 when every block read back its pattern. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "mimalloc.h"

#define SLOTS 1024

static _Atomic(uintptr_t*) slots[SLOTS];   // blocks traded between threads
static atomic_size_t checked;              // blocks whose pattern was read back
static size_t scale;

typedef struct { uint64_t state; } rng_t;

static uint64_t next(rng_t* r) {  // xorshift64*
  r->state ^= r->state >> 12; r->state ^= r->state << 25; r->state ^= r->state >> 27;
  return r->state * 2685821657736338717ULL;
}

// Mostly 8 B - 1 KiB, 1 in 100 up to 256 KiB, 1 in 10,000 up to 4 MiB.
static size_t pick_size(rng_t* r) {
  const uint64_t x = next(r);
  const size_t words = (x % 10000 == 0 ? (x >> 20) % (1 << 19) : x % 100 == 0 ? (x >> 20) % (1 << 15) : (x >> 20) % 128);
  return (words + 1) * sizeof(uintptr_t);
}

// A block's first word holds its length in words; the others a pattern.
static uintptr_t* make(rng_t* r) {
  const size_t bytes = pick_size(r);
  const size_t words = bytes / sizeof(uintptr_t);
  uintptr_t* p = (uintptr_t*)mi_malloc(bytes);
  if (p == NULL) { fprintf(stderr, "stress: out of memory\n"); exit(2); }
  p[0] = words;
  for (size_t i = 1; i < words; i++) p[i] = (uintptr_t)p ^ i;
  return p;
}

static void check_and_free(uintptr_t* p) {
  if (p == NULL) return;
  const size_t words = p[0];
  for (size_t i = 1; i < words; i++) {
    if (p[i] != ((uintptr_t)p ^ i)) { fprintf(stderr, "stress: block %p corrupted at word %zu\n", (void*)p, i); abort(); }
  }
  atomic_fetch_add_explicit(&checked, 1, memory_order_relaxed);
  mi_free(p);
}

static void* worker(void* arg) {
  rng_t r = { (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1 };
  const size_t keep_max = 50 * scale;
  uintptr_t** kept = (uintptr_t**)mi_calloc(keep_max, sizeof(uintptr_t*));
  for (size_t n = 0; n < 1000 * scale; n++) {
    const size_t k = next(&r) % keep_max;
    check_and_free(kept[k]);            // replace a kept block
    kept[k] = make(&r);
    if (next(&r) % 4 == 0) {            // trade a block: give one, take whatever was there
      uintptr_t* old = atomic_exchange_explicit(&slots[next(&r) % SLOTS], make(&r), memory_order_acq_rel);
      check_and_free(old);
    }
  }
  for (size_t k = 0; k < keep_max; k++) {  // leave half behind, for the next round to free
    if (k % 2 == 0) { check_and_free(kept[k]); }
    else { check_and_free(atomic_exchange_explicit(&slots[next(&r) % SLOTS], kept[k], memory_order_acq_rel)); }
  }
  mi_free(kept);
  return NULL;
}

int main(int argc, char** argv) {
  const size_t threads = (argc > 1 ? strtoul(argv[1], NULL, 10) : 8);
  scale = (argc > 2 ? strtoul(argv[2], NULL, 10) : 10);
  const size_t rounds = (argc > 3 ? strtoul(argv[3], NULL, 10) : 10);
  if (threads == 0 || threads > 256 || scale == 0) { fprintf(stderr, "usage: stress THREADS(1-256) SCALE ROUNDS\n"); return 2; }
  pthread_t tids[256];
  for (size_t round = 0; round < rounds; round++) {
    for (size_t t = 0; t < threads; t++) {
      if (pthread_create(&tids[t], NULL, worker, (void*)(uintptr_t)(round * threads + t + 1)) != 0) { perror("pthread_create"); return 2; }
    }
    for (size_t t = 0; t < threads; t++) pthread_join(tids[t], NULL);
  }
  for (size_t i = 0; i < SLOTS; i++) check_and_free(atomic_exchange(&slots[i], NULL));
  mi_collect(true);
  printf("stress: %zu threads x %zu rounds, %zu blocks checked\n", threads, rounds, atomic_load(&checked));
  return 0;
}
