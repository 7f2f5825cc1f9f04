//! Registered threads: [`register_thread`], [`ThreadHandle`] and the thread
//! states shared by QSBR and stop-the-world.
//!
//! Each registered thread owns one registry slot (see `qsbr::registry`) with
//! two words other threads read: its QSBR `seq` and its `state`:
//!
//! | state                | meaning                                              |
//! |----------------------|------------------------------------------------------|
//! | `ATTACHED`           | running, may read shared memory; holds goals         |
//! | `DETACHED`           | running without touching shared memory (I/O, sleep)  |
//! | `STOP_REQUESTED`     | attached, asked to stop at its next safepoint        |
//! | `SUSPENDED_ATTACHED` | parked at a safepoint by a stop-the-world            |
//! | `SUSPENDED_DETACHED` | stopped by a stop-the-world while detached           |
//! | `... \| ATTACH_WAITER` | (with `SUSPENDED_DETACHED`) blocked in `attach()`  |
//!
//! The uncontended transitions are one compare-and-swap by the owner:
//! `attach` is DETACHED → ATTACHED, `detach` is ATTACHED → DETACHED, and a
//! quiescent state only *loads* the state (it is the safepoint: it parks when
//! it finds STOP_REQUESTED). The stop-the-world side is in [`crate::world`].

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr;

use crate::qsbr::{domain, Slot};
use crate::sync::{const_thread_local, fence, thread, Ordering};

/// Raw thread states stored in a slot (see the module docs).
pub(crate) mod state {
    pub(crate) const FREE: u32 = 0;
    pub(crate) const ATTACHED: u32 = 1;
    pub(crate) const DETACHED: u32 = 2;
    pub(crate) const STOP_REQUESTED: u32 = 3;
    pub(crate) const SUSPENDED_ATTACHED: u32 = 4;
    pub(crate) const SUSPENDED_DETACHED: u32 = 5;
    /// Flag on SUSPENDED_DETACHED: the owner is blocked in `attach()`, so the
    /// restart hands it ATTACHED directly instead of DETACHED.
    pub(crate) const ATTACH_WAITER: u32 = 8;
}

/// The state of a registered thread, as reported by diagnostics
/// ([`crate::qsbr::Laggard`], [`crate::StallError`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadState {
    /// Running and allowed to read shared memory; holds QSBR goals back until
    /// its next quiescent state.
    Attached,
    /// Running without touching shared memory; never holds a goal back.
    Detached,
    /// Attached, and asked by a stop-the-world to park at its next safepoint.
    StopRequested,
    /// Parked at a safepoint by a stop-the-world.
    SuspendedAttached,
    /// Stopped by a stop-the-world while detached (it may still be running
    /// code that touches no shared memory, or be blocked in `attach()`).
    SuspendedDetached,
}

impl ThreadState {
    pub(crate) fn from_raw(raw: u32) -> Option<ThreadState> {
        Some(match raw & !state::ATTACH_WAITER {
            state::ATTACHED => ThreadState::Attached,
            state::DETACHED => ThreadState::Detached,
            state::STOP_REQUESTED => ThreadState::StopRequested,
            state::SUSPENDED_ATTACHED => ThreadState::SuspendedAttached,
            state::SUSPENDED_DETACHED => ThreadState::SuspendedDetached,
            _ => return None,
        })
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThreadState::Attached => "attached",
            ThreadState::Detached => "detached",
            ThreadState::StopRequested => "attached, stop requested",
            ThreadState::SuspendedAttached => "suspended at a safepoint",
            ThreadState::SuspendedDetached => "suspended while detached",
        })
    }
}

/// A registration of the current thread: its slot, and which registration
/// of this thread it is. A handle acts only while the thread's current
/// registration is the one it was made for, so a handle that outlived its
/// registration (kept in a `thread_local`, dropped after the exit guard) can
/// never act on the slot's next owner, nor on a later registration of its
/// own thread.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Registration {
    slot: *const Slot,
    /// Counts this thread's registrations (0: none yet).
    epoch: u64,
}

const_thread_local! {
    /// This thread's registration (slot null: not registered). Const and
    /// drop-free: reading it never allocates and works during thread-local
    /// teardown, after the exit guard has run.
    static CURRENT: Cell<Registration> = Cell::new(Registration { slot: ptr::null(), epoch: 0 });
    /// Live `ThreadHandle`s of the current registration (registration nests).
    static HANDLES: Cell<usize> = Cell::new(0);
    /// Unregisters at thread exit if a handle was leaked.
    static EXIT_GUARD: ExitGuard = ExitGuard;
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(slot) = current_slot() {
            unregister(slot);
        }
    }
}

/// The current thread's slot, if it is registered.
pub(crate) fn current_slot() -> Option<&'static Slot> {
    let p = CURRENT.try_with(|c| c.get().slot).unwrap_or(ptr::null());
    // SAFETY: slots live in registry chunks that are never freed.
    unsafe { p.as_ref() }
}

/// Registers the current thread with QSBR and stop-the-world, attached.
///
/// Registration nests: a thread that is already registered gets another
/// handle to the same registration (in its current state, attached or not),
/// and is unregistered when its last handle is dropped — or at thread exit,
/// if a handle was leaked. While a stop-the-world is in effect, this waits
/// for it to end (the thread starts attached).
///
/// It may be called anywhere a thread runs Rust code: in a `Drop` of an
/// object that QSBR reclaims, in a thread-local destructor after gcmalloc's
/// own exit guard has run (the registration then ends when the last handle
/// is dropped), or at process exit.
///
/// # Panics
///
/// On the thread that holds a [`crate::StopTheWorld`]: it would wait for the
/// stop to end, forever. Register before stopping the world.
///
/// ```
/// let me = gcmalloc::register_thread();
/// me.quiescent();
/// drop(me); // unregisters
/// ```
pub fn register_thread() -> ThreadHandle {
    let current = CURRENT.with(Cell::get);
    if !current.slot.is_null() {
        HANDLES.with(|h| h.set(h.get() + 1));
        return ThreadHandle { registration: current, _not_send: PhantomData };
    }
    crate::world::assert_not_stopping("register_thread()");
    // Before any thread is online: from now on emptied pages wait for goals.
    crate::type_stable::install_hooks();
    #[cfg(all(unix, not(loom)))]
    crate::fork::install_handlers();
    let Some(slot) = domain().registry.register(thread::current()) else {
        std::alloc::handle_alloc_error(core::alloc::Layout::new::<Slot>())
    };
    let registration = Registration { slot, epoch: current.epoch + 1 };
    CURRENT.with(|c| c.set(registration));
    HANDLES.with(|h| h.set(1));
    // Arms the exit-time unregistration; after thread-local teardown began
    // there is none, and the last handle's drop ends the registration.
    let _ = EXIT_GUARD.try_with(|_| {});
    attach(slot);
    ThreadHandle { registration, _not_send: PhantomData }
}

/// A registered thread's handle: announce quiescent states, detach around
/// blocking calls. Not `Send`: it stands for the thread that registered.
/// Dropping the last handle unregisters the thread.
///
/// A handle whose registration has ended (its thread unregistered at exit
/// while the handle lived on in a `thread_local`) does nothing: every method
/// is a no-op and dropping it unregisters nothing.
pub struct ThreadHandle {
    registration: Registration,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.slot().and_then(|s| ThreadState::from_raw(s.state.load(Ordering::Relaxed)));
        f.debug_struct("ThreadHandle").field("state", &state).finish()
    }
}

impl ThreadHandle {
    /// The slot, while this handle's registration is the thread's current one.
    #[inline]
    fn slot(&self) -> Option<&'static Slot> {
        let live = CURRENT.try_with(|c| c.get() == self.registration).unwrap_or(false);
        // SAFETY: set from a registry slot, which is never freed.
        live.then(|| unsafe { &*self.registration.slot })
    }

    /// Announces a quiescent state: this thread holds no reference it
    /// obtained without a lock. Also the stop-the-world safepoint: parks here
    /// while the world is stopped.
    ///
    /// Common case: two loads of this thread's own slot, one load of the
    /// write sequence and one store — no fence, no read-modify-write. Delayed
    /// frees are processed here only when some are due. A no-op while
    /// detached.
    ///
    /// ```
    /// let me = gcmalloc::register_thread();
    /// for _ in 0..3 {
    ///     // ... read shared structures without locks ...
    ///     me.quiescent();
    /// }
    /// ```
    #[inline]
    pub fn quiescent(&self) {
        let Some(slot) = self.slot() else { return };
        if slot.state.load(Ordering::Relaxed) == state::ATTACHED
            && slot.pending_items.load(Ordering::Relaxed) == 0
            && !domain().has_orphans()
        {
            slot.seq.store(domain().wr_seq.load(Ordering::Acquire), Ordering::Release);
        } else {
            quiescent_slow(slot);
        }
    }

    /// Goes offline: until [`attach`](Self::attach), this thread must not
    /// touch memory shared with lock-free readers. A detached thread never
    /// holds a QSBR goal back and is stopped by a stop-the-world without its
    /// help. Use around blocking calls (I/O, sleep, waiting on a lock), or
    /// let [`blocking`](Self::blocking) do it. Never blocks. A no-op if
    /// already detached.
    pub fn detach(&self) {
        if let Some(slot) = self.slot() {
            detach(slot);
        }
    }

    /// Comes back online after [`detach`](Self::detach). Waits while the
    /// world is stopped; the uncontended case is one compare-and-swap. A no-op
    /// if already attached.
    ///
    /// ```
    /// let me = gcmalloc::register_thread();
    /// me.detach();
    /// std::thread::sleep(std::time::Duration::from_millis(1));
    /// me.attach();
    /// ```
    pub fn attach(&self) {
        if let Some(slot) = self.slot() {
            attach(slot);
        }
    }

    /// Runs `f` detached: for a call that may block (joining a thread,
    /// receiving from a channel, waiting on a lock or on I/O). A registered
    /// thread that blocks while attached holds every QSBR goal back and makes
    /// every stop-the-world wait for it; this is how to avoid that, as
    /// CPython releases its thread state around blocking calls. Attaches
    /// again afterwards (waiting while the world is stopped), also if `f`
    /// panics. `f` must not touch memory shared with lock-free readers.
    ///
    /// ```
    /// let me = gcmalloc::register_thread();
    /// let worker = std::thread::spawn(|| 6 * 7);
    /// let answer = me.blocking(|| worker.join().unwrap());
    /// assert_eq!(answer, 42);
    /// ```
    pub fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Reattach<'a>(&'a ThreadHandle, bool);
        impl Drop for Reattach<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.attach();
                }
            }
        }
        let was_attached = self.slot().is_some_and(|s| {
            matches!(s.state.load(Ordering::Relaxed), state::ATTACHED | state::STOP_REQUESTED)
        });
        self.detach();
        let _reattach = Reattach(self, was_attached);
        f()
    }
}

impl Drop for ThreadHandle {
    fn drop(&mut self) {
        let Some(slot) = self.slot() else { return };
        let last = HANDLES.with(|h| {
            h.set(h.get() - 1);
            h.get() == 0
        });
        if last {
            unregister(slot);
        }
    }
}

#[cold]
#[inline(never)]
fn quiescent_slow(slot: &Slot) {
    match slot.state.load(Ordering::Acquire) {
        state::ATTACHED => {}
        state::STOP_REQUESTED => crate::world::park_at_safepoint(slot),
        _ => return, // detached: holds nothing, must not come online here
    }
    slot.seq.store(domain().wr_seq.load(Ordering::Acquire), Ordering::Release);
    if slot.pending_items.load(Ordering::Relaxed) != 0 {
        domain().quiescent_with_pending(slot);
    } else {
        // Items of exited (or detached, or never registered) threads: every
        // online thread's quiescent states move them along.
        domain().process_orphans();
    }
}

pub(crate) fn detach(slot: &Slot) {
    // Everything read so far is done with: like a quiescent state.
    slot.seq.store(0, Ordering::Release);
    match slot.state.compare_exchange(state::ATTACHED, state::DETACHED, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(state::STOP_REQUESTED) => crate::world::detach_during_stop(slot),
        Err(_) => {} // already detached
    }
    if slot.pending_items.load(Ordering::Relaxed) != 0 {
        // Only this thread processes its own queue, and a detached thread
        // may block for long: its items go where any thread processes them.
        domain().hand_off(slot);
    }
}

pub(crate) fn attach(slot: &Slot) {
    if slot
        .state
        .compare_exchange(state::DETACHED, state::ATTACHED, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        crate::world::attach_slow(slot);
    }
    come_online(slot);
}

/// Brings an attached slot's QSBR sequence online. The SeqCst fence pairs
/// with the one in every registry scan: either the scan sees this `seq`, or
/// this thread's later reads see every store made before the scan (so it
/// cannot reach what the scan's goal lets be freed). Model-checked in
/// `src/qsbr/seq.rs` (`loom_tests`).
pub(crate) fn come_online(slot: &Slot) {
    slot.seq.store(domain().wr_seq.load(Ordering::Acquire), Ordering::Relaxed);
    fence(Ordering::SeqCst);
}

/// Unregisters the current thread: offline, queue handed off, slot freed.
///
/// The registration ends first: code that the hand-off runs (the `Drop` of a
/// reclaimed object) finds this thread unregistered, so what it retires goes
/// to the orphan queue with a goal of its own, and a `register_thread()`
/// there starts a new registration.
fn unregister(slot: &Slot) {
    CURRENT.with(|c| c.set(Registration { slot: ptr::null(), ..c.get() }));
    HANDLES.with(|h| h.set(0));
    slot.seq.store(0, Ordering::Release);
    domain().hand_off(slot);
    let old = domain().registry.unregister(slot);
    if old == state::STOP_REQUESTED {
        crate::world::stop_reached();
    }
}
