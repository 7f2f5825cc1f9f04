/* The driver of benches/patches_icount.sh: the single-thread cases of
   benches/alloc_icount.rs (a pair: one block allocated, written and freed at
   once; a batch: BATCH blocks allocated and written, then freed), in C, so
   that pristine and patched mimalloc run the very same caller.

     patches_icount pair|batch SIZE BATCH OPS

   runs OPS operations (an allocation and its free) once as a warm-up (pages
   exist, the thread-local heap is set) and once in `measured_region`, the
   only function callgrind counts (--toggle-collect).

   The patched tree needs nothing from gcmalloc's Rust side: csrc/ calls no
   Rust function; Rust reaches it through hooks it installs
   (mi_page_delay_set_hooks) and figures it reads. None is installed here, so
   this measures what a program that does not use QSBR runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mimalloc.h"

// Rust's black_box: the compiler may not assume anything about `p`.
#define OPAQUE(p) __asm__ volatile("" : "+r"(p) : : "memory")

static void pair(size_t size) {
  char* p = mi_malloc(size);
  OPAQUE(p);
  *p = 1;
  mi_free(p);
}

static void batch(size_t size, char** slots, size_t n) {
  for (size_t i = 0; i < n; i++) {
    slots[i] = mi_malloc(size);
    *slots[i] = 1;
  }
  OPAQUE(slots);
  for (size_t i = 0; i < n; i++) mi_free(slots[i]);
}

__attribute__((noinline)) static void work(int is_pair, size_t size, char** slots, size_t n, size_t ops) {
  for (size_t round = 0; round < ops / n; round++) {
    if (is_pair) {
      for (size_t i = 0; i < n; i++) pair(size);
    } else {
      batch(size, slots, n);
    }
  }
}

// Not static, not inlined: callgrind's --toggle-collect names it.
__attribute__((noinline)) void measured_region(int is_pair, size_t size, char** slots, size_t n, size_t ops) {
  work(is_pair, size, slots, n, ops);
  __asm__ volatile("");  // no tail call: the count stays inside this function
}

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[1], "pair") != 0 && strcmp(argv[1], "batch") != 0)) {
    fprintf(stderr, "usage: %s pair|batch SIZE BATCH OPS\n", argv[0]);
    return 2;
  }
  const int is_pair = strcmp(argv[1], "pair") == 0;
  const size_t size = strtoul(argv[2], NULL, 10), n = strtoul(argv[3], NULL, 10), ops = strtoul(argv[4], NULL, 10);
  if (size == 0 || n == 0 || ops < n) {
    fprintf(stderr, "patches_icount: SIZE and BATCH must be positive, OPS at least BATCH\n");
    return 2;
  }
  // The slots come from libc (as alloc_icount's: that binary sets no global
  // allocator), not from the allocator measured.
  char** slots = calloc(n, sizeof(char*));
  if (slots == NULL) return 1;
  work(is_pair, size, slots, n, ops);
  measured_region(is_pair, size, slots, n, ops);
  free(slots);
  return 0;
}
