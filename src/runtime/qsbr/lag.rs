//! Reports of the *laggard*, a registered thread that holds QSBR goals back
//! (attached, no quiescent state): once per episode, once it has held them
//! back for a while and the memory waiting for it passed a floor.
//!
//! Nothing here runs in an allocator hook. [`AdvanceLog::record`] notes, at
//! most every [`CHECK_EVERY`], that a check is due (one atomic store); the
//! check itself, and the report (user code), run at the end of the next
//! [`ThreadHandle::quiescent`](crate::ThreadHandle::quiescent) or retire of
//! any thread, with no slot borrowed and no lock held. An episode is the
//! laggard's stale sequence: reported once, and again only once it has
//! quiesced and fallen behind anew.
//!
//! [`AdvanceLog::record`]: super::seq::AdvanceLog::record

use core::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::seq::INCR;
use super::Laggard;

/// The least time between two checks (diagnostics, not a protocol: std
/// atomics even under loom, like the advance log).
pub(crate) const CHECK_EVERY: Duration = Duration::from_millis(100);

/// What [`set_lag_report`] reports: the laggard and the memory that waits
/// for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LagReport {
    /// The thread that holds the oldest goal back.
    pub laggard: Laggard,
    /// Retired items' bytes waiting for goals ([`super::Stats::pending_bytes`]).
    pub pending_bytes: usize,
    /// Emptied pages waiting for goals ([`super::Stats::delayed_page_bytes`]).
    pub delayed_page_bytes: usize,
}

impl LagReport {
    /// What the laggard holds back: retired items and delayed pages.
    pub fn held_bytes(&self) -> usize {
        self.pending_bytes.saturating_add(self.delayed_page_bytes)
    }
}

impl fmt::Display for LagReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread {} and {} MiB wait for it ({} MiB retired, {} MiB of delayed pages). A registered thread must \
             call quiescent() regularly and detach around blocking calls (ThreadHandle::blocking)",
            self.laggard,
            self.held_bytes() >> 20,
            self.pending_bytes >> 20,
            self.delayed_page_bytes >> 20
        )
    }
}

#[derive(Clone, Copy)]
struct Config {
    after: Duration,
    floor: usize,
    report: fn(&LagReport),
}

/// Read once per check (a std mutex: diagnostics, never in a hook).
static CONFIG: std::sync::Mutex<Config> =
    std::sync::Mutex::new(Config { after: Duration::from_secs(10), floor: 64 << 20, report: report_on_stderr });
/// Set when a check is due; taken by the thread that checks.
static DUE: AtomicBool = AtomicBool::new(false);
/// When a check was last made due (nanoseconds of the advance log's clock).
static LAST_DUE: AtomicU64 = AtomicU64::new(0);
/// The stale sequence of the episode last reported (0: none).
static REPORTED: AtomicU64 = AtomicU64::new(0);

fn report_on_stderr(lag: &LagReport) {
    eprintln!("gcmalloc: {lag}");
}

/// Sets how gcmalloc reports a registered thread that holds QSBR goals back:
/// once it has been behind for `after` (default 10 s) while at least
/// `floor_bytes` (default 64 MiB) of retired items and delayed pages wait for
/// it, `report` is called once for that episode (default: one line on
/// stderr). A later episode, after the thread quiesced, is reported again.
///
/// `report` runs at the end of some thread's
/// [`quiescent`](crate::ThreadHandle::quiescent) or [`retire`](super::retire),
/// with no lock of gcmalloc's held; it may call any of gcmalloc's functions.
/// The figures come from [`stats`](super::stats). `Duration::ZERO` and a
/// floor of 0 report every episode at once; `Duration::MAX` never reports.
///
/// ```
/// use std::time::Duration;
/// fn log(lag: &gcmalloc::qsbr::LagReport) {
///     eprintln!("mutator stuck: {lag}");
/// }
/// gcmalloc::qsbr::set_lag_report(Duration::from_secs(5), 256 << 20, log);
/// ```
pub fn set_lag_report(after: Duration, floor_bytes: usize, report: fn(&LagReport)) {
    *CONFIG.lock().unwrap_or_else(|e| e.into_inner()) = Config { after, floor: floor_bytes, report };
}

/// From the advance log, at an advance (`now`: its clock, in nanoseconds):
/// makes a check due at most every [`CHECK_EVERY`]. One load, and a store
/// every 100 ms; no allocation, so callable from the page hooks.
pub(crate) fn note_advance(now: u64) {
    let last = LAST_DUE.load(Relaxed);
    if now.wrapping_sub(last) >= CHECK_EVERY.as_nanos() as u64
        && LAST_DUE.compare_exchange(last, now, Relaxed, Relaxed).is_ok()
    {
        DUE.store(true, Relaxed); // Relaxed: a hint; the check reads its own snapshot
    }
}

/// Checks for a laggard to report if a check is due; call only where no
/// slot is borrowed and no lock held (the report is user code).
#[inline]
pub(crate) fn check_if_due() {
    // Diagnostics stay out of the loom models (they would add the registry
    // lock of `stats` to every interleaving of a quiescent state).
    if !cfg!(loom) && DUE.load(Relaxed) {
        check();
    }
}

#[cold]
fn check() {
    if !DUE.swap(false, Relaxed) {
        return; // another thread took it
    }
    let config = *CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    let stats = super::stats();
    let Some(laggard) = stats.laggard else { return };
    let behind_for = laggard.since().map_or(Duration::ZERO, |t| t.elapsed());
    let held = stats.pending_bytes.saturating_add(stats.delayed_page_bytes);
    if behind_for < config.after || held < config.floor {
        return;
    }
    let episode = stats.write_seq.wrapping_sub(laggard.goals_behind().wrapping_mul(INCR));
    if REPORTED.swap(episode, Relaxed) == episode {
        return; // reported already
    }
    (config.report)(&LagReport {
        laggard,
        pending_bytes: stats.pending_bytes,
        delayed_page_bytes: stats.delayed_page_bytes,
    });
}
