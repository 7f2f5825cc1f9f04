//! gcmalloc's benchmark suite: workloads modelled on mimalloc-bench and real
//! programs, run by one binary per allocator (`alloc/*`), each of which calls
//! [`child_main`] with its global allocator installed. The driver
//! (`src/bin/driver.rs`) runs them alternately and writes `BENCHMARKS.md`.
//!
//! The child protocol: `<allocator binary> WORKLOAD THREADS SCALE [FLAGS]`
//! runs one workload and prints one JSON line: [`Outcome`].

use std::time::Instant;

use serde::{Deserialize, Serialize};

pub mod workloads;

/// What a child run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub workload: String,
    pub threads: usize,
    pub time_s: f64,
    pub peak_rss_bytes: usize,
    /// A checksum of the work, so that no workload is optimized away and
    /// every allocator computed the same thing.
    pub check: u64,
}

/// Hooks an allocator binary may set: gcmalloc's registers each worker
/// thread with QSBR and announces quiescent states.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Called with the flags after the workload name, threads and scale.
    pub setup: fn(&[String]),
    /// Called on each worker thread as it starts.
    pub enter: fn(),
    /// Called by workers every few hundred operations: a quiescent state.
    pub tick: fn(),
    /// Called on each worker thread as it ends.
    pub exit: fn(),
}

impl Hooks {
    pub const NONE: Hooks = Hooks { setup: |_| {}, enter: || {}, tick: || {}, exit: || {} };
}

/// Runs the child protocol (see the crate docs); exits 2 on bad arguments.
pub fn child_main(hooks: Hooks) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!(
            "usage: ALLOCATOR-BINARY WORKLOAD THREADS SCALE [FLAGS]\nworkloads: {}",
            workloads::names().join(", ")
        );
        std::process::exit(2)
    };
    if args.len() < 3 {
        usage();
    }
    let (Ok(threads), Ok(scale)) = (args[1].parse::<usize>(), args[2].parse::<f64>()) else { usage() };
    let Some(workload) = workloads::find(&args[0]) else { usage() };
    (hooks.setup)(&args[3..]);
    let start = Instant::now();
    let check = workload(&workloads::Ctx { threads: threads.max(1), scale, hooks });
    let time_s = start.elapsed().as_secs_f64();
    let outcome = Outcome { workload: args[0].clone(), threads, time_s, peak_rss_bytes: peak_rss_bytes(), check };
    println!("{}", serde_json::to_string(&outcome).expect("serializes"));
}

/// The peak resident set of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> usize {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    usage.ru_maxrss as usize * 1024
}
