//! The registry of threads, the bottom layer of the thread runtime: slots
//! in fixed-size chunks, linked once and never moved or freed, so scanners
//! walk it without any lock while threads come and go; each slot's state
//! word and QSBR sequence; and the current thread's registration.
//!
//! QSBR (`crate::qsbr`, the only writer of a slot's `seq`) and
//! stop-the-world (`crate::runtime::world`, the only writer of its `state`
//! between the slot's claim and its release, which this module writes) are
//! peers above it; `crate::thread` (`ThreadHandle`) is the façade over both,
//! and `fork` frees the slots of threads a forked child lacks. Each word's
//! writers are stated at the word. Imports point down only.
//!
//! Each registered thread owns one slot with
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
//! it finds STOP_REQUESTED). The stop-the-world side is in [`crate::runtime::world`].
//!
//! * A slot holds one registered thread's QSBR sequence (`seq`, 0 = offline),
//!   its thread state (attached, detached, suspended, see [`state`]),
//!   its private queue of retired items, and its identity for diagnostics.
//! * Registering takes the registry mutex, reuses a free slot or links a new
//!   chunk at the end; nothing a scanner reads is ever reallocated, so
//!   registering never needs to stop the world (CPython grows its thread
//!   array under a stop-the-world).
//! * Each chunk caches a lower bound of its online sequences (`cached_min`).
//!   A poll skips a chunk whose bound already reaches the goal, and stops at
//!   the first slot that does not: a chunk is scanned in full at most once per
//!   goal, so the amortized scan costs one load per chunk.
//!
//! Chunks are allocated with [`std::alloc::System`], not the global allocator:
//! the registry mutex is taken on thread exit paths and diagnostics, and
//! allocating through `GcMalloc` while holding it could re-enter gcmalloc.
//! Slots are 128-byte aligned, so owners storing their `seq` on every
//! quiescent state never share a cache line (or an adjacent-line prefetch
//! pair) with another thread.

use core::alloc::Layout;
use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;
use std::alloc::{GlobalAlloc, System};

use crate::runtime::queue::Fifo;
use core::fmt;

use crate::sync::{
    self, const_thread_local, global, lock, thread::Thread, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Mutex,
    MutexGuard, Ordering, UnsafeCell,
};

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
/// ([`crate::qsbr::Laggard`], [`crate::StallError`]) and by
/// [`crate::current_thread_state`].
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

/// `a >= b` for sequences, correct across wrap-around (signed difference).
#[inline]
pub(crate) fn seq_ge(a: u64, b: u64) -> bool {
    a.wrapping_sub(b) as i64 >= 0
}

/// `a < b` for sequences, wrap-safe.
#[inline]
pub(crate) fn seq_lt(a: u64, b: u64) -> bool {
    !seq_ge(a, b)
}

/// The older of two sequences, wrap-safe.
#[inline]
pub(crate) fn seq_min(a: u64, b: u64) -> u64 {
    if seq_lt(a, b) {
        a
    } else {
        b
    }
}

/// A registration: a slot and the slot's generation when it was claimed.
/// Every registration and unregistration of a slot moves its generation, so
/// a handle acts only while the registration it was made for lasts: one that
/// outlived it (kept in a `thread_local`, dropped after the exit guard) can
/// never act on the slot's next owner, nor on a later registration of its
/// own thread. Checking it is one load from the slot's own cache line.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registration {
    pub(crate) slot: *const Slot,
    pub(crate) generation: u64,
}

impl Registration {
    /// The registration `slot` holds now.
    pub(crate) fn of(slot: &'static Slot) -> Registration {
        Registration { slot, generation: slot.generation.load(Ordering::Relaxed) }
    }

    /// The slot, while this registration lasts. Only the registered thread
    /// ends its registration, so on that thread the answer changes only
    /// through code that thread runs — user code included (a reclaimed
    /// `Drop` may drop the last handle): ask again after calling out. A
    /// Relaxed load suffices: the thread sees its own ending store, and
    /// generations only grow, so a later registration never matches.
    #[inline]
    pub(crate) fn live_slot(&self) -> Option<&'static Slot> {
        // SAFETY: slots live in registry chunks that are never freed.
        let slot = unsafe { &*self.slot };
        (slot.generation.load(Ordering::Relaxed) == self.generation).then_some(slot)
    }
}

const_thread_local! {
    /// This thread's slot (null: not registered). Const and drop-free:
    /// reading it never allocates and works during thread-local teardown,
    /// after the exit guard has run.
    pub(crate) static CURRENT: Cell<*const Slot> = Cell::new(ptr::null());
    /// Live `ThreadHandle`s of the current registration (registration nests).
    pub(crate) static HANDLES: Cell<usize> = Cell::new(0);
}

/// The current thread's slot, if it is registered.
pub(crate) fn current_slot() -> Option<&'static Slot> {
    let p = CURRENT.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: slots live in registry chunks that are never freed.
    unsafe { p.as_ref() }
}

/// Slots per chunk (small under loom, to exercise chunk boundaries).
const CHUNK_SLOTS: usize = if cfg!(loom) { 2 } else { 64 };

/// One registered thread (or a free slot, `state == FREE`).
#[repr(align(128))]
pub(crate) struct Slot {
    /// QSBR sequence: the write sequence at this thread's last quiescent
    /// state, or 0 while offline (detached, parked, unregistered).
    ///
    /// Written only by `qsbr` (`quiesce`, `come_online`, `go_offline`): by
    /// the owner thread, and in a forked child by the forking thread for a
    /// thread that does not exist there (`go_offline`).
    pub(crate) seq: AtomicU64,
    /// Thread state, see [`state`].
    ///
    /// Written by this module when the slot is claimed and when it is freed
    /// (`FREE`), under the registry mutex; in between, only by
    /// `crate::runtime::world` (the owner's transitions, and a stop's
    /// requests and restart).
    pub(crate) state: AtomicU32,
    /// Pending retired items of this thread, mirrored for `stats()` (the
    /// owner is the only writer).
    pub(crate) pending_items: AtomicUsize,
    pub(crate) pending_bytes: AtomicUsize,
    /// Owner only: retired items not yet reclaimed.
    fifo: UnsafeCell<Fifo>,
    /// Owner only: quiescent states since the queue was last polled.
    pub(crate) ticks: sync::Cell<u32>,
    /// Registry mutex: the registered thread, to name and unpark it.
    thread: UnsafeCell<Option<Thread>>,
    /// The thread's mimalloc heap, recorded by the thread as it parks at a
    /// safepoint (for `StopTheWorld::refresh_estimate`).
    pub(crate) heap: AtomicPtr<c_void>,
    /// Moves when a registration begins (under the registry mutex) and when
    /// it ends (by its owner, [`Registry::end`]; in a forked child, by the
    /// forking thread for a thread that is not there): see [`Registration`].
    pub(crate) generation: AtomicU64,
}

// SAFETY: the atomics are shared; `fifo` and `ticks` are touched only by the
// slot's registered owner thread (see `Slot::with_fifo`), and `thread` only under
// the registry mutex.
unsafe impl Sync for Slot {}

impl Slot {
    fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            state: AtomicU32::new(state::FREE),
            pending_items: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            fifo: UnsafeCell::new(Fifo::new()),
            ticks: sync::Cell::new(0),
            thread: UnsafeCell::new(None),
            heap: AtomicPtr::new(ptr::null_mut()),
            generation: AtomicU64::new(0),
        }
    }

    /// Runs `f` on the owner's queue of retired items.
    ///
    /// # Safety
    /// Only the thread registered in this slot may call this, and not from
    /// inside `f` (the borrow must end before an item is reclaimed: its
    /// `Drop` may retire onto this very queue).
    pub(crate) unsafe fn with_fifo<R>(&self, f: impl FnOnce(&mut Fifo) -> R) -> R {
        // SAFETY: the caller's contract makes this the only reference; loom
        // checks it in the models.
        self.fifo.with_mut(|fifo| f(unsafe { &mut *fifo }))
    }

    /// The thread registered in this slot.
    pub(crate) fn thread(&self, _locked: &MutexGuard<'_, Inner>) -> Option<Thread> {
        // SAFETY: the registry mutex is held (the guard proves it), and
        // `thread` is written only under it.
        self.thread.with(|t| unsafe { (*t).clone() })
    }

    /// Sets the thread registered in this slot.
    fn set_thread(&self, thread: Option<Thread>, _locked: &MutexGuard<'_, Inner>) {
        // SAFETY: the registry mutex is held (the guard proves it), so no
        // other access to `thread` runs.
        self.thread.with_mut(|t| unsafe { *t = thread });
    }

    /// Publishes the owner's pending counts for `stats()`.
    pub(crate) fn publish_pending(&self, fifo: &Fifo) {
        self.pending_items.store(fifo.len(), Ordering::Relaxed);
        self.pending_bytes.store(fifo.bytes(), Ordering::Relaxed);
    }
}

struct Chunk {
    slots: [Slot; CHUNK_SLOTS],
    /// Lower bound of every online `seq` in this chunk, for goals no newer
    /// than it (see the module docs); only ever raised.
    cached_min: AtomicU64,
    next: AtomicPtr<Chunk>,
}

/// Registry state guarded by its mutex.
pub(crate) struct Inner {
    /// Registered threads.
    pub(crate) registered: usize,
    /// A stop-the-world is in effect: new registrants start suspended.
    /// Written only by `crate::runtime::world` (a stop, its restart, and a
    /// forked child's reset).
    pub(crate) stopping: bool,
}

/// All registered threads (see the module docs).
pub(crate) struct Registry {
    head: AtomicPtr<Chunk>,
    inner: Mutex<Inner>,
}

impl Registry {
    crate::sync::loom_const_fn! {
        pub(crate) fn new() -> Registry {
            Registry {
                head: AtomicPtr::new(ptr::null_mut()),
                inner: Mutex::new(Inner { registered: 0, stopping: false }),
            }
        }
    }

    /// Takes the registry mutex.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        let mut c = self.head.load(Ordering::Acquire);
        core::iter::from_fn(move || {
            // SAFETY: chunks are published with Release after being fully
            // initialized and are never freed while the registry lives.
            let chunk = unsafe { c.as_ref()? };
            c = chunk.next.load(Ordering::Acquire);
            Some(chunk)
        })
    }

    /// Every slot, free or not, in registry order. Lock-free.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.chunks().flat_map(|c| c.slots.iter())
    }

    /// Claims a slot for `me`. It starts detached (suspended-detached while a
    /// stop-the-world is in effect); the caller then attaches. `None` if the
    /// system allocator is out of memory.
    pub(crate) fn register(&self, me: Thread) -> Option<&Slot> {
        let mut inner = self.lock();
        let slot = match self.slots().find(|s| s.state.load(Ordering::Relaxed) == state::FREE) {
            Some(s) => s,
            None => self.grow()?,
        };
        slot.set_thread(Some(me), &inner);
        slot.generation.fetch_add(1, Ordering::Relaxed);
        let start = if inner.stopping { state::SUSPENDED_DETACHED } else { state::DETACHED };
        slot.state.store(start, Ordering::Release);
        inner.registered += 1;
        Some(slot)
    }

    /// Links a new chunk at the end and returns its first slot. Called with
    /// the registry mutex held.
    fn grow(&self) -> Option<&Slot> {
        // SAFETY: a fully initialized chunk is written before it is linked;
        // the layout is the chunk's own. Linking is serialized by the mutex.
        unsafe {
            let c = System.alloc(Layout::new::<Chunk>()).cast::<Chunk>();
            if c.is_null() {
                return None;
            }
            c.write(Chunk {
                slots: core::array::from_fn(|_| Slot::new()),
                cached_min: AtomicU64::new(0),
                next: AtomicPtr::new(ptr::null_mut()),
            });
            match self.chunks().last() {
                None => self.head.store(c, Ordering::Release),
                Some(last) => last.next.store(c, Ordering::Release),
            }
            Some(&(*c).slots[0])
        }
    }

    /// Ends the registration `slot` holds, first step of unregistering
    /// (called by its owner): every handle of it acts on nothing from now on,
    /// even from the user code that the rest of unregistering may run, while
    /// the slot stays this thread's until [`Registry::unregister`].
    pub(crate) fn end(&self, slot: &Slot) {
        // Relaxed: read back by this thread only (`Registration::live_slot`);
        // the slot's next owner is ordered after it by the registry mutex.
        slot.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Frees `slot` (called by its owner after [`Registry::end`], offline and
    /// detached, whose queue is already handed off).
    pub(crate) fn unregister(&self, slot: &Slot) {
        let mut inner = self.lock();
        debug_assert_eq!(slot.seq.load(Ordering::Relaxed), 0, "a slot is freed offline");
        slot.state.store(state::FREE, Ordering::Release);
        slot.set_thread(None, &inner);
        inner.registered -= 1;
    }

    /// Frees `slot`, whose thread does not exist (in a forked child; QSBR has
    /// already taken it offline), with the registry mutex held (`inner` is
    /// its guard).
    #[cfg(all(unix, not(loom)))]
    pub(crate) fn free_orphaned(&self, slot: &Slot, inner: &mut MutexGuard<'_, Inner>) {
        slot.state.store(state::FREE, Ordering::Release);
        slot.generation.fetch_add(1, Ordering::Relaxed);
        slot.set_thread(None, inner);
        inner.registered -= 1;
    }

    /// Some(lower bound of every online `seq`) if each is at least `goal`,
    /// None as soon as one is not. `wr` is the write sequence, loaded before
    /// the SeqCst fence that must precede this call.
    pub(crate) fn reached(&self, goal: u64, wr: u64) -> Option<u64> {
        let mut min = wr;
        for chunk in self.chunks() {
            let cached = chunk.cached_min.load(Ordering::Acquire);
            if cached != 0 && seq_ge(cached, goal) {
                min = seq_min(min, cached);
                continue;
            }
            let chunk_min = online_min(&chunk.slots, wr, Some(goal))?;
            raise(&chunk.cached_min, chunk_min);
            min = seq_min(min, chunk_min);
        }
        Some(min)
    }

    /// True if some slot has an online `seq`. Stops at the first one found.
    /// Must follow a SeqCst fence, as a scan in `Domain::goal_reached` does.
    pub(crate) fn any_online(&self) -> bool {
        self.slots().any(|s| s.seq.load(Ordering::Acquire) != 0)
    }

    /// The minimum online `seq` over every slot (or `wr`), ignoring caches.
    pub(crate) fn full_min(&self, wr: u64) -> u64 {
        self.chunks().filter_map(|c| online_min(&c.slots, wr, None)).fold(wr, seq_min)
    }
}

/// Minimum of `wr` and the online sequences of `slots`; None as soon as one
/// is below `stop_below`.
fn online_min(slots: &[Slot], wr: u64, stop_below: Option<u64>) -> Option<u64> {
    let mut min = wr;
    for s in slots {
        let seq = s.seq.load(Ordering::Acquire);
        if seq == 0 {
            continue;
        }
        if stop_below.is_some_and(|goal| seq_lt(seq, goal)) {
            return None;
        }
        min = seq_min(min, seq);
    }
    Some(min)
}

/// Raises `cell` to `to` unless it is already there (wrap-safe).
pub(crate) fn raise(cell: &AtomicU64, to: u64) {
    let mut cur = cell.load(Ordering::Relaxed);
    while cur == 0 || seq_lt(cur, to) {
        match cell.compare_exchange_weak(cur, to, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => cur = now,
        }
    }
}

global!(registry: Registry = Registry::new());
