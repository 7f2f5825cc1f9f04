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
//! - `count`, `rss`, `estimate`, `goal`, `balanced`: a `GcTrigger` of that
//!   policy; `finish_cycle` (a full collection) when it says so;
//! - `incremental`: MemBalancer's limit as incremental pacing: sleep until
//!   memory is half way from the live bytes to the limit, then step the
//!   collector as memory grows, with the work per allocated byte that ends
//!   the cycle at the limit (`GcTrigger::incremental_pacing`); each step is
//!   gc-arena's `collect_debt`.
//!
//! `own` and `debt` take gc-arena's `sleep_factor` as their knob (percent).
//!
//! The workload's references are `DynamicRoot`s, gc-arena's handles that
//! live outside the arena and keep their object alive while held.

use std::sync::Arc;
use std::time::Duration;

use gc_arena::arena::CollectionPhase;
use gc_arena::lock::RefLock;
use gc_arena::metrics::Pacing as ArenaPacing;
use gc_arena::{Arena, Collect, DynamicRoot, DynamicRootSet, Gc, Rootable};
use gcmalloc::{DebtMeter, GcTrigger};

use crate::heap::TrashGauge;
use crate::metrics::PauseTimer;
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
    Incremental(Box<Incremental>),
}

impl Pacing {
    pub fn incremental(trigger: GcTrigger) -> Pacing {
        let mark = gcmalloc::estimate();
        Pacing::Incremental(Box::new(Incremental { trigger, mark, cycle: None }))
    }
}

/// `incremental`'s state: the balanced trigger (timed by the cycles, not
/// asked), the estimate at the last safepoint, and the cycle under way.
pub struct Incremental {
    trigger: GcTrigger,
    mark: usize,
    cycle: Option<Cycle>,
}

struct Cycle {
    /// The balanced limit the cycle must end by (bytes).
    limit: usize,
    /// Collection time so far (the sum of its steps).
    took: Duration,
    /// Debt charged so far this cycle (the work paid for).
    paid: f64,
    /// Whether a step left the collector awake (a later sleep ends the cycle).
    awake: bool,
}

/// gc-arena's work per remembered object under its default pacing
/// (mark 0.1 + trace 0.4 + keep 0.05): debt units per object traced.
const WORK_PER_OBJECT: f64 = 0.55;

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
    /// `sleep`: gc-arena's `sleep_factor` (`own` and `debt`'s knob).
    pub fn new(pacing: Pacing, gauge: Arc<TrashGauge>, sleep: f64) -> Self {
        // A closure, not the path: the root set's lifetime is the arena's
        // (higher-ranked), which a function path does not unify with.
        #[allow(clippy::redundant_closure)]
        let arena = Arena::<Rootable![DynamicRootSet<'_>]>::new(|mc| DynamicRootSet::new(mc));
        let arena_pacing = match pacing {
            // The balanced limit decides when to wake: gc-arena never sleeps
            // on its own count.
            Pacing::Incremental(_) => ArenaPacing { sleep_factor: 0.0, min_sleep: 0, ..ArenaPacing::DEFAULT },
            _ => ArenaPacing { sleep_factor: sleep, ..ArenaPacing::DEFAULT },
        };
        arena.metrics().set_pacing(arena_pacing);
        GcArena { arena, pacing, gauge, allocated: 0, pauses: Vec::new(), collections: 0 }
    }

    /// Runs `f` on `node` mutably.
    fn with_node<T>(&mut self, node: &NodeRoot, f: impl FnOnce(&mut Node<'_>) -> T) -> T {
        self.arena.mutate(|mc, roots| f(&mut roots.fetch(node).borrow_mut(mc)))
    }

    /// The trigger's counters, if the policy has one.
    pub fn trigger_stats(&self) -> Option<gcmalloc::TriggerStats> {
        match &self.pacing {
            Pacing::Trigger(trigger) => Some(trigger.stats()),
            Pacing::Incremental(inc) => Some(inc.trigger.stats()),
            Pacing::Own | Pacing::Debt(_) => None,
        }
    }

    /// Pays the collector's debt, timing it and counting finished cycles.
    fn collect_debt(&mut self) {
        if self.arena.metrics().allocation_debt() <= 0.0 {
            return;
        }
        let timer = PauseTimer::start();
        let before = self.arena.collection_phase();
        self.arena.collect_debt();
        let after = self.arena.collection_phase();
        if before != CollectionPhase::Sleeping && after == CollectionPhase::Sleeping {
            self.collections += 1;
        }
        self.pauses.push(timer.stop());
    }
}

impl GcArena {
    /// `incremental`'s safepoint: asleep until memory is half way to the
    /// balanced limit (`IncrementalPacing::sleep`); then, per byte allocated,
    /// the debt that finishes the cycle's work as memory reaches the limit
    /// (gc-arena counts its work in objects, so the rate is the objects at
    /// the cycle's start over the room left, not `work_per_byte`).
    fn incremental_step(&mut self, allocated: usize) {
        let Pacing::Incremental(inc) = &mut self.pacing else { return };
        let now = gcmalloc::estimate();
        let grown = now.saturating_sub(inc.mark);
        inc.mark = now;
        let metrics = self.arena.metrics().clone();
        if inc.cycle.is_none() {
            let pacing = inc.trigger.incremental_pacing().expect("incremental runs a balanced trigger");
            let live = inc.trigger.baseline();
            if (now as f64) < live as f64 * (1.0 + pacing.sleep) {
                metrics.adjust_debt(-metrics.allocation_debt()); // asleep: no debt
                return;
            }
            inc.trigger.collection_started();
            metrics.adjust_debt(-metrics.allocation_debt());
            let limit = inc.trigger.heap_limit().expect("a balanced trigger has a limit");
            inc.cycle = Some(Cycle { limit, took: Duration::ZERO, paid: 0.0, awake: false });
        }
        let cycle = inc.cycle.as_mut().expect("set above");
        let timer = PauseTimer::start();
        // The work left (every object at `WORK_PER_OBJECT`, less what this
        // cycle paid) over the room left: an even rate that rises only if
        // the cycle falls behind.
        let room = cycle.limit.saturating_sub(now);
        let at_limit = room == 0;
        if !at_limit {
            let all = metrics.total_gc_count() as f64 * WORK_PER_OBJECT;
            let left = (all - cycle.paid).max(all * 0.05);
            let debt = grown as f64 * left / room as f64;
            // Never less than gc-arena's own unit per allocated object: a
            // cycle must end even when the live bytes (the work) are few.
            metrics.adjust_debt((debt - allocated as f64).max(0.0));
            cycle.paid += debt.max(allocated as f64);
            self.arena.collect_debt();
        } else {
            self.arena.finish_cycle();
        }
        let took = timer.stop();
        self.pauses.push(took);
        cycle.took += took;
        let asleep = self.arena.collection_phase() == CollectionPhase::Sleeping;
        if asleep && (cycle.awake || at_limit) {
            inc.trigger.collected_in(cycle.took);
            inc.mark = gcmalloc::estimate();
            inc.cycle = None;
            self.collections += 1;
        } else {
            cycle.awake |= !asleep;
        }
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
            Pacing::Incremental(_) => self.incremental_step(allocated),
            Pacing::Trigger(trigger) => {
                if trigger.should_collect() {
                    let timer = PauseTimer::start();
                    self.arena.finish_cycle();
                    trigger.collected();
                    self.pauses.push(timer.stop());
                    self.collections += 1;
                }
            }
        }
    }
}
