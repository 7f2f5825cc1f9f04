//! `&GcHeap` as an `Allocator`: the contract (zero sizes, alignments up to
//! the page size and above, growing and shrinking in place and by moving),
//! `Box` and `Vec` in it, four threads freeing each other's blocks, and a
//! global allocation after thread exit that stays out of the GC heap.
#![cfg_attr(feature = "nightly", feature(allocator_api))]

use std::ptr::NonNull;
use std::sync::mpsc;
use std::thread;

use allocator_api2::alloc::{Allocator, Layout};
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use gcmalloc::{GcHeap, GcMalloc};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

/// The tag of the page holding `p` (a live gcmalloc block).
fn goal_tag(p: *const u8) -> u8 {
    // SAFETY: every caller passes a live block of a GcHeap.
    unsafe { gcmalloc::__block_owner(p).0 }
}

fn heap() -> &'static GcHeap {
    std::boxed::Box::leak(std::boxed::Box::new(GcHeap::new().expect("a free tag")))
}

#[test]
fn zero_size_allocations_are_dangling_aligned_and_never_freed() {
    let heap = heap();
    for align in [1, 8, 64, 4096] {
        let layout = Layout::from_size_align(0, align).unwrap();
        let block = heap.allocate(layout).unwrap();
        assert_eq!(block.len(), 0);
        assert_eq!(block.cast::<u8>().as_ptr() as usize % align, 0);
        // SAFETY: the block came from this allocator with this layout.
        unsafe { heap.deallocate(block.cast(), layout) };
    }
    let empty: Vec<u64, &GcHeap> = Vec::new_in(heap);
    assert_eq!(empty.capacity(), 0);
    assert_eq!(heap.estimate(), 0);
}

#[test]
fn every_alignment_up_to_and_above_the_page_size_is_honoured() {
    let heap = heap();
    for shift in 0..=21 {
        let align = 1usize << shift;
        for size in [1, 7, 16, 100, 4096, 70_000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            for zeroed in [false, true] {
                let block = if zeroed { heap.allocate_zeroed(layout) } else { heap.allocate(layout) }.unwrap();
                let p = block.cast::<u8>().as_ptr();
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert_eq!(block.len(), size);
                assert_eq!(goal_tag(p), heap.tag(), "size {size} align {align}: not in the GcHeap's pages");
                // SAFETY: the block has `size` writable bytes.
                let bytes = unsafe { std::slice::from_raw_parts_mut(p, size) };
                if zeroed {
                    assert!(bytes.iter().all(|&b| b == 0), "size {size} align {align}: not zeroed");
                }
                bytes.fill(0xa5);
                // SAFETY: from this allocator with this layout.
                unsafe { heap.deallocate(block.cast(), layout) };
            }
        }
    }
}

/// Allocates `size` bytes filled with their index.
fn filled(heap: &'static GcHeap, size: usize, align: usize) -> (NonNull<u8>, Layout) {
    let layout = Layout::from_size_align(size, align).unwrap();
    let p = heap.allocate(layout).unwrap().cast::<u8>();
    // SAFETY: `size` writable bytes.
    unsafe { (0..size).for_each(|i| p.as_ptr().add(i).write(i as u8)) };
    (p, layout)
}

fn check_prefix(p: NonNull<u8>, len: usize) {
    // SAFETY: the caller's block has at least `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), len) };
    assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8), "contents lost");
}

extern "C" {
    #[link_name = "gcm_mi_usable_size"]
    fn mi_usable_size(p: *const u8) -> usize;
}

/// True if this build pads blocks: a 100-byte block's usable size is 100,
/// not its size class's 112.
fn padded(block: NonNull<u8>) -> bool {
    // SAFETY: `block` is a live block of gcmalloc's mimalloc.
    unsafe { mi_usable_size(block.as_ptr()) == 100 }
}

#[test]
fn grow_and_shrink_in_place_and_by_moving() {
    let heap = heap();
    // 100 bytes live in a 112-byte block: growing to 101 stays in place.
    let (p, old) = filled(heap, 100, 8);
    let pads = padded(p);
    let new = Layout::from_size_align(101, 8).unwrap();
    // SAFETY: a live block of `old`; `new` is not smaller.
    let q = unsafe { heap.grow(p, old, new) }.unwrap().cast::<u8>();
    // (A build that pads blocks, MI_DEBUG's, ASan's or valgrind's, makes
    // the usable size the requested size, so a grow always moves there.)
    if !pads {
        assert_eq!(q, p, "a grow within the block moved it");
    }
    check_prefix(q, 100);
    // Growing to 100 KiB moves it, with its contents.
    let big = Layout::from_size_align(100 << 10, 8).unwrap();
    // SAFETY: as above.
    let r = unsafe { heap.grow_zeroed(q, new, big) }.unwrap().cast::<u8>();
    assert_ne!(r, q);
    check_prefix(r, 100);
    // SAFETY: the tail past the old 101 bytes was zeroed.
    assert!(unsafe { std::slice::from_raw_parts(r.as_ptr().add(101), (100 << 10) - 101) }.iter().all(|&b| b == 0));
    // Shrinking to 60 KiB (more than half) stays in place.
    let smaller = Layout::from_size_align(60 << 10, 8).unwrap();
    // SAFETY: a live block of `big`; `smaller` is not larger.
    let s = unsafe { heap.shrink(r, big, smaller) }.unwrap().cast::<u8>();
    assert_eq!(s, r, "a shrink to more than half moved the block");
    // Shrinking to 50 bytes moves it to a small block.
    let tiny = Layout::from_size_align(50, 8).unwrap();
    // SAFETY: as above.
    let t = unsafe { heap.shrink(s, smaller, tiny) }.unwrap().cast::<u8>();
    assert_ne!(t, s);
    check_prefix(t, 50);
    assert_eq!(goal_tag(t.as_ptr()), heap.tag());
    // A larger alignment on growth is honoured.
    let aligned = Layout::from_size_align(4096, 4096).unwrap();
    // SAFETY: as above.
    let u = unsafe { heap.grow(t, tiny, aligned) }.unwrap().cast::<u8>();
    assert_eq!(u.as_ptr() as usize % 4096, 0);
    check_prefix(u, 50);
    // Shrinking to zero frees the block.
    let zero = Layout::from_size_align(0, 1).unwrap();
    // SAFETY: as above.
    let z = unsafe { heap.shrink(u, aligned, zero) }.unwrap();
    assert_eq!(z.len(), 0);
}

#[test]
fn box_and_vec_live_in_the_gc_heap() {
    let heap = heap();
    let b = Box::new_in([7u64; 16], heap);
    assert_eq!(goal_tag((&*b as *const [u64; 16]).cast()), heap.tag());
    let mut v: Vec<u32, &GcHeap> = Vec::new_in(heap);
    v.extend(0..100_000);
    assert_eq!(goal_tag(v.as_ptr().cast()), heap.tag());
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 4_999_950_000);
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/// Blocks sent between threads as addresses (raw pointers are not `Send`).
struct Blocks(std::vec::Vec<usize>);

#[test]
fn four_threads_allocate_in_one_gc_heap_and_free_each_others_blocks() {
    const THREADS: usize = 4;
    const BLOCKS: usize = 50_000;
    let heap = heap();
    let layout = Layout::from_size_align(48, 8).unwrap();
    let (senders, receivers): (std::vec::Vec<_>, std::vec::Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Blocks>()).unzip();
    let threads: std::vec::Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, rx)| {
            let next = senders[(i + 1) % THREADS].clone();
            thread::spawn(move || {
                for round in 0..4 {
                    let mine: std::vec::Vec<usize> = (0..BLOCKS)
                        .map(|k| {
                            let p = heap.allocate(layout).unwrap().cast::<u64>().as_ptr();
                            // SAFETY: 48 writable bytes.
                            unsafe { p.write((i * BLOCKS + k) as u64 ^ round) };
                            assert_eq!(goal_tag(p.cast()), heap.tag());
                            p as usize
                        })
                        .collect();
                    next.send(Blocks(mine)).unwrap();
                    let theirs = rx.recv().unwrap();
                    let from = (i + THREADS - 1) % THREADS;
                    for (k, &p) in theirs.0.iter().enumerate() {
                        let p = p as *mut u64;
                        // SAFETY: a live block the previous thread allocated and handed over.
                        unsafe {
                            assert_eq!(p.read(), (from * BLOCKS + k) as u64 ^ round, "a block was overwritten");
                            heap.deallocate(NonNull::new_unchecked(p).cast(), layout);
                        }
                    }
                }
            })
        })
        .collect();
    drop(senders);
    for t in threads {
        t.join().unwrap();
    }
    heap.refresh();
    // Every block was freed; the exited threads' pages hold nothing.
    assert!(heap.estimate() < 256 << 10, "{:?}", heap.usage());
}

/// With the `nightly` feature `&GcHeap` is the standard library's
/// `Allocator`: `std`'s own `Box` and `Vec` take it.
#[cfg(feature = "nightly")]
#[test]
fn std_box_and_vec_take_a_gc_heap_on_nightly() {
    let heap = heap();
    let b = std::boxed::Box::new_in(7u64, heap);
    assert_eq!(goal_tag((&*b as *const u64).cast()), heap.tag());
    let mut v = std::vec::Vec::new_in(heap);
    v.extend(0..1000u32);
    assert_eq!(goal_tag(v.as_ptr().cast()), heap.tag());
}

/// The page tag of a global allocation made by a pthread key destructor
/// that runs after mimalloc's own (so after the thread's heaps, its GcHeap
/// heap among them, were deleted).
static LATE_ALLOCATION_TAG: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

extern "C" fn allocate_after_thread_exit(_: *mut libc::c_void) {
    let late = std::boxed::Box::new([7u8; 32]);
    LATE_ALLOCATION_TAG.store(u32::from(goal_tag(late.as_ptr())), std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn a_global_allocation_after_thread_exit_stays_out_of_the_gc_heap() {
    let heap = heap();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is a plain function.
    assert_eq!(unsafe { libc::pthread_key_create(&mut key, Some(allocate_after_thread_exit)) }, 0);
    thread::spawn(move || {
        // A small allocation from the GcHeap: the thread's heap of its tag
        // is created, and is the last GC heap the thread allocated from.
        let block = Box::new_in([1u8; 32], heap);
        assert_eq!(goal_tag(block.as_ptr()), heap.tag());
        drop(block);
        // SAFETY: the key is live; a non-null value makes the destructor run.
        unsafe { libc::pthread_setspecific(key, std::ptr::dangling::<libc::c_void>()) };
    })
    .join()
    .unwrap();
    let tag = LATE_ALLOCATION_TAG.load(std::sync::atomic::Ordering::Relaxed);
    assert_ne!(tag, u32::MAX, "the key destructor did not run");
    assert_eq!(tag, 0, "a global allocation landed in the pages of GcHeap tag {tag}");
}
