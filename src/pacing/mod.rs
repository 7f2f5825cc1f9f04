//! Collection pacing: when a runtime should collect.
//!
//! * `trigger`: [`GcTrigger`](crate::GcTrigger), a young-allocation threshold
//!   gated by memory growth, on a [`MemorySource`](crate::MemorySource);
//! * `debt`: [`DebtMeter`](crate::DebtMeter), the estimate's growth as the
//!   allocation debt of an incremental collector;
//! * `balanced`: [`MemBalancer`](crate::MemBalancer), the heap limit of
//!   MemBalancer for [`Pacing::Balanced`](crate::Pacing::Balanced);
//! * `limit`: a soft memory limit ([`MemoryLimit`](crate::MemoryLimit)) and
//!   the GC CPU cap's leaky bucket ([`CpuBucket`](crate::CpuBucket));
//! * `cgroup`: the container's limit, from the cgroup files;
//! * `signals`: the times and memory a trigger measures across collections;
//! * `stats`: [`TriggerStats`](crate::TriggerStats), why a trigger collected;
//! * `proc_memory`: the process's RSS, read from `/proc`.
//!
//! Pacing reads the allocator's figures and the runtime's; nothing below it
//! imports from here.

pub(crate) mod balanced;
pub(crate) mod cgroup;
pub(crate) mod debt;
pub(crate) mod limit;
pub(crate) mod proc_memory;
pub(crate) mod signals;
pub(crate) mod stats;
pub(crate) mod trigger;
