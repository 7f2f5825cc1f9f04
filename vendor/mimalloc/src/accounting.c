/* ----------------------------------------------------------------------------
gcmalloc: full-page byte accounting.

Every page counts `block_size * capacity` bytes while it is "counted":
- owned by a heap: while it is in the full queue, or always if it is a large or
  huge page (one block, never searched for free blocks). The bytes are added
  to the heap's `acct_full` / `acct_large`, written by the owning thread only,
  and published to the process total in batches of `MI_ACCT_BATCH` bytes;
- abandoned: if it was full (or large/huge) when abandoned. The bytes move to
  the process-wide abandoned total and leave it exactly once: when a thread
  frees a block into the page (`_mi_page_acct_free_abandoned`), or when the
  page is reclaimed (the reclaiming heap re-counts the page when it is full).
The page keeps the bytes it contributes in `page->acct_bytes`, so whatever
moves the page moves exactly what was added for it, and nothing drifts.
Counters change only on page transitions, never on the allocation fast path.
This file is included by `static.c` after `segment.c`.
-----------------------------------------------------------------------------*/
#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"

// A heap publishes its counters' change once it exceeds this many bytes, so
// `mi_acct_estimate` is off by at most `heaps * MI_ACCT_BATCH`.
#define MI_ACCT_BATCH  ((intptr_t)(256 * MI_KiB))

typedef struct mi_acct_s {
  _Atomic(intptr_t)  published;   // sum over heaps of their counters minus `acct_unpublished`
  _Atomic(size_t)    abandoned;   // bytes of counted abandoned pages
  _Atomic(size_t)    heap_count;  // heaps in the `heaps` list
  mi_lock_t          lock;        // protects the `heaps` list
  mi_heap_t*         heaps;
} mi_acct_t;

static mi_decl_cache_align mi_acct_t mi_acct = { MI_ATOMIC_VAR_INIT(0), MI_ATOMIC_VAR_INIT(0), MI_ATOMIC_VAR_INIT(0), MI_LOCK_INITIALIZER, NULL };


/* -----------------------------------------------------------
  Heap counters (owner thread only)
----------------------------------------------------------- */

static void mi_heap_acct_publish(mi_heap_t* heap) {
  if (heap->acct_unpublished == 0) return;
  mi_atomic_addi(&mi_acct.published, heap->acct_unpublished);
  heap->acct_unpublished = 0;
}

static void mi_heap_acct_add(mi_heap_t* heap, bool large, intptr_t delta) {
  _Atomic(size_t)* const counter = (large ? &heap->acct_large : &heap->acct_full);
  mi_atomic_store_relaxed(counter, mi_atomic_load_relaxed(counter) + (size_t)delta);  // single writer
  heap->acct_unpublished += delta;
  if (heap->acct_unpublished > MI_ACCT_BATCH || heap->acct_unpublished < -MI_ACCT_BATCH) {
    mi_heap_acct_publish(heap);
  }
}

// Does `page`, owned by a heap and in one of its queues, count? A page waiting
// for its QSBR goal (src/page-delay.c) is empty: it holds no live data.
static bool mi_page_acct_is_counted(const mi_page_t* page) {
  return (page->qsbr_goal == 0 && (mi_page_is_in_full(page) || mi_page_is_large_or_huge(page)));
}

static size_t mi_page_acct_size(const mi_page_t* page) {
  return mi_page_block_size(page) * page->capacity;
}

// Called by the page queues whenever `page` enters, leaves or changes a queue
// of `heap` (`queued` is false when it leaves): count it in `heap` as it is now.
void _mi_page_acct_requeued(mi_heap_t* heap, mi_page_t* page, bool queued) {
  const size_t due  = (queued && mi_page_acct_is_counted(page) ? mi_page_acct_size(page) : 0);
  const size_t have = mi_atomic_load_relaxed(&page->acct_bytes);
  if (due == have) return;
  mi_assert_internal((have & MI_ACCT_ABANDONED) == 0);  // reclaim took abandoned bytes back
  mi_atomic_store_relaxed(&page->acct_bytes, due);
  mi_heap_acct_add(heap, mi_page_is_large_or_huge(page), (intptr_t)due - (intptr_t)have);
}

// `heap` absorbs all pages of `from` (`mi_heap_absorb`): take its counters.
void _mi_heap_acct_absorb(mi_heap_t* heap, mi_heap_t* from) {
  const size_t full  = mi_atomic_exchange_relaxed(&from->acct_full, (size_t)0);
  const size_t large = mi_atomic_exchange_relaxed(&from->acct_large, (size_t)0);
  from->acct_unpublished -= (intptr_t)(full + large);
  mi_heap_acct_publish(from);
  mi_heap_acct_add(heap, false, (intptr_t)full);
  mi_heap_acct_add(heap, true, (intptr_t)large);
}

// All pages of `heap` were freed without leaving its queues (`mi_heap_destroy`).
void _mi_heap_acct_reset(mi_heap_t* heap) {
  mi_heap_acct_add(heap, false, -(intptr_t)mi_atomic_load_relaxed(&heap->acct_full));
  mi_heap_acct_add(heap, true, -(intptr_t)mi_atomic_load_relaxed(&heap->acct_large));
}


/* -----------------------------------------------------------
  Heap list
----------------------------------------------------------- */

void _mi_heap_acct_register(mi_heap_t* heap) {
  mi_lock(&mi_acct.lock) {
    heap->acct_prev = NULL;
    heap->acct_next = mi_acct.heaps;
    if (mi_acct.heaps != NULL) { mi_acct.heaps->acct_prev = heap; }
    mi_acct.heaps = heap;
  }
  mi_atomic_increment_relaxed(&mi_acct.heap_count);
}

// The heap is about to be freed: it holds no pages any more, and what it has
// not yet published is folded into the process total.
void _mi_heap_acct_unregister(mi_heap_t* heap) {
  mi_assert_internal(mi_atomic_load_relaxed(&heap->acct_full) == 0 && mi_atomic_load_relaxed(&heap->acct_large) == 0);
  mi_heap_acct_publish(heap);
  mi_lock(&mi_acct.lock) {
    if (heap->acct_prev != NULL) { heap->acct_prev->acct_next = heap->acct_next; }
                            else { mi_acct.heaps = heap->acct_next; }
    if (heap->acct_next != NULL) { heap->acct_next->acct_prev = heap->acct_prev; }
  }
  mi_atomic_decrement_relaxed(&mi_acct.heap_count);
}


/* -----------------------------------------------------------
  Abandoned pages
----------------------------------------------------------- */

// Take the page's abandoned bytes out of the abandoned total, if it still has any.
// Called by the reclaiming thread, a thread freeing into the page, or the abandoning
// thread retracting; the CAS lets exactly one of them subtract.
void _mi_page_acct_claim(mi_page_t* page) {
  size_t bytes = mi_atomic_load_relaxed(&page->acct_bytes);
  while ((bytes & MI_ACCT_ABANDONED) != 0) {
    if (mi_atomic_cas_weak_acq_rel(&page->acct_bytes, &bytes, (size_t)0)) {
      mi_atomic_sub_relaxed(&mi_acct.abandoned, bytes & ~MI_ACCT_ABANDONED);
      return;
    }
  }
}

// `page` was just removed from its heap's queues (so uncounted there) and is
// abandoned: move its bytes to the abandoned total if it is full.
void _mi_page_acct_abandon(mi_page_t* page) {
  mi_assert_internal(mi_atomic_load_relaxed(&page->acct_bytes) == 0);
  if (page->qsbr_goal != 0) return;  // empty, waiting for its QSBR goal
  if (page->used != page->reserved && !mi_page_is_large_or_huge(page)) return;
  const size_t bytes = mi_page_acct_size(page);
  mi_atomic_add_relaxed(&mi_acct.abandoned, bytes);
  // Against a concurrent `_mi_page_acct_free_abandoned`: both sides do an
  // acq_rel read-modify-write of `xthread_free`. If ours comes first, the
  // freeing thread's RMW synchronizes with it and its claim sees our bytes;
  // otherwise ours reads its MI_DELAYED_FREEING hold (or the pushed block) and
  // we take the bytes back. The CAS in `_mi_page_acct_claim` picks one of us.
  mi_atomic_store_release(&page->acct_bytes, bytes | MI_ACCT_ABANDONED);
  const mi_thread_free_t tfree = mi_atomic_add_acq_rel(&page->xthread_free, (mi_thread_free_t)0);
  if (mi_tf_block(tfree) != NULL || mi_tf_delayed(tfree) == MI_DELAYED_FREEING) {
    _mi_page_acct_claim(page);  // not full after all
  }
}

// A thread frees `block` into `page`, whose owner abandoned it (the page has
// MI_NEVER_DELAYED_FREE). The page is no longer full: hold the page with
// MI_DELAYED_FREEING (so it cannot be reclaimed, or freed, meanwhile), claim its
// bytes, then push the block and release the hold in one CAS. Returns false
// (and does nothing) if the page is not, or no longer, abandoned.
bool _mi_page_acct_free_abandoned(mi_page_t* page, mi_block_t* block) {
  mi_thread_free_t tfree = mi_atomic_load_relaxed(&page->xthread_free);
  mi_thread_free_t tfreex;
  do {
    if (mi_tf_delayed(tfree) != MI_NEVER_DELAYED_FREE) return false;
    tfreex = mi_tf_set_delayed(tfree, MI_DELAYED_FREEING);
  } while (!mi_atomic_cas_weak_acq_rel(&page->xthread_free, &tfree, tfreex));  // see `_mi_page_acct_abandon`
  _mi_page_acct_claim(page);
  tfree = mi_atomic_load_relaxed(&page->xthread_free);
  do {
    mi_assert_internal(mi_tf_delayed(tfree) == MI_DELAYED_FREEING);
    mi_block_set_next(page, block, mi_tf_block(tfree));
    tfreex = mi_tf_make(block, MI_NEVER_DELAYED_FREE);
  } while (!mi_atomic_cas_weak_release(&page->xthread_free, &tfree, tfreex));
  return true;
}


/* -----------------------------------------------------------
  Queries
----------------------------------------------------------- */

// One page of every small/medium size class: while a heap only allocates, each
// size class has at most one page that is not (yet) in the full queue.
static size_t mi_acct_undercount_per_heap(void) {
  size_t bytes = 0;
  for (size_t bin = 1; bin < MI_BIN_HUGE; bin++) {
    const size_t bsize = _mi_heap_empty.pages[bin].block_size;
    if (bsize <= MI_MEDIUM_OBJ_SIZE_MAX && _mi_bin(bsize) == bin) {  // a size class in use
      bytes += (bsize <= MI_SMALL_OBJ_SIZE_MAX ? MI_SMALL_PAGE_SIZE : MI_MEDIUM_PAGE_SIZE);
    }
  }
  return bytes;
}

size_t mi_acct_estimate(void) mi_attr_noexcept {
  const intptr_t published = mi_atomic_load_relaxed(&mi_acct.published);
  const size_t abandoned = mi_atomic_load_relaxed(&mi_acct.abandoned);
  return (published > 0 ? (size_t)published : 0) + abandoned;
}

void mi_acct_usage(mi_acct_usage_t* usage) mi_attr_noexcept {
  size_t full = 0;
  size_t large = 0;
  _mi_page_delay_abandoned(&usage->delayed_pages, &usage->delayed_bytes);
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      full  += mi_atomic_load_relaxed(&heap->acct_full);
      large += mi_atomic_load_relaxed(&heap->acct_large);
      usage->delayed_pages += mi_atomic_load_relaxed(&heap->delay_pages);  // gcmalloc: type-stable pages
      usage->delayed_bytes += mi_atomic_load_relaxed(&heap->delay_bytes);
    }
  }
  usage->estimate = mi_acct_estimate();
  usage->full_bytes = full;
  usage->large_bytes = large;
  usage->abandoned_bytes = mi_atomic_load_relaxed(&mi_acct.abandoned);
  usage->heaps = mi_atomic_load_relaxed(&mi_acct.heap_count);
  usage->error_bound = usage->heaps * (size_t)MI_ACCT_BATCH;
  usage->undercount_bound = usage->heaps * mi_acct_undercount_per_heap();
}


/* -----------------------------------------------------------
  Audit: recount from the page structures
----------------------------------------------------------- */

static size_t mi_heap_acct_recount(mi_heap_t* heap) {
  size_t bytes = 0;
  for (size_t bin = 0; bin <= MI_BIN_FULL; bin++) {
    for (mi_page_t* page = heap->pages[bin].first; page != NULL; page = page->next) {
      if (mi_page_acct_is_counted(page)) { bytes += mi_page_acct_size(page); }
    }
  }
  return bytes;
}

// An abandoned page counts if it was full at abandonment and no block was freed into it since.
static size_t mi_segment_acct_recount_abandoned(mi_segment_t* segment) {
  size_t bytes = 0;
  const mi_slice_t* end;
  mi_slice_t* slice = mi_slices_start_iterate(segment, &end);
  while (slice < end) {
    if (mi_slice_is_used(slice)) {
      const mi_page_t* const page = mi_slice_to_page(slice);
      if (page->qsbr_goal == 0 && mi_page_thread_free(page) == NULL && (page->used == page->reserved || mi_page_is_large_or_huge(page))) {
        bytes += mi_page_acct_size(page);
      }
    }
    slice = slice + slice->slice_count;
  }
  return bytes;
}

void mi_acct_audit(size_t* counted, size_t* recounted) mi_attr_noexcept {
  size_t count = mi_atomic_load_relaxed(&mi_acct.abandoned);
  size_t recount = 0;
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      count += mi_atomic_load_relaxed(&heap->acct_full) + mi_atomic_load_relaxed(&heap->acct_large);
      recount += mi_heap_acct_recount(heap);
    }
  }
  mi_arena_field_cursor_t cursor;
  _mi_arena_field_cursor_init(NULL, _mi_subproc_from_id(mi_subproc_main()), true /* visit all */, &cursor);
  mi_segment_t* segment;
  while ((segment = _mi_arena_segment_clear_abandoned_next(&cursor)) != NULL) {
    recount += mi_segment_acct_recount_abandoned(segment);
    _mi_arena_segment_mark_abandoned(segment);
  }
  _mi_arena_field_cursor_done(&cursor);
  *counted = count;
  *recounted = recount;
}
