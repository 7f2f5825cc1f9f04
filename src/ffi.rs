//! Raw bindings to gcmalloc's own, renamed copy of mimalloc.
//!
//! `build.rs` renames every symbol of the vendored mimalloc with the `gcm_`
//! prefix, so these declarations keep mimalloc's names on the Rust side and
//! name the renamed symbols with `link_name`. They can never bind to another
//! mimalloc linked into the same binary (e.g. by the `mimalloc` crate).
//!
//! Everything here is `unsafe` and follows mimalloc's C contracts
//! (`vendor/mimalloc/include/mimalloc.h`).

use core::ffi::{c_int, c_void};
use core::sync::atomic::AtomicIsize;

macro_rules! mimalloc_fns {
    ($( $(#[$meta:meta])* fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? ; )*) => {
        extern "C" {
            $(
                $(#[$meta])*
                #[link_name = concat!("gcm_", stringify!($name))]
                pub fn $name($($arg: $ty),*) $(-> $ret)?;
            )*
        }
    };
}

mimalloc_fns! {
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_zalloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, newsize: usize) -> *mut c_void;
    fn mi_malloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    fn mi_zalloc_aligned(size: usize, alignment: usize) -> *mut c_void;
    fn mi_realloc_aligned(p: *mut c_void, newsize: usize, alignment: usize) -> *mut c_void;
    fn mi_free(p: *mut c_void);
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_version() -> c_int;
    fn mi_is_in_heap_region(p: *const c_void) -> bool;
}

/// Hooks of the delayed page reuse patch (`mi_page_goal_fun`,
/// `mi_goal_reached_fun`); see `crate::runtime::type_stable`.
pub type PageGoalFn = extern "C" fn(page_bytes: usize) -> u32;
pub type GoalReachedFn = extern "C" fn(tag: u32) -> bool;

/// The figure an estimate reads (`mi_acct_figure_t` in `csrc/gcmalloc.h`,
/// same layout): two counters on a cache line of their own, loaded without
/// a call into C.
#[repr(C, align(64))]
pub struct Figure {
    /// The heaps' published counters (see `csrc/accounting.c`).
    pub published: AtomicIsize,
    /// The bytes abandoned pages carry.
    pub abandoned: AtomicIsize,
}

const _: () = assert!(core::mem::size_of::<Figure>() == 64, "one cache line, as mi_decl_cache_align makes it in C");

extern "C" {
    /// The process's figure.
    #[link_name = "gcm_mi_acct_figure"]
    pub static mi_acct_figure: Figure;
    /// Each GC heap tag's figure.
    #[link_name = "gcm_mi_gc_tag_figure"]
    pub static mi_gc_tag_figure: [Figure; 256];
}

mimalloc_fns! {
    /// Fills a `mi_acct_usage_t`, whose layout `Usage` has.
    fn mi_acct_usage(usage: *mut crate::Usage);
    /// Fills a `mi_acct_audit_t`, whose layout `Audit` has.
    fn mi_acct_audit(audit: *mut crate::Audit);
    /// Syncs every page of `heap` (NULL: the calling thread's); another
    /// thread's heap only while that thread is parked at a safepoint.
    fn mi_acct_refresh(heap: *mut c_void);
    /// `mi_acct_refresh` for every heap of `heap`'s thread (its GcHeaps'
    /// included), on the same terms.
    fn mi_acct_refresh_thread(heap: *mut c_void);
    fn mi_heap_get_default() -> *mut c_void;
    /// What `heap`'s pages carry (NULL: the calling thread's heap).
    fn mi_acct_heap_bytes(heap: *const c_void) -> usize;
    fn mi_page_delay_set_hooks(goal: PageGoalFn, reached: GoalReachedFn);
    fn mi_page_delay_set_budget(bytes: usize);
    fn mi_page_delay_budget() -> usize;
    /// Tests only: treat every page as lying above 2^48.
    fn mi_page_delay_test_far(on: bool);
    fn mi_collect(force: bool);
    fn mi_thp_set_threshold(bytes: usize);
    fn mi_thp_get_threshold() -> usize;
    fn mi_thp_deferred_arenas() -> usize;
}

/// Visitor of `mi_gc_heap_visit_blocks`: a live block and its usable size;
/// false stops the walk.
pub type GcBlockFn = unsafe extern "C" fn(block: *mut c_void, block_size: usize, arg: *mut c_void) -> bool;

// GC heaps (`csrc/gc-heap.c`): `tag` names the purpose; the allocation
// functions use the calling thread's heap of that tag.
mimalloc_fns! {
    fn mi_gc_heap_tag_new() -> u8;
    fn mi_gc_heap_tag_drop(tag: u8);
    fn mi_gc_heap_malloc(tag: usize, size: usize) -> *mut c_void;
    fn mi_gc_heap_zalloc(tag: usize, size: usize) -> *mut c_void;
    fn mi_gc_heap_malloc_aligned(tag: usize, size: usize, alignment: usize) -> *mut c_void;
    fn mi_gc_heap_zalloc_aligned(tag: usize, size: usize, alignment: usize) -> *mut c_void;
    fn mi_gc_heap_realloc_aligned(tag: usize, p: *mut c_void, newsize: usize, alignment: usize) -> *mut c_void;
    fn mi_gc_heap_refresh(tag: u8, all: bool);
    fn mi_gc_heap_usage(tag: u8, usage: *mut crate::Usage);
    fn mi_gc_heap_audit(tag: u8, audit: *mut crate::Audit);
    fn mi_gc_heap_visit_blocks(tag: u8, fun: GcBlockFn, arg: *mut c_void) -> bool;
    fn mi_gc_block_owner(p: *const c_void) -> c_int;
}
