//! The loom models, one module per protocol:
//!
//! - `qsbr`: a retired node is never dropped while a reader may still read
//!   it; offline/online transitions; goal caching; the exit hand-off with a
//!   retire from a reclaimed object's `Drop`.
//! - `world`: while a stop is held no registered thread runs attached; no
//!   interleaving deadlocks; a handle that outlives its registration never
//!   acts on the slot's next owner.
//! - `accounting`: the abandoned-page protocol of the live-bytes accounting
//!   (mirrored from the C, which loom cannot run).
//! - `trigger`: `GcTrigger`'s deferral never hides seen allocations.
//!
//! Inside the crate, `registry.rs`'s slot cells and `sync.rs`'s atomics are
//! loom's under `cfg(loom)`, so owner-only and under-lock accesses are checked
//! too. The page hook's check is modelled beside it (`--lib loom_`).
//!
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom`
#![cfg(loom)]

mod accounting;
mod qsbr;
mod trigger;
mod world;

/// Explores every interleaving of `f` with up to four preemptions: seconds
/// per model, where a bound of 2 missed a seeded deadlock.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(4);
    builder.check(f);
}
