//! Helpers shared by the accounting and page tests.
#![allow(dead_code)] // each test binary uses a subset

/// What frees racing thread exits may leave counted in a test's abandoned
/// pages: a few blocks (measured: 2 KiB of 457 MiB abandoned).
pub const EXIT_RACE_BOUND: usize = 64 << 10;

/// Refreshes the calling thread's heap, then asserts [`assert_no_drift`] and
/// that the counters equal an exact recount of the live bytes (plus
/// what frees racing thread exits left counted, within [`EXIT_RACE_BOUND`]).
///
/// Call only while no other thread allocates (e.g. after joining them), and
/// on the only thread that allocated since its pages were last synced.
pub fn assert_accounting_consistent(when: &str) -> gcmalloc::Usage {
    gcmalloc::refresh_estimate();
    // SAFETY: the caller guarantees that no other thread allocates or frees.
    let audit = unsafe { gcmalloc::audit() };
    assert_eq!(
        audit.counted,
        audit.recounted + audit.exit_race,
        "the refreshed counters differ from the live bytes {when}: {audit:?}"
    );
    assert!(audit.exit_race <= EXIT_RACE_BOUND, "frees racing thread exits left too much counted {when}: {audit:?}");
    assert_no_drift(when)
}

/// Asserts that the counters match the bytes the pages carry (no drift) and
/// that the batched estimate is within its documented bound of the exact sum.
///
/// Call only while no other thread allocates (e.g. after joining them).
pub fn assert_no_drift(when: &str) -> gcmalloc::Usage {
    // SAFETY: the caller guarantees that no other thread allocates or frees.
    let audit = unsafe { gcmalloc::audit() };
    assert_eq!(audit.counted, audit.carried, "counters drifted from the bytes the pages carry {when}");
    let usage = gcmalloc::usage();
    assert!(
        usage.estimate.abs_diff(usage.exact()) <= usage.error_bound,
        "estimate {} vs exact {} exceeds the error bound {} {when}",
        usage.estimate,
        usage.exact(),
        usage.error_bound
    );
    usage
}

/// A small deterministic xorshift generator (tests need no statistical quality).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A raw block of `size` bytes from the global allocator, as an address so it
/// can be sent to (and freed by) another thread.
pub fn alloc_block(size: usize) -> (usize, usize) {
    let layout = std::alloc::Layout::from_size_align(size, 8).unwrap();
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    assert!(!p.is_null(), "alloc of {size} bytes failed");
    // SAFETY: `p` points to `size` writable bytes; touch them like a program would.
    unsafe { p.write_bytes(0xA5, size.min(64)) };
    (p as usize, size)
}

/// Frees a block from [`alloc_block`], from any thread.
pub fn free_block((addr, size): (usize, usize)) {
    let layout = std::alloc::Layout::from_size_align(size, 8).unwrap();
    // SAFETY: `addr` came from `alloc_block(size)` and is freed once.
    unsafe { std::alloc::dealloc(addr as *mut u8, layout) };
}

/// A registered thread that never quiesces until told to: it holds every
/// goal taken meanwhile.
pub struct Holder {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Holder {
    pub fn start() -> Holder {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let me = gcmalloc::register_thread();
            ready_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            me.quiescent();
        });
        ready_rx.recv().unwrap();
        Holder { release, thread }
    }

    /// Lets the holder quiesce and exit.
    pub fn stop(self) {
        self.release.send(()).unwrap();
        self.thread.join().unwrap();
    }

    /// Lets the holder quiesce (and exit), then makes sure a goal taken
    /// before is reached.
    pub fn quiesce(self) {
        self.stop();
        let goal = gcmalloc::qsbr::advance();
        assert!(gcmalloc::qsbr::poll(goal), "no registered thread left, yet the goal is not reached");
    }
}
