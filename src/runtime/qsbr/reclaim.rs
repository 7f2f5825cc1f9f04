//! Deferring and reclaiming: per-thread queues, seals, the orphan queue and
//! the exit hand-off.

use super::Domain;
use crate::runtime::queue::{Fifo, Item};
use crate::runtime::registry::{seq_ge, Slot};
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

    fn defer_local(&self, slot: &Slot, item: Item) {
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
            self.process_local(slot);
            self.process_orphans();
        }
    }

    /// The slow part of a quiescent state, for a thread with pending items:
    /// reclaim if the cached read sequence says the oldest item is due, and
    /// every `POLL_EVERY` calls seal and poll for real.
    pub(crate) fn quiescent_with_pending(&self, slot: &Slot) {
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
            self.process_local(slot);
            self.process_orphans();
        } else {
            slot.ticks.set(ticks);
        }
    }

    /// Reclaims the current thread's items whose goal is reached, oldest
    /// first, stopping at the first that is not.
    pub(crate) fn process_local(&self, slot: &Slot) {
        reclaiming_loop(|| self.process_local_loop(slot));
    }

    fn process_local_loop(&self, slot: &Slot) {
        let mut reached = None;
        loop {
            // SAFETY: `slot` is the current thread's own slot. The borrow
            // ends before the item is reclaimed: a destructor may retire more
            // items onto this very queue.
            let item = unsafe {
                slot.with_fifo(|fifo| {
                    let item = fifo.pop_if(|g| self.known_reached(&mut reached, g));
                    slot.publish_pending(fifo);
                    item
                })
            };
            match item {
                Some(item) => item.reclaim(),
                None => return,
            }
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
            let item = {
                let mut orphans = match self.orphans.try_lock() {
                    Ok(o) => o,
                    Err(TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(TryLockError::WouldBlock) => return,
                };
                let item = orphans.pop_if(|g| self.known_reached(&mut reached, g));
                self.publish_orphans(&orphans);
                item
            };
            match item {
                Some(item) => item.reclaim(),
                None => return,
            }
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

    /// In a forked child, where only the forking thread exists: frees every
    /// other thread's slot, so no registration of a thread that is not there
    /// holds a goal or a stop back. Their pending items are leaked, unread:
    /// a thread may have been in the middle of pushing to its queue when the
    /// fork happened. The caller holds the registry lock.
    #[cfg(all(unix, not(loom)))]
    pub(crate) fn keep_only(
        &self,
        me: Option<&Slot>,
        inner: &mut crate::sync::MutexGuard<'_, crate::runtime::registry::Inner>,
    ) {
        for slot in crate::runtime::registry::registry().slots() {
            let free = slot.state.load(Ordering::Acquire) == crate::runtime::registry::state::FREE;
            if free || me.is_some_and(|m| core::ptr::eq(m, slot)) {
                continue;
            }
            // SAFETY: the slot's owner does not exist in this process (the
            // child of a fork has only the forking thread), so this is the
            // only access to its queue; the old queue is moved out bitwise
            // and forgotten, never read.
            unsafe {
                slot.with_fifo(|fifo| {
                    core::mem::forget(core::mem::replace(fifo, Fifo::new()));
                    slot.publish_pending(fifo);
                })
            };
            slot.ticks.set(0);
            crate::runtime::registry::registry().free_orphaned(slot, inner);
        }
    }

    /// Called by a thread that is unregistering or detaching (offline):
    /// seals its queue, reclaims what is due, hands the rest to the orphan
    /// queue. What the reclaimed objects' `Drop`s retire meanwhile (a
    /// detaching thread is still registered) is sealed before it goes: an
    /// unsealed item has no goal and would block the orphan queue.
    pub(crate) fn hand_off(&self, slot: &Slot) {
        let seal = || {
            // SAFETY: `slot` is the current thread's own slot; nothing is
            // reclaimed inside.
            unsafe {
                slot.with_fifo(|fifo| {
                    if fifo.unsealed().0 > 0 {
                        fifo.seal(self.advance());
                    }
                })
            }
        };
        seal();
        self.process_local(slot);
        seal();
        // SAFETY: as above.
        unsafe {
            slot.with_fifo(|fifo| {
                if fifo.len() > 0 {
                    let mut orphans = lock(&self.orphans);
                    orphans.append(fifo);
                    self.publish_orphans(&orphans);
                }
                slot.publish_pending(fifo);
            })
        };
        slot.ticks.set(0);
        self.process_orphans();
    }
}
