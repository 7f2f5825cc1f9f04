//! Deferring and reclaiming: per-thread queues, seals, the orphan queue and
//! the hand-off of a thread going offline.
//!
//! Reclaiming runs user code (each item's `Drop`), so it follows the thread
//! runtime's rule: due items are taken off their queue into a [`Batch`] on
//! the stack, the queue (the slot, or the orphan queue's lock) is let go
//! of, and only then are they dropped. A thread's loop then checks that
//! its registration still lasts before it takes the next batch: a `Drop`
//! may have ended it, and the slot may already be another thread's.

use super::Domain;
use crate::runtime::queue::{Batch, Fifo, Item};
use crate::runtime::registry::{seq_ge, Registration, Slot};
use crate::sync::{const_thread_local, lock, Ordering, TryLockError};

/// A batch is sealed (one real advance) after this many items...
pub(crate) const SEAL_ITEMS: usize = 127;
/// ...or this many bytes, whichever comes first (CPython's limits).
pub(crate) const SEAL_BYTES: usize = 1 << 20;
/// While a thread has pending items, every this many quiescent states it
/// seals and polls its queue even if the cached read sequence says nothing
/// is due, so its items never wait on another thread's advance.
const POLL_EVERY: u32 = if cfg!(loom) { 1 } else { 8 };

const_thread_local! {
    /// Set while this thread runs a reclaiming loop. A retire from a
    /// reclaimed object's `Drop` then only queues its item, and the loop
    /// takes it next: recursing would grow the stack with the length of a
    /// chain of such objects (a 100,000-node list overflowed it).
    static RECLAIMING: core::cell::Cell<bool> = core::cell::Cell::new(false);
}

/// Runs the reclaiming loop `f`, unless this thread is already in one (whose
/// loop will take what a nested call would have).
fn reclaiming_loop(f: impl FnOnce()) {
    // Thread-locals torn down (a thread exiting): no loop can be running.
    if RECLAIMING.try_with(|r| r.replace(true)).unwrap_or(false) {
        return;
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            let _ = RECLAIMING.try_with(|r| r.set(false));
        }
    }
    let _done = Done;
    f();
}

impl Domain {
    /// Queues `item` on the current thread's FIFO, or on the orphan queue if
    /// the current thread is not registered.
    pub(crate) fn defer(&self, item: Item) {
        match crate::runtime::registry::current_slot() {
            Some(slot) => self.defer_local(slot, item),
            None => {
                let goal;
                {
                    let mut orphans = lock(&self.orphans);
                    orphans.push(item);
                    goal = self.advance();
                    orphans.seal(goal);
                    self.publish_orphans(&orphans);
                }
                self.process_orphans();
            }
        }
    }

    fn defer_local(&self, slot: &'static Slot, item: Item) {
        // SAFETY: `slot` is the current thread's own slot; nothing is
        // reclaimed inside.
        let limit = unsafe {
            slot.with_fifo(|fifo| {
                fifo.push(item);
                let (items, bytes) = fifo.unsealed();
                let limit = items >= SEAL_ITEMS || bytes >= SEAL_BYTES;
                if limit {
                    fifo.seal(self.advance());
                }
                slot.publish_pending(fifo);
                limit
            })
        };
        if limit {
            self.process_local(Registration::of(slot));
            self.process_orphans();
        }
    }

    /// The slow part of a quiescent state, for a thread with pending items:
    /// reclaim if the cached read sequence says the oldest item is due, and
    /// every `POLL_EVERY` calls seal and poll for real.
    pub(crate) fn quiescent_with_pending(&self, slot: &'static Slot) {
        let ticks = slot.ticks.get() + 1;
        // SAFETY: `slot` is the current thread's own slot; nothing is
        // reclaimed inside.
        let poll = unsafe {
            slot.with_fifo(|fifo| {
                let due = fifo.front_goal().is_some_and(|g| {
                    g != crate::runtime::queue::UNSEALED && seq_ge(self.rd_seq.load(Ordering::Acquire), g)
                });
                let poll = due || ticks >= POLL_EVERY;
                if poll && fifo.unsealed().0 > 0 {
                    fifo.seal(self.advance());
                }
                poll
            })
        };
        if poll {
            slot.ticks.set(0);
            self.process_local(Registration::of(slot));
            self.process_orphans();
        } else {
            slot.ticks.set(ticks);
        }
    }

    /// Reclaims the current thread's items whose goal is reached, oldest
    /// first, stopping at the first that is not, or as soon as
    /// `registration` has ended (a reclaimed `Drop` may end it).
    pub(crate) fn process_local(&self, registration: Registration) {
        reclaiming_loop(|| self.process_local_loop(registration));
    }

    fn process_local_loop(&self, registration: Registration) {
        let mut reached = None;
        // Re-validated before every batch: the slot is this thread's only
        // while the registration lasts.
        while let Some(slot) = registration.live_slot() {
            let mut batch = Batch::new();
            // SAFETY: `slot` is the current thread's own slot (its
            // registration lasts); nothing is reclaimed inside.
            unsafe {
                slot.with_fifo(|fifo| {
                    fifo.take_due(&mut batch, |g| self.known_reached(&mut reached, g));
                    slot.publish_pending(fifo);
                })
            };
            if batch.is_empty() {
                return;
            }
            batch.reclaim(); // user code: no slot borrowed, no lock held
        }
    }

    /// True if the orphan queue holds items (one relaxed load of a word
    /// written only when the queue changes).
    #[inline]
    pub(crate) fn has_orphans(&self) -> bool {
        self.orphan_items.load(Ordering::Relaxed) != 0
    }

    /// Reclaims orphans whose goal is reached, if no one else is at it.
    pub(crate) fn process_orphans(&self) {
        if self.orphan_items.load(Ordering::Relaxed) == 0 {
            return;
        }
        reclaiming_loop(|| self.process_orphans_loop());
    }

    fn process_orphans_loop(&self) {
        let mut reached = None;
        loop {
            let mut batch = Batch::new();
            {
                let mut orphans = match self.orphans.try_lock() {
                    Ok(o) => o,
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(TryLockError::WouldBlock) => return,
                };
                orphans.take_due(&mut batch, |g| self.known_reached(&mut reached, g));
                self.publish_orphans(&orphans);
            }
            if batch.is_empty() {
                return;
            }
            batch.reclaim(); // user code: the orphan queue's lock is released
        }
    }

    /// `goal_reached`, remembering the newest goal known reached so that a
    /// run of items with the same goal costs one check.
    fn known_reached(&self, reached: &mut Option<u64>, goal: u64) -> bool {
        if reached.is_some_and(|r| seq_ge(r, goal)) {
            return true;
        }
        let ok = self.goal_reached(goal);
        if ok {
            *reached = Some(goal);
        }
        ok
    }

    fn publish_orphans(&self, orphans: &Fifo) {
        self.orphan_items.store(orphans.len(), Ordering::Relaxed);
        self.orphan_bytes.store(orphans.bytes(), Ordering::Relaxed);
    }

    /// Takes the orphan queue's lock (to keep it across a `fork`).
    #[cfg(all(unix, not(loom)))]
    pub(crate) fn lock_orphans(&self) -> crate::sync::MutexGuard<'_, Fifo> {
        lock(&self.orphans)
    }

    /// Forgets `slot`'s queue unread, for a slot whose thread does not
    /// exist (in a forked child): its pending items are leaked, never
    /// reclaimed, as that thread may have been in the middle of a push.
    ///
    /// # Safety
    /// The slot's owner does not exist in this process, so this is the only
    /// access to its queue.
    #[cfg(all(unix, not(loom)))]
    pub(crate) unsafe fn forget_queue(&self, slot: &Slot) {
        // SAFETY: the caller's contract; the old queue is moved out bitwise
        // and forgotten, never read.
        unsafe {
            slot.with_fifo(|fifo| {
                core::mem::forget(core::mem::replace(fifo, Fifo::new()));
                slot.publish_pending(fifo);
            })
        };
        slot.ticks.set(0);
    }

    /// Hands the current thread's queue, sealed, to the orphan queue, for a
    /// thread going offline for long or for good. Runs no user code: the
    /// caller reclaims due orphans afterwards, with the slot let go of.
    pub(crate) fn hand_off(&self, slot: &Slot) {
        // SAFETY: `slot` is the current thread's own slot; nothing is
        // reclaimed inside.
        unsafe {
            slot.with_fifo(|fifo| {
                if fifo.unsealed().0 > 0 {
                    fifo.seal(self.advance());
                }
                if fifo.len() > 0 {
                    let mut orphans = lock(&self.orphans);
                    orphans.append(fifo);
                    self.publish_orphans(&orphans);
                }
                slot.publish_pending(fifo);
            })
        };
        slot.ticks.set(0);
    }
}
