//! The registered-thread runtime against the patterns real runtimes use and
//! that outside client programs broke it with: re-entry from a reclaimed
//! object's `Drop` at thread exit, handles kept in `thread_local`s, panicking `Drop`s, registering
//! late, nested stops, and a stop that must not wait past its deadline.
//!
//! Each test ends by checking the process-wide invariants: every retired
//! object dropped exactly once, `registered_threads` back to where it
//! started, and a stop of the world that succeeds.

#[path = "common/runner.rs"]
mod runner;

#[path = "common/rss.rs"]
mod rss;
use rss::rss_bytes;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use gcmalloc::{qsbr, register_thread, ThreadHandle};
use stuck::with_a_stuck_thread;
use watchdog::within;

#[path = "common/stuck.rs"]
mod stuck;
#[path = "common/watchdog.rs"]
mod watchdog;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A linked list node whose `Drop` retires its tail: every drop re-enters QSBR.
struct Node(Option<Box<Node>>);

impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
        if let Some(tail) = self.0.take() {
            qsbr::retire(tail);
        }
    }
}

fn list(len: usize) -> Box<Node> {
    (1..len).fold(Box::new(Node(None)), |tail, _| Box::new(Node(Some(tail))))
}

/// Drives reclamation until `dropped` objects are dropped, or fails after 10 s.
fn wait_until_dropped(expected: usize, what: &str) {
    let me = register_thread();
    let start = Instant::now();
    while DROPPED.load(SeqCst) < expected {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}: {} of {expected} dropped", DROPPED.load(SeqCst));
        qsbr::retire(Box::new(0u64)); // processes this thread's queue and the orphans
        me.quiescent();
        thread::sleep(Duration::from_millis(1));
    }
    drop(me);
    assert_eq!(DROPPED.load(SeqCst), expected, "{what}: dropped more than once");
}

fn invariants(registered_at_start: usize, what: &str) {
    assert_eq!(qsbr::stats().registered_threads, registered_at_start, "{what}: registrations left behind");
    let world =
        within(Duration::from_secs(10), what, || gcmalloc::stop_the_world_timeout(Duration::from_secs(5)).is_ok());
    assert!(world, "{what}: a final stop of the world failed");
}

/// A `Drop` that retires, run by the exit hand-off, used to put
/// its item on the dying thread's queue without a goal; the orphan queue
/// could never pop it, and the slot's next owner crashed in a seal.
fn retiring_from_a_drop_at_thread_exit() {
    DROPPED.store(0, SeqCst);
    let start = qsbr::stats().registered_threads;
    const LEN: usize = 1_000;
    for round in 0..20 {
        within(Duration::from_secs(10), "a thread retiring a list and exiting", move || {
            let me = register_thread();
            qsbr::retire(list(LEN));
            if round % 2 == 0 {
                drop(me); // the handle's drop hands the queue off
            } else {
                std::mem::forget(me); // the exit guard does
            }
        });
    }
    wait_until_dropped(20 * LEN, "lists retired by exiting threads");
    // The slots are reused: their queues must be sound.
    for _ in 0..50 {
        within(Duration::from_secs(10), "a thread reusing a slot", || {
            let me = register_thread();
            (0..300).for_each(|i| qsbr::retire(Box::new(i)));
            me.quiescent();
        });
    }
    invariants(start, "retiring from a drop at exit");
}

thread_local! {
    static KEPT: RefCell<Option<KeptHandle>> = const { RefCell::new(None) };
}

/// A runtime's per-thread mutator state, holding the thread's handle.
struct KeptHandle(ThreadHandle);

impl Drop for KeptHandle {
    fn drop(&mut self) {
        // After gcmalloc's exit guard: the registration has ended.
        self.0.detach();
        self.0.attach(); // used to park forever on a freed slot
        self.0.quiescent();
    }
}

/// A handle in a `thread_local` that is destroyed after
/// gcmalloc's exit guard (its slot initialized first, so destroyed last).
fn a_handle_in_a_thread_local_outlives_the_exit_guard() {
    let start = qsbr::stats().registered_threads;
    for _ in 0..20 {
        within(Duration::from_secs(10), "a thread keeping its handle in a thread_local", || {
            KEPT.with(|_| {}); // registered before gcmalloc's exit guard
            let me = register_thread();
            std::mem::forget(register_thread()); // a leaked one too: the exit guard ends the registration
            me.quiescent();
            KEPT.with(|k| *k.borrow_mut() = Some(KeptHandle(me)));
        });
    }
    // Another thread takes the freed slots meanwhile: stale handles must not
    // touch them (its stop below must find it attached and wait for it).
    invariants(start, "handles in thread_locals");
}

struct RegistersInDrop;

impl Drop for RegistersInDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
        let me = register_thread();
        qsbr::retire(Box::new([1u8; 32]));
        me.quiescent();
    }
}

/// `register_thread()` inside a reclaimed `Drop` during the exit
/// hand-off unregistered the slot twice (`registered_threads` wrapped).
fn registering_from_a_drop_at_thread_exit() {
    DROPPED.store(0, SeqCst);
    let start = qsbr::stats().registered_threads;
    for _ in 0..20 {
        within(Duration::from_secs(10), "a thread whose retired object registers", || {
            let me = register_thread();
            qsbr::retire(Box::new(RegistersInDrop));
            drop(me);
        });
    }
    wait_until_dropped(20, "objects that register in their drop");
    invariants(start, "registering from a drop at exit");
}

struct PanicsInDrop;

impl Drop for PanicsInDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
        panic!("a retired object's drop panicked (on purpose)");
    }
}

/// A panicking `Drop` of a retired object aborted the process at
/// thread exit, or came out of an unrelated call and left a zombie
/// registration behind.
fn a_panicking_drop_neither_aborts_nor_escapes() {
    DROPPED.store(0, SeqCst);
    let start = qsbr::stats().registered_threads;
    let panics = qsbr::stats().drop_panics;
    for _ in 0..5 {
        within(Duration::from_secs(10), "a thread retiring a panicking object and exiting", || {
            let me = register_thread();
            qsbr::retire(Box::new(PanicsInDrop));
            std::mem::forget(me); // reclaimed by the exit hand-off, inside a TLS destructor
        });
    }
    // Reclaimed in this thread's own calls: none of them may panic.
    let me = register_thread();
    for _ in 0..5 {
        qsbr::retire(Box::new(PanicsInDrop));
    }
    let escaped = catch_unwind(AssertUnwindSafe(|| {
        me.quiescent();
        drop(me);
    }));
    assert!(escaped.is_ok(), "a retired object's panic came out of quiescent() or a handle's drop");
    wait_until_dropped(10, "panicking objects");
    assert_eq!(qsbr::stats().drop_panics - panics, 10, "every caught panic is counted");
    invariants(start, "panicking drops");
}

struct RegistersLate;

impl Drop for RegistersLate {
    fn drop(&mut self) {
        let me = register_thread();
        qsbr::retire(Box::new(7u32));
        me.quiescent();
    }
}

thread_local! {
    static LATE: RegistersLate = const { RegistersLate };
}

/// `register_thread()` in a thread-local destructor that runs
/// after gcmalloc's exit guard aborted the process.
fn registering_late_in_a_thread_local_destructor() {
    let start = qsbr::stats().registered_threads;
    for _ in 0..10 {
        within(Duration::from_secs(10), "a thread registering in a late TLS destructor", || {
            LATE.with(|_| {}); // destroyed after the exit guard below
            drop(register_thread());
            drop(register_thread());
        });
    }
    invariants(start, "late registration");
}

/// Nested stops and registering while holding a stop hung
/// silently; now they panic with a message that says what to do.
fn misuse_of_a_stop_panics_with_a_message() {
    let message = |r: std::thread::Result<()>| -> String {
        let e = r.expect_err("must panic");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let world = gcmalloc::stop_the_world();
    let nested = message(catch_unwind(|| drop(gcmalloc::stop_the_world())));
    assert!(nested.contains("holds a StopTheWorld"), "{nested}");
    let timed = message(catch_unwind(|| drop(gcmalloc::stop_the_world_timeout(Duration::from_millis(10)))));
    assert!(timed.contains("holds a StopTheWorld"), "{timed}");
    let register = message(catch_unwind(|| drop(register_thread())));
    assert!(register.contains("register threads before stopping the world"), "{register}");
    drop(world);
    drop(gcmalloc::stop_the_world()); // the misuse left nothing behind
}

/// `stop_the_world_timeout(200 ms)` returned after 3 s while
/// another thread held a stop: the deadline now covers waiting for the turn.
fn a_timeout_covers_waiting_for_another_stop() {
    let (held, wait) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let world = gcmalloc::stop_the_world();
        held.send(()).unwrap();
        released.recv().unwrap();
        drop(world);
    });
    wait.recv().unwrap();
    // The holder keeps its stop until this call has returned: a deadline
    // that did not cover the wait for the turn would hang here.
    let err = within(Duration::from_secs(10), "a timed stop while another is held", || {
        let start = Instant::now();
        let err = gcmalloc::stop_the_world_timeout(Duration::from_millis(200)).expect_err("another stop is held");
        (err, start.elapsed())
    });
    let (err, took) = err;
    assert!(err.another_stop() && err.stalled().is_empty(), "{err}");
    assert!(took >= Duration::from_millis(200), "gave up early, after {took:?}");
    release.send(()).unwrap();
    holder.join().unwrap();
}

/// A registered thread that blocks while attached made every stop
/// wait forever without a word. `stop_the_world()` now reports it (here to
/// a hook) and keeps waiting; `ThreadHandle::blocking` is the fix.
fn a_stop_reports_a_thread_blocked_while_attached() {
    static REPORTS: AtomicUsize = AtomicUsize::new(0);
    fn count(stall: &gcmalloc::StallError) {
        assert!(stall.stalled().iter().any(|t| t.thread().name() == Some("blocked-attached")), "{stall}");
        REPORTS.fetch_add(1, SeqCst);
    }
    gcmalloc::set_stall_report(Duration::from_millis(50), count);
    let (registered, wait) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (inside, is_inside) = mpsc::channel();
    let (leave, left) = mpsc::channel::<()>();
    let blocked = thread::Builder::new()
        .name("blocked-attached".into())
        .spawn(move || {
            let me = register_thread();
            registered.send(()).unwrap();
            released.recv().unwrap(); // blocks attached: the mistake
            me.quiescent();
            // The fix: detached for the blocking call.
            me.blocking(|| {
                inside.send(()).unwrap();
                left.recv().unwrap();
            });
        })
        .unwrap();
    wait.recv().unwrap();
    let releaser = thread::spawn(move || {
        while REPORTS.load(SeqCst) < 2 {
            thread::sleep(Duration::from_millis(10));
        }
        release.send(()).unwrap();
    });
    within(Duration::from_secs(10), "a stop waiting for a blocked thread", || {
        drop(gcmalloc::stop_the_world());
    });
    assert!(REPORTS.load(SeqCst) >= 2, "the stop waited without reporting");
    releaser.join().unwrap();
    // While it blocks inside blocking(), a stop does not wait for it (it
    // leaves only after the stop: a stop that waited would hang).
    is_inside.recv().unwrap();
    within(Duration::from_secs(10), "a stop while a thread blocks in blocking()", || {
        drop(gcmalloc::stop_the_world());
    });
    leave.send(()).unwrap();
    blocked.join().unwrap();
    gcmalloc::set_stall_report(Duration::from_secs(1), |s| eprintln!("gcmalloc: {s}; still waiting"));
}

/// With a thread stuck attached, a loop of 8 MiB allocations
/// reached 1.7 GB of RSS: freed large/huge pages waited for a goal that
/// never came, and no later allocation reused them. Now a delayed page that
/// fits is reused.
fn a_stuck_thread_does_not_pile_up_large_blocks() {
    with_a_stuck_thread(|_| {
        let before = rss_bytes();
        let mut peak = before;
        for i in 0..200u8 {
            let block = vec![i; 8 << 20];
            std::hint::black_box(&block);
            drop(block);
            peak = peak.max(rss_bytes());
        }
        let grew = peak - before;
        println!("  200 x 8 MiB with a stuck thread: peak RSS +{} MiB", grew >> 20);
        assert!(grew < 64 << 20, "peak RSS grew by {} MiB", grew >> 20);
        let stats = qsbr::stats();
        assert_eq!(stats.laggard.map(|l| l.thread().name().map(String::from)), Some(Some("stuck".into())));
        assert!(stats.delayed_page_bytes >= 8 << 20, "the delayed pages are visible: {}", stats.delayed_page_bytes);
    });
}

/// A registered thread that retired items and then detached (for
/// I/O, say) held them until it came back; now detaching hands them to the
/// orphan queue, which the other threads' quiescent states process.
fn items_of_a_detached_thread_are_reclaimed_without_it() {
    DROPPED.store(0, SeqCst);
    let (detached, wait) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let me = register_thread();
        (0..1_000).for_each(|_| qsbr::retire(Box::new(Counted)));
        me.blocking(|| {
            detached.send(()).unwrap();
            released.recv().unwrap();
        });
    });
    wait.recv().unwrap();
    let me = register_thread();
    let start = Instant::now();
    while DROPPED.load(SeqCst) < 1_000 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} of 1000 reclaimed while their thread is detached",
            DROPPED.load(SeqCst)
        );
        me.quiescent(); // quiescent states only: no retire of its own
        thread::sleep(Duration::from_millis(1));
    }
    drop(me);
    release.send(()).unwrap();
    holder.join().unwrap();
}

/// Orphans (items of exited threads) survived 10,000 quiescent
/// states of the only other thread; its quiescent states now process them.
fn orphans_are_reclaimed_by_quiescent_states_alone() {
    DROPPED.store(0, SeqCst);
    let me = register_thread();
    within(Duration::from_secs(10), "a thread retiring and exiting", || {
        let me = register_thread();
        (0..100).for_each(|_| qsbr::retire(Box::new(Counted)));
        drop(me);
    });
    for _ in 0..10_000 {
        me.quiescent();
        if DROPPED.load(SeqCst) == 100 {
            break;
        }
    }
    assert_eq!(DROPPED.load(SeqCst), 100, "orphans left after 10,000 quiescent states");
    drop(me);
}

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
    }
}

static CREATED: AtomicUsize = AtomicUsize::new(0);

/// A retired object whose `Drop` does what real runtimes' objects do:
/// retire more, register, panic, or nothing.
struct Wild(u8);

impl Wild {
    fn new(kind: u8) -> Box<Wild> {
        CREATED.fetch_add(1, SeqCst);
        Box::new(Wild(kind))
    }
}

impl Drop for Wild {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
        match self.0 % 4 {
            0 => qsbr::retire(Wild::new(3)),
            1 => {
                let me = register_thread();
                qsbr::retire(Wild::new(3));
                me.quiescent();
            }
            2 => panic!("a wild drop panicked (on purpose)"),
            _ => {}
        }
    }
}

/// All of the above at once, in churning threads: each retires objects
/// whose drops retire, register or panic, keeps its handle in a
/// thread-local (destroyed after the exit guard), detaches, and exits; the
/// main thread stops the world meanwhile. At the end: every object dropped
/// exactly once, no registration left, a stop that succeeds, and the
/// accounting free of drift.
fn a_churn_of_everything_keeps_the_invariants() {
    DROPPED.store(0, SeqCst);
    CREATED.store(0, SeqCst);
    let start = qsbr::stats().registered_threads;
    for round in 0..8u8 {
        let threads: Vec<_> = (0..6u8)
            .map(|t| {
                thread::spawn(move || {
                    KEPT.with(|_| {});
                    let me = register_thread();
                    for i in 0..200u8 {
                        qsbr::retire(Wild::new(i.wrapping_add(t).wrapping_add(round)));
                        if i % 50 == 0 {
                            me.blocking(thread::yield_now);
                        }
                        me.quiescent();
                    }
                    KEPT.with(|k| *k.borrow_mut() = Some(KeptHandle(me)));
                })
            })
            .collect();
        for _ in 0..5 {
            within(Duration::from_secs(10), "a stop during the churn", || drop(gcmalloc::stop_the_world()));
        }
        threads
            .into_iter()
            .for_each(|t| within(Duration::from_secs(10), "a churning thread", move || t.join().unwrap()));
    }
    let me = register_thread();
    let begin = Instant::now();
    while DROPPED.load(SeqCst) < CREATED.load(SeqCst) {
        assert!(
            begin.elapsed() < Duration::from_secs(10),
            "{} of {} dropped",
            DROPPED.load(SeqCst),
            CREATED.load(SeqCst)
        );
        me.quiescent();
        thread::sleep(Duration::from_millis(1));
    }
    drop(me);
    assert_eq!(DROPPED.load(SeqCst), CREATED.load(SeqCst), "every object dropped exactly once");
    invariants(start, "a churn of everything");
    // SAFETY: every other thread of this test has been joined.
    let audit = unsafe { gcmalloc::audit() };
    assert_eq!(audit.counted, audit.carried, "the accounting drifted");
}

/// Runs without libtest (`harness = false` in Cargo.toml): the invariants
/// are process wide (registered threads, dropped objects).
fn main() {
    watchdog::silence_expected_panics(&["(on purpose)", "holds a StopTheWorld"]);
    runner::run(&[
        ("retiring_from_a_drop_at_thread_exit", retiring_from_a_drop_at_thread_exit),
        ("a_handle_in_a_thread_local_outlives_the_exit_guard", a_handle_in_a_thread_local_outlives_the_exit_guard),
        ("registering_from_a_drop_at_thread_exit", registering_from_a_drop_at_thread_exit),
        ("a_panicking_drop_neither_aborts_nor_escapes", a_panicking_drop_neither_aborts_nor_escapes),
        ("registering_late_in_a_thread_local_destructor", registering_late_in_a_thread_local_destructor),
        ("misuse_of_a_stop_panics_with_a_message", misuse_of_a_stop_panics_with_a_message),
        ("a_timeout_covers_waiting_for_another_stop", a_timeout_covers_waiting_for_another_stop),
        ("a_stop_reports_a_thread_blocked_while_attached", a_stop_reports_a_thread_blocked_while_attached),
        ("a_stuck_thread_does_not_pile_up_large_blocks", a_stuck_thread_does_not_pile_up_large_blocks),
        ("items_of_a_detached_thread_are_reclaimed_without_it", items_of_a_detached_thread_are_reclaimed_without_it),
        ("orphans_are_reclaimed_by_quiescent_states_alone", orphans_are_reclaimed_by_quiescent_states_alone),
        ("a_churn_of_everything_keeps_the_invariants", a_churn_of_everything_keeps_the_invariants),
    ]);
    // At process exit: main keeps a registration to the end, and
    // an `atexit` handler registers again (it used to abort the process).
    std::mem::forget(register_thread());
    extern "C" fn registers_at_exit() {
        let me = register_thread();
        qsbr::retire(Box::new([0u8; 16]));
        me.quiescent();
        drop(me);
        println!("test registering_in_an_atexit_handler ... ok");
    }
    // SAFETY: registers a plain `extern "C"` function that never unwinds
    // (nothing in it panics).
    assert_eq!(unsafe { libc::atexit(registers_at_exit) }, 0);
}
