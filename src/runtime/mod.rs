//! The thread runtime: registered threads, QSBR and stop-the-world.
//!
//! # The rule: user code runs with nothing held
//!
//! **User code — a reclaimed object's `Drop`, a stall-report callback —
//! never runs while gcmalloc holds a slot reference or a lock.** It may call
//! any public function: drop the thread's last handle, register again,
//! attach, detach, retire, stop the world, fork. So:
//!
//! * Reclaiming takes the due items off their queue into a batch on the
//!   stack (no allocation: the quiescent path must not allocate), lets go
//!   of the queue — the thread's slot, or the orphan queue's lock — and
//!   only then runs the `Drop`s. A thread's reclaiming loop re-validates its
//!   registration (the slot's generation) before every batch: a `Drop` may
//!   have ended it, and the slot may be another thread's by then.
//! * Operations change state first and call out last: unregistering ends
//!   the registration (every handle of it a no-op from then on), detaches,
//!   hands the queue to the orphan queue and frees the slot, and only then
//!   reclaims due orphans; a detach hands off, then reclaims.
//! * Some paths call out nowhere: a stop's wait for its turn detaches its
//!   caller without reclaiming, so the slot it re-attaches is still its own
//!   and a `fork`'s prepare handler (which takes the turn the same way)
//!   never runs a `Drop`.
//!
//! Deferring registration changes made inside a reclaim until the outermost
//! reclaim returns was the alternative; it would make a `Drop` that
//! unregisters and registers again see a registration that has not ended,
//! and a stale handle act. Releasing everything first keeps every call's
//! meaning the same inside a `Drop` as outside it.
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
