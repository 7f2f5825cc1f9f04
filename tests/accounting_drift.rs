//! No drift: threads allocate at random, free each other's blocks and exit with
//! blocks still live (pages left full at exit, freed into while abandoned,
//! reclaimed by later threads). At every quiescent point the counters match an
//! exact recount, and once everything is freed the accounting is back where it
//! started.

#[path = "common/runner.rs"]
mod runner;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

mod common;

use common::{alloc_block, assert_accounting_consistent, free_block, XorShift};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

const ROUNDS: usize = 12;
const THREADS: usize = 6;
const OPS: usize = 6_000;
/// Blocks handed from thread to thread (freed by another thread, often after
/// the allocating thread has exited).
static SHARED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Mostly small sizes (full pages), some medium, a few large and huge.
fn random_size(rng: &mut XorShift) -> usize {
    match rng.below(10_000) {
        0..=6_999 => 16 + 16 * rng.below(32),             // small: 16..512
        7_000..=9_899 => 1024 + 512 * rng.below(60),      // up to ~31 KiB, small and medium
        9_900..=9_997 => (80 << 10) + rng.below(1 << 19), // large
        _ => (17 << 20) + rng.below(1 << 20),             // huge (over 16 MiB)
    }
}

fn worker(seed: u64, registered: bool) {
    // Registered workers quiesce now and then, so their emptied pages wait
    // for QSBR goals (type-stable pages) and some are abandoned with them.
    let me = registered.then(gcmalloc::register_thread);
    let mut rng = XorShift(seed);
    let mut own = Vec::with_capacity(OPS);
    for op in 0..OPS {
        if op % 500 == 0 {
            me.iter().for_each(|me| me.quiescent());
        }
        match rng.below(10) {
            0..=5 => own.push(alloc_block(random_size(&mut rng))),
            6 if !own.is_empty() => free_block(own.swap_remove(rng.below(own.len()))),
            7 if !own.is_empty() => SHARED.lock().unwrap().push(own.swap_remove(rng.below(own.len()))),
            8 => {
                let theirs = SHARED.lock().unwrap().pop(); // free outside the lock
                theirs.into_iter().for_each(free_block);
            }
            _ => {
                // a burst of one size, so that pages fill up
                let size = 16 * (1 + rng.below(8));
                own.extend((0..200).map(|_| alloc_block(size)));
            }
        }
    }
    // Exit with most blocks live: keep the bursts' full pages behind, handed to others.
    let keep = own.len() / 4;
    own.drain(keep..).for_each(|b| SHARED.lock().unwrap().push(b));
    own.into_iter().for_each(free_block);
}

/// One test function on the main thread (see `main`), so that no other
/// thread is alive (or exiting, with its heap still registered) while the
/// rounds compare the counters with their starting level.
fn counters_match_a_recount_at_every_quiescent_point() {
    run_rounds(false);
    counters_match_with_pages_waiting_for_qsbr_goals();
}

/// The same with delayed page reuse at work: registered workers, and a
/// registered thread that quiesces only between rounds, so that emptied pages
/// wait for goals, are abandoned with them and reclaimed by later threads.
fn counters_match_with_pages_waiting_for_qsbr_goals() {
    // Barriers, not channels: waiting on them allocates nothing, so the
    // holder's pages stay synced while the main thread audits.
    let turn = Arc::new(Barrier::new(2));
    let done = Arc::new(AtomicBool::new(false));
    let holder = {
        let (turn, done) = (Arc::clone(&turn), Arc::clone(&done));
        thread::spawn(move || {
            let me = gcmalloc::register_thread();
            gcmalloc::refresh_estimate();
            turn.wait(); // ready
            loop {
                turn.wait(); // a tick
                if done.load(Ordering::Relaxed) {
                    break;
                }
                me.quiescent();
                gcmalloc::refresh_estimate();
                turn.wait(); // ready
            }
        })
    };
    turn.wait();
    let delayed = run_rounds_with(true, || {
        turn.wait();
        turn.wait();
    });
    assert!(delayed > 0, "no page ever waited for its goal: the delay was not exercised");
    done.store(true, Ordering::Relaxed);
    turn.wait();
    holder.join().unwrap();
}

fn run_rounds(registered: bool) {
    run_rounds_with(registered, || {});
}

/// Runs the rounds, calling `between` after each; returns the most pages
/// seen waiting for their goal at a round's end.
fn run_rounds_with(registered: bool, between: impl Fn()) -> usize {
    let baseline = assert_accounting_consistent("at start");
    // After the baseline: the vector's block is live until the end, where it is freed.
    SHARED.lock().unwrap().reserve(ROUNDS * THREADS * OPS);
    let mut delayed = 0;
    for round in 0..ROUNDS {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let seed = 0x9E37_79B9_7F4A_7C15 ^ ((round * THREADS + t) as u64 + 1);
                thread::spawn(move || worker(seed, registered))
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let usage = assert_accounting_consistent(&format!("after round {round}"));
        assert!(usage.abandoned_bytes > 0 || round == 0, "rounds must leave abandoned pages behind");
        delayed = delayed.max(usage.delayed_pages);
        between();
    }
    std::mem::take(&mut *SHARED.lock().unwrap()).into_iter().for_each(free_block);
    let end = assert_accounting_consistent("after freeing everything");
    assert_eq!(end.abandoned_bytes, baseline.abandoned_bytes, "freed abandoned pages must not stay counted");
    assert_eq!(end.exact(), baseline.exact(), "nothing may stay counted: {end:?} vs {baseline:?}");
    assert!(end.estimate <= baseline.estimate + end.error_bound, "the estimate returns to its starting level");
    delayed
}

/// Runs without libtest (`harness = false` in Cargo.toml): no other thread of
/// this process allocates, or holds pages, while the test compares totals.
fn main() {
    runner::run(&[(
        "counters_match_a_recount_at_every_quiescent_point",
        counters_match_a_recount_at_every_quiescent_point,
    )]);
}
