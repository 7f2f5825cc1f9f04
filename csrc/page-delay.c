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
- `page->goal_tag != 0` ("delayed") only for a page that was all free when it
  was tagged. A delayed page of a heap is in one of that heap's two FIFOs
  (tagging order): small/medium pages, and large/huge pages apart, so a large
  allocation looks at large pages only. One of an abandoned segment (links
  `prev == MI_DELAY_ABANDONED`) keeps its goal until a thread reclaims the
  segment (counted in `mi_delay_abandoned_*`). A page whose segment lies above
  2^48, beyond what a 32-bit page reference names ("far": 5-level paging, or
  the tests' switch `mi_page_delay_test_far`), is in no FIFO: `prev ==
  MI_DELAY_FAR`, counted in its heap's figures and `delay_far`, found by a
  walk of the heap's page queues that the release and reuse steps take only
  while `delay_far != 0`.
- Every delayed page is counted once: in its heap's `delay_pages` and
  `delay_bytes`, or in the abandoned figures; `mi_delay_held` sums the bytes
  of both. The bytes are those the page holds committed: none once purged.
- Held-memory budget: when a page starts waiting (tagged, or abandoned with its
  goal) while the delayed pages hold more than the budget -- the larger of
  `mi_page_delay_set_budget` (default 256 MiB) and the live estimate -- that
  page is purged: its memory is decommitted through mimalloc's primitive (and
  committed again at once where that made it inaccessible: debug builds,
  Windows), its range stays reserved, mapped and the page's; the page is
  marked `delay_purged` and becomes as if fresh (`capacity` 0, no free list),
  so only its own size class may extend it again. A stale reader of it reads
  zeros (macOS: zeros or its old bytes), never another size class. Reuse comes
  first: a delayed page stays reusable by its size class, purged or not; a
  large/huge allocation that finds no delayed page of its heap that fits
  reclaims an abandoned segment holding one (mimalloc's segment reclaim: the
  page joins the heap's FIFO with its goal), so exited threads' pages serve
  any heap. The budget is checked when a page starts waiting: pages that
  began waiting under a larger budget (a higher live estimate) keep their
  memory until reused or released.
- A delayed large/huge page is reused before its goal only for a block of the
  same kind that fits, starting where its last block started: never a page
  marked `delay_offset` (its block was handed out at an offset, for an
  over-aligned allocation), since a stale pointer into it would then point
  into the middle of a newer object.
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
// means none and small values are markers (`MI_DELAY_FIRST`, `..._ABANDONED`,
// `..._FAR`).
#define MI_DELAY_INDEX_BITS  (MI_SEGMENT_SHIFT - MI_SEGMENT_SLICE_SHIFT)
_Static_assert(MI_SLICES_PER_SEGMENT <= (1 << MI_DELAY_INDEX_BITS), "a slice index does not fit its bits");
_Static_assert(MI_DELAY_FAR < (1 << MI_DELAY_INDEX_BITS), "a marker is a page reference");

// Tests only (`mi_page_delay_test_far`, off unless a test turns it on): treat
// every page as if its segment lay above 2^48, to exercise the far pages'
// paths on a machine whose OS never maps there.
static _Atomic(uintptr_t) mi_delay_test_far;

void mi_page_delay_test_far(bool on) mi_attr_noexcept {
  mi_atomic_store_relaxed(&mi_delay_test_far, (uintptr_t)(on ? 1 : 0));
}

// The reference of `page`, or 0 if its segment lies above what one names.
static uint32_t mi_page_ref_of(const mi_page_t* page) {
  const mi_segment_t* const segment = _mi_page_segment(page);
  const uintptr_t number = (uintptr_t)segment >> MI_SEGMENT_SHIFT;
  if (number >= ((uintptr_t)1 << (32 - MI_DELAY_INDEX_BITS))) return 0;
  return (uint32_t)((number << MI_DELAY_INDEX_BITS) | (uintptr_t)(page - segment->slices));
}

// The reference a page may be queued by (0: it is far, and waits in no FIFO).
static uint32_t mi_page_ref(const mi_page_t* page) {
  if mi_unlikely(mi_atomic_load_relaxed(&mi_delay_test_far) != 0) return 0;
  return mi_page_ref_of(page);
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

// The FIFO of `heap` a delayed page belongs to: large/huge pages wait apart,
// so a large allocation looks only at them.
static mi_delay_fifo_t* mi_heap_delay_fifo(mi_heap_t* heap, const mi_page_t* page) {
  return &heap->delay_fifo[mi_page_is_large_or_huge(page) ? 1 : 0];
}

static bool mi_page_delay_queued(mi_page_t* page) {
  if (page->goal_tag == 0) return false;
  const uint32_t prev = mi_page_links(page)->prev;
  return (prev != 0 && prev != MI_DELAY_ABANDONED);
}

static bool mi_page_delay_abandoned(mi_page_t* page) {
  return (page->goal_tag != 0 && mi_page_links(page)->prev == MI_DELAY_ABANDONED);
}

static bool mi_page_delay_far(mi_page_t* page) {
  return (page->goal_tag != 0 && mi_page_links(page)->prev == MI_DELAY_FAR);
}

static _Atomic(void*) mi_delay_goal_fun;     // is `mi_page_goal_fun*`
static _Atomic(void*) mi_delay_reached_fun;  // is `mi_goal_reached_fun*`
static _Atomic(size_t) mi_delay_abandoned_pages;
static _Atomic(size_t) mi_delay_abandoned_bytes;
static _Atomic(size_t) mi_delay_abandoned_large;  // of the abandoned pages, the large/huge ones
static _Atomic(size_t) mi_delay_held;        // bytes all delayed pages hold committed (heaps and abandoned)
static _Atomic(size_t) mi_delay_budget = MI_ATOMIC_VAR_INIT(MI_DELAY_BUDGET_DEFAULT);

void mi_page_delay_set_hooks(mi_page_goal_fun* goal, mi_goal_reached_fun* reached) mi_attr_noexcept {
  mi_atomic_store_ptr_release(void, &mi_delay_reached_fun, (void*)reached);
  mi_atomic_store_ptr_release(void, &mi_delay_goal_fun, (void*)goal);
}

void mi_page_delay_set_budget(size_t bytes) mi_attr_noexcept {
  mi_atomic_store_relaxed(&mi_delay_budget, bytes);
}

size_t mi_page_delay_budget(void) mi_attr_noexcept {
  const size_t floor = mi_atomic_load_relaxed(&mi_delay_budget);
  const size_t live = mi_acct_estimate();
  return (live > floor ? live : floor);
}

void _mi_page_delay_abandoned(size_t* pages, size_t* bytes) {
  *pages = mi_atomic_load_relaxed(&mi_delay_abandoned_pages);
  *bytes = mi_atomic_load_relaxed(&mi_delay_abandoned_bytes);
}

static size_t mi_page_delay_size(const mi_page_t* page) {
  return mi_page_block_size(page) * page->reserved;
}

// The bytes a delayed page holds committed: none once purged.
static size_t mi_page_delay_held(const mi_page_t* page) {
  return (page->flags.x.delay_purged ? 0 : mi_page_delay_size(page));
}

static bool mi_goal_reached(uint32_t goal) {
  mi_goal_reached_fun* const reached = (mi_goal_reached_fun*)mi_atomic_load_ptr_acquire(void, &mi_delay_reached_fun);
  return (reached == NULL || reached(goal));
}

// Tag an all-free page without a goal; false if it may be freed at once.
// A tagged page is not queued yet (its links were stale until now).
static bool mi_page_delay_tag(mi_page_t* page) {
  mi_assert_internal(page->goal_tag == 0);
  mi_page_goal_fun* const goal_of = (mi_page_goal_fun*)mi_atomic_load_ptr_acquire(void, &mi_delay_goal_fun);
  if (goal_of == NULL) return false;
  page->goal_tag = goal_of(mi_page_delay_size(page));
  if (page->goal_tag == 0) return false;
  page->flags.x.delay_goal = 1;
  *mi_page_links(page) = (mi_delay_links_t){ 0, 0 };
  return true;
}

// A delayed page of `heap` is counted in (`add`) or out of its figures.
static void mi_heap_delay_count(mi_heap_t* heap, mi_page_t* page, bool add) {
  const size_t held = mi_page_delay_held(page);
  const size_t pages = mi_atomic_load_relaxed(&heap->delay_pages);
  const size_t bytes = mi_atomic_load_relaxed(&heap->delay_bytes);
  mi_atomic_store_relaxed(&heap->delay_pages, add ? pages + 1 : pages - 1);
  mi_atomic_store_relaxed(&heap->delay_bytes, add ? bytes + held : bytes - held);
  if (add) { mi_atomic_add_relaxed(&mi_delay_held, held); }
      else { mi_atomic_sub_relaxed(&mi_delay_held, held); }
}

// Queue a delayed page last in its FIFO of `heap`; a far page (no reference
// names it) waits unqueued in its page queue, counted, marked `MI_DELAY_FAR`.
static void mi_heap_delay_push(mi_heap_t* heap, mi_page_t* page) {
  mi_delay_links_t* const links = mi_page_links(page);
  mi_assert_internal(page->goal_tag != 0 && links->prev == 0);
  mi_heap_delay_count(heap, page, true);
  const uint32_t ref = mi_page_ref(page);
  links->next = 0;
  if (ref == 0) {
    links->prev = MI_DELAY_FAR;
    heap->delay_far++;
    return;
  }
  mi_delay_fifo_t* const fifo = mi_heap_delay_fifo(heap, page);
  if (fifo->last != NULL) { links->prev = mi_page_ref_of(fifo->last); mi_page_links(fifo->last)->next = ref; }
                     else { links->prev = MI_DELAY_FIRST; fifo->first = page; }
  fifo->last = page;
}

// Take a page out of `heap`'s FIFO (or its far pages), if it is queued.
static void mi_heap_delay_unlink(mi_heap_t* heap, mi_page_t* page) {
  if (!mi_page_delay_queued(page)) return;
  mi_delay_links_t* const links = mi_page_links(page);
  if (links->prev == MI_DELAY_FAR) {
    heap->delay_far--;
  }
  else {
    mi_delay_fifo_t* const fifo = mi_heap_delay_fifo(heap, page);
    mi_page_t* const prev = mi_page_of_ref(links->prev);
    mi_page_t* const next = mi_page_of_ref(links->next);
    if (prev != NULL) { mi_page_links(prev)->next = links->next; }
                 else { fifo->first = next; }
    if (next != NULL) { mi_page_links(next)->prev = links->prev; }
                 else { fifo->last = prev; }
  }
  *links = (mi_delay_links_t){ 0, 0 };
  mi_heap_delay_count(heap, page, false);
}

// A delayed page enters (`add`) or leaves the abandoned ones.
static void mi_delay_abandoned_add(mi_page_t* page, bool add) {
  mi_page_links(page)->prev = (add ? MI_DELAY_ABANDONED : 0);
  const size_t held = mi_page_delay_held(page);
  if (mi_page_is_large_or_huge(page)) {
    if (add) { mi_atomic_increment_relaxed(&mi_delay_abandoned_large); }
        else { mi_atomic_decrement_relaxed(&mi_delay_abandoned_large); }
  }
  if (add) { mi_atomic_increment_relaxed(&mi_delay_abandoned_pages); mi_atomic_add_relaxed(&mi_delay_abandoned_bytes, held); mi_atomic_add_relaxed(&mi_delay_held, held); }
      else { mi_atomic_decrement_relaxed(&mi_delay_abandoned_pages); mi_atomic_sub_relaxed(&mi_delay_abandoned_bytes, held); mi_atomic_sub_relaxed(&mi_delay_held, held); }
}

// True if delayed pages hold more than the budget: the larger of the set
// floor and the live estimate (checked second: it sums per-thread figures).
static bool mi_delay_over_budget(void) {
  const size_t held = mi_atomic_load_relaxed(&mi_delay_held);
  if (held <= mi_atomic_load_relaxed(&mi_delay_budget)) return false;
  return (held > mi_acct_estimate());
}

// Return the memory of a delayed page to the OS, keeping it mapped, reserved
// and the page's: a stale reader then reads zeros (on macOS, zeros or the
// bytes the page held), never another size class. The blocks leave the free
// list (their links are gone): the page is as if fresh (`capacity` 0) and
// its size class may extend it again. Only by its owner, or the thread that
// visits its abandoned segment.
static void mi_page_delay_purge(mi_page_t* page) {
  mi_assert_internal(page->goal_tag != 0 && mi_page_all_free(page) && !page->flags.x.delay_purged);
  if (!_mi_page_segment(page)->allow_decommit) return;  // pinned or large OS pages stay
  const size_t os_page = _mi_os_page_size();
  uint8_t* const start = mi_page_start(page);
  uint8_t* const from = (uint8_t*)_mi_align_up((uintptr_t)start, os_page);
  uint8_t* const to = (uint8_t*)_mi_align_down((uintptr_t)(start + mi_page_delay_size(page)), os_page);
  if (to > from) {
    bool needs_recommit = false;
    mi_os_decommit_ex(from, (size_t)(to - from), &needs_recommit, (size_t)(to - from));
    // mapped and readable again, as zeros (only debug builds and Windows need it)
    if (needs_recommit && !_mi_os_commit(from, (size_t)(to - from), NULL)) {
      _mi_error_message(ENOMEM, "cannot recommit a purged delayed page at %p: a stale reader of it would fault\n", from);
    }
  }
  const size_t held = mi_page_delay_size(page);
  if (mi_page_delay_abandoned(page)) { mi_atomic_sub_relaxed(&mi_delay_abandoned_bytes, held); }
  else if (mi_page_delay_queued(page)) {
    mi_heap_t* const heap = mi_page_heap(page);
    mi_atomic_store_relaxed(&heap->delay_bytes, mi_atomic_load_relaxed(&heap->delay_bytes) - held);
  }
  mi_atomic_sub_relaxed(&mi_delay_held, held);
  page->flags.x.delay_purged = 1;
  page->free = NULL;
  page->local_free = NULL;
  page->capacity = 0;
  page->free_is_zero = false;
}

// Keep the held bytes within the budget: purge `page`, just tagged, if they are over.
static void mi_page_delay_bound(mi_page_t* page) {
  if (mi_delay_over_budget()) { mi_page_delay_purge(page); }
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
  mi_assert_internal(page->goal_tag != 0);
  const bool owned = !mi_page_delay_abandoned(page);
  if (owned) { mi_heap_delay_unlink(mi_page_heap(page), page); }
        else { mi_delay_abandoned_add(page, false); }
  page->goal_tag = 0;
  page->flags.x.delay_goal = 0;
  page->flags.x.delay_purged = 0;
  if (owned) { mi_page_delay_recount(page); }
}

// Free an all-free page owned by a heap, or keep it in the heap's FIFO until
// its goal is reached. Returns true if the page was freed.
bool _mi_page_free_or_delay(mi_page_t* page, mi_page_queue_t* pq, bool force) {
  mi_assert_internal(mi_page_all_free(page));
  if (page->goal_tag == 0) {
    if (mi_page_delay_tag(page)) {
      page->retire_expire = 0;   // no longer a retired page: the FIFO decides now
      mi_heap_delay_push(mi_page_heap(page), page);
      mi_page_delay_recount(page);
      mi_page_delay_bound(page);
      return false;
    }
  }
  else if (!mi_goal_reached(page->goal_tag)) {
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
  if (page->goal_tag == 0) {
    if (!mi_page_delay_tag(page)) return false;
    mi_delay_abandoned_add(page, true);
    mi_page_delay_bound(page);
    return true;
  }
  if (!mi_goal_reached(page->goal_tag)) return true;
  _mi_page_delay_cancel(page);
  return false;
}

// A page leaves its heap at thread exit: a delayed page keeps its goal.
void _mi_page_delay_abandon(mi_page_t* page) {
  if (page->goal_tag == 0) return;
  if (!mi_page_all_free(page)) { _mi_page_delay_cancel(page); return; }
  mi_heap_delay_unlink(mi_page_heap(page), page);
  mi_delay_abandoned_add(page, true);
  if (!page->flags.x.delay_purged) { mi_page_delay_bound(page); }
}

// A delayed abandoned page was reclaimed into `heap`: queue it with its goal.
void _mi_page_delay_reclaim(mi_heap_t* heap, mi_page_t* page) {
  if (page->goal_tag == 0) return;
  mi_assert_internal(mi_page_delay_abandoned(page));
  mi_delay_abandoned_add(page, false);
  mi_heap_delay_push(heap, page);
}

// Move the delayed pages of `from` to `heap` (heap absorb; mimalloc moves
// the page queues, and with them the far pages).
void _mi_heap_delay_absorb(mi_heap_t* heap, mi_heap_t* from) {
  for (size_t i = 0; i < 2; i++) {
    while (from->delay_fifo[i].first != NULL) {
      mi_page_t* const page = from->delay_fifo[i].first;
      mi_heap_delay_unlink(from, page);
      mi_heap_delay_push(heap, page);
    }
  }
  mi_atomic_store_relaxed(&heap->delay_pages, mi_atomic_load_relaxed(&heap->delay_pages) + mi_atomic_load_relaxed(&from->delay_pages));
  mi_atomic_store_relaxed(&heap->delay_bytes, mi_atomic_load_relaxed(&heap->delay_bytes) + mi_atomic_load_relaxed(&from->delay_bytes));
  heap->delay_far += from->delay_far;
  mi_atomic_store_relaxed(&from->delay_pages, 0);
  mi_atomic_store_relaxed(&from->delay_bytes, 0);
  from->delay_far = 0;
}

// Free `page` if its goal is reached (true), or drop the goal of a page found
// in use; false if it still waits.
static bool mi_page_delay_release(mi_page_t* page) {
  if (!mi_page_all_free(page)) { _mi_page_delay_cancel(page); return true; }
  if (!mi_goal_reached(page->goal_tag)) return false;
  _mi_page_delay_cancel(page);
  _mi_page_free(page, mi_page_queue_of(page), false);
  return true;
}

// The far delayed pages of `heap` are found in its page queues: release
// those whose goal is reached. O(pages of the heap), only while there are any.
static void mi_heap_collect_far(mi_heap_t* heap) {
  for (size_t bin = 0; bin <= MI_BIN_FULL && heap->delay_far > 0; bin++) {
    mi_page_t* next;
    for (mi_page_t* page = heap->pages[bin].first; page != NULL; page = next) {
      next = page->next;
      if (mi_page_delay_far(page)) { mi_page_delay_release(page); }
    }
  }
}

// On the allocating path (a fresh page is needed, or a large/huge block, or a
// collection): free the pages whose goal is reached, oldest first, and stop
// at the first goal that is not (in each FIFO). Pages found in use are
// dropped from the FIFO.
void _mi_heap_collect_delayed(mi_heap_t* heap) {
  for (size_t i = 0; i < 2; i++) {
    mi_page_t* page = heap->delay_fifo[i].first;
    while (page != NULL) {
      mi_page_t* const next = mi_page_delay_next(page);
      if (!mi_page_delay_release(page)) break;
      page = next;
    }
  }
  if mi_unlikely(heap->delay_far > 0) { mi_heap_collect_far(heap); }
}

// True if a large/huge allocation of `block_size` may reuse waiting `page`:
// the same kind, the block fits (wasting at most half of it), and its last
// block started at the block start (not at an offset for an over-aligned
// allocation, where a stale pointer points into the block).
static bool mi_page_delay_fits(const mi_page_t* page, size_t block_size, bool is_huge) {
  if (!mi_page_is_large_or_huge(page) || mi_page_is_huge(page) != is_huge) return false;
  const size_t have = mi_page_block_size(page);
  if (have < block_size || have / 2 > block_size) return false;
  return !page->flags.x.delay_offset;
}

// Take waiting `page` for an allocation if its block is free (extending a
// purged page again); false if it is not.
static bool mi_page_delay_take(mi_heap_t* heap, mi_page_t* page) {
  _mi_page_free_collect(page, false);
  if (!mi_page_all_free(page)) return false;
  if (!mi_page_immediate_available(page) && !(mi_page_is_expandable(page) && mi_page_extend_free(heap, page, heap->tld))) return false;
  if (!mi_page_immediate_available(page)) return false;
  // A single-block page went to the full queue when it was allocated and
  // waits there; the allocation path puts it back once its block is taken.
  if (mi_page_is_in_full(page)) { _mi_page_unfull(page); }
  _mi_page_delay_cancel(page);  // in use again: leaves the FIFO and counts again
  return true;
}

// A far large/huge page of `heap` that fits, from its page queues.
static mi_page_t* mi_heap_delay_reuse_far(mi_heap_t* heap, size_t block_size, bool is_huge) {
  for (size_t bin = mi_bin(MI_MEDIUM_OBJ_SIZE_MAX + 1); bin <= MI_BIN_FULL; bin++) {
    mi_page_t* next;
    for (mi_page_t* page = heap->pages[bin].first; page != NULL; page = next) {
      next = page->next;
      if (mi_page_delay_far(page) && mi_page_delay_fits(page, block_size, is_huge) && mi_page_delay_take(heap, page)) return page;
    }
  }
  return NULL;
}

// segment.c's, defined further down in `static.c`.
static mi_slice_t* mi_slices_start_iterate(mi_segment_t* segment, const mi_slice_t** end);
static bool mi_slice_is_used(const mi_slice_t* slice);
static mi_segment_t* mi_segment_reclaim(mi_segment_t* segment, mi_heap_t* heap, size_t requested_block_size, bool* right_page_reclaimed, mi_segments_tld_t* tld);

// True if abandoned `segment` (which the caller took off the abandoned ones)
// has a delayed large/huge page that fits.
static bool mi_segment_delay_fits(mi_segment_t* segment, size_t block_size, bool is_huge) {
  const mi_slice_t* end;
  for (mi_slice_t* slice = mi_slices_start_iterate(segment, &end); slice < end; slice += slice->slice_count) {
    if (!mi_slice_is_used(slice)) continue;
    mi_page_t* const page = mi_slice_to_page(slice);
    if (mi_page_delay_abandoned(page) && mi_page_delay_fits(page, block_size, is_huge)) return true;
  }
  return false;
}

// Delayed large/huge pages of exited threads serve any heap: reclaim (as
// mimalloc's segment reclaim does) one abandoned segment with a page that
// fits, so the page joins this heap's FIFO with its goal. Only while there
// are such pages; visits at most a few segments, as mimalloc's reclaim does.
static bool mi_heap_delay_reclaim_large(mi_heap_t* heap, size_t block_size, bool is_huge) {
  if (mi_atomic_load_relaxed(&mi_delay_abandoned_large) == 0) return false;
  mi_segments_tld_t* const tld = &heap->tld->segments;
  mi_arena_field_cursor_t current;
  _mi_arena_field_cursor_init(heap, tld->subproc, false /* non-blocking */, &current);
  bool found = false;
  long tries = 16;
  mi_segment_t* segment;
  while (!found && tries-- > 0 && (segment = _mi_arena_segment_clear_abandoned_next(&current)) != NULL) {
    found = (_mi_heap_memid_is_suitable(heap, segment->memid) && mi_segment_delay_fits(segment, block_size, is_huge));
    if (found) { mi_segment_reclaim(segment, heap, 0, NULL, tld); }
          else { _mi_arena_segment_mark_abandoned(segment); }
  }
  _mi_arena_field_cursor_done(&current);
  return found;
}

// A delayed large/huge page of `heap` that fits, taken for an allocation.
static mi_page_t* mi_heap_delay_find_large(mi_heap_t* heap, size_t block_size, bool is_huge) {
  mi_page_t* next;
  for (mi_page_t* page = heap->delay_fifo[1].first; page != NULL; page = next) {
    next = mi_page_delay_next(page);  // collecting the page may drop it from the FIFO
    if (mi_page_delay_fits(page, block_size, is_huge) && mi_page_delay_take(heap, page)) return page;
  }
  if mi_unlikely(heap->delay_far > 0) { return mi_heap_delay_reuse_far(heap, block_size, is_huge); }
  return NULL;
}

// A large or huge allocation of `block_size` may reuse an empty large/huge
// page that waits for its goal and fits: one of this heap, else one an
// exited thread left. The page is not handed to another size class or to the
// OS, and its block starts where a reader may still look, so it stays
// type-stable -- while a thread that never quiesces holds the goal, the same
// few pages serve a loop of large allocations instead of piling up. It walks
// the delayed large/huge pages only: nothing when there are none.
mi_page_t* _mi_heap_delay_reuse_large(mi_heap_t* heap, size_t block_size, bool is_huge) {
  mi_page_t* const page = mi_heap_delay_find_large(heap, block_size, is_huge);
  if (page != NULL || !mi_heap_delay_reclaim_large(heap, block_size, is_huge)) return page;
  return mi_heap_delay_find_large(heap, block_size, is_huge);
}
