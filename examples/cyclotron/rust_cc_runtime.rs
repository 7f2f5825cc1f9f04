//! `--runtime rust-cc`: the workloads on rust-cc's `Cc` (reference counting
//! plus a thread-local cycle collector, after Bacon and Rajan).
//!
//! - `own`: rust-cc's automatic collection: `Cc::new` collects once the bytes
//!   of its `Cc` boxes pass a threshold that doubles (or halves) after each
//!   collection. It counts the boxes only, not the heap memory they own, so
//!   where garbage objects own large payloads its counts mislead;
//! - `count`, `rss`, `estimate`, `goal`, `balanced`: automatic collection off
//!   (`rust_cc::config::config(|c| c.set_auto_collect(false))`) and a
//!   `GcTrigger` of that policy, checked at the workload's safepoints, where
//!   `rust_cc::collect_cycles()` runs when it says so.
//!
//! Collections are rust-cc's own count (`rust_cc::state::executions_count`).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gcmalloc::GcTrigger;
use rust_cc::{Cc, Finalize, Trace};

use crate::heap::TrashGauge;
use crate::metrics::{self, PauseTimer};
use crate::workloads::{child_index, Runtime};

/// One object: edges and keys (a `Cc` is shared, so behind a `RefCell`), and
/// a payload held for the memory it occupies, which rust-cc does not count.
#[derive(Trace)]
pub struct Node {
    edges: RefCell<Vec<Cc<Node>>>,
    keys: RefCell<Vec<u64>>,
    _payload: Vec<u8>,
}

/// The run's trash gauge, which a node's finalizer reads (one run per
/// process).
static GAUGE: OnceLock<Arc<TrashGauge>> = OnceLock::new();

/// rust-cc finalizes each object once before it frees it, whether reference
/// counting frees it or a collection does: the node's end in the gauge.
impl Finalize for Node {
    fn finalize(&self) {
        if let Some(gauge) = GAUGE.get() {
            gauge.sub(1);
        }
    }
}

pub struct RustCc {
    /// The policy's trigger (`None`: rust-cc's automatic collection).
    trigger: Option<GcTrigger>,
    /// The workload's roots: as in dumpster, the handles themselves.
    held: Vec<Cc<Node>>,
    pub pauses: Vec<Duration>,
}

/// rust-cc's collections so far on this thread.
fn executions() -> usize {
    rust_cc::state::executions_count().expect("rust-cc's state is readable outside a collection")
}

impl RustCc {
    /// rust-cc's automatic collection stays on without a `trigger`, and is
    /// turned off with one.
    pub fn new(trigger: Option<GcTrigger>, gauge: Arc<TrashGauge>) -> Self {
        assert!(GAUGE.set(gauge).is_ok(), "one rust-cc run per process");
        let auto = trigger.is_none();
        rust_cc::config::config(|c| c.set_auto_collect(auto)).expect("rust-cc's configuration is free here");
        RustCc { trigger, held: Vec::new(), pauses: Vec::new() }
    }

    /// The trigger's counters, if the policy has one.
    pub fn trigger_stats(&self) -> Option<gcmalloc::TriggerStats> {
        self.trigger.as_ref().map(GcTrigger::stats)
    }

    /// Collections run (by rust-cc's heuristic or by the trigger).
    pub fn collections(&self) -> usize {
        executions()
    }
}

impl Runtime for RustCc {
    type Ref = Cc<Node>;

    fn alloc(&mut self, payload: usize) -> Cc<Node> {
        let node = Node { edges: RefCell::default(), keys: RefCell::default(), _payload: vec![0xA5; payload] };
        let Some(trigger) = &self.trigger else {
            // rust-cc may collect inside `Cc::new`: a pause if its count moved.
            // The wall clock only (a CPU clock read per allocation would cost
            // more than the allocation); one thread, so CPU time is near it.
            let (before, start) = (executions(), Instant::now());
            let cc = Cc::new(node);
            if executions() != before {
                let pause = start.elapsed();
                metrics::add_gc_time(pause);
                self.pauses.push(pause);
            }
            return cc;
        };
        trigger.record_alloc(1);
        Cc::new(node)
    }

    fn push(&mut self, from: &Cc<Node>, key: Option<u64>, to: &Cc<Node>) {
        from.edges.borrow_mut().push(to.clone());
        from.keys.borrow_mut().extend(key);
    }

    fn first_key(&mut self, node: &Cc<Node>) -> u64 {
        node.keys.borrow()[0]
    }

    fn child_for(&mut self, node: &Cc<Node>, key: u64) -> Cc<Node> {
        let i = child_index(&node.keys.borrow(), key);
        node.edges.borrow()[i].clone()
    }

    fn remove(&mut self, leaf: &Cc<Node>, key: u64) -> Cc<Node> {
        let mut keys = leaf.keys.borrow_mut();
        let i = keys.binary_search(&key).expect("deleted keys are present");
        keys.remove(i);
        leaf.edges.borrow_mut().remove(i)
    }

    fn insert(&mut self, leaf: &Cc<Node>, key: u64, value: &Cc<Node>) {
        let mut keys = leaf.keys.borrow_mut();
        let i = keys.binary_search(&key).expect_err("re-inserted keys are absent");
        keys.insert(i, key);
        leaf.edges.borrow_mut().insert(i, value.clone());
    }

    fn hold(&mut self, r: &Cc<Node>) {
        self.held.push(r.clone());
    }

    fn release(&mut self) {
        self.held.clear();
    }

    fn drop_chain(&mut self, head: Cc<Node>, len: usize, _cyclic: bool) {
        // Counted as trash until its nodes are finalized: at once if acyclic
        // (reference counting), at a collection if cyclic.
        GAUGE.get().expect("the runtime set its gauge").add(len);
        drop(head);
    }

    fn safepoint(&mut self) {
        let Some(trigger) = &self.trigger else {
            return; // rust-cc's own heuristic collects in `Cc::new`
        };
        if trigger.should_collect() {
            let timer = PauseTimer::start();
            rust_cc::collect_cycles();
            trigger.collected();
            self.pauses.push(timer.stop());
        }
    }
}
