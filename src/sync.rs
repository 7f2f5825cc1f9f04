//! The synchronization primitives of QSBR and stop-the-world, swapped for
//! [loom]'s model-checked twins under `cfg(loom)`.
//!
//! Everything in `qsbr/`, `registry.rs`, `thread.rs` and `world.rs` imports
//! its atomics, cells, locks, threads and thread-locals from here, never from `std` directly, so
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_...` explores every
//! interleaving of the real protocol code (see `tests/loom_*.rs`).
//!
//! [loom]: https://docs.rs/loom

#[cfg(loom)]
pub(crate) use loom::{
    lazy_static,
    sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::{Condvar, Mutex, MutexGuard},
    thread,
};

#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    sync::{Condvar, Mutex, MutexGuard},
    thread,
};

#[cfg(loom)]
pub(crate) use loom::cell::{Cell, UnsafeCell};

#[cfg(not(loom))]
pub(crate) use core::cell::Cell;

/// `core::cell::UnsafeCell` behind loom's closure API, so that the same code
/// compiles against loom's cell, which checks every owner-only and
/// under-lock access for races in the models.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> UnsafeCell<T> {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the value.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a unique pointer to the value.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

// loom's `try_lock` returns std's error type.
pub(crate) use std::sync::TryLockError;

/// Blocks the current thread until it is unparked or `timeout` passes
/// (spurious returns allowed: callers re-check their condition in a loop).
/// loom has no timed park; a yield there lets the model explore the
/// "timed out before the wake-up" interleavings instead.
pub(crate) fn park_timeout(timeout: core::time::Duration) {
    #[cfg(loom)]
    {
        let _ = timeout;
        thread::yield_now();
    }
    #[cfg(not(loom))]
    thread::park_timeout(timeout);
}

/// Locks `m`, ignoring poisoning: every critical section in this crate keeps
/// its data consistent at each step, so a panic elsewhere leaves it usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Defines a constructor that is a `const fn` with std primitives (so the
/// global state is a plain `static`, with no lazy-initialization check on the
/// `quiescent()` fast path) and a plain `fn` under loom, whose primitives must
/// be created inside each model execution.
macro_rules! loom_const_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident() -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$m])* $vis const fn $name() -> $ret $body
        #[cfg(loom)]
        $(#[$m])* $vis fn $name() -> $ret $body
    };
}
pub(crate) use loom_const_fn;

/// Declares `fn $getter() -> &'static $ty`, backed by a plain `static` (std)
/// or by a `loom::lazy_static` that is created afresh in every model execution.
macro_rules! global {
    ($getter:ident: $ty:ty = $init:expr) => {
        #[cfg(not(loom))]
        pub(crate) fn $getter() -> &'static $ty {
            static GLOBAL: $ty = $init;
            &GLOBAL
        }
        #[cfg(loom)]
        pub(crate) fn $getter() -> &'static $ty {
            $crate::sync::lazy_static! {
                static ref GLOBAL: $ty = $init;
            }
            &GLOBAL
        }
    };
}
pub(crate) use global;

/// `thread_local!` with const initializers (no lazy-init check, and no
/// allocation on first access); loom's macro takes plain initializers.
macro_rules! const_thread_local {
    ($($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;)*) => {
        #[cfg(not(loom))]
        std::thread_local! { $($(#[$m])* $vis static $name: $ty = const { $init };)* }
        #[cfg(loom)]
        loom::thread_local! { $($(#[$m])* $vis static $name: $ty = $init;)* }
    };
}
pub(crate) use const_thread_local;
