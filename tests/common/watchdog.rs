//! Deadlines for tests of code that used to hang: a hang fails the test with
//! a message instead of stalling the test run.
#![allow(dead_code)] // each test binary uses a subset

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on a thread and joins it — thread-local destructors included —
/// failing (instead of hanging the test run) if that takes over `limit`.
pub fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let worker = thread::spawn(f);
    let (done, joined) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(worker.join());
    });
    match joined.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: did not finish within {limit:?} (a hang)"),
    }
}

/// Waits for the child process `pid` and returns its exit status (128 +
/// the signal if a signal ended it); kills it and fails if it takes over
/// `limit`.
#[cfg(unix)]
pub fn wait_child(pid: libc::pid_t, limit: Duration, what: &str) -> i32 {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child, without blocking.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            return if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
        }
        assert!(done == 0, "{what}: waitpid failed");
        if start.elapsed() > limit {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what}: the child hung for {limit:?}");
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Forks; the child runs `check` (its exit status: 0 is success) and the
/// parent returns the child's status, or fails if it takes over `limit`.
#[cfg(unix)]
pub fn in_child(limit: Duration, what: &str, check: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `check` and `_exit`s; the runtime under
    // test is what makes the rest of the process usable in the child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's atexit work.
        unsafe { libc::_exit(status) };
    }
    wait_child(pid, limit, what)
}

/// The text of a panic's payload ("" if it is not a string).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Keeps the panic hook quiet about panics a test provokes on purpose (whose
/// message contains one of `expected`); every other panic is reported as
/// before.
pub fn silence_expected_panics(expected: &'static [&'static str]) {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = panic_text(info.payload());
        if !expected.iter().any(|e| text.contains(e)) {
            report(info);
        }
    }));
}
