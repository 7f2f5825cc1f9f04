//! The toy runtime: objects allocated through `GcMalloc`, a tracing
//! (mark-sweep) collector, and a `GcTrigger` that decides when to run it.
//!
//! Reference counting is simulated where the workload knows a dropped
//! structure is acyclic (`free_acyclic`); cyclic garbage waits for the
//! collector, exactly the garbage CPython's cycle GC exists for.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use gcmalloc::GcTrigger;

use crate::gc_heap::{ToyAlloc, ToyBox, ToyVec};
use crate::metrics::PauseTimer;

/// A handle to a heap object. Valid while the object is reachable from its
/// heap's roots at each safepoint (or was allocated since the last one).
pub type Gc = NonNull<Obj>;

/// One runtime object: outgoing references, optional sorted keys (B-tree
/// nodes) and an optional payload (`--extra` bytes), all in the heap
/// `--heap` chose ([`ToyAlloc`]).
pub struct Obj {
    marked: bool,
    /// Index in `Heap::objects`, so that refcount-style frees are O(1).
    slot: usize,
    pub edges: ToyVec<Gc>,
    pub keys: ToyVec<u64>,
    /// Held only for the memory it occupies.
    _payload: ToyVec<u8>,
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

/// Uncollected garbage across all heaps of a run, in objects.
#[derive(Default)]
pub struct TrashGauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl TrashGauge {
    pub fn now(&self) -> usize {
        self.now.load(Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max.load(Relaxed)
    }

    pub fn add(&self, n: usize) {
        let now = self.now.fetch_add(n, Relaxed) + n;
        self.max.fetch_max(now, Relaxed);
    }

    pub fn sub(&self, n: usize) {
        self.now.fetch_sub(n, Relaxed);
    }
}

/// A thread's view of the runtime: its heap, and the safepoint where a
/// collection may happen. Between safepoints the heap is the thread's own.
pub trait Mutator {
    fn heap(&mut self) -> &mut Heap;
    /// Collects if the trigger says so. Every object the workload still
    /// uses must be reachable from `heap().roots` here.
    fn safepoint(&mut self, trigger: &GcTrigger);
}

/// The toy runtime as the workloads see it: a mutator (one heap, or a thread
/// of `--threads`) and the trigger its safepoints consult.
pub struct Toy<'a, M> {
    pub mutator: &'a mut M,
    pub trigger: &'a GcTrigger,
}

impl<M: Mutator> crate::workloads::Runtime for Toy<'_, M> {
    type Ref = Gc;

    fn alloc(&mut self, payload: usize) -> Gc {
        self.mutator.heap().alloc(self.trigger, payload)
    }

    fn push(&mut self, from: &Gc, key: Option<u64>, to: &Gc) {
        // SAFETY: workloads pass live objects and hold no other borrow.
        let node = unsafe { obj(*from) };
        node.edges.push(*to);
        node.keys.extend(key);
    }

    fn first_key(&mut self, node: &Gc) -> u64 {
        // SAFETY: as in `push`.
        unsafe { obj(*node) }.keys[0]
    }

    fn child_for(&mut self, node: &Gc, key: u64) -> Gc {
        // SAFETY: tree nodes are reachable from the held root, hence live.
        let inner = unsafe { obj(*node) };
        inner.edges[crate::workloads::child_index(&inner.keys, key)]
    }

    fn remove(&mut self, leaf: &Gc, key: u64) -> Gc {
        // SAFETY: as in `child_for`.
        let leaf = unsafe { obj(*leaf) };
        let i = leaf.keys.binary_search(&key).expect("deleted keys are present");
        leaf.keys.remove(i);
        leaf.edges.remove(i)
    }

    fn insert(&mut self, leaf: &Gc, key: u64, value: &Gc) {
        // SAFETY: as in `child_for`.
        let leaf = unsafe { obj(*leaf) };
        let i = leaf.keys.binary_search(&key).expect_err("re-inserted keys are absent");
        leaf.keys.insert(i, key);
        leaf.edges.insert(i, *value);
    }

    fn hold(&mut self, r: &Gc) {
        self.mutator.heap().roots.push(*r);
    }

    fn release(&mut self) {
        self.mutator.heap().roots.clear();
    }

    fn drop_chain(&mut self, head: Gc, len: usize, cyclic: bool) {
        if cyclic {
            self.mutator.heap().unrooted(len);
        } else {
            // SAFETY: an open chain is acyclic, and this was its only reference.
            unsafe { self.mutator.heap().free_acyclic(head) };
        }
    }

    fn safepoint(&mut self) {
        self.mutator.safepoint(self.trigger);
    }
}

/// One thread's objects. The workload owns `roots`; everything else is
/// garbage at the next collection.
pub struct Heap {
    objects: Vec<Gc>,
    mark_stack: Vec<Gc>,
    pub roots: Vec<Gc>,
    /// Objects the workload reported unreachable since the last collection.
    trash: usize,
    gauge: Arc<TrashGauge>,
    /// GC pauses this heap's thread spent collecting.
    pub pauses: Vec<Duration>,
}

// SAFETY: a heap's objects are reachable only through the heap (workloads
// never share them between heaps), so moving a heap to another thread moves
// all access to its objects with it; `--threads` hands heaps between
// threads only through a Mutex.
unsafe impl Send for Heap {}

impl Heap {
    pub fn new(gauge: Arc<TrashGauge>) -> Self {
        Heap { objects: Vec::new(), mark_stack: Vec::new(), roots: Vec::new(), trash: 0, gauge, pauses: Vec::new() }
    }

    /// A new object with `payload` bytes, written so that they are resident.
    pub fn alloc(&mut self, trigger: &GcTrigger, payload: usize) -> Gc {
        let obj = ToyBox::new_in(
            Obj {
                marked: false,
                slot: self.objects.len(),
                edges: ToyVec::new_in(ToyAlloc),
                keys: ToyVec::new_in(ToyAlloc),
                _payload: allocator_api2::vec![in ToyAlloc; 0xA5; payload],
            },
            ToyAlloc,
        );
        let gc = NonNull::from(ToyBox::leak(obj));
        self.objects.push(gc);
        trigger.record_alloc(1);
        gc
    }

    /// The workload dropped its last references to `n` objects of a cycle.
    pub fn unrooted(&mut self, n: usize) {
        self.trash += n;
        self.gauge.add(n);
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
            let object = unsafe { ToyBox::from_raw_in(gc.as_ptr(), ToyAlloc) };
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

    /// Marks from the roots and frees every unmarked object.
    pub fn collect(&mut self) {
        self.mark();
        let freed = self.sweep();
        assert_eq!(freed, self.trash, "collector freed other objects than the workload dropped");
        self.gauge.sub(freed);
        self.trash = 0;
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
                drop(unsafe { ToyBox::from_raw_in(gc.as_ptr(), ToyAlloc) });
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
            drop(unsafe { ToyBox::from_raw_in(gc.as_ptr(), ToyAlloc) });
        }
    }
}

/// The single-threaded runtime: a heap that collects itself.
impl Mutator for Heap {
    fn heap(&mut self) -> &mut Heap {
        self
    }

    fn safepoint(&mut self, trigger: &GcTrigger) {
        if trigger.should_collect() {
            let timer = PauseTimer::start();
            self.collect();
            trigger.collected();
            self.pauses.push(timer.stop());
        }
    }
}
