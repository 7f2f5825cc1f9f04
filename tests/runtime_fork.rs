//! `fork()` against the registered-thread runtime: the child used to inherit the registrations of
//! threads it does not have (0 of 1,000 retired objects reclaimed, and a
//! stop that hung), a stop held by another thread at the fork (the child
//! blocked forever), and during thread churn a page frozen "being freed".
//!
//! Each child runs its checks and exits with a status; the parent waits for
//! it under a deadline, so a hang fails the test instead of the test run.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

#[path = "common/watchdog.rs"]
mod watchdog;

use gcmalloc::{qsbr, register_thread};
use watchdog::in_child;

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, SeqCst);
    }
}

/// In a child: retire `n` objects and reclaim them all, register, and stop
/// the world; the status says which step failed.
fn child_runtime_works(registered_expected: usize) -> i32 {
    if qsbr::stats().registered_threads != registered_expected {
        eprintln!("child: {} registrations, expected {registered_expected}", qsbr::stats().registered_threads);
        return 1;
    }
    let me = register_thread();
    DROPPED.store(0, SeqCst);
    (0..1_000).for_each(|_| qsbr::retire(Box::new(Counted)));
    let start = Instant::now();
    while DROPPED.load(SeqCst) < 1_000 {
        if start.elapsed() > Duration::from_secs(3) {
            eprintln!("child: {} of 1000 retired objects reclaimed", DROPPED.load(SeqCst));
            return 2;
        }
        qsbr::retire(Box::new(0u8));
        me.quiescent();
    }
    let big = vec![1u8; 4 << 20];
    drop(big);
    if gcmalloc::stop_the_world_timeout(Duration::from_secs(2)).is_err() {
        return 3;
    }
    let helper = thread::spawn(|| drop(register_thread()));
    if me.blocking(|| helper.join()).is_err() {
        return 4;
    }
    0
}

/// Registered threads running attached in the parent do not exist in the
/// child: only the forking thread's registration may survive.
fn the_child_keeps_only_the_forking_thread() {
    let run = Arc::new(AtomicBool::new(true));
    let (ready, all_ready) = mpsc::channel();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (run, ready) = (Arc::clone(&run), ready.clone());
            thread::spawn(move || {
                let me = register_thread();
                qsbr::retire(Box::new([0u8; 100]));
                ready.send(()).unwrap();
                while run.load(SeqCst) {
                    me.quiescent();
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    (0..3).for_each(|_| all_ready.recv().unwrap());
    let me = register_thread();
    qsbr::retire(Box::new(Counted));
    let status = in_child(Duration::from_secs(20), "fork with registered threads", || child_runtime_works(1));
    assert_eq!(status, 0, "the child's runtime failed (status {status})");
    drop(me);
    // Unregistered forking thread too.
    let status = in_child(Duration::from_secs(20), "fork from an unregistered thread", || child_runtime_works(0));
    assert_eq!(status, 0, "the child's runtime failed (status {status})");
    run.store(false, SeqCst);
    threads.into_iter().for_each(|t| t.join().unwrap());
}

/// Another thread holds a stop when this thread forks: the fork waits for
/// it to end, and the child is never stopped by a thread it does not have.
fn forking_while_another_thread_holds_a_stop() {
    let (stopped, wait) = mpsc::channel();
    let holder = thread::spawn(move || {
        let world = gcmalloc::stop_the_world();
        stopped.send(()).unwrap();
        thread::sleep(Duration::from_millis(200));
        drop(world);
    });
    wait.recv().unwrap();
    let status = in_child(Duration::from_secs(20), "fork while a stop is held", || child_runtime_works(0));
    assert_eq!(status, 0, "the child's runtime failed (status {status})");
    holder.join().unwrap();
}

/// The forking thread holds a stop while other registered threads run: the
/// child drops its copy of the guard and restarts a world of one. A thread
/// that had just parked could hold a lock of the stop's at the fork (the
/// requester's, while it woke the requester), and 21-27 of 200 children
/// hung in the restart.
fn forking_while_holding_a_stop_then_restarting_in_the_child() {
    let run = Arc::new(AtomicBool::new(true));
    let mutators: Vec<_> = (0..3)
        .map(|_| {
            let run = Arc::clone(&run);
            thread::spawn(move || {
                let me = register_thread();
                while run.load(SeqCst) {
                    me.quiescent();
                }
            })
        })
        .collect();
    for _ in 0..200 {
        let world = gcmalloc::stop_the_world();
        let status = in_child(Duration::from_secs(10), "a child restarting a stop held at the fork", move || {
            drop(world);
            i32::from(gcmalloc::stop_the_world_timeout(Duration::from_secs(2)).is_err())
        });
        assert_eq!(status, 0, "the child's stop after the restart failed");
    }
    run.store(false, SeqCst);
    mutators.into_iter().for_each(|t| t.join().unwrap());
}

/// Forks while threads register, allocate, free across threads, retire and
/// exit: every child must be able to allocate, reclaim and stop.
fn forking_during_thread_churn() {
    let run = Arc::new(AtomicBool::new(true));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let run = Arc::clone(&run);
            thread::spawn(move || {
                while run.load(SeqCst) {
                    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 + i * 32]).collect();
                    thread::spawn(move || {
                        let me = register_thread();
                        drop(blocks); // frees into the other thread's pages
                        qsbr::retire(Box::new([1u8; 256]));
                        me.quiescent();
                        std::mem::forget(me);
                    })
                    .join()
                    .unwrap();
                }
            })
        })
        .collect();
    for _ in 0..100 {
        let status = in_child(Duration::from_secs(20), "fork during thread churn", || {
            let me = register_thread();
            (0..100).for_each(|_| qsbr::retire(Box::new([2u8; 64])));
            let blocks: Vec<Vec<u8>> = (0..1_000).map(|i| vec![0u8; 16 + i % 2048]).collect();
            drop(blocks);
            me.quiescent();
            i32::from(gcmalloc::stop_the_world_timeout(Duration::from_secs(2)).is_err())
        });
        assert_eq!(status, 0, "a child of a fork during churn failed (status {status})");
    }
    run.store(false, SeqCst);
    churn.into_iter().for_each(|t| t.join().unwrap());
}

/// Runs without libtest (`harness = false` in Cargo.toml): forking from a
/// test harness with idle worker threads would test the harness too.
#[cfg(unix)]
fn main() {
    let tests: [(&str, fn()); 4] = [
        ("the_child_keeps_only_the_forking_thread", the_child_keeps_only_the_forking_thread),
        ("forking_while_another_thread_holds_a_stop", forking_while_another_thread_holds_a_stop),
        (
            "forking_while_holding_a_stop_then_restarting_in_the_child",
            forking_while_holding_a_stop_then_restarting_in_the_child,
        ),
        ("forking_during_thread_churn", forking_during_thread_churn),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    for (name, test) in tests {
        if !name.contains(filter.as_str()) {
            continue;
        }
        test();
        println!("test {name} ... ok");
    }
}

#[cfg(not(unix))]
fn main() {}
