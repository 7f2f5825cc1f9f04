//! The estimate tracks the bytes the heap really holds, through the
//! fragmentation a garbage collector leaves behind (random frees, sweeps,
//! threads exiting with live objects), measured against the exact live bytes
//! of a counting wrapper around `GcMalloc` — the way outside client programs
//! measured the full-page scheme this replaces (it read 0 MiB with 100 MiB
//! live after random frees, and 1,627 sweeps where an exact gate needed 96).

#[path = "common/runner.rs"]
mod runner;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

mod common;
use common::XorShift;

/// `GcMalloc`, counting the bytes the program asked for and has not freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `GcMalloc` with the same arguments; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        // SAFETY: forwarded as is.
        unsafe { gcmalloc::GcMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded as is.
        unsafe { gcmalloc::GcMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        // SAFETY: forwarded as is.
        unsafe { gcmalloc::GcMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded as is.
        unsafe { gcmalloc::GcMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MIB: usize = 1 << 20;

/// A raw block of `size` bytes, as an address (sendable between threads).
fn alloc(size: usize) -> usize {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { GLOBAL.alloc(layout) };
    assert!(!p.is_null());
    // SAFETY: `p` has `size` writable bytes; touch them as a program would.
    unsafe { p.write_bytes(0x5A, size.min(16)) };
    p as usize
}

fn free(addr: usize, size: usize) {
    // SAFETY: `addr` came from `alloc(size)` and is freed once.
    unsafe { GLOBAL.dealloc(addr as *mut u8, Layout::from_size_align(size, 8).unwrap()) };
}

/// How much a `size`-byte request inflates in its mimalloc block: 1.0 for 64
/// and 128 bytes, more with the padding of `--features debug` (MI_DEBUG=2).
fn inflation(size: usize) -> f64 {
    let blocks: Vec<usize> = (0..1024).map(|_| alloc(size)).collect();
    let stride = blocks.windows(2).map(|w| w[1].abs_diff(w[0])).min().unwrap();
    blocks.into_iter().for_each(|b| free(b, size));
    stride as f64 / size as f64
}

/// Estimate over live bytes: the process's whole estimate against its whole
/// live count, with `inflate` for block rounding of the small objects.
fn ratio(small_live: usize, inflate: f64) -> f64 {
    let live = LIVE.load(Relaxed) as f64 + small_live as f64 * (inflate - 1.0);
    gcmalloc::estimate() as f64 / live
}

fn check(what: &str, r: f64, low: f64, high: f64) {
    println!("  {what}: estimate/live {r:.3} (goal [{low}, {high}])");
    assert!((low..=high).contains(&r), "{what}: estimate/live {r:.3} outside [{low}, {high}]");
}

/// 200 MiB of 64 B objects; free a random 50%, refresh; free 80% of the rest,
/// refresh; refill to 200 MiB: each time within [0.95, 1.15]x live.
fn random_fragmentation_is_tracked_after_a_refresh() {
    let inflate = inflation(64);
    let count = 200 * MIB / 64;
    let mut objects: Vec<usize> = Vec::with_capacity(count);
    objects.extend((0..count).map(|_| alloc(64)));
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut free_fraction = |objects: &mut Vec<usize>, percent: usize| {
        objects.retain(|&o| {
            let drop = rng.below(100) < percent;
            if drop {
                free(o, 64);
            }
            !drop
        });
        gcmalloc::refresh_estimate();
    };
    free_fraction(&mut objects, 50);
    check("200 MiB of 64 B, random 50% freed", ratio(objects.len() * 64, inflate), 0.95, 1.15);
    free_fraction(&mut objects, 80);
    check("then 80% of the rest freed", ratio(objects.len() * 64, inflate), 0.95, 1.15);
    while objects.len() < count {
        objects.push(alloc(64));
    }
    gcmalloc::refresh_estimate();
    check("refilled to 200 MiB", ratio(objects.len() * 64, inflate), 0.95, 1.15);
    objects.into_iter().for_each(|o| free(o, 64));
}

/// Blocks of the sizes `size` picks, `(address, size)`, until they hold `bytes`.
fn live_set(bytes: usize, mut size: impl FnMut() -> usize) -> Vec<(usize, usize)> {
    let mut blocks = Vec::with_capacity(bytes / 64);
    let mut held = 0;
    while held < bytes {
        let s = size();
        blocks.push((alloc(s), s));
        held += s;
    }
    blocks
}

/// Sizes from 16 B to 4 KiB, log-uniform.
fn log_uniform(rng: &mut XorShift) -> usize {
    let bits = 4.0 + 8.0 * rng.below(1 << 20) as f64 / (1 << 20) as f64;
    bits.exp2() as usize
}

/// Steady churn of mixed sizes, ~100 MiB live, 3 M steps, never refreshed:
/// within [0.8, 1.3]x live at every sample.
fn steady_churn_is_tracked_without_a_refresh() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut objects = live_set(100 * MIB, || log_uniform(&mut rng));
    let (mut low, mut high) = (f64::MAX, 0f64);
    for step in 0..3_000_000 {
        let i = rng.below(objects.len());
        let (addr, size) = objects[i];
        free(addr, size);
        let size = log_uniform(&mut rng);
        objects[i] = (alloc(size), size);
        if step % 10_000 == 0 {
            let r = ratio(0, 1.0);
            (low, high) = (low.min(r), high.max(r));
        }
    }
    check("churn of 16 B-4 KiB, lowest sample", low, 0.8, 1.3);
    check("churn of 16 B-4 KiB, highest sample", high, 0.8, 1.3);
    objects.into_iter().for_each(|(a, s)| free(a, s));
}

/// Live bytes as a memory source: the gate an exact allocator could offer.
fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// A mark-sweep heap of ~50 MiB of 64-256 B nodes: each allocation replaces
/// a random node, whose old value is garbage until the next sweep frees it
/// all. Returns the sweeps `trigger` asks for over `allocations`.
fn mark_sweep_cycle(trigger: gcmalloc::GcTrigger, allocations: usize) -> usize {
    let mut rng = XorShift(0x5851_F42D_4C95_7F2D);
    let size = |rng: &mut XorShift| 64 + 16 * rng.below(13);
    let mut nodes = live_set(50 * MIB, || size(&mut rng));
    let mut garbage: Vec<(usize, usize)> = Vec::with_capacity(allocations);
    trigger.collected();
    let mut sweeps = 0;
    for _ in 0..allocations {
        let i = rng.below(nodes.len());
        garbage.push(nodes[i]);
        let s = size(&mut rng);
        nodes[i] = (alloc(s), s);
        trigger.record_alloc(1);
        if trigger.should_collect() {
            garbage.drain(..).for_each(|(a, s)| free(a, s));
            trigger.collected();
            sweeps += 1;
        }
    }
    garbage.into_iter().chain(nodes).for_each(|(a, s)| free(a, s));
    sweeps
}

/// `GcTrigger::default()` (the estimate, refreshed by `collected()`) sweeps
/// at most 1.25x as often as the same trigger on exact live bytes, and at
/// most 0.2x as often as count alone. Nor much less often than on live bytes
/// (0.8x): that would let memory grow past the gate, as a baseline taken
/// before the sweep's frees are synced does (25 sweeps against 34).
fn a_trigger_on_the_estimate_sweeps_like_one_on_live_bytes() {
    use gcmalloc::{GcTrigger, MemorySource};
    const ALLOCATIONS: usize = 2_000_000;
    let estimate = mark_sweep_cycle(GcTrigger::default(), ALLOCATIONS);
    let exact = mark_sweep_cycle(GcTrigger::builder().source(MemorySource::Custom(live_bytes)).build(), ALLOCATIONS);
    let count = mark_sweep_cycle(GcTrigger::builder().source(MemorySource::None).build(), ALLOCATIONS);
    println!(
        "  mark-sweep over {ALLOCATIONS} allocations: sweeps estimate {estimate}, exact live {exact}, count {count}"
    );
    assert!(estimate * 4 <= exact * 5, "estimate {estimate} sweeps vs exact {exact}: over 1.25x");
    assert!(
        estimate * 5 >= exact * 4,
        "estimate {estimate} sweeps vs exact {exact}: under 0.8x, memory outgrows the gate"
    );
    assert!(estimate * 5 <= count, "estimate {estimate} sweeps vs count-only {count}: over 0.2x");
}

/// A thread allocates 20 MiB, another frees some of it while it runs; it
/// exits with the rest live; another thread frees 10% of those into the
/// abandoned pages: the estimate stays within [0.9, 1.1]x live.
fn abandoned_pages_freed_into_stay_tracked() {
    const SIZE: usize = 128;
    let (to_main, from_worker) = std::sync::mpsc::channel::<Vec<usize>>();
    let (done, exit) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let objects: Vec<usize> = (0..20 * MIB / SIZE).map(|_| alloc(SIZE)).collect();
        to_main.send(objects).unwrap();
        exit.recv().unwrap();
    });
    let mut objects = from_worker.recv().unwrap();
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    // Cross-thread frees while the owner lives.
    objects.retain(|&o| rng.below(100) >= 10 || (free(o, SIZE), false).1);
    done.send(()).unwrap();
    worker.join().unwrap();
    objects.retain(|&o| rng.below(100) >= 10 || (free(o, SIZE), false).1);
    gcmalloc::refresh_estimate(); // this thread's own heap (the vector)
    let inflate = inflation(SIZE);
    check("20 MiB left by an exited thread, 10% freed into it", ratio(objects.len() * SIZE, inflate), 0.9, 1.1);
    objects.into_iter().for_each(|o| free(o, SIZE));
}

/// A collector frees half of a registered thread's 20 MiB while that thread
/// runs (quiescing, never allocating: nothing syncs its pages). Only the
/// stop's refresh of the parked thread's heap brings the estimate back to
/// live bytes.
fn a_stop_refreshes_the_heaps_of_parked_threads() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    const SIZE: usize = 128;
    let stop = Arc::new(AtomicBool::new(false));
    let (to_main, from_mutator) = std::sync::mpsc::channel::<Vec<usize>>();
    let mutator = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let me = gcmalloc::register_thread();
            let objects: Vec<usize> = (0..20 * MIB / SIZE).map(|_| alloc(SIZE)).collect();
            to_main.send(objects).unwrap();
            while !stop.load(Relaxed) {
                me.quiescent(); // the safepoint; allocates nothing
                std::hint::spin_loop();
            }
        })
    };
    let mut objects = from_mutator.recv().unwrap();
    let mut rng = XorShift(0x94D0_49BB_1331_11EB);
    objects.retain(|&o| rng.below(2) == 0 || (free(o, SIZE), false).1);
    gcmalloc::refresh_estimate();
    let inflate = inflation(SIZE);
    let stale = ratio(objects.len() * SIZE, inflate);
    println!("  half of a running thread's 20 MiB freed by another thread: estimate/live {stale:.3} before the stop");
    assert!(stale > 1.3, "the premise: the mutator's pages are not synced yet ({stale:.3})");
    let world = gcmalloc::stop_the_world();
    world.refresh_estimate();
    check("after StopTheWorld::refresh_estimate", ratio(objects.len() * SIZE, inflate), 0.9, 1.1);
    drop(world);
    stop.store(true, Relaxed);
    mutator.join().unwrap();
    objects.into_iter().for_each(|o| free(o, SIZE));
}

/// Runs without libtest (`harness = false` in Cargo.toml): the figures are
/// process wide, and no idle thread of a test harness may hold live bytes.
fn main() {
    runner::run(&[
        ("random_fragmentation_is_tracked_after_a_refresh", random_fragmentation_is_tracked_after_a_refresh),
        ("steady_churn_is_tracked_without_a_refresh", steady_churn_is_tracked_without_a_refresh),
        (
            "a_trigger_on_the_estimate_sweeps_like_one_on_live_bytes",
            a_trigger_on_the_estimate_sweeps_like_one_on_live_bytes,
        ),
        ("abandoned_pages_freed_into_stay_tracked", abandoned_pages_freed_into_stay_tracked),
        ("a_stop_refreshes_the_heaps_of_parked_threads", a_stop_refreshes_the_heaps_of_parked_threads),
    ]);
}
