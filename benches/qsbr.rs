//! QSBR costs next to crossbeam-epoch (pin + defer) and a Mutex baseline, in
//! one run: `cargo bench --bench qsbr`.
//!
//! * read side: `quiescent()` vs `crossbeam_epoch::pin()` vs a Mutex
//!   lock/unlock;
//! * retire: `retire(Box)` (+ a quiescent state) vs `pin().defer_destroy` vs
//!   pushing onto a Mutex-protected garbage list;
//! * poll: the cached path (one load) and the full registry scan with
//!   1/16/256/1024 registered threads (all attached and quiesced, parked);
//! * reclamation latency: retire a batch of 127 counted items, then
//!   quiescent states (gcmalloc) or pin + flush (crossbeam) until all are
//!   dropped, with one other registered thread quiescing in a loop. The
//!   number of rounds it took is printed once per library.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gcmalloc::qsbr;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

fn read_side(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_side");
    let me = gcmalloc::register_thread();
    g.bench_function("gcmalloc_quiescent", |b| b.iter(|| me.quiescent()));
    g.bench_function("crossbeam_pin", |b| b.iter(|| drop(crossbeam_epoch::pin())));
    let m = Mutex::new(0u64);
    g.bench_function("mutex_lock_unlock", |b| b.iter(|| *m.lock().unwrap() += 1));
    g.finish();
}

fn retire(c: &mut Criterion) {
    let mut g = c.benchmark_group("retire");
    let me = gcmalloc::register_thread();
    g.bench_function("gcmalloc_retire_box_u64", |b| {
        b.iter(|| {
            qsbr::retire(Box::new(7u64));
            me.quiescent();
        })
    });
    drop(me);
    g.bench_function("crossbeam_defer_destroy_u64", |b| {
        b.iter(|| {
            let guard = crossbeam_epoch::pin();
            let owned = crossbeam_epoch::Owned::new(7u64).into_shared(&guard);
            // SAFETY: `owned` was never shared; destroying it later is sound.
            unsafe { guard.defer_destroy(owned) };
        })
    });
    let garbage = Mutex::new(Vec::new());
    g.bench_function("mutex_garbage_list_u64", |b| {
        b.iter(|| {
            let mut list = garbage.lock().unwrap();
            list.push(Box::new(7u64));
            if list.len() >= 128 {
                list.clear();
            }
        })
    });
    g.finish();
}

/// `n - 1` other registered threads, attached and quiesced, parked until
/// the returned sender is dropped.
fn park_registered(n: usize) -> (mpsc::Sender<()>, Vec<thread::JoinHandle<()>>) {
    let (release, released) = mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    let (ready_tx, ready) = mpsc::channel();
    let handles = (1..n)
        .map(|_| {
            let (released, ready_tx) = (released.clone(), ready_tx.clone());
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let me = gcmalloc::register_thread();
                    me.quiescent();
                    ready_tx.send(()).unwrap();
                    let _ = released.lock().unwrap().recv();
                })
                .unwrap()
        })
        .collect();
    for _ in 1..n {
        ready.recv().unwrap();
    }
    (release, handles)
}

fn poll(c: &mut Criterion) {
    let mut g = c.benchmark_group("poll");
    {
        let me = gcmalloc::register_thread();
        let goal = qsbr::advance();
        me.quiescent();
        assert!(qsbr::poll(goal));
        g.bench_function("cached", |b| b.iter(|| qsbr::poll(goal)));
    }
    for n in [1usize, 16, 256, 1024] {
        let (release, handles) = park_registered(n);
        let me = gcmalloc::register_thread();
        me.quiescent();
        g.bench_with_input(BenchmarkId::new("full_scan_threads", n), &n, |b, _| b.iter(qsbr::bench_full_scan));
        drop(me);
        drop(release);
        for h in handles {
            h.join().unwrap();
        }
    }
    g.finish();
}

static DROPS: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

const BATCH: usize = 127;

/// Retires a batch with `retire_one`, then calls `round` until every item is
/// dropped; returns the number of rounds.
fn reclaim_batch(retire_one: impl Fn(), round: impl Fn()) -> usize {
    let target = DROPS.load(Ordering::Relaxed) + BATCH;
    (0..BATCH).for_each(|_| retire_one());
    let mut rounds = 0;
    while DROPS.load(Ordering::Relaxed) < target {
        round();
        rounds += 1;
    }
    rounds
}

fn reclamation_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("reclaim_batch_127");
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        thread::spawn(move || {
            let me = gcmalloc::register_thread();
            while !stop.load(Ordering::Relaxed) {
                me.quiescent();
                drop(crossbeam_epoch::pin());
                thread::yield_now();
            }
        })
    };
    let me = gcmalloc::register_thread();
    let gcm_retire = || qsbr::retire(Box::new(Counted));
    let gcm_round = || me.quiescent();
    eprintln!("gcmalloc: {} quiescent rounds to reclaim a batch", reclaim_batch(gcm_retire, gcm_round));
    g.bench_function("gcmalloc_retire_then_quiesce", |b| b.iter(|| reclaim_batch(gcm_retire, gcm_round)));
    let cb_retire = || {
        let guard = crossbeam_epoch::pin();
        guard.defer(|| drop(Counted));
    };
    let cb_round = || crossbeam_epoch::pin().flush();
    eprintln!("crossbeam: {} pin+flush rounds to reclaim a batch", reclaim_batch(cb_retire, cb_round));
    g.bench_function("crossbeam_defer_then_flush", |b| b.iter(|| reclaim_batch(cb_retire, cb_round)));
    drop(me);
    stop.store(true, Ordering::Relaxed);
    other.join().unwrap();
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
}

criterion_group! { name = benches; config = config(); targets = read_side, retire, poll, reclamation_latency }
criterion_main!(benches);
