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
mod workloads;

use std::process::{Command, ExitCode};
use std::time::Instant;

use gcmalloc::{GcMalloc, GcTrigger, MemorySource, Pacing};
use indicatif::{ProgressBar, ProgressStyle};

use cli::{Args, Point};
use heap::Heap;
use metrics::{RunResult, Sampler};
use report::PointResults;
use workloads::Rng;

#[global_allocator]
static GLOBAL: GcMalloc = GcMalloc;

/// The seed of every run's workload generator: all policies see the same
/// sequence of chains and keys.
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
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
        "goal" => builder
            .source(MemorySource::Estimate)
            .pacing(Pacing::Goal { gogc: 100, min_heap: 4 << 20 }),
        other => unreachable!("policy {other} was validated by the parser"),
    }
    .build()
}

/// Runs one policy on one grid point in this process.
fn run_one(point: &Point, policy: &str, threads: usize) -> RunResult {
    let trigger = trigger_for(policy);
    let shape = point.shape;
    let mut heap = Heap::new();
    let mut rng = Rng::new(SEED);
    let mut sampler = Sampler::new(shape.total);
    let start = Instant::now();
    match point.workload {
        cli::Workload::Chain => workloads::run_chain(&mut heap, &trigger, &shape, &mut rng, &mut sampler),
        cli::Workload::Tree => workloads::run_tree(&mut heap, &trigger, &shape, &mut rng, &mut sampler),
    }
    let time_s = start.elapsed().as_secs_f64();
    let (stable, trash_slope) = metrics::stability(&sampler.samples, heap.stats.pauses.len());
    let (pause_p50_ms, pause_p99_ms, pause_max_ms) = metrics::pause_percentiles(&heap.stats.pauses);
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
        max_trash: heap.stats.max_trash,
        pause_p50_ms,
        pause_p99_ms,
        pause_max_ms,
        collections: heap.stats.pauses.len(),
        stable,
        trash_slope,
        samples: sampler.samples,
    }
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
