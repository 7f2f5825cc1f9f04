//! One test at a time, for tests that measure or change process-wide state
//! (the thread registry, the estimate, RSS) inside libtest's harness.
#![allow(dead_code)] // each test binary uses a subset

use std::sync::{Mutex, MutexGuard};

/// Holds the binary's serial lock; a test that panicked while holding it
/// does not poison the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
