//! Quiescent-state-based reclamation (QSBR): free memory that lock-free
//! readers may still be looking at, once every registered thread has passed a
//! quiescent state.
//!
//! # Guide
//!
//! Readers register once and then read shared structures without any
//! read-side cost; they announce a *quiescent state* ("I hold no reference
//! obtained without a lock") at convenient points, e.g. once per event-loop
//! turn, and *detach* around blocking calls so they never hold anyone back.
//! Writers unlink a node and [`retire`] it: it is dropped once every
//! registered thread has quiesced (or detached) since.
//!
//! ```
//! use std::sync::atomic::{AtomicPtr, Ordering};
//!
//! static CONFIG: AtomicPtr<String> = AtomicPtr::new(std::ptr::null_mut());
//!
//! let me = gcmalloc::register_thread();
//! // Writer: publish a new value, retire the old one.
//! let old = CONFIG.swap(Box::into_raw(Box::new("v2".to_string())), Ordering::AcqRel);
//! if !old.is_null() {
//!     // SAFETY: `old` came from Box::into_raw and is no longer reachable.
//!     gcmalloc::qsbr::retire(unsafe { Box::from_raw(old) });
//! }
//! // Reader: no lock, no reference count.
//! let cur = unsafe { &*CONFIG.load(Ordering::Acquire) };
//! assert_eq!(cur, "v2");
//! me.quiescent(); // `cur` must not be used after this line
//!
//! me.detach();    // around blocking calls: detached threads never hold a goal
//! std::thread::sleep(std::time::Duration::from_millis(1));
//! me.attach();
//! # drop(me);
//! # let _ = unsafe { Box::from_raw(CONFIG.swap(std::ptr::null_mut(), Ordering::AcqRel)) };
//! ```
//!
//! Explicit goals are for callers that manage their own deferred work:
//! [`advance`] returns a [`Goal`], and [`poll`] says whether it is reached.
//! [`stats`] reports pending memory and the *laggard*, the thread whose stale
//! quiescent state holds the oldest goal back (a thread stuck in a loop
//! without quiescent states is named there, not left to leak memory).
//!
//! # Algorithm (FreeBSD "GUS" style, as in CPython's free-threaded build)
//!
//! * A global **write sequence** `wr_seq` starts at 1 and advances by 2 (always
//!   odd). Each registered thread has a **sequence** `seq` in its registry
//!   slot: a quiescent state stores the current `wr_seq` into it (Release),
//!   going offline (detach, park, exit) stores 0. Comparisons use the signed
//!   difference, so wrap-around is harmless.
//! * A **goal** `g` is reached when every online thread's `seq >= g`. The
//!   minimum is cached in a shared **read sequence** `rd_seq`, so most polls
//!   are one load; otherwise the registry is scanned (see `registry`: chunks
//!   with cached minima, stopping at the first thread that is behind).
//! * **Sealing instead of reading for deferral.** Retired items are queued in
//!   the retiring thread's FIFO *without* a goal; every 127 items or 1 MiB
//!   (and when the queue is polled, and on exit) the batch is *sealed*: one
//!   real advance, whose value becomes the goal of the whole batch. So
//!   retiring does not touch the shared sequence per item, and the advance
//!   that defines a goal is always a read-modify-write made *after* the
//!   items were unlinked. That matters because a quiescent state is only a
//!   load and a store, with no fence: a reader that quiesces on a value of
//!   `wr_seq` synchronizes with every RMW before it, so it can no longer
//!   reach what was unlinked before the seal. CPython's "goal = `wr_seq` + 2
//!   without advancing" reads `wr_seq` with a plain load, which gives a
//!   fence-free reader no such guarantee. Pages (`page_goal`) keep the
//!   "next goal" deferral, but take it with an RMW that adds 0, for the same
//!   reason.
//! * **Coming online** (attach) stores `seq = wr_seq` and then issues a SeqCst
//!   fence; a scan loads `wr_seq`, then fences, then reads the slots. Either
//!   the scan sees the new `seq`, or the thread sees every unlink that the
//!   scan's goal covers. Both orders are checked by the loom models in
//!   `src/runtime/qsbr/seq.rs`.
//! * **Bounded memory**: besides the seal limits, a thread polls its queue
//!   every 8 quiescent states while it has pending items, so items do not
//!   wait for some other thread to advance. An exiting or detaching thread
//!   seals its queue and hands it to a shared orphan queue, processed
//!   (try-lock, nobody waits on it) whenever any thread processes its own
//!   queue, and right after the hand-off.
//! * Nothing here allocates through the global allocator: registry and queue
//!   chunks come from [`std::alloc::System`], since the allocator's own page
//!   code calls into this module.
//!
//! # Reclaiming runs user code with nothing held
//!
//! A retired object's `Drop` runs the caller's code, which may call any
//! public function of gcmalloc — retire more, drop the thread's last
//! handle, register, attach, stop the world, fork. It never runs while
//! gcmalloc holds a slot reference or a lock: due items are moved into a
//! fixed-size batch on the stack, the queue is let go of (the thread's slot,
//! or the orphan queue's lock), and then they are dropped; before the next
//! batch, a thread checks that its registration still lasts. A thread that
//! unregisters hands its queue to the orphan queue and frees its slot
//! first, and reclaims last. A panic in a `Drop` is caught where the item is
//! reclaimed and counted in [`Stats::drop_panics`].

mod lag;
mod reclaim;
mod seq;

pub(crate) use seq::{any_thread_online, goal_of_tag, goal_reached, goal_tag, page_goal};

use core::fmt;
use std::time::Instant;

use crate::runtime::queue::{Fifo, Item};
use crate::runtime::registry::{registry, seq_lt, Slot, ThreadState};
use crate::sync::{fence, global, thread::Thread, AtomicU64, AtomicUsize, Mutex, Ordering};
use seq::{AdvanceLog, INCR};

pub(crate) use lag::check_if_due as check_lag_if_due;
pub use lag::{set_lag_report, LagReport};

/// Padding that keeps a hot shared word on its own (pair of) cache lines.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// All QSBR state of the process.
pub(crate) struct Domain {
    /// Written by advances only (RMWs); loaded by every quiescent state.
    pub(crate) wr_seq: Padded<AtomicU64>,
    /// Cached minimum of the online sequences; raised by scans.
    pub(crate) rd_seq: Padded<AtomicU64>,
    /// Retired items of exited threads and of threads never registered.
    orphans: Mutex<Fifo>,
    orphan_items: AtomicUsize,
    orphan_bytes: AtomicUsize,
    advance_log: AdvanceLog,
}

impl Domain {
    crate::sync::loom_const_fn! {
        fn new() -> Domain {
            Domain {
                wr_seq: Padded(AtomicU64::new(1)),
                rd_seq: Padded(AtomicU64::new(1)),
                orphans: Mutex::new(Fifo::new()),
                orphan_items: AtomicUsize::new(0),
                orphan_bytes: AtomicUsize::new(0),
                advance_log: AdvanceLog::new(),
            }
        }
    }
}

impl<T> core::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

global!(domain: Domain = Domain::new());

/// A quiescent state of `slot`'s attached thread: its sequence catches up
/// with the write sequence (Release: what it read before is done with).
#[inline]
pub(crate) fn quiesce(slot: &Slot) {
    slot.seq.store(domain().wr_seq.load(Ordering::Acquire), Ordering::Release);
}

/// Whether a quiescent state of `slot`'s thread has more to do than
/// [`quiesce`]: its own pending items, or orphans to move along.
#[inline]
pub(crate) fn has_work(slot: &Slot) -> bool {
    slot.pending_items.load(Ordering::Relaxed) != 0 || domain().has_orphans()
}

/// The slow part of a quiescent state: quiesce, then process what is due
/// (this thread's items, else the orphans: items of exited, detached or
/// unregistered threads, which every online thread's quiescent states move
/// along).
pub(crate) fn quiescent_with_work(slot: &'static Slot) {
    quiesce(slot);
    if slot.pending_items.load(Ordering::Relaxed) != 0 {
        domain().quiescent_with_pending(slot);
    } else {
        domain().process_orphans();
    }
}

/// Brings an attached slot's QSBR sequence online. The SeqCst fence pairs
/// with the one in every registry scan: either the scan sees this `seq`, or
/// this thread's later reads see every store made before the scan (so it
/// cannot reach what the scan's goal lets be freed). Model-checked in
/// `src/runtime/qsbr/seq.rs` (`loom_tests`).
pub(crate) fn come_online(slot: &Slot) {
    slot.seq.store(domain().wr_seq.load(Ordering::Acquire), Ordering::Relaxed);
    fence(Ordering::SeqCst);
}

/// Takes `slot`'s thread offline: everything it read is done with, like a
/// quiescent state, and it holds no goal back until it comes online.
pub(crate) fn go_offline(slot: &Slot) {
    slot.seq.store(0, Ordering::Release);
}

/// Hands `slot`'s pending items to the orphan queue, sealed, for a thread
/// going offline for good (unregistering). Runs no user code; the caller
/// calls [`reclaim_orphans`] once it has let go of the slot.
pub(crate) fn hand_off(slot: &Slot) {
    domain().hand_off(slot);
}

/// After `slot`'s thread detached (it may block for long, and only it
/// processes its own queue): its pending items go to the orphan queue, then
/// what is due there is reclaimed — user code, run last, with the slot let
/// go of.
pub(crate) fn detached(slot: &Slot) {
    if slot.pending_items.load(Ordering::Relaxed) != 0 {
        domain().hand_off(slot);
    }
    domain().process_orphans();
}

/// Reclaims the orphans whose goal is reached, unless another thread is at
/// it (user code: call it with no slot borrowed and no lock held).
pub(crate) fn reclaim_orphans() {
    domain().process_orphans();
}

/// In a forked child: forgets `slot`'s queue and takes it offline, for a
/// slot whose thread does not exist there.
///
/// # Safety
/// The slot's owner does not exist in this process.
#[cfg(all(unix, not(loom)))]
pub(crate) unsafe fn forget_missing_thread(slot: &Slot) {
    // SAFETY: the caller's contract.
    unsafe { domain().forget_queue(slot) };
    go_offline(slot);
}

/// A point in the write sequence: reached once every registered thread that
/// was online when it was made has passed a quiescent state or gone offline.
///
/// ```
/// let goal = gcmalloc::qsbr::advance();
/// // No thread of this doctest is registered, so nothing holds it back.
/// assert!(gcmalloc::qsbr::poll(goal));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Goal(u64);

impl Goal {
    /// The raw sequence number (odd; compare goals only through [`poll`]).
    pub fn sequence(self) -> u64 {
        self.0
    }
}

/// Drops `value` once every registered thread has passed a quiescent state
/// (or gone offline) — so lock-free readers that loaded a pointer to it
/// before it was unlinked can finish with it.
///
/// Unlink `value` from every shared structure *before* calling this. From a
/// registered thread this is a push onto its own queue (a shared advance
/// every 127 items or 1 MiB); an unregistered thread's items go to the shared
/// orphan queue, one advance each. Memory is accounted as
/// `size_of::<T>()` bytes.
///
/// ```
/// let me = gcmalloc::register_thread();
/// gcmalloc::qsbr::retire(Box::new([0u8; 64]));
/// assert_eq!(gcmalloc::qsbr::stats().pending_items, 1);
/// drop(me); // exiting hands the item over; nothing holds it back now
/// assert_eq!(gcmalloc::qsbr::stats().pending_items, 0);
/// ```
pub fn retire<T: Send + 'static>(value: Box<T>) {
    retire_with_size(value, core::mem::size_of::<T>());
}

/// [`retire`], accounted as `bytes` instead of `size_of::<T>()`: for an
/// object that owns memory of its own (a `Box<Vec<u8>>` is 24 bytes to
/// `retire`, whatever its buffer holds), so that
/// [`Stats::pending_bytes`] shows what reclaiming it will free. Any
/// `bytes` is accepted: the pending total is kept exactly and read out
/// saturated at `usize::MAX`.
///
/// ```
/// let me = gcmalloc::register_thread();
/// let buffer = vec![0u8; 1 << 20];
/// let bytes = buffer.capacity() + std::mem::size_of::<Vec<u8>>();
/// gcmalloc::qsbr::retire_with_size(Box::new(buffer), bytes);
/// assert!(gcmalloc::qsbr::stats().pending_bytes >= 1 << 20);
/// # drop(me);
/// ```
pub fn retire_with_size<T: Send + 'static>(value: Box<T>, bytes: usize) {
    /// # Safety
    /// `p` came from `Box::<T>::into_raw`, and is reclaimed once.
    unsafe fn drop_box<T>(p: *mut ()) {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(p.cast::<T>()) })
    }
    // SAFETY: T: Send + 'static, so dropping it later on any thread is sound;
    // the box is owned by the queue from here on and dropped exactly once.
    let item = unsafe { Item::new(Box::into_raw(value).cast(), drop_box::<T>, bytes) };
    domain().defer(item);
    lag::check_if_due(); // nothing held here: a lag report may run
}

/// Frees `ptr` (a block from [`GcMalloc`](crate::GcMalloc)) once every
/// registered thread has passed a quiescent state, like [`retire`] for raw
/// blocks. Accounted as the block's usable size.
///
/// # Safety
///
/// `ptr` must be a live block allocated by `GcMalloc` (gcmalloc's mimalloc),
/// not freed otherwise, and unreachable for new readers.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout};
/// let a = gcmalloc::GcMalloc;
/// // SAFETY: a fresh block, freed only through retire_block.
/// unsafe {
///     let p = a.alloc(Layout::from_size_align(100, 8).unwrap());
///     gcmalloc::qsbr::retire_block(p);
/// }
/// ```
pub unsafe fn retire_block(ptr: *mut u8) {
    /// # Safety
    /// `p` is a live gcmalloc block, freed once.
    unsafe fn free_block(p: *mut ()) {
        // SAFETY: the caller's contract.
        unsafe { crate::ffi::mi_free(p.cast()) }
    }
    // SAFETY: `ptr` is a live gcmalloc block (caller's contract), so its
    // usable size can be read and mi_free is its correct reclaim.
    let item = unsafe {
        let bytes = crate::ffi::mi_usable_size(ptr.cast());
        Item::new(ptr.cast(), free_block, bytes)
    };
    domain().defer(item);
}

/// The former name of [`retire_block`].
///
/// # Safety
///
/// As for [`retire_block`].
#[deprecated(since = "0.1.0", note = "renamed to `qsbr::retire_block` (\"delayed\" now names only page reuse)")]
pub unsafe fn free_delayed(ptr: *mut u8) {
    // SAFETY: the caller's contract is `retire_block`'s.
    unsafe { retire_block(ptr) }
}

/// Advances the write sequence and returns the goal that covers everything
/// unlinked before this call.
///
/// ```
/// let a = gcmalloc::qsbr::advance();
/// let b = gcmalloc::qsbr::advance();
/// assert_ne!(a, b);
/// ```
pub fn advance() -> Goal {
    Goal(domain().advance())
}

/// True once `goal` is reached. One load when the cached read sequence
/// already covers it; otherwise a scan of the registry (which stops at the
/// first thread still behind). Never blocks, never allocates.
///
/// ```
/// let me = gcmalloc::register_thread();
/// let goal = gcmalloc::qsbr::advance();
/// assert!(!gcmalloc::qsbr::poll(goal), "this thread has not quiesced yet");
/// me.quiescent();
/// assert!(gcmalloc::qsbr::poll(goal));
/// ```
pub fn poll(goal: Goal) -> bool {
    domain().goal_reached(goal.0)
}

/// A snapshot of QSBR's state, from [`stats`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stats {
    /// Retired items not yet reclaimed, over all threads and the orphan queue.
    /// What a thread that never quiesces holds back, with
    /// [`laggard`](Self::laggard) naming it: QSBR cannot free what that
    /// thread may still read. Bounded per retiring thread by the seal limits
    /// only while goals are reached; with a stuck attached thread it grows
    /// with what is retired, as `delayed_page_bytes` grows with emptied pages
    /// (large/huge pages waiting for a goal are reused by later large/huge
    /// allocations they fit, so a loop of them holds a few blocks).
    pub pending_items: usize,
    /// Their bytes (`size_of::<T>()` for [`retire`], the caller's figure for
    /// [`retire_with_size`], usable size for
    /// [`retire_block`]), saturated at `usize::MAX`.
    pub pending_bytes: usize,
    /// Threads currently registered.
    pub registered_threads: usize,
    /// The write sequence.
    pub write_seq: u64,
    /// The cached read sequence (every goal up to it is reached).
    pub read_seq: u64,
    /// The online thread with the oldest sequence, if it is behind the write
    /// sequence.
    pub laggard: Option<Laggard>,
    /// Empty pages waiting for a goal before another size class, heap or the
    /// OS may have them ([type-stable pages](crate::set_page_reuse_delay)),
    /// in bytes: the other memory that a thread holding goals back keeps
    /// (with [`Usage::delayed_bytes`](crate::Usage::delayed_bytes)).
    pub delayed_page_bytes: usize,
    /// Retired objects whose `Drop` panicked, since the process started. The
    /// panic is caught where the object was reclaimed (after the panic hook
    /// reported it), so it never surfaces in an unrelated call and never
    /// aborts a thread's exit.
    pub drop_panics: usize,
}

/// The thread that holds the oldest goal back (see [`Stats::laggard`]).
#[derive(Debug, Clone)]
pub struct Laggard {
    thread: Thread,
    state: ThreadState,
    goals_behind: u64,
    since: Option<Instant>,
}

impl Laggard {
    /// The thread (its `id()` and `name()`).
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Its state when the snapshot was taken.
    pub fn state(&self) -> ThreadState {
        self.state
    }

    /// How many advances of the write sequence it has not yet seen.
    pub fn goals_behind(&self) -> u64 {
        self.goals_behind
    }

    /// Approximately when the write sequence first moved past its sequence,
    /// i.e. since when it holds goals back (a lower bound on its stall, from
    /// a log of recent advances; None if no advance was logged).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }
}

impl fmt::Display for Laggard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {:?} ({:?}) is {} advance(s) behind",
            self.thread.id(),
            self.thread.name().unwrap_or("<unnamed>"),
            self.state,
            self.goals_behind
        )?;
        if let Some(t) = self.since {
            write!(f, ", since {:?} ago", t.elapsed())?;
        }
        Ok(())
    }
}

/// A snapshot of pending memory, sequences and the laggard.
///
/// ```
/// use std::sync::mpsc::channel;
/// let ((registered, wait), (release, released)) = (channel(), channel::<()>());
/// let stuck = std::thread::Builder::new().name("stuck".into()).spawn(move || {
///     let me = gcmalloc::register_thread();
///     registered.send(()).unwrap();
///     released.recv().unwrap(); // attached, never quiescent
///     drop(me);
/// }).unwrap();
/// wait.recv().unwrap();
/// gcmalloc::qsbr::advance();
/// let lag = gcmalloc::qsbr::stats().laggard.expect("the stuck thread is behind");
/// assert_eq!(lag.thread().name(), Some("stuck"));
/// # release.send(()).unwrap(); stuck.join().unwrap();
/// ```
pub fn stats() -> Stats {
    domain().stats()
}

impl Domain {
    fn stats(&self) -> Stats {
        let mut items = self.orphan_items.load(Ordering::Relaxed);
        let mut bytes = self.orphan_bytes.load(Ordering::Relaxed);
        let wr = self.wr_seq.load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let inner = registry().lock();
        let mut laggard: Option<(&Slot, u64)> = None;
        for slot in registry().slots() {
            items += slot.pending_items.load(Ordering::Relaxed);
            bytes = bytes.saturating_add(slot.pending_bytes.load(Ordering::Relaxed));
            let seq = slot.seq.load(Ordering::Acquire);
            if seq != 0 && seq_lt(seq, laggard.map_or(wr, |(_, s)| s)) {
                laggard = Some((slot, seq));
            }
        }
        let laggard = laggard.and_then(|(slot, seq)| {
            Some(Laggard {
                thread: slot.thread(&inner)?,
                state: ThreadState::from_raw(slot.state.load(Ordering::Relaxed))?,
                goals_behind: wr.wrapping_sub(seq) / INCR,
                since: self.advance_log.passed(seq, wr),
            })
        });
        Stats {
            pending_items: items,
            pending_bytes: bytes,
            registered_threads: inner.registered,
            write_seq: wr,
            read_seq: self.rd_seq.load(Ordering::Acquire),
            laggard,
            delayed_page_bytes: crate::accounting::usage().delayed_bytes,
            drop_panics: crate::runtime::queue::DROP_PANICS.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Benchmark hook, not API: the minimum over every slot, ignoring all caches
/// (the cost a poll pays when no cache helps).
#[doc(hidden)]
pub fn bench_full_scan() -> u64 {
    let d = domain();
    let wr = d.wr_seq.load(Ordering::Acquire);
    fence(Ordering::SeqCst);
    registry().full_min(wr)
}
