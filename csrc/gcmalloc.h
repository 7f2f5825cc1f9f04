/* ----------------------------------------------------------------------------
gcmalloc's C: every hook it adds to mimalloc, declared once.

mimalloc's own files keep only one-line hook sites (each with a `gcmalloc:`
comment), the fields the hooks use (`mimalloc/types.h`), this header's
include at the end of `mimalloc/internal.h`, and the include of the files
below into `static.c`. The logic is here, in gcmalloc's tree:

- `accounting.c`: live-bytes accounting. Every page carries the bytes it adds
  to the estimate, synced on slow paths only; heaps sum them with a single
  writer; the API below reads them.
- `page-delay.c`: delayed page reuse ("type-stable pages"). An emptied page
  waits for a QSBR goal before another size class, heap or the OS may have it.
- `gc-heap.c`: heaps per purpose (GC heaps), one mimalloc heap tag each, with
  their own live-bytes figures and a walk of their blocks.
- `huge-pages.c`: arenas are marked for transparent huge pages only once the
  heap is large.

All are compiled only as part of `static.c` (they use statics of mimalloc's
files), which `build.rs` compiles with the crate's root on the include path.
-----------------------------------------------------------------------------*/
#pragma once
#ifndef GCMALLOC_H
#define GCMALLOC_H

#include "mimalloc.h"
#include "mimalloc/types.h"

// Delayed page reuse holds every emptied page until its QSBR goal. With
// MI_HUGE_PAGE_ABANDON a huge page leaves its heap at allocation and the
// thread that frees its block frees the page at once: no goal, no wait.
#if MI_HUGE_PAGE_ABANDON
#error "gcmalloc: MI_HUGE_PAGE_ABANDON=1 frees huge pages without waiting for their QSBR goal (delayed page reuse); build without it"
#endif

// ---------------------------------------------------------------------------
// The API gcmalloc's Rust side calls.
// ---------------------------------------------------------------------------

// Delayed page reuse (page-delay.c). `goal` returns the QSBR goal for a page
// emptied now, as a 32-bit tag the page keeps (0: it may be reused at once);
// `reached` tells if the goal of a tag is reached. Both must be callable from
// any thread, must not allocate and must not block.
typedef uint32_t (mi_cdecl mi_page_goal_fun)(size_t page_bytes);
typedef bool (mi_cdecl mi_goal_reached_fun)(uint32_t goal);
mi_decl_export void mi_page_delay_set_hooks(mi_page_goal_fun* goal, mi_goal_reached_fun* reached) mi_attr_noexcept;
// The held-memory budget: past the larger of `bytes` and the live estimate,
// a page that starts waiting is purged (its memory returned to the OS, its
// range kept). `mi_page_delay_budget` returns the budget in force now.
mi_decl_export void   mi_page_delay_set_budget(size_t bytes) mi_attr_noexcept;
mi_decl_export size_t mi_page_delay_budget(void) mi_attr_noexcept;
// Tests only: treat every page as lying above 2^48, beyond a 32-bit page
// reference (as on a machine with 5-level paging). Off unless turned on.
mi_decl_export void   mi_page_delay_test_far(bool on) mi_attr_noexcept;
#define MI_DELAY_BUDGET_DEFAULT  ((size_t)256 << 20)

// Transparent huge pages by heap size (huge-pages.c): arenas are marked for
// huge pages only once the estimate passes the threshold (bytes; 0: at
// reservation, as stock; SIZE_MAX: never). Default 128 MiB, or
// `GCMALLOC_HUGE_PAGE_THRESHOLD_MIB` from the environment.
mi_decl_export void   mi_thp_set_threshold(size_t bytes) mi_attr_noexcept;
mi_decl_export size_t mi_thp_get_threshold(void) mi_attr_noexcept;
mi_decl_export size_t mi_thp_deferred_arenas(void) mi_attr_noexcept;  // arenas reserved but not yet marked

// Live-bytes accounting (accounting.c).
typedef struct mi_acct_usage_s {
  size_t estimate;         // what `mi_acct_estimate` returns
  size_t small_bytes;      // small/medium pages owned by heaps: used blocks as of each page's last sync (exact sum over heaps)
  size_t large_bytes;      // large/huge pages owned by heaps (exact sum over heaps)
  size_t abandoned_bytes;  // live blocks in pages of exited threads
  size_t heaps;            // live heaps
  size_t error_bound;      // |estimate - (small + large + abandoned)| <= error_bound
  size_t undercount_bound; // heaps * one small/medium page per size class: the most that fast-path allocations since the last sync hold uncounted
  size_t delayed_pages;    // empty pages waiting for their QSBR goal (page-delay.c), in heaps and abandoned
  size_t delayed_bytes;    // the bytes they hold committed: purged ones hold none (not part of the estimate)
} mi_acct_usage_t;

// The figure an estimate reads: two words on a cache line of their own,
// which Rust reads without a call (`Figure` in src/ffi.rs, same layout).
typedef struct mi_decl_cache_align mi_acct_figure_s {
  _Atomic(intptr_t) published;  // the heaps' published counters (minus what they hold back, see accounting.c)
  _Atomic(intptr_t) abandoned;  // bytes carried by abandoned pages
} mi_acct_figure_t;

mi_decl_export extern mi_acct_figure_t mi_acct_figure;        // the process (accounting.c)
mi_decl_export extern mi_acct_figure_t mi_gc_tag_figure[256]; // each GC heap tag (gc-heap.c)

typedef struct mi_acct_audit_s {
  size_t counted;          // the heaps' counters plus the abandoned total
  size_t carried;          // the bytes every page carries: equal to `counted` unless the counters drifted
  size_t recounted;        // live bytes by the page structures: `counted - exit_race` right after a refresh of every heap
  size_t exit_race;        // bytes abandoned pages carry beyond their live blocks: frees in the race at thread exit (accounting.c)
} mi_acct_audit_t;

mi_decl_export size_t mi_acct_estimate(void) mi_attr_noexcept;
mi_decl_export void   mi_acct_usage(mi_acct_usage_t* usage) mi_attr_noexcept;
mi_decl_export void   mi_acct_audit(mi_acct_audit_t* audit) mi_attr_noexcept;  // only while no other thread allocates or frees
mi_decl_export void   mi_acct_refresh(mi_heap_t* heap) mi_attr_noexcept;       // NULL: the calling thread's heap; another's only while its owner is stopped
mi_decl_export void   mi_acct_refresh_thread(mi_heap_t* heap) mi_attr_noexcept;  // every heap of `heap`'s thread (NULL: the calling one), as above
mi_decl_export size_t mi_acct_heap_bytes(const mi_heap_t* heap) mi_attr_noexcept;  // NULL: the calling thread's heap: its share of the estimate

// GC heaps: heaps per purpose, one mimalloc heap tag each (gc-heap.c). A tag
// comes from `mi_gc_heap_tag_new` (0: all 255 handed out); the allocation
// functions use the calling thread's heap of the tag, created on first use
// (they take the tag as a `size_t`, below 256).
typedef bool (mi_cdecl mi_gc_block_fun)(void* block, size_t block_size, void* arg);
mi_decl_export uint8_t    mi_gc_heap_tag_new(void) mi_attr_noexcept;
mi_decl_export void       mi_gc_heap_tag_drop(uint8_t tag) mi_attr_noexcept;
mi_decl_export void*      mi_gc_heap_malloc(size_t tag, size_t size) mi_attr_noexcept;
mi_decl_export void*      mi_gc_heap_zalloc(size_t tag, size_t size) mi_attr_noexcept;
mi_decl_export void*      mi_gc_heap_malloc_aligned(size_t tag, size_t size, size_t alignment) mi_attr_noexcept;
mi_decl_export void*      mi_gc_heap_zalloc_aligned(size_t tag, size_t size, size_t alignment) mi_attr_noexcept;
mi_decl_export void*      mi_gc_heap_realloc_aligned(size_t tag, void* p, size_t newsize, size_t alignment) mi_attr_noexcept;
mi_decl_export size_t     mi_gc_heap_estimate(uint8_t tag) mi_attr_noexcept;
mi_decl_export void       mi_gc_heap_refresh(uint8_t tag, bool all) mi_attr_noexcept;      // all: owners stopped
mi_decl_export void       mi_gc_heap_usage(uint8_t tag, mi_acct_usage_t* usage) mi_attr_noexcept;
mi_decl_export void       mi_gc_heap_audit(uint8_t tag, mi_acct_audit_t* audit) mi_attr_noexcept;  // as mi_acct_audit
mi_decl_export bool       mi_gc_heap_visit_blocks(uint8_t tag, mi_gc_block_fun* fun, void* arg) mi_attr_noexcept;  // owners stopped
mi_decl_export int        mi_gc_block_owner(const void* p) mi_attr_noexcept;  // for tests

// ---------------------------------------------------------------------------
// Hooks called from mimalloc's files.
// ---------------------------------------------------------------------------

// page-delay.c
bool        _mi_page_free_or_delay(mi_page_t* page, mi_page_queue_t* pq, bool force);
bool        _mi_page_delay_keep(mi_page_t* page);
void        _mi_page_delay_drop_goal(mi_page_t* page);
void        _mi_page_delay_abandon(mi_page_t* page);
void        _mi_page_delay_reclaim(mi_heap_t* heap, mi_page_t* page);
void        _mi_heap_delay_absorb(mi_heap_t* heap, mi_heap_t* from);
void        _mi_heap_collect_delayed(mi_heap_t* heap);
mi_page_t*  _mi_heap_delay_reuse_large(mi_heap_t* heap, size_t block_size, bool is_huge);
void        _mi_page_delay_abandoned(size_t* pages, size_t* bytes);

// huge-pages.c
bool        _mi_thp_defer_begin(void);
void        _mi_thp_defer_end(bool ok, mi_arena_id_t id);
bool        _mi_thp_deferring(void);
void        _mi_thp_promote_check(void);

// accounting.c
void        _mi_page_acct_requeued(mi_heap_t* heap, mi_page_t* page, bool queued);
void        _mi_page_acct_abandon(mi_page_t* page);
void        _mi_page_acct_claim(mi_page_t* page);
void        _mi_page_acct_free_abandoned(mi_page_t* page);
void        _mi_heap_acct_absorb(mi_heap_t* heap, mi_heap_t* from);
void        _mi_heap_acct_reset(mi_heap_t* heap);
void        _mi_heap_acct_register(mi_heap_t* heap);
void        _mi_heap_acct_unregister(mi_heap_t* heap);

// gc-heap.c
mi_heap_t*  _mi_gc_heap_first_use_or_default(void);
void        _mi_gc_heap_forget(mi_heap_t* heap);
bool        _mi_segment_tags_reclaimable(const mi_segment_t* segment, const mi_heap_t* heap);
void        _mi_gc_tag_acct_published(uint8_t tag, intptr_t delta);
void        _mi_gc_tag_acct_abandoned(uint8_t tag, intptr_t delta);

// Set in `mi_page_t.acct_bytes` while the bytes count in the abandoned total.
#define MI_ACCT_ABANDONED  (((size_t)1) << (MI_SIZE_BITS - 1))

// Markers in `mi_delay_links_t.prev`; no page reference has these values.
#define MI_DELAY_FIRST      ((uint32_t)1)   // the page is first in its heap's FIFO
#define MI_DELAY_ABANDONED  ((uint32_t)2)   // the page waits for its goal in an abandoned segment
#define MI_DELAY_FAR        ((uint32_t)3)   // no reference names the page: it waits in its page queue only

// A page in use again drops a pending QSBR goal. Most pages have none:
// checked inline, so the hooks on the page-retire and to-full paths cost a
// load and a branch, not a call.
static inline void _mi_page_delay_cancel(mi_page_t* page) {
  if mi_unlikely(page->goal_tag != 0) { _mi_page_delay_drop_goal(page); }
}

// An over-aligned allocation handed out the block of `page` at an offset: a
// large/huge page (one block) then serves no other allocation before its goal.
static inline void _mi_page_delay_offset(mi_page_t* page) {
  if (mi_page_block_size(page) > MI_MEDIUM_OBJ_SIZE_MAX || mi_page_is_huge(page)) { page->flags.x.delay_offset = 1; }
}

// Syncs the live bytes `page` carries with `heap` when it enters (`queued`),
// moves within or leaves its heap's queues, or its free lists were collected
// on a slow path. A small/medium page that carries `used * block_size`
// already is checked inline and costs no call.
static inline void _mi_page_acct_sync(mi_heap_t* heap, mi_page_t* page, bool queued) {
  const size_t bsize = mi_page_block_size(page);
  if (bsize <= MI_MEDIUM_OBJ_SIZE_MAX && !mi_page_is_huge(page) &&
      mi_atomic_load_relaxed(&page->acct_bytes) == (queued ? bsize * page->used : 0)) return;
  _mi_page_acct_requeued(heap, page, queued);
}

#endif
