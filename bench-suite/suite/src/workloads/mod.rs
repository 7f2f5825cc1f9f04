//! The workloads. Each takes a [`Ctx`] (threads, scale, hooks) and returns a
//! checksum of its work. Models of mimalloc-bench's allocation tests, written
//! in Rust (`synthetic.rs`), and real programs built on crates.io libraries
//! (`programs.rs`).

use crate::Hooks;

mod programs;
mod synthetic;

/// How a workload runs: its threads, its size (1.0: the quick suite's), and
/// the allocator binary's hooks.
pub struct Ctx {
    pub threads: usize,
    pub scale: f64,
    pub hooks: Hooks,
}

impl Ctx {
    /// `n` scaled, at least 1.
    pub fn ops(&self, n: usize) -> usize {
        ((n as f64 * self.scale) as usize).max(1)
    }

    /// Runs `f(thread index)` on `self.threads` worker threads (with the
    /// hooks), returning the (wrapping) sum of their results.
    pub fn parallel(&self, f: impl Fn(usize) -> u64 + Sync) -> u64 {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.threads)
                .map(|i| {
                    let f = &f;
                    let hooks = self.hooks;
                    s.spawn(move || {
                        (hooks.enter)();
                        let r = f(i);
                        (hooks.exit)();
                        r
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("worker panicked")).fold(0, u64::wrapping_add)
        })
    }
}

pub type Workload = fn(&Ctx) -> u64;

const ALL: &[(&str, Workload)] = &[
    ("larson", synthetic::larson),
    ("xmalloc", synthetic::xmalloc),
    ("cache-scratch", synthetic::cache_scratch),
    ("mstress", synthetic::mstress),
    ("alloc-test", synthetic::alloc_test),
    ("rptest", synthetic::rptest),
    ("sh6bench", synthetic::sh6bench),
    ("bigheap", synthetic::bigheap),
    ("syn", programs::syn_parse),
    ("json", programs::json_round_trip),
    #[cfg(feature = "js")]
    ("js", programs::js),
];

/// Every workload's name.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|(n, _)| *n).collect()
}

pub fn find(name: &str) -> Option<Workload> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// xorshift64*: every allocator sees the same sequence.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Log-uniform in `lo..=hi` (many small sizes, some large).
    pub fn log_range(&mut self, lo: usize, hi: usize) -> usize {
        let bits = self.range(lo.ilog2() as usize, hi.ilog2() as usize);
        self.range(1 << bits, ((2 << bits) - 1).min(hi)).max(lo)
    }
}

/// A block of `size` bytes, touched at its ends (so it is really used).
pub fn block(size: usize, tag: u8) -> Box<[u8]> {
    let mut b = vec![0u8; size].into_boxed_slice();
    b[0] = tag;
    b[size - 1] = tag;
    b
}
