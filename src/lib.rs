//! # gcmalloc
//!
//! A `#[global_allocator]` on a vendored, patched mimalloc v2.5.2, for
//! language runtimes, interpreters and garbage-collected data stores.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
//!
//! let s = String::from("allocated by gcmalloc");
//! assert!(gcmalloc::owns(s.as_ptr()));
//! ```
//!
//! gcmalloc's copy of mimalloc has its symbols renamed, so it links beside the
//! `mimalloc` crate (any version) without either calling the other.
//!
//! # Concepts
//!
//! * **mutator**: a thread of the runtime that allocates and changes the
//!   object graph (as opposed to the collector). A stop of the world parks
//!   registered threads only ([`register_thread`]): a mutator that was never
//!   registered runs straight through a stop ([`current_thread_state`] is
//!   the check).
//! * **slow-path event**: one of mimalloc's rarer allocator steps (a page
//!   fills up, a fresh page is taken, a page is emptied, a thread exits); the
//!   estimate is updated only there, never on the allocation or free fast
//!   path.
//! * **the estimate** ([`estimate`]): the live bytes of every page as of its
//!   last slow-path event; exact again after a collection once the heaps are
//!   *refreshed* ([`refresh_estimate`]).
//! * **QSBR**, quiescent-state-based reclamation: a registered thread
//!   promises not to hold references to shared objects across a *quiescent
//!   state* ([`ThreadHandle::quiescent`]); an object unlinked and *retired*
//!   ([`qsbr::retire`]) is dropped once every such thread has passed one.
//! * **retire** ([`qsbr::retire`], [`qsbr::retire_block`]): hand an unlinked
//!   object to QSBR, which drops or frees it once a *goal* is reached; until
//!   then it is a *pending* item ([`qsbr::Stats::pending_bytes`]). ("Delayed"
//!   names page reuse only, never a retire.)
//! * **goal**: a point of the QSBR write sequence; *reached* once every
//!   registered thread online when it was made has passed a *quiescent
//!   state* ([`ThreadHandle::quiescent`]) or gone offline (detached, exited).
//! * **delayed page reuse** (type-stable pages, [`set_page_reuse_delay`]): an
//!   emptied mimalloc page waits for a goal before another size class, heap
//!   or the OS may have it; such a page is a *delayed page*
//!   ([`Usage::delayed_bytes`], [`release_delayed_pages`]; `page-delay.c`
//!   and `delay_*` in the C), which keeps its *goal tag* (`goal_tag`, 32
//!   bits that stand for its goal or a later one). Not to be confused with mimalloc's own
//!   *delayed-free* list and flag (`MI_USE_DELAYED_FREE`,
//!   `thread_delayed_free` in its C code), which route frees by other
//!   threads into full pages through the owner; always named as
//!   mimalloc's.
//! * **orphans**: retired objects whose thread exited or detached, or that an
//!   unregistered thread retired; any online thread's quiescent states
//!   process them.
//! * **sync** (of a page, for the estimate): setting what a page contributes
//!   to the estimate to its live bytes, on an allocator slow path;
//!   [`refresh_estimate`] syncs every page of a heap.
//! * **attached / detached**: a registered thread that may read shared
//!   memory without locks (and holds goals back, and is waited for by a
//!   stop), or one that may not (and is neither).
//! * **safepoint**: a point where a mutator may be parked by a stop of the
//!   world; in gcmalloc, every [`ThreadHandle::quiescent`] call (and attach).
//! * **optimistic reader**: a lock-free reader that may load a pointer to an
//!   object that is being freed, read its header, and re-check; type-stable
//!   pages make that read safe.
//! * **GcHeap** ([`GcHeap`]): a heap for one purpose (a runtime's collected
//!   objects), named by a mimalloc heap *tag*; each thread allocates from it
//!   through its own mimalloc heap of that tag, and a page holding its
//!   blocks belongs to a heap of that tag or to none (abandoned).
//!   [`GcHeap::estimate`] is its share of the estimate.
//! * **young allocations**: what [`GcTrigger::record_alloc`] counts since the
//!   last collection: objects the collector manages, 1 per object whatever
//!   buffer it owns (the buffer's bytes reach the trigger through the
//!   estimate), never bytes.
//!
//! # Layout
//!
//! Imports point down only. At the root, the allocator (`allocator.rs`,
//! [`GcMalloc`]), the estimate (`accounting.rs`) and the C they call
//! (`csrc/` and the vendored mimalloc). Above it `runtime/`: the thread
//! registry and the retired-item queue at the bottom, then [`qsbr`],
//! stop-the-world (`world.rs`), [`ThreadHandle`] (`thread.rs`), `fork.rs` and
//! the type-stable page hooks. On top `pacing/`: [`GcTrigger`] and
//! [`DebtMeter`].
//!
//! # Guide
//!
//! | you want | use |
//! | --- | --- |
//! | the bytes the program holds, at any moment, for a few ns | [`estimate`] (live bytes as of each page's last slow-path event), exact again after a collection with [`refresh_estimate`] or [`StopTheWorld::refresh_estimate`]; the breakdown, what is counted and the error bounds in [`usage`] / [`Usage`]; a recount in [`audit`] |
//! | to decide when to collect | [`GcTrigger`]: a young-allocation threshold gated by memory growth ([`Pacing`]), reading the estimate or RSS ([`MemorySource`]); MemBalancer's time- and memory-aware limit ([`Pacing::BALANCED`]); a soft memory limit, the container's or yours, with a GC CPU cap ([`MemoryLimit`]); why it collected ([`GcTrigger::stats`]) |
//! | an incremental collector to keep its pauses short | [`GcTrigger::incremental_pacing`]: the balanced limit as a sleep and a work rate per allocated byte ([`IncrementalPacing`]); [`DebtMeter`] for count-paced collectors |
//! | a runtime's objects apart from the rest of the program, with their own figure and a walk of their blocks | [`GcHeap`]: an `Allocator` (`Box<T, &GcHeap>`), [`GcHeap::estimate`], [`GcHeap::visit_blocks`], and [`MemorySource::GcHeap`] for the trigger |
//! | lock-free readers and retired objects | [`register_thread`], [`ThreadHandle::quiescent`], [`qsbr::retire`], [`qsbr::retire_block`] (the algorithm is described in [`qsbr`]); a report of a thread that holds goals back ([`qsbr::set_lag_report`]) |
//! | to stop the mutators | [`stop_the_world`], or [`stop_the_world_timeout`], which names the threads that did not reach a safepoint ([`StallError`]); only registered threads are stopped, so assert [`current_thread_state`] in each mutator (or count [`qsbr::Stats::registered_threads`]) |
//! | to collect on a dedicated collector thread (one that frees the mutators' objects) | [`GcTrigger::collected`] called before the [`StopTheWorld`] is dropped: it refreshes every parked mutator's share of the estimate |
//! | a registered thread to block (join, recv, a lock, I/O) without holding QSBR goals or stops back | [`ThreadHandle::blocking`] |
//! | freed object headers to stay readable by optimistic readers | type-stable pages, on by default: an emptied page serves only its own size class until every registered thread has quiesced ([`set_page_reuse_delay`]) |
//!
//! A runtime's collector loop, in short:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
//!
//! let trigger = gcmalloc::GcTrigger::default(); // reads gcmalloc::estimate()
//! let me = gcmalloc::register_thread();         // a mutator thread
//! for _ in 0..10_000 {
//!     let object = Box::new([0u64; 4]);         // the runtime allocates...
//!     trigger.record_alloc(1);
//!     drop(object);
//!     me.quiescent();                           // ...and reaches safepoints
//!     if trigger.should_collect() {
//!         let world = gcmalloc::stop_the_world(); // other mutators parked
//!         /* mark and sweep */
//!         trigger.collected();                  // every parked thread's share, then the baseline
//!         drop(world);
//!     }
//! }
//! ```
//!
//! The costs behind these calls (measured by the crate's benchmarks on a
//! 2-core machine): [`estimate`] about 1 ns at any thread count (two loads inlined), against
//! about 1 µs to read RSS from `/proc`; [`ThreadHandle::quiescent`] under
//! 1 ns; [`GcTrigger::record_alloc`] about 1 ns.

#![warn(missing_docs)]
// `--features nightly`: `&GcHeap` implements the standard library's
// `Allocator`, which allocator-api2 then re-exports.
#![cfg_attr(feature = "nightly", feature(allocator_api))]

mod accounting;
mod allocator;
mod ffi;
mod gc_heap;
mod huge_pages;
mod pacing;
mod runtime;
mod sync;

pub use accounting::{audit, estimate, refresh_estimate, release_free_memory, thread_estimate, usage, Audit, Usage};
pub use allocator::GcMalloc;
#[doc(hidden)]
pub use gc_heap::__block_owner;
pub use gc_heap::{GcHeap, GcHeapError};
pub use huge_pages::{
    huge_page_deferred_arenas, huge_page_threshold, set_huge_page_threshold, DEFAULT_HUGE_PAGE_THRESHOLD,
};
pub use pacing::balanced::{
    CollectionSample, IncrementalPacing, MemBalancer, ALLOCATION_SMOOTHING, COLLECTION_SMOOTHING,
};
pub use pacing::cgroup::container_memory_limit;
pub use pacing::debt::DebtMeter;
pub use pacing::limit::{CpuBucket, MemoryLimit, CPU_BUCKET, LIMIT_REREAD};
pub use pacing::stats::{CollectReason, TriggerStats};
pub use pacing::trigger::{GcTrigger, MemorySource, Pacing, TriggerBuilder, RECORD_BATCH};
pub use runtime::qsbr;
pub use runtime::registry::ThreadState;
#[cfg(loom)]
#[doc(hidden)]
pub use runtime::thread::__loom_exit_guard;
pub use runtime::thread::{current_thread_state, register_thread, ThreadHandle};
#[doc(hidden)]
pub use runtime::type_stable::__test_treat_pages_as_far;
pub use runtime::type_stable::{
    delayed_page_budget, page_reuse_delay, release_delayed_pages, set_delayed_page_budget, set_page_reuse_delay,
};
pub use runtime::world::{
    set_stall_report, stop_the_world, stop_the_world_timeout, StallError, StalledThread, StopTheWorld,
};

/// True if `ptr` points into memory managed by gcmalloc's mimalloc.
///
/// True for every byte of every block gcmalloc returned, at any size and
/// alignment (and for any address inside one of mimalloc's arenas). Pointers
/// from another allocator, including another copy of mimalloc in the same
/// process, return false. Any address may be asked about at any time: the
/// answer comes from mimalloc's own tables, never from reading the memory
/// at or near `ptr`, so it cannot fault, even while another thread frees the
/// block (the answer is then either). Cheap: a check of mimalloc's arenas
/// and one load in its segment map.
///
/// ```
/// let b = Box::new(7u64);
/// # #[global_allocator] static G: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
/// assert!(gcmalloc::owns(&*b as *const u64 as *const u8));
/// assert!(!gcmalloc::owns(core::ptr::null()));
/// ```
pub fn owns(ptr: *const u8) -> bool {
    // SAFETY: mi_is_in_heap_region only compares the address with mimalloc's
    // arena table and segment map, which stay mapped for the process's life;
    // it dereferences neither `ptr` nor a segment header.
    unsafe { ffi::mi_is_in_heap_region(ptr.cast()) }
}

/// The version of the vendored mimalloc, as `major*10000 + minor*100 + patch`
/// (20502 for v2.5.2).
pub fn mimalloc_version() -> u32 {
    // SAFETY: a constant query with no preconditions.
    unsafe { ffi::mi_version() as u32 }
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
