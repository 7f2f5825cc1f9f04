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

const_thread_local! {
    /// This thread's slot, or null. Const and drop-free: reading it never
    /// allocates, even during thread-local teardown.
    static CURRENT: Cell<*const Slot> = Cell::new(ptr::null());
    /// Live `ThreadHandle`s of this thread (registration nests).
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
    let p = CURRENT.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: slots live in registry chunks that are never freed.
    unsafe { p.as_ref() }
}

/// Registers the current thread with QSBR and stop-the-world, attached.
///
/// Registration nests: a thread that is already registered gets another
/// handle to the same registration (in its current state, attached or not),
/// and is unregistered when its last handle is dropped — or at thread exit,
/// if a handle was leaked. While a stop-the-world is in effect, this waits
/// for it to end (the thread starts attached). Never call it from the thread holding a [`crate::StopTheWorld`].
///
/// ```
/// let me = gcmalloc::register_thread();
/// me.quiescent();
/// drop(me); // unregisters
/// ```
pub fn register_thread() -> ThreadHandle {
    let handle = |slot: &Slot| ThreadHandle { slot, _not_send: PhantomData };
    if let Some(slot) = current_slot() {
        HANDLES.with(|h| h.set(h.get() + 1));
        return handle(slot);
    }
    let me = thread::current();
    // Before any thread is online: from now on emptied pages wait for goals.
    crate::type_stable::install_hooks();
    let Some(slot) = domain().registry.register(me) else {
        std::alloc::handle_alloc_error(core::alloc::Layout::new::<Slot>())
    };
    CURRENT.with(|c| c.set(slot));
    HANDLES.with(|h| h.set(1));
    EXIT_GUARD.with(|_| {}); // arms the exit-time unregistration
    attach(slot);
    handle(slot)
}

/// A registered thread's handle: announce quiescent states, detach around
/// blocking calls. Not `Send`: it stands for the thread that registered.
/// Dropping the last handle unregisters the thread.
pub struct ThreadHandle {
    slot: *const Slot,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = ThreadState::from_raw(self.slot().state.load(Ordering::Relaxed));
        f.debug_struct("ThreadHandle").field("state", &state).finish()
    }
}

impl ThreadHandle {
    fn slot(&self) -> &'static Slot {
        // SAFETY: set from a registry slot, which is never freed.
        unsafe { &*self.slot }
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
        let slot = self.slot();
        if slot.state.load(Ordering::Relaxed) == state::ATTACHED
            && slot.pending_items.load(Ordering::Relaxed) == 0
        {
            slot.seq.store(domain().wr_seq.load(Ordering::Acquire), Ordering::Release);
        } else {
            quiescent_slow(slot);
        }
    }

    /// Goes offline: until [`attach`](Self::attach), this thread must not
    /// touch memory shared with lock-free readers. A detached thread never
    /// holds a QSBR goal back and is stopped by a stop-the-world without its
    /// help. Use around blocking calls (I/O, sleep, waiting on a lock).
    /// Never blocks. A no-op if already detached.
    pub fn detach(&self) {
        detach(self.slot());
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
        attach(self.slot());
    }
}

impl Drop for ThreadHandle {
    fn drop(&mut self) {
        let last = HANDLES.with(|h| {
            h.set(h.get() - 1);
            h.get() == 0
        });
        if last {
            unregister(self.slot());
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
fn unregister(slot: &Slot) {
    slot.seq.store(0, Ordering::Release);
    domain().hand_off(slot);
    let old = domain().registry.unregister(slot);
    if old == state::STOP_REQUESTED {
        crate::world::stop_reached();
    }
    let _ = CURRENT.try_with(|c| c.set(ptr::null()));
    let _ = HANDLES.try_with(|h| h.set(0));
}
