//! A registered thread that holds QSBR goals back is reported once per
//! episode, past the delay and the floor set by `qsbr::set_lag_report`, and
//! named with the memory that waits for it.

#[path = "common/runner.rs"]
mod runner;
#[path = "common/stuck.rs"]
mod stuck;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gcmalloc::qsbr::{self, LagReport};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

static REPORTS: AtomicUsize = AtomicUsize::new(0);
static LAST: Mutex<Option<(Option<String>, usize)>> = Mutex::new(None);

fn record(lag: &LagReport) {
    REPORTS.fetch_add(1, Relaxed);
    *LAST.lock().unwrap() = Some((lag.laggard.thread().name().map(str::to_owned), lag.held_bytes()));
}

/// Retires 64 KiB items and reaches quiescent states on this thread for
/// `time`: the checks a report needs happen at its quiescent states.
fn retire_and_quiesce_for(time: Duration) {
    let me = gcmalloc::register_thread();
    let start = Instant::now();
    while start.elapsed() < time {
        qsbr::retire_with_size(Box::new(vec![0u8; 64 << 10]), 64 << 10);
        me.quiescent();
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn a_stuck_thread_is_reported_once_per_episode() {
    qsbr::set_lag_report(Duration::from_millis(200), 1 << 20, record);
    stuck::with_a_stuck_thread(|_| retire_and_quiesce_for(Duration::from_millis(1500)));
    assert_eq!(REPORTS.load(Relaxed), 1, "one episode, reported once (every check sees it)");
    let (name, held) = LAST.lock().unwrap().clone().expect("a report");
    assert_eq!(name.as_deref(), Some("stuck"), "the report names the stuck thread");
    assert!(held >= 1 << 20, "the report shows the bytes held back: {held}");

    retire_and_quiesce_for(Duration::from_millis(500));
    assert_eq!(REPORTS.load(Relaxed), 1, "no laggard, no report");

    stuck::with_a_stuck_thread(|_| retire_and_quiesce_for(Duration::from_millis(1500)));
    assert_eq!(REPORTS.load(Relaxed), 2, "a new episode is reported again");
}

fn below_the_floor_nothing_is_reported() {
    REPORTS.store(0, Relaxed);
    qsbr::set_lag_report(Duration::from_millis(200), usize::MAX, record);
    stuck::with_a_stuck_thread(|_| retire_and_quiesce_for(Duration::from_millis(800)));
    assert_eq!(REPORTS.load(Relaxed), 0, "held memory under the floor is no episode to report");
}

fn main() {
    runner::run(&[
        ("a_stuck_thread_is_reported_once_per_episode", a_stuck_thread_is_reported_once_per_episode),
        ("below_the_floor_nothing_is_reported", below_the_floor_nothing_is_reported),
    ]);
}
