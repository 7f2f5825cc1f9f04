//! Fuzzes the allocator and the thread runtime together: the input is a
//! program of operations run by three threads at once (byte `i` belongs to
//! thread `i % 3`), over allocation, cross-thread frees, registration,
//! quiescent states, detach/attach, handles kept in thread-locals, retire
//! (from `Drop` too), stop-the-world and estimate refreshes. A retired
//! object's `Drop` runs user code as a runtime's would: it retires its
//! child, drops the thread's last handle, registers, attaches, detaches,
//! blocks, stops the world or forks.
//!
//! Checked while running: a stop that returned `Ok` saw every other
//! attached thread parked (no thread is inside an attached read section
//! while it holds).
//!
//! After each program, with only this thread left:
//! - every retired object was dropped exactly once (a drop checks the object
//!   was live; the counts of made and dropped objects agree);
//! - no object was dropped while a registered, attached thread that loaded it
//!   could still read it (a reader checks the object it loaded is live);
//! - no registration is left, and nothing is pending in QSBR;
//! - `audit()` is exact: the counters equal the bytes the pages carry.
//!
//! `cargo +nightly fuzz run runtime fuzz/corpus/runtime` (see `.ci/run`).
#![no_main]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::RefCell;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

use gcmalloc::{qsbr, GcMalloc, ThreadHandle};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const THREADS: usize = 3;
const LIVE: u64 = 0x11FE_11FE_11FE_11FE;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A retired object: its drop checks it was live, marks it dead, and runs
/// user code that re-enters gcmalloc (see [`on_drop`]).
struct Tracked {
    _free_list_word: u64, // mimalloc writes its free-list link here once freed
    state: u64,
    child: Option<Box<Tracked>>,
    action: u8,
}

impl Tracked {
    fn new(child: bool, action: u8) -> Box<Tracked> {
        MADE.fetch_add(1, Ordering::Relaxed);
        let child = child.then(|| Tracked::new(false, action / 8));
        Box::new(Tracked { _free_list_word: 0, state: LIVE, child, action })
    }
}

/// Aborts (a crash libFuzzer reports) unless `ok`: a panic inside a
/// reclaimed `Drop` would be caught and counted by gcmalloc, unseen.
fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("invariant broken: {what}");
        std::process::abort();
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        check(self.state == LIVE, "a retired object was dropped twice");
        self.state = DEAD;
        DROPPED.fetch_add(1, Ordering::Relaxed);
        if let Some(child) = self.child.take() {
            qsbr::retire(child); // QSBR re-entered from a reclaimed object's Drop
        }
        on_drop(self.action % 8);
    }
}

/// What a reclaimed object's `Drop` does to the thread that reclaims it.
fn on_drop(action: u8) {
    match action {
        1 => drop(take_handle()), // the last handle, if it is the only one
        2 => push_handle(gcmalloc::register_thread()),
        3 => with_handle(ThreadHandle::attach),
        4 => with_handle(ThreadHandle::detach),
        5 => with_handle(|h| h.blocking(std::thread::yield_now)),
        6 => stop_and_check(),
        7 => fork_and_wait(),
        _ => {}
    }
}

/// Threads inside an attached read section (op 14): none while a stop holds.
static READING: AtomicUsize = AtomicUsize::new(0);

/// Stops the world and checks that no other attached thread is running.
fn stop_and_check() {
    let world = gcmalloc::stop_the_world();
    check(READING.load(Ordering::SeqCst) == 0, "a stop returned while an attached thread was reading");
    drop(world);
}

/// Forks; the child exits at once (it must get there: no lock left held).
fn fork_and_wait() {
    #[cfg(unix)]
    {
        // SAFETY: the child only calls `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child without running any exit work.
            unsafe { libc::_exit(0) };
        }
        check(pid > 0, "fork failed");
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        check(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child of a fork exits");
    }
}

thread_local! {
    /// This thread's handles, newest last: here rather than on `run`'s stack
    /// so that a reclaimed `Drop` can drop or use them.
    static HANDLES: RefCell<Vec<ThreadHandle>> = const { RefCell::new(Vec::new()) };
}

/// Takes the newest handle (None if there is none, or while `HANDLES` is
/// borrowed or torn down: a `Drop` run from its own teardown).
fn take_handle() -> Option<ThreadHandle> {
    HANDLES.try_with(|h| h.try_borrow_mut().ok()?.pop()).ok().flatten()
}

/// Keeps `handle` in `HANDLES` (drops it instead while `HANDLES` is borrowed
/// or torn down).
fn push_handle(handle: ThreadHandle) {
    let _ = HANDLES.try_with(|h| {
        if let Ok(mut v) = h.try_borrow_mut() {
            v.push(handle);
        }
    });
}

/// Runs `f` on the newest handle, taken out of `HANDLES` meanwhile (a
/// `Drop` that `f` runs may use `HANDLES` too).
fn with_handle(f: impl FnOnce(&ThreadHandle)) {
    if let Some(h) = take_handle() {
        f(&h);
        push_handle(h);
    }
}

/// Whether the newest handle's registration is attached (so this thread may
/// read shared memory without a lock).
fn attached() -> bool {
    HANDLES.with(|h| {
        h.borrow().last().is_some_and(|h| {
            let state = format!("{h:?}");
            state.contains("Some(Attached)") || state.contains("Some(StopRequested)")
        })
    })
}

/// Drops every handle of this thread (and those a `Drop` run meanwhile
/// registers).
fn drop_handles() {
    while let Some(h) = take_handle() {
        drop(h);
    }
}

/// The shared object readers load and writers replace (and retire).
static SHARED: AtomicPtr<Tracked> = AtomicPtr::new(std::ptr::null_mut());
/// Blocks handed between threads, freed by whoever takes them.
static MAILBOX: Mutex<Vec<(usize, Layout)>> = Mutex::new(Vec::new());

thread_local! {
    /// Handles kept here are dropped at thread exit, after gcmalloc's own
    /// exit guard may have ended their registration.
    static KEPT: RefCell<Vec<ThreadHandle>> = const { RefCell::new(Vec::new()) };
}

fn layout(bytes: &mut impl Iterator<Item = u8>) -> Layout {
    let a = bytes.next().unwrap_or(0);
    let b = bytes.next().unwrap_or(0);
    // Log-uniform sizes up to 2 MiB; alignments up to 4 KiB.
    let size = ((b as usize) << 8 | a as usize) >> (a % 16 + 2) << (a % 22);
    let size = size.clamp(1, 2 << 20);
    Layout::from_size_align(size, 1 << (b % 13)).unwrap()
}

/// Runs one thread's part of the program.
fn run(ops: Vec<u8>) {
    let mut bytes = ops.into_iter();
    let mut blocks: Vec<(usize, Layout)> = Vec::new();
    while let Some(op) = bytes.next() {
        match op % 18 {
            0 | 1 => {
                let l = layout(&mut bytes);
                // SAFETY: a non-zero size.
                let p = unsafe { GLOBAL.alloc(l) };
                if !p.is_null() {
                    // SAFETY: `p` has `l.size()` writable bytes.
                    unsafe { p.write_bytes(op, l.size().min(64)) };
                    blocks.push((p as usize, l));
                }
            }
            2 => {
                if let Some((p, l)) = blocks.pop() {
                    // SAFETY: allocated by GLOBAL with `l`, freed once.
                    unsafe { GLOBAL.dealloc(p as *mut u8, l) };
                }
            }
            3 => {
                if let Some((p, l)) = blocks.pop() {
                    let new = layout(&mut bytes).size();
                    // SAFETY: allocated by GLOBAL with `l`; `new` is non-zero.
                    let q = unsafe { GLOBAL.realloc(p as *mut u8, l, new) };
                    if q.is_null() {
                        blocks.push((p, l));
                    } else {
                        blocks.push((q as usize, Layout::from_size_align(new, l.align()).unwrap()));
                    }
                }
            }
            4 => {
                if let Some(b) = blocks.pop() {
                    MAILBOX.lock().unwrap().push(b);
                }
            }
            5 => {
                if let Some((p, l)) = MAILBOX.lock().unwrap().pop() {
                    // SAFETY: another thread's block, handed over: freed once.
                    unsafe { GLOBAL.dealloc(p as *mut u8, l) };
                }
            }
            6 => push_handle(gcmalloc::register_thread()),
            7 => drop(take_handle()),
            8 => {
                if let Some(h) = take_handle() {
                    KEPT.with(|k| k.borrow_mut().push(h));
                }
            }
            9 => with_handle(ThreadHandle::quiescent),
            10 => with_handle(ThreadHandle::detach),
            11 => with_handle(ThreadHandle::attach),
            12 | 13 => {
                let action = bytes.next().unwrap_or(0);
                let old = SHARED.swap(Box::into_raw(Tracked::new(op == 13, action)), Ordering::AcqRel);
                if !old.is_null() {
                    // SAFETY: unlinked above; came from Box::into_raw.
                    qsbr::retire(unsafe { Box::from_raw(old) });
                }
            }
            14 => {
                // Only an attached registered thread may read without a lock.
                if attached() {
                    READING.fetch_add(1, Ordering::SeqCst);
                    let p = SHARED.load(Ordering::Acquire);
                    // SAFETY: QSBR keeps a retired object alive until this
                    // thread's next quiescent state or detach.
                    if let Some(t) = unsafe { p.as_ref() } {
                        // A read section long enough for a stop to overlap.
                        for _ in 0..256 {
                            // SAFETY: `t` stays live until this thread's next
                            // quiescent state (what the assert checks).
                            let state = unsafe { std::ptr::read_volatile(&t.state) };
                            assert_eq!(state, LIVE, "an object was dropped while a reader held it");
                        }
                    }
                    READING.fetch_sub(1, Ordering::SeqCst);
                }
            }
            15 => {
                let l = layout(&mut bytes);
                // SAFETY: a non-zero size.
                let p = unsafe { GLOBAL.alloc(l) };
                if !p.is_null() {
                    // SAFETY: a fresh gcmalloc block, freed only here.
                    unsafe { qsbr::retire_block(p) };
                }
            }
            16 => {
                let world = gcmalloc::stop_the_world();
                assert_eq!(READING.load(Ordering::SeqCst), 0, "a stop returned while an attached thread was reading");
                if op & 0x20 != 0 {
                    world.refresh_estimate();
                }
            }
            _ => gcmalloc::refresh_estimate(),
        }
    }
    for (p, l) in blocks {
        // SAFETY: allocated by GLOBAL with `l`, freed once.
        unsafe { GLOBAL.dealloc(p as *mut u8, l) };
    }
    drop_handles();
}

fuzz_target!(|data: &[u8]| {
    let made = MADE.load(Ordering::Relaxed);
    let dropped = DROPPED.load(Ordering::Relaxed);
    assert_eq!(made, dropped, "an earlier program left objects behind");
    let programs: Vec<Vec<u8>> =
        (0..THREADS).map(|t| data.iter().skip(t).step_by(THREADS).copied().collect()).collect();
    let threads: Vec<_> = programs.into_iter().map(|ops| std::thread::spawn(move || run(ops))).collect();
    for t in threads {
        t.join().unwrap();
    }
    for (p, l) in MAILBOX.lock().unwrap().drain(..) {
        // SAFETY: a block no thread took: freed once.
        unsafe { GLOBAL.dealloc(p as *mut u8, l) };
    }
    let last = SHARED.swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !last.is_null() {
        // SAFETY: unlinked above; came from Box::into_raw.
        qsbr::retire(unsafe { Box::from_raw(last) });
    }
    // What the reclaims on this thread registered ends here.
    drop_handles();
    // No thread is registered: a registration's end reaches every goal.
    assert_eq!(qsbr::stats().registered_threads, 0, "a registration outlived its thread");
    drop(gcmalloc::register_thread());
    drop_handles();
    let stats = qsbr::stats();
    assert_eq!(stats.pending_items, 0, "retired items left pending: {stats:?}");
    assert_eq!(MADE.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed), "a retired object was never dropped");
    drop(gcmalloc::stop_the_world());
    // SAFETY: this is the only thread that allocates with gcmalloc now.
    let audit = unsafe { gcmalloc::audit() };
    assert_eq!(audit.counted, audit.carried, "the accounting drifted: {audit:?}");
});
