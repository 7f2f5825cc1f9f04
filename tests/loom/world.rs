//! loom models of the thread-state machine and stop-the-world: while a stop
//! is held, no registered thread runs attached (loom flags the requester's
//! write to the "heap" racing a thread's attached write), and no
//! interleaving deadlocks (loom reports a deadlock if every thread blocks).

use crate::model;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// A GC heap: written by attached threads and by the requester while the
/// world is stopped; any unordered pair of writes is a loom failure.
type Heap = Arc<UnsafeCell<u64>>;

fn touch(heap: &Heap) {
    // SAFETY: callers are attached, or the requester with the world stopped:
    // the protocol under test excludes concurrent writers, and loom reports
    // any unordered pair.
    heap.with_mut(|h| unsafe { *h += 1 });
}

/// Runs `body` on a thread while this thread (registered or not) stops the
/// world `stops` times, touching the heap under each stop.
fn against_stops(registered_requester: bool, stops: usize, body: fn(&Heap)) {
    model(move || {
        let heap: Heap = Arc::new(UnsafeCell::new(0));
        let t = {
            let heap = heap.clone();
            thread::spawn(move || body(&heap))
        };
        let me = registered_requester.then(gcmalloc::register_thread);
        for _ in 0..stops {
            let world = gcmalloc::stop_the_world();
            touch(&heap);
            drop(world);
        }
        drop(me);
        t.join().unwrap();
    });
}

/// A thread registers, works attached, passes a safepoint, works again and
/// exits (possibly while the stop is pending) against one stop.
#[test]
fn safepoint_and_exit_against_a_stop() {
    against_stops(false, 1, |heap| {
        let me = gcmalloc::register_thread();
        touch(heap);
        me.quiescent();
        touch(heap);
        drop(me);
    });
}

/// A thread detaches and re-attaches while a *registered* requester stops
/// the world twice in a row (the attach-waiter hand-off).
#[test]
fn detach_attach_against_repeated_stops() {
    against_stops(true, 2, |heap| {
        let me = gcmalloc::register_thread();
        me.detach();
        me.attach();
        touch(heap);
        me.detach();
    });
}

/// Two requesters, one registered and attached: they take turns, and the
/// one waiting for its turn does not block the other's stop.
#[test]
fn two_requesters_take_turns() {
    against_stops(false, 1, |heap| {
        let me = gcmalloc::register_thread();
        let world = gcmalloc::stop_the_world();
        touch(heap);
        drop(world);
        touch(heap); // attached, outside any stop
        drop(me);
    });
}

/// A handle that outlives its registration (kept in a `thread_local` that is
/// dropped after gcmalloc's exit guard) is dropped while another thread
/// registers, possibly into the same slot, and a third stops the world. The
/// stale handle's `detach`, `quiescent` and drop must not act on the new
/// registration: if one did, the stop would count the new thread as stopped
/// while it touches the heap (a race loom reports), or the registered count
/// would wrap.
#[test]
fn a_stale_handle_drop_never_ends_the_next_registration() {
    model(|| {
        let heap: Heap = Arc::new(UnsafeCell::new(0));
        let exiting = thread::spawn(|| {
            let kept = gcmalloc::register_thread();
            gcmalloc::__loom_exit_guard();
            kept.detach();
            kept.quiescent();
            drop(kept);
        });
        let next = {
            let heap = heap.clone();
            thread::spawn(move || {
                let me = gcmalloc::register_thread();
                touch(&heap);
                me.quiescent();
                touch(&heap);
            })
        };
        let world = gcmalloc::stop_the_world();
        touch(&heap);
        drop(world);
        exiting.join().unwrap();
        next.join().unwrap();
        assert_eq!(gcmalloc::qsbr::stats().registered_threads, 0);
    });
}
