//! Retired items waiting for their goal: a chunked FIFO.
//!
//! Each registered thread owns one [`Fifo`] (in its registry slot); a shared
//! one, behind a mutex, holds the *orphans* that exiting or unregistered
//! threads hand over. Items are appended with no goal (`UNSEALED`) and get
//! one, all at once, when their batch is *sealed* by a real advance of the
//! write sequence (see the module docs of `crate::qsbr` for why). Goals are
//! therefore non-decreasing from head to tail, so processing stops at the
//! first item whose goal is not reached.
//!
//! Chunks come from [`std::alloc::System`], never from the global allocator:
//! the FIFO is used inside the allocator's own paths (the orphan queue is
//! pushed to under its lock), and an allocation through `GcMalloc` there could
//! re-enter gcmalloc while the lock is held.

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr;
use std::alloc::{GlobalAlloc, System};

/// Panics caught in reclaimed items' `Drop`s (`qsbr::Stats::drop_panics`).
/// Diagnostics only: a std atomic even under loom.
pub(crate) static DROP_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The goal of an item whose batch has not been sealed yet (goals are odd).
pub(crate) const UNSEALED: u64 = 0;

/// Items per chunk: a chunk is about 4 KiB; tiny under loom.
const CHUNK_ITEMS: usize = if cfg!(loom) { 2 } else { 127 };

/// Items per [`Batch`]: 1 KiB of stack; tiny under loom, so that the models
/// reach the "next batch" step.
const BATCH_ITEMS: usize = if cfg!(loom) { 1 } else { 32 };

/// One retired item: `reclaim(ptr)` runs once `goal` is reached.
pub(crate) struct Item {
    pub(crate) goal: u64,
    pub(crate) bytes: usize,
    ptr: *mut (),
    reclaim: unsafe fn(*mut ()),
}

impl Item {
    /// A retired `reclaim(ptr)`, accounted as `bytes` of pending memory.
    ///
    /// # Safety
    /// `reclaim(ptr)` must be sound to call once, from any thread, after every
    /// registered thread has passed a quiescent state.
    pub(crate) unsafe fn new(ptr: *mut (), reclaim: unsafe fn(*mut ()), bytes: usize) -> Item {
        Item { goal: UNSEALED, bytes, ptr, reclaim }
    }

    /// Frees the item. Its goal must be reached.
    ///
    /// A panic in the item's `Drop` is caught here: it must not surface in
    /// whichever unrelated call happened to reclaim the item (a quiescent
    /// state, another thread's `retire`, a handle's drop), nor abort the
    /// process when that call runs at thread exit. The panic hook has
    /// already reported it; the object is gone as far as its `Drop` got, and
    /// `qsbr::Stats::drop_panics` counts it.
    pub(crate) fn reclaim(self) {
        let (ptr, reclaim) = (self.ptr, self.reclaim);
        // SAFETY: `Item::new`'s contract; the caller checked the goal, and
        // taking `self` by value means this runs at most once.
        let run = move || unsafe { reclaim(ptr) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
            DROP_PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

struct Chunk {
    next: *mut Chunk,
    /// Live items are `items[start..end]`.
    start: usize,
    end: usize,
    items: [MaybeUninit<Item>; CHUNK_ITEMS],
}

impl Chunk {
    /// A fresh chunk from the system allocator, or null if it is out of memory.
    fn alloc() -> *mut Chunk {
        // SAFETY: the layout has a non-zero size. The chunk is fully
        // initialized (the items are MaybeUninit) before it is returned.
        unsafe {
            let c = System.alloc(Layout::new::<Chunk>()).cast::<Chunk>();
            if !c.is_null() {
                ptr::addr_of_mut!((*c).next).write(ptr::null_mut());
                ptr::addr_of_mut!((*c).start).write(0);
                ptr::addr_of_mut!((*c).end).write(0);
            }
            c
        }
    }

    /// # Safety
    /// `c` came from [`Chunk::alloc`] and holds no live item.
    unsafe fn free(c: *mut Chunk) {
        // SAFETY: the caller's contract; same layout as in `alloc`.
        unsafe { System.dealloc(c.cast(), Layout::new::<Chunk>()) }
    }
}

/// A FIFO of [`Item`]s in linked chunks. Not thread-safe by itself: a slot's
/// FIFO is touched only by its owner, the orphan FIFO only under its mutex.
pub(crate) struct Fifo {
    head: *mut Chunk,
    tail: *mut Chunk,
    /// One emptied chunk kept for the next push, so that a steady
    /// retire/reclaim rhythm does not call the system allocator.
    spare: *mut Chunk,
    /// Where the unsealed items begin (valid when `unsealed > 0`).
    seal_chunk: *mut Chunk,
    seal_index: usize,
    len: usize,
    /// Exact: `retire_with_size` takes any byte count, and a sum of them may
    /// pass `usize::MAX` (read out saturated by [`Fifo::bytes`]).
    bytes: u128,
    unsealed: usize,
    /// Saturating: only compared with the seal limit.
    unsealed_bytes: usize,
}

// SAFETY: a Fifo owns its chunks and items outright (no shared aliasing), and
// `Item::new`'s contract makes every item's reclaim sound on any thread.
unsafe impl Send for Fifo {}

impl Fifo {
    crate::sync::loom_const_fn! {
        pub(crate) fn new() -> Fifo {
            Fifo {
                head: ptr::null_mut(),
                tail: ptr::null_mut(),
                spare: ptr::null_mut(),
                seal_chunk: ptr::null_mut(),
                seal_index: 0,
                len: 0,
                bytes: 0,
                unsealed: 0,
                unsealed_bytes: 0,
            }
        }
    }

    /// Items queued (sealed or not).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes queued (sealed or not), saturated at `usize::MAX`.
    pub(crate) fn bytes(&self) -> usize {
        usize::try_from(self.bytes).unwrap_or(usize::MAX)
    }

    /// Items and bytes waiting for a seal.
    pub(crate) fn unsealed(&self) -> (usize, usize) {
        (self.unsealed, self.unsealed_bytes)
    }

    /// Appends `item` unsealed. If the system allocator fails, this reports
    /// it like any failed allocation (`handle_alloc_error`): dropping the item
    /// early would be unsound and leaking it silently would hide the failure.
    pub(crate) fn push(&mut self, item: Item) {
        let bytes = item.bytes;
        // SAFETY: `tail` is null or a live chunk owned by this FIFO.
        let full = self.tail.is_null() || unsafe { (*self.tail).end == CHUNK_ITEMS };
        if full {
            let c = if self.spare.is_null() {
                Chunk::alloc()
            } else {
                core::mem::replace(&mut self.spare, ptr::null_mut())
            };
            if c.is_null() {
                std::alloc::handle_alloc_error(Layout::new::<Chunk>());
            }
            if self.tail.is_null() {
                self.head = c;
            } else {
                // SAFETY: `tail` is a live chunk owned by this FIFO.
                unsafe { (*self.tail).next = c };
            }
            self.tail = c;
        }
        // SAFETY: `tail` is live and has room at `end` (checked above).
        unsafe {
            let t = &mut *self.tail;
            if self.unsealed == 0 {
                self.seal_chunk = self.tail;
                self.seal_index = t.end;
            }
            t.items[t.end].write(item);
            t.end += 1;
        }
        self.len += 1;
        self.bytes += bytes as u128;
        self.unsealed += 1;
        self.unsealed_bytes = self.unsealed_bytes.saturating_add(bytes);
    }

    /// Gives every unsealed item the goal `goal`.
    pub(crate) fn seal(&mut self, goal: u64) {
        let (mut c, mut i) = (self.seal_chunk, self.seal_index);
        while self.unsealed > 0 {
            // SAFETY: the unsealed items are the last `unsealed` ones, starting
            // at (seal_chunk, seal_index); processing never pops an unsealed
            // item, so these chunks are live.
            unsafe {
                if i == (*c).end {
                    c = (*c).next;
                    i = (*c).start;
                    continue;
                }
                (*c).items[i].assume_init_mut().goal = goal;
            }
            i += 1;
            self.unsealed -= 1;
        }
        self.unsealed_bytes = 0;
    }

    /// The goal of the oldest item, if there is one (`UNSEALED` if unsealed).
    pub(crate) fn front_goal(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        // SAFETY: len > 0, so `head` is live and its first item is live.
        unsafe {
            let h = &*self.head;
            Some(h.items[h.start].assume_init_ref().goal)
        }
    }

    /// Removes and returns the oldest item if `due(goal)` says its (sealed)
    /// goal is reached.
    pub(crate) fn pop_if(&mut self, due: impl FnOnce(u64) -> bool) -> Option<Item> {
        match self.front_goal() {
            Some(g) if g != UNSEALED && due(g) => {}
            _ => return None,
        }
        // SAFETY: the FIFO is non-empty, so `head.items[start]` is live; it is
        // moved out and `start` moves past it, so it is never read again.
        let item = unsafe {
            let h = &mut *self.head;
            let item = h.items[h.start].assume_init_read();
            h.start += 1;
            item
        };
        self.len -= 1;
        self.bytes -= item.bytes as u128;
        // SAFETY: `head` is live; an emptied chunk is unlinked before reuse.
        unsafe {
            if (*self.head).start == (*self.head).end && self.head != self.tail {
                let empty = self.head;
                self.head = (*empty).next;
                self.recycle(empty);
            } else if self.len == 0 {
                let h = &mut *self.head;
                (h.start, h.end) = (0, 0);
            }
        }
        Some(item)
    }

    /// Moves the oldest items whose (sealed) goal `due` says is reached into
    /// `batch`, until it is full or the next item is not due.
    pub(crate) fn take_due(&mut self, batch: &mut Batch, mut due: impl FnMut(u64) -> bool) {
        while batch.len < BATCH_ITEMS {
            match self.pop_if(&mut due) {
                Some(item) => {
                    batch.items[batch.len].write(item);
                    batch.len += 1;
                }
                None => return,
            }
        }
    }

    /// # Safety
    /// `c` is an emptied chunk no longer linked into this FIFO.
    unsafe fn recycle(&mut self, c: *mut Chunk) {
        // SAFETY: the caller's contract.
        unsafe {
            (*c).next = ptr::null_mut();
            (*c).start = 0;
            (*c).end = 0;
            if self.spare.is_null() {
                self.spare = c;
            } else {
                Chunk::free(c);
            }
        }
    }

    /// Moves every item of `other` (which must be fully sealed) to the back
    /// of `self`. `self` must be fully sealed too, so goals stay in order
    /// per source; across sources the FIFO order is only approximate, which
    /// processing tolerates (it stops early, never frees early).
    pub(crate) fn append(&mut self, other: &mut Fifo) {
        debug_assert!(self.unsealed == 0 && other.unsealed == 0);
        if other.len == 0 {
            return;
        }
        if self.len == 0 {
            // Drop our empty chunk (if any) and take other's list whole.
            if !self.head.is_null() {
                let c = self.head;
                // SAFETY: an empty FIFO's only chunk is unused.
                unsafe { self.recycle(c) };
            }
            self.head = other.head;
        } else {
            // SAFETY: `tail` is a live chunk owned by this FIFO.
            unsafe { (*self.tail).next = other.head };
        }
        self.tail = other.tail;
        self.len += other.len;
        self.bytes += other.bytes;
        other.head = ptr::null_mut();
        other.tail = ptr::null_mut();
        other.len = 0;
        other.bytes = 0;
    }
}

/// Due items taken off a queue, to be reclaimed once the queue is let go
/// of: a reclaimed item's `Drop` is user code, which may end the thread's
/// registration (and so hand its queue to another thread) or take the
/// orphan queue's lock. A fixed array on the stack, so reclaiming never
/// allocates (the quiescent path must not).
pub(crate) struct Batch {
    items: [MaybeUninit<Item>; BATCH_ITEMS],
    len: usize,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch { items: [const { MaybeUninit::uninit() }; BATCH_ITEMS], len: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reclaims the items, oldest first (each one's panic is caught in
    /// [`Item::reclaim`]).
    pub(crate) fn reclaim(mut self) {
        let len = core::mem::replace(&mut self.len, 0);
        for slot in &mut self.items[..len] {
            // SAFETY: the first `len` items are initialized (`take_due`),
            // and `len` is reset above, so each is read exactly once.
            unsafe { slot.assume_init_read() }.reclaim();
        }
    }
}

impl Drop for Fifo {
    /// Frees the chunks. Items still queued are leaked, never freed early: a
    /// FIFO is only dropped when its items can no longer be reclaimed safely.
    fn drop(&mut self) {
        let mut c = self.head;
        while !c.is_null() {
            // SAFETY: every chunk in the list is owned by this FIFO.
            unsafe {
                let next = (*c).next;
                Chunk::free(c);
                c = next;
            }
        }
        if !self.spare.is_null() {
            // SAFETY: the spare chunk is owned and unlinked.
            unsafe { Chunk::free(self.spare) };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RECLAIMED: AtomicUsize = AtomicUsize::new(0);

    unsafe fn count(_: *mut ()) {
        RECLAIMED.fetch_add(1, Ordering::Relaxed);
    }

    fn item(bytes: usize) -> Item {
        // SAFETY: `count` is sound for any pointer.
        unsafe { Item::new(ptr::null_mut(), count, bytes) }
    }

    #[test]
    fn fifo_seals_pops_in_order_and_appends() {
        let mut a = Fifo::new();
        for i in 0..300 {
            a.push(item(i));
            if i == 99 {
                a.seal(3);
            }
        }
        assert_eq!(a.unsealed().0, 200);
        assert!(a.pop_if(|_| true).is_some(), "sealed head pops");
        a.seal(5);
        assert_eq!((a.len(), a.unsealed().0), (299, 0));
        // Stops at the first goal that is not reached.
        let mut popped = 1;
        while let Some(it) = a.pop_if(|g| g <= 3) {
            assert_eq!(it.goal, 3);
            it.reclaim();
            popped += 1;
        }
        assert_eq!(popped, 100);
        let mut b = Fifo::new();
        b.push(item(7));
        b.seal(7);
        a.append(&mut b);
        assert_eq!((a.len(), b.len()), (201, 0));
        let mut goals = vec![];
        while let Some(it) = a.pop_if(|_| true) {
            goals.push(it.goal);
        }
        assert_eq!(goals.len(), 201);
        assert_eq!(*goals.last().unwrap(), 7);
        assert_eq!(a.bytes(), 0);
    }

    #[test]
    fn unsealed_items_never_pop() {
        let mut a = Fifo::new();
        a.push(item(1));
        assert!(a.pop_if(|_| true).is_none());
        assert_eq!(a.front_goal(), Some(UNSEALED));
    }
}
