//! Collection pacing: when a runtime should collect.
//!
//! * `trigger`: [`GcTrigger`](crate::GcTrigger), a young-allocation threshold
//!   gated by memory growth, on a [`MemorySource`](crate::MemorySource);
//! * `debt`: [`DebtMeter`](crate::DebtMeter), the estimate's growth as the
//!   allocation debt of an incremental collector;
//! * `proc_memory`: the process's RSS, read from `/proc`.
//!
//! Pacing reads the allocator's figures and the runtime's; nothing below it
//! imports from here.

pub(crate) mod debt;
pub(crate) mod proc_memory;
pub(crate) mod trigger;
