//! # gcmalloc
//!
//! A `#[global_allocator]` on a vendored, patched mimalloc v2.3.2, for
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
//! For garbage-collected runtimes it also provides registered threads
//! ([`register_thread`]) with quiescent-state-based reclamation
//! ([`qsbr`]: [`qsbr::retire`], [`qsbr::free_delayed`]) and a stop-the-world
//! that starves no one and diagnoses stalls ([`stop_the_world`],
//! [`stop_the_world_timeout`]).
//!
//! gcmalloc's copy of mimalloc has its symbols renamed, so it links beside the
//! `mimalloc` crate (any version) without either calling the other.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod accounting;
mod allocator;
mod ffi;
mod proc_memory;
pub mod qsbr;
mod sync;
mod thread;
mod trigger;
mod type_stable;
mod world;

pub use accounting::{audit, estimate, usage, Audit, Usage};
pub use allocator::GcMalloc;
pub use thread::{register_thread, ThreadHandle, ThreadState};
pub use trigger::{GcTrigger, MemorySource, Pacing, TriggerBuilder, RECORD_BATCH};
pub use type_stable::{page_reuse_delay, release_delayed_pages, set_page_reuse_delay};
pub use world::{stop_the_world, stop_the_world_timeout, StallError, StalledThread, StopTheWorld};

/// True if `ptr` points into memory managed by gcmalloc's mimalloc.
///
/// Pointers from another allocator, including another copy of mimalloc in
/// the same process, return false. Cheap: a lookup in mimalloc's segment map.
///
/// ```
/// let b = Box::new(7u64);
/// # #[global_allocator] static G: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
/// assert!(gcmalloc::owns(&*b as *const u64 as *const u8));
/// assert!(!gcmalloc::owns(core::ptr::null()));
/// ```
pub fn owns(ptr: *const u8) -> bool {
    // SAFETY: mi_is_in_heap_region only looks the address up in mimalloc's
    // segment map; it never dereferences `ptr`.
    unsafe { ffi::mi_is_in_heap_region(ptr.cast()) }
}

/// The version of the vendored mimalloc, as `major*10000 + minor*100 + patch`
/// (20302 for v2.3.2).
pub fn mimalloc_version() -> u32 {
    // SAFETY: a constant query with no preconditions.
    unsafe { ffi::mi_version() as u32 }
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
