//! `--heap gc|global`: where the toy runtime's objects and payloads live, and
//! the memory figure its estimate-based triggers read.
//!
//! With `gc`, every object (`Box<Obj, ToyAlloc>`) and every vector it owns
//! (edges, keys, payload) is allocated in one `gcmalloc::GcHeap`, and the
//! triggers read `GcHeap::estimate()` (`MemorySource::GcHeap`): the runtime's
//! own live bytes, which the rest of the program (`--noise`) does not move.
//! With `global` (the default) they come from the global allocator and the
//! triggers read the process-wide `gcmalloc::estimate()`.
//!
//! The choice is process-wide, made once before the first object: every run
//! is a child process of its own.

use std::ptr::NonNull;
use std::sync::OnceLock;

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};
use gcmalloc::{GcHeap, MemorySource};

/// Where the toy's objects live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapKind {
    /// A `GcHeap` of the runtime's own, and triggers on its figure.
    Gc,
    /// The global allocator, and triggers on the process-wide figure.
    Global,
}

impl HeapKind {
    pub fn name(self) -> &'static str {
        match self {
            HeapKind::Gc => "gc",
            HeapKind::Global => "global",
        }
    }

    pub fn parse(name: &str) -> Result<HeapKind, String> {
        match name {
            "gc" => Ok(HeapKind::Gc),
            "global" => Ok(HeapKind::Global),
            other => Err(format!("unknown heap {other} (expected gc or global)")),
        }
    }
}

/// The toy's GcHeap, once `--heap gc` chose it.
static GC_HEAP: OnceLock<&'static GcHeap> = OnceLock::new();

/// Makes `kind` the heap of this process's toy objects. Call before the
/// first object: objects allocated before stay where they are.
pub fn choose(kind: HeapKind) {
    if kind == HeapKind::Gc {
        GC_HEAP.get_or_init(|| Box::leak(Box::new(GcHeap::new().expect("the first GcHeap of the process has a tag"))));
    }
}

/// The figure the estimate-based policies (`estimate`, `goal`, `balanced`,
/// `incremental`) read: the GcHeap's if chosen, else the process's.
pub fn estimate_source() -> MemorySource {
    match GC_HEAP.get() {
        Some(heap) => MemorySource::GcHeap(heap),
        None => MemorySource::Estimate,
    }
}

/// With `--heap gc`, after a collection that freed other threads' objects:
/// their shares of the GcHeap's figure, exact again (each thread's share is
/// otherwise synced at its own page events), so that the trigger's baseline
/// counts no garbage. `collected()` under a stop refreshes the threads
/// parked at a safepoint only, not those detached (waiting for their turn
/// to collect).
///
/// # Safety
///
/// As for `GcHeap::refresh_stopped`: no other thread allocates toy objects
/// or exits while it runs.
pub unsafe fn refresh_stopped(_world: &gcmalloc::StopTheWorld) {
    if let Some(heap) = GC_HEAP.get() {
        // SAFETY: the caller guarantees it.
        unsafe { heap.refresh_stopped() }
    }
}

/// The toy's allocator: the chosen GcHeap, or the global allocator. Zero
/// size, so that `--heap global` objects are laid out as they always were.
#[derive(Clone, Copy, Debug, Default)]
pub struct ToyAlloc;

impl ToyAlloc {
    fn target(self) -> &'static dyn Allocator {
        match GC_HEAP.get() {
            Some(heap) => heap,
            None => &Global,
        }
    }
}

// SAFETY: every call goes to the same allocator for the life of the process
// (`choose` runs before the first object and `GC_HEAP` is set once), so a
// block is always returned to, grown and shrunk by the allocator that
// allocated it, whose own `Allocator` contract then holds.
unsafe impl Allocator for ToyAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.target().allocate(layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees, for the allocator that allocated it.
        unsafe { self.target().deallocate(ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `deallocate`.
        unsafe { self.target().grow(ptr, old, new) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: as in `deallocate`.
        unsafe { self.target().shrink(ptr, old, new) }
    }
}

/// A toy object, in the chosen heap.
pub type ToyBox<T> = allocator_api2::boxed::Box<T, ToyAlloc>;
/// A vector a toy object owns, in the chosen heap.
pub type ToyVec<T> = allocator_api2::vec::Vec<T, ToyAlloc>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Chooses the GcHeap for the whole test process: no other test
    /// allocates toy objects.
    #[test]
    fn gc_objects_and_their_vectors_count_in_the_gc_heap_only() {
        choose(HeapKind::Gc);
        let heap = *GC_HEAP.get().expect("chosen");
        assert!(matches!(estimate_source(), MemorySource::GcHeap(h) if std::ptr::eq(h, heap)));
        let (before, process) = (heap.estimate(), gcmalloc::estimate());
        let payload: ToyVec<u8> = allocator_api2::vec![in ToyAlloc; 0xA5; 4 << 20];
        let object = ToyBox::new_in([0u64; 8], ToyAlloc);
        assert!(heap.estimate() >= before + (4 << 20), "the payload is in the GcHeap: {}", heap.estimate());
        assert!(gcmalloc::estimate() >= process + (4 << 20), "and in the process-wide figure");
        drop((payload, object));
        assert!(heap.estimate() < before + (1 << 20), "freed back: {}", heap.estimate());
    }
}
