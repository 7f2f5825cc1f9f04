//! `--runtime gc-arena`: the workloads on gc-arena's incremental `Arena`
//! (the collector of the piccolo Lua VM and of Ruffle). It has no reference
//! counting: all garbage waits for the collector. The policies:
//!
//! - `own`: gc-arena's default pacing, by object counts: `collect_debt` at
//!   every safepoint;
//! - `debt` (gc-arena only): the same, with the estimate's growth beyond the
//!   count added as debt (`gcmalloc::DebtMeter`): memory the count cannot
//!   see makes the incremental collector work sooner. It helps where bytes
//!   and counts diverge; where every chain owns the same payload, bytes grow
//!   as the count does and it paces like `own`;
//! - `count`, `rss`, `estimate`, `goal`: a `GcTrigger` of that policy;
//!   `finish_cycle` (a full collection) when it says so.
//!
//! The workload's references are `DynamicRoot`s, gc-arena's handles that
//! live outside the arena and keep their object alive while held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gc_arena::arena::CollectionPhase;
use gc_arena::lock::RefLock;
use gc_arena::{Arena, Collect, DynamicRoot, DynamicRootSet, Gc, Rootable};
use gcmalloc::{DebtMeter, GcTrigger};

use crate::heap::TrashGauge;
use crate::workloads::{child_index, Runtime};

#[derive(Collect)]
#[collect(no_drop)]
pub struct Node<'gc> {
    edges: Vec<Gc<'gc, RefLock<Node<'gc>>>>,
    keys: Vec<u64>,
    #[collect(require_static)]
    _payload: Vec<u8>,
    #[collect(require_static)]
    _tally: Tally,
}

/// Counts a node's end in the run's trash gauge.
pub struct Tally(Arc<TrashGauge>);

impl Drop for Tally {
    fn drop(&mut self) {
        self.0.sub(1);
    }
}

pub type NodeRoot = DynamicRoot<Rootable![RefLock<Node<'_>>]>;

/// How the safepoint paces the collector.
pub enum Pacing {
    Own,
    Debt(DebtMeter),
    Trigger(Box<GcTrigger>),
}

pub struct GcArena {
    arena: Arena<Rootable![DynamicRootSet<'_>]>,
    pacing: Pacing,
    gauge: Arc<TrashGauge>,
    /// Allocations since the last safepoint (what gc-arena already charged).
    allocated: usize,
    pub pauses: Vec<Duration>,
    pub collections: usize,
}

impl GcArena {
    pub fn new(pacing: Pacing, gauge: Arc<TrashGauge>) -> Self {
        // A closure, not the path: the root set's lifetime is the arena's
        // (higher-ranked), which a function path does not unify with.
        #[allow(clippy::redundant_closure)]
        let arena = Arena::<Rootable![DynamicRootSet<'_>]>::new(|mc| DynamicRootSet::new(mc));
        GcArena { arena, pacing, gauge, allocated: 0, pauses: Vec::new(), collections: 0 }
    }

    /// Runs `f` on `node` mutably.
    fn with_node<T>(&mut self, node: &NodeRoot, f: impl FnOnce(&mut Node<'_>) -> T) -> T {
        self.arena.mutate(|mc, roots| f(&mut roots.fetch(node).borrow_mut(mc)))
    }

    /// Pays the collector's debt, timing it and counting finished cycles.
    fn collect_debt(&mut self) {
        if self.arena.metrics().allocation_debt() <= 0.0 {
            return;
        }
        let start = Instant::now();
        let before = self.arena.collection_phase();
        self.arena.collect_debt();
        let after = self.arena.collection_phase();
        if before != CollectionPhase::Sleeping && after == CollectionPhase::Sleeping {
            self.collections += 1;
        }
        self.pauses.push(start.elapsed());
    }
}

impl Runtime for GcArena {
    type Ref = NodeRoot;

    fn alloc(&mut self, payload: usize) -> NodeRoot {
        self.allocated += 1;
        if let Pacing::Trigger(trigger) = &self.pacing {
            trigger.record_alloc(1);
        }
        let tally = Tally(Arc::clone(&self.gauge));
        self.arena.mutate(|mc, roots| {
            let node = Node { edges: Vec::new(), keys: Vec::new(), _payload: vec![0xA5; payload], _tally: tally };
            roots.stash::<Rootable![RefLock<Node<'_>>]>(mc, Gc::new(mc, RefLock::new(node)))
        })
    }

    fn push(&mut self, from: &NodeRoot, key: Option<u64>, to: &NodeRoot) {
        self.arena.mutate(|mc, roots| {
            let to = roots.fetch(to);
            let mut node = roots.fetch(from).borrow_mut(mc);
            node.edges.push(to);
            node.keys.extend(key);
        })
    }

    fn first_key(&mut self, node: &NodeRoot) -> u64 {
        self.with_node(node, |n| n.keys[0])
    }

    fn child_for(&mut self, node: &NodeRoot, key: u64) -> NodeRoot {
        self.arena.mutate(|mc, roots| {
            let inner = roots.fetch(node).borrow();
            roots.stash::<Rootable![RefLock<Node<'_>>]>(mc, inner.edges[child_index(&inner.keys, key)])
        })
    }

    fn remove(&mut self, leaf: &NodeRoot, key: u64) -> NodeRoot {
        self.arena.mutate(|mc, roots| {
            let mut leaf = roots.fetch(leaf).borrow_mut(mc);
            let i = leaf.keys.binary_search(&key).expect("deleted keys are present");
            leaf.keys.remove(i);
            let value = leaf.edges.remove(i);
            roots.stash::<Rootable![RefLock<Node<'_>>]>(mc, value)
        })
    }

    fn insert(&mut self, leaf: &NodeRoot, key: u64, value: &NodeRoot) {
        self.arena.mutate(|mc, roots| {
            let value = roots.fetch(value);
            let mut leaf = roots.fetch(leaf).borrow_mut(mc);
            let i = leaf.keys.binary_search(&key).expect_err("re-inserted keys are absent");
            leaf.keys.insert(i, key);
            leaf.edges.insert(i, value);
        })
    }

    /// The workload's handles are roots already.
    fn hold(&mut self, _: &NodeRoot) {}

    fn release(&mut self) {}

    fn drop_chain(&mut self, head: NodeRoot, len: usize, _cyclic: bool) {
        // No reference counting: every chain waits for the collector.
        self.gauge.add(len);
        drop(head);
    }

    fn safepoint(&mut self) {
        let allocated = std::mem::take(&mut self.allocated);
        match &mut self.pacing {
            Pacing::Own => self.collect_debt(),
            Pacing::Debt(meter) => {
                let live = self.arena.metrics().total_gc_count();
                self.arena.metrics().adjust_debt(meter.extra_debt(allocated, live));
                self.collect_debt();
            }
            Pacing::Trigger(trigger) => {
                if trigger.should_collect() {
                    let start = Instant::now();
                    self.arena.finish_cycle();
                    trigger.collected();
                    self.pauses.push(start.elapsed());
                    self.collections += 1;
                }
            }
        }
    }
}
