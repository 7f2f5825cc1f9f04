//! Thread-state and stop-the-world costs: `cargo bench --bench world`.
//!
//! * uncontended `detach()` + `attach()`;
//! * stop-the-world latency (stop + restart) with 1/16/64 registered threads,
//!   each attached and passing a safepoint every ~50 µs (sleeping detached
//!   in between), so a stop both parks detached threads and waits for
//!   attached ones;
//! * attach progress under a tight stop-the-world loop (the fairness of the
//!   gh-151518 fix): the time one `detach()` + `attach()` takes while another
//!   thread stops the world back to back, each stop held ~50 µs like a
//!   collection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

fn attach_detach(c: &mut Criterion) {
    let me = gcmalloc::register_thread();
    c.bench_function("detach_attach_uncontended", |b| {
        b.iter(|| {
            me.detach();
            me.attach();
        })
    });
}

fn stop_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("stop_the_world");
    for n in [1usize, 16, 64] {
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..n)
            .map(|_| {
                let stop = stop.clone();
                thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let me = gcmalloc::register_thread();
                        while !stop.load(Ordering::Relaxed) {
                            me.quiescent();
                            me.detach();
                            thread::sleep(Duration::from_micros(50));
                            me.attach();
                        }
                    })
                    .unwrap()
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("stop_restart_threads", n), &n, |b, _| {
            b.iter(|| drop(gcmalloc::stop_the_world()))
        });
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
    }
    g.finish();
}

fn attach_under_stop_loop(c: &mut Criterion) {
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let world = gcmalloc::stop_the_world();
                let held = std::time::Instant::now();
                while held.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                drop(world);
            }
        })
    };
    let me = gcmalloc::register_thread();
    c.bench_function("detach_attach_under_stop_loop", |b| {
        b.iter(|| {
            me.detach();
            me.attach();
        })
    });
    drop(me);
    stop.store(true, Ordering::Relaxed);
    stopper.join().unwrap();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = attach_detach, stop_latency, attach_under_stop_loop }
criterion_main!(benches);
