//! Stop-the-world: park every other registered thread, starving no one and
//! never hanging silently.
//!
//! # Protocol
//!
//! One stop at a time: a requester takes the stop mutex (detaching itself
//! while it waits for it, so an earlier requester can stop it). Then, under
//! the registry mutex, it marks the registry `stopping` (new registrants start
//! suspended) and visits every other slot:
//!
//! * `DETACHED` → `SUSPENDED_DETACHED` by CAS: stopped without its help;
//! * `ATTACHED` → `STOP_REQUESTED` by CAS, counted in `remaining`; the thread
//!   parks at its next safepoint (`quiescent()`: → `SUSPENDED_ATTACHED`) or
//!   leaves by `detach()` (→ `SUSPENDED_DETACHED`) or by unregistering (→
//!   free); each of these counts down and the last one unparks the requester.
//!
//! Restarting (the guard's `Drop`) visits every slot again: a thread parked
//! at a safepoint gets `ATTACHED` back, a suspended-detached one `DETACHED` —
//! **except an attach waiter**, which gets `ATTACHED` directly. That is the
//! fix for CPython's gh-151518: there, restart set every suspended thread to
//! DETACHED and woke it, and a tight loop of stops re-parked a waking
//! attacher before its own CAS could win, forever. Here the restart attaches
//! the waiter on its behalf, so the next stop finds it attached and waits for
//! it to reach a safepoint cooperatively: every stop lets each waiter make
//! progress. Threads that are merely detached (sleep, I/O) are not waiters and
//! stay immediately parkable, and the uncontended `attach()` is still one
//! CAS. A thread woken from a safepoint likewise runs on to its next one
//! before it parks again.
//!
//! Waiting uses park/unpark (futex on Linux): states are changed by CAS and
//! the waker unparks after its CAS, and every waiter re-checks its state
//! around each park, so no wake-up is lost. A thread never reaching a
//! safepoint does not wedge the process: [`stop_the_world_timeout`] restarts
//! the world at the deadline and names it in a [`StallError`].

use core::fmt;
use std::time::{Duration, Instant};

use core::cell::Cell;
use core::marker::PhantomData;

use crate::runtime::qsbr;
use crate::runtime::registry::{current_slot, registry, state, Slot, ThreadState};
use crate::sync::{const_thread_local, global, lock, park_timeout, thread, AtomicUsize, Condvar, Mutex, Ordering};
#[cfg(all(unix, not(loom)))]
use crate::{runtime::registry::Inner as RegistryInner, sync::MutexGuard};

pub(crate) struct World {
    /// True for the whole stop: one stop at a time. A flag under a mutex,
    /// not a held mutex guard, so that waiting for the turn can time out.
    turn: Mutex<bool>,
    /// Signalled when the turn is released.
    turn_free: Condvar,
    /// Threads asked to stop that have not yet parked, plus the requester's
    /// own token while it is still visiting slots.
    remaining: AtomicUsize,
    /// The thread waiting for `remaining` to reach zero.
    requester: Mutex<Option<thread::Thread>>,
}

impl World {
    crate::sync::loom_const_fn! {
        fn new() -> World {
            World {
                turn: Mutex::new(false),
                turn_free: Condvar::new(),
                remaining: AtomicUsize::new(0),
                requester: Mutex::new(None),
            }
        }
    }
}

global!(world: World = World::new());

const_thread_local! {
    /// This thread holds a `StopTheWorld`: it must not wait for a stop to end.
    static HOLDS_STOP: Cell<bool> = Cell::new(false);
}

/// What a `fork`'s prepare handler holds of stop-the-world: the stop turn
/// (unless the forking thread holds the stop itself) and the locks of the
/// protocol, so that no other thread holds one of them at the fork.
#[cfg(all(unix, not(loom)))]
pub(crate) struct ForkHold {
    turn: bool,
    turn_lock: MutexGuard<'static, bool>,
    requester: MutexGuard<'static, Option<thread::Thread>>,
}

/// Before a `fork`: takes the stop turn (waiting for a stop in progress, as
/// `stop_the_world` does), so the child never inherits another thread's
/// stop, then the turn's lock. The requester lock is taken by
/// [`fork_lock_requester`], last (it is a leaf: nothing is locked after it).
#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_take_turn() -> (bool, MutexGuard<'static, bool>) {
    let turn = !holds_stop() && take_turn(world(), current_slot(), None);
    (turn, lock(&world().turn))
}

/// Completes a [`ForkHold`] with the requester lock (see [`fork_take_turn`]).
#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_lock_requester((turn, turn_lock): (bool, MutexGuard<'static, bool>)) -> ForkHold {
    ForkHold { turn, turn_lock, requester: lock(&world().requester) }
}

/// After a `fork`, in the parent: releases what [`fork_take_turn`] took.
#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_release(hold: ForkHold) {
    let ForkHold { turn, turn_lock, requester } = hold;
    drop(requester);
    drop(turn_lock);
    if turn {
        release_turn();
    }
}

/// After a `fork`, in the child, where the forking thread is the only
/// thread (the caller has freed the others' slots, holding the registry
/// lock, `inner`): a stop this thread holds or is making goes on alone — it
/// waits for no thread that is not there, and its restart finds every lock
/// free — and otherwise no stop is in effect.
#[cfg(all(unix, not(loom)))]
pub(crate) fn fork_child(mut hold: ForkHold, inner: &mut MutexGuard<'_, RegistryInner>) {
    let mine = holds_stop();
    inner.stopping = mine;
    // Release, as every count-down is: the stop's Acquire load of it then
    // ends its wait. (One thread: no other order to keep.)
    world().remaining.store(0, Ordering::Release);
    *hold.requester = if mine { Some(thread::current()) } else { None };
    fork_release(hold);
}

/// Gives the turn back: a stop ended, or (in parent and child) a fork's
/// handlers are done with the turn [`take_turn_for_fork`] took.
pub(crate) fn release_turn() {
    *lock(&world().turn) = false;
    world().turn_free.notify_one();
}

/// Panics if the current thread holds a stop: `what` would wait for that
/// stop to end, forever.
pub(crate) fn assert_not_stopping(what: &str) {
    if holds_stop() {
        panic!(
            "gcmalloc: {what} on the thread that holds a StopTheWorld would wait for that stop to end, \
             forever; drop the StopTheWorld first (register threads before stopping the world)"
        );
    }
}

/// A stopped world: every other registered thread is parked (at a safepoint
/// or detached) until this guard is dropped.
///
/// # What the holder may do
///
/// Every other registered thread is parked at a safepoint or detached; none
/// is reading memory shared with lock-free readers, and all of them are
/// offline for QSBR (any goal the requester polls is reached unless the
/// requester itself holds it). The requester may scan and mutate the heap
/// (trace, move or free objects of other threads), and call QSBR functions.
/// Detached threads may still be running code that does not touch managed
/// memory — including allocating: the allocator itself is not stopped.
/// Threads that are not registered are not stopped at all (see
/// [`stop_the_world`]).
/// Registering a thread, or starting another stop, from the requesting thread
/// panics (either would wait for this stop to end).
#[must_use = "the world restarts when the guard is dropped"]
pub struct StopTheWorld {
    /// Not `Send`: the stop belongs to the thread that made it.
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for StopTheWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StopTheWorld")
    }
}

impl StopTheWorld {
    /// Refreshes the estimate for every heap of the calling thread and of
    /// every thread parked at a safepoint (their [`GcHeap`](crate::GcHeap)s'
    /// heaps included), as [`refresh_estimate`](crate::refresh_estimate)
    /// does for one heap: call it after a collection freed objects of other
    /// threads, before the world restarts. Threads stopped while detached
    /// are not refreshed (they may be allocating); their heaps converge at
    /// their own slow paths. O(pages of the refreshed heaps); allocates
    /// nothing.
    ///
    /// [`GcTrigger::collected`](crate::GcTrigger::collected) called by the
    /// holder of the stop does this itself.
    ///
    /// ```
    /// let world = gcmalloc::stop_the_world();
    /// /* mark and sweep */
    /// world.refresh_estimate();
    /// drop(world);
    /// ```
    pub fn refresh_estimate(&self) {
        refresh_stopped_threads();
    }
}

/// True if the calling thread holds a [`StopTheWorld`].
pub(crate) fn holds_stop() -> bool {
    HOLDS_STOP.try_with(Cell::get).unwrap_or(false)
}

/// [`StopTheWorld::refresh_estimate`]; only on the thread that holds the
/// stop (see [`holds_stop`]).
pub(crate) fn refresh_stopped_threads() {
    debug_assert!(holds_stop(), "refreshing other threads' heaps needs a stop");
    // SAFETY: null: the calling thread's own heaps.
    unsafe { crate::accounting::refresh_thread_heaps(core::ptr::null_mut()) };
    for slot in registry().slots() {
        // Acquire: pairs with the thread's release CAS as it parked, so
        // its heap pointer and every change it made to its heaps are seen.
        if slot.state.load(Ordering::Acquire) == state::SUSPENDED_ATTACHED {
            // SAFETY: the thread is parked at a safepoint (it touches no
            // heap) until the restart of the stop the caller holds, whose
            // release CAS orders this refresh before its wake-up; it
            // recorded its own heap before parking.
            unsafe { crate::accounting::refresh_thread_heaps(slot.heap.load(Ordering::Relaxed)) };
        }
    }
}

impl Drop for StopTheWorld {
    fn drop(&mut self) {
        restart();
        // The turn is released after this: the next stop starts only once
        // every thread has its state back.
        let _ = HOLDS_STOP.try_with(|h| h.set(false));
        release_turn();
    }
}

/// A registered thread that did not reach a safepoint before the deadline.
#[derive(Debug, Clone)]
pub struct StalledThread {
    thread: thread::Thread,
    state: ThreadState,
}

impl StalledThread {
    /// The thread (its `id()` and `name()`).
    pub fn thread(&self) -> &thread::Thread {
        &self.thread
    }

    /// Its state at the deadline.
    pub fn state(&self) -> ThreadState {
        self.state
    }
}

/// A stop-the-world did not complete in time: [`stop_the_world_timeout`]
/// gave up (the world was restarted before this error was returned), or a
/// stop is still waiting and reports it ([`set_stall_report`]).
#[derive(Debug, Clone)]
pub struct StallError {
    timeout: Duration,
    stalled: Vec<StalledThread>,
    another_stop: bool,
}

impl StallError {
    /// The threads that had not reached a safepoint. Empty if the time ran
    /// out while waiting for another thread's stop to end
    /// ([`another_stop`](Self::another_stop)).
    pub fn stalled(&self) -> &[StalledThread] {
        &self.stalled
    }

    /// The time that ran out (the timeout, or how long a stop has waited).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True if the time ran out while another thread's stop-the-world was
    /// still in progress, before this one could begin.
    pub fn another_stop(&self) -> bool {
        self.another_stop
    }
}

impl fmt::Display for StallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.another_stop {
            return write!(
                f,
                "stop-the-world timed out after {:?} waiting for another thread's stop to end",
                self.timeout
            );
        }
        write!(
            f,
            "stop-the-world waited {:?}; {} thread(s) did not reach a safepoint:",
            self.timeout,
            self.stalled.len()
        )?;
        for s in &self.stalled {
            let name = s.thread.name().unwrap_or("<unnamed>");
            write!(f, " {:?} {:?} ({})", s.thread.id(), name, s.state)?;
        }
        f.write_str(
            ". Registered threads must call quiescent() regularly and detach around blocking calls \
             (ThreadHandle::blocking)",
        )
    }
}

impl std::error::Error for StallError {}

/// How a stop without deadline reports threads that keep it waiting.
struct StallReport {
    every: Duration,
    report: fn(&StallError),
}

/// Diagnostics configuration: a std mutex even under loom (not part of the
/// protocol), read once per reported delay.
static STALL_REPORT: std::sync::Mutex<StallReport> =
    std::sync::Mutex::new(StallReport { every: Duration::from_secs(1), report: report_on_stderr });

/// The shortest interval between two stall reports of one stop.
const MIN_STALL_REPORT_INTERVAL: Duration = Duration::from_millis(10);

fn report_on_stderr(stall: &StallError) {
    eprintln!("gcmalloc: {stall}; still waiting");
}

/// Sets how [`stop_the_world`] reports threads that keep it waiting: after
/// every `every` (default 1 s, like the JVM's safepoint timeout) it calls
/// `report` with the threads that have not reached a safepoint (id, name,
/// state), and keeps waiting. The default prints one line on stderr.
///
/// `every` is at least 10 ms (a shorter one, `Duration::ZERO` included,
/// counts as 10 ms: a report is a diagnosis, not a busy loop); one too long
/// to add to the current time (`Duration::MAX`) means never.
///
/// `report` runs on the thread that stops the world, while the stop is in
/// progress, with no lock of gcmalloc's held. It may call what a thread
/// holding a [`StopTheWorld`] may call; stopping the world again or
/// registering panics, as there.
///
/// ```
/// use std::time::Duration;
/// fn log(stall: &gcmalloc::StallError) {
///     eprintln!("collector blocked: {stall}");
/// }
/// gcmalloc::set_stall_report(Duration::from_millis(500), log);
/// ```
pub fn set_stall_report(every: Duration, report: fn(&StallError)) {
    *STALL_REPORT.lock().unwrap_or_else(|e| e.into_inner()) = StallReport { every, report };
}

/// Stops every other registered thread and returns when all of them are
/// parked (at a safepoint, or detached). Dropping the guard restarts them.
///
/// **Only registered threads are stopped.** A thread that never called
/// [`register_thread`](crate::register_thread) (or whose last handle was
/// dropped) is not waited for and not parked: it runs straight through the
/// stop, reading and writing whatever the collector is tracing. Register
/// every mutator before it touches the runtime's heap, and make it reach
/// [`quiescent`](crate::ThreadHandle::quiescent) (the safepoint) regularly;
/// a detached registered thread is stopped too, but may still run code that
/// touches no managed memory. To catch a forgotten registration, a runtime
/// asserts [`current_thread_state`](crate::current_thread_state) is
/// `Some(_)` where each mutator starts, or compares
/// [`qsbr::stats`](crate::qsbr::stats)`().registered_threads` with the
/// mutators it started:
///
/// ```
/// use std::sync::{Arc, Barrier};
///
/// let mutators = 2;
/// let ready = Arc::new(Barrier::new(mutators + 1));
/// let threads: Vec<_> = (0..mutators)
///     .map(|_| {
///         let ready = Arc::clone(&ready);
///         std::thread::spawn(move || {
///             let me = gcmalloc::register_thread();
///             assert!(gcmalloc::current_thread_state().is_some(), "a mutator is registered");
///             me.blocking(|| ready.wait()); // registered
///             me.blocking(|| ready.wait()); // collected
///         })
///     })
///     .collect();
/// ready.wait();
/// let world = gcmalloc::stop_the_world(); // a collector thread, not registered
/// let registered = gcmalloc::qsbr::stats().registered_threads;
/// assert_eq!(registered, mutators, "a mutator the stop does not park");
/// drop(world);
/// ready.wait();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
///
/// Waits without spinning. Another stop in progress is waited for first. The
/// caller may be registered (it is never waited for) or not. It waits as
/// long as an attached thread does not reach a safepoint, but never
/// silently: every second (see [`set_stall_report`]) it reports the threads
/// it waits for. Prefer [`stop_the_world_timeout`] where giving up is an
/// option.
///
/// # Panics
///
/// On the thread that already holds a `StopTheWorld` (it would wait for
/// itself): use the guard you hold.
///
/// ```
/// let world = gcmalloc::stop_the_world();
/// // ... every other registered thread is parked here ...
/// drop(world);
/// ```
pub fn stop_the_world() -> StopTheWorld {
    match stop(None) {
        Ok(world) => world,
        Err(_) => unreachable!("a stop without deadline never times out"),
    }
}

/// Like [`stop_the_world`], but gives up at `timeout`, counted from the call
/// (waiting for another thread's stop included): the world is restarted
/// cleanly and the error names every thread that did not reach a safepoint
/// (thread id, name, state) — a thread spinning without safepoints is
/// diagnosed instead of hanging the process. A timeout too long to add to
/// the current time (`Duration::MAX`) waits like [`stop_the_world`].
///
/// A registered, attached caller waits for another stop detached; if the
/// time runs out it attaches again before returning, which waits until that
/// other stop has ended.
///
/// # Panics
///
/// On the thread that already holds a `StopTheWorld`.
///
/// ```
/// use std::time::Duration;
/// match gcmalloc::stop_the_world_timeout(Duration::from_millis(500)) {
///     Ok(world) => drop(world),
///     Err(e) => eprintln!("{e}"),
/// }
/// ```
pub fn stop_the_world_timeout(timeout: Duration) -> Result<StopTheWorld, StallError> {
    stop(Some(timeout))
}

fn stop(timeout: Option<Duration>) -> Result<StopTheWorld, StallError> {
    assert_not_stopping("stop_the_world()");
    let w = world();
    let me = current_slot();
    let start = Instant::now();
    // A timeout past what an Instant can hold is no deadline at all.
    let deadline = timeout.and_then(|t| Some((start.checked_add(t)?, t)));
    if !take_turn(w, me, deadline.map(|(at, _)| at)) {
        let timeout = deadline.map_or(Duration::ZERO, |(_, t)| t);
        return Err(StallError { timeout, stalled: Vec::new(), another_stop: true });
    }
    HOLDS_STOP.with(|h| h.set(true));
    *lock(&w.requester) = Some(thread::current());
    w.remaining.store(1, Ordering::Relaxed);
    {
        let mut inner = registry().lock();
        inner.stopping = true; // this module is its only writer
        for slot in registry().slots() {
            if !me.is_some_and(|m| core::ptr::eq(m, slot)) {
                request_stop(w, slot);
            }
        }
    }
    let guard = StopTheWorld { _not_send: PhantomData };
    if w.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
        return Ok(guard);
    }
    // Without a deadline: report the threads it waits for, every `every`
    // (never, if that is past what an Instant can hold).
    let (every, report) = {
        let r = STALL_REPORT.lock().unwrap_or_else(|e| e.into_inner());
        (r.every.max(MIN_STALL_REPORT_INTERVAL), r.report)
    };
    let mut next_report = start.checked_add(every);
    while w.remaining.load(Ordering::Acquire) != 0 {
        let now = Instant::now();
        match deadline {
            Some((at, timeout)) => {
                if now >= at {
                    let stalled = stalled_threads();
                    drop(guard); // restarts the world
                    return Err(StallError { timeout, stalled, another_stop: false });
                }
                park_timeout(at - now);
            }
            None => {
                if next_report.is_some_and(|at| now >= at) {
                    let stalled = stalled_threads();
                    if !stalled.is_empty() {
                        // User code, with no lock held (see `set_stall_report`).
                        report(&StallError { timeout: now - start, stalled, another_stop: false });
                    }
                    next_report = Instant::now().checked_add(every);
                }
                match next_report {
                    Some(at) => park_timeout(at.saturating_duration_since(now)),
                    None => thread::park(),
                }
            }
        }
    }
    Ok(guard)
}

/// Takes the turn to stop the world, waiting for a stop in progress until
/// `deadline` (false if it passed). An attached requester detaches while it
/// waits (the stop in progress may be waiting for it), and attaches again
/// after: a CAS each way, small next to a stop. Runs no user code (the
/// detach reclaims nothing), so `me` is still this thread's slot when it
/// attaches again — and a `fork`'s prepare handler, which calls this, never
/// runs a reclaimed `Drop`.
fn take_turn(w: &'static World, me: Option<&Slot>, deadline: Option<Instant>) -> bool {
    let attached = me.filter(|s| matches!(s.state.load(Ordering::Acquire), state::ATTACHED | state::STOP_REQUESTED));
    if let Some(me) = attached {
        detach(me);
    }
    let mut held = lock(&w.turn);
    let taken = loop {
        if !*held {
            *held = true;
            break true;
        }
        held = match deadline {
            None => w.turn_free.wait(held).unwrap_or_else(|e| e.into_inner()),
            Some(at) => {
                let now = Instant::now();
                if now >= at {
                    break false;
                }
                w.turn_free.wait_timeout(held, at - now).unwrap_or_else(|e| e.into_inner()).0
            }
        };
    };
    drop(held);
    if let Some(me) = attached {
        attach(me); // taken: the previous stop has restarted, one CAS
    }
    taken
}

/// Asks `slot`'s thread to stop (see the module docs).
fn request_stop(w: &World, slot: &Slot) {
    loop {
        let (from, to) = match slot.state.load(Ordering::Acquire) {
            state::DETACHED => (state::DETACHED, state::SUSPENDED_DETACHED),
            state::ATTACHED => (state::ATTACHED, state::STOP_REQUESTED),
            _ => return, // free (no other state survives a restart)
        };
        if to == state::STOP_REQUESTED {
            // Counted before the CAS, so the thread's count-down can never
            // come first.
            w.remaining.fetch_add(1, Ordering::Relaxed);
        }
        if slot.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return;
        }
        if to == state::STOP_REQUESTED {
            w.remaining.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Threads still asked to stop, for the timeout error. Allocates, so it is
/// called outside the registry mutex's scan.
fn stalled_threads() -> Vec<StalledThread> {
    let inner = registry().lock();
    let mut stalled = Vec::new();
    for slot in registry().slots() {
        if slot.state.load(Ordering::Acquire) == state::STOP_REQUESTED {
            if let Some(t) = slot.thread(&inner) {
                stalled.push(StalledThread { thread: t, state: ThreadState::StopRequested });
            }
        }
    }
    stalled
}

/// Gives every thread its state back and wakes it (see the module docs).
fn restart() {
    let w = world();
    {
        let mut inner = registry().lock();
        inner.stopping = false;
        for slot in registry().slots() {
            // Whether the thread may be parked (at a safepoint, or as an
            // attach waiter) and needs a wake-up. A plain suspended-detached
            // thread is running or blocked elsewhere: it is left alone.
            let wake = loop {
                let cur = slot.state.load(Ordering::Acquire);
                let to = match cur {
                    state::SUSPENDED_DETACHED => state::DETACHED,
                    // The gh-151518 fix: a waiter is attached on its behalf.
                    s if s == state::SUSPENDED_DETACHED | state::ATTACH_WAITER => state::ATTACHED,
                    state::SUSPENDED_ATTACHED => state::ATTACHED,
                    // Timed out before it reached a safepoint: cancel the
                    // request and its count.
                    state::STOP_REQUESTED => state::ATTACHED,
                    _ => break false,
                };
                if slot.state.compare_exchange(cur, to, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    if cur == state::STOP_REQUESTED {
                        w.remaining.fetch_sub(1, Ordering::AcqRel);
                    }
                    break cur != state::SUSPENDED_DETACHED && cur != state::STOP_REQUESTED;
                }
            };
            if wake {
                if let Some(t) = slot.thread(&inner) {
                    t.unpark();
                }
            }
        }
    }
    // After a timeout, a thread may have left STOP_REQUESTED by itself just
    // before the restart and not yet counted down; it is running, so this
    // wait is short. The next stop must start from zero.
    while w.remaining.load(Ordering::Acquire) != 0 {
        thread::yield_now();
    }
    *lock(&w.requester) = None;
}

/// Counts down one thread that left STOP_REQUESTED; the last one wakes the
/// requester.
pub(crate) fn stop_reached() {
    let w = world();
    if w.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
        if let Some(requester) = lock(&w.requester).as_ref() {
            requester.unpark();
        }
    }
}

/// The safepoint, for a thread that found STOP_REQUESTED in `quiescent()`:
/// parks offline until the restart, then comes back online.
pub(crate) fn park_at_safepoint(slot: &Slot) {
    qsbr::go_offline(slot);
    // Published by the CAS below, for `StopTheWorld::refresh_estimate`.
    slot.heap.store(crate::accounting::current_heap(), Ordering::Relaxed);
    if slot
        .state
        .compare_exchange(state::STOP_REQUESTED, state::SUSPENDED_ATTACHED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        stop_reached();
        while slot.state.load(Ordering::Acquire) == state::SUSPENDED_ATTACHED {
            thread::park();
        }
    }
    // ATTACHED, or STOP_REQUESTED by the next stop: run on to the next
    // safepoint first, so a tight stop loop cannot starve this thread either.
    qsbr::come_online(slot);
}

/// Detaches `slot`'s thread (see `ThreadHandle::detach`): offline for QSBR,
/// DETACHED for stop-the-world (stopped at once if a stop asked for it).
/// Runs no user code (what happens to its retired items is QSBR's
/// business: `qsbr::detached`).
pub(crate) fn detach(slot: &Slot) {
    qsbr::go_offline(slot);
    match slot.state.compare_exchange(state::ATTACHED, state::DETACHED, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(state::STOP_REQUESTED) => detach_during_stop(slot),
        Err(_) => {} // already detached
    }
}

/// Attaches `slot`'s thread: one CAS, or waits while the world is stopped;
/// then online for QSBR.
pub(crate) fn attach(slot: &Slot) {
    if slot.state.compare_exchange(state::DETACHED, state::ATTACHED, Ordering::Acquire, Ordering::Relaxed).is_err() {
        attach_slow(slot);
    }
    qsbr::come_online(slot);
}

/// `detach()` found STOP_REQUESTED: the thread is stopped from now on,
/// without waiting.
fn detach_during_stop(slot: &Slot) {
    loop {
        let (from, to) = match slot.state.load(Ordering::Acquire) {
            state::STOP_REQUESTED => (state::STOP_REQUESTED, state::SUSPENDED_DETACHED),
            // A timed-out stop restarted it meanwhile: a plain detach.
            state::ATTACHED => (state::ATTACHED, state::DETACHED),
            _ => return,
        };
        if slot.state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            if from == state::STOP_REQUESTED {
                stop_reached();
            }
            return;
        }
    }
}

/// `attach()` found the thread suspended (or already attached): mark it as an
/// attach waiter and wait until a restart hands it ATTACHED.
#[cold]
fn attach_slow(slot: &Slot) {
    loop {
        let cur = slot.state.load(Ordering::Acquire);
        match cur {
            state::ATTACHED | state::STOP_REQUESTED => return,
            state::DETACHED => {
                if slot.state.compare_exchange(cur, state::ATTACHED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                    return;
                }
            }
            state::SUSPENDED_DETACHED => {
                let _ = slot.state.compare_exchange(
                    cur,
                    state::SUSPENDED_DETACHED | state::ATTACH_WAITER,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            _ => thread::park(), // a waiter: the restart unparks it
        }
    }
}
