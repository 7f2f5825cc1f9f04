//! Instruction counts of the single-thread allocation cases (the `alloc`
//! benchmark's pair and batch), gcmalloc against stock mimalloc v2.5.2, under
//! valgrind's callgrind. Unlike wall-clock time on a shared machine, these
//! counts repeat exactly, so they can show a 1% difference.
//!
//! ```sh
//! cargo bench --bench alloc_icount   # needs valgrind; about a minute
//! ```
//!
//! Each (case, size, allocator) runs in its own process under callgrind,
//! which counts only inside `measured_region` (after a warm-up pass). The
//! gcmalloc rows are:
//!
//! * `gcmalloc`: no registered thread (the type-stable page hooks are not
//!   installed): the cost of the patches to a program that does not use QSBR;
//! * `registered`: the thread is registered and quiesces after every 1,000
//!   operations, with delayed page reuse on;
//! * `registered-no-delay`: the same with `set_page_reuse_delay(false)`;
//! * `gc-heap`: no registered thread, allocating and freeing through a
//!   [`GcHeap`](gcmalloc::GcHeap)'s `Allocator`; also compared to `gcmalloc`
//!   (the global allocator path), whose instructions it should stay within 3% of.
//!
//! It prints instructions per operation and each row's ratio to stock.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

use allocator_api2::alloc::Allocator;
use gcmalloc::{GcHeap, GcMalloc};

use common::{batch, layout, pair, StockV2, BATCH, SIZES};

/// Operations (allocation + free) counted per process.
const OPS: usize = 20 * BATCH;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Stock,
    Gcmalloc,
    Registered,
    RegisteredNoDelay,
    GcHeap,
}

impl Mode {
    const ALL: [Mode; 5] = [Mode::Stock, Mode::Gcmalloc, Mode::Registered, Mode::RegisteredNoDelay, Mode::GcHeap];

    fn name(self) -> &'static str {
        match self {
            Mode::Stock => "stock-v2.5.2",
            Mode::Gcmalloc => "gcmalloc",
            Mode::Registered => "registered",
            Mode::RegisteredNoDelay => "registered-no-delay",
            Mode::GcHeap => "gc-heap",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Clone, Copy)]
enum Workload {
    /// One allocation freed at once, `OPS` times.
    Pair,
    /// `BATCH` allocations then their frees, `OPS / BATCH` times.
    Batch,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Pair => "pair",
            Workload::Batch => "batch1000",
        }
    }

    fn parse(name: &str) -> Option<Workload> {
        [Workload::Pair, Workload::Batch].into_iter().find(|w| w.name() == name)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().position(|a| a == "--child") {
        Some(i) => child(&args[i + 1..]),
        None => parent(),
    }
}

/// Runs every (workload, size, mode) under callgrind and prints the table.
fn parent() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("alloc_icount: valgrind not found; skipped");
        return;
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); Mode::ALL.len()];
    let mut gc_heap_to_global = Vec::new();
    println!("{:<10} {:>6} {:>14}  ratios to stock", "case", "size", "stock Ir/op");
    for workload in [Workload::Pair, Workload::Batch] {
        for size in SIZES {
            let counts: Vec<u64> =
                Mode::ALL.iter().map(|mode| count_instructions(&exe, workload, size, *mode)).collect();
            let stock = counts[0] as f64;
            let mut line = format!("{:<10} {:>6} {:>14.1} ", workload.name(), size, stock / OPS as f64);
            for (i, &c) in counts.iter().enumerate().skip(1) {
                let ratio = c as f64 / stock;
                ratios[i].push(ratio);
                line += &format!(" {}={ratio:.4}", Mode::ALL[i].name());
            }
            let to_global = counts[Mode::ALL.len() - 1] as f64 / counts[1] as f64;
            gc_heap_to_global.push(to_global);
            line += &format!(" gc-heap/gcmalloc={to_global:.4}");
            println!("{line}");
        }
    }
    for (i, mode) in Mode::ALL.iter().enumerate().skip(1) {
        let r = &mut ratios[i];
        r.sort_by(f64::total_cmp);
        println!("{:<20} median ratio {:.4}, max {:.4}", mode.name(), r[r.len() / 2], r[r.len() - 1]);
    }
    let r = &mut gc_heap_to_global;
    r.sort_by(f64::total_cmp);
    println!("{:<20} median ratio {:.4}, max {:.4}", "gc-heap/gcmalloc", r[r.len() / 2], r[r.len() - 1]);
}

/// Instructions callgrind counted inside `measured_region` for one run.
fn count_instructions(exe: &std::path::Path, workload: Workload, size: usize, mode: Mode) -> u64 {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null", "--toggle-collect=*measured_region*"])
        .arg(exe)
        .args(["--child", workload.name(), &size.to_string(), mode.name()])
        .output()
        .expect("run valgrind");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stderr}");
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no callgrind total in:\n{stderr}"))
}

/// `--child WORKLOAD SIZE MODE`: the process callgrind measures.
fn child(args: &[String]) {
    let workload = Workload::parse(&args[0]).expect("workload");
    let size: usize = args[1].parse().expect("size");
    let mode = Mode::parse(&args[2]).expect("mode");
    let registered = matches!(mode, Mode::Registered | Mode::RegisteredNoDelay).then(gcmalloc::register_thread);
    gcmalloc::set_page_reuse_delay(mode != Mode::RegisteredNoDelay);
    let quiesce = || {
        if let Some(me) = &registered {
            me.quiescent();
        }
    };
    let l = layout(size);
    match mode {
        Mode::Stock => run(&StockV2, workload, l, &quiesce),
        Mode::GcHeap => run(&ViaGcHeap(Box::leak(Box::new(GcHeap::new().unwrap()))), workload, l, &quiesce),
        _ => run(&GcMalloc, workload, l, &quiesce),
    }
}

fn run<A: GlobalAlloc>(a: &A, workload: Workload, l: Layout, quiesce: &dyn Fn()) {
    let mut slots = vec![std::ptr::null_mut(); BATCH];
    work(a, workload, l, &mut slots, quiesce); // warm-up: pages exist, TLS is set
    measured_region(a, workload, l, &mut slots, quiesce);
}

#[inline(never)]
fn measured_region<A: GlobalAlloc>(a: &A, workload: Workload, l: Layout, slots: &mut [*mut u8], quiesce: &dyn Fn()) {
    work(a, workload, l, slots, quiesce);
}

#[inline(never)]
fn work<A: GlobalAlloc>(a: &A, workload: Workload, l: Layout, slots: &mut [*mut u8], quiesce: &dyn Fn()) {
    for _ in 0..OPS / BATCH {
        match workload {
            Workload::Pair => (0..BATCH).for_each(|_| pair(a, l)),
            Workload::Batch => batch(a, l, slots),
        }
        quiesce();
    }
}

/// A [`GcHeap`]'s `Allocator` behind the workloads' `GlobalAlloc` interface.
struct ViaGcHeap(&'static GcHeap);

// SAFETY: forwards to the GcHeap's `Allocator`, whose blocks have the
// requested layout; null on failure.
unsafe impl GlobalAlloc for ViaGcHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.allocate(layout).map_or(std::ptr::null_mut(), |b| b.cast::<u8>().as_ptr())
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { self.0.deallocate(std::ptr::NonNull::new_unchecked(ptr), layout) }
    }
}
