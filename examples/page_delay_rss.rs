//! Peak RSS of a churn workload under stock mimalloc v2.5.2, gcmalloc with
//! delayed page reuse off, and gcmalloc with it on (the default), each in its
//! own process, with registered threads quiescing regularly.
//!
//! `cargo run --release --example page_delay_rss`

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use gcmalloc::GcMalloc;

/// Allocates from stock mimalloc once `USE_STOCK` is set, from gcmalloc
/// before; frees each block to the copy that owns it.
struct Switch;
static USE_STOCK: AtomicBool = AtomicBool::new(false);

// SAFETY: each block is freed by the mimalloc copy that allocated it
// (`gcmalloc::owns` tells them apart); alignment is passed to both.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if USE_STOCK.load(Ordering::Relaxed) {
            // SAFETY: plain C allocation.
            unsafe { libmimalloc_sys::mi_malloc_aligned(l.size(), l.align()).cast() }
        } else {
            // SAFETY: forwarded contract.
            unsafe { GcMalloc.alloc(l) }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if gcmalloc::owns(p) {
            // SAFETY: gcmalloc allocated it.
            unsafe { GcMalloc.dealloc(p, l) }
        } else {
            // SAFETY: stock mimalloc allocated it.
            unsafe { libmimalloc_sys::mi_free(p.cast()) }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

const MODES: [&str; 3] = ["stock-v2.5.2", "delay-off", "delay-on"];

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some(mode) => child(mode),
        None => parent(),
    }
}

fn parent() {
    let exe = std::env::current_exe().expect("current exe");
    let mut rows = Vec::new();
    for mode in MODES {
        let out = Command::new(&exe).arg(mode).output().expect("run child");
        assert!(out.status.success(), "{mode} failed: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let mut f = line.split_whitespace();
        let rss: f64 = f.next().and_then(|s| s.parse().ok()).expect("peak rss");
        let secs: f64 = f.next().and_then(|s| s.parse().ok()).expect("time");
        rows.push((mode, rss, secs));
    }
    let base = rows[0].1;
    println!("| allocator | peak RSS (MiB) | ratio to stock | time (s) |");
    println!("|---|---|---|---|");
    for (mode, rss, secs) in rows {
        println!("| {mode} | {:.1} | {:.3}x | {secs:.2} |", rss / 1048576.0, rss / base);
    }
}

fn child(mode: &str) {
    match mode {
        "stock-v2.5.2" => USE_STOCK.store(true, Ordering::Relaxed),
        "delay-off" => gcmalloc::set_page_reuse_delay(false),
        "delay-on" => gcmalloc::set_page_reuse_delay(true),
        other => panic!("unknown mode {other}"),
    }
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || churn(t));
        }
    });
    println!("{} {:.3}", peak_rss(), start.elapsed().as_secs_f64());
}

/// Rounds of allocating a mixed-size working set, keeping a sliding window
/// of it live, and quiescing after each round.
fn churn(seed: u64) {
    let me = gcmalloc::register_thread();
    let mut window: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _round in 0..400 {
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = 16usize << (x % 10); // 16 B .. 8 KiB
            window.push_back(vec![x as u8; size]);
            if window.len() > 20_000 {
                window.pop_front();
            }
        }
        me.quiescent();
    }
}

/// VmHWM from /proc/self/status, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM")
}
