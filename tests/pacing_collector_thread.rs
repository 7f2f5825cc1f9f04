//! A dedicated collector thread, one that frees the mutators' objects but
//! allocated none of them, takes the post-collection baseline: under a stop,
//! `GcTrigger::collected` refreshes every parked mutator's heaps (their
//! GcHeaps' included), and so does `StopTheWorld::refresh_estimate` before a
//! restart. Without harness: the process-wide figure must move only with
//! this test's objects.

#[path = "common/runner.rs"]
mod runner;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;

use gcmalloc::{GcHeap, GcTrigger, MemorySource};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

/// Objects the mutator makes: 64 bytes each, in the global heap or a GcHeap
/// (held only to be freed by the collector).
#[allow(dead_code)]
enum Object {
    Global(Box<[u64; 8]>),
    InHeap(allocator_api2::boxed::Box<[u64; 8], &'static GcHeap>),
}

const OBJECTS: usize = 200_000;
const OBJECT_BYTES: usize = OBJECTS * 64;

/// What the mutator hands over, and the flag that lets it exit.
#[derive(Default)]
struct Shared {
    objects: Mutex<Option<Vec<Object>>>,
    done: AtomicBool,
}

/// A registered mutator that allocates every object, hands them over, and
/// then only reaches safepoints until the collector is done.
fn spawn_mutator(shared: Arc<Shared>, heap: Option<&'static GcHeap>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let me = gcmalloc::register_thread();
        let objects: Vec<Object> = (0..OBJECTS as u64)
            .map(|i| match heap {
                Some(heap) => Object::InHeap(allocator_api2::boxed::Box::new_in([i; 8], heap)),
                None => Object::Global(Box::new([i; 8])),
            })
            .collect();
        // Exact figures before the collection: the mutator's own heaps.
        gcmalloc::refresh_estimate();
        if let Some(heap) = heap {
            heap.refresh();
        }
        *shared.objects.lock().unwrap() = Some(objects);
        while !shared.done.load(SeqCst) {
            me.quiescent(); // where a stop parks it
        }
    })
}

/// Runs one collection on this thread (unregistered, not the allocator) and
/// returns the trigger's baseline before and after it. `under_stop`:
/// `collected()` before the restart; otherwise `refresh_estimate()` on the
/// stop, then `collected()` after the restart.
fn collect_on_a_dedicated_thread(
    source: MemorySource,
    heap: Option<&'static GcHeap>,
    under_stop: bool,
) -> (usize, usize) {
    let shared = Arc::new(Shared::default());
    let mutator = spawn_mutator(Arc::clone(&shared), heap);
    while shared.objects.lock().unwrap().is_none() {
        thread::yield_now();
    }
    let trigger = GcTrigger::builder().source(source).build();
    let before = trigger.baseline();
    let world = gcmalloc::stop_the_world();
    drop(shared.objects.lock().unwrap().take()); // the sweep: frees the mutator's objects
    if under_stop {
        trigger.collected();
        drop(world);
    } else {
        world.refresh_estimate();
        drop(world);
        trigger.collected();
    }
    let after = trigger.baseline();
    shared.done.store(true, SeqCst);
    mutator.join().unwrap();
    (before, after)
}

fn assert_baseline_dropped(what: &str, (before, after): (usize, usize)) {
    eprintln!("{what}: baseline {before} -> {after} bytes");
    assert!(before >= OBJECT_BYTES, "{what}: the objects were counted before: {before}");
    assert!(
        after + OBJECT_BYTES * 3 / 4 <= before,
        "{what}: the baseline stayed near the pre-collection figure: {before} -> {after} \
         ({OBJECT_BYTES} bytes of objects freed)"
    );
}

fn collected_under_a_stop_refreshes_the_parked_mutators_estimate() {
    let figures = collect_on_a_dedicated_thread(MemorySource::Estimate, None, true);
    assert_baseline_dropped("estimate, collected() under the stop", figures);
}

fn collected_under_a_stop_refreshes_the_parked_mutators_gc_heap() {
    let heap: &'static GcHeap = Box::leak(Box::new(GcHeap::new().unwrap()));
    let figures = collect_on_a_dedicated_thread(MemorySource::GcHeap(heap), Some(heap), true);
    assert_baseline_dropped("GcHeap, collected() under the stop", figures);
}

fn refresh_on_the_stop_then_collected_covers_gc_heaps() {
    let heap: &'static GcHeap = Box::leak(Box::new(GcHeap::new().unwrap()));
    let figures = collect_on_a_dedicated_thread(MemorySource::GcHeap(heap), Some(heap), false);
    assert_baseline_dropped("GcHeap, refresh_estimate() on the stop, collected() after", figures);
}

fn main() {
    runner::run(&[
        (
            "collected_under_a_stop_refreshes_the_parked_mutators_estimate",
            collected_under_a_stop_refreshes_the_parked_mutators_estimate,
        ),
        (
            "collected_under_a_stop_refreshes_the_parked_mutators_gc_heap",
            collected_under_a_stop_refreshes_the_parked_mutators_gc_heap,
        ),
        ("refresh_on_the_stop_then_collected_covers_gc_heaps", refresh_on_the_stop_then_collected_covers_gc_heaps),
    ]);
}
