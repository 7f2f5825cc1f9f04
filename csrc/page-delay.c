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
  was tagged. A pending page of a heap is in that heap's FIFO (tagging order);
  one of an abandoned segment (links `prev == MI_DELAY_ABANDONED`) keeps its
  goal until a thread reclaims the segment (counted in `mi_delay_abandoned_*`).
  The one exception is a page whose segment lies above 2^48, beyond what a
  32-bit page reference names (the OS never puts one there unasked): it waits
  in its page queue, unqueued, and is freed when its heap next collects.
- An all-free page is freed only through `_mi_page_free_or_delay` (owned pages)
  or `_mi_page_delay_keep` (abandoned pages): both tag a page that has no goal
  yet, and let it go only once its goal is reached.
- A goal is dropped only when the page is proven reused: its owner freed a
  block into it (`flags.x.delay_goal`, set with every goal, sends that free
  to `mi_free_generic_local`), frees by other threads were collected from it,
  it went to the full queue, it was abandoned in use, or the allocating path
  found it in use (`_mi_heap_collect_delayed`). Such a page is
  tagged afresh when it empties, so a goal is always younger than the page's
  last free. Heap walks never drop a goal (the bug of CPython gh-145615).
- The FIFO belongs to the page's heap, not to the calling thread, so code that
  runs on another thread's heap (e.g. during a stop-the-world) finds the right
  list.

The goals come from gcmalloc's QSBR (Rust, `src/runtime/type_stable.rs`) through two
hooks installed at run time; until they are installed every page is freed at
once, exactly as in stock mimalloc.
-----------------------------------------------------------------------------*/
#if !defined(MI_IN_STATIC_C)
#error "page-delay.c is compiled only as part of 'static.c'"
#endif

#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"

// `mi_page_t` keeps stock's size on 64-bit: 12 words (`acct_bytes`
// took the padding word, the 32-bit goal the padding after `heap_tag`), and 2
// keys of encoded free lists or padding. `mi_free` finds a page by indexing
// the segment's slice entries with it (12 words: two instructions; 13: three),
// and the segment header holds 513 of them: it must fit one 64 KiB slice, as
// stock's does, or every segment pays a second header slice and blocks start
// elsewhere in it. So the FIFO links live in the segment beside the slice
// entries, 32 bits each (64-bit links would not fit with keys). `MI_SECURE`,
// which gcmalloc does not build, adds a guard page that would not fit.
// `MI_TSAN` (ThreadSanitizer builds, for testing only) gives each page flag
// a byte of a 32-bit word, as stock does: one word more per page there, in
// stock too, and with `MI_DEBUG`'s keys a header just over one slice, which
// stock's segment layout (`mi_segment_calculate_slices`) takes in its
// stride; only speed suffers.
#if MI_TSAN
#define MI_PAGE_WORDS  (13)
#else
#define MI_PAGE_WORDS  (12)
#endif
#if (MI_INTPTR_SIZE == 8) && (MI_ENCODE_FREELIST || MI_PADDING)
_Static_assert(sizeof(mi_page_t) == (MI_PAGE_WORDS + 2) * 8, "mi_page_t is not stock's size");
#elif (MI_INTPTR_SIZE == 8)
_Static_assert(sizeof(mi_page_t) == MI_PAGE_WORDS * 8, "mi_page_t is not stock's size");
#endif
#if !MI_TSAN
_Static_assert(sizeof(mi_segment_t) <= MI_SEGMENT_SLICE_SIZE, "the segment header takes more than one slice");
#endif

// A page reference: the page's segment number (its address / 32 MiB; segments
// are aligned to their size) above its slice index, in 32 bits; that names
// every page of a segment below 2^48 (the space the extended segment map
// covers). Segment number 0 names no page (address 0 is never mapped), so 0
// means none and small values are markers (`MI_DELAY_FIRST`, `..._ABANDONED`).
#define MI_DELAY_INDEX_BITS  (MI_SEGMENT_SHIFT - MI_SEGMENT_SLICE_SHIFT)
_Static_assert(MI_SLICES_PER_SEGMENT <= (1 << MI_DELAY_INDEX_BITS), "a slice index does not fit its bits");
_Static_assert(MI_DELAY_ABANDONED < (1 << MI_DELAY_INDEX_BITS), "a marker is a page reference");

// The reference of `page`, or 0 if its segment lies above what one names.
static uint32_t mi_page_ref(const mi_page_t* page) {
  const mi_segment_t* const segment = _mi_page_segment(page);
  const uintptr_t number = (uintptr_t)segment >> MI_SEGMENT_SHIFT;
  if (number >= ((uintptr_t)1 << (32 - MI_DELAY_INDEX_BITS))) return 0;
  return (uint32_t)((number << MI_DELAY_INDEX_BITS) | (uintptr_t)(page - segment->slices));
}

// The page `ref` names; NULL for none or a marker.
static mi_page_t* mi_page_of_ref(uint32_t ref) {
  if (ref < ((uint32_t)1 << MI_DELAY_INDEX_BITS)) return NULL;
  mi_segment_t* const segment = (mi_segment_t*)((uintptr_t)(ref >> MI_DELAY_INDEX_BITS) << MI_SEGMENT_SHIFT);
  return &segment->slices[ref & ((1u << MI_DELAY_INDEX_BITS) - 1)];
}

// The links of `page`; valid while the page has a goal.
static mi_delay_links_t* mi_page_links(mi_page_t* page) {
  mi_segment_t* const segment = _mi_page_segment(page);
  return &segment->delay_links[page - segment->slices];
}

// The page after `page` in its heap's FIFO; NULL if it is the last.
static mi_page_t* mi_page_delay_next(mi_page_t* page) {
  return mi_page_of_ref(mi_page_links(page)->next);
}

static bool mi_page_delay_queued(mi_page_t* page) {
  if (page->qsbr_goal == 0) return false;
  const uint32_t prev = mi_page_links(page)->prev;
  return (prev != 0 && prev != MI_DELAY_ABANDONED);
}

static bool mi_page_delay_abandoned(mi_page_t* page) {
  return (page->qsbr_goal != 0 && mi_page_links(page)->prev == MI_DELAY_ABANDONED);
}

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

static bool mi_goal_reached(uint32_t goal) {
  mi_goal_reached_fun* const reached = (mi_goal_reached_fun*)mi_atomic_load_ptr_acquire(void, &mi_delay_reached_fun);
  return (reached == NULL || reached(goal));
}

// Tag an all-free page without a goal; false if it may be freed at once.
// A tagged page is not queued yet (its links were stale until now).
static bool mi_page_delay_tag(mi_page_t* page) {
  mi_assert_internal(page->qsbr_goal == 0);
  mi_page_goal_fun* const goal_of = (mi_page_goal_fun*)mi_atomic_load_ptr_acquire(void, &mi_delay_goal_fun);
  if (goal_of == NULL) return false;
  page->qsbr_goal = goal_of(mi_page_delay_size(page));
  if (page->qsbr_goal == 0) return false;
  page->flags.x.delay_goal = 1;
  *mi_page_links(page) = (mi_delay_links_t){ 0, 0 };
  return true;
}

// Queue a pending page last in `heap`'s FIFO (unless no reference names it).
static void mi_heap_delay_push(mi_heap_t* heap, mi_page_t* page) {
  mi_delay_links_t* const links = mi_page_links(page);
  mi_assert_internal(page->qsbr_goal != 0 && links->prev == 0);
  const uint32_t ref = mi_page_ref(page);
  if (ref == 0) return;
  links->next = 0;
  if (heap->delay_last != NULL) { links->prev = mi_page_ref(heap->delay_last); mi_page_links(heap->delay_last)->next = ref; }
                           else { links->prev = MI_DELAY_FIRST; heap->delay_first = page; }
  heap->delay_last = page;
  mi_atomic_store_relaxed(&heap->delay_pages, mi_atomic_load_relaxed(&heap->delay_pages) + 1);
  mi_atomic_store_relaxed(&heap->delay_bytes, mi_atomic_load_relaxed(&heap->delay_bytes) + mi_page_delay_size(page));
}

// Take a page out of `heap`'s FIFO, if it is queued.
static void mi_heap_delay_unlink(mi_heap_t* heap, mi_page_t* page) {
  if (!mi_page_delay_queued(page)) return;
  mi_delay_links_t* const links = mi_page_links(page);
  mi_page_t* const prev = mi_page_of_ref(links->prev);
  mi_page_t* const next = mi_page_of_ref(links->next);
  if (prev != NULL) { mi_page_links(prev)->next = links->next; }
               else { heap->delay_first = next; }
  if (next != NULL) { mi_page_links(next)->prev = links->prev; }
               else { heap->delay_last = prev; }
  *links = (mi_delay_links_t){ 0, 0 };
  mi_atomic_store_relaxed(&heap->delay_pages, mi_atomic_load_relaxed(&heap->delay_pages) - 1);
  mi_atomic_store_relaxed(&heap->delay_bytes, mi_atomic_load_relaxed(&heap->delay_bytes) - mi_page_delay_size(page));
}

// A pending page enters (`add`) or leaves the abandoned ones.
static void mi_delay_abandoned_add(mi_page_t* page, bool add) {
  mi_page_links(page)->prev = (add ? MI_DELAY_ABANDONED : 0);
  const size_t size = mi_page_delay_size(page);
  if (add) { mi_atomic_increment_relaxed(&mi_delay_abandoned_pages); mi_atomic_add_relaxed(&mi_delay_abandoned_bytes, size); }
      else { mi_atomic_decrement_relaxed(&mi_delay_abandoned_pages); mi_atomic_sub_relaxed(&mi_delay_abandoned_bytes, size); }
}

// A page waiting for its goal holds no live data, so the live-bytes accounting
// (accounting.c) does not count it: sync an owned page when its goal is
// set or dropped (a large/huge page counts by its goal, not by `used`).
static void mi_page_delay_recount(mi_page_t* page) {
  mi_heap_t* const heap = mi_page_heap(page);
  if (heap != NULL) { _mi_page_acct_sync(heap, page, true); }
}

// Drop a pending goal: the page is (or was) in use since it was tagged.
void _mi_page_delay_drop_goal(mi_page_t* page) {
  mi_assert_internal(page->qsbr_goal != 0);
  const bool owned = !mi_page_delay_abandoned(page);
  if (owned) { mi_heap_delay_unlink(mi_page_heap(page), page); }
        else { mi_delay_abandoned_add(page, false); }
  page->qsbr_goal = 0;
  page->flags.x.delay_goal = 0;
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
  mi_assert_internal(mi_page_all_free(page) && !mi_page_delay_queued(page));
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
  mi_heap_delay_unlink(mi_page_heap(page), page);
  mi_delay_abandoned_add(page, true);
}

// A pending abandoned page was reclaimed into `heap`: queue it with its goal.
void _mi_page_delay_reclaim(mi_heap_t* heap, mi_page_t* page) {
  if (page->qsbr_goal == 0) return;
  mi_assert_internal(mi_page_delay_abandoned(page));
  mi_delay_abandoned_add(page, false);
  mi_heap_delay_push(heap, page);
}

// Move the FIFO of `from` to the end of the FIFO of `heap` (heap absorb).
void _mi_heap_delay_absorb(mi_heap_t* heap, mi_heap_t* from) {
  while (from->delay_first != NULL) {
    mi_page_t* const page = from->delay_first;
    mi_heap_delay_unlink(from, page);
    mi_heap_delay_push(heap, page);
  }
}

// On the allocating path (a fresh page is needed, or a large/huge block, or a
// collection): free the pages whose goal is reached, oldest first, and stop
// at the first goal that is not. Pages found in use are dropped from the FIFO.
void _mi_heap_collect_delayed(mi_heap_t* heap) {
  mi_page_t* page = heap->delay_first;
  while (page != NULL) {
    mi_page_t* const next = mi_page_delay_next(page);
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
    next = mi_page_delay_next(page);  // collecting the page may drop it from the FIFO
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
