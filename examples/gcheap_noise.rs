//! What a GcHeap's own figure buys a collector embedded in a larger program:
//! a toy runtime collects when its memory grew 10% (CPython 3.14t's gate)
//! while another part of the program grows and drops a cache (a saw-tooth of
//! 0 -> 500 MiB, `--noise`).
//!
//! ```sh
//! cargo run --release --example gcheap_noise            # the four runs
//! cargo run --release --example gcheap_noise -- --heap gc --noise
//! ```
//!
//! With `--heap gc` the runtime's objects live in a [`GcHeap`] and the
//! trigger reads [`GcHeap::estimate`]: the cache does not move it, so the
//! noise changes neither the collections nor the garbage held. With
//! `--heap global` (what a runtime does without a GcHeap) they come from the
//! global allocator and the trigger reads the process-wide
//! [`gcmalloc::estimate`]: while the cache grows every check collects, while
//! it shrinks collections are deferred up to the trigger's cap.
//!
//! Each run is a child process, so that its peak RSS (`VmHWM`) is its own.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use allocator_api2::boxed::Box;
use gcmalloc::{GcHeap, GcMalloc, GcTrigger, MemorySource};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

/// Objects allocated per run, live objects, and the cache's peak.
const ALLOCATIONS: usize = 50_000_000;
const LIVE: usize = 200_000;
const NOISE_PEAK: usize = 500 << 20;
const NOISE_CHUNK: usize = 1 << 20;

/// A runtime object: 64 bytes.
type Obj = [u64; 8];

#[derive(Clone, Copy, PartialEq)]
enum Heap {
    Gc,
    Global,
}

/// The non-GC part of the program: a cache that grows to `NOISE_PEAK` and is
/// dropped, over and over, until `stop`.
fn noise(stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        let mut cache: Vec<Vec<u8>> = Vec::new();
        while cache.len() * NOISE_CHUNK < NOISE_PEAK && !stop.load(Relaxed) {
            cache.push(vec![1; NOISE_CHUNK]);
            thread::sleep(Duration::from_micros(500));
        }
        while cache.pop().is_some() && !stop.load(Relaxed) {
            thread::sleep(Duration::from_micros(500));
        }
    }
}

/// The mutator: a ring of `LIVE` objects, each allocation replaces one and
/// makes it garbage, which waits for the next collection (a sweep).
fn mutate<H: Fn() -> Slot>(new: H, trigger: &GcTrigger) -> usize {
    let mut live: Vec<Slot> = (0..LIVE).map(|_| new()).collect();
    let mut garbage: Vec<Slot> = Vec::new();
    let mut collections = 0;
    for i in 0..ALLOCATIONS {
        let old = std::mem::replace(&mut live[(i * 7919) % LIVE], new());
        garbage.push(old);
        trigger.record_alloc(1);
        if trigger.should_collect() {
            garbage.clear(); // the sweep
            trigger.collected();
            collections += 1;
        }
    }
    collections
}

/// An object in the GcHeap or from the global allocator.
#[allow(dead_code)] // held for the memory it occupies
enum Slot {
    Gc(Box<Obj, &'static GcHeap>),
    Global(std::boxed::Box<Obj>),
}

fn peak_rss_mib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok());
    kib.unwrap_or(0usize) >> 10
}

fn run(heap: Heap, with_noise: bool) {
    let gc_heap: &'static GcHeap = std::boxed::Box::leak(std::boxed::Box::new(GcHeap::new().unwrap()));
    let source = match heap {
        Heap::Gc => MemorySource::GcHeap(gc_heap),
        Heap::Global => MemorySource::Estimate,
    };
    let trigger = GcTrigger::builder().source(source).build();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let collections = thread::scope(|s| {
        if with_noise {
            s.spawn(|| noise(&stop));
        }
        let collections = match heap {
            Heap::Gc => mutate(|| Slot::Gc(Box::new_in([0; 8], gc_heap)), &trigger),
            Heap::Global => mutate(|| Slot::Global(std::boxed::Box::new([0; 8])), &trigger),
        };
        stop.store(true, Relaxed);
        collections
    });
    println!("collections={collections} peak_rss_mib={} seconds={:.2}", peak_rss_mib(), start.elapsed().as_secs_f64());
}

fn child(heap: &str, noise: bool) -> (usize, usize) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--heap", heap])
        .args(noise.then_some("--noise"))
        .output()
        .expect("run a child");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> usize {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (field("collections="), field("peak_rss_mib="))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--heap") {
        let heap = match args.get(i + 1).map(String::as_str) {
            Some("gc") => Heap::Gc,
            Some("global") => Heap::Global,
            other => panic!("--heap gc|global, not {other:?}"),
        };
        return run(heap, args.iter().any(|a| a == "--noise"));
    }
    println!("{:<8} {:>22} {:>22} {:>10}", "heap", "collections quiet/noise", "peak RSS MiB quiet/noise", "ratio");
    for heap in ["gc", "global"] {
        let (quiet, quiet_rss) = child(heap, false);
        let (noisy, noisy_rss) = child(heap, true);
        let ratio = noisy as f64 / quiet as f64;
        println!(
            "{heap:<8} {:>22} {:>22} {ratio:>10.3}",
            format!("{quiet}/{noisy}"),
            format!("{quiet_rss}/{noisy_rss}")
        );
    }
}
