/* ----------------------------------------------------------------------------
gcmalloc: live-bytes accounting.

Every page carries in `page->acct_bytes` the bytes it adds to the accounting:
- owned by a heap, small or medium: `used * block_size` as of the page's last
  *sync*, which happens only on slow paths (queue moves: fresh, to-full,
  unfull, retire and free; the find-free walk; heap collection; abandon and
  reclaim; `mi_acct_refresh`), never on the allocation or free fast path;
- owned by a heap, large or huge (one block): `block_size * capacity` from its
  allocation until its block is freed (0 while it waits for a QSBR goal);
- abandoned (`MI_ACCT_ABANDONED` set): `used * block_size` at abandonment,
  less one block for every block another thread frees into it since; the rest
  leaves when the page is reclaimed or cleared.
Heaps sum their pages into `acct_small` / `acct_large`, written by the owning
thread only and published to the process total in batches of `MI_ACCT_BATCH`;
abandoned pages sum into one process-wide total. Whatever moves a page moves
exactly the bytes it carries, so nothing drifts: at any quiescent moment the
counters equal the sum of `acct_bytes` (`carried` in `mi_acct_audit`).
What the figure misses: allocations (undercount) and frees (overcount) on the
fast path since a page's last sync, so `mi_acct_refresh` syncs every page of
a heap after a collection and the figure is then exact.
This file is included by `static.c` after `segment.c`.
-----------------------------------------------------------------------------*/
#if !defined(MI_IN_STATIC_C)
#error "accounting.c is compiled only as part of 'static.c' (it uses statics of page-queue.c and segment.c)"
#endif

#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"

// A heap publishes its counters' change once it exceeds this many bytes, so
// `mi_acct_estimate` is off by at most `heaps * MI_ACCT_BATCH`.
#define MI_ACCT_BATCH  ((intptr_t)(256 * MI_KiB))

// `published`: the sum over heaps of their counters minus `acct_unpublished`.
mi_acct_figure_t mi_acct_figure = { MI_ATOMIC_VAR_INIT(0), MI_ATOMIC_VAR_INIT(0) };

typedef struct mi_acct_s {
  _Atomic(size_t)    heap_count;  // heaps in the `heaps` list
  mi_lock_t          lock;        // protects the `heaps` list
  mi_heap_t*         heaps;
} mi_acct_t;

static mi_decl_cache_align mi_acct_t mi_acct = { MI_ATOMIC_VAR_INIT(0), MI_LOCK_INITIALIZER, NULL };


/* -----------------------------------------------------------
  Heap counters (owner thread only)
----------------------------------------------------------- */

static void mi_heap_acct_publish(mi_heap_t* heap) {
  if (heap->acct_unpublished == 0) return;
  mi_atomic_addi(&mi_acct_figure.published, heap->acct_unpublished);
  _mi_gc_tag_acct_published(heap->tag, heap->acct_unpublished);  // and to its tag's total (gc-heap.c)
  heap->acct_unpublished = 0;
}

static void mi_heap_acct_add(mi_heap_t* heap, bool large, intptr_t delta) {
  _Atomic(size_t)* const counter = (large ? &heap->acct_large : &heap->acct_small);
  mi_atomic_store_relaxed(counter, mi_atomic_load_relaxed(counter) + (size_t)delta);  // single writer
  heap->acct_unpublished += delta;
  if (heap->acct_unpublished > MI_ACCT_BATCH || heap->acct_unpublished < -MI_ACCT_BATCH) {
    mi_heap_acct_publish(heap);
  }
}

// The bytes a page owned by a heap should carry (`queued`: in one of its queues).
// A large/huge page never serves another block while it waits for its QSBR
// goal (page-delay.c), so a pending one holds no live data; a pending
// small/medium page may be reused by the fast path, and its `used` says so.
static size_t mi_page_acct_due(const mi_page_t* page, bool queued) {
  if (!queued) return 0;
  if (mi_page_is_large_or_huge(page)) {
    return (page->goal_tag == 0 ? mi_page_block_size(page) * page->capacity : 0);
  }
  return mi_page_block_size(page) * page->used;
}

// Sync `page` with its heap: called by the page queues whenever the page enters,
// leaves or changes a queue of `heap` (`queued` is false when it leaves), and
// by the slow paths that collect its free lists.
void _mi_page_acct_requeued(mi_heap_t* heap, mi_page_t* page, bool queued) {
  const size_t due  = mi_page_acct_due(page, queued);
  const size_t have = mi_atomic_load_relaxed(&page->acct_bytes);
  if (due == have) return;
  mi_assert_internal((have & MI_ACCT_ABANDONED) == 0);  // reclaim took abandoned bytes back
  mi_atomic_store_relaxed(&page->acct_bytes, due);
  mi_heap_acct_add(heap, mi_page_is_large_or_huge(page), (intptr_t)due - (intptr_t)have);
}

// `heap` absorbs all pages of `from` (`mi_heap_absorb`): take its counters.
void _mi_heap_acct_absorb(mi_heap_t* heap, mi_heap_t* from) {
  const size_t small = mi_atomic_exchange_relaxed(&from->acct_small, (size_t)0);
  const size_t large = mi_atomic_exchange_relaxed(&from->acct_large, (size_t)0);
  from->acct_unpublished -= (intptr_t)(small + large);
  mi_heap_acct_publish(from);
  mi_heap_acct_add(heap, false, (intptr_t)small);
  mi_heap_acct_add(heap, true, (intptr_t)large);
}

// All pages of `heap` were freed without leaving its queues (`mi_heap_destroy`).
void _mi_heap_acct_reset(mi_heap_t* heap) {
  mi_heap_acct_add(heap, false, -(intptr_t)mi_atomic_load_relaxed(&heap->acct_small));
  mi_heap_acct_add(heap, true, -(intptr_t)mi_atomic_load_relaxed(&heap->acct_large));
}


/* -----------------------------------------------------------
  Heap list
----------------------------------------------------------- */

// The heap list's lock across fork(), and mimalloc's locks of the walks of
// abandoned segments (each arena's, then the OS list's visit lock and list
// lock, in the order a walk takes them): taken by the forking thread before
// the fork and released after it in parent and child, so a child never
// inherits one held by a thread that it does not have. Else its first heap
// (a new thread's, a GC heap's) waits for the heap list forever, and so does
// a walk of abandoned pages (`GcHeap::visit_blocks`, `audit`) for a walk or
// reclaim that was in flight. Installed with the first heap, so before the
// Rust runtime's handlers: those run first at a fork (fork handlers run in
// reverse order) and these locks are taken after the runtime's.
#if !defined(_WIN32)
#include <pthread.h>

static size_t mi_acct_fork_arenas;  // the arenas whose lock the prepare took

static void mi_acct_fork_prepare(void) {
  mi_lock_acquire(&mi_acct.lock);
  mi_acct_fork_arenas = mi_arena_get_count();
  for (size_t i = 0; i < mi_acct_fork_arenas; i++) {
    mi_lock_acquire(&mi_arena_from_index(i)->abandoned_visit_lock);
  }
  mi_lock_acquire(&_mi_subproc_from_id(mi_subproc_main())->abandoned_os_visit_lock);
  mi_lock_acquire(&_mi_subproc_from_id(mi_subproc_main())->abandoned_os_lock);
}

static void mi_acct_fork_release(void) {
  mi_lock_release(&_mi_subproc_from_id(mi_subproc_main())->abandoned_os_lock);
  mi_lock_release(&_mi_subproc_from_id(mi_subproc_main())->abandoned_os_visit_lock);
  for (size_t i = mi_acct_fork_arenas; i > 0; i--) {
    mi_lock_release(&mi_arena_from_index(i - 1)->abandoned_visit_lock);
  }
  mi_lock_release(&mi_acct.lock);
}

static void mi_acct_fork_install(void) {
  static _Atomic(uintptr_t) installed;  // 0, then 1 once a thread installs them
  uintptr_t expected = 0;
  // Relaxed: the CAS only elects the installing thread.
  if mi_likely(mi_atomic_load_relaxed(&installed) != 0) return;
  if (!mi_atomic_cas_strong(&installed, &expected, 1, mi_memory_order(relaxed), mi_memory_order(relaxed))) return;
  if (pthread_atfork(&mi_acct_fork_prepare, &mi_acct_fork_release, &mi_acct_fork_release) != 0) {
    _mi_warning_message("gcmalloc: pthread_atfork failed; a forked child may find the heap list locked\n");
  }
}
#else
static void mi_acct_fork_install(void) {}  // no fork()
#endif

// The lock is taken at every thread start and exit, for a few pointer writes:
// under thread churn (2 threads creating 100k short threads,
// scripts/thread-churn.sh) it does not show beside thread creation (40-57 us
// per thread with it, 40-53 without, same run), so `mi_acct_usage` and
// `mi_acct_audit` keep a plain list to walk.
void _mi_heap_acct_register(mi_heap_t* heap) {
  mi_acct_fork_install();
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
  mi_assert_internal(mi_atomic_load_relaxed(&heap->acct_small) == 0 && mi_atomic_load_relaxed(&heap->acct_large) == 0);
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

// Take what is left of the page's abandoned bytes out of the abandoned total.
// Called by the thread reclaiming or clearing the page; the CAS (against
// `_mi_page_acct_free_abandoned`) lets every byte leave exactly once.
void _mi_page_acct_claim(mi_page_t* page) {
  size_t bytes = mi_atomic_load_relaxed(&page->acct_bytes);
  while ((bytes & MI_ACCT_ABANDONED) != 0) {
    if (mi_atomic_cas_weak_acq_rel(&page->acct_bytes, &bytes, (size_t)0)) {
      mi_atomic_sub_relaxed(&mi_acct_figure.abandoned, (intptr_t)(bytes & ~MI_ACCT_ABANDONED));
      _mi_gc_tag_acct_abandoned(page->heap_tag, -(intptr_t)(bytes & ~MI_ACCT_ABANDONED));
      return;
    }
  }
}

// `page` was just removed from its heap's queues (so uncounted there) and is
// abandoned: its live bytes move to the abandoned total.
void _mi_page_acct_abandon(mi_page_t* page) {
  mi_assert_internal(mi_atomic_load_relaxed(&page->acct_bytes) == 0);
  const size_t bytes = mi_page_block_size(page) * page->used;
  if (bytes == 0) return;
  mi_atomic_add_relaxed(&mi_acct_figure.abandoned, (intptr_t)bytes);
  _mi_gc_tag_acct_abandoned(page->heap_tag, (intptr_t)bytes);
  // A block freed into the page by another thread after the owner's last
  // collect and before this store is neither subtracted nor out of `used`:
  // counted until the page is reclaimed or its segment cleared (a race at
  // thread exit only). Bound: such a block was live at the collect, so the
  // excess is part of `bytes`, never more (measured under thread churn: at
  // most 3.5 KiB of ~130 KiB abandoned; `exit_race` in `mi_acct_audit`).
  // Exact would need a count of the page's thread-free list that races the
  // same frees; not worth it.
  mi_atomic_store_release(&page->acct_bytes, bytes | MI_ACCT_ABANDONED);
}

// A thread frees a block into `page`, whose owner abandoned it (the page has
// MI_NEVER_DELAYED_FREE): one block leaves the abandoned total. The caller
// then pushes the block as usual; nothing is held meanwhile. Never more than
// the page carries: a block freed in the abandon race above was not counted.
void _mi_page_acct_free_abandoned(mi_page_t* page) {
  const size_t bsize = mi_page_block_size(page);
  size_t bytes = mi_atomic_load_acquire(&page->acct_bytes);
  while ((bytes & MI_ACCT_ABANDONED) != 0 && (bytes & ~MI_ACCT_ABANDONED) >= bsize) {
    if (mi_atomic_cas_weak_acq_rel(&page->acct_bytes, &bytes, bytes - bsize)) {
      mi_atomic_sub_relaxed(&mi_acct_figure.abandoned, (intptr_t)bsize);
      _mi_gc_tag_acct_abandoned(page->heap_tag, -(intptr_t)bsize);
      return;
    }
  }
}


/* -----------------------------------------------------------
  Refresh: sync every page of a heap
----------------------------------------------------------- */

// Blocks freed by other threads into full pages wait in the heap's delayed-free
// list until its owner processes them, still in `used`: a non-owner refresh
// subtracts them from their pages. Only the owner pops the list, so the chain
// below a snapshot of its head is stable while the owner is stopped.
static void mi_heap_acct_uncount_delayed(mi_heap_t* heap) {
  mi_block_t* block = mi_atomic_load_ptr_acquire(mi_block_t, &heap->thread_delayed_free);
  for (; block != NULL; block = mi_block_nextx(heap, block, heap->keys)) {
    mi_page_t* const page = _mi_ptr_page(block);
    const size_t bsize = mi_page_block_size(page);
    const size_t have = mi_atomic_load_relaxed(&page->acct_bytes);
    if (mi_page_is_large_or_huge(page) || have < bsize) continue;
    mi_atomic_store_relaxed(&page->acct_bytes, have - bsize);
    mi_heap_acct_add(heap, false, -(intptr_t)bsize);
  }
}

// Collect the free lists of every page of `heap` and sync it, then publish:
// the heap's counters are then `Σ used * block_size` of its pages. The owner
// processes mimalloc's delayed-free list first. Another thread may refresh the heap only
// while its owner is stopped at a point where it touches no heap (gcmalloc's
// stop-the-world safepoint), with that stop ordering the two.
void mi_acct_refresh(mi_heap_t* heap) mi_attr_noexcept {
  if (heap == NULL) { heap = mi_prim_get_default_heap(); }
  if (heap == NULL || !mi_heap_is_initialized(heap)) return;
  const bool owner = (heap->thread_id == _mi_thread_id());
  if (owner) { _mi_heap_delayed_free_all(heap); }
  for (size_t bin = 0; bin <= MI_BIN_FULL; bin++) {
    for (mi_page_t* page = heap->pages[bin].first; page != NULL; page = page->next) {
      _mi_page_free_collect(page, false);
      _mi_page_acct_requeued(heap, page, true);
    }
  }
  if (!owner) { mi_heap_acct_uncount_delayed(heap); }
  mi_heap_acct_publish(heap);
}

// Refresh every heap of the thread that owns `heap` (NULL: the calling
// thread): its default heap and its GC heaps, all on its `tld->heaps` list.
// The list and the heaps are the owner's: another thread may walk them only
// while the owner is stopped, as for `mi_acct_refresh`.
void mi_acct_refresh_thread(mi_heap_t* heap) mi_attr_noexcept {
  if (heap == NULL) { heap = mi_prim_get_default_heap(); }
  if (heap == NULL || !mi_heap_is_initialized(heap)) return;
  for (mi_heap_t* curr = heap->tld->heaps; curr != NULL; curr = curr->next) {
    mi_acct_refresh(curr);
  }
}

// One heap's share of the estimate: what its pages carry (as of their last
// sync), published or not. Two relaxed loads of owner-written counters, so
// any thread may read any live heap's figure.
size_t mi_acct_heap_bytes(const mi_heap_t* heap) mi_attr_noexcept {
  if (heap == NULL) { heap = mi_prim_get_default_heap(); }
  if (heap == NULL || !mi_heap_is_initialized((mi_heap_t*)heap)) return 0;
  return mi_atomic_load_relaxed(&((mi_heap_t*)heap)->acct_small) + mi_atomic_load_relaxed(&((mi_heap_t*)heap)->acct_large);
}


/* -----------------------------------------------------------
  Queries
----------------------------------------------------------- */

// One page of every small/medium size class: each size class has at most one
// page that the fast path allocates from between two syncs.
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
  const intptr_t published = mi_atomic_load_relaxed(&mi_acct_figure.published);
  const intptr_t abandoned = mi_atomic_load_relaxed(&mi_acct_figure.abandoned);
  return (published > 0 ? (size_t)published : 0) + (size_t)abandoned;
}

void mi_acct_usage(mi_acct_usage_t* usage) mi_attr_noexcept {
  size_t small = 0;
  size_t large = 0;
  _mi_page_delay_abandoned(&usage->delayed_pages, &usage->delayed_bytes);
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      small += mi_atomic_load_relaxed(&heap->acct_small);
      large += mi_atomic_load_relaxed(&heap->acct_large);
      usage->delayed_pages += mi_atomic_load_relaxed(&heap->delay_pages);  // gcmalloc: type-stable pages
      usage->delayed_bytes += mi_atomic_load_relaxed(&heap->delay_bytes);
    }
  }
  usage->estimate = mi_acct_estimate();
  usage->small_bytes = small;
  usage->large_bytes = large;
  usage->abandoned_bytes = (size_t)mi_atomic_load_relaxed(&mi_acct_figure.abandoned);
  usage->heaps = mi_atomic_load_relaxed(&mi_acct.heap_count);
  usage->error_bound = usage->heaps * (size_t)MI_ACCT_BATCH;
  usage->undercount_bound = usage->heaps * mi_acct_undercount_per_heap();
}


/* -----------------------------------------------------------
  Audit: recount from the page structures
----------------------------------------------------------- */

typedef struct mi_acct_tally_s {
  size_t carried;    // Σ acct_bytes
  size_t recounted;  // Σ live bytes by the page structures
  size_t exit_race;  // Σ over abandoned pages of what they carry beyond their live bytes
} mi_acct_tally_t;

static void mi_heap_acct_recount(mi_heap_t* heap, mi_acct_tally_t* tally) {
  for (size_t bin = 0; bin <= MI_BIN_FULL; bin++) {
    for (mi_page_t* page = heap->pages[bin].first; page != NULL; page = page->next) {
      tally->carried   += mi_atomic_load_relaxed(&page->acct_bytes);
      tally->recounted += mi_page_acct_due(page, true);
    }
  }
}

static size_t mi_page_thread_free_count(const mi_page_t* page) {
  size_t count = 0;
  for (mi_block_t* block = mi_page_thread_free(page); block != NULL; block = mi_block_next(page, block)) { count++; }
  return count;
}

// An abandoned page holds `used` blocks less those freed into it since (its
// thread-free list). It carries more only by blocks freed in the race at its
// thread's exit (`_mi_page_acct_abandon`): counted apart, as `exit_race`.
// Only pages of heap tag `tag` if it is not negative.
static void mi_segment_acct_recount_abandoned(mi_segment_t* segment, int tag, mi_acct_tally_t* tally) {
  const mi_slice_t* end;
  mi_slice_t* slice = mi_slices_start_iterate(segment, &end);
  while (slice < end) {
    if (mi_slice_is_used(slice) && (tag < 0 || mi_slice_to_page(slice)->heap_tag == tag)) {
      const mi_page_t* const page = mi_slice_to_page(slice);
      const size_t carried = mi_atomic_load_relaxed(&page->acct_bytes) & ~MI_ACCT_ABANDONED;
      const size_t live = mi_page_block_size(page) * (page->used - mi_page_thread_free_count(page));
      tally->carried += carried;
      tally->recounted += live;
      if (carried > live) { tally->exit_race += carried - live; }
    }
    slice = slice + slice->slice_count;
  }
}

// Every abandoned page (of heap tag `tag` if it is not negative).
static void mi_acct_recount_abandoned(int tag, mi_acct_tally_t* tally) {
  mi_arena_field_cursor_t cursor;
  _mi_arena_field_cursor_init(NULL, _mi_subproc_from_id(mi_subproc_main()), true /* visit all */, &cursor);
  mi_segment_t* segment;
  while ((segment = _mi_arena_segment_clear_abandoned_next(&cursor)) != NULL) {
    mi_segment_acct_recount_abandoned(segment, tag, tally);
    _mi_arena_segment_mark_abandoned(segment);
  }
  _mi_arena_field_cursor_done(&cursor);
}

void mi_acct_audit(mi_acct_audit_t* audit) mi_attr_noexcept {
  size_t count = (size_t)mi_atomic_load_relaxed(&mi_acct_figure.abandoned);
  mi_acct_tally_t tally = { 0, 0, 0 };
  mi_lock(&mi_acct.lock) {
    for (mi_heap_t* heap = mi_acct.heaps; heap != NULL; heap = heap->acct_next) {
      count += mi_atomic_load_relaxed(&heap->acct_small) + mi_atomic_load_relaxed(&heap->acct_large);
      mi_heap_acct_recount(heap, &tally);
    }
  }
  mi_acct_recount_abandoned(-1, &tally);
  audit->counted = count;
  audit->carried = tally.carried;
  audit->recounted = tally.recounted;
  audit->exit_race = tally.exit_race;
}
