//! Optimistic lock-free reads over type-stable memory.
//!
//! A table of reference-counted objects is read with the protocol of
//! CPython's free-threaded dict/list reads: load the pointer, try to
//! increment the reference count if it is non-zero, re-check that the table
//! still holds the pointer. Writers replace objects and free them at once
//! (no `retire`): only the type-stable pages keep a late reader safe. Other
//! threads allocate buffers of other size classes filled with `POISON`; a
//! reader that ever finds `POISON` where an object's type tag was has read
//! memory that went to another size class: a violation.
//!
//! With the delay on the run must see zero violations; with it off it must
//! see some, which shows the test can fail.

#[path = "common/serial.rs"]
mod serial;
use serial::serial;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::thread;
use std::time::{Duration, Instant};

use gcmalloc::GcMalloc;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const TYPE_TAG: u64 = 0x0b1e_c7ed_0b1e_c7ed;
const POISON: u64 = 0xbbbb_bbbb_bbbb_bbbb;
/// A live reference count is `LIVE | n` with n > 0; a freed block has 0 there
/// (release builds) or mimalloc's debug fill (MI_DEBUG), neither of which
/// carries `LIVE`.
const LIVE: u64 = 0x5a5a_0000_0000_0000;
const LIVE_MASK: u64 = 0xffff_0000_0000_0000;

/// 64 bytes. Word 0 is left to mimalloc's free-list link; the words a reader
/// inspects come after it.
#[repr(C, align(8))]
struct Obj {
    _link: u64,
    refs: AtomicU64,
    tag: AtomicU64,
    value: AtomicU64,
    check: AtomicU64,
    _pad: [u64; 3],
}

const OBJ: Layout = Layout::new::<Obj>();
/// About four pages of 64-byte blocks.
const SLOTS: usize = 4096;

fn new_obj(value: u64) -> *mut Obj {
    // SAFETY: non-zero size; the fields are written before the pointer is published.
    unsafe {
        let p = GLOBAL.alloc(OBJ) as *mut Obj;
        assert!(!p.is_null());
        (*p).tag.store(TYPE_TAG, Relaxed);
        (*p).value.store(value, Relaxed);
        (*p).check.store(!value, Relaxed);
        (*p).refs.store(LIVE | 1, Release);
        p
    }
}

/// Drops one reference; the last one frees the object at once.
fn release(p: *mut Obj) {
    // SAFETY: the caller owns one reference, so `p` is live.
    let prev = unsafe { (*p).refs.fetch_sub(1, AcqRel) };
    debug_assert_eq!(prev & LIVE_MASK, LIVE);
    if prev == (LIVE | 1) {
        // SAFETY: the last reference: nobody else may free it. Readers may
        // still look at it; type-stable memory makes that safe.
        unsafe {
            (*p).refs.store(0, Relaxed);
            GLOBAL.dealloc(p as *mut u8, OBJ);
        }
    }
}

/// Tries to take a reference to `p` if it is still live.
///
/// # Safety
/// `p` was loaded from the table by a registered thread that has not passed
/// a quiescent state since; it may have been freed.
unsafe fn try_incref(p: *mut Obj) -> bool {
    // SAFETY: (from the caller) the block's page still holds 64-byte blocks, so the
    // word is mapped and is either this object's count or a freed/new
    // object's; the LIVE marker and the re-check sort them out.
    let refs = unsafe { &(*p).refs };
    let mut cur = refs.load(Acquire);
    while cur & LIVE_MASK == LIVE && cur != LIVE {
        match refs.compare_exchange_weak(cur, cur + 1, AcqRel, Acquire) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}

struct Run {
    violations: usize,
    reads: usize,
    torn: usize,
}

fn run(delay: bool, time: Duration) -> Run {
    gcmalloc::set_page_reuse_delay(delay);
    let table: Vec<AtomicPtr<Obj>> = (0..SLOTS as u64).map(|i| AtomicPtr::new(new_obj(i))).collect();
    let stop = AtomicBool::new(false);
    let violations = AtomicUsize::new(0);
    let reads = AtomicUsize::new(0);
    let torn = AtomicUsize::new(0);

    thread::scope(|s| {
        for r in 0..2u64 {
            let (table, stop, violations, reads, torn) = (&table, &stop, &violations, &reads, &torn);
            s.spawn(move || {
                let me = gcmalloc::register_thread();
                let mut i = r as usize;
                let mut n = 0usize;
                // Pointers loaded during the current read section (since the
                // last quiescent state), re-read later as a slow reader would.
                let mut seen = [core::ptr::null_mut::<Obj>(); 64];
                while !stop.load(Relaxed) {
                    i = (i * 31 + 7) % SLOTS;
                    let p = table[i].load(Acquire);
                    seen[n % seen.len()] = p;
                    for &q in seen.iter().filter(|q| !q.is_null()) {
                        // SAFETY: see `try_incref`: `q` was loaded in this read
                        // section, so type-stable memory keeps the word
                        // readable and of the same size class.
                        if unsafe { (*q).tag.load(Relaxed) } == POISON {
                            violations.fetch_add(1, Relaxed);
                        }
                    }
                    // SAFETY: as above.
                    if unsafe { try_incref(p) } {
                        if table[i].load(Acquire) == p {
                            // SAFETY: we hold a reference to a live object.
                            let (v, c) = unsafe { ((*p).value.load(Relaxed), (*p).check.load(Relaxed)) };
                            if v != !c {
                                torn.fetch_add(1, Relaxed);
                            }
                            reads.fetch_add(1, Relaxed);
                        }
                        release(p);
                    }
                    n += 1;
                    if n % 256 == 0 {
                        seen.fill(core::ptr::null_mut());
                        me.quiescent();
                    }
                }
            });
        }
        // Writer: each round allocates a whole new generation of objects
        // (so it lands on other pages), swaps it in and frees the old one at
        // once, which empties the old generation's pages; then it fills
        // other size classes with POISON.
        s.spawn(|| {
            let start = Instant::now();
            let mut round = 0u64;
            while start.elapsed() < time {
                let fresh: Vec<*mut Obj> = (0..SLOTS as u64).map(|i| new_obj(round * SLOTS as u64 + i)).collect();
                for (slot, p) in table.iter().zip(fresh) {
                    release(slot.swap(p, AcqRel));
                }
                poison_other_classes();
                round += 1;
            }
            stop.store(true, Relaxed);
        });
    });
    for slot in &table {
        release(slot.load(Relaxed));
    }
    gcmalloc::set_page_reuse_delay(true);
    Run { violations: violations.into_inner(), reads: reads.into_inner(), torn: torn.into_inner() }
}

/// Allocates buffers of other size classes, fills them with POISON, frees them.
fn poison_other_classes() {
    for size in [1024usize, 4096, 16 << 10] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let bufs: Vec<*mut u64> = (0..64)
            .map(|_| {
                // SAFETY: non-zero size; filled within bounds; freed below.
                unsafe {
                    let p = GLOBAL.alloc(layout) as *mut u64;
                    for w in 0..size / 8 {
                        p.add(w).write_volatile(POISON);
                    }
                    p
                }
            })
            .collect();
        for p in bufs {
            // SAFETY: allocated above with `layout`.
            unsafe { GLOBAL.dealloc(p as *mut u8, layout) };
        }
    }
}

#[test]
fn optimistic_readers_never_see_another_size_class() {
    let _serial = serial();
    let r = run(true, Duration::from_secs(2));
    println!("delay on: {} reads, {} violations, {} torn", r.reads, r.violations, r.torn);
    assert!(r.reads > 1000, "readers made no progress");
    assert_eq!(r.violations, 0, "a reader saw memory of another size class");
    assert_eq!(r.torn, 0, "a reader holding a reference saw a torn object");
}

#[test]
// MI_DEBUG decommits purged memory with PROT_NONE: without the delay a late
// reader could fault instead of seeing POISON.
#[cfg_attr(feature = "debug", ignore = "stale reads may fault under MI_DEBUG")]
fn without_the_delay_optimistic_readers_do_see_other_size_classes() {
    let _serial = serial();
    let r = run(false, Duration::from_secs(2));
    println!("delay off: {} reads, {} violations, {} torn", r.reads, r.violations, r.torn);
    assert!(r.violations > 0, "no violation without the delay: this test could not fail");
}
