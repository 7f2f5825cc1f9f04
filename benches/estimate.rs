//! The cost of asking "how much memory do we hold?", in one run:
//! `gcmalloc::estimate()`, a `GcHeap::estimate()` and the exact per-thread sum `gcmalloc::usage()`
//! with 1, 16, 256 and 1,024 live threads; and, for comparison, reading RSS
//! from `/proc/self/statm` (file kept open), `getrusage`, stock mimalloc's
//! `mi_process_info`, and the exact recount `gcmalloc::audit()`. And the
//! walk that makes the estimate exact after a collection,
//! `gcmalloc::refresh_estimate()`, over 1,000 and 4,000 pages of 64-byte
//! blocks, every other block freed (a swept heap).
//!
//! `cargo bench --bench estimate`, then `scripts/bench-summary.py estimate`,
//! `scripts/bench-summary.py memory_query` and `scripts/bench-summary.py refresh`.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

const THREADS: [usize; 4] = [1, 16, 256, 1024];

/// The GcHeap whose figure `gc_heap_estimate` reads.
fn gc_heap() -> &'static gcmalloc::GcHeap {
    static HEAP: std::sync::OnceLock<gcmalloc::GcHeap> = std::sync::OnceLock::new();
    HEAP.get_or_init(|| gcmalloc::GcHeap::new().unwrap())
}

/// `n - 1` threads (the benchmark thread is the n-th) that each allocate, so
/// that they own a mimalloc heap (and one of a GcHeap), and then wait, idle,
/// until stopped.
struct LiveThreads {
    exit: Arc<Barrier>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl LiveThreads {
    fn start(n: usize) -> Self {
        let (ready, exit) = (Arc::new(Barrier::new(n)), Arc::new(Barrier::new(n)));
        let handles = (1..n)
            .map(|i| {
                let (ready, exit) = (Arc::clone(&ready), Arc::clone(&exit));
                thread::Builder::new()
                    .stack_size(64 << 10)
                    .spawn(move || {
                        let held: Vec<Box<[u8; 64]>> = (0..64).map(|j| Box::new([(i + j) as u8; 64])).collect();
                        // And a heap of the GcHeap, so that its figure has as many heaps.
                        let gc = allocator_api2::boxed::Box::new_in([i as u8; 64], gc_heap());
                        ready.wait();
                        exit.wait();
                        black_box((held, gc));
                    })
                    .unwrap()
            })
            .collect();
        ready.wait();
        LiveThreads { exit, handles }
    }

    fn stop(self) {
        self.exit.wait();
        self.handles.into_iter().for_each(|h| h.join().unwrap());
    }
}

/// Resident set size from `/proc/self/statm`, read through a file kept open
/// (one `pread` and a parse, no `open`/`close`).
fn statm_rss(file: &File) -> usize {
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    text.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

fn getrusage_maxrss() -> usize {
    // SAFETY: `usage` is a valid out-pointer for getrusage.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage.ru_maxrss as usize
    }
}

fn stock_process_info() -> usize {
    let mut rss = 0usize;
    // SAFETY: stock mimalloc accepts null for every output it should skip.
    unsafe {
        libmimalloc_sys::mi_process_info(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut rss,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
    rss
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("estimate");
    for n in THREADS {
        let live = LiveThreads::start(n);
        g.bench_with_input(BenchmarkId::new("estimate", n), &n, |b, _| b.iter(gcmalloc::estimate));
        let heap = gc_heap();
        g.bench_with_input(BenchmarkId::new("gc_heap_estimate", n), &n, |b, _| b.iter(|| heap.estimate()));
        g.bench_with_input(BenchmarkId::new("usage", n), &n, |b, _| b.iter(gcmalloc::usage));
        if n <= 16 {
            // SAFETY: the other threads wait on a barrier, they do not allocate.
            g.bench_with_input(BenchmarkId::new("audit", n), &n, |b, _| b.iter(|| unsafe { gcmalloc::audit() }));
        }
        live.stop();
    }
    g.finish();

    let mut g = c.benchmark_group("memory_query");
    let statm = File::open("/proc/self/statm").unwrap();
    g.bench_function("gcmalloc_estimate", |b| b.iter(gcmalloc::estimate));
    g.bench_function("statm_kept_open", |b| b.iter(|| statm_rss(&statm)));
    g.bench_function("getrusage", |b| b.iter(getrusage_maxrss));
    g.bench_function("stock_mi_process_info", |b| b.iter(stock_process_info));
    g.finish();

    let mut g = c.benchmark_group("refresh");
    for pages in [1_000, 4_000] {
        // A small page (64 KiB) holds 1,024 blocks of 64 bytes.
        let mut blocks: Vec<Option<Box<[u8; 64]>>> = (0..pages * 1024).map(|i| Some(Box::new([i as u8; 64]))).collect();
        blocks.iter_mut().step_by(2).for_each(|b| *b = None);
        g.bench_with_input(BenchmarkId::new("pages", pages), &pages, |b, _| b.iter(gcmalloc::refresh_estimate));
        drop(blocks);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
