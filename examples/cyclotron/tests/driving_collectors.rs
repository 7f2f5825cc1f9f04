//! gcmalloc's pacing driving real collectors, as its docs show it
//! (`GcTrigger` with dumpster, `DebtMeter` with gc-arena): compiled and run
//! here, where the collectors are dependencies.

use std::sync::LazyLock;

use dumpster::sync::{set_collect_condition, CollectInfo, Gc};
use gc_arena::{Arena, Rootable};
use gcmalloc::GcTrigger;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

static TRIGGER: LazyLock<GcTrigger> = LazyLock::new(GcTrigger::default);

fn condition(_: &CollectInfo) -> bool {
    TRIGGER.should_collect_once()
}

/// dumpster asks a plain `fn` on every `Gc` drop and has no hook after a
/// collection: `should_collect_once`.
#[test]
fn dumpster_collects_when_the_trigger_says_so() {
    set_collect_condition(condition);
    for i in 0..10_000 {
        TRIGGER.record_alloc(1);
        drop(Gc::new(vec![i; 16])); // dumpster checks the condition here
    }
    assert!(TRIGGER.stats().checks > 0, "{:?}", TRIGGER.stats());
}

/// gc-arena paces by object counts; `DebtMeter` adds the estimate's growth
/// as debt.
#[test]
fn gc_arena_pays_the_debt_of_large_payloads() {
    let mut arena = Arena::<Rootable![Vec<gc_arena::Gc<'_, Box<[u8]>>>]>::new(|_| Vec::new());
    let mut meter = gcmalloc::DebtMeter::new();
    let mut debt = 0.0;
    for _ in 0..100 {
        arena.mutate_root(|mc, root| {
            root.push(gc_arena::Gc::new(mc, vec![0u8; 64 << 10].into_boxed_slice()));
            if root.len() > 10 {
                root.clear(); // garbage with large payloads
            }
        });
        // One allocation, but 64 KiB of memory: debt beyond the count.
        let live = arena.metrics().total_gc_count();
        let extra = meter.extra_debt(1, live);
        debt += extra;
        arena.metrics().adjust_debt(extra);
        arena.collect_debt();
    }
    assert!(debt > 10.0, "64 KiB payloads are debt beyond one object each: {debt}");
}
