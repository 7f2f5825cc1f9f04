//! `fork()`: the child keeps exactly the forking thread's registration.
//!
//! A child process has one thread, the one that called `fork`, but a copy
//! of every registration and lock of the parent. Left alone, the
//! registrations of threads that are not there hold every QSBR goal back
//! forever (nothing retired is ever reclaimed, a stop waits for them), and a
//! lock that another thread held at the fork stays held. The `pthread_atfork`
//! handlers installed with the first registration make the fork a point
//! where none of that is in flight:
//!
//! * **prepare** (forking thread, before the fork): takes the stop turn (so
//!   no other thread's stop is in progress; it waits for one to end, as a
//!   stop would), then the registry lock, the orphan queue's lock and the
//!   accounting's heap-list lock (`mi_acct_fork_lock`), in that order;
//! * **parent**: releases them in reverse order;
//! * **child**: frees every registration but the forking thread's (their
//!   pending items are leaked: a thread may have been mid-push), then
//!   releases them.
//!
//! The stop turn is not taken when the forking thread holds the stop
//! itself: its `StopTheWorld` restarts a world of one in the child.
//! mimalloc's own internal locks are stock mimalloc's concern (it does not
//! register fork handlers); gcmalloc's patches no longer leave a "being
//! freed" mark on abandoned pages that a fork could freeze.

use std::cell::RefCell;
use std::sync::{MutexGuard, Once};

use crate::ffi;
use crate::runtime::qsbr::domain;
use crate::runtime::registry::{current_slot, registry, Inner as RegistryInner};
use crate::runtime::world;

/// What the forking thread holds between the prepare and the after-fork
/// handlers.
struct Held {
    turn: bool,
    registry: MutexGuard<'static, RegistryInner>,
    orphans: MutexGuard<'static, crate::runtime::queue::Fifo>,
}

std::thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Installs the handlers, once per process.
pub(crate) fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are `extern "C"` functions that never unwind
        // (they take locks and reset plain state), as pthread_atfork needs.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc != 0 {
            eprintln!(
                "gcmalloc: pthread_atfork failed ({rc}); a forked child may inherit other threads' registrations"
            );
        }
    });
}

extern "C" fn prepare() {
    let turn = world::take_turn_for_fork();
    let registry = registry().lock();
    let orphans = domain().lock_orphans();
    // SAFETY: takes our accounting lock; released by `parent` or `child`.
    unsafe { ffi::mi_acct_fork_lock(true) };
    let mut held = Some(Held { turn, registry, orphans });
    if HELD.try_with(|h| *h.borrow_mut() = held.take()).is_err() {
        // A fork from a thread-local destructor: nothing can be kept across
        // it, so nothing is held (the child is then as after a plain fork).
        drop(held);
        // SAFETY: taken above, on this thread.
        unsafe { ffi::mi_acct_fork_lock(false) };
        if turn {
            world::release_turn();
        }
    }
}

extern "C" fn parent() {
    release(|_| {});
}

extern "C" fn child() {
    release(|held| {
        let me = current_slot();
        domain().keep_only(me, &mut held.registry);
        held.registry.stopping = false;
    });
}

/// Runs `fix` on what `prepare` took, then releases it in reverse order.
fn release(fix: impl FnOnce(&mut Held)) {
    let Ok(Some(mut held)) = HELD.try_with(|h| h.borrow_mut().take()) else { return };
    fix(&mut held);
    // SAFETY: `prepare` took it on this thread.
    unsafe { ffi::mi_acct_fork_lock(false) };
    let Held { turn, registry, orphans } = held;
    drop(orphans);
    drop(registry);
    if turn {
        world::release_turn();
    }
}
