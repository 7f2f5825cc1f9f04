//! Stop-the-world with real threads. The tests share the process-wide
//! registry, so each takes `serial()` first.

#[path = "common/serial.rs"]
mod serial;
use serial::serial;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use gcmalloc::{register_thread, stop_the_world, stop_the_world_timeout, ThreadState};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

/// The seed-000 regression (CPython gh-151518): one thread stops the world
/// in a tight loop, holding each stop ~50 µs; another sleeps detached and
/// re-attaches 50 times. Without the suspended-detached / attach-waiter
/// distinction the sleeper is re-parked before its attach wins, stop after
/// stop: the test bounds the rounds' time and the stops one attach waits out.
#[test]
fn reattaching_after_sleep_is_not_starved_by_a_tight_stop_loop() {
    let _s = serial();
    const ROUNDS: usize = 50;
    const OUTER_BOUND: Duration = Duration::from_secs(30);
    let stop = Arc::new(AtomicBool::new(false));
    let stops = Arc::new(AtomicUsize::new(0));
    let stopper = {
        let (stop, stops) = (stop.clone(), stops.clone());
        thread::spawn(move || {
            let _me = register_thread(); // a registered requester, like CPython's GC thread
            while !stop.load(Ordering::Relaxed) {
                let world = stop_the_world();
                // "Collect" for a while, as gc.collect() does in the seed:
                // the world is stopped most of the time.
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(50) {
                    std::hint::spin_loop();
                }
                drop(world);
                stops.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (done_tx, done) = std::sync::mpsc::channel();
    let start = Instant::now();
    let sleeper = {
        let stops = stops.clone();
        thread::spawn(move || {
            let me = register_thread();
            // The stops that completed around each attach().
            let mut per_attach = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                me.detach();
                thread::sleep(Duration::from_millis(20));
                let before = stops.load(Ordering::Relaxed);
                me.attach();
                per_attach.push(stops.load(Ordering::Relaxed) - before);
            }
            done_tx.send(()).unwrap();
            per_attach.sort_unstable();
            per_attach
        })
    };
    let finished = done.recv_timeout(OUTER_BOUND).is_ok();
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    stopper.join().unwrap();
    let per_attach = sleeper.join().unwrap();
    let (median, most) = (per_attach[ROUNDS / 2], per_attach[ROUNDS - 1]);
    eprintln!(
        "seed-000 regression: {ROUNDS} rounds in {elapsed:?} ({} stops meanwhile; \
         stops around one attach: median {median}, most {most})",
        stops.load(Ordering::Relaxed)
    );
    assert!(finished, "the re-attaching thread starved for {OUTER_BOUND:?}");
    // An attach waits out at most the stop in progress, whose restart
    // attaches it on its behalf; the next stop then waits for this thread's
    // next safepoint (its detach), so it cannot finish before attach()
    // returns. Counted around it: that stop, perhaps one that had ended but
    // not yet been counted, and the stops that ran while this thread,
    // detached, was descheduled between reading the count and calling
    // attach() (one per ~57 µs: CI saw 3 in a release build, 19 in a debug
    // one). The median is immune to those few preempted rounds; the naive
    // design (the restart leaves the waiter DETACHED) was re-parked by 80 to
    // 1,959 stops in every attach.
    assert!(median <= 3, "the median attach() waited out {median} stops (most: {most})");
}

/// 64 threads attach, detach and quiesce while two other threads stop the
/// world repeatedly: at every stop, no thread is running attached.
#[test]
fn every_stop_parks_all_of_64_churning_threads() {
    let _s = serial();
    const WORKERS: usize = 64;
    const STOPS_EACH: usize = 100;
    let running_attached = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(WORKERS + 1));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (running, stop, ready) = (running_attached.clone(), stop.clone(), ready.clone());
            thread::spawn(move || {
                let me = register_thread();
                ready.wait();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    // An attached section: between a safepoint and the next.
                    running.fetch_add(1, Ordering::SeqCst);
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {
                        std::hint::black_box(vec![i; 16]);
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                    n += 1;
                    if n % 3 == 0 {
                        me.detach();
                        thread::yield_now();
                        me.attach();
                    } else {
                        me.quiescent();
                    }
                }
                drop(me);
            })
        })
        .collect();
    ready.wait();
    let stoppers: Vec<_> = (0..2)
        .map(|k| {
            let running = running_attached.clone();
            thread::spawn(move || {
                let _me = (k == 0).then(register_thread); // one registered requester, one not
                for _ in 0..STOPS_EACH {
                    let world = stop_the_world();
                    // Hold the stop ~50 µs, watching from this core for anyone
                    // who (wrongly) still runs attached on the other.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {
                        assert_eq!(running.load(Ordering::SeqCst), 0, "a thread ran attached during a stop");
                    }
                    drop(world);
                }
            })
        })
        .collect();
    for s in stoppers {
        s.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}

/// A thread spinning attached without safepoints: the timed stop names it,
/// restarts everyone, and the world runs again.
#[test]
fn a_thread_without_safepoints_is_named_and_the_world_restarts() {
    let _s = serial();
    let release = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let spinner = {
        let release = release.clone();
        thread::Builder::new()
            .name("spinner".into())
            .spawn(move || {
                let me = register_thread();
                ready_tx.send(()).unwrap();
                while !release.load(Ordering::Relaxed) {
                    std::hint::spin_loop(); // no safepoint
                }
                me.quiescent();
            })
            .unwrap()
    };
    ready.recv().unwrap();
    // A well-behaved thread, which must be running again after the error.
    let progress = Arc::new(AtomicUsize::new(0));
    let polite_stop = Arc::new(AtomicBool::new(false));
    let polite = {
        let (progress, stop) = (progress.clone(), polite_stop.clone());
        thread::spawn(move || {
            let me = register_thread();
            while !stop.load(Ordering::Relaxed) {
                progress.fetch_add(1, Ordering::Relaxed);
                me.quiescent();
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let err = stop_the_world_timeout(Duration::from_millis(200)).expect_err("the spinner never stops");
    assert_eq!(err.stalled().len(), 1, "{err}");
    let stalled = &err.stalled()[0];
    assert_eq!(stalled.thread().name(), Some("spinner"));
    assert_eq!(stalled.state(), ThreadState::StopRequested);
    assert!(err.to_string().contains("spinner"), "{err}");
    // The world runs again: the polite thread makes progress...
    let seen = progress.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while progress.load(Ordering::Relaxed) <= seen + 3 {
        assert!(Instant::now() < deadline, "the world did not restart");
        thread::sleep(Duration::from_millis(1));
    }
    // ...and once the spinner reaches a safepoint, a stop succeeds.
    release.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    drop(stop_the_world_timeout(Duration::from_secs(10)).expect("everyone reaches a safepoint now"));
    polite_stop.store(true, Ordering::Relaxed);
    polite.join().unwrap();
}

/// A thread that exits (unregisters) instead of reaching a safepoint while a
/// stop is pending does not leave the requester waiting.
#[test]
fn exiting_during_a_pending_stop_does_not_deadlock() {
    let _s = serial();
    for _ in 0..50 {
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        let leaver = thread::spawn(move || {
            let me = register_thread();
            ready_tx.send(()).unwrap();
            go.recv().unwrap(); // attached, no safepoint until it leaves
            drop(me);
        });
        ready.recv().unwrap();
        let requester = thread::spawn(|| drop(stop_the_world_timeout(Duration::from_secs(10)).expect("no deadlock")));
        thread::sleep(Duration::from_millis(1));
        go_tx.send(()).unwrap();
        requester.join().unwrap();
        leaver.join().unwrap();
    }
}

/// A thread that registers while the world is stopped starts (attached) only
/// after the restart; the requester itself may be registered and detached.
#[test]
fn registering_and_attaching_wait_while_stopped() {
    let _s = serial();
    let me = register_thread();
    me.detach();
    let world = stop_the_world();
    let attached = Arc::new(AtomicBool::new(false));
    let newcomer = {
        let attached = attached.clone();
        thread::spawn(move || {
            let me = register_thread();
            attached.store(true, Ordering::SeqCst);
            drop(me);
        })
    };
    thread::sleep(Duration::from_millis(20));
    assert!(!attached.load(Ordering::SeqCst), "registered during a stop");
    drop(world);
    newcomer.join().unwrap();
    assert!(attached.load(Ordering::SeqCst));
    me.attach();
}

/// A stop parks registered threads only: an unregistered thread runs
/// straight through it, and `current_thread_state` is how a runtime tells a
/// registered mutator from a forgotten one.
#[test]
fn only_registered_threads_stop_and_current_thread_state_tells_them() {
    let _s = serial();
    let (registered, forgotten) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let spin = |count: Arc<AtomicUsize>, done: Arc<AtomicBool>, register: bool| {
        thread::spawn(move || {
            let me = register.then(register_thread);
            let state = gcmalloc::current_thread_state();
            while !done.load(Ordering::SeqCst) {
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(me) = &me {
                    me.quiescent();
                }
            }
            state
        })
    };
    let threads = [spin(registered.clone(), done.clone(), true), spin(forgotten.clone(), done.clone(), false)];
    while registered.load(Ordering::SeqCst) == 0 || forgotten.load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    let world = stop_the_world();
    let at_stop = (registered.load(Ordering::SeqCst), forgotten.load(Ordering::SeqCst));
    thread::sleep(Duration::from_millis(20));
    let (r, f) = (registered.load(Ordering::SeqCst), forgotten.load(Ordering::SeqCst));
    drop(world);
    done.store(true, Ordering::SeqCst);
    let states = threads.map(|t| t.join().unwrap());
    assert_eq!(states, [Some(ThreadState::Attached), None], "registered, and forgotten");
    assert_eq!(r, at_stop.0, "the registered thread ran during the stop");
    assert!(f > at_stop.1, "the unregistered thread is not stopped: it ran on");

    thread::spawn(|| {
        let me = register_thread();
        me.blocking(|| assert_eq!(gcmalloc::current_thread_state(), Some(ThreadState::Detached)));
        let again = register_thread();
        drop(me);
        assert_eq!(gcmalloc::current_thread_state(), Some(ThreadState::Attached), "one handle left");
        drop(again);
        assert_eq!(gcmalloc::current_thread_state(), None, "unregistered with its last handle");
    })
    .join()
    .unwrap();
}
