/* ----------------------------------------------------------------------------
gcmalloc: delayed page reuse ("type-stable pages").

An empty page may serve its own size class again at once, but it is not freed
-- and so not handed to another size class, another heap or the OS -- until a
QSBR goal is reached: every thread registered with gcmalloc has passed a
quiescent state since the page's last block was freed. A lock-free reader that
loaded a pointer into the page before then reads a block of the same size
class (perhaps a newer object), never unrelated or unmapped memory. This is
the guarantee of CPython's free-threaded build and of SLAB_TYPESAFE_BY_RCU.

Invariants
- `page->qsbr_goal != 0` ("pending") only for a page that was all free when it
  was tagged. A pending page with `delay_heap != NULL` is in that heap's FIFO
  (tagging order); one with `delay_heap == NULL` is abandoned and keeps its goal
  until a thread reclaims its segment (counted in `mi_delay_abandoned_*`).
- An all-free page is freed only through `_mi_page_free_or_delay` (owned pages)
  or `_mi_page_delay_keep` (abandoned pages): both tag a page that has no goal
  yet, and let it go only once its goal is reached.
- A goal is dropped only when the page is proven reused: its owner freed its
  last block again (`_mi_page_retire`), frees by other threads were collected
  from it, it went to the full queue, it was abandoned in use, or the
  allocating path found it in use (`_mi_heap_collect_delayed`). Such a page is
  tagged afresh when it empties, so a goal is always younger than the page's
  last free. Heap walks never drop a goal (the bug of CPython gh-145615).
- The FIFO belongs to the page's heap, not to the calling thread, so code that
  runs on another thread's heap (e.g. during a stop-the-world) finds the right
  list.

The goals come from gcmalloc's QSBR (Rust, `src/type_stable.rs`) through two
hooks installed at run time; until they are installed every page is freed at
once, exactly as in stock mimalloc.
-----------------------------------------------------------------------------*/
#if !defined(MI_IN_STATIC_C)
#error "page-delay.c is compiled only as part of 'static.c'"
#endif

#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"

// The size `types.h` states for `mi_page_t` on 64-bit: stock's 12 words
// (0001's `acct_bytes` took the padding word), the 4 of delayed page reuse,
// and the 2 keys of encoded free lists or padding. It is also the size of a
// slice entry, so the segment header grows with it: 513 entries of 16 words
// no longer fit one 64 KiB slice (stock's 12 do), which costs every segment a
// second header slice.
#if (MI_INTPTR_SIZE == 8) && (MI_ENCODE_FREELIST || MI_PADDING)
_Static_assert(sizeof(mi_page_t) == 18 * 8, "mi_page_t is not the size types.h states");
#elif (MI_INTPTR_SIZE == 8)
_Static_assert(sizeof(mi_page_t) == 16 * 8, "mi_page_t is not the size types.h states");
#endif
#if (MI_INTPTR_SIZE == 8)
_Static_assert(sizeof(mi_segment_t) <= 2 * MI_SEGMENT_SLICE_SIZE, "the segment header takes more than two slices");
#endif

static _Atomic(void*) mi_delay_goal_fun;     // is `mi_page_goal_fun*`
static _Atomic(void*) mi_delay_reached_fun;  // is `mi_goal_reached_fun*`
static _Atomic(size_t) mi_delay_abandoned_pages;
static _Atomic(size_t) mi_delay_abandoned_bytes;

void mi_page_delay_set_hooks(mi_page_goal_fun* goal, mi_goal_reached_fun* reached) mi_attr_noexcept {
  mi_atomic_store_ptr_release(void, &mi_delay_reached_fun, (void*)reached);
  mi_atomic_store_ptr_release(void, &mi_delay_goal_fun, (void*)goal);
}

void _mi_page_delay_abandoned(size_t* pages, size_t* bytes) {
  *pages = mi_atomic_load_relaxed(&mi_delay_abandoned_pages);
  *bytes = mi_atomic_load_relaxed(&mi_delay_abandoned_bytes);
}

static size_t mi_page_delay_size(const mi_page_t* page) {
  return mi_page_block_size(page) * page->reserved;
}

static bool mi_goal_reached(uint64_t goal) {
  mi_goal_reached_fun* const reached = (mi_goal_reached_fun*)mi_atomic_load_ptr_acquire(void, &mi_delay_reached_fun);
  return (reached == NULL || reached(goal));
}

// Tag an all-free page without a goal; false if it may be freed at once.
static bool mi_page_delay_tag(mi_page_t* page) {
  mi_assert_internal(page->qsbr_goal == 0 && page->delay_heap == NULL);
  mi_page_goal_fun* const goal_of = (mi_page_goal_fun*)mi_atomic_load_ptr_acquire(void, &mi_delay_goal_fun);
  if (goal_of == NULL) return false;
  page->qsbr_goal = goal_of(mi_page_delay_size(page));
  return (page->qsbr_goal != 0);
}

static void mi_heap_delay_push(mi_heap_t* heap, mi_page_t* page) {
  mi_assert_internal(page->qsbr_goal != 0 && page->delay_heap == NULL);
  page->delay_heap = heap;
  page->delay_next = NULL;
  page->delay_prev = heap->delay_last;
  if (heap->delay_last != NULL) { heap->delay_last->delay_next = page; }
                           else { heap->delay_first = page; }
  heap->delay_last = page;
  mi_atomic_store_relaxed(&heap->delay_pages, mi_atomic_load_relaxed(&heap->delay_pages) + 1);
  mi_atomic_store_relaxed(&heap->delay_bytes, mi_atomic_load_relaxed(&heap->delay_bytes) + mi_page_delay_size(page));
}

static void mi_heap_delay_unlink(mi_page_t* page) {
  mi_heap_t* const heap = page->delay_heap;
  if (page->delay_prev != NULL) { page->delay_prev->delay_next = page->delay_next; }
                           else { heap->delay_first = page->delay_next; }
  if (page->delay_next != NULL) { page->delay_next->delay_prev = page->delay_prev; }
                           else { heap->delay_last = page->delay_prev; }
  page->delay_heap = NULL;
  page->delay_next = page->delay_prev = NULL;
  mi_atomic_store_relaxed(&heap->delay_pages, mi_atomic_load_relaxed(&heap->delay_pages) - 1);
  mi_atomic_store_relaxed(&heap->delay_bytes, mi_atomic_load_relaxed(&heap->delay_bytes) - mi_page_delay_size(page));
}

static void mi_delay_abandoned_add(mi_page_t* page, bool add) {
  const size_t size = mi_page_delay_size(page);
  if (add) { mi_atomic_increment_relaxed(&mi_delay_abandoned_pages); mi_atomic_add_relaxed(&mi_delay_abandoned_bytes, size); }
      else { mi_atomic_decrement_relaxed(&mi_delay_abandoned_pages); mi_atomic_sub_relaxed(&mi_delay_abandoned_bytes, size); }
}

// A page waiting for its goal holds no live data, so the live-bytes accounting
// (src/accounting.c) does not count it: sync an owned page when its goal is
// set or dropped (a large/huge page counts by its goal, not by `used`).
static void mi_page_delay_recount(mi_page_t* page) {
  mi_heap_t* const heap = mi_page_heap(page);
  if (heap != NULL) { _mi_page_acct_sync(heap, page, true); }
}

// Drop a pending goal: the page is (or was) in use since it was tagged.
void _mi_page_delay_drop_goal(mi_page_t* page) {
  mi_assert_internal(page->qsbr_goal != 0);
  const bool owned = (page->delay_heap != NULL);
  if (owned) { mi_heap_delay_unlink(page); }
        else { mi_delay_abandoned_add(page, false); }
  page->qsbr_goal = 0;
  if (owned) { mi_page_delay_recount(page); }
}

// Free an all-free page owned by a heap, or keep it in the heap's FIFO until
// its goal is reached. Returns true if the page was freed.
bool _mi_page_free_or_delay(mi_page_t* page, mi_page_queue_t* pq, bool force) {
  mi_assert_internal(mi_page_all_free(page));
  if (page->qsbr_goal == 0) {
    if (mi_page_delay_tag(page)) {
      page->retire_expire = 0;   // no longer a retired page: the FIFO decides now
      mi_heap_delay_push(mi_page_heap(page), page);
      mi_page_delay_recount(page);
      return false;
    }
  }
  else if (!mi_goal_reached(page->qsbr_goal)) {
    return false;
  }
  else {
    _mi_page_delay_cancel(page);
  }
  _mi_page_free(page, pq, force);
  return true;
}

// For an all-free page of an abandoned segment: true if it must be kept until
// its goal (tagging it now if it has none), false if it may be freed.
bool _mi_page_delay_keep(mi_page_t* page) {
  mi_assert_internal(mi_page_all_free(page) && page->delay_heap == NULL);
  if (page->qsbr_goal == 0) {
    if (!mi_page_delay_tag(page)) return false;
    mi_delay_abandoned_add(page, true);
    return true;
  }
  if (!mi_goal_reached(page->qsbr_goal)) return true;
  _mi_page_delay_cancel(page);
  return false;
}

// A page leaves its heap at thread exit: a pending page keeps its goal.
void _mi_page_delay_abandon(mi_page_t* page) {
  if (page->qsbr_goal == 0) return;
  if (!mi_page_all_free(page)) { _mi_page_delay_cancel(page); return; }
  mi_heap_delay_unlink(page);
  mi_delay_abandoned_add(page, true);
}

// A pending abandoned page was reclaimed into `heap`: queue it with its goal.
void _mi_page_delay_reclaim(mi_heap_t* heap, mi_page_t* page) {
  if (page->qsbr_goal == 0) return;
  mi_assert_internal(page->delay_heap == NULL);
  mi_delay_abandoned_add(page, false);
  mi_heap_delay_push(heap, page);
}

// Move the FIFO of `from` to the end of the FIFO of `heap` (heap absorb).
void _mi_heap_delay_absorb(mi_heap_t* heap, mi_heap_t* from) {
  while (from->delay_first != NULL) {
    mi_page_t* const page = from->delay_first;
    mi_heap_delay_unlink(page);
    mi_heap_delay_push(heap, page);
  }
}

// On the allocating path (a fresh page is needed, or a large/huge block, or a
// collection): free the pages whose goal is reached, oldest first, and stop
// at the first goal that is not. Pages found in use are dropped from the FIFO.
void _mi_heap_collect_delayed(mi_heap_t* heap) {
  mi_page_t* page = heap->delay_first;
  while (page != NULL) {
    mi_page_t* const next = page->delay_next;
    if (!mi_page_all_free(page)) {
      _mi_page_delay_cancel(page);
    }
    else if (!mi_goal_reached(page->qsbr_goal)) {
      break;
    }
    else {
      _mi_page_delay_cancel(page);
      _mi_page_free(page, mi_page_queue_of(page), false);
    }
    page = next;
  }
}

// A large or huge allocation of `block_size` may reuse an empty large/huge
// page of this heap that waits for its goal, if the block fits (wasting at
// most half of it): the page is not handed to another size class or to the
// OS, and its block starts where a reader may still look, so it stays
// type-stable -- while a thread that never quiesces holds the goal, the same
// few pages serve a loop of large allocations instead of piling up.
mi_page_t* _mi_heap_delay_reuse_large(mi_heap_t* heap, size_t block_size, bool is_huge) {
  mi_page_t* next;
  for (mi_page_t* page = heap->delay_first; page != NULL; page = next) {
    next = page->delay_next;  // collecting the page may drop it from the FIFO
    const size_t have = mi_page_block_size(page);
    if (!mi_page_is_large_or_huge(page) || mi_page_is_huge(page) != is_huge) continue;
    if (have < block_size || have / 2 > block_size) continue;
    _mi_page_free_collect(page, false);
    if (!mi_page_all_free(page) || !mi_page_immediate_available(page)) continue;
    // A single-block page went to the full queue when it was allocated and
    // waits there; the allocation path puts it back once its block is taken.
    if (mi_page_is_in_full(page)) { _mi_page_unfull(page); }
    _mi_page_delay_cancel(page);  // in use again: leaves the FIFO and counts again
    return page;
  }
  return NULL;
}
