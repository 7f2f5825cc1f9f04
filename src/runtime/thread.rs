//! Registered threads: [`register_thread`] and [`ThreadHandle`], the façade
//! over the thread registry (`crate::runtime::registry`: slots, their state
//! word and QSBR sequence, the current registration), QSBR (`crate::qsbr`,
//! the only writer of a slot's sequence) and stop-the-world
//! (`crate::runtime::world`, the only writer of its state while the slot is
//! registered). A registration has one end, whichever comes first of its
//! last handle's drop and the thread's exit, and a handle acts only on the
//! registration it was made for.
//!
//! Each method changes the thread's state first and runs user code (the
//! `Drop` of reclaimed items) last, with no slot borrowed and no lock held
//! (see `crate::runtime`).

use core::fmt;
use core::marker::PhantomData;
use core::ptr;

use crate::runtime::registry::{current_slot, registry, state, Registration, Slot, ThreadState, CURRENT, HANDLES};
use crate::runtime::{qsbr, world};
use crate::sync::{const_thread_local, thread, Ordering};

const_thread_local! {
    /// Unregisters at thread exit if a handle was leaked.
    static EXIT_GUARD: ExitGuard = ExitGuard;
}

struct ExitGuard;

/// Runs what gcmalloc's exit guard runs at thread exit, for the loom models:
/// loom drops a thread's thread-locals in no fixed order, so a model that
/// needs "the exit guard ran, a handle is still alive" calls this.
#[cfg(loom)]
#[doc(hidden)]
pub fn __loom_exit_guard() {
    drop(ExitGuard);
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if let Some(slot) = current_slot() {
            unregister(slot);
        }
    }
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
    if let Some(slot) = current_slot() {
        HANDLES.with(|h| h.set(h.get() + 1));
        return ThreadHandle { registration: Registration::of(slot), _not_send: PhantomData };
    }
    world::assert_not_stopping("register_thread()");
    // Before any thread is online: from now on emptied pages wait for goals.
    crate::runtime::type_stable::install_hooks();
    #[cfg(all(unix, not(loom)))]
    crate::runtime::fork::install_handlers();
    let Some(slot) = registry().register(thread::current()) else {
        std::alloc::handle_alloc_error(core::alloc::Layout::new::<Slot>())
    };
    let registration = Registration::of(slot);
    CURRENT.with(|c| c.set(slot));
    HANDLES.with(|h| h.set(1));
    // Arms the exit-time unregistration; after thread-local teardown began
    // there is none, and the last handle's drop ends the registration.
    let _ = EXIT_GUARD.try_with(|_| {});
    world::attach(slot);
    ThreadHandle { registration, _not_send: PhantomData }
}

/// The calling thread's state, or `None` if it is not registered: the check
/// a runtime asserts where its mutators start (or in its allocation path, in
/// debug builds), because a stop of the world parks only registered threads.
/// A mutator that was never registered runs straight through a
/// [`stop_the_world`](crate::stop_the_world) and through every QSBR goal,
/// and nothing else reports it. Two loads; never allocates.
///
/// ```
/// use gcmalloc::{current_thread_state, ThreadState};
///
/// std::thread::spawn(|| {
///     assert_eq!(current_thread_state(), None, "not yet a mutator");
///     let me = gcmalloc::register_thread();
///     // Where the runtime's mutator loop starts:
///     assert_eq!(current_thread_state(), Some(ThreadState::Attached));
///     me.blocking(|| assert_eq!(current_thread_state(), Some(ThreadState::Detached)));
/// })
/// .join()
/// .unwrap();
/// ```
pub fn current_thread_state() -> Option<ThreadState> {
    let slot = current_slot()?;
    // Relaxed: a snapshot for the caller's own thread, whose state only a
    // stop changes meanwhile.
    ThreadState::from_raw(slot.state.load(Ordering::Relaxed))
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
        self.registration.live_slot()
    }

    /// Announces a quiescent state: this thread holds no reference it
    /// obtained without a lock. Also the stop-the-world safepoint: parks here
    /// while the world is stopped.
    ///
    /// Common case: two loads of this thread's own slot, one load of the
    /// write sequence and one store — no fence, no read-modify-write.
    /// Retired items are reclaimed here only when some are due. A no-op
    /// while detached.
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
        if slot.state.load(Ordering::Relaxed) == state::ATTACHED && !qsbr::has_work(slot) {
            qsbr::quiesce(slot);
        } else {
            quiescent_slow(slot);
        }
        qsbr::check_lag_if_due(); // last, with the slot no longer used: may run a lag report
    }

    /// Goes offline: until [`attach`](Self::attach), this thread must not
    /// touch memory shared with lock-free readers. A detached thread never
    /// holds a QSBR goal back and is stopped by a stop-the-world without its
    /// help. Use around blocking calls (I/O, sleep, waiting on a lock), or
    /// let [`blocking`](Self::blocking) do it. Never waits for other
    /// threads; pending retired items move to the orphan queue (reclaiming
    /// those already due, so their `Drop`s may run here). A no-op if already
    /// detached.
    pub fn detach(&self) {
        if let Some(slot) = self.slot() {
            world::detach(slot);
            qsbr::detached(slot);
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
            world::attach(slot);
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
        let was_attached = self
            .slot()
            .is_some_and(|s| matches!(s.state.load(Ordering::Relaxed), state::ATTACHED | state::STOP_REQUESTED));
        self.detach();
        let _reattach = Reattach(self, was_attached);
        f()
    }
}

impl Drop for ThreadHandle {
    fn drop(&mut self) {
        let Some(slot) = self.slot() else { return };
        // (Under loom every thread-local is destroyed at exit; with std these
        // const, drop-free ones never are.)
        let last = HANDLES
            .try_with(|h| {
                h.set(h.get() - 1);
                h.get() == 0
            })
            .unwrap_or(true);
        if last {
            unregister(slot);
        }
    }
}

#[cold]
#[inline(never)]
fn quiescent_slow(slot: &'static Slot) {
    match slot.state.load(Ordering::Acquire) {
        state::ATTACHED => {}
        state::STOP_REQUESTED => world::park_at_safepoint(slot),
        _ => return, // detached: holds nothing, must not come online here
    }
    qsbr::quiescent_with_work(slot);
}

/// Unregisters the current thread: registration ended, offline, queue
/// handed off, slot freed — and only then user code.
///
/// The registration ends first: every handle of it is a no-op from here
/// on. The thread detaches (a stop in progress counts it as stopped), hands
/// its queue to the orphan queue and frees its slot, running no user code;
/// the due orphans are reclaimed last. So a reclaimed object's `Drop` finds
/// this thread unregistered: what it retires goes to the orphan queue with
/// a goal of its own, a `register_thread()` there starts a new registration
/// (which may wait for a stop in progress while no stop waits for this
/// one), and an `attach()` through a handle kept in a `thread_local` does
/// nothing.
fn unregister(slot: &'static Slot) {
    let _ = CURRENT.try_with(|c| c.set(ptr::null()));
    let _ = HANDLES.try_with(|h| h.set(0));
    registry().end(slot);
    world::detach(slot);
    qsbr::hand_off(slot);
    registry().unregister(slot);
    qsbr::reclaim_orphans();
}
