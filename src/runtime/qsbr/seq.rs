//! Sequences and goals: advancing the write sequence, checking a goal
//! (cached read sequence first, registry scan second), and the deferred goal
//! for emptied pages.

use super::{domain, Domain};
use crate::runtime::registry::{self, registry, seq_ge, seq_lt};
use crate::sync::{const_thread_local, fence, Ordering};
use core::cell::Cell;
use core::time::Duration;
use std::sync::OnceLock;
use std::time::Instant;

/// Sequences advance by 2 and stay odd; 0 means "offline".
pub(crate) const INCR: u64 = 2;

/// Real advances happen every this many bytes of emptied pages (CPython:
/// 80 KiB); in between, pages share the next goal.
pub(crate) const PAGE_DEFER_BYTES: usize = 80 * 1024;

impl Domain {
    /// Advances the write sequence and returns the new value: the goal of
    /// everything unlinked before this call.
    ///
    /// An AcqRel read-modify-write: every later value of the write sequence
    /// (all writes to it are RMWs) carries this thread's earlier stores to
    /// whoever acquires it — in particular to a reader whose quiescent state
    /// loads it, so that reader can no longer see what was unlinked before.
    pub(crate) fn advance(&self) -> u64 {
        let new = self.wr_seq.fetch_add(INCR, Ordering::AcqRel).wrapping_add(INCR);
        self.advance_log.record(new);
        new
    }

    /// True once every thread online has passed a quiescent state since
    /// `goal`. Advances the write sequence first if `goal` is a deferred goal
    /// it has not reached yet. Lock-free; never allocates.
    pub(crate) fn goal_reached(&self, goal: u64) -> bool {
        if seq_ge(self.rd_seq.load(Ordering::Acquire), goal) {
            return true;
        }
        let mut wr = self.wr_seq.load(Ordering::Acquire);
        while seq_lt(wr, goal) {
            match self.wr_seq.compare_exchange_weak(wr, wr.wrapping_add(INCR), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    wr = wr.wrapping_add(INCR);
                    self.advance_log.record(wr);
                }
                Err(now) => wr = now,
            }
        }
        // Orders the load of `wr` before the loads of the slots: a thread
        // that comes online after this fence (its `seq` is missed) sees every
        // store that happened before it. See `crate::thread` (attach).
        fence(Ordering::SeqCst);
        match registry().reached(goal, wr) {
            Some(min) => {
                registry::raise(&self.rd_seq, min);
                true
            }
            None => false,
        }
    }

    /// The goal for a page that just became empty (see [`page_goal`]).
    fn page_goal(&self, page_bytes: usize, deferred: &Cell<usize>) -> u64 {
        let bytes = deferred.get().saturating_add(page_bytes);
        if bytes >= PAGE_DEFER_BYTES {
            deferred.set(0);
            return self.advance();
        }
        deferred.set(bytes);
        // A read-modify-write that changes nothing: it puts this thread's
        // earlier stores (the frees that emptied the page) into the write
        // sequence's release sequence, so the next real advance — whoever
        // makes it — carries them to every reader that quiesces past it. A
        // plain load would not: a reader could quiesce on another thread's
        // advance and still see the page's objects linked. It does not move
        // the sequence, so the cached read sequence stays valid.
        self.wr_seq.fetch_add(0, Ordering::AcqRel).wrapping_add(INCR)
    }
}

/// When recent advances happened, for [`crate::qsbr::Laggard::since`]:
/// nanoseconds since the first advance, indexed by sequence. Diagnostics
/// only, so it uses std atomics even under loom (the model need not explore
/// it), and a torn read only makes a timestamp approximate.
pub(crate) struct AdvanceLog {
    base: OnceLock<Instant>,
    nanos: [std::sync::atomic::AtomicU64; LOG_LEN],
}

const LOG_LEN: usize = 64;

impl AdvanceLog {
    pub(crate) const fn new() -> AdvanceLog {
        #[allow(clippy::declare_interior_mutable_const)] // only an array initializer
        const ZERO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        AdvanceLog { base: OnceLock::new(), nanos: [ZERO; LOG_LEN] }
    }

    fn index(seq: u64) -> usize {
        (seq / INCR) as usize % LOG_LEN
    }

    /// Notes that the write sequence just became `seq`. No allocation, no
    /// lock: a vDSO clock read and a store.
    pub(crate) fn record(&self, seq: u64) {
        let base = self.base.get_or_init(Instant::now);
        let nanos = base.elapsed().as_nanos() as u64;
        self.nanos[Self::index(seq)].store(nanos, std::sync::atomic::Ordering::Relaxed);
        super::lag::note_advance(nanos);
    }

    /// When the write sequence first moved past `seq` (now `wr`); for a
    /// sequence older than the log, when its oldest entry was made (a lower
    /// bound on how long `seq` has been behind).
    pub(crate) fn passed(&self, seq: u64, wr: u64) -> Option<Instant> {
        let base = *self.base.get()?;
        let oldest_kept = wr.wrapping_sub(INCR * (LOG_LEN as u64 - 1));
        let first_past = if seq_lt(seq.wrapping_add(INCR), oldest_kept) { oldest_kept } else { seq.wrapping_add(INCR) };
        let nanos = self.nanos[Self::index(first_past)].load(std::sync::atomic::Ordering::Relaxed);
        Some(base + Duration::from_nanos(nanos))
    }
}

const_thread_local! {
    /// Bytes of emptied pages whose goal this thread deferred. A const,
    /// drop-free thread-local: accessing it never allocates or registers a
    /// destructor, so the allocator's page code may use it.
    static DEFERRED_PAGE_BYTES: Cell<usize> = Cell::new(0);
}

/// The goal to tag an emptied page with, for type-stable page reuse: the
/// page may go to another size class, heap or the OS once
/// [`goal_reached`]`(goal)`.
///
/// Deferred advance: every [`PAGE_DEFER_BYTES`] of emptied pages (per thread)
/// the write sequence really advances; other pages get the next goal without
/// advancing, so frequent page frees do not invalidate the cached read
/// sequence (each poll stays one load until the next real advance).
///
/// Any thread may call it, registered or not. Lock-free, never allocates,
/// never blocks, never panics: safe inside the allocator's page code.
pub(crate) fn page_goal(page_bytes: usize) -> u64 {
    let d = domain();
    DEFERRED_PAGE_BYTES
        .try_with(|deferred| d.page_goal(page_bytes, deferred))
        // Thread-local storage already torn down: advance for real.
        .unwrap_or_else(|_| d.advance())
}

/// The 32 bits of a page goal that mimalloc keeps in the page (a tag): its
/// low half. Sequences are odd, so a tag is never 0, mimalloc's "no goal".
pub(crate) fn goal_tag(goal: u64) -> u32 {
    goal as u32
}

/// The goal a page tag stands for (see [`tag_goal`]).
pub(crate) fn goal_of_tag(tag: u32) -> u64 {
    // A page's goal was made before its tag reached this thread, so the
    // write sequence read here is at least the one it was made from.
    tag_goal(tag, domain().wr_seq.load(Ordering::Acquire))
}

/// The latest goal with the low half `tag` that is no later than `wr + INCR`
/// (the latest goal made so far: a deferred one). That is the page's own goal
/// if it was made fewer than 2^31 advances ago; for an older page it is a
/// later goal, never an earlier one, so the page waits longer, never less.
fn tag_goal(tag: u32, wr: u64) -> u64 {
    let latest = wr.wrapping_add(INCR);
    latest.wrapping_sub(u64::from((latest as u32).wrapping_sub(tag)))
}

/// True if some registered thread is online (attached, so it may hold
/// references read without locks). If not, memory unlinked before this call
/// may be reused at once: a thread coming online later issues a SeqCst fence
/// after publishing its sequence, so either this scan sees it or it sees every
/// store made before the fence below (the argument of
/// [`Domain::goal_reached`], without the advance a goal needs).
///
/// Any thread may call it; lock-free, never allocates, never blocks, never
/// panics. Unlike `goal_reached` it never moves the write sequence, so it
/// keeps [`page_goal`]'s deferral intact.
pub(crate) fn any_thread_online() -> bool {
    fence(Ordering::SeqCst);
    registry().any_online()
}

/// True once every registered thread that was online when `goal` was made
/// has passed a quiescent state (or gone offline). With no thread
/// registered, every goal is reached at once.
///
/// Any thread may call it; lock-free, never allocates, never blocks, never
/// panics: safe inside the allocator's page code.
pub(crate) fn goal_reached(goal: u64) -> bool {
    domain().goal_reached(goal)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::runtime::registry::seq_min;

    #[test]
    fn comparisons_are_wrap_safe() {
        let near_max = u64::MAX - 2; // odd
        let wrapped = near_max.wrapping_add(4); // 1
        assert!(seq_ge(wrapped, near_max));
        assert!(seq_lt(near_max, wrapped));
        assert_eq!(seq_min(wrapped, near_max), near_max);
        assert!(seq_ge(5, 5) && !seq_lt(5, 5));
    }

    #[test]
    fn a_page_tag_stands_for_its_goal_or_a_later_one() {
        for wr in [1, 0xffff_fff1, 0x1_0000_0001, u64::MAX - 4, 7 << 40 | 0x8000_0001] {
            let latest = wr.wrapping_add(INCR);
            // Goals made up to 2^31 advances back come back exactly...
            for back in [0, 1, 2, 1000, (1 << 31) - 1] {
                let goal = latest.wrapping_sub(back * INCR);
                assert_eq!(tag_goal(goal_tag(goal), wr), goal, "wr {wr:#x}, {back} advances back");
            }
            // ...older ones as a later goal that is still made by now.
            for back in [1 << 31, 3 << 31, 1 << 40] {
                let goal = latest.wrapping_sub(back * INCR);
                let got = tag_goal(goal_tag(goal), wr);
                assert!(seq_lt(goal, got) && !seq_lt(latest, got), "wr {wr:#x}: {goal:#x} read as {got:#x}");
            }
        }
        assert_ne!(goal_tag(page_goal(4096)), 0, "a tag is never mimalloc's 'no goal'");
    }

    #[test]
    fn page_goal_defers_until_the_byte_limit_then_advances() {
        // No thread of this test binary registers, so goals are reached at
        // once; deferral is visible in the write sequence.
        let d = domain();
        DEFERRED_PAGE_BYTES.with(|c| c.set(0));
        let before = d.wr_seq.load(Ordering::Acquire);
        let g1 = page_goal(PAGE_DEFER_BYTES / 4);
        let g2 = page_goal(PAGE_DEFER_BYTES / 4);
        assert_eq!(g1, g2, "pages below the limit share one goal");
        assert!(seq_lt(before, g1), "a page goal is in the future");
        let g3 = page_goal(PAGE_DEFER_BYTES / 2);
        assert!(seq_ge(d.wr_seq.load(Ordering::Acquire), g3), "limit passed: advanced");
        assert!(goal_reached(g1) && goal_reached(g3), "no thread registered");
        assert!(seq_ge(d.wr_seq.load(Ordering::Acquire), g1));

        // A registered thread that has not quiesced holds a page goal back;
        // the goal is reached once it quiesces, checked from another,
        // unregistered thread. (The only test here that registers.)
        let me = crate::register_thread();
        let g = page_goal(4096);
        let other = std::thread::spawn(move || goal_reached(g));
        assert!(!other.join().unwrap(), "held by this thread");
        me.quiescent();
        assert!(std::thread::spawn(move || goal_reached(g)).join().unwrap());
        drop(me);
    }
}

/// loom models of a thread coming online while another thread, not online
/// itself, decides whether unlinked memory may be reused (run by `.ci/run`:
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    /// A reader registers, goes offline and comes back online, then reads the
    /// "node" if it is still linked. Meanwhile this thread unlinks it and asks
    /// `may_reuse`; if that says yes, it overwrites the node. Either the check
    /// sees the newcomer online, or the newcomer sees the unlink: a
    /// store-buffering pattern that holds only because both sides issue a
    /// SeqCst fence (`come_online`, and the check's scan). loom reports the
    /// overwrite racing the read otherwise.
    fn coming_online_races(may_reuse: fn() -> bool) {
        loom::model(move || {
            let node = Arc::new(UnsafeCell::new(7u64));
            let linked = Arc::new(AtomicUsize::new(1));
            let reader = {
                let (node, linked) = (node.clone(), linked.clone());
                loom::thread::spawn(move || {
                    let me = crate::register_thread();
                    me.detach();
                    me.attach();
                    if linked.load(Ordering::Acquire) == 1 {
                        // SAFETY: still linked for this online thread, so
                        // `may_reuse` must not let it be overwritten; loom
                        // reports the race if it does.
                        node.with(|v| unsafe { assert_eq!(*v, 7, "read reused memory") });
                    }
                    me.detach();
                })
            };
            linked.swap(0, Ordering::AcqRel); // unlink
            if may_reuse() {
                // SAFETY: the check says no online thread can still reach the
                // node; loom reports the race if one can.
                node.with_mut(|v| unsafe { *v = 0 });
            }
            reader.join().unwrap();
        });
    }

    /// QSBR's own check: a goal made after the unlink, polled.
    #[test]
    fn loom_a_thread_coming_online_is_seen_by_a_concurrent_poll() {
        coming_online_races(|| crate::qsbr::poll(crate::qsbr::advance()));
    }

    /// The type-stable page hook's check, made when a page empties.
    #[test]
    fn loom_a_thread_coming_online_is_seen_by_any_thread_online() {
        coming_online_races(|| !any_thread_online());
    }
}
