//! Allocation throughput: gcmalloc vs stock mimalloc v2.5.2 vs the system
//! allocator, in one run (both mimalloc copies live in this binary).
//!
//! `cargo bench --bench alloc`; compare the medians of `gcmalloc/*` with
//! `stock-v2.5.2/*` for the same case.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gcmalloc::GcMalloc;

use common::{batch, layout, pair, StockV2, BATCH, SIZES};

/// Mixed sizes on two threads, with half of the blocks freed by the other
/// thread (cross-thread frees).
fn mt_churn<A: GlobalAlloc + Sync>(a: &A, rounds: u64) {
    let mine: &[Layout] = &(0..64).map(|i| layout(16 << (i % 9))).collect::<Vec<_>>();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<usize>>(2);
    thread::scope(|s| {
        s.spawn(move || {
            let mut held = vec![std::ptr::null_mut(); mine.len()];
            for _ in 0..rounds {
                for (slot, &l) in held.iter_mut().zip(mine) {
                    // SAFETY: non-zero size.
                    *slot = unsafe { a.alloc(l) };
                }
                let (keep, give) = held.split_at(mine.len() / 2);
                for (&p, &l) in keep.iter().zip(mine) {
                    // SAFETY: allocated above with `l`.
                    unsafe { a.dealloc(p, l) };
                }
                tx.send(give.iter().map(|&p| p as usize).collect()).unwrap();
            }
        });
        s.spawn(move || {
            for given in rx {
                for (p, &l) in given.into_iter().zip(&mine[mine.len() / 2..]) {
                    // SAFETY: allocated by the producer with `l`, sent once.
                    unsafe { a.dealloc(p as *mut u8, l) };
                }
            }
        });
    });
}

fn allocators() -> [(&'static str, Box<dyn Case>); 3] {
    [
        ("gcmalloc", Box::new(With(GcMalloc))),
        ("stock-v2.5.2", Box::new(With(StockV2))),
        ("system", Box::new(With(System))),
    ]
}

/// The benchmark cases for one allocator (object-safe, so the three
/// allocators share one loop).
trait Case {
    fn pair(&self, l: Layout);
    fn batch(&self, l: Layout, slots: &mut [*mut u8]);
    fn mt_churn(&self, rounds: u64);
}

struct With<A>(A);

impl<A: GlobalAlloc + Sync> Case for With<A> {
    fn pair(&self, l: Layout) {
        pair(&self.0, l)
    }
    fn batch(&self, l: Layout, slots: &mut [*mut u8]) {
        batch(&self.0, l, slots)
    }
    fn mt_churn(&self, rounds: u64) {
        mt_churn(&self.0, rounds)
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("pair");
    for size in SIZES {
        for (name, case) in allocators() {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| b.iter(|| case.pair(layout(size))));
        }
    }
    g.finish();

    let mut g = c.benchmark_group("batch1000");
    for size in SIZES {
        for (name, case) in allocators() {
            let mut slots = vec![std::ptr::null_mut(); BATCH];
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter(|| case.batch(layout(size), &mut slots))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("mt_churn_2threads");
    for (name, case) in allocators() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                case.mt_churn(iters);
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// Batches of 1,000 256-byte blocks (four pages) on a registered thread that quiesces after
/// each batch, so emptied pages go through the QSBR goal: delayed page reuse
/// on and off against stock v2.5.2. Runs last: it registers the thread.
fn quiescing_churn(c: &mut Criterion) {
    let me = gcmalloc::register_thread();
    let mut g = c.benchmark_group("quiescing_batch1000_256B");
    let mut slots = vec![std::ptr::null_mut(); BATCH];
    let (gcmalloc, stock) = (With(GcMalloc), With(StockV2));
    for (name, delay, case) in [
        ("gcmalloc-delay-on", true, &gcmalloc as &dyn Case),
        ("gcmalloc-delay-off", false, &gcmalloc),
        ("stock-v2.5.2", true, &stock),
    ] {
        gcmalloc::set_page_reuse_delay(delay);
        g.bench_function(name, |b| {
            b.iter(|| {
                case.batch(layout(256), &mut slots);
                me.quiescent();
            })
        });
    }
    gcmalloc::set_page_reuse_delay(true);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench, quiescing_churn
}
criterion_main!(benches);
