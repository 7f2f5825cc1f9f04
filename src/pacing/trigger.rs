//! [`GcTrigger`]: when should a garbage-collected runtime collect?
//!
//! The rule is CPython 3.14t's: count young allocations, and once they pass a
//! threshold, collect only if memory grew by more than a fraction since the
//! last collection, never deferring more than a cap. CPython first measured
//! memory with the OS RSS, which does not fall after a collection (mimalloc
//! keeps freed pages), so the gate deferred almost every collection and RSS
//! reached ~1 GB where ~100 MB was live (PR #148940). gcmalloc's
//! [`estimate`](crate::estimate) falls when memory is freed, costs no syscall
//! and stops no thread: it is the default [`MemorySource`].

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use crate::pacing::balanced::{IncrementalPacing, MemBalancer};
use crate::pacing::limit::MemoryLimit;
use crate::pacing::proc_memory;
use crate::pacing::signals::{Setup, Signals};
use crate::pacing::stats::{CollectReason, Counters, TriggerStats};
use crate::runtime::world;
use crate::sync::{const_thread_local, AtomicU64, AtomicUsize, Ordering};
use Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Allocations a thread records locally before adding them to the shared
/// counter. Bounds how far [`GcTrigger::pending`] can lag behind the other
/// threads' [`GcTrigger::record_alloc`] calls: by less than this per thread.
pub const RECORD_BATCH: usize = 64;

/// The gate never asks for less growth than this (CPython: 128 KiB), so that
/// a tiny baseline does not make every check collect.
const GATE_MIN_GROWTH: usize = 128 << 10;

/// Where a [`GcTrigger`] reads how much memory the process holds.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum MemorySource {
    /// gcmalloc's [`estimate`](crate::estimate): a few nanoseconds, falls
    /// when memory is freed. The default.
    Estimate,
    /// `VmRSS + VmSwap` from `/proc/self/status`: a syscall per read, and it
    /// does not fall when mimalloc keeps freed pages. For comparison only.
    /// Where procfs cannot be read, the trigger behaves as with `None`.
    Rss,
    /// No memory gate: collect whenever the young threshold is passed.
    None,
    /// A function of the caller's, returning bytes (tests, or a runtime's
    /// own accounting).
    Custom(fn() -> usize),
    /// The live bytes of one [`GcHeap`](crate::GcHeap)
    /// ([`GcHeap::estimate`](crate::GcHeap::estimate)): a runtime's own
    /// objects, whatever the rest of the program holds. Costs what
    /// `Estimate` costs; [`GcTrigger::collected`] refreshes the calling
    /// thread's share of it.
    GcHeap(&'static crate::GcHeap),
}

impl MemorySource {
    /// Reads the source, in bytes; `None` for [`MemorySource::None`] (and for
    /// `Rss` where procfs is unavailable).
    ///
    /// ```
    /// use gcmalloc::MemorySource;
    /// assert_eq!(MemorySource::None.read(), None);
    /// assert_eq!(MemorySource::Custom(|| 4096).read(), Some(4096));
    /// # #[cfg(target_os = "linux")]
    /// assert!(MemorySource::Rss.read().unwrap() > 0);
    /// ```
    pub fn read(&self) -> Option<usize> {
        match self {
            MemorySource::Estimate => Some(crate::estimate()),
            MemorySource::Rss => proc_memory::rss_and_swap(),
            MemorySource::None => None,
            MemorySource::Custom(read) => Some(read()),
            MemorySource::GcHeap(heap) => Some(heap.estimate()),
        }
    }
}

/// How memory decides, once the young threshold is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pacing {
    /// CPython 3.14t: collect if memory grew by more than `percent` % of the
    /// baseline (at least 128 KiB) since the last collection; otherwise defer.
    Gate {
        /// Growth that triggers a collection, in percent of the baseline.
        percent: u32,
    },
    /// Go's pacer: collect once memory reaches the heap goal
    /// `max(baseline, min_heap) * (1 + gogc / 100)`, where the baseline is the
    /// memory measured right after the last collection (the live heap).
    Goal {
        /// Go's `GOGC`: growth over the live heap allowed before collecting.
        gogc: u32,
        /// The smallest heap the goal is computed from (Go: 4 MiB).
        min_heap: usize,
    },
    /// MemBalancer ([`MemBalancer`]): collect once memory reaches
    /// `L + sqrt(L * tuning * g / s)`, from the live bytes `L` after the
    /// last collection, the allocation rate `g` and the collection speed `s`
    /// that the trigger measures (see [`GcTrigger::collected`]).
    /// [`Pacing::BALANCED`] has the defaults.
    ///
    /// The bytes allocated between two collections are the memory at the
    /// later one's start less the baseline after the earlier one: the net
    /// growth. It is at most the gross allocation (young garbage freed in
    /// between is not seen), and equals it for a tracing collector, which
    /// frees nothing between collections, within the estimate's
    /// [`error_bound`](crate::Usage::error_bound) plus
    /// [`undercount_bound`](crate::Usage::undercount_bound).
    Balanced {
        /// `1 / c`, in bytes: larger spends memory to save collection time.
        tuning: usize,
        /// The least extra memory over the live bytes (a floor for tiny
        /// heaps).
        min_extra: usize,
    },
}

impl Pacing {
    /// `Balanced` with `tuning` 64 MiB (a heap of 64 MiB live that
    /// allocates as fast as it collects gets `GOGC = 100`'s room) and a floor
    /// of 1 MiB.
    pub const BALANCED: Pacing = Pacing::Balanced { tuning: 64 << 20, min_extra: 1 << 20 };

    /// Why memory says "collect", or `None` to defer; `heap_limit` is
    /// `Balanced`'s current limit.
    fn wants_collection(self, memory: usize, baseline: usize, heap_limit: usize) -> Option<CollectReason> {
        let (yes, reason) = match self {
            Pacing::Gate { percent } => {
                let growth = percent_of(baseline, percent).max(GATE_MIN_GROWTH);
                (memory > baseline.saturating_add(growth), CollectReason::Growth)
            }
            Pacing::Goal { gogc, min_heap } => {
                let live = baseline.max(min_heap);
                (memory >= live.saturating_add(percent_of(live, gogc)), CollectReason::Goal)
            }
            Pacing::Balanced { .. } => (memory >= heap_limit, CollectReason::Balanced),
        };
        yes.then_some(reason)
    }

    fn balancer(self) -> Option<MemBalancer> {
        match self {
            Pacing::Balanced { tuning, min_extra } => Some(MemBalancer::new(tuning, min_extra)),
            _ => None,
        }
    }
}

fn percent_of(bytes: usize, percent: u32) -> usize {
    (bytes as u128 * u128::from(percent) / 100).min(usize::MAX as u128) as usize
}

/// Builds a [`GcTrigger`]; every setting has CPython 3.14t's default.
///
/// ```
/// use gcmalloc::{GcTrigger, MemorySource, Pacing};
///
/// let trigger = GcTrigger::builder()
///     .threshold(5_000)
///     .pacing(Pacing::Goal { gogc: 100, min_heap: 4 << 20 })
///     .source(MemorySource::Rss)
///     .build();
/// assert_eq!(trigger.threshold(), 5_000);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TriggerBuilder {
    threshold: usize,
    cap_multiple: usize,
    pacing: Pacing,
    source: MemorySource,
    limit: Option<MemoryLimit>,
    headroom_percent: u32,
    cpu_percent: u32,
}

impl Default for TriggerBuilder {
    fn default() -> Self {
        TriggerBuilder {
            threshold: 2_000,
            cap_multiple: 40,
            pacing: Pacing::Gate { percent: 10 },
            source: MemorySource::Estimate,
            limit: None,
            headroom_percent: 10,
            cpu_percent: 50,
        }
    }
}

impl TriggerBuilder {
    /// Young allocations after which memory is consulted (default 2,000;
    /// 0 is taken as 1).
    pub fn threshold(mut self, allocations: usize) -> Self {
        self.threshold = allocations.max(1);
        self
    }

    /// Collect anyway once `multiple` x threshold allocations were recorded
    /// since the last collection, whatever memory says (default 40).
    pub fn cap_multiple(mut self, multiple: usize) -> Self {
        self.cap_multiple = multiple.max(1);
        self
    }

    /// How memory decides (default `Gate { percent: 10 }`).
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// Where memory is read (default [`MemorySource::Estimate`]).
    pub fn source(mut self, source: MemorySource) -> Self {
        self.source = source;
        self
    }

    /// A soft memory limit on any pacing (default none): the trigger also
    /// says "collect" once memory reaches the limit less the headroom
    /// ([`limit_headroom_percent`](Self::limit_headroom_percent)), as long
    /// as collections take at most the CPU share of
    /// [`gc_cpu_percent`](Self::gc_cpu_percent) (see [`CpuBucket`](crate::CpuBucket)).
    pub fn memory_limit(mut self, limit: MemoryLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The share of the soft limit kept for memory the source does not
    /// see (stacks, code, other allocators), in percent (default 10; at
    /// most 99).
    pub fn limit_headroom_percent(mut self, percent: u32) -> Self {
        self.headroom_percent = percent.min(99);
        self
    }

    /// The share of time that collections driven by the soft limit may take,
    /// in percent (default 50, as Go; 100: no cap).
    pub fn gc_cpu_percent(mut self, percent: u32) -> Self {
        self.cpu_percent = percent.clamp(1, 100);
        self
    }

    /// The trigger, with the current memory as its first baseline.
    pub fn build(self) -> GcTrigger {
        let counts = Arc::new(Counts::default());
        let baseline = self.source.read().unwrap_or(0);
        counts.baseline.store(baseline, Relaxed);
        let signals = Signals::new(Setup {
            balancer: self.pacing.balancer(),
            limit: self.limit,
            headroom_percent: self.headroom_percent,
            cpu_percent: self.cpu_percent,
            baseline,
        });
        GcTrigger { config: self, counts, stats: Counters::default(), signals }
    }
}

/// `should_collect_once`'s phases (`Counts::epoch % 3`).
const ONCE_IDLE: u64 = 0;
const ONCE_DUE: u64 = 1;

/// The shared state of one trigger.
#[derive(Debug, Default)]
struct Counts {
    /// Allocations since the last collection or the last deferral.
    young: AtomicUsize,
    /// Allocations whose collection the memory rule deferred.
    deferred: AtomicUsize,
    /// Memory right after the last collection (bytes).
    baseline: AtomicUsize,
    /// `should_collect_once`'s epoch; `epoch % 3` is its phase: IDLE, DUE (a
    /// yes was given; the next call takes the baseline) or REBASING (that
    /// call is taking it). Every move adds one, so a check that read an
    /// older epoch wins nothing.
    epoch: AtomicU64,
}

/// Decides when a garbage-collected runtime should collect, without stopping
/// the world.
///
/// The runtime calls [`record_alloc`](GcTrigger::record_alloc) as it
/// allocates (cheap: a thread-local add, flushed every [`RECORD_BATCH`]),
/// asks [`should_collect`](GcTrigger::should_collect) at its safepoints, and
/// calls [`collected`](GcTrigger::collected) after each collection.
///
/// `should_collect` is true when more than `threshold` young allocations
/// were recorded and memory allows it ([`Pacing`]), or when the
/// allocations deferred since the last collection pass the cap. When memory
/// says no, the young count moves to the deferred count, so memory is read at
/// most once per `threshold` allocations. Reading never drains the counts:
/// [`pending`](GcTrigger::pending) is unchanged by any number of reads or
/// deferrals (CPython issue #157377, where reading the count consumed it and
/// a 200k-cycle loop ran no collection).
///
/// ```
/// use gcmalloc::{GcTrigger, MemorySource};
///
/// let trigger = GcTrigger::builder().source(MemorySource::None).build();
/// let mut collections = 0;
/// for _ in 0..10_000 {
///     trigger.record_alloc(1);
///     if trigger.should_collect() {
///         // ... trace and sweep ...
///         trigger.collected();
///         collections += 1;
///     }
/// }
/// assert_eq!(collections, 4); // after every 2,001 allocations
/// ```
///
/// # Time-aware pacing, soft limits, and why it collected
///
/// [`Pacing::BALANCED`] sets the limit from the live bytes, the allocation
/// rate and the collection speed, which the trigger measures from the time
/// between a "collect" and [`collected`](Self::collected) (or
/// [`collection_started`](Self::collection_started) /
/// [`collected_in`](Self::collected_in)). [`memory_limit`](TriggerBuilder::memory_limit)
/// adds a soft limit to any pacing. [`stats`](Self::stats) says how often it
/// was asked, deferred, and why it last said yes:
///
/// ```
/// use gcmalloc::{CollectReason, GcTrigger, MemoryLimit, Pacing};
///
/// let trigger = GcTrigger::builder()
///     .pacing(Pacing::BALANCED)
///     .memory_limit(MemoryLimit::Container) // no limit where none is set
///     .build();
/// for _ in 0..10_000 {
///     trigger.record_alloc(1);
///     if trigger.should_collect() {
///         // ... trace and sweep ...
///         trigger.collected();
///     }
/// }
/// if let Some(reason) = trigger.stats().last_reason {
///     assert_ne!(reason, CollectReason::Goal);
/// }
/// ```
///
/// # Driving a real collector
///
/// Thread-safety: every method takes `&self` and may be called from any
/// thread (a `static` trigger is the usual home); [`collected`](Self::collected)
/// drops allocations other threads record while it runs (see there).
///
/// **dumpster** asks a plain `fn` on every `Gc` drop and has no hook after
/// a collection: use [`should_collect_once`](Self::should_collect_once), and
/// record allocations where the runtime makes its `Gc`s. (This example and
/// [`DebtMeter`](crate::DebtMeter)'s run as tests of cyclotron,
/// `examples/cyclotron/tests/driving_collectors.rs`, which depends on the
/// collectors.)
///
/// ```ignore
/// use std::sync::LazyLock;
/// use dumpster::sync::{set_collect_condition, CollectInfo, Gc};
/// use gcmalloc::GcTrigger;
///
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
/// static TRIGGER: LazyLock<GcTrigger> = LazyLock::new(GcTrigger::default);
///
/// fn condition(_: &CollectInfo) -> bool {
///     TRIGGER.should_collect_once()
/// }
///
/// set_collect_condition(condition);
/// for i in 0..10_000 {
///     TRIGGER.record_alloc(1);
///     drop(Gc::new(vec![i; 16])); // dumpster checks the condition here
/// }
/// ```
///
/// **gc-arena** (0.7) paces its incremental collection by object counts; a
/// [`DebtMeter`](crate::DebtMeter) adds the estimate's growth as debt (see
/// there for the example), and `Arena::collect_debt` does the rest.
///
/// **rust-cc**, **rust-gc** (`gc`) and **boa_gc** are thread-local
/// collectors that collect when told to: check at the runtime's safepoints
/// (for example once per interpreted statement or loop back-edge) and force a
/// collection. Each thread keeps its own trigger (a `thread_local!`) and
/// records its own allocations. Turn the collector's own trigger off, or
/// both decide and it collects more often than either alone. The example
/// runs as a doctest on rust-cc 0.6:
///
/// ```
/// use std::cell::RefCell;
/// use gcmalloc::GcTrigger;
/// use rust_cc::{collect_cycles, Cc, Finalize, Trace};
///
/// #[global_allocator]
/// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
///
/// thread_local! { static TRIGGER: GcTrigger = GcTrigger::default(); }
///
/// #[derive(Trace, Finalize)]
/// struct Node {
///     next: RefCell<Option<Cc<Node>>>,
///     payload: Vec<u8>, // rust-cc counts the Cc, not this buffer; the estimate counts both
/// }
///
/// /// Where the runtime makes an object: one allocation, whatever its buffer.
/// fn new_node(payload: usize) -> Cc<Node> {
///     TRIGGER.with(|t| t.record_alloc(1));
///     Cc::new(Node { next: RefCell::new(None), payload: vec![0; payload] })
/// }
///
/// /// At the runtime's safepoints.
/// fn safepoint() {
///     TRIGGER.with(|t| {
///         if t.should_collect() {
///             collect_cycles();
///             t.collected(); // the new baseline: what the collection left
///         }
///     });
/// }
///
/// // rust-cc's own trigger off (a per-thread setting, as its collector).
/// rust_cc::config::config(|c| c.set_auto_collect(false)).unwrap();
/// for _ in 0..20_000 {
///     let (a, b) = (new_node(1024), new_node(1024));
///     *a.next.borrow_mut() = Some(b.clone());
///     *b.next.borrow_mut() = Some(a); // a cycle: garbage once `b` is dropped
///     drop(b);
///     safepoint();
/// }
/// // How often it collected, and why: rust-cc counts every collection,
/// // the trigger those it asked for.
/// let stats = TRIGGER.with(|t| t.stats());
/// assert!(stats.collections > 0, "{stats:?}");
/// assert_eq!(rust_cc::state::executions_count().unwrap() as u64, stats.collections);
/// ```
///
/// rust-gc and boa_gc are not dev-dependencies (so not compiled here); the
/// same shape works with `gc::force_collect()` or `boa_gc::force_collect()`
/// in place of `collect_cycles()`. Neither has a switch for its own trigger,
/// which collects when its count of object bytes passes a threshold that
/// grows with its heap: rust-gc lets a runtime raise that threshold out of
/// the way (`gc::configure(|c| c.threshold = usize::MAX)`, crate feature
/// `unstable-config`) and counts its collections (`gc::stats()`, feature
/// `unstable-stats`); boa_gc (0.17) exposes neither, so its own collections
/// come on top of the trigger's.
///
/// # What to count, and which pacing
///
/// [`record_alloc`](Self::record_alloc) counts **objects**: pass 1 for each
/// object the collector manages, as CPython counts its tracked objects. An
/// object that owns a buffer (a string, a vector) is still 1: its buffer's
/// bytes reach the decision through the memory source, which counts every
/// byte gcmalloc allocated, whoever counts the object. Bytes are the wrong
/// unit: the default threshold of 2,000 would then pass every few objects,
/// and the cap (40 × threshold) would force a collection every 80 KB.
///
/// The threshold is how many objects may be made between two looks at
/// memory, and so between two collections: lower it for runtimes whose
/// objects are few and large (each look costs what the source costs: ~2 ns
/// for the estimate, ~1 µs for RSS), raise it when collecting is expensive
/// and objects are small. The pacing decides how much memory growth makes a
/// collection worthwhile:
///
/// * [`Pacing::Gate`] (the default, 10 %): memory stays close to the live
///   heap (peak about 1.1 × live, plus what `threshold` objects hold), at
///   the price of frequent collections when the live heap is small or the
///   garbage is small cycles. On rust-cc with payloadless cycles, the 10 %
///   gate collected 54 times where rust-cc's own trigger collected 10.
/// * [`Pacing::Goal`] (Go's `GOGC`): lets memory grow to
///   `(1 + gogc / 100)` × the live heap (and at least `min_heap`) before it
///   collects: `gogc: 100` allows twice the live heap, and collected 8 times
///   on the same run. Fewer collections, more memory; the choice for a
///   runtime whose collections are costly.
/// * [`Pacing::BALANCED`]: sets the growth from the measured allocation rate
///   and collection speed; use it when collections vary in cost.
///
/// Whatever the pacing, the memory source must fall when the collector
/// frees: the estimate does, RSS does not (see [`MemorySource`]).
///
/// # Should a single-threaded collector register its thread?
///
/// Not for the trigger: [`record_alloc`](Self::record_alloc),
/// [`should_collect`](Self::should_collect), [`collected`](Self::collected)
/// and the [`estimate`](crate::estimate) work on any thread, registered or
/// not. Registration ([`register_thread`](crate::register_thread)) buys
/// QSBR ([`qsbr::retire`](crate::qsbr::retire): freeing objects that
/// lock-free readers may still hold) and [`stop_the_world`](crate::stop_the_world)
/// (parking other mutators); a collector whose objects never leave their
/// thread (rust-cc, rust-gc, boa_gc) needs neither. It costs a quiescent
/// state at every safepoint, or memory: once any thread has registered,
/// emptied pages wait for a QSBR goal before another size class or the OS
/// may have them ([type-stable pages](crate::set_page_reuse_delay)), and a
/// registered thread that never calls
/// [`quiescent`](crate::ThreadHandle::quiescent) holds every goal back, so
/// that memory grows ([`qsbr::set_lag_report`](crate::qsbr::set_lag_report)
/// reports it). Register only if the runtime retires objects or stops the
/// world, and then every mutator.
#[derive(Debug)]
pub struct GcTrigger {
    config: TriggerBuilder,
    counts: Arc<Counts>,
    stats: Counters,
    signals: Signals,
}

impl Default for GcTrigger {
    fn default() -> Self {
        TriggerBuilder::default().build()
    }
}

impl GcTrigger {
    /// A builder with the default settings (see [`TriggerBuilder`]).
    pub fn builder() -> TriggerBuilder {
        TriggerBuilder::default()
    }

    /// The young-allocation threshold.
    pub fn threshold(&self) -> usize {
        self.config.threshold
    }

    /// The memory source.
    pub fn source(&self) -> MemorySource {
        self.config.source
    }

    /// Records `n` allocations by the calling thread: objects the collector
    /// manages, 1 per object whatever buffer it owns (the memory source sees
    /// the buffer's bytes; see [What to count](Self#what-to-count-and-which-pacing)).
    /// Batched per thread:
    /// other threads see them within [`RECORD_BATCH`] allocations, and a
    /// thread's remainder is added when it exits (by a thread-local
    /// destructor: after `JoinHandle::join` returns, not necessarily when a
    /// `std::thread::scope` ends).
    #[inline]
    pub fn record_alloc(&self, n: usize) {
        let batched = LOCAL.try_with(|local| local.borrow_mut().add(&self.counts, n));
        if batched.is_err() {
            // Thread-local storage already torn down (a thread exiting).
            add_saturating(&self.counts.young, n, Relaxed);
        }
    }

    /// Allocations recorded since the last collection, deferred ones
    /// included. Only reads: never drains the counts.
    pub fn pending(&self) -> usize {
        self.flush_local();
        // Acquire pairs with the deferral's Release: having seen the young
        // count without the deferred allocations, the deferred count shows
        // them.
        self.counts.young.load(Acquire).saturating_add(self.counts.deferred.load(Relaxed))
    }

    /// The memory measured after the last collection (or at creation), in
    /// bytes; 0 with [`MemorySource::None`].
    pub fn baseline(&self) -> usize {
        self.counts.baseline.load(Relaxed)
    }

    /// True if the runtime should collect now. See [`GcTrigger`] for the
    /// rule. Reads memory only when the young threshold is passed.
    pub fn should_collect(&self) -> bool {
        self.flush_local();
        let counts = &*self.counts;
        let young = counts.young.load(Acquire);
        if young <= self.config.threshold {
            return false;
        }
        self.stats.check();
        let Some(memory) = self.config.source.read() else {
            return self.said_yes(CollectReason::Threshold, 0);
        };
        if let Some(reason) = self.memory_says(young, memory) {
            return self.said_yes(reason, memory);
        }
        // Defer: add before subtracting (Release, see `pending`), so that a
        // concurrent `pending()` may over- but never under-count.
        add_saturating(&counts.deferred, young, Relaxed);
        counts.young.fetch_sub(young, Release);
        self.stats.deferral();
        false
    }

    /// Why `memory` (with `young` allocations past the threshold) calls for
    /// a collection: the cap, the soft limit, then the pacing.
    fn memory_says(&self, young: usize, memory: usize) -> Option<CollectReason> {
        let counts = &*self.counts;
        let cap = self.config.threshold.saturating_mul(self.config.cap_multiple);
        if young.saturating_add(counts.deferred.load(Relaxed)) > cap {
            return Some(CollectReason::Cap);
        }
        if self.signals.over_limit(memory, &self.stats) {
            return Some(CollectReason::Limit);
        }
        let heap_limit = self.signals.heap_limit();
        self.config.pacing.wants_collection(memory, counts.baseline.load(Relaxed), heap_limit)
    }

    fn said_yes(&self, reason: CollectReason, memory: usize) -> bool {
        if self.timed() {
            self.signals.started(memory);
        }
        self.stats.yes(reason)
    }

    /// Whether the trigger measures time (for `Balanced` or a soft limit);
    /// `Gate` and `Goal` alone read no clock.
    fn timed(&self) -> bool {
        matches!(self.config.pacing, Pacing::Balanced { .. }) || self.config.limit.is_some()
    }

    /// Call after each collection: clears the counts and records the memory
    /// now held as the new baseline. Allocations that other threads record
    /// while this runs may be dropped; call it while the collector excludes
    /// them (e.g. under a stop-the-world) for exact counts.
    ///
    /// With [`MemorySource::Estimate`] or [`MemorySource::GcHeap`] it first
    /// refreshes the estimate, so that the baseline counts what the
    /// collection freed:
    ///
    /// * called by the thread that holds a [`StopTheWorld`](crate::StopTheWorld),
    ///   it refreshes every heap of that thread and of every thread the stop
    ///   parked at a safepoint, as
    ///   [`StopTheWorld::refresh_estimate`](crate::StopTheWorld::refresh_estimate)
    ///   does. So a **dedicated collector thread**, which frees the mutators'
    ///   objects but allocated none of them, calls it before it drops the
    ///   stop (example below). Threads stopped while detached are not
    ///   refreshed: what the collection freed of theirs stays counted until
    ///   their own allocator slow paths;
    /// * called with no stop held, it refreshes the calling thread's share
    ///   only ([`refresh_estimate`](crate::refresh_estimate), or
    ///   [`GcHeap::refresh`](crate::GcHeap::refresh)): right for a mutator
    ///   that collects its own objects, but after a stop has ended the other
    ///   threads' heaps can no longer be refreshed, and the baseline stays
    ///   near the pre-collection figure for what the collection freed of
    ///   theirs (unless the holder called `StopTheWorld::refresh_estimate`
    ///   before the restart).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use gcmalloc::{GcTrigger, MemorySource};
    ///
    /// #[global_allocator]
    /// static GLOBAL: gcmalloc::GcMalloc = gcmalloc::GcMalloc;
    ///
    /// // Objects a mutator allocated; a collector thread will free them.
    /// let heap: Arc<Mutex<Vec<Box<[u64; 8]>>>> = Arc::default();
    /// let trigger = GcTrigger::builder().source(MemorySource::Estimate).build();
    /// let mutator = {
    ///     let heap = Arc::clone(&heap);
    ///     std::thread::spawn(move || {
    ///         let me = gcmalloc::register_thread();
    ///         heap.lock().unwrap().extend((0..100_000).map(|i| Box::new([i; 8])));
    ///         while !heap.lock().unwrap().is_empty() {
    ///             me.quiescent(); // the safepoint where a stop parks it
    ///         }
    ///     })
    /// };
    /// while heap.lock().unwrap().len() < 100_000 {
    ///     std::thread::yield_now();
    /// }
    /// let before = gcmalloc::usage().exact();
    /// // The collector: stop, sweep, then `collected()` before the restart.
    /// let world = gcmalloc::stop_the_world();
    /// heap.lock().unwrap().clear(); // frees the mutator's objects: ~6 MiB
    /// trigger.collected();          // refreshes the parked mutator's heap too
    /// drop(world);
    /// assert!(trigger.baseline() + (4 << 20) < before, "{} vs {before}", trigger.baseline());
    /// mutator.join().unwrap();
    /// ```
    ///
    /// With [`Pacing::Balanced`] or a soft limit, the collection's duration
    /// is measured from the last "collect" (or from
    /// [`collection_started`](Self::collection_started)) to this call, and
    /// the mutator time from the previous call to that start.
    pub fn collected(&self) {
        let memory = self.memory_after_collection();
        self.rebase(memory, None);
    }

    /// [`collected`](Self::collected), for a runtime that timed the
    /// collection itself: `took` is its duration.
    ///
    /// ```
    /// use std::time::Instant;
    /// use gcmalloc::{GcTrigger, MemorySource, Pacing};
    ///
    /// let trigger = GcTrigger::builder().pacing(Pacing::BALANCED).source(MemorySource::Custom(|| 8 << 20)).build();
    /// let start = Instant::now();
    /// // ... trace and sweep ...
    /// trigger.collected_in(start.elapsed());
    /// assert!(trigger.heap_limit().unwrap() >= (8 << 20) + (1 << 20));
    /// ```
    pub fn collected_in(&self, took: Duration) {
        let memory = self.memory_after_collection();
        self.rebase(memory, Some(took));
    }

    /// Tells the trigger a collection starts now, for a runtime that
    /// collects without asking (or long after the "collect"): its time and
    /// the memory at its start feed [`Pacing::Balanced`] and the CPU cap.
    /// Reads the source; does nothing with `Gate` or `Goal` and no limit.
    pub fn collection_started(&self) {
        if self.timed() {
            self.signals.started(self.config.source.read().unwrap_or(0));
        }
    }

    /// The counters since the trigger was built, and why it last said
    /// "collect". Relaxed loads; never allocates.
    pub fn stats(&self) -> TriggerStats {
        self.stats.snapshot()
    }

    /// [`Pacing::Balanced`]'s heap limit for this cycle, in bytes; `None`
    /// with another pacing.
    pub fn heap_limit(&self) -> Option<usize> {
        matches!(self.config.pacing, Pacing::Balanced { .. }).then(|| self.signals.heap_limit())
    }

    /// The soft memory limit as last read (before the headroom), in bytes;
    /// `None` without one (or where the container sets none).
    pub fn memory_limit(&self) -> Option<usize> {
        self.signals.memory_limit()
    }

    /// For an incremental collector: [`Pacing::Balanced`]'s limit as a
    /// sleep and a work rate ([`IncrementalPacing`]); `None` with another
    /// pacing.
    pub fn incremental_pacing(&self) -> Option<IncrementalPacing> {
        self.heap_limit().map(|limit| IncrementalPacing::for_limit(self.baseline(), limit))
    }

    /// The memory now held, the estimate refreshed first: the calling
    /// thread's share, and under a stop that thread holds every parked
    /// thread's too. Runs the source, which may be user code that panics.
    fn memory_after_collection(&self) -> usize {
        match self.config.source {
            MemorySource::Estimate | MemorySource::GcHeap(_) if world::holds_stop() => {
                world::refresh_stopped_threads();
            }
            MemorySource::Estimate => crate::refresh_estimate(),
            MemorySource::GcHeap(heap) => heap.refresh(),
            MemorySource::Rss | MemorySource::None | MemorySource::Custom(_) => {}
        }
        self.config.source.read().unwrap_or(0)
    }

    /// Clears the counts and takes `memory` as the baseline. Runs no user
    /// code, so it cannot be left half done.
    fn rebase(&self, memory: usize, took: Option<Duration>) {
        self.flush_local();
        let counts = &*self.counts;
        counts.young.store(0, Relaxed);
        counts.deferred.store(0, Relaxed);
        let previous = counts.baseline.swap(memory, Relaxed);
        self.stats.collection();
        if self.timed() {
            self.signals.collected(memory, previous, took);
        }
    }

    /// [`should_collect`](Self::should_collect) for collectors that ask a
    /// plain `fn` whether to collect and have no hook after a collection,
    /// such as dumpster's `set_collect_condition`: true once per due
    /// collection (one caller wins it), and the first call after that takes
    /// the new baseline itself (as [`collected`](Self::collected) does) and
    /// says no. The collector is expected to collect between the two calls;
    /// dumpster does, on the thread that got `true`, before its next check.
    ///
    /// Thread-safe. With several threads, a check on another thread while the
    /// collection runs may take the baseline before the collection ends: the
    /// baseline is then higher and the next collection comes later, by at
    /// most what that collection freed.
    ///
    /// ```
    /// use std::sync::LazyLock;
    /// use gcmalloc::{GcTrigger, MemorySource};
    ///
    /// static TRIGGER: LazyLock<GcTrigger> =
    ///     LazyLock::new(|| GcTrigger::builder().source(MemorySource::None).build());
    ///
    /// // A collect condition, as dumpster takes it: a plain `fn`, no state.
    /// fn condition() -> bool {
    ///     TRIGGER.should_collect_once()
    /// }
    ///
    /// TRIGGER.record_alloc(2_001);
    /// assert!(condition(), "due");
    /// // ... the collector collects here ...
    /// assert!(!condition(), "the next check takes the new baseline");
    /// assert_eq!(TRIGGER.pending(), 0);
    /// ```
    pub fn should_collect_once(&self) -> bool {
        let counts = &*self.counts;
        // Acquire: pairs with the AcqRel moves below, so the rebase sees the
        // counts as the yes left them.
        let epoch = counts.epoch.load(Acquire);
        match epoch % 3 {
            ONCE_IDLE => {
                // AcqRel: the yes goes to the one caller that moves the epoch
                // it read; a check that raced a yes or a rebase finds it moved.
                self.should_collect() && counts.epoch.compare_exchange(epoch, epoch + 1, AcqRel, Relaxed).is_ok()
            }
            ONCE_DUE => {
                // The source (user code, which may panic) is read before the
                // phase moves: a panic leaves the epoch DUE, and the next
                // check reads again. No user code runs while REBASING.
                let memory = self.memory_after_collection();
                // One caller takes the baseline, and only then lets checks
                // run again (Release: they see the cleared counts).
                if counts.epoch.compare_exchange(epoch, epoch + 1, AcqRel, Relaxed).is_ok() {
                    self.rebase(memory, None);
                    counts.epoch.store(epoch + 2, Release);
                }
                false
            }
            _ => false, // rebasing
        }
    }

    /// Adds the calling thread's batched allocations to the shared count.
    fn flush_local(&self) {
        let _ = LOCAL.try_with(|local| local.borrow_mut().flush_if_owned_by(&self.counts));
    }
}

const_thread_local! {
    static LOCAL: RefCell<LocalBatch> = RefCell::new(LocalBatch { owner: None, pending: 0 });
}

/// A thread's allocations not yet added to its trigger's shared count. It
/// batches for one trigger at a time: recording for another flushes first.
struct LocalBatch {
    owner: Option<Arc<Counts>>,
    pending: usize,
}

impl LocalBatch {
    #[inline]
    fn add(&mut self, counts: &Arc<Counts>, n: usize) {
        if !self.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, counts)) {
            self.flush();
            self.owner = Some(Arc::clone(counts));
        }
        self.pending = self.pending.saturating_add(n);
        if self.pending >= RECORD_BATCH {
            self.flush();
        }
    }

    fn flush_if_owned_by(&mut self, counts: &Arc<Counts>) {
        if self.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, counts)) {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Some(owner) = &self.owner {
            add_saturating(&owner.young, self.pending, Relaxed);
        }
        self.pending = 0;
    }
}

/// Counts saturate instead of wrapping: a runtime that records huge counts
/// (or never collects) sees "very many", never a small number.
fn add_saturating(count: &AtomicUsize, n: usize, order: Ordering) {
    let _ = count.fetch_update(order, Relaxed, |c| Some(c.saturating_add(n)));
}

impl Drop for LocalBatch {
    fn drop(&mut self) {
        self.flush();
    }
}
