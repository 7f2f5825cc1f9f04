//! `--threads N`: N mutator threads, each with a heap of its own, sharing one
//! `GcTrigger`. The thread that finds `should_collect()` true stops the world
//! (`gcmalloc::stop_the_world`) and collects every heap.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gcmalloc::{GcTrigger, ThreadHandle};

use crate::heap::{Heap, Mutator};
use crate::metrics::PauseTimer;

/// A registered mutator thread. It holds its heap's lock between safepoints
/// and releases it at each one, so that a collector can take the heap while
/// this thread is parked.
pub struct SharedMutator<'a> {
    // Declared first so that the heap is released before the thread
    // unregisters.
    guard: Option<MutexGuard<'a, Heap>>,
    own: &'a Mutex<Heap>,
    all: &'a [Mutex<Heap>],
    /// One collector at a time (see `collect_all`).
    collector: &'a Mutex<()>,
    me: ThreadHandle,
}

impl<'a> SharedMutator<'a> {
    /// Registers the calling thread; `own` is its heap, one of `all`, and
    /// `collector` is shared by all of them.
    pub fn new(own: &'a Mutex<Heap>, all: &'a [Mutex<Heap>], collector: &'a Mutex<()>) -> Self {
        let me = gcmalloc::register_thread();
        SharedMutator { guard: Some(lock(own)), own, all, collector, me }
    }

    /// Stops the world and collects every heap, unless another thread's
    /// collection made it unnecessary while this one waited for its turn.
    ///
    /// Collectors queue on `collector` while detached, so that the
    /// collection in progress can stop them, and each one re-checks the
    /// trigger once it has its turn: a collection that just ran usually
    /// makes the next one unnecessary. (`stop_the_world()` alone would also
    /// serialize them, but every waiter would then collect again.)
    fn collect_all(&mut self, trigger: &GcTrigger) {
        let timer = PauseTimer::start();
        self.me.detach();
        let _turn = self.collector.lock().expect("a collector panicked");
        self.me.attach();
        if !trigger.should_collect() {
            return;
        }
        let asked = Instant::now();
        let world = gcmalloc::stop_the_world();
        // Every other registered thread is parked (or detached) now.
        let parked = gcmalloc::qsbr::stats().registered_threads.saturating_sub(1);
        STOPS.lock().expect("no poisoned lock").push((asked.elapsed(), parked));
        for heap in self.all {
            lock(heap).collect();
        }
        // SAFETY: the world is stopped: every other mutator is parked at a
        // safepoint, or detached only while it waits for `collector` above,
        // where it allocates nothing, or done and waiting for the others
        // before it exits (`run_threads`); no other thread of the program
        // allocates toy objects.
        unsafe { crate::gc_heap::refresh_stopped(&world) };
        trigger.collected();
        drop(world);
        lock(self.own).pauses.push(timer.stop());
    }
}

/// Each stop of the world: how long it waited for every thread to park, and
/// how many threads it stopped.
static STOPS: Mutex<Vec<(Duration, usize)>> = Mutex::new(Vec::new());

/// The stops of this run so far.
pub fn stops() -> Vec<(Duration, usize)> {
    STOPS.lock().expect("no poisoned lock").clone()
}

fn lock(heap: &Mutex<Heap>) -> MutexGuard<'_, Heap> {
    heap.lock().expect("a mutator thread panicked")
}

impl Mutator for SharedMutator<'_> {
    fn heap(&mut self) -> &mut Heap {
        self.guard.as_mut().expect("the heap is held between safepoints")
    }

    fn safepoint(&mut self, trigger: &GcTrigger) {
        self.guard = None;
        if trigger.should_collect() {
            self.collect_all(trigger);
        }
        // Parks here while another thread's collection has the world stopped.
        self.me.quiescent();
        self.guard = Some(lock(self.own));
    }
}
