//! `GcHeap::visit_blocks` finds exactly the live blocks, each once, across
//! four threads: two still running (stopped, with blocks other threads freed
//! into their full pages) and two exited (their pages abandoned); and the
//! rate of a walk over a few million blocks.
//!
//! Without libtest's harness: no thread but the ones of the test may
//! allocate from the GcHeap during the walk, and the rate wants a quiet
//! process.

#[path = "common/runner.rs"]
mod runner;

use std::ptr::NonNull;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Instant;

use allocator_api2::alloc::{Allocator, Layout};
use gcmalloc::{GcHeap, GcMalloc};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const THREADS: usize = 4;
const BLOCKS: usize = 20_000;

/// The layout of the `i`-th block: sizes from 16 bytes to 100 KiB.
fn layout(i: usize) -> Layout {
    let size = match i % 97 {
        0 => 100 << 10,
        k => 16 + (k * 37) % 2000,
    };
    Layout::from_size_align(size, 8).unwrap()
}

/// (address, index) of blocks handed between threads.
type Blocks = Vec<(usize, usize)>;

fn worker(
    heap: &'static GcHeap,
    me: usize,
    to_prev: mpsc::Sender<Blocks>,
    from_next: mpsc::Receiver<Blocks>,
    freed: Arc<Barrier>,
    walked: Arc<Barrier>,
) -> Blocks {
    let blocks: Blocks =
        (0..BLOCKS).map(|i| (heap.allocate(layout(i)).unwrap().cast::<u8>().as_ptr() as usize, i)).collect();
    // Every third block goes to the previous thread, which frees it: into this
    // thread's pages while it is alive (full pages: mimalloc's delayed-free
    // list, which this thread never processes as it allocates no more).
    let (give, keep): (Blocks, Blocks) = blocks.into_iter().partition(|&(_, i)| i % 3 == me % 3);
    to_prev.send(give).unwrap();
    for (p, i) in from_next.recv().unwrap() {
        // SAFETY: a live block of `heap` handed over by its owner.
        unsafe { heap.deallocate(NonNull::new_unchecked(p as *mut u8), layout(i)) };
    }
    freed.wait();
    if me % 2 == 0 {
        walked.wait(); // stays alive (and allocates nothing) during the walk
    }
    keep
}

fn walk(heap: &GcHeap, capacity: usize) -> Vec<usize> {
    let mut seen = Vec::with_capacity(capacity);
    let world = gcmalloc::stop_the_world();
    // SAFETY: the test's other threads allocate nothing from `heap` now.
    let done = unsafe {
        heap.visit_blocks(|block, _| {
            if seen.len() < seen.capacity() {
                seen.push(block.as_ptr() as usize); // never grows: no allocation
            }
            true
        })
    };
    drop(world);
    assert!(done);
    seen
}

fn exactly_the_live_blocks_across_threads() {
    let heap: &'static GcHeap = Box::leak(Box::new(GcHeap::new().unwrap()));
    let freed = Arc::new(Barrier::new(THREADS + 1));
    let walked = Arc::new(Barrier::new(THREADS / 2 + 1));
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Blocks>()).unzip();
    let threads: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(me, from_next)| {
            let to_prev = txs[(me + THREADS - 1) % THREADS].clone();
            let (freed, walked) = (freed.clone(), walked.clone());
            thread::spawn(move || worker(heap, me, to_prev, from_next, freed, walked))
        })
        .collect();
    freed.wait();
    // The odd threads exit with their live blocks: wait for them.
    let mut live: Vec<(usize, usize)> = Vec::new();
    let mut staying = Vec::new();
    for (me, t) in threads.into_iter().enumerate() {
        if me % 2 == 1 {
            live.extend(t.join().unwrap());
        } else {
            staying.push(t);
        }
    }
    let exited = live.len();
    let seen_before_exit_join = walk(heap, 2 * THREADS * BLOCKS);
    walked.wait();
    for t in staying {
        live.extend(t.join().unwrap());
    }
    let mut expected: Vec<usize> = live.iter().map(|&(p, _)| p).collect();
    expected.sort_unstable();
    let mut seen = seen_before_exit_join;
    seen.sort_unstable();
    let twice = seen.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(twice, 0, "{twice} blocks visited twice");
    let missed = expected.iter().filter(|p| seen.binary_search(p).is_err()).count();
    let extra = seen.iter().filter(|p| expected.binary_search(p).is_err()).count();
    assert_eq!(
        (missed, extra),
        (0, 0),
        "missed {missed} live blocks, visited {extra} free ones ({} live)",
        expected.len()
    );
    println!(
        "visited exactly the {} live blocks of 4 threads ({exited} in exited threads' pages), each once",
        expected.len()
    );
    for (p, i) in live {
        // SAFETY: the live blocks, freed once.
        unsafe { heap.deallocate(NonNull::new_unchecked(p as *mut u8), layout(i)) };
    }
}

fn walk_rate() {
    const N: usize = 4_000_000;
    let heap = &GcHeap::new().unwrap();
    let small = Layout::from_size_align(16, 8).unwrap();
    let blocks: Vec<_> = (0..N).map(|_| heap.allocate(small).unwrap()).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut count = 0usize;
        let start = Instant::now();
        // SAFETY: no other thread allocates from `heap`.
        unsafe {
            heap.visit_blocks(|_, _| {
                count += 1;
                true
            })
        };
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(count, N);
    }
    let rate = N as f64 / best / 1e6;
    println!("visit_blocks: {N} blocks of 16 bytes in {:.1} ms: {rate:.0} M blocks/s", best * 1e3);
    for b in blocks {
        // SAFETY: allocated above.
        unsafe { heap.deallocate(b.cast(), small) };
    }
}

fn a_panicking_callback_stops_the_walk_and_releases_its_lock() {
    let heap = &GcHeap::new().unwrap();
    let small = Layout::from_size_align(32, 8).unwrap();
    let blocks: Vec<_> = (0..100).map(|_| heap.allocate(small).unwrap()).collect();
    let mut calls = 0;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the panic below is expected
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: no other thread allocates from `heap`.
        unsafe {
            heap.visit_blocks(|_, _| {
                calls += 1;
                panic!("a collector bug")
            })
        }
    }));
    std::panic::set_hook(hook);
    assert!(caught.is_err(), "the callback's panic was not resumed");
    assert_eq!(calls, 1, "the walk went on after the panic");
    // The list of heaps is unlocked again: these take the same lock.
    assert_eq!(heap.usage().heaps, 1);
    let mut count = 0;
    // SAFETY: as above.
    unsafe {
        heap.visit_blocks(|_, _| {
            count += 1;
            true
        })
    };
    assert_eq!(count, 100);
    for b in blocks {
        // SAFETY: allocated above.
        unsafe { heap.deallocate(b.cast(), small) };
    }
    println!("a panicking callback stops the walk; the panic is resumed after it");
}

fn main() {
    runner::run(&[
        (
            "a_panicking_callback_stops_the_walk_and_releases_its_lock",
            a_panicking_callback_stops_the_walk_and_releases_its_lock,
        ),
        ("exactly_the_live_blocks_across_threads", exactly_the_live_blocks_across_threads),
        ("walk_rate", walk_rate),
    ]);
}
