//! `MemorySource::Estimate` drives the gate from gcmalloc's own accounting:
//! it rises as memory is held and falls when it is freed.

#[path = "common/serial.rs"]
mod serial;
use serial::serial;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

use gcmalloc::{GcTrigger, MemorySource};

const MIB: usize = 1 << 20;

#[test]
fn estimate_gate_opens_on_growth_and_baseline_falls_after_frees() {
    let _serial = serial();
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

/// `DebtMeter` turns growth beyond the allocation count into debt: 16 MiB of
/// payload in a heap whose objects average 1 KiB is about 16,384 objects'
/// worth, less the allocations already charged; no growth is no debt.
#[test]
fn debt_meter_charges_growth_beyond_the_count() {
    let _serial = serial();
    let mut meter = gcmalloc::DebtMeter::new();
    let payload = vec![1u8; 16 * MIB];
    let live = gcmalloc::estimate() / 1024; // objects of 1 KiB on average
    let debt = meter.extra_debt(16, live);
    let expected = 16.0 * 1024.0 - 16.0;
    // Within 10%: a huge block counts as its whole page, which the debug
    // build's padding rounds up further (measured +6.3% with MI_DEBUG=2).
    assert!((debt - expected).abs() < expected * 0.10, "debt {debt} for 16 MiB, expected about {expected}");
    assert_eq!(meter.extra_debt(0, live), 0.0, "no growth since the last call");
    drop(payload);
    assert_eq!(meter.extra_debt(0, live), 0.0, "memory fell: no debt");
    let again = vec![1u8; 16 * MIB];
    assert!(meter.extra_debt(0, live) > expected * 0.9, "growth counts again from the lower mark");
    drop(again);
}
