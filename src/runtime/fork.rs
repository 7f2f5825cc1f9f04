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
//!   stop would) and the turn's lock, then the registry lock, the orphan
//!   queue's lock and the stop requester's lock, in that order; then the
//!   accounting's handler (`csrc/accounting.c`, installed with the first
//!   heap, whether or not a thread registers) takes the heap list's lock.
//!   It runs no user code: taking the turn detaches the thread without
//!   reclaiming anything (a reclaimed `Drop` that forked again would
//!   deadlock in libc's fork lock);
//! * **parent**: releases them in reverse order;
//! * **child**: frees every registration but the forking thread's (their
//!   pending items are leaked: a thread may have been mid-push), resets
//!   stop-the-world to a world of one (a stop the forking thread holds, or
//!   is making from a stall report, goes on without the threads that are
//!   not there), then releases them.
//!
//! The stop turn is not taken when the forking thread holds the stop
//! itself: its `StopTheWorld` restarts a world of one in the child.
//! mimalloc's own internal locks are stock mimalloc's concern (it does not
//! register fork handlers); gcmalloc's patches no longer leave a "being
//! freed" mark on abandoned pages that a fork could freeze.

use std::cell::RefCell;
use std::sync::{MutexGuard, Once};

use crate::runtime::qsbr::{self, domain};
use crate::runtime::registry::{current_slot, registry, state, Inner as RegistryInner};
use crate::runtime::world::{self, ForkHold};
use crate::sync::Ordering;

/// What the forking thread holds between the prepare and the after-fork
/// handlers.
struct Held {
    world: ForkHold,
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
    let turn = world::fork_take_turn();
    let registry = registry().lock();
    let orphans = domain().lock_orphans();
    let world = world::fork_lock_requester(turn);
    let mut held = Some(Held { world, registry, orphans });
    if HELD.try_with(|h| *h.borrow_mut() = held.take()).is_err() {
        // A fork from a thread-local destructor: nothing can be kept across
        // it, so nothing is held (the child is then as after a plain fork).
        if let Some(Held { world, registry, orphans }) = held {
            drop(orphans);
            drop(registry);
            world::fork_release(world);
        }
    }
}

extern "C" fn parent() {
    let Ok(Some(held)) = HELD.try_with(|h| h.borrow_mut().take()) else { return };
    let Held { world, registry, orphans } = held;
    release(world, registry, orphans, |world, _| world::fork_release(world));
}

extern "C" fn child() {
    let Ok(Some(held)) = HELD.try_with(|h| h.borrow_mut().take()) else { return };
    let Held { world, registry, orphans } = held;
    release(world, registry, orphans, |world, registry| {
        free_missing_threads(registry);
        world::fork_child(world, registry);
    });
}

/// Releases what `prepare` took, in reverse order; `world_release` releases
/// the stop-the-world part, last, with the registry lock still held.
fn release(
    world: ForkHold,
    mut registry: MutexGuard<'static, RegistryInner>,
    orphans: MutexGuard<'static, crate::runtime::queue::Fifo>,
    world_release: impl FnOnce(ForkHold, &mut MutexGuard<'static, RegistryInner>),
) {
    drop(orphans);
    world_release(world, &mut registry);
    drop(registry);
}

/// In a forked child, where only the forking thread exists: frees every
/// other thread's slot, so no registration of a thread that is not there
/// holds a goal or a stop back. Their pending items are leaked, unread. The
/// caller holds the registry lock (`inner`).
fn free_missing_threads(inner: &mut MutexGuard<'static, RegistryInner>) {
    let me = current_slot();
    for slot in registry().slots() {
        let free = slot.state.load(Ordering::Acquire) == state::FREE;
        if free || me.is_some_and(|m| core::ptr::eq(m, slot)) {
            continue;
        }
        // SAFETY: the slot's owner does not exist in this process (the child
        // of a fork has only the forking thread).
        unsafe { qsbr::forget_missing_thread(slot) };
        registry().free_orphaned(slot, inner);
    }
}
