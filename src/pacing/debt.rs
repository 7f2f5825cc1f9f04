//! [`DebtMeter`]: the estimate's growth as allocation debt, for collectors
//! that pace themselves by object counts.

/// Turns the growth of [`estimate`](crate::estimate) into allocation debt,
/// in objects, for a collector that paces itself by counting objects and so
/// cannot see the bytes they own outside its heap: gc-arena since 0.7 (the
/// Ruffle and piccolo collectors), whose changelog tells users to "keep track
/// of memory manually and create debt artificially".
///
/// Such a collector already charges one unit per allocated object. When the
/// objects own buffers (a `Vec` payload, a string), memory grows faster than
/// the count says; [`extra_debt`](Self::extra_debt) is the difference: the
/// memory growth since the last call, in objects of the heap's average size,
/// less the allocations the collector charged for meanwhile. Memory that
/// falls (a sweep) moves the mark down, so only new growth counts.
///
/// One meter per arena, on the arena's thread (it is `Send`, not `Sync`: an
/// arena is single-threaded). The estimate is process-wide: with several
/// arenas or threads allocating, each meter sees all of their growth.
///
/// ```ignore
/// use gc_arena::{Arena, Gc, Rootable};
///
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// let mut arena = Arena::<Rootable![Vec<Gc<'_, Box<[u8]>>>]>::new(|_| Vec::new());
/// let mut meter = gcmalloc::DebtMeter::new();
/// for _ in 0..100 {
///     arena.mutate_root(|mc, root| {
///         root.push(Gc::new(mc, vec![0u8; 64 << 10].into_boxed_slice()));
///         if root.len() > 10 {
///             root.clear(); // garbage with large payloads
///         }
///     });
///     // One allocation, but 64 KiB of memory: debt beyond the count.
///     let live = arena.metrics().total_gc_count();
///     arena.metrics().adjust_debt(meter.extra_debt(1, live));
///     arena.collect_debt();
/// }
/// ```
#[derive(Debug)]
pub struct DebtMeter {
    mark: usize,
}

impl DebtMeter {
    /// A meter whose first growth counts from the estimate now.
    pub fn new() -> DebtMeter {
        DebtMeter { mark: crate::estimate() }
    }

    /// The debt, in objects, of the memory growth since the last call beyond
    /// what `allocated` objects of the heap's average size (estimate divided
    /// by `live_objects`) explain; 0 if memory did not grow more than that.
    /// Reads the estimate once (a few nanoseconds; never allocates).
    ///
    /// ```
    /// let mut meter = gcmalloc::DebtMeter::new();
    /// assert_eq!(meter.extra_debt(0, 0), 0.0, "no live objects: no debt");
    /// ```
    pub fn extra_debt(&mut self, allocated: usize, live_objects: usize) -> f64 {
        let now = crate::estimate();
        let grown = now.saturating_sub(self.mark);
        self.mark = now;
        if grown == 0 || live_objects == 0 {
            return 0.0;
        }
        let bytes_per_object = now as f64 / live_objects as f64;
        (grown as f64 / bytes_per_object - allocated as f64).max(0.0)
    }
}

impl Default for DebtMeter {
    fn default() -> DebtMeter {
        DebtMeter::new()
    }
}
