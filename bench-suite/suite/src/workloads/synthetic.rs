//! Models of mimalloc-bench's allocation tests (the originals are C; these
//! keep their allocation patterns, not their code).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex};

use super::{block, Ctx, Rng};

type Blocks = Vec<Box<[u8]>>;

/// Channels from each thread to the next, in a ring: what a thread sends is
/// freed by the next one.
struct Ring {
    senders: Vec<mpsc::Sender<Blocks>>,
    receivers: Vec<Mutex<mpsc::Receiver<Blocks>>>,
}

impl Ring {
    fn new(threads: usize) -> Ring {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel()).unzip();
        Ring { senders, receivers: receivers.into_iter().map(Mutex::new).collect() }
    }

    /// Thread `t`'s sender to the next thread, and its own inbox.
    fn ends(&self, t: usize) -> (mpsc::Sender<Blocks>, std::sync::MutexGuard<'_, mpsc::Receiver<Blocks>>) {
        let next = self.senders[(t + 1) % self.senders.len()].clone();
        (next, self.receivers[t].lock().expect("one owner per inbox"))
    }
}

/// larson: a server. Each thread owns slots of blocks of 16-1,024 bytes and
/// replaces random ones; after each round its slots go to the next thread,
/// which frees them (Larson and Krishnan's thread hand-off: cross-thread
/// frees).
pub fn larson(ctx: &Ctx) -> u64 {
    const SLOTS: usize = 1000;
    let rounds = 8;
    let per_round = ctx.ops(16_000_000) / ctx.threads / rounds;
    let ring = Ring::new(ctx.threads);
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 1);
        let (next, inbox) = ring.ends(t);
        let mut slots: Vec<Box<[u8]>> = (0..SLOTS).map(|_| block(rng.range(16, 1024), 1)).collect();
        let mut sum = 0u64;
        for _ in 0..rounds {
            for i in 0..per_round {
                let k = rng.range(0, SLOTS - 1);
                slots[k] = block(rng.range(16, 1024), k as u8);
                sum = sum.wrapping_add(slots[k].len() as u64);
                if i % 256 == 0 {
                    (ctx.hooks.tick)();
                }
            }
            next.send(std::mem::take(&mut slots)).expect("the next thread lives");
            // Take the previous thread's slots; they are freed here as replaced.
            slots = inbox.recv().expect("the previous thread lives");
        }
        sum
    })
}

/// xmalloc-test: producers allocate, consumers free (every block crosses
/// threads), in batches through a shared queue. With one thread, it frees
/// its own batches.
pub fn xmalloc(ctx: &Ctx) -> u64 {
    let batches = ctx.ops(40_000);
    let queue: Mutex<Vec<Vec<Box<[u8]>>>> = Mutex::new(Vec::new());
    let producers = ctx.threads.div_ceil(2);
    let producing = AtomicUsize::new(producers);
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 7);
        let mut sum = 0u64;
        if t < producers {
            for i in 0..batches / producers {
                let batch: Vec<Box<[u8]>> = (0..64).map(|_| block(rng.log_range(8, 4096), i as u8)).collect();
                sum = sum.wrapping_add(batch.iter().map(|b| b.len() as u64).sum::<u64>());
                queue.lock().expect("no panic").push(batch);
                if ctx.threads == 1 {
                    drop(queue.lock().expect("no panic").pop());
                }
                (ctx.hooks.tick)();
            }
            producing.fetch_sub(1, Ordering::Release);
        }
        // Consume until the producers are done and the queue is empty.
        loop {
            let batch = queue.lock().expect("no panic").pop();
            match batch {
                Some(b) => drop(std::hint::black_box(b)),
                None if producing.load(Ordering::Acquire) == 0 => break,
                None => std::thread::yield_now(),
            }
            (ctx.hooks.tick)();
        }
        sum
    })
}

/// cache-scratch: each thread gets a small object allocated by the main
/// thread, frees it, then allocates, writes and frees objects of that size
/// in a loop: an allocator that hands neighbouring threads blocks on the same
/// cache line makes them false-share.
pub fn cache_scratch(ctx: &Ctx) -> u64 {
    let iterations = ctx.ops(8_000_000);
    let initial: Vec<Mutex<Option<Box<[u8; 8]>>>> =
        (0..ctx.threads).map(|_| Mutex::new(Some(Box::new([0; 8])))).collect();
    ctx.parallel(|t| {
        drop(initial[t].lock().expect("no panic").take());
        let mut sum = 0u64;
        for i in 0..iterations {
            let mut o = Box::new([0u8; 8]);
            for j in 0..50 {
                o[j % 8] = o[j % 8].wrapping_add(j as u8);
            }
            sum = sum.wrapping_add(o[i % 8] as u64);
            drop(std::hint::black_box(o));
            if i % 256 == 0 {
                (ctx.hooks.tick)();
            }
        }
        sum
    })
}

/// mstress: threads keep a working set of mixed sizes (mostly small, some up
/// to 1 MiB), replacing parts of it, and hand a share to a shared pool that
/// other threads free.
pub fn mstress(ctx: &Ctx) -> u64 {
    let rounds = ctx.ops(2_000);
    let pool: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
    let barrier = Barrier::new(ctx.threads);
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 13);
        let mut live: Vec<Box<[u8]>> = Vec::new();
        let mut sum = 0u64;
        for r in 0..rounds {
            for _ in 0..500 {
                let size = if rng.range(0, 99) == 0 { rng.log_range(4096, 1 << 20) } else { rng.log_range(8, 512) };
                live.push(block(size, r as u8));
            }
            // Free a random half; give a tenth away.
            for _ in 0..live.len() / 2 {
                let k = rng.range(0, live.len() - 1);
                sum = sum.wrapping_add(live.swap_remove(k).len() as u64);
            }
            let give = live.split_off(live.len() - live.len() / 10);
            let mut shared = pool.lock().expect("no panic");
            let take = shared.len() / 2;
            drop(shared.drain(..take)); // others' blocks, freed here
            shared.extend(give);
            drop(shared);
            (ctx.hooks.tick)();
        }
        barrier.wait();
        sum
    })
}

/// alloc-test: a rotating array of live objects of random sizes (8-4,096,
/// some up to 64 KiB), each slot freed and refilled in turn.
pub fn alloc_test(ctx: &Ctx) -> u64 {
    let ops = ctx.ops(6_000_000) / ctx.threads;
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 21);
        let mut slots: Vec<Option<Box<[u8]>>> = (0..4096).map(|_| None).collect();
        let mut sum = 0u64;
        for i in 0..ops {
            let size = if i % 64 == 0 { rng.log_range(4096, 65536) } else { rng.log_range(8, 4096) };
            let k = i % slots.len();
            if let Some(old) = slots[k].replace(block(size, i as u8)) {
                sum = sum.wrapping_add(old[0] as u64);
            }
            if i % 1024 == 0 {
                (ctx.hooks.tick)();
            }
        }
        sum
    })
}

/// rptest-like (rpmalloc's benchmark): a live set of blocks with sizes from
/// a power law, churned at random, a share crossing to the next thread.
pub fn rptest(ctx: &Ctx) -> u64 {
    let loops = ctx.ops(4_000);
    let ring = Ring::new(ctx.threads);
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 33);
        let (next, inbox) = ring.ends(t);
        let mut live: Vec<Box<[u8]>> = Vec::new();
        let mut sum = 0u64;
        for l in 0..loops {
            for _ in 0..2000 {
                // Power law: half of 16-64 B, a quarter to 256 B, ... to 32 KiB.
                let class = (rng.next_u64().trailing_zeros() as usize).min(9);
                let size = rng.range(16 << class, 64 << class);
                if live.len() < 4000 || rng.range(0, 1) == 0 {
                    live.push(block(size, l as u8));
                } else {
                    let k = rng.range(0, live.len() - 1);
                    sum = sum.wrapping_add(live.swap_remove(k).len() as u64);
                }
            }
            let give = live.split_off(live.len() * 7 / 8);
            next.send(give).expect("the next thread lives");
            live.extend(inbox.recv().expect("the previous thread lives"));
            (ctx.hooks.tick)();
        }
        sum
    })
}

/// sh6bench-like: batches of blocks of growing sizes, freed in reverse
/// order, in random order, or half kept to the next batch.
pub fn sh6bench(ctx: &Ctx) -> u64 {
    let batches = ctx.ops(8_000) / ctx.threads;
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 55);
        let mut kept: Vec<Box<[u8]>> = Vec::new();
        let mut sum = 0u64;
        for b in 0..batches {
            let mut batch: Vec<Box<[u8]>> = (0..2000).map(|i| block(1 + (i * 7 + b) % 1000, i as u8)).collect();
            match b % 3 {
                0 => {
                    while let Some(x) = batch.pop() {
                        sum = sum.wrapping_add(x.len() as u64);
                    }
                }
                1 => {
                    while !batch.is_empty() {
                        let k = rng.range(0, batch.len() - 1);
                        sum = sum.wrapping_add(batch.swap_remove(k).len() as u64);
                    }
                }
                _ => {
                    kept = batch.split_off(batch.len() / 2);
                }
            }
            (ctx.hooks.tick)();
        }
        sum.wrapping_add(kept.len() as u64)
    })
}

/// bigheap: a large live set (1 GiB at scale 1, split over the threads) of
/// 8-1,024-byte blocks, of which random ones are replaced and read: the heap
/// size where transparent huge pages pay (fewer TLB misses), and where
/// gcmalloc marks its arenas for them.
pub fn bigheap(ctx: &Ctx) -> u64 {
    let live_bytes = ((1usize << 30) as f64 * ctx.scale) as usize / ctx.threads;
    ctx.parallel(|t| {
        let mut rng = Rng::new(t as u64 + 29);
        let mut live: Blocks = Vec::new();
        let mut held = 0;
        while held < live_bytes {
            let size = rng.log_range(8, 1024);
            held += size;
            live.push(block(size, held as u8));
        }
        let mut sum = 0u64;
        for r in 0..live.len() * 2 {
            let k = rng.range(0, live.len() - 1);
            sum = sum.wrapping_add(live[k][0] as u64);
            if r % 4 == 0 {
                let size = rng.log_range(8, 1024);
                live[k] = block(size, r as u8);
            }
            if r % 100_000 == 0 {
                (ctx.hooks.tick)();
            }
        }
        sum
    })
}
