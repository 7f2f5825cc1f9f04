//! `--runtime dumpster`: the workloads on dumpster's concurrent `sync::Gc`
//! (reference counting plus a cycle collector).
//!
//! - `own`: dumpster's default collect condition (more drops since the last
//!   collection than `Gc`s alive), which it checks at every `Gc` drop;
//! - `count`, `rss`, `estimate`, `goal`: a `GcTrigger` of that policy, checked
//!   at the workload's safepoints, where `dumpster::sync::collect()` runs
//!   when it says so (the condition is then "never").
//!
//! Why not the condition with `GcTrigger::should_collect_once`: a collection
//! that the condition starts sees only the garbage the threads' local
//! dumpsters have delivered, and a thread delivers every 100,000 `Gc` drops;
//! `collect()` delivers the calling thread's first. Through the condition the
//! `estimate` policy reached 3,700 MiB peak RSS where `own` reached 5,700 MiB (chain,
//! cycle 10, extra 300k, live 30k); through `collect()` see the README.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dumpster::sync::{default_collect_condition, set_collect_condition, CollectInfo, Gc};
use dumpster::Trace;
use gcmalloc::GcTrigger;

use crate::heap::TrashGauge;
use crate::metrics::PauseTimer;
use crate::workloads::{child_index, Runtime};

/// One object: edges and keys behind locks (`sync::Gc` is shared), and a
/// payload held for the memory it occupies.
#[derive(Trace)]
pub struct Node {
    edges: Mutex<Vec<Gc<Node>>>,
    keys: Mutex<Vec<u64>>,
    _payload: Vec<u8>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(state) = STATE.get() {
            state.gauge.sub(1);
        }
    }
}

/// What the condition (a plain `fn`) reads and records: one run per process.
struct State {
    /// The policy's trigger (`None`: dumpster's own condition decides).
    trigger: Option<GcTrigger>,
    gauge: Arc<TrashGauge>,
    pauses: Mutex<Vec<Duration>>,
}

static STATE: OnceLock<State> = OnceLock::new();

thread_local! {
    /// When this thread's condition last said yes: dumpster collected right
    /// after, so the next check on this thread ends the pause.
    static COLLECTING_SINCE: std::cell::Cell<Option<PauseTimer>> = const { std::cell::Cell::new(None) };
}

fn condition(info: &CollectInfo) -> bool {
    let state = STATE.get().expect("the runtime set its state");
    if let Some(timer) = COLLECTING_SINCE.take() {
        state.pauses.lock().expect("no poisoned lock").push(timer.stop());
    }
    // With a trigger, safepoints collect: the condition never does.
    let yes = state.trigger.is_none() && default_collect_condition(info);
    if yes {
        COLLECTING_SINCE.set(Some(PauseTimer::start()));
    }
    yes
}

pub struct Dumpster {
    /// The workload's roots: dumpster's roots are the handles themselves, so
    /// these only mirror what the workload holds.
    held: Vec<Gc<Node>>,
}

impl Dumpster {
    /// Installs the condition for `trigger` (`None`: dumpster's own).
    pub fn new(trigger: Option<GcTrigger>, gauge: Arc<TrashGauge>) -> Self {
        let state = State { trigger, gauge, pauses: Mutex::new(Vec::new()) };
        assert!(STATE.set(state).is_ok(), "one dumpster run per process");
        set_collect_condition(condition);
        Dumpster { held: Vec::new() }
    }

    /// The trigger's counters, if the policy has one.
    pub fn trigger_stats() -> Option<gcmalloc::TriggerStats> {
        STATE.get()?.trigger.as_ref().map(GcTrigger::stats)
    }

    /// The pauses measured so far (each from a condition that said yes to the
    /// next check on that thread).
    pub fn pauses() -> Vec<Duration> {
        STATE.get().map(|s| s.pauses.lock().expect("no poisoned lock").clone()).unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("no poisoned lock")
}

impl Runtime for Dumpster {
    type Ref = Gc<Node>;

    fn alloc(&mut self, payload: usize) -> Gc<Node> {
        if let Some(trigger) = STATE.get().and_then(|s| s.trigger.as_ref()) {
            trigger.record_alloc(1);
        }
        Gc::new(Node { edges: Mutex::new(Vec::new()), keys: Mutex::new(Vec::new()), _payload: vec![0xA5; payload] })
    }

    fn push(&mut self, from: &Gc<Node>, key: Option<u64>, to: &Gc<Node>) {
        lock(&from.edges).push(to.clone());
        lock(&from.keys).extend(key);
    }

    fn first_key(&mut self, node: &Gc<Node>) -> u64 {
        lock(&node.keys)[0]
    }

    fn child_for(&mut self, node: &Gc<Node>, key: u64) -> Gc<Node> {
        let i = child_index(&lock(&node.keys), key);
        lock(&node.edges)[i].clone()
    }

    fn remove(&mut self, leaf: &Gc<Node>, key: u64) -> Gc<Node> {
        let mut keys = lock(&leaf.keys);
        let i = keys.binary_search(&key).expect("deleted keys are present");
        keys.remove(i);
        lock(&leaf.edges).remove(i)
    }

    fn insert(&mut self, leaf: &Gc<Node>, key: u64, value: &Gc<Node>) {
        let mut keys = lock(&leaf.keys);
        let i = keys.binary_search(&key).expect_err("re-inserted keys are absent");
        keys.insert(i, key);
        lock(&leaf.edges).insert(i, value.clone());
    }

    fn hold(&mut self, r: &Gc<Node>) {
        self.held.push(r.clone());
    }

    fn release(&mut self) {
        self.held.clear();
    }

    fn drop_chain(&mut self, head: Gc<Node>, len: usize, _cyclic: bool) {
        // Counted as trash until its nodes drop: at once if acyclic
        // (reference counting), at a collection if cyclic.
        STATE.get().expect("the runtime set its state").gauge.add(len);
        drop(head);
    }

    fn safepoint(&mut self) {
        let Some(trigger) = STATE.get().and_then(|s| s.trigger.as_ref()) else {
            return; // dumpster's own condition collects at drops
        };
        if trigger.should_collect() {
            let timer = PauseTimer::start();
            dumpster::sync::collect();
            trigger.collected();
            STATE.get().expect("set above").pauses.lock().expect("no poisoned lock").push(timer.stop());
        }
    }
}
