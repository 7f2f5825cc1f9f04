//! `owns()` for any address at any time: true for every byte of every block,
//! however large, and never a crash, even for an address next to a segment
//! that another thread unmaps at that moment.
//!
//! The race runs in a child process (this binary, started again), so a crash
//! fails the test with a message instead of ending the test run.

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use gcmalloc::GcMalloc;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

/// Set in the child process that runs the race.
const RACE_CHILD: &str = "GCMALLOC_OWNS_RACE_CHILD";
/// How long the child races.
const RACE_TIME: Duration = Duration::from_secs(3);
/// Segments mapped and unmapped in that time, at least: about 2,600 on 2
/// busy cores; far fewer means the race did not run. With mimalloc's
/// `MI_DEBUG=2` (the `debug` feature) each one takes 50 ms (it clears the
/// 32 MiB before the block when it resets it), and some 10 get through.
const MIN_ROUNDS: usize = if cfg!(feature = "debug") { 4 } else { 100 };

/// A block of 64 B aligned to 1 GiB gets a segment of its own from the OS
/// (32 MiB of header slices, then the block's 64 KiB slice), unmapped when
/// the block is freed: one thread allocates and frees such blocks while
/// another asks `owns()` about addresses just past their segments.
fn race_owns_against_unmapping() {
    let layout = Layout::from_size_align(64, GIB).unwrap();
    let last = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let probes = AtomicUsize::new(0);
    let rounds = AtomicUsize::new(0);
    // More threads than cores: a prober preempted between its map read and
    // its header read is what lets an unmapping slip in.
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Relaxed) {
                    // SAFETY: a valid layout with a non-zero size.
                    let p = unsafe { GLOBAL.alloc(layout) };
                    assert!(!p.is_null(), "64 B aligned to 1 GiB: allocation failed");
                    // Relaxed: the probers need an address, not the block's contents.
                    last.store(p as usize, Relaxed);
                    // SAFETY: allocated above with this layout, freed once.
                    unsafe { GLOBAL.dealloc(p, layout) };
                    rounds.fetch_add(1, Relaxed);
                }
            });
        }
        for _ in 0..16 {
            s.spawn(|| {
                let mut n = 0;
                while !stop.load(Relaxed) {
                    let block = last.load(Relaxed);
                    if block == 0 {
                        continue;
                    }
                    for offset in [64 * KIB, MIB, 32 * MIB, 100 * MIB, GIB - 4 * KIB, 2 * GIB] {
                        // The answer may be either (the block may be live or
                        // not); what is checked is that asking never crashes.
                        std::hint::black_box(gcmalloc::owns((block + offset) as *const u8));
                        n += 1;
                    }
                }
                probes.fetch_add(n, Relaxed);
            });
        }
        thread::sleep(RACE_TIME);
        stop.store(true, Relaxed);
    });
    let (rounds, probes) = (rounds.load(Relaxed), probes.load(Relaxed));
    println!("{rounds} segments mapped and unmapped, {probes} probes");
    assert!(
        rounds >= MIN_ROUNDS && probes > 0,
        "the race barely ran: {rounds} segments mapped and unmapped, {probes} probes in {RACE_TIME:?}"
    );
}

/// Runs the race in a child process and fails with its status if it crashed.
fn owns_never_crashes_while_segments_are_unmapped() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(RACE_CHILD, "1")
        .spawn()
        .expect("cannot start this test binary again");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > RACE_TIME * 10 {
            child.kill().unwrap();
            panic!("the owns() race did not end within {:?}", RACE_TIME * 10);
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "owns() crashed (or failed) while another thread unmapped the segment before the probed \
         address: {status}"
    );
}

/// A block of 6 GiB: `owns` is true at every byte, in particular past the
/// first 4 GiB (a lookup that searched the segment map for the block's
/// segment start at most 4 GiB back said false from there on).
fn owns_every_byte_of_a_block_over_4_gib() {
    let size = 6 * GIB;
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: a valid layout with a non-zero size; the memory is only
    // reserved, never touched.
    let p = unsafe { GLOBAL.alloc(layout) };
    assert!(!p.is_null(), "6 GiB: allocation failed");
    for offset in [0, 0xffff_ffff, 4 * GIB, 4 * GIB + 64 * MIB, size / 2, size - 1] {
        // SAFETY: `offset < size`: a byte of the block.
        let q = unsafe { p.add(offset) };
        assert!(gcmalloc::owns(q), "owns false at +{offset:#x} of a 6 GiB block");
    }
    // SAFETY: allocated above with this layout.
    unsafe { GLOBAL.dealloc(p, layout) };
}

/// `owns` is exact at a segment's end, also inside the 32 MiB slot where it
/// ends: a 64 B block aligned to 1 GiB has its segment end 64 KiB after the
/// block, and the OS mapping ends there too.
fn owns_is_false_past_a_segment_end() {
    let layout = Layout::from_size_align(64, GIB).unwrap();
    // SAFETY: a valid layout with a non-zero size.
    let p = unsafe { GLOBAL.alloc(layout) } as usize;
    assert!(p != 0, "64 B aligned to 1 GiB: allocation failed");
    assert!(gcmalloc::owns(p as *const u8) && gcmalloc::owns((p + 63) as *const u8));
    for offset in [MIB, 16 * MIB, 32 * MIB - 1] {
        assert!(
            !gcmalloc::owns((p + offset) as *const u8),
            "owns true at +{offset:#x} of a 64 B block, past its segment"
        );
    }
    // SAFETY: allocated above with this layout.
    unsafe { GLOBAL.dealloc(p as *mut u8, layout) };
}

fn main() {
    if std::env::var_os(RACE_CHILD).is_some() {
        race_owns_against_unmapping();
        return;
    }
    let tests: [(&str, fn()); 3] = [
        ("owns_every_byte_of_a_block_over_4_gib", owns_every_byte_of_a_block_over_4_gib),
        ("owns_is_false_past_a_segment_end", owns_is_false_past_a_segment_end),
        ("owns_never_crashes_while_segments_are_unmapped", owns_never_crashes_while_segments_are_unmapped),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
}
