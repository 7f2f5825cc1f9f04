//! `GcMalloc` honours every power-of-two alignment, through realloc too, and
//! returns null (never aborts) for requests it cannot satisfy.

use std::alloc::{GlobalAlloc, Layout};

use gcmalloc::GcMalloc;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

const SIZES: &[usize] = &[
    1,
    7,
    8,
    9,
    15,
    16,
    17,
    24,
    31,
    32,
    33,
    48,
    63,
    100,
    127,
    1000,
    4095,
    4096,
    4097,
    10_000,
    65_536,
    100_000,
    1 << 20,
    (3 << 20) + 5,
];

/// Alignments 1 B ..= 64 MiB: past 16 MiB mimalloc uses a dedicated segment.
fn alignments() -> impl Iterator<Item = usize> {
    (0..=26).map(|shift| 1usize << shift)
}

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: the caller owns `len` writable bytes at `p`.
        unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
    }
}

fn check(p: *const u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: the caller owns `len` initialised bytes at `p`.
        let b = unsafe { p.add(i).read() };
        assert_eq!(b, seed.wrapping_add(i as u8), "byte {i} of {len}");
    }
}

#[test]
fn alloc_honours_alignment_for_every_size() {
    for align in alignments() {
        for &size in SIZES {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed with the same layout below.
            let p = unsafe { GcMalloc.alloc(layout) };
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            fill(p, size, 3);
            check(p, size, 3);
            // SAFETY: `p` is live and was allocated with `layout`.
            unsafe { GcMalloc.dealloc(p, layout) };
        }
    }
}

#[test]
fn alloc_zeroed_is_zeroed_and_aligned() {
    for align in alignments().take(21) {
        for &size in SIZES {
            let layout = Layout::from_size_align(size, align).unwrap();
            // Dirty memory of this size class first, so a reused block is
            // not zero by accident.
            // SAFETY: as above.
            unsafe {
                let dirty = GcMalloc.alloc(layout);
                fill(dirty, size, 0xA5);
                GcMalloc.dealloc(dirty, layout);
            }
            // SAFETY: non-zero size; freed with the same layout below.
            let p = unsafe { GcMalloc.alloc_zeroed(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            // SAFETY: `size` bytes at `p` are ours.
            let bytes = unsafe { std::slice::from_raw_parts(p, size) };
            assert!(bytes.iter().all(|&b| b == 0), "size {size} align {align}");
            // SAFETY: `p` is live and was allocated with `layout`.
            unsafe { GcMalloc.dealloc(p, layout) };
        }
    }
}

#[test]
fn realloc_keeps_contents_and_alignment_across_size_classes() {
    for align in alignments().take(21) {
        let mut size = 1usize;
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let mut p = unsafe { GcMalloc.alloc(layout) };
        fill(p, size, 7);
        // Grow through small, medium, large and huge classes, then shrink.
        let path = [3, 17, 48, 100, 64, 1000, 1500, 5000, 70_000, 600_000, 5 << 20, 40_000, 24, 2];
        for &new_size in &path {
            let old = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `p` is live with layout `old`; `new_size` is non-zero.
            let q = unsafe { GcMalloc.realloc(p, old, new_size) };
            assert!(!q.is_null(), "realloc {size} -> {new_size} align {align}");
            assert_eq!(q as usize % align, 0, "realloc {size} -> {new_size} align {align}");
            check(q, size.min(new_size), 7);
            fill(q, new_size, 7);
            p = q;
            size = new_size;
        }
        // SAFETY: `p` is live with this layout.
        unsafe { GcMalloc.dealloc(p, Layout::from_size_align(size, align).unwrap()) };
    }
}

#[test]
fn impossible_requests_return_null_without_aborting() {
    let huge = [(isize::MAX as usize - 4095, 4096), (isize::MAX as usize - 4095, 1), (isize::MAX as usize / 2, 8)];
    for (size, align) in huge {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size; a null result is the expected answer.
        let p = unsafe { GcMalloc.alloc(layout) };
        assert!(p.is_null(), "size {size} align {align} unexpectedly succeeded");
        // SAFETY: as above.
        assert!(unsafe { GcMalloc.alloc_zeroed(layout) }.is_null());
    }
    // A realloc that cannot grow returns null and leaves the block intact.
    let layout = Layout::from_size_align(64, 32).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { GcMalloc.alloc(layout) };
    fill(p, 64, 9);
    // SAFETY: `p` is live with `layout`.
    let q = unsafe { GcMalloc.realloc(p, layout, isize::MAX as usize - 4095) };
    assert!(q.is_null());
    check(p, 64, 9);
    // SAFETY: `p` is still live after the failed realloc.
    unsafe { GcMalloc.dealloc(p, layout) };
}

#[test]
fn huge_blocks_are_usable() {
    // 256 MiB: a dedicated huge segment, touched at every page.
    let size = 256 << 20;
    let mut v = vec![0u8; size];
    for i in (0..size).step_by(4096) {
        v[i] = i as u8;
    }
    assert_eq!(v[4096 * 3], (4096 * 3) as u8);
    assert!(gcmalloc::owns(v.as_ptr()));
}

/// `owns` is true for the first, middle and last byte of every block, at
/// every alignment: blocks aligned to 512 MiB or more live in segments the OS
/// maps near the top of the address space, and a block with a huge alignment
/// starts 32 MiB into its segment, so neither its address nor an interior
/// pointer masks to its segment's start (both read false in stock mimalloc).
#[test]
fn owns_every_byte_of_every_block() {
    let a = GcMalloc;
    for shift in [3, 12, 21, 24, 25, 28, 29, 31] {
        for size in [64, 1 << 20, 100 << 20] {
            let layout = Layout::from_size_align(size, 1 << shift).unwrap();
            // SAFETY: a valid layout with a non-zero size.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            for offset in [0, size / 2, size - 1] {
                // SAFETY: `offset < size`: a byte of the block.
                let q = unsafe { p.add(offset) };
                assert!(gcmalloc::owns(q), "owns false at +{offset} of a {size} B block aligned to 2^{shift}");
            }
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layout) };
        }
    }
}

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

#[test]
fn zeroed_blocks_with_a_huge_alignment_are_not_touched_when_fresh() {
    // Over 16 MiB of alignment, mimalloc zeroed the whole block even when
    // the OS had just handed it over zeroed: 4 GiB took 25 s and 4 GiB of
    // RSS (plain alloc_zeroed: microseconds, nothing touched).
    let layout = Layout::from_size_align(1 << 30, 1 << 25).unwrap();
    let before = rss();
    // SAFETY: non-zero size.
    let p = unsafe { GcMalloc.alloc_zeroed(layout) };
    assert!(!p.is_null());
    let grew = rss().saturating_sub(before);
    assert!(grew < 64 << 20, "RSS grew by {} MiB for a fresh zeroed 1 GiB block", grew >> 20);
    assert_eq!(p as usize % (1 << 25), 0);
    // SAFETY: the block has `layout.size()` readable bytes.
    let zero = |p: *mut u8| (0..layout.size()).step_by(1 << 20).chain(0..64).all(|i| unsafe { p.add(i).read() } == 0);
    assert!(zero(p), "zeroed");
    // Reused memory is zeroed for real.
    // SAFETY: `p` is live with `layout`; the bytes written are in bounds.
    unsafe {
        p.write_bytes(0xAB, 1 << 20);
        GcMalloc.dealloc(p, layout);
    }
    for _ in 0..4 {
        // SAFETY: non-zero size; each block is freed once.
        unsafe {
            let q = GcMalloc.alloc_zeroed(layout);
            assert!(!q.is_null() && zero(q), "a reused block must be zeroed");
            q.write_bytes(0xCD, 1 << 20);
            GcMalloc.dealloc(q, layout);
        }
    }
}
