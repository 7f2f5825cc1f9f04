//! `MemorySource::Estimate` drives the gate from gcmalloc's own accounting:
//! it rises as memory is held and falls when it is freed.

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

use gcmalloc::{GcTrigger, MemorySource};

const MIB: usize = 1 << 20;

#[test]
fn estimate_gate_opens_on_growth_and_baseline_falls_after_frees() {
    let trigger = GcTrigger::builder().source(MemorySource::Estimate).build();
    let start = trigger.baseline();
    let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; MIB]).collect();
    trigger.record_alloc(2_001);
    assert!(trigger.should_collect(), "64 MiB held must pass a 10% gate from {start} bytes");

    trigger.collected();
    let high = trigger.baseline();
    assert!(high >= start + 64 * MIB, "baseline {high} after holding 64 MiB from {start}");
    drop(blocks);
    trigger.collected();
    let low = trigger.baseline();
    assert!(low + 48 * MIB <= high, "baseline {low} did not fall from {high} after freeing");
}
