//! The toy runtime: objects allocated through `GcMalloc`, a tracing
//! (mark-sweep) collector, and a `GcTrigger` that decides when to run it.
//!
//! Reference counting is simulated where the workload knows a dropped
//! structure is acyclic (`free_acyclic`); cyclic garbage waits for the
//! collector, exactly the garbage CPython's cycle GC exists for.

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use gcmalloc::GcTrigger;

/// A handle to a heap object. Valid while the object is reachable from the
/// roots the workload passes to [`Heap::safepoint`] (or was allocated since
/// the last safepoint).
pub type Gc = NonNull<Obj>;

/// One runtime object: outgoing references, optional sorted keys (B-tree
/// nodes) and an optional payload (`--extra` bytes).
pub struct Obj {
    marked: bool,
    /// Index in `Heap::objects`, so that refcount-style frees are O(1).
    slot: usize,
    pub edges: Vec<Gc>,
    pub keys: Vec<u64>,
    /// Held only for the memory it occupies.
    _payload: Vec<u8>,
}

/// Access to an object's fields.
///
/// # Safety
/// `gc` must be a live object of the heap it came from (reachable from the
/// workload's roots, or allocated since the last safepoint), and no other
/// reference to it may be in use.
pub unsafe fn obj<'a>(gc: Gc) -> &'a mut Obj {
    // SAFETY: the caller guarantees the object is live and unaliased.
    unsafe { &mut *gc.as_ptr() }
}

/// Collection statistics of one heap.
#[derive(Default)]
pub struct GcStats {
    pub pauses: Vec<Duration>,
    /// Unreachable objects not yet collected, as the workload reported them.
    pub trash: usize,
    pub max_trash: usize,
}

pub struct Heap {
    objects: Vec<Gc>,
    mark_stack: Vec<Gc>,
    roots: Vec<Gc>,
    pub stats: GcStats,
}

impl Heap {
    pub fn new() -> Self {
        Heap {
            objects: Vec::new(),
            mark_stack: Vec::new(),
            roots: Vec::new(),
            stats: GcStats::default(),
        }
    }

    /// A new object with `payload` bytes, written so that they are resident.
    pub fn alloc(&mut self, trigger: &GcTrigger, payload: usize) -> Gc {
        let obj = Box::new(Obj {
            marked: false,
            slot: self.objects.len(),
            edges: Vec::new(),
            keys: Vec::new(),
            _payload: vec![0xA5; payload],
        });
        let gc = NonNull::from(Box::leak(obj));
        self.objects.push(gc);
        trigger.record_alloc(1);
        gc
    }

    /// The workload dropped its last references to `n` objects of a cycle.
    pub fn unrooted(&mut self, n: usize) {
        self.stats.trash += n;
        self.stats.max_trash = self.stats.max_trash.max(self.stats.trash);
    }

    /// Frees `root` and everything reachable from it at once, as reference
    /// counting would.
    ///
    /// # Safety
    /// The structure under `root` must be acyclic, owned by nothing else,
    /// and unreachable from the roots.
    pub unsafe fn free_acyclic(&mut self, root: Gc) {
        let mut stack = std::mem::take(&mut self.mark_stack);
        stack.push(root);
        while let Some(gc) = stack.pop() {
            // SAFETY: the caller guarantees each object under `root` is live
            // and reachable only through this structure, so it is visited
            // once and freed once.
            let object = unsafe { Box::from_raw(gc.as_ptr()) };
            stack.extend_from_slice(&object.edges);
            let last = self.objects.pop().expect("object in heap");
            if last != gc {
                // SAFETY: `last` is a live object of this heap.
                unsafe { obj(last) }.slot = object.slot;
                self.objects[object.slot] = last;
            }
        }
        self.mark_stack = stack;
    }

    /// Collects if `trigger` says so; `roots` pushes every root. Returns
    /// whether it collected.
    pub fn safepoint(&mut self, trigger: &GcTrigger, roots: impl FnOnce(&mut Vec<Gc>)) -> bool {
        if !trigger.should_collect() {
            return false;
        }
        self.collect(roots);
        trigger.collected();
        true
    }

    /// Marks from the roots and frees every unmarked object.
    pub fn collect(&mut self, roots: impl FnOnce(&mut Vec<Gc>)) {
        let start = Instant::now();
        self.roots.clear();
        roots(&mut self.roots);
        self.mark();
        let freed = self.sweep();
        assert_eq!(
            freed, self.stats.trash,
            "collector freed other objects than the workload dropped"
        );
        self.stats.trash = 0;
        self.stats.pauses.push(start.elapsed());
    }

    fn mark(&mut self) {
        let mut stack = std::mem::take(&mut self.mark_stack);
        stack.extend_from_slice(&self.roots);
        while let Some(gc) = stack.pop() {
            // SAFETY: every object reachable from the roots is live.
            let object = unsafe { obj(gc) };
            if !object.marked {
                object.marked = true;
                stack.extend_from_slice(&object.edges);
            }
        }
        self.mark_stack = stack;
    }

    fn sweep(&mut self) -> usize {
        let mut kept = 0;
        for i in 0..self.objects.len() {
            let gc = self.objects[i];
            // SAFETY: every object in `objects` is live until freed here.
            let object = unsafe { obj(gc) };
            if object.marked {
                object.marked = false;
                object.slot = kept;
                self.objects[kept] = gc;
                kept += 1;
            } else {
                // SAFETY: unmarked means unreachable from the roots: no one
                // can use it again, and it leaves `objects` below.
                drop(unsafe { Box::from_raw(gc.as_ptr()) });
            }
        }
        let freed = self.objects.len() - kept;
        self.objects.truncate(kept);
        freed
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        for &gc in &self.objects {
            // SAFETY: each object is freed once, and the heap is going away.
            drop(unsafe { Box::from_raw(gc.as_ptr()) });
        }
    }
}
