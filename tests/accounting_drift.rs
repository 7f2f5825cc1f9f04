//! No drift: threads allocate at random, free each other's blocks and exit with
//! blocks still live (pages left full at exit, freed into while abandoned,
//! reclaimed by later threads). At every quiescent point the counters match an
//! exact recount, and once everything is freed the accounting is back where it
//! started.

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

mod common;

use common::{alloc_block, assert_accounting_consistent, free_block, XorShift};
use std::sync::Mutex;
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
        0..=6_999 => 16 + 16 * rng.below(32),            // small: 16..512
        7_000..=9_899 => 1024 + 512 * rng.below(60),     // up to ~31 KiB, small and medium
        9_900..=9_997 => (80 << 10) + rng.below(1 << 19), // large
        _ => (17 << 20) + rng.below(1 << 20),            // huge (over 16 MiB)
    }
}

fn worker(seed: u64) {
    let mut rng = XorShift(seed);
    let mut own = Vec::with_capacity(OPS);
    for _ in 0..OPS {
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

#[test]
fn counters_match_a_recount_at_every_quiescent_point() {
    SHARED.lock().unwrap().reserve(ROUNDS * THREADS * OPS);
    let baseline = assert_accounting_consistent("at start");
    for round in 0..ROUNDS {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let seed = 0x9E37_79B9_7F4A_7C15 ^ ((round * THREADS + t) as u64 + 1);
                thread::spawn(move || worker(seed))
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let usage = assert_accounting_consistent(&format!("after round {round}"));
        assert!(usage.abandoned_bytes > 0 || round == 0, "rounds must leave abandoned pages behind");
    }
    std::mem::take(&mut *SHARED.lock().unwrap()).into_iter().for_each(free_block);
    let end = assert_accounting_consistent("after freeing everything");
    assert_eq!(end.abandoned_bytes, baseline.abandoned_bytes, "freed abandoned pages must not stay counted");
    assert_eq!(end.exact(), baseline.exact(), "nothing may stay counted: {end:?} vs {baseline:?}");
    assert!(end.estimate <= baseline.estimate + end.error_bound, "the estimate returns to its starting level");
}
