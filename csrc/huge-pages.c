/* ----------------------------------------------------------------------------
gcmalloc: transparent huge pages by heap size.

Stock mimalloc marks every arena it reserves (1 GiB, committed eagerly) with
`madvise(MADV_HUGEPAGE)`, so on a kernel in THP "madvise" mode a small heap's
RSS grows in 2 MiB steps: 4-8 MiB more than jemalloc's on heaps of 7-40 MiB.
Huge pages pay off only on large heaps (fewer TLB misses: 0.69-0.76x user time
from 160 MiB live, and nothing measurable below 35 MiB).

So an arena reserved while the heap is small -- the estimate (live bytes)
below `mi_thp_threshold` -- is reserved unmarked (still committed as stock
does, so no extra system call; the thread reserving it tells `prim.c` to
skip its `madvise`), and its index is remembered. Once the
estimate passes the threshold, the next arena allocation (a segment: a slow
path, at most once per 32 MiB) marks every remembered arena, as stock would
have at reservation, and arenas reserved from then on are marked at once.
Nothing is ever marked `MADV_NOHUGEPAGE` (that cannot be undone to the
system default). Threshold 0 restores stock behaviour; `SIZE_MAX` never marks.
Explicit large OS pages (`mi_option_allow_large_os_pages`) and huge blocks
that the OS maps outside arenas behave as stock.
This file is included by `static.c` after `arena.c` and `accounting.c`.
-----------------------------------------------------------------------------*/
#if !defined(MI_IN_STATIC_C)
#error "huge-pages.c is compiled only as part of 'static.c' (it uses statics of arena.c)"
#endif

#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"
#if defined(__linux__)
#include <sys/mman.h>
#endif

// Between the largest heap where huge pages showed no speed gain (35 MiB)
// and the smallest where they did (160 MiB); see vendor/README.md.
#define MI_THP_THRESHOLD_DEFAULT  (128 * MI_MiB)
#define MI_THP_UNSET              (SIZE_MAX - 1)

static _Atomic(size_t) mi_thp_threshold_bytes = MI_THP_UNSET;
// Arenas reserved unmarked, one bit per arena index, and how many there are
// (so the promote check is one load while there are none).
static _Atomic(size_t) mi_thp_deferred[(MI_MAX_ARENAS + MI_INTPTR_BITS - 1) / MI_INTPTR_BITS];
static _Atomic(size_t) mi_thp_deferred_count;

// The threshold, read once from `GCMALLOC_HUGE_PAGE_THRESHOLD_MIB` unless set.
static size_t mi_thp_threshold(void) {
  size_t t = mi_atomic_load_relaxed(&mi_thp_threshold_bytes);
  if mi_likely(t != MI_THP_UNSET) return t;
  t = MI_THP_THRESHOLD_DEFAULT;
  char buf[64];  // _mi_getenv wants at least 64 bytes
  if (_mi_getenv("GCMALLOC_HUGE_PAGE_THRESHOLD_MIB", buf, sizeof(buf)) == 0) {  // 0: found (an errno otherwise)
    char* end = NULL;
    const long long mib = strtoll(buf, &end, 10);
    if (end != buf && *end == 0 && mib >= 0) {
      t = ((size_t)mib >= SIZE_MAX / MI_MiB ? SIZE_MAX : (size_t)mib * MI_MiB);
    }
    else { _mi_warning_message("GCMALLOC_HUGE_PAGE_THRESHOLD_MIB=%s is not a number of MiB; using the default\n", buf); }
  }
  size_t expected = MI_THP_UNSET;  // a concurrent setter wins
  mi_atomic_cas_strong_acq_rel(&mi_thp_threshold_bytes, &expected, t);
  return mi_atomic_load_relaxed(&mi_thp_threshold_bytes);
}

// Set while this thread reserves an arena unmarked: `prim.c` then skips the
// `madvise(MADV_HUGEPAGE)` it issues on every mapping that THP may back.
static mi_decl_thread bool mi_thp_reserving_unmarked;

bool _mi_thp_deferring(void) {
  return mi_thp_reserving_unmarked;
}

// Whether the arena this thread reserves now should stay unmarked; if so,
// its mappings skip the `madvise` until `_mi_thp_defer_end`.
bool _mi_thp_defer_begin(void) {
  if (!mi_option_is_enabled(mi_option_allow_thp)) return false;
  if (mi_option_is_enabled(mi_option_allow_large_os_pages)) return false;  // explicit large pages: stock
  const size_t threshold = mi_thp_threshold();
  if (threshold == 0 || mi_acct_estimate() >= threshold) return false;
  mi_thp_reserving_unmarked = true;
  return true;
}

// The reservation is done: remembers the arena (if `ok`) to mark it later.
void _mi_thp_defer_end(bool ok, mi_arena_id_t id) {
  mi_thp_reserving_unmarked = false;
  if (!ok) return;
  const size_t idx = mi_arena_id_index(id);
  if (idx >= MI_MAX_ARENAS) return;
  mi_atomic_or_acq_rel(&mi_thp_deferred[idx / MI_INTPTR_BITS], (size_t)1 << (idx % MI_INTPTR_BITS));
  mi_atomic_increment_relaxed(&mi_thp_deferred_count);
}

static void mi_thp_mark(mi_arena_t* arena) {
  #if defined(__linux__) && defined(MADV_HUGEPAGE)
  const size_t size = arena->block_count * MI_ARENA_BLOCK_SIZE;
  if (size % _mi_os_large_page_size() == 0) {
    (void)madvise(mi_atomic_load_ptr_relaxed(uint8_t, &arena->start), size, MADV_HUGEPAGE);
  }
  #else
  MI_UNUSED(arena);
  #endif
}

// On an arena allocation: once the heap is past the threshold, marks the
// arenas reserved unmarked (each by whoever clears its bit).
void _mi_thp_promote_check(void) {
  if mi_likely(mi_atomic_load_relaxed(&mi_thp_deferred_count) == 0) return;
  const size_t threshold = mi_thp_threshold();
  if (threshold == SIZE_MAX || mi_acct_estimate() < threshold) return;
  for (size_t field = 0; field < (MI_MAX_ARENAS + MI_INTPTR_BITS - 1) / MI_INTPTR_BITS; field++) {
    size_t bits = mi_atomic_exchange_acq_rel(&mi_thp_deferred[field], (size_t)0);
    while (bits != 0) {
      const size_t bit = mi_ctz(bits);
      bits &= bits - 1;
      mi_arena_t* arena = mi_arena_from_index(field * MI_INTPTR_BITS + bit);
      if (arena != NULL) { mi_thp_mark(arena); }
      mi_atomic_decrement_relaxed(&mi_thp_deferred_count);
    }
  }
}

mi_decl_export void mi_thp_set_threshold(size_t bytes) mi_attr_noexcept {
  mi_atomic_store_relaxed(&mi_thp_threshold_bytes, (bytes == MI_THP_UNSET ? SIZE_MAX : bytes));
}

mi_decl_export size_t mi_thp_get_threshold(void) mi_attr_noexcept {
  return mi_thp_threshold();
}

mi_decl_export size_t mi_thp_deferred_arenas(void) mi_attr_noexcept {
  return mi_atomic_load_relaxed(&mi_thp_deferred_count);
}
