//! Cost of the GcTrigger calls a runtime makes on its allocation path, and of
//! each memory source's read (what the gate pays once per threshold).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gcmalloc::{GcTrigger, MemoryLimit, MemorySource, Pacing};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

fn trigger_calls(c: &mut Criterion) {
    let trigger = GcTrigger::builder().source(MemorySource::Estimate).build();
    c.bench_function("record_alloc(1)", |b| b.iter(|| trigger.record_alloc(black_box(1))));
    let idle = GcTrigger::builder().source(MemorySource::Estimate).build();
    c.bench_function("should_collect below threshold", |b| b.iter(|| idle.should_collect()));
    let balanced = GcTrigger::builder()
        .source(MemorySource::Estimate)
        .pacing(Pacing::BALANCED)
        .memory_limit(MemoryLimit::Bytes(1 << 40))
        .build();
    c.bench_function("should_collect below threshold, balanced + limit", |b| b.iter(|| balanced.should_collect()));
    // Past the threshold: the memory read, the cap, the limit and the
    // balanced limit, then a deferral (memory is flat).
    let deciding = GcTrigger::builder()
        .threshold(1)
        .cap_multiple(usize::MAX)
        .source(MemorySource::Estimate)
        .pacing(Pacing::BALANCED)
        .memory_limit(MemoryLimit::Bytes(1 << 40))
        .build();
    c.bench_function("record_alloc(2) + deciding should_collect, balanced + limit", |b| {
        b.iter(|| {
            deciding.record_alloc(2);
            deciding.should_collect()
        })
    });
    c.bench_function("stats()", |b| b.iter(|| deciding.stats()));
}

fn memory_sources(c: &mut Criterion) {
    let mut group = c.benchmark_group("MemorySource::read");
    group.bench_function("Estimate", |b| b.iter(|| MemorySource::Estimate.read()));
    group.bench_function("Rss (/proc/self/status)", |b| b.iter(|| MemorySource::Rss.read()));
    group.finish();
}

criterion_group!(benches, trigger_calls, memory_sources);
criterion_main!(benches);
