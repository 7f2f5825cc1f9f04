//! cyclotron: GC runtimes under stress, comparing GC trigger policies.
//!
//! A Rust port of the workloads behind CPython PR #148940's tables, on one of
//! four runtimes (`--runtime`) whose objects come from `GcMalloc`: the toy
//! (a mark-sweep collector of our own, the default), dumpster's `sync::Gc`,
//! gc-arena's `Arena` and rust-cc's `Cc`. The workloads make cyclic garbage
//! that reference counting cannot free, with payloads the objects own. The
//! policies:
//!
//! - `own` (real collectors): the collector's own heuristic;
//! - `count`: every 2,000 allocations (no memory gate);
//! - `rss`: CPython 3.14t's gate on the OS RSS (VmRSS + VmSwap);
//! - `estimate`: the same gate on `gcmalloc::estimate()`;
//! - `goal`: Go-style heap goal (GOGC=100) on `gcmalloc::estimate()`;
//! - `debt` (gc-arena): its own pacing plus `gcmalloc::DebtMeter`'s debt;
//! - `balanced`: MemBalancer's heap limit (`Pacing::Balanced`) on the
//!   estimate, timed by the trigger;
//! - `incremental` (gc-arena): the balanced limit as gc-arena's incremental
//!   pacing (`GcTrigger::incremental_pacing`): small steps, no full cycle.
//!
//! Each takes a knob (`goal:200`, `balanced:16`); `--sweep N` runs each
//! policy across its knob's range and `--frontier` draws mean RSS against
//! collection time, the time-memory frontier of each policy.
//!
//! Every policy runs the same workload, each in a child process of its own so
//! that no run inherits another's peak RSS.
//!
//! ```text
//! cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --quick
//! cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --runtime gc-arena --quick
//! cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --grid --json grid.json --plot grid.svg
//! cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --workload tree --cycle 10 --extra 100000 --live 10000
//! cargo run --release --manifest-path examples/cyclotron/Cargo.toml -- --noise --cycle 10 --extra 10k --live 10k --policies estimate
//! ```

mod arena_runtime;
mod cli;
mod dumpster_runtime;
mod frontier;
mod gc_heap;
mod heap;
mod metrics;
mod noise;
mod plot;
mod policy;
mod report;
mod rust_cc_runtime;
mod threads;
mod workloads;

use std::io::IsTerminal;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gcmalloc::{GcMalloc, GcTrigger};
use indicatif::{ProgressBar, ProgressStyle};

use arena_runtime::GcArena;
use cli::{Args, Collector, Point, Workload};
use dumpster_runtime::Dumpster;
use heap::{Heap, Toy, TrashGauge};
use metrics::{RunResult, Sampler};
use report::PointResults;
use rust_cc_runtime::RustCc;
use threads::SharedMutator;
use workloads::{Rng, Runtime, Shape};

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
        gc_heap::choose(args.heaps[0]);
        let noise = args.noise.map(noise::Cache::start);
        let mut result = run_one(args.runtime, &run.point, &run.policy, args.threads, args.memory_limit);
        result.noise_peak_mib = noise.map_or(0, |cache| cache.peak_mib());
        println!("{}", serde_json::to_string(&result).expect("results serialize"));
        return ExitCode::SUCCESS;
    }
    let outcome = match &args.from_json {
        Some(path) => replay(path, &args),
        None => orchestrate(&args),
    };
    match outcome {
        Ok(failures) if args.check && failures > 0 => {
            eprintln!("cyclotron: --check: {failures} verdict line(s) FAIL");
            ExitCode::FAILURE
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cyclotron: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs one policy on one grid point in this process.
fn run_one(runtime: Collector, point: &Point, policy: &str, threads: usize, limit_mib: Option<usize>) -> RunResult {
    let trigger = policy::trigger(policy, limit_mib);
    let stats;
    let shape = point.shape;
    let gauge = Arc::new(TrashGauge::default());
    let mut sampler = Sampler::new(shape.total, Arc::clone(&gauge));
    let start = Instant::now();
    let (pauses, collections, samples) = match runtime {
        Collector::Toy if threads > 1 => {
            let trigger = trigger.expect("the parser rejects `own` for the toy");
            let (pauses, samples) = run_threads(point.workload, &trigger, &shape, threads, &gauge);
            stats = Some(trigger.stats());
            (pauses, None, samples)
        }
        Collector::Toy => {
            let trigger = trigger.expect("the parser rejects `own` for the toy");
            let mut heap = Heap::new(Arc::clone(&gauge));
            run_workload(
                point.workload,
                &mut Toy { mutator: &mut heap, trigger: &trigger },
                &shape,
                SEED,
                &mut sampler,
            );
            let pauses = std::mem::take(&mut heap.pauses);
            stats = Some(trigger.stats());
            (pauses, None, sampler.samples)
        }
        Collector::Dumpster => {
            let mut rt = Dumpster::new(trigger, Arc::clone(&gauge));
            run_workload(point.workload, &mut rt, &shape, SEED, &mut sampler);
            let pauses = Dumpster::pauses();
            stats = Dumpster::trigger_stats();
            (pauses, None, sampler.samples)
        }
        Collector::GcArena => {
            let sleep = match policy::split(policy).0 {
                "own" | "debt" => policy::knob(policy, 50.0) / 100.0,
                _ => 0.5, // gc-arena's default
            };
            let pacing = match (policy::split(policy).0, trigger) {
                ("debt", _) => arena_runtime::Pacing::Debt(gcmalloc::DebtMeter::new()),
                ("incremental", Some(trigger)) => arena_runtime::Pacing::incremental(trigger),
                (_, Some(trigger)) => arena_runtime::Pacing::Trigger(Box::new(trigger)),
                (_, None) => arena_runtime::Pacing::Own,
            };
            let mut rt = GcArena::new(pacing, Arc::clone(&gauge), sleep);
            run_workload(point.workload, &mut rt, &shape, SEED, &mut sampler);
            stats = rt.trigger_stats();
            (std::mem::take(&mut rt.pauses), Some(rt.collections), sampler.samples)
        }
        Collector::RustCc => {
            let mut rt = RustCc::new(trigger, Arc::clone(&gauge));
            run_workload(point.workload, &mut rt, &shape, SEED, &mut sampler);
            stats = rt.trigger_stats();
            (std::mem::take(&mut rt.pauses), Some(rt.collections()), sampler.samples)
        }
    };
    let time_s = start.elapsed().as_secs_f64();
    // A pause per collection, except in gc-arena, whose incremental steps
    // are pauses and whose finished cycles are its collections.
    let collections = collections.unwrap_or(pauses.len());
    let (stable, trash_slope) = metrics::stability(&samples, pauses.len());
    let (pause_p50_ms, pause_p99_ms, pause_max_ms) = metrics::pause_percentiles(&pauses);
    let gc_time_s = metrics::gc_cpu().as_secs_f64();
    let stops = threads::stops();
    let stop_latency_max_ms = stops.iter().map(|(d, _)| d.as_secs_f64() * 1e3).fold(0.0, f64::max);
    RunResult {
        runtime: runtime.name().into(),
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
        // `--threads`: the mutators sample on their own; the end of the run.
        anon_huge_bytes: sampler.anon_huge_bytes.or_else(metrics::anon_huge_bytes),
        mean_rss_bytes: metrics::mean_rss_bytes(&samples),
        gc_time_s,
        gc_share: gc_time_s / time_s,
        max_trash: gauge.max(),
        pause_p50_ms,
        pause_p99_ms,
        pause_max_ms,
        collections,
        stops: stops.len(),
        stop_latency_max_ms,
        parked_max: stops.iter().map(|&(_, n)| n).max().unwrap_or(0),
        stable,
        trash_slope,
        limit_hits: stats.map_or(0, |s| s.limit_hits),
        throttled: stats.map_or(0, |s| s.throttled),
        noise_peak_mib: 0,
        samples,
    }
}

fn run_workload<R: Runtime>(workload: Workload, rt: &mut R, shape: &Shape, seed: u64, sampler: &mut Sampler) {
    let mut rng = Rng::new(seed);
    match workload {
        Workload::Chain => workloads::run_chain(rt, shape, &mut rng, sampler),
        Workload::Tree => workloads::run_tree(rt, shape, &mut rng, sampler),
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
    // No mutator thread exits (abandoning its heaps) while another may be
    // refreshing every thread's heap under a stop: see `threads.rs`.
    let done = std::sync::Barrier::new(threads);
    let share = Shape { total: shape.total / threads, ..*shape };
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (heaps, collector, done) = (&heaps, &collector, &done);
                let mut sampler = if i == 0 { Sampler::new(share.total, Arc::clone(gauge)) } else { Sampler::idle() };
                s.spawn(move || {
                    let mut mutator = SharedMutator::new(&heaps[i], heaps, collector);
                    run_workload(
                        workload,
                        &mut Toy { mutator: &mut mutator, trigger },
                        &share,
                        SEED + i as u64,
                        &mut sampler,
                    );
                    drop(mutator);
                    done.wait();
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
    run_child_in(point, policy, args, args.heaps[0], None)
}

/// [`run_child`] with the objects in `heap`, beside a cache of `noise` MiB.
fn run_child_in(
    point: &Point,
    policy: &str,
    args: &Args,
    heap: gc_heap::HeapKind,
    noise: Option<usize>,
) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let output = Command::new(exe)
        .args(cli::child_args(args.runtime, point, policy, args))
        .args(noise::child_args(heap, noise))
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

/// Runs every policy on every point; returns the verdict's failures.
fn orchestrate(args: &Args) -> Result<usize, String> {
    if let Some(mib) = args.noise {
        return noise::compare(args, mib);
    }
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
            let run = run_child(point, policy, args)?;
            if !std::io::stderr().is_terminal() {
                // No progress bar without a terminal: a line per run instead.
                eprintln!(
                    "cyclotron: {}/{runs} {} {point} {policy}: {:.1} s, peak RSS {} MiB",
                    bar.position() + 1,
                    args.runtime.name(),
                    run.time_s,
                    run.peak_rss_bytes >> 20
                );
            }
            point_runs.push(run);
            bar.inc(1);
        }
        results.push(PointResults { runs: point_runs });
    }
    bar.finish_and_clear();
    report(args, &results, &args.policies, &args.base)
}

/// `--from-json`: the report on a `--json` file's runs, grouped into points
/// in the file's order.
fn replay(path: &std::path::Path, args: &Args) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let runs: Vec<RunResult> =
        serde_json::from_str(&text).map_err(|e| format!("bad JSON in {}: {e}", path.display()))?;
    let Some(first) = runs.first() else {
        return Err(format!("{} holds no runs", path.display()));
    };
    let base = if args.base.is_empty() { cli::default_base(&first.runtime).to_string() } else { args.base.clone() };
    let mut policies: Vec<String> = Vec::new();
    let mut results: Vec<PointResults> = Vec::new();
    for run in runs {
        if !policies.contains(&run.policy) {
            policies.push(run.policy.clone());
        }
        match results.iter_mut().find(|p| p.runs[0].same_point(&run)) {
            Some(point) => point.runs.push(run),
            None => results.push(PointResults { runs: vec![run] }),
        }
    }
    report(args, &results, &policies, &base)
}

/// Prints the tables and the verdict, writes `--json`, `--plot`,
/// `--frontier`; returns the verdict's failures.
fn report(args: &Args, results: &[PointResults], policies: &[String], base: &str) -> Result<usize, String> {
    print!("{}", report::table(results, policies, base, args.view));
    let verdict = report::verdict(results);
    print!("{}", verdict.text);
    if let Some(path) = &args.json {
        report::write_json(path, results).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::write_plot(path, results).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(mib) = args.memory_limit {
        print!("{}", report::limit_summary(results, mib));
    }
    if policies.iter().any(|p| policy::split(p).1.is_some()) {
        print!("{}", frontier::verdict(results));
    }
    if let Some(path) = &args.frontier {
        frontier::write_plot(path, results).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(verdict.failures)
}
