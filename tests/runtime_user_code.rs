//! User code that gcmalloc runs — a reclaimed object's `Drop`, a stall-report
//! callback — may call any public function: end the thread's registration,
//! register again, attach, detach, retire, stop the world, fork. None of it
//! may corrupt a queue, hang, or make a stop or a deadline lie; and every
//! deadline and byte count at the public API saturates instead of
//! overflowing.
//!
//! `cargo test --test runtime_user_code [-- NAME]` runs every test, or those
//! whose name contains NAME.

#[path = "common/stuck.rs"]
mod stuck;
#[path = "common/watchdog.rs"]
mod watchdog;

use std::cell::RefCell;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use gcmalloc::{qsbr, register_thread, ThreadHandle};
use stuck::with_a_stuck_thread;
use watchdog::within;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

/// Items per sealed batch of retired items (QSBR's seal limit).
const SEAL: usize = 127;
const LIMIT: Duration = Duration::from_secs(10);

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A retired object that counts its drop.
struct Counted;

impl Counted {
    fn new() -> Box<Counted> {
        CREATED.fetch_add(1, SeqCst);
        Box::new(Counted)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
    }
}

/// A retired object whose `Drop` runs a closure: user code inside a reclaim.
struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

fn on_drop(f: impl FnOnce() + Send + 'static) -> Box<OnDrop> {
    CREATED.fetch_add(1, SeqCst);
    Box::new(OnDrop(Some(Box::new(f))))
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

thread_local! {
    /// A runtime's per-thread state holding the thread's only handle.
    static HANDLE: RefCell<Option<ThreadHandle>> = const { RefCell::new(None) };
}

/// Registers the current thread, its handle kept in [`HANDLE`] (initialized
/// first, so destroyed after gcmalloc's exit guard).
fn register_into_thread_local() {
    HANDLE.with(|_| {});
    let me = register_thread();
    HANDLE.with(|h| *h.borrow_mut() = Some(me));
}

/// Drops the handle kept in [`HANDLE`]: the end of the registration if it is
/// the last one.
fn drop_kept_handle() {
    let handle = HANDLE.with(|h| h.borrow_mut().take());
    drop(handle);
}

/// Runs `f` on the handle kept in [`HANDLE`], if any.
fn with_kept_handle(f: impl FnOnce(&ThreadHandle)) {
    HANDLE.with(|h| {
        if let Some(h) = h.borrow().as_ref() {
            f(h)
        }
    });
}

/// Drives reclamation until every object made so far is dropped; fails
/// after 10 s, or if one was dropped twice.
fn wait_until_all_dropped(what: &str) {
    let me = register_thread();
    let start = Instant::now();
    while DROPPED.load(SeqCst) < CREATED.load(SeqCst) {
        assert!(
            start.elapsed() < LIMIT,
            "{what}: {} of {} retired objects dropped; {:?}",
            DROPPED.load(SeqCst),
            CREATED.load(SeqCst),
            qsbr::stats()
        );
        qsbr::retire(Counted::new());
        me.quiescent();
        thread::sleep(Duration::from_millis(1));
    }
    drop(me);
    assert_eq!(DROPPED.load(SeqCst), CREATED.load(SeqCst), "{what}: dropped more than once");
}

/// The process-wide invariants after each test: every retired object
/// dropped exactly once, no registration left behind, and a stop that
/// succeeds.
fn invariants(registered_at_start: usize, what: &str) {
    wait_until_all_dropped(what);
    assert_eq!(qsbr::stats().registered_threads, registered_at_start, "{what}: registrations left behind");
    let ok = within(LIMIT, what, || gcmalloc::stop_the_world_timeout(Duration::from_secs(5)).is_ok());
    assert!(ok, "{what}: a final stop of the world failed");
}

/// Registered threads now.
fn registered() -> usize {
    qsbr::stats().registered_threads
}

/// A reclaiming loop took items from its thread's queue, ran one's `Drop`,
/// and went on taking from the same slot after that `Drop` had ended the
/// registration and another thread had registered into the slot: it
/// reclaimed the new owner's private queue (127 of its items dropped on the
/// wrong thread), or raced it and crashed.
fn a_drop_ending_the_registration_mid_reclaim_leaves_the_next_owner_alone() {
    static ELSEWHERE: AtomicUsize = AtomicUsize::new(0);
    static B_REGISTERED: AtomicBool = AtomicBool::new(false);
    /// One of B's items: dropped elsewhere while B is registered and
    /// attached means someone else used B's private queue.
    struct Owned(ThreadId);
    impl Drop for Owned {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
            if B_REGISTERED.load(SeqCst) && thread::current().id() != self.0 {
                ELSEWHERE.fetch_add(1, SeqCst);
            }
        }
    }
    let start = registered();
    let (go_b, b_go) = mpsc::channel::<()>();
    let (b_ready, wait_b) = mpsc::channel::<()>();
    let (a_done, b_wait_a) = mpsc::channel::<()>();
    let b = thread::spawn(move || {
        b_go.recv().unwrap();
        let me = register_thread();
        B_REGISTERED.store(true, SeqCst);
        for _ in 0..SEAL {
            CREATED.fetch_add(1, SeqCst);
            qsbr::retire(Box::new(Owned(thread::current().id()))); // the last one seals the batch
        }
        me.quiescent(); // past the batch's goal: due for whoever polls it
        b_ready.send(()).unwrap();
        let _ = b_wait_a.recv_timeout(LIMIT); // registered and attached meanwhile
        B_REGISTERED.store(false, SeqCst);
        drop(me);
    });
    within(LIMIT, "a reclaim whose Drop ends the registration", move || {
        register_into_thread_local();
        qsbr::retire(on_drop(move || {
            drop_kept_handle(); // the last handle: the registration ends here
            go_b.send(()).unwrap();
            wait_b.recv_timeout(LIMIT).expect("the other thread registered");
        }));
        (1..SEAL).for_each(|_| qsbr::retire(Counted::new())); // sealed, goal g
        let nested = register_thread();
        nested.quiescent(); // this thread is past g
        drop(nested);
        (0..SEAL).for_each(|_| qsbr::retire(Counted::new())); // seals again, reclaims g's batch
        a_done.send(()).unwrap();
    });
    b.join().unwrap();
    assert_eq!(ELSEWHERE.load(SeqCst), 0, "items of a registered thread were reclaimed by another thread");
    invariants(start, "a Drop ending the registration mid-reclaim");
}

/// `stop_the_world_timeout` detached its registered caller while it waited
/// for the stop turn; the detach reclaimed, a reclaimed `Drop` ended the
/// registration, and the stop then attached the freed slot and waited on it
/// forever, its deadline ignored. (The wait for the turn now reclaims
/// nothing.)
fn a_stop_whose_caller_ends_its_registration_in_a_drop_keeps_its_deadline() {
    let start = registered();
    let ok = within(LIMIT, "a stop from a thread whose retired Drop ends its registration", || {
        register_into_thread_local();
        qsbr::retire(on_drop(drop_kept_handle));
        let stop = gcmalloc::stop_the_world_timeout(Duration::from_secs(2));
        stop.is_ok()
    });
    assert!(ok, "no other thread: the stop must succeed");
    invariants(start, "a stop whose caller ends its registration");
}

/// As above, and another thread registers into the freed slot: the stop
/// took that thread for its caller, never stopped it, and returned `Ok`
/// while it kept running (millions of quiescent states during the "stop").
fn a_stop_that_returns_ok_has_stopped_a_thread_that_took_its_callers_slot() {
    static LOOPS: AtomicUsize = AtomicUsize::new(0);
    static RUN: AtomicBool = AtomicBool::new(true);
    let start = registered();
    let (go_b, b_go) = mpsc::channel::<()>();
    let (b_registered, wait_b) = mpsc::channel::<()>();
    let b = thread::spawn(move || {
        if b_go.recv_timeout(LIMIT).is_err() {
            return;
        }
        let me = register_thread();
        b_registered.send(()).unwrap();
        while RUN.load(SeqCst) {
            LOOPS.fetch_add(1, SeqCst);
            me.quiescent(); // the safepoint: parks here while the world is stopped
        }
    });
    let (before, after) = within(LIMIT, "a stop while another thread takes the caller's slot", move || {
        register_into_thread_local();
        qsbr::retire(on_drop(move || {
            drop_kept_handle();
            go_b.send(()).unwrap();
            wait_b.recv_timeout(LIMIT).expect("the other thread registered");
        }));
        let world = gcmalloc::stop_the_world_timeout(Duration::from_secs(5)).expect("the other thread parks");
        let before = LOOPS.load(SeqCst);
        thread::sleep(Duration::from_millis(50));
        let after = LOOPS.load(SeqCst);
        drop(world);
        (before, after)
    });
    RUN.store(false, SeqCst);
    b.join().unwrap();
    assert_eq!(before, after, "a registered thread ran {} loops while the world was stopped", after - before);
    invariants(start, "a stop racing a registration into the caller's slot");
}

/// `fork()` from a registered thread: its prepare handler took the stop turn
/// like a stop does (detach, reclaim, attach), so a `Drop` ending the
/// registration there made `fork` never return.
#[cfg(unix)]
fn a_fork_whose_caller_ends_its_registration_in_a_drop_returns() {
    let start = registered();
    let status = within(LIMIT, "a fork from a thread whose retired Drop ends its registration", || {
        register_into_thread_local();
        qsbr::retire(on_drop(drop_kept_handle));
        watchdog::in_child(LIMIT, "the child", || 0)
    });
    assert_eq!(status, 0);
    invariants(start, "a fork whose caller ends its registration");
}

thread_local! {
    /// A handle that outlives gcmalloc's exit guard (initialized before it).
    static LATE: RefCell<Option<ThreadHandle>> = const { RefCell::new(None) };
}

/// At thread exit the exit guard ended the registration and handed its
/// queue off; a reclaimed `Drop` there attached through a handle kept in a
/// `thread_local` destroyed later, the slot was freed with its sequence
/// online, and no goal was ever reached again (0 of 100 reclaimed, and no
/// laggard named).
fn an_attach_from_a_drop_during_the_exit_hand_off_holds_no_goal() {
    let start = registered();
    // Registered first, so the exiting thread's slot is not reused below;
    // detached, so the exit hand-off finds its items due.
    let me = register_thread();
    me.detach();
    within(LIMIT, "a thread whose exit hand-off runs an attach", || {
        LATE.with(|_| {}); // destroyed after the exit guard
        let me = register_thread();
        LATE.with(|k| *k.borrow_mut() = Some(register_thread()));
        qsbr::retire(on_drop(|| {
            LATE.with(|k| {
                if let Some(h) = k.borrow().as_ref() {
                    h.attach();
                    h.quiescent();
                }
            })
        }));
        std::mem::forget(me); // the exit guard ends the registration
    });
    assert_eq!(registered(), start + 1, "the exiting thread's registration ended");
    me.attach();
    let before = DROPPED.load(SeqCst);
    (0..100).for_each(|_| qsbr::retire(Counted::new()));
    let begin = Instant::now();
    while DROPPED.load(SeqCst) < before + 100 && begin.elapsed() < Duration::from_secs(5) {
        me.quiescent();
        thread::sleep(Duration::from_millis(1));
    }
    let stats = qsbr::stats();
    drop(me);
    assert_eq!(
        DROPPED.load(SeqCst) - before,
        100,
        "goals never reached after the exit hand-off ran an attach (laggard: {:?})",
        stats.laggard.map(|l| l.to_string())
    );
    invariants(start, "an attach during the exit hand-off");
}

/// Releases the stuck thread `release` after `after`, from another thread.
fn release_after(release: &mpsc::Sender<()>, after: Duration) -> thread::JoinHandle<()> {
    let release = release.clone();
    thread::spawn(move || {
        thread::sleep(after);
        let _ = release.send(());
    })
}

fn panic_message(r: thread::Result<()>) -> String {
    r.map_or_else(|e| watchdog::panic_text(&*e), |()| "no panic".into())
}

/// `stop_the_world_timeout(Duration::MAX)` and a stall report every
/// `Duration::MAX` panicked with "overflow when adding duration to
/// instant"; a stall report every `Duration::ZERO` reported in a busy loop
/// (3,548 lines in 300 ms). Deadlines saturate (an unreachable one is no
/// deadline), and reports come at most every 10 ms.
fn deadlines_saturate_and_stall_reports_have_a_floor() {
    static REPORTS: AtomicUsize = AtomicUsize::new(0);
    fn count(_: &gcmalloc::StallError) {
        REPORTS.fetch_add(1, SeqCst);
    }
    let r = catch_unwind(|| drop(gcmalloc::stop_the_world_timeout(Duration::MAX).expect("nothing to wait for")));
    assert!(r.is_ok(), "stop_the_world_timeout(Duration::MAX): {}", panic_message(r));
    with_a_stuck_thread(|release| {
        let releaser = release_after(release, Duration::from_millis(100));
        let r = within(LIMIT, "a stop with Duration::MAX while a thread is stuck", || {
            catch_unwind(|| drop(gcmalloc::stop_the_world_timeout(Duration::MAX).expect("waits it out")))
        });
        assert!(r.is_ok(), "stop_the_world_timeout(Duration::MAX) waiting: {}", panic_message(r));
        releaser.join().unwrap();
    });
    gcmalloc::set_stall_report(Duration::MAX, count);
    with_a_stuck_thread(|release| {
        let releaser = release_after(release, Duration::from_millis(100));
        let r = within(LIMIT, "a stop with stall reports every Duration::MAX", || {
            catch_unwind(|| drop(gcmalloc::stop_the_world()))
        });
        assert!(r.is_ok(), "set_stall_report(Duration::MAX) then a stop that waits: {}", panic_message(r));
        releaser.join().unwrap();
    });
    assert_eq!(REPORTS.load(SeqCst), 0, "a report every Duration::MAX came early");
    gcmalloc::set_stall_report(Duration::ZERO, count);
    let waited = with_a_stuck_thread(|release| {
        let releaser = release_after(release, Duration::from_millis(300));
        let begin = Instant::now();
        within(LIMIT, "a stop with stall reports every Duration::ZERO", || drop(gcmalloc::stop_the_world()));
        releaser.join().unwrap();
        begin.elapsed()
    });
    let reports = REPORTS.load(SeqCst);
    gcmalloc::set_stall_report(Duration::from_secs(1), |s| eprintln!("gcmalloc: {s}; still waiting"));
    let most = (waited.as_millis() / 10) as usize + 1;
    assert!(reports <= most, "{reports} stall reports in {waited:?} (at most one per 10 ms: {most})");
    assert!(reports >= 1, "a stop waited {waited:?} without a report");
}

/// `retire_with_size` with sizes that overflow wrapped the pending byte
/// count (`usize::MAX` twice plus 5 read 3); it saturates, for a thread's
/// own queue and for the orphan queue alike.
fn pending_bytes_saturate() {
    let start = registered();
    let me = register_thread();
    for bytes in [usize::MAX, usize::MAX, 5] {
        CREATED.fetch_add(1, SeqCst);
        qsbr::retire_with_size(Counted::new_unaccounted(), bytes);
    }
    let own = qsbr::stats().pending_bytes;
    drop(me);
    assert_eq!(own, usize::MAX, "a thread's pending bytes wrapped");
    let orphans = with_a_stuck_thread(|_| {
        // Unregistered: each item goes to the orphan queue, held by the
        // stuck thread.
        for bytes in [usize::MAX, usize::MAX, 5] {
            CREATED.fetch_add(1, SeqCst);
            qsbr::retire_with_size(Counted::new_unaccounted(), bytes);
        }
        qsbr::stats().pending_bytes
    });
    assert_eq!(orphans, usize::MAX, "the orphan queue's pending bytes wrapped");
    invariants(start, "pending bytes");
}

impl Counted {
    /// A `Counted` whose creation the caller counts itself.
    fn new_unaccounted() -> Box<Counted> {
        Box::new(Counted)
    }
}

/// What a reclaimed object's `Drop` does, in [`every_operation_from_a_reclaimed_drop`].
#[derive(Clone, Copy, Debug)]
enum Op {
    DropLastHandle,
    Register,
    Attach,
    Detach,
    Blocking,
    Retire,
    Stop,
    StopWithTimeout,
    RefreshEstimate,
    #[cfg(unix)]
    Fork,
}

const OPS: &[Op] = &[
    Op::DropLastHandle,
    Op::Register,
    Op::Attach,
    Op::Detach,
    Op::Blocking,
    Op::Retire,
    Op::Stop,
    Op::StopWithTimeout,
    Op::RefreshEstimate,
    #[cfg(unix)]
    Op::Fork,
];

fn run_op(op: Op) {
    match op {
        Op::DropLastHandle => drop_kept_handle(),
        Op::Register => {
            let me = register_thread();
            qsbr::retire(Counted::new());
            me.quiescent();
        }
        Op::Attach => with_kept_handle(|h| {
            h.attach();
            h.quiescent();
        }),
        Op::Detach => with_kept_handle(ThreadHandle::detach),
        Op::Blocking => with_kept_handle(|h| h.blocking(thread::yield_now)),
        Op::Retire => (0..2 * SEAL).for_each(|_| qsbr::retire(Counted::new())),
        Op::Stop => gcmalloc::stop_the_world().refresh_estimate(),
        Op::StopWithTimeout => drop(gcmalloc::stop_the_world_timeout(Duration::from_secs(2))),
        Op::RefreshEstimate => gcmalloc::refresh_estimate(),
        #[cfg(unix)]
        Op::Fork => assert_eq!(watchdog::in_child(LIMIT, "a fork from a reclaimed Drop", || 0), 0),
    }
}

/// How the reclaim that runs the `Drop` is reached.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// A retire seals a batch and reclaims the previous one.
    Retire,
    /// Quiescent states (through a second handle) poll the queue.
    Quiescent,
    /// A detach hands the queue off.
    Detach,
    /// A stop detaches its caller while it waits for its turn (which
    /// reclaims nothing: the item goes at the thread's exit at the latest).
    Stop,
    /// The thread exits: the exit guard hands the queue off.
    Exit,
}

const TRIGGERS: &[Trigger] = &[Trigger::Retire, Trigger::Quiescent, Trigger::Detach, Trigger::Stop, Trigger::Exit];

fn trigger(t: Trigger) {
    match t {
        Trigger::Retire => {
            (1..SEAL).for_each(|_| qsbr::retire(Counted::new()));
            let nested = register_thread();
            nested.quiescent();
            drop(nested);
            (0..SEAL).for_each(|_| qsbr::retire(Counted::new()));
        }
        Trigger::Quiescent => {
            let nested = register_thread();
            (0..20).for_each(|_| nested.quiescent());
        }
        Trigger::Detach => {
            let nested = register_thread();
            nested.detach();
            nested.attach();
        }
        Trigger::Stop => drop(gcmalloc::stop_the_world_timeout(Duration::from_secs(5)).expect("nothing to wait for")),
        Trigger::Exit => {}
    }
}

/// Every operation a runtime might do from a reclaimed object's `Drop`, on
/// every path that reclaims: it works (or panics with a message, caught
/// where the object is reclaimed), and afterwards every object is dropped
/// once, no registration is left and a stop succeeds.
fn every_operation_from_a_reclaimed_drop() {
    let start = registered();
    for &t in TRIGGERS {
        for &op in OPS {
            let what = format!("{op:?} from a Drop reclaimed by {t:?}");
            within(LIMIT, &what.clone(), move || {
                register_into_thread_local();
                qsbr::retire(on_drop(move || run_op(op)));
                trigger(t);
            });
            invariants(start, &what);
        }
    }
}

/// A stall report that forks: the child's stop waited for threads that do
/// not exist there (the stuck one), forever and silently.
#[cfg(unix)]
fn a_stop_in_a_fork_child_does_not_wait_for_threads_it_lacks() {
    static PARENT: AtomicUsize = AtomicUsize::new(0);
    static CHILD: AtomicUsize = AtomicUsize::new(0);
    static FORKED: AtomicBool = AtomicBool::new(false);
    static RELEASE: Mutex<Option<mpsc::Sender<()>>> = Mutex::new(None);
    fn forking_report(_: &gcmalloc::StallError) {
        if FORKED.swap(true, SeqCst) {
            return; // once (the child inherits the flag)
        }
        // SAFETY: the child goes on with the stop in progress and `_exit`s
        // right after it (see below).
        let pid = unsafe { libc::fork() };
        if pid > 0 {
            CHILD.store(pid as usize, SeqCst);
            if let Some(r) = RELEASE.lock().unwrap().take() {
                let _ = r.send(()); // the parent's stop may end now
            }
        }
    }
    // SAFETY: getpid has no preconditions.
    PARENT.store(unsafe { libc::getpid() } as usize, SeqCst);
    gcmalloc::set_stall_report(Duration::from_millis(20), forking_report);
    with_a_stuck_thread(|release| {
        *RELEASE.lock().unwrap() = Some(release.clone());
        let world = gcmalloc::stop_the_world();
        // SAFETY: getpid has no preconditions.
        if unsafe { libc::getpid() } as usize != PARENT.load(SeqCst) {
            drop(world);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        drop(world);
    });
    gcmalloc::set_stall_report(Duration::from_secs(1), |s| eprintln!("gcmalloc: {s}; still waiting"));
    let status = watchdog::wait_child(CHILD.load(SeqCst) as libc::pid_t, LIMIT, "a stop in a fork child");
    assert_eq!(status, 0, "the child's stop failed");
}

/// A stall report is user code too: one that ends its own thread's
/// registration while the stop waits, and lets another thread register,
/// leaves a stop that returns `Ok` with that thread parked (it registered
/// during the stop, so it waits for the restart).
fn a_stall_report_that_ends_its_threads_registration() {
    static GO: Mutex<Option<mpsc::Sender<()>>> = Mutex::new(None);
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    static LOOPS: AtomicUsize = AtomicUsize::new(0);
    fn ends_registration(_: &gcmalloc::StallError) {
        drop_kept_handle();
        if let Some(go) = GO.lock().unwrap().take() {
            let _ = go.send(());
        }
    }
    let start = registered();
    let (go, b_go) = mpsc::channel::<()>();
    *GO.lock().unwrap() = Some(go);
    let (stop_b, b_stop) = mpsc::channel::<()>();
    let b = thread::spawn(move || {
        if b_go.recv_timeout(LIMIT).is_err() {
            return;
        }
        let me = register_thread(); // waits while the world is stopped
        REGISTERED.store(true, SeqCst);
        while b_stop.try_recv().is_err() {
            LOOPS.fetch_add(1, SeqCst);
            me.quiescent();
        }
    });
    gcmalloc::set_stall_report(Duration::from_millis(20), ends_registration);
    let (before, after) = with_a_stuck_thread(|release| {
        within(LIMIT, "a stop whose stall report ends its registration", {
            let release = release.clone();
            move || {
                register_into_thread_local();
                let releaser = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(200)); // after a report
                    let _ = release.send(());
                });
                let world = gcmalloc::stop_the_world();
                let before = LOOPS.load(SeqCst);
                thread::sleep(Duration::from_millis(50));
                let after = LOOPS.load(SeqCst);
                drop(world);
                releaser.join().unwrap();
                (before, after)
            }
        })
    });
    gcmalloc::set_stall_report(Duration::from_secs(1), |s| eprintln!("gcmalloc: {s}; still waiting"));
    let _ = stop_b.send(());
    b.join().unwrap();
    assert_eq!(before, after, "a thread ran {} loops while the world was stopped", after - before);
    assert!(REGISTERED.load(SeqCst), "the other thread registered once the stop ended");
    invariants(start, "a stall report ending its registration");
}

/// Runs without libtest (`harness = false` in Cargo.toml): the invariants
/// are process wide, and the fork tests need a process without idle harness
/// threads.
fn main() {
    watchdog::silence_expected_panics(&["holds a StopTheWorld"]);
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let tests: &[(&str, fn())] = &[
        (
            "a_drop_ending_the_registration_mid_reclaim_leaves_the_next_owner_alone",
            a_drop_ending_the_registration_mid_reclaim_leaves_the_next_owner_alone,
        ),
        (
            "a_stop_whose_caller_ends_its_registration_in_a_drop_keeps_its_deadline",
            a_stop_whose_caller_ends_its_registration_in_a_drop_keeps_its_deadline,
        ),
        (
            "a_stop_that_returns_ok_has_stopped_a_thread_that_took_its_callers_slot",
            a_stop_that_returns_ok_has_stopped_a_thread_that_took_its_callers_slot,
        ),
        #[cfg(unix)]
        (
            "a_fork_whose_caller_ends_its_registration_in_a_drop_returns",
            a_fork_whose_caller_ends_its_registration_in_a_drop_returns,
        ),
        (
            "an_attach_from_a_drop_during_the_exit_hand_off_holds_no_goal",
            an_attach_from_a_drop_during_the_exit_hand_off_holds_no_goal,
        ),
        ("deadlines_saturate_and_stall_reports_have_a_floor", deadlines_saturate_and_stall_reports_have_a_floor),
        ("pending_bytes_saturate", pending_bytes_saturate),
        ("every_operation_from_a_reclaimed_drop", every_operation_from_a_reclaimed_drop),
        ("a_stall_report_that_ends_its_threads_registration", a_stall_report_that_ends_its_threads_registration),
        #[cfg(unix)]
        (
            "a_stop_in_a_fork_child_does_not_wait_for_threads_it_lacks",
            a_stop_in_a_fork_child_does_not_wait_for_threads_it_lacks,
        ),
    ];
    for (name, test) in tests {
        if name.contains(filter.as_str()) {
            test();
            println!("test {name} ... ok");
        }
    }
}
