/* ----------------------------------------------------------------------------
gcmalloc: heaps per purpose ("GC heaps").

A GC heap is a process-wide purpose, named by a mimalloc heap tag (1..255;
tag 0 is the default heaps of the global allocator). Each thread allocates
from its own mimalloc heap carrying the tag (`mi_heap_new_ex`), created on its
first allocation and found through a thread-local array indexed by the tag;
any thread frees with `mi_free`. At thread exit mimalloc deletes the thread's
tagged heaps, and as their tag differs from the backing heap's it abandons
their pages instead of absorbing them (`mi_heap_delete`).

Invariants
- A page of tag T is owned by a heap of tag T or abandoned. mimalloc reclaims
  an abandoned segment page by page into the reclaiming thread's heap of the
  page's tag, and into the calling heap (with an error message) when the
  thread has none: so a thread reclaims a segment only if it has a heap for
  the tag of every page in use in it (`_mi_segment_tags_reclaimable`).
- `mi_gc_heaps[T]` of a thread is its heap of tag T or the empty heap; a
  heap that is freed resets its entry first (`_mi_gc_heap_forget`), so a
  thread that allocates after mimalloc's thread-exit code ran gets a fresh
  heap.
- A tag is handed out once per process: a GC heap dropped with live blocks
  leaves them in pages of its tag, and a later GC heap of the same tag would
  count and walk them as its own.

Figures: every heap publishes its counter changes (accounting.c) to the
process total and to its tag's total, and abandoned pages count in their
tag's abandoned total too, so a tag's estimate is two loads, like the
process-wide one. This file is included by `static.c` after accounting.c.
-----------------------------------------------------------------------------*/
#if !defined(MI_IN_STATIC_C)
#error "gc-heap.c is compiled only as part of 'static.c' (it uses statics of accounting.c and segment.c)"
#endif

#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"

#define MI_GC_TAGS  256

// Per-tag figures, one cache line each: written at heap publications and by
// frees into abandoned pages, read by `mi_gc_heap_estimate` (and by Rust).
mi_acct_figure_t mi_gc_tag_figure[MI_GC_TAGS];

// 0: free, 1: in use by a GC heap, 2: dropped (never handed out again).
static _Atomic(uint8_t) mi_gc_tag_state[MI_GC_TAGS];

// Until a thread allocates from a tag, its entry for it is mimalloc's empty
// heap (`_mi_heap_empty`, what an uninitialized thread allocates from), whose
// every small size class is empty: an allocation from it goes to
// `_mi_malloc_generic`, which takes it for an uninitialized thread and asks
// `_mi_gc_heap_first_use_or_default` which heap to use. The allocation path
// then has no null check (it costs what `mi_malloc` costs), and mimalloc's
// generic path no check of its own.
#define MI_GC_EMPTY   ((mi_heap_t*)&_mi_heap_empty)
#define MI_GC_P1(i)   MI_GC_EMPTY
#define MI_GC_P8(i)   MI_GC_P1(i), MI_GC_P1(i), MI_GC_P1(i), MI_GC_P1(i), MI_GC_P1(i), MI_GC_P1(i), MI_GC_P1(i), MI_GC_P1(i)
#define MI_GC_P64(i)  MI_GC_P8(i), MI_GC_P8(i), MI_GC_P8(i), MI_GC_P8(i), MI_GC_P8(i), MI_GC_P8(i), MI_GC_P8(i), MI_GC_P8(i)

// Per thread: its heap of each tag, or the empty heap (slot 0 unused); and
// the tag of its current small allocation from a GC heap, so that
// `_mi_gc_heap_first_use_or_default` tells it from an uninitialized thread's
// allocation. Invariant: `last_tag` is 0 or names a tag whose entry is a
// heap, except between the store in `mi_gc_heap_malloc` and that
// allocation's call into the generic path. One variable, so that the
// allocation path computes its thread-local address once.
typedef struct mi_gc_thread_s {
  size_t     last_tag;
  mi_heap_t* heaps[MI_GC_TAGS];
} mi_gc_thread_t;

static mi_decl_thread mi_gc_thread_t mi_gc_thread = { 0, { MI_GC_P64(0), MI_GC_P64(0), MI_GC_P64(0), MI_GC_P64(0) } };
_Static_assert(MI_GC_TAGS == 4 * 64, "one empty-heap entry per tag");
#define mi_gc_heaps  mi_gc_thread.heaps


/* -----------------------------------------------------------
  Tags
----------------------------------------------------------- */

// A fresh tag for a GC heap, or 0 when all 255 were handed out.
uint8_t mi_gc_heap_tag_new(void) mi_attr_noexcept {
  for (size_t tag = 1; tag < MI_GC_TAGS; tag++) {
    uint8_t expected = 0;
    // Relaxed: only the tag number is handed over.
    if (mi_atomic_cas_strong(&mi_gc_tag_state[tag], &expected, (uint8_t)1, mi_memory_order(relaxed), mi_memory_order(relaxed))) return (uint8_t)tag;
  }
  return 0;
}

// The GC heap of `tag` is dropped. The threads' heaps of the tag stay until
// their thread exits: deleting one now would abandon its pages inside
// segments its thread still owns, and a later free by that thread takes the
// local path into a page without a heap. The calling thread's heap releases
// its empty pages (as their QSBR goals allow).
void mi_gc_heap_tag_drop(uint8_t tag) mi_attr_noexcept {
  if (tag == 0) return;
  mi_atomic_store_relaxed(&mi_gc_tag_state[tag], (uint8_t)2);
  mi_heap_t* const heap = mi_gc_heaps[tag];
  if (heap != MI_GC_EMPTY) { mi_heap_collect(heap, true); }
}


/* -----------------------------------------------------------
  The calling thread's heap of a tag
----------------------------------------------------------- */

static mi_decl_noinline mi_heap_t* mi_gc_heap_create(size_t tag) {
  mi_heap_t* const heap = mi_heap_new_ex((int)tag, false /* may reclaim */, _mi_arena_id_none());
  if (heap != NULL) { mi_gc_heaps[tag] = heap; }
  return heap;
}

static inline mi_heap_t* mi_gc_heap_of(size_t tag) {
  mi_heap_t* const heap = mi_gc_heaps[tag];
  if mi_likely(heap != MI_GC_EMPTY) return heap;
  return mi_gc_heap_create(tag);
}

static inline bool mi_gc_heap_exists(size_t tag) {
  return (mi_gc_heaps[tag] != MI_GC_EMPTY);
}

// `heap` is about to be freed (`mi_heap_free`). `last_tag` may have named
// its tag: cleared, so that an uninitialized thread's next allocation (after
// mimalloc's thread-exit code ran) is not taken for a first use of the tag.
void _mi_gc_heap_forget(mi_heap_t* heap) {
  if (heap->tag != 0 && mi_gc_heaps[heap->tag] == heap) { mi_gc_heaps[heap->tag] = MI_GC_EMPTY; }
  mi_gc_thread.last_tag = 0;
}

// `_mi_malloc_generic` was called with an uninitialized heap: the calling
// thread's first small allocation from the GC heap of `last_tag` if its entry
// is still the empty heap (see the invariant above), else an allocation from
// the thread's default heap (mimalloc initializes the thread).
mi_heap_t* _mi_gc_heap_first_use_or_default(void) {
  const size_t tag = mi_gc_thread.last_tag;
  if (tag == 0 || mi_gc_heaps[tag] != MI_GC_EMPTY) return mi_heap_get_default();
  mi_heap_t* const heap = mi_gc_heap_create(tag);
  if (heap != NULL) return heap;
  mi_gc_thread.last_tag = 0;  // out of memory: keep the invariant
  return MI_GC_EMPTY;         // the caller returns NULL
}

// Out of line, so that the allocation path below keeps no stack frame.
static mi_decl_noinline void* mi_gc_heap_malloc_first(size_t tag, size_t size) {
  mi_heap_t* const heap = mi_gc_heap_create(tag);
  return (heap != NULL ? mi_heap_malloc(heap, size) : NULL);
}

// `tag` is a `size_t` (always below 256), so that it indexes the array as it
// comes: a `uint8_t` would be zero-extended first. A small allocation may
// use the empty heap (see above); larger ones never do, as mimalloc's
// statistics would take it for a heap.
void* mi_gc_heap_malloc(size_t tag, size_t size) mi_attr_noexcept {
  if mi_likely(size <= MI_SMALL_SIZE_MAX) {
    mi_gc_thread.last_tag = tag;
    return mi_heap_malloc_small(mi_gc_heaps[tag], size);
  }
  mi_heap_t* const heap = mi_gc_heaps[tag];
  if mi_unlikely(heap == MI_GC_EMPTY) return mi_gc_heap_malloc_first(tag, size);
  return mi_heap_malloc(heap, size);
}

void* mi_gc_heap_zalloc(size_t tag, size_t size) mi_attr_noexcept {
  mi_heap_t* const heap = mi_gc_heap_of(tag);
  return (heap != NULL ? mi_heap_zalloc(heap, size) : NULL);
}

void* mi_gc_heap_malloc_aligned(size_t tag, size_t size, size_t alignment) mi_attr_noexcept {
  mi_heap_t* const heap = mi_gc_heap_of(tag);
  return (heap != NULL ? mi_heap_malloc_aligned(heap, size, alignment) : NULL);
}

void* mi_gc_heap_zalloc_aligned(size_t tag, size_t size, size_t alignment) mi_attr_noexcept {
  mi_heap_t* const heap = mi_gc_heap_of(tag);
  return (heap != NULL ? mi_heap_zalloc_aligned(heap, size, alignment) : NULL);
}

void* mi_gc_heap_realloc_aligned(size_t tag, void* p, size_t newsize, size_t alignment) mi_attr_noexcept {
  mi_heap_t* const heap = mi_gc_heap_of(tag);
  return (heap != NULL ? mi_heap_realloc_aligned(heap, p, newsize, alignment) : NULL);
}


/* -----------------------------------------------------------
  Reclaim only into a heap of the same tag
----------------------------------------------------------- */

// True if the calling thread (`heap` is one of its heaps) has a heap for the
// tag of every page in use in `segment`, which it owns (claimed from the
// abandoned ones). Tag 0 pages go to the backing heap, which always exists.
bool _mi_segment_tags_reclaimable(const mi_segment_t* segment, const mi_heap_t* heap) {
  const mi_slice_t* end;
  mi_slice_t* slice = mi_slices_start_iterate((mi_segment_t*)segment, &end);
  while (slice < end) {
    if (mi_slice_is_used(slice)) {
      const uint8_t tag = mi_slice_to_page(slice)->heap_tag;
      if (tag != 0 && tag != heap->tag && !mi_gc_heap_exists(tag)) return false;
    }
    slice = slice + slice->slice_count;
  }
  return true;
}


/* -----------------------------------------------------------
  Per-tag figures
----------------------------------------------------------- */

void _mi_gc_tag_acct_published(uint8_t tag, intptr_t delta) {
  mi_atomic_addi(&mi_gc_tag_figure[tag].published, delta);
}

void _mi_gc_tag_acct_abandoned(uint8_t tag, intptr_t delta) {
  mi_atomic_addi(&mi_gc_tag_figure[tag].abandoned, delta);
}

size_t mi_gc_heap_estimate(uint8_t tag) mi_attr_noexcept {
  const intptr_t published = mi_atomic_load_relaxed(&mi_gc_tag_figure[tag].published);
  const intptr_t abandoned = mi_atomic_load_relaxed(&mi_gc_tag_figure[tag].abandoned);
  const intptr_t sum = published + abandoned;
  return (sum > 0 ? (size_t)sum : 0);
}

// Refresh the calling thread's heap of `tag` (`all`: every heap of the tag,
// whose owners must be stopped; see `mi_acct_refresh`).
void mi_gc_heap_refresh(uint8_t tag, bool all) mi_attr_noexcept {
  if (tag == 0) return;
  if (!all) {
    if (mi_gc_heap_exists(tag)) { mi_acct_refresh(mi_gc_heaps[tag]); }
    return;
  }
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      if (heap->tag == tag) { mi_acct_refresh(heap); }
    }
  }
}

void mi_gc_heap_usage(uint8_t tag, mi_acct_usage_t* usage) mi_attr_noexcept {
  size_t small = 0, large = 0, heaps = 0, delayed_pages = 0, delayed_bytes = 0;
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      if (heap->tag != tag) continue;
      heaps++;
      small += mi_atomic_load_relaxed(&heap->acct_small);
      large += mi_atomic_load_relaxed(&heap->acct_large);
      delayed_pages += mi_atomic_load_relaxed(&heap->delay_pages);
      delayed_bytes += mi_atomic_load_relaxed(&heap->delay_bytes);
    }
  }
  const intptr_t abandoned = mi_atomic_load_relaxed(&mi_gc_tag_figure[tag].abandoned);
  usage->estimate = mi_gc_heap_estimate(tag);
  usage->small_bytes = small;
  usage->large_bytes = large;
  usage->abandoned_bytes = (abandoned > 0 ? (size_t)abandoned : 0);
  usage->heaps = heaps;
  usage->error_bound = heaps * (size_t)MI_ACCT_BATCH;
  usage->undercount_bound = heaps * mi_acct_undercount_per_heap();
  usage->delayed_pages = delayed_pages;
  usage->delayed_bytes = delayed_bytes;
}

void mi_gc_heap_audit(uint8_t tag, mi_acct_audit_t* audit) mi_attr_noexcept {
  mi_acct_tally_t tally = { 0, 0, 0 };
  intptr_t count = mi_atomic_load_relaxed(&mi_gc_tag_figure[tag].abandoned);
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      if (heap->tag != tag) continue;
      count += (intptr_t)(mi_atomic_load_relaxed(&heap->acct_small) + mi_atomic_load_relaxed(&heap->acct_large));
      mi_heap_acct_recount(heap, &tally);
    }
  }
  mi_acct_recount_abandoned(tag, &tally);
  audit->counted = (count > 0 ? (size_t)count : 0);
  audit->carried = tally.carried;
  audit->recounted = tally.recounted;
  audit->exit_race = tally.exit_race;
}


/* -----------------------------------------------------------
  Heap walk (the owners of the heaps of the tag are stopped)
----------------------------------------------------------- */

typedef struct mi_gc_visit_s {
  mi_gc_block_fun* fun;
  void*            arg;
} mi_gc_visit_t;

static bool mi_cdecl mi_gc_visit_block(const mi_heap_t* heap, const mi_heap_area_t* area, void* block, size_t block_size, void* arg) {
  MI_UNUSED(heap); MI_UNUSED(area);
  if (block == NULL) return true;  // the area itself
  const mi_gc_visit_t* const visit = (const mi_gc_visit_t*)arg;
  return visit->fun(block, block_size, visit->arg);
}

// Blocks freed by other threads into the full pages of a heap wait in its
// delayed-free list, still counted as used by their pages, until the owner
// processes them. A walk by another thread takes the list and pushes each
// block on its page's thread-free list, as a free into a page that does not
// use the delayed-free list would: the walk's collection of the page then
// sees it free, and the owner finds it there as after any such free.
static void mi_gc_heap_reroute_delayed(mi_heap_t* heap) {
  mi_block_t* block = mi_atomic_exchange_ptr_acq_rel(mi_block_t, &heap->thread_delayed_free, NULL);
  while (block != NULL) {
    mi_block_t* const next = mi_block_nextx(heap, block, heap->keys);
    mi_page_t* const page = _mi_ptr_page(block);
    mi_thread_free_t tfree = mi_atomic_load_relaxed(&page->xthread_free);
    mi_thread_free_t tfreex;
    do {
      mi_block_set_next(page, block, mi_tf_block(tfree));
      tfreex = mi_tf_set_block(tfree, block);
    } while (!mi_atomic_cas_weak_release(&page->xthread_free, &tfree, tfreex));
    block = next;
  }
}

// After a walk collected the free lists of a heap's full pages, those with
// free blocks go back to their size class's queue, as the owner's next
// collection would move them (no free into them would notify it otherwise).
static void mi_gc_heap_unfull_collected(mi_heap_t* heap) {
  mi_page_t* page = heap->pages[MI_BIN_FULL].first;
  while (page != NULL) {
    mi_page_t* const next = page->next;
    if (mi_page_immediate_available(page)) { _mi_page_unfull(page); }
    page = next;
  }
}

bool mi_gc_heap_visit_blocks(uint8_t tag, mi_gc_block_fun* fun, void* arg) mi_attr_noexcept {
  if (tag == 0 || fun == NULL) return false;
  mi_gc_visit_t visit = { fun, arg };
  bool ok = true;
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; ok && heap != NULL; heap = heap->acct_next) {
      if (heap->tag != tag) continue;
      mi_gc_heap_reroute_delayed(heap);
      ok = mi_heap_visit_blocks(heap, true, &mi_gc_visit_block, &visit);
      mi_gc_heap_unfull_collected(heap);
    }
  }
  if (ok) { ok = mi_abandoned_visit_blocks(mi_subproc_main(), tag, true, &mi_gc_visit_block, &visit); }
  return ok;
}


/* -----------------------------------------------------------
  For tests: who owns the page of a block
----------------------------------------------------------- */

// The tag of the page of `p` (low byte) and the tag of the heap owning the
// page (next byte), or -1 in the next byte if the page is abandoned.
int mi_gc_block_owner(const void* p) mi_attr_noexcept {
  const mi_page_t* const page = _mi_ptr_page((void*)p);
  const mi_heap_t* const heap = mi_page_heap(page);
  return (int)page->heap_tag | (heap == NULL ? -256 : ((int)heap->tag << 8));
}
