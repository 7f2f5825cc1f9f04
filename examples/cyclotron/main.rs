//! cyclotron: a small GC runtime under stress, comparing GC trigger policies.
//!
//! A Rust port of the workloads behind CPython PR #148940's tables: a toy
//! runtime whose objects come from `GcMalloc`, a mark-sweep collector, and
//! cyclic garbage that reference counting cannot free. Each policy decides
//! when to collect through a `gcmalloc::GcTrigger`:
//!
//! - `count`: every 2,000 allocations (no memory gate);
//! - `rss`: CPython 3.14t's gate on the OS RSS (VmRSS + VmSwap);
//! - `estimate`: the same gate on `gcmalloc::estimate()`;
//! - `goal`: Go-style heap goal (GOGC=100) on `gcmalloc::estimate()`.
//!
//! Every policy runs the same workload, each in a child process of its own so
//! that no run inherits another's peak RSS.
//!
//! ```text
//! cargo run --release --example cyclotron -- --quick
//! cargo run --release --example cyclotron -- --grid --json grid.json --plot grid.svg
//! cargo run --release --example cyclotron -- --workload tree --cycle 10 --extra 100000 --live 10000
//! ```

mod cli;
mod heap;
mod metrics;
mod report;
mod threads;
mod workloads;

use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gcmalloc::{GcMalloc, GcTrigger, MemorySource, Pacing};
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Args, Point, Workload};
use heap::{Heap, Mutator, TrashGauge};
use metrics::{RunResult, Sampler};
use report::PointResults;
use threads::SharedMutator;
use workloads::{Rng, Shape};

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

/// The seed of every run's workload generator: all policies see the same
/// sequence of chains and keys.
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(cli::ArgsError::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(cli::ArgsError::Invalid(message)) => {
            eprintln!("cyclotron: {message}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Some(run) = &args.child {
        let result = run_one(&run.point, &run.policy, args.threads);
        println!("{}", serde_json::to_string(&result).expect("results serialize"));
        return ExitCode::SUCCESS;
    }
    match orchestrate(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cyclotron: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The trigger each policy uses.
fn trigger_for(policy: &str) -> GcTrigger {
    let builder = GcTrigger::builder();
    match policy {
        "count" => builder.source(MemorySource::None),
        "rss" => builder.source(MemorySource::Rss),
        "estimate" => builder.source(MemorySource::Estimate),
        "goal" => builder.source(MemorySource::Estimate).pacing(Pacing::Goal { gogc: 100, min_heap: 4 << 20 }),
        other => unreachable!("policy {other} was validated by the parser"),
    }
    .build()
}

/// Runs one policy on one grid point in this process.
fn run_one(point: &Point, policy: &str, threads: usize) -> RunResult {
    let trigger = trigger_for(policy);
    let shape = point.shape;
    let gauge = Arc::new(TrashGauge::default());
    let start = Instant::now();
    let (pauses, samples) = if threads == 1 {
        let mut heap = Heap::new(Arc::clone(&gauge));
        let mut sampler = Sampler::new(shape.total, Arc::clone(&gauge));
        run_workload(point.workload, &mut heap, &trigger, &shape, SEED, &mut sampler);
        (std::mem::take(&mut heap.pauses), sampler.samples)
    } else {
        run_threads(point.workload, &trigger, &shape, threads, &gauge)
    };
    let time_s = start.elapsed().as_secs_f64();
    let (stable, trash_slope) = metrics::stability(&samples, pauses.len());
    let (pause_p50_ms, pause_p99_ms, pause_max_ms) = metrics::pause_percentiles(&pauses);
    RunResult {
        workload: point.workload.name().into(),
        cycle: shape.cycle,
        extra: shape.extra,
        live: shape.live,
        cyclic_fraction: shape.cyclic_fraction,
        threads,
        total: shape.total,
        policy: policy.into(),
        time_s,
        peak_rss_bytes: metrics::peak_rss_bytes(),
        max_trash: gauge.max(),
        pause_p50_ms,
        pause_p99_ms,
        pause_max_ms,
        collections: pauses.len(),
        stable,
        trash_slope,
        samples,
    }
}

fn run_workload(
    workload: Workload,
    m: &mut impl Mutator,
    trigger: &GcTrigger,
    shape: &Shape,
    seed: u64,
    sampler: &mut Sampler,
) {
    let mut rng = Rng::new(seed);
    match workload {
        Workload::Chain => workloads::run_chain(m, trigger, shape, &mut rng, sampler),
        Workload::Tree => workloads::run_tree(m, trigger, shape, &mut rng, sampler),
    }
}

/// `threads` mutators share the work (`total / threads` objects each) and
/// the trigger; returns every collection's pause and the first thread's
/// samples.
fn run_threads(
    workload: Workload,
    trigger: &GcTrigger,
    shape: &Shape,
    threads: usize,
    gauge: &Arc<TrashGauge>,
) -> (Vec<Duration>, Vec<metrics::Sample>) {
    let heaps: Vec<Mutex<Heap>> = (0..threads).map(|_| Mutex::new(Heap::new(Arc::clone(gauge)))).collect();
    let collector = Mutex::new(());
    let share = Shape { total: shape.total / threads, ..*shape };
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (heaps, collector) = (&heaps, &collector);
                let mut sampler = if i == 0 { Sampler::new(share.total, Arc::clone(gauge)) } else { Sampler::idle() };
                s.spawn(move || {
                    let mut mutator = SharedMutator::new(&heaps[i], heaps, collector);
                    run_workload(workload, &mut mutator, trigger, &share, SEED + i as u64, &mut sampler);
                    sampler.samples
                })
            })
            .collect();
        let mut samples = Vec::new();
        for (i, handle) in handles.into_iter().enumerate() {
            let thread_samples = handle.join().expect("mutator thread panicked");
            if i == 0 {
                samples = thread_samples;
            }
        }
        samples
    });
    let pauses = heaps
        .into_iter()
        .flat_map(|heap| std::mem::take(&mut heap.into_inner().expect("no poisoned heap").pauses))
        .collect();
    (pauses, samples)
}

/// Runs `policy` on `point` in a child process (this program, re-executed
/// with the hidden `--child` flag) and reads its result.
fn run_child(point: &Point, policy: &str, args: &Args) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let output = Command::new(exe)
        .args(cli::child_args(point, policy, args.threads))
        .output()
        .map_err(|e| format!("cannot start child run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "child run {policy} on {point} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("bad child output: {e}"))
}

fn orchestrate(args: &Args) -> Result<(), String> {
    let runs = (args.points.len() * args.policies.len()) as u64;
    let bar = ProgressBar::new(runs).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut results = Vec::with_capacity(args.points.len());
    for point in &args.points {
        let mut point_runs = Vec::with_capacity(args.policies.len());
        for policy in &args.policies {
            bar.set_message(format!("{point} {policy}"));
            point_runs.push(run_child(point, policy, args)?);
            bar.inc(1);
        }
        results.push(PointResults { runs: point_runs });
    }
    bar.finish_and_clear();
    print!("{}", report::table(&results, &args.policies, &args.base));
    print!("\n{}", report::goal_summary(&results));
    if let Some(path) = &args.json {
        report::write_json(path, &results).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        report::write_plot(path, &results).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
