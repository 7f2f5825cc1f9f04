//! The thread runtime: registered threads, QSBR and stop-the-world.
//!
//! Layers, bottom up (imports point down only):
//!
//! * `queue`: the FIFO of retired items, sealed in chunks with a goal;
//! * `registry`: the slots of registered threads (their state word and QSBR
//!   sequence) and the current thread's registration;
//! * [`qsbr`]: the write sequence, goals, retire and reclaim;
//! * `world`: thread states and the stop-the-world protocol;
//! * `type_stable`: the hooks that tie delayed page reuse to QSBR goals;
//! * `thread`: [`ThreadHandle`](crate::ThreadHandle), the façade a thread
//!   holds; `fork`: the `pthread_atfork` handlers.

#[cfg(all(unix, not(loom)))]
pub(crate) mod fork;
pub mod qsbr;
pub(crate) mod queue;
pub(crate) mod registry;
pub(crate) mod thread;
pub(crate) mod type_stable;
pub(crate) mod world;
