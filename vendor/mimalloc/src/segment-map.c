/* ----------------------------------------------------------------------------
Copyright (c) 2019-2023, Microsoft Research, Daan Leijen
This is free software; you can redistribute it and/or modify it under the
terms of the MIT license. A copy of the license can be found in the file
"LICENSE" at the root of this distribution.
-----------------------------------------------------------------------------*/

/* -----------------------------------------------------------
  The following functions are to reliably find the segment or
  block that encompasses any pointer p (or NULL if it is not
  in any of our segments).
  We maintain a bitmap of all memory with 1 bit per MI_SEGMENT_SIZE (64MiB)
  set to 1 if it contains the segment meta data.
  gcmalloc: instead, a 16-bit "extent" per MI_SEGMENT_ALIGN (32 MiB) slot:
  how many of the slot's slices, from its start, belong to an OS-allocated
  segment (0: none, MI_SLICES_PER_SEGMENT: all). Segments are aligned to a
  slot, so a slot belongs to at most one segment, and a segment covers each
  of its slots whole but the last. The start bit alone missed most of a huge
  block (past its first slot) and every block with an alignment of 32 MiB or
  more (it starts a slot into its segment); finding the segment start for
  those meant reading a header that need not contain the pointer and that
  another thread may be unmapping. A lookup now reads one map word and never
  a segment header: it cannot fault, whatever the pointer. The map is written
  only when a segment is mapped or unmapped, never on allocation or free.
----------------------------------------------------------- */
#include "mimalloc.h"
#include "mimalloc/internal.h"
#include "mimalloc/atomic.h"

// Reduce total address space to reduce .bss  (due to the `mi_segment_map`)
#if (MI_INTPTR_SIZE > 4) && MI_TRACK_ASAN
#define MI_SEGMENT_MAP_MAX_ADDRESS    (128*1024ULL*MI_GiB)  // 128 TiB  (see issue #881)
#elif (MI_INTPTR_SIZE > 4)
// gcmalloc: the whole 48-bit user address space (256 TiB), not 48 TiB. Without
// a hint, the OS maps at the top of it (0x7f.. on x86_64, 0xffff.. on aarch64):
// segments put there (alignments of 512 MiB and more, which no arena or hint
// serves) were missing from the map, and `mi_is_in_heap_region` (the crate's
// `owns`) said false for their blocks. Parts are allocated on demand; the
// table of part pointers grows from 25 to 129 words of .bss.
#define MI_SEGMENT_MAP_MAX_ADDRESS    (256*1024ULL*MI_GiB)  // 256 TiB
#else
#define MI_SEGMENT_MAP_MAX_ADDRESS    (UINT32_MAX)
#endif

#define MI_SEGMENT_MAP_EXTENT_BITS    (16)                               // holds 0..MI_SLICES_PER_SEGMENT
// gcmalloc: 16 times stock's part, so a part spans as much as stock's did
// (the OS commits a part's pages only where they are written)
#define MI_SEGMENT_MAP_PART_SIZE      (MI_SEGMENT_MAP_EXTENT_BITS*MI_INTPTR_SIZE*MI_KiB - 128)      // 128 > sizeof(mi_memid_t) ! 
#define MI_SEGMENT_MAP_PART_ENTRIES   (MI_SEGMENT_MAP_PART_SIZE / MI_INTPTR_SIZE)
#define MI_SEGMENT_MAP_EXTENT_MASK    (((uintptr_t)1 << MI_SEGMENT_MAP_EXTENT_BITS) - 1)
#define MI_SEGMENT_MAP_WORD_SLOTS     (MI_INTPTR_BITS / MI_SEGMENT_MAP_EXTENT_BITS)
#define MI_SEGMENT_MAP_PART_SLOTS     (MI_SEGMENT_MAP_PART_ENTRIES * MI_SEGMENT_MAP_WORD_SLOTS)
#define MI_SEGMENT_MAP_SLOT_SPAN      (MI_SEGMENT_ALIGN)                 // memory area covered by 1 slot

#if (MI_SEGMENT_MAP_PART_SLOTS < (MI_SEGMENT_MAP_MAX_ADDRESS / MI_SEGMENT_MAP_SLOT_SPAN)) // prevent overflow on 32-bit (issue #1017)
#define MI_SEGMENT_MAP_PART_SPAN      (MI_SEGMENT_MAP_PART_SLOTS * MI_SEGMENT_MAP_SLOT_SPAN)
#else
#define MI_SEGMENT_MAP_PART_SPAN      MI_SEGMENT_MAP_MAX_ADDRESS
#endif

#define MI_SEGMENT_MAP_MAX_PARTS      ((MI_SEGMENT_MAP_MAX_ADDRESS / MI_SEGMENT_MAP_PART_SPAN) + 1)

_Static_assert(MI_SLICES_PER_SEGMENT <= MI_SEGMENT_MAP_EXTENT_MASK && MI_SEGMENT_MAP_SLOT_SPAN == MI_SLICES_PER_SEGMENT * MI_SEGMENT_SLICE_SIZE,
               "a slot's extent (its slices) does not fit the segment map's 16 bits");

// A part of the segment map.
typedef struct mi_segmap_part_s {
  mi_memid_t memid;
  _Atomic(uintptr_t) map[MI_SEGMENT_MAP_PART_ENTRIES];
} mi_segmap_part_t;

// Allocate parts on-demand to reduce .bss footprint
static _Atomic(mi_segmap_part_t*) mi_segment_map[MI_SEGMENT_MAP_MAX_PARTS]; // = { NULL, .. }

// The part holding the extent of the slot of `addr` (any address), which is
// the 16 bits at `*shift` in its word `*idx`; NULL if there is none.
static mi_segmap_part_t* mi_segment_map_index_of(uintptr_t addr, bool create_on_demand, size_t* idx, size_t* shift) {
  *idx = 0;
  *shift = 0;
  if (addr >= MI_SEGMENT_MAP_MAX_ADDRESS) return NULL;
  const uintptr_t segindex = addr / MI_SEGMENT_MAP_PART_SPAN;
  if (segindex >= MI_SEGMENT_MAP_MAX_PARTS) return NULL;
  mi_segmap_part_t* part = mi_atomic_load_ptr_relaxed(mi_segmap_part_t, &mi_segment_map[segindex]);

  // allocate on demand to reduce .bss footprint
  if mi_unlikely(part == NULL) {
    if (!create_on_demand) return NULL;
    mi_memid_t memid;
    part = (mi_segmap_part_t*)_mi_os_zalloc(sizeof(mi_segmap_part_t), &memid);
    if (part == NULL) return NULL;
    part->memid = memid;
    mi_segmap_part_t* expected = NULL;
    if (!mi_atomic_cas_ptr_strong_release(mi_segmap_part_t, &mi_segment_map[segindex], &expected, part)) {
      _mi_os_free(part, sizeof(mi_segmap_part_t), memid);
      part = expected;
      if (part == NULL) return NULL;
    }
  }
  mi_assert(part != NULL);
  const uintptr_t offset = addr % MI_SEGMENT_MAP_PART_SPAN;
  const uintptr_t slot = offset / MI_SEGMENT_MAP_SLOT_SPAN;
  *idx = slot / MI_SEGMENT_MAP_WORD_SLOTS;
  *shift = (slot % MI_SEGMENT_MAP_WORD_SLOTS) * MI_SEGMENT_MAP_EXTENT_BITS;
  return part;
}

// Sets the extent of the slot at `slot_start`; parts are created only to
// record a segment, not to clear one.
static void mi_segment_map_set_extent(uintptr_t slot_start, uintptr_t extent) {
  size_t index;
  size_t shift;
  mi_segmap_part_t* part = mi_segment_map_index_of(slot_start, extent != 0 /* alloc map if needed */, &index, &shift);
  if (part == NULL) return; // outside our address range..
  uintptr_t word = mi_atomic_load_relaxed(&part->map[index]);
  uintptr_t newword;
  do {  // a CAS: the other slots of the word may belong to segments of other threads
    newword = (word & ~(MI_SEGMENT_MAP_EXTENT_MASK << shift)) | (extent << shift);
  } while (!mi_atomic_cas_weak_release(&part->map[index], &word, newword));
}

// Records the extents of every slot `segment` spans, or clears them.
static void mi_segment_map_cover(const mi_segment_t* segment, bool covered) {
  mi_assert_internal((uintptr_t)segment % MI_SEGMENT_MAP_SLOT_SPAN == 0);
  const uintptr_t start = (uintptr_t)segment;
  const uintptr_t end = start + segment->segment_size;
  for (uintptr_t slot = start; slot < end; slot += MI_SEGMENT_MAP_SLOT_SPAN) {
    const uintptr_t left = end - slot;
    const uintptr_t slices = (left >= MI_SEGMENT_MAP_SLOT_SPAN ? MI_SLICES_PER_SEGMENT : left / MI_SEGMENT_SLICE_SIZE);
    mi_segment_map_set_extent(slot, covered ? slices : 0);
  }
}

void _mi_segment_map_allocated_at(const mi_segment_t* segment) {
  if (segment->memid.memkind == MI_MEM_ARENA) return; // we lookup segments first in the arena's and don't need the segment map
  mi_segment_map_cover(segment, true);
}

void _mi_segment_map_freed_at(const mi_segment_t* segment) {
  if (segment->memid.memkind == MI_MEM_ARENA) return;
  mi_segment_map_cover(segment, false);
}

// Is `p` inside an OS-allocated segment? One word of the map, no header
// read. Relaxed: the answer is about the map alone, and a segment mapped or
// unmapped concurrently may read either way.
static bool mi_segment_map_covers(const void* p) {
  size_t index;
  size_t shift;
  mi_segmap_part_t* part = mi_segment_map_index_of((uintptr_t)p, false /* dont alloc if not present */, &index, &shift);
  if (part == NULL) return false;
  const uintptr_t extent = (mi_atomic_load_relaxed(&part->map[index]) >> shift) & MI_SEGMENT_MAP_EXTENT_MASK;
  return (((uintptr_t)p % MI_SEGMENT_MAP_SLOT_SPAN) < extent * MI_SEGMENT_SLICE_SIZE);
}

// Is this a valid pointer in our heap?
static bool mi_is_valid_pointer(const void* p) {
  // first check if it is in an arena, then check if it is OS allocated
  return (_mi_arena_contains(p) || mi_segment_map_covers(p));
}

mi_decl_nodiscard mi_decl_export bool mi_is_in_heap_region(const void* p) mi_attr_noexcept {
  return mi_is_valid_pointer(p);
}

void _mi_segment_map_unsafe_destroy(void) {
  for (size_t i = 0; i < MI_SEGMENT_MAP_MAX_PARTS; i++) {
    mi_segmap_part_t* part = mi_atomic_exchange_ptr_relaxed(mi_segmap_part_t, &mi_segment_map[i], NULL);
    if (part != NULL) {
      _mi_os_free(part, sizeof(mi_segmap_part_t), part->memid);
    }
  }
}
