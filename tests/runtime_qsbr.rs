//! QSBR behaviour under real threads. The tests share one process-wide
//! registry, so each takes `serial()` first.

#[path = "common/serial.rs"]
mod serial;
use serial::serial;

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use gcmalloc::qsbr::{self, retire};
use gcmalloc::{register_thread, ThreadState};

#[global_allocator]
static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;

/// Polls `cond` for up to 10 s (an outer bound against hangs, not a timing
/// assertion).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

const LIVE: u64 = 0x600D_600D_600D_600D;
const POISON: u64 = 0xDEAD_DEAD_DEAD_DEAD;

/// `value` is LIVE until the node is dropped; `id` is unique per node, so a
/// reader also notices a dropped node whose memory was reused for a new one.
struct Node {
    id: u64,
    value: u64,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn node() -> Node {
    Node { id: NEXT_ID.fetch_add(1, Ordering::Relaxed) as u64, value: LIVE }
}

static DROPPED: AtomicUsize = AtomicUsize::new(0);

impl Drop for Node {
    fn drop(&mut self) {
        // Poison, so a reader that still sees this node after its drop
        // notices (the memory itself stays mapped in mimalloc's pages).
        // SAFETY: writing our own field through a volatile store, so the
        // compiler cannot drop the "dead" write.
        unsafe {
            std::ptr::write_volatile(&mut self.value, POISON);
            std::ptr::write_volatile(&mut self.id, 0);
        }
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn readers_never_see_a_retired_node_dropped() {
    let _s = serial();
    const SLOTS: usize = 8;
    const READERS: usize = 3;
    const WRITES: usize = 40_000;
    let table: Arc<Vec<AtomicPtr<Node>>> =
        Arc::new((0..SLOTS).map(|_| AtomicPtr::new(Box::into_raw(Box::new(node())))).collect());
    DROPPED.store(0, Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let poisoned = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (table, done, poisoned) = (table.clone(), done.clone(), poisoned.clone());
            thread::spawn(move || {
                let me = register_thread();
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    for slot in table.iter() {
                        // SAFETY: the node is retired, not freed, while this
                        // thread has not quiesced since loading it.
                        let (id, v, id_again) = unsafe {
                            let n = slot.load(Ordering::Acquire);
                            let id = std::ptr::read_volatile(&(*n).id);
                            for _ in 0..32 {
                                std::hint::spin_loop(); // widen the window
                            }
                            (id, std::ptr::read_volatile(&(*n).value), std::ptr::read_volatile(&(*n).id))
                        };
                        if v != LIVE || id != id_again {
                            poisoned.fetch_add(1, Ordering::Relaxed);
                        }
                        reads += 1;
                    }
                    if reads % 64 == 0 {
                        me.quiescent();
                    }
                    if reads % 4096 == 0 {
                        me.detach();
                        thread::yield_now();
                        me.attach();
                    }
                }
            })
        })
        .collect();
    let writer = {
        let table = table.clone();
        thread::spawn(move || {
            let me = register_thread();
            for i in 0..WRITES {
                let fresh = Box::into_raw(Box::new(node()));
                let old = table[i % SLOTS].swap(fresh, Ordering::AcqRel);
                // SAFETY: `old` came from Box::into_raw and is now unlinked.
                retire(unsafe { Box::from_raw(old) });
                me.quiescent();
            }
        })
    };
    writer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(poisoned.load(Ordering::Relaxed), 0, "a reader saw a dropped node");
    // Every retired node is dropped once all threads are gone: the last
    // exits processed the orphan queue, and an unregistered thread's retire
    // processes it again.
    eventually("all retired nodes dropped", || {
        retire(Box::new(node()));
        DROPPED.load(Ordering::Relaxed) >= WRITES
    });
    assert_eq!(qsbr::stats().pending_items, 0);
    for slot in table.iter() {
        // SAFETY: the live nodes were never retired.
        drop(unsafe { Box::from_raw(slot.load(Ordering::Acquire)) });
    }
}

/// A thread that registers and exits (or leaks its handle) without ever
/// quiescing must not hold goals back afterwards.
#[test]
fn exiting_without_quiescing_holds_no_goal() {
    let _s = serial();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let me = register_thread();
        tx.send(()).unwrap();
        std::mem::forget(me); // even a leaked handle is unregistered at exit
    });
    rx.recv().unwrap();
    t.join().unwrap();
    let goal = qsbr::advance();
    assert!(qsbr::poll(goal), "an exited thread holds the goal: {:?}", qsbr::stats().laggard);
    assert_eq!(qsbr::stats().registered_threads, 0);
}

#[test]
fn exiting_thread_hands_its_items_to_the_orphan_queue() {
    let _s = serial();
    DROPPED.store(0, Ordering::Relaxed);
    let reader = register_thread(); // holds every goal until it quiesces
    thread::spawn(|| {
        let _me = register_thread();
        for _ in 0..10 {
            retire(Box::new(node()));
        }
    })
    .join()
    .unwrap();
    let s = qsbr::stats();
    assert_eq!((s.pending_items, DROPPED.load(Ordering::Relaxed)), (10, 0), "nothing freed early");
    reader.quiescent();
    // The orphans are processed by the next thread that processes its queue.
    retire(Box::new(node()));
    drop(reader);
    assert_eq!(DROPPED.load(Ordering::Relaxed), 11);
    assert_eq!(qsbr::stats().pending_items, 0);
}

#[test]
fn a_detached_thread_never_holds_a_goal() {
    let _s = serial();
    let me = register_thread();
    me.detach();
    let goal = qsbr::advance();
    assert!(qsbr::poll(goal));
    me.quiescent(); // a no-op while detached: must not bring it online
    let goal = qsbr::advance();
    assert!(qsbr::poll(goal));
    me.attach();
    let goal = qsbr::advance();
    assert!(!qsbr::poll(goal), "attached again: holds the goal until it quiesces");
    me.quiescent();
    assert!(qsbr::poll(goal));
}

#[test]
fn a_stalled_attached_thread_is_the_laggard() {
    let _s = serial();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let busy = thread::Builder::new()
        .name("stalled-reader".into())
        .spawn(move || {
            let me = register_thread();
            ready_tx.send(()).unwrap();
            released.recv().unwrap(); // attached, never quiescent
            me.quiescent();
        })
        .unwrap();
    ready.recv().unwrap();
    let healthy = register_thread();
    let t0 = Instant::now();
    let goal = qsbr::advance();
    healthy.quiescent();
    assert!(!qsbr::poll(goal));
    let lag = qsbr::stats().laggard.expect("someone holds the goal");
    assert_eq!(lag.thread().name(), Some("stalled-reader"));
    assert_eq!(lag.state(), ThreadState::Attached);
    assert!(lag.goals_behind() >= 1);
    assert!(lag.since().is_some_and(|s| s <= Instant::now() && s + Duration::from_secs(1) >= t0));
    assert!(lag.to_string().contains("stalled-reader"));
    release.send(()).unwrap();
    busy.join().unwrap();
    assert!(qsbr::poll(goal));
    healthy.quiescent();
    assert!(qsbr::stats().laggard.is_none());
}

/// One retire-heavy thread, one slow reader that quiesces only every ~100 µs:
/// the seal limits and the processing they trigger keep pending memory
/// bounded instead of growing with the total retired.
#[test]
fn pending_memory_stays_bounded_with_a_slow_reader() {
    let _s = serial();
    const BATCHES: usize = 200;
    const PER_BATCH: usize = 512; // 512 KiB per batch, 100 MiB in all
    let reader_rounds = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (rounds, stop) = (reader_rounds.clone(), stop.clone());
        thread::spawn(move || {
            let me = register_thread();
            while !stop.load(Ordering::Relaxed) {
                me.quiescent();
                rounds.fetch_add(1, Ordering::Release);
                thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let me = register_thread();
    let mut max_pending = 0;
    for _ in 0..BATCHES {
        for _ in 0..PER_BATCH {
            retire(Box::new([0u8; 1024]));
        }
        me.quiescent();
        // The reader quiesces at least once per batch (it is slow, not stuck).
        let seen = reader_rounds.load(Ordering::Acquire);
        eventually("reader quiesced", || reader_rounds.load(Ordering::Acquire) > seen);
        max_pending = max_pending.max(qsbr::stats().pending_bytes);
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    drop(me);
    // Bound: the 1 MiB seal limit plus the batch retired since the reader's
    // last quiescent state, with slack for one more of each; the total
    // retired is 100 MiB.
    let bound = 2 * ((1 << 20) + PER_BATCH * 1024);
    assert!(max_pending <= bound, "pending peaked at {max_pending} bytes (bound {bound})");
}

/// A node whose `Drop` retires the next one: a linked list freed by QSBR.
struct Link {
    next: Option<Box<Link>>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(next) = self.next.take() {
            gcmalloc::qsbr::retire(next);
        }
    }
}

/// A 100,000-node list retired from a `Drop` chain, by an unregistered
/// thread (every goal is reached at once) and by a registered one: each
/// nested retire is queued and taken by the loop already reclaiming, so the
/// stack stays flat (recursing through the reclaim overflowed a 2 MiB stack).
#[test]
fn retiring_a_long_chain_from_drops_does_not_grow_the_stack() {
    let _s = serial();
    const NODES: usize = 100_000;
    for registered in [false, true] {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d = dropped.clone();
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let me = registered.then(gcmalloc::register_thread);
                let mut head: Option<Box<Link>> = None;
                for _ in 0..NODES {
                    head = Some(Box::new(Link { next: head, dropped: d.clone() }));
                }
                gcmalloc::qsbr::retire(head.unwrap());
                drop(me); // unregistering hands the rest off and reaches every goal
            })
            .unwrap()
            .join()
            .unwrap();
        // Orphans left by the registered run are taken by the next retire or
        // quiescent state; an unregistered retire drives the orphan queue.
        gcmalloc::qsbr::retire(Box::new(0u8));
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), NODES, "registered: {registered}");
    }
}
