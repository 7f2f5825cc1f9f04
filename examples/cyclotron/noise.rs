//! `--noise [MIB]`: a part of the program that is not the runtime's, a cache
//! that grows to MIB (500 by default) in 1 MiB chunks and is dropped, over
//! and over, beside each run; and the report that sets each run with noise
//! beside the same run without it.
//!
//! The goals: with its objects in a GcHeap (`--heap gc`), a trigger on the
//! GcHeap's figure collects within 1.05x as often with noise as without, and
//! its peak RSS exceeds the quiet run's by no more than the noise + 5%. With
//! `--heap global`, the process-wide trigger shows what the noise costs it.

use std::fmt::Write as _;
use std::path::PathBuf;
// Relaxed throughout: flags and a gauge, ordering nothing else.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::cli::{Args, Collector};
use crate::gc_heap::HeapKind;
use crate::metrics::RunResult;

/// The cache's chunk, and the pause between two chunks added or dropped.
const CHUNK: usize = 1 << 20;
const STEP: Duration = Duration::from_micros(500);

/// Collections with noise over without (or without over with: fewer
/// collections hold more garbage), at most, for the GcHeap trigger.
const COLLECTIONS_GOAL: f64 = 1.05;
/// Peak RSS with noise minus without, at most, as a multiple of the noise
/// (the cache's peak during the run).
const RSS_GOAL: f64 = 1.05;

/// The noise: a thread growing and dropping a cache until dropped itself.
pub struct Cache {
    stop: Arc<AtomicBool>,
    /// The chunks the cache holds now (read by the tests), and the most it
    /// held.
    #[cfg_attr(not(test), allow(dead_code))]
    held: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Cache {
    /// Starts a cache that grows to `mib` MiB, one chunk every 500 µs,
    /// then shrinks to nothing at the same pace, over and over.
    pub fn start(mib: usize) -> Cache {
        let stop = Arc::new(AtomicBool::new(false));
        let (held, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (flag, chunks, most) = (Arc::clone(&stop), Arc::clone(&held), Arc::clone(&peak));
        let thread = thread::Builder::new()
            .name("noise".into())
            .spawn(move || saw_tooth(mib, &flag, &chunks, &most))
            .expect("spawn the noise thread");
        Cache { stop, held, peak, thread: Some(thread) }
    }

    /// The cache's size now, in MiB.
    #[cfg(test)]
    fn held_mib(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// The most the cache held so far, in MiB: a run shorter than a ramp
    /// (or slowed by a busy machine) may not see the whole noise.
    pub fn peak_mib(&self) -> usize {
        self.peak.load(Relaxed)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn saw_tooth(mib: usize, stop: &AtomicBool, held: &AtomicUsize, peak: &AtomicUsize) {
    while !stop.load(Relaxed) {
        let mut cache: Vec<Vec<u8>> = Vec::with_capacity(mib);
        while cache.len() < mib && !stop.load(Relaxed) {
            cache.push(vec![1; CHUNK]); // written: resident
            held.store(cache.len(), Relaxed);
            peak.fetch_max(cache.len(), Relaxed);
            thread::sleep(STEP);
        }
        while cache.pop().is_some() && !stop.load(Relaxed) {
            held.store(cache.len(), Relaxed);
            thread::sleep(STEP);
        }
    }
}

/// Checks `--heap` against `--noise` and the runtime, and fills in the
/// default: `global`, or `gc,global` with `--noise` on the toy.
pub fn check_heaps(
    heaps: Option<Vec<HeapKind>>,
    noise: Option<usize>,
    runtime: Collector,
    outputs: [&Option<PathBuf>; 4],
) -> Result<Vec<HeapKind>, String> {
    let toy = runtime == Collector::Toy;
    let heaps = heaps.unwrap_or_else(|| match noise {
        Some(_) if toy => vec![HeapKind::Gc, HeapKind::Global],
        _ => vec![HeapKind::Global],
    });
    if !toy && heaps.contains(&HeapKind::Gc) {
        return Err(format!(
            "--heap gc applies to the toy runtime only ({} allocates its objects itself)",
            runtime.name()
        ));
    }
    if noise == Some(0) {
        return Err("--noise needs at least 1 MiB".into());
    }
    if noise.is_none() && heaps.len() > 1 {
        return Err("--heap with several heaps compares them with --noise only; without it, give one".into());
    }
    if noise.is_some() && outputs.iter().any(|o| o.is_some()) {
        return Err("--noise prints its own comparison: --json, --plot, --frontier and --from-json do not apply".into());
    }
    Ok(heaps)
}

/// The child's arguments for a run in `heap`, beside a cache of `noise`.
pub fn child_args(heap: HeapKind, noise: Option<usize>) -> Vec<String> {
    let mut args = vec!["--heap".to_string(), heap.name().to_string()];
    args.extend(noise.into_iter().flat_map(|mib| ["--noise".to_string(), mib.to_string()]));
    args
}

/// One policy on one point and heap, without noise and with it.
pub struct Pair {
    pub heap: HeapKind,
    pub quiet: RunResult,
    pub noisy: RunResult,
}

impl Pair {
    fn collections_ratio(&self) -> f64 {
        self.noisy.collections as f64 / self.quiet.collections.max(1) as f64
    }

    /// How far the noise moved the collections, either way: 1.0 not at all.
    fn collections_moved(&self) -> f64 {
        let ratio = self.collections_ratio();
        ratio.max(1.0 / ratio)
    }

    /// Peak RSS with noise minus without, in MiB.
    fn excess_mib(&self) -> f64 {
        (self.noisy.peak_rss_bytes as f64 - self.quiet.peak_rss_bytes as f64) / (1 << 20) as f64
    }

    /// The excess over the noise the run saw: the cache's peak.
    fn excess_share(&self) -> f64 {
        self.excess_mib() / self.noisy.noise_peak_mib.max(1) as f64
    }

    /// A trigger paced by the GcHeap's figure alone: the runs the goals
    /// judge. `balanced` reads it too, but its limit comes from rates per
    /// second, which the noise thread's CPU use (and any load) moves.
    fn on_gc_heap(&self) -> bool {
        self.heap == HeapKind::Gc && matches!(crate::policy::split(&self.quiet.policy).0, "estimate" | "goal")
    }
}

/// Runs every point, policy and heap without noise and with it, prints the
/// comparison; returns the verdict's failures (for `--check`).
pub fn compare(args: &Args, mib: usize) -> Result<usize, String> {
    let runs = args.points.len() * args.policies.len() * args.heaps.len() * 2;
    let mut pairs = Vec::with_capacity(runs / 2);
    for point in &args.points {
        for policy in &args.policies {
            for &heap in &args.heaps {
                let run = |noise: Option<usize>| {
                    let run = crate::run_child_in(point, policy, args, heap, noise)?;
                    eprintln!(
                        "cyclotron: {}/{runs} {point} {policy} --heap {} {}: {:.1} s, {} collections, peak RSS {} MiB",
                        pairs.len() * 2 + 1 + noise.is_some() as usize,
                        heap.name(),
                        if noise.is_some() { "with noise" } else { "quiet" },
                        run.time_s,
                        run.collections,
                        run.peak_rss_bytes >> 20
                    );
                    Ok::<_, String>(run)
                };
                let (quiet, noisy) = (run(None)?, run(Some(mib))?);
                pairs.push(Pair { heap, quiet, noisy });
            }
        }
    }
    print!("{}", table(&pairs, mib));
    let (verdict, pass) = verdict(&pairs);
    print!("{verdict}");
    Ok(usize::from(!pass))
}

/// Each pair on a row: collections, peak RSS and most trash, quiet / noisy.
pub fn table(pairs: &[Pair], mib: usize) -> String {
    let mut out = format!(
        "Noise: beside each run, a cache grows to {mib} MiB in 1 MiB chunks and shrinks to 0, over and over\n\
         {:<22} {:<9} {:<7} {:>15} {:>6} {:>15} {:>5} {:>7} {:>6} {:>15}\n",
        "point",
        "policy",
        "heap",
        "colls q/noise",
        "ratio",
        "peakMiB q/noise",
        "cache",
        "excess",
        "/cache",
        "trash q/noise"
    );
    for p in pairs {
        let (q, n) = (&p.quiet, &p.noisy);
        let _ = writeln!(
            out,
            "{:<22} {:<9} {:<7} {:>15} {:>6.3} {:>15} {:>5} {:>+7.0} {:>6.2} {:>15}",
            format!("{} {}/{}/{}", q.workload, q.cycle, q.extra, q.live),
            q.policy,
            p.heap.name(),
            format!("{}/{}", q.collections, n.collections),
            p.collections_ratio(),
            format!("{}/{}", q.peak_rss_bytes >> 20, n.peak_rss_bytes >> 20),
            n.noise_peak_mib,
            p.excess_mib(),
            p.excess_share(),
            format!("{}/{}", q.max_trash, n.max_trash),
        );
    }
    out.push_str(
        "  point: workload cycle/extra/live; ratio: collections with noise / without; cache: the\n  \
         cache's peak in the run, MiB; excess: peak RSS with noise - without, MiB; /cache: excess / cache.\n  \
         balanced paces by rates per second: the noise thread's CPU use moves it, not judged\n",
    );
    let short = pairs.iter().filter(|p| p.noisy.noise_peak_mib < mib / 2).count();
    if short > 0 {
        let _ = writeln!(
            out,
            "  note: in {short} run(s) the cache stayed below half its peak (a run shorter than its ramp, \
             or a busy machine): a larger --total sees more of the noise"
        );
    }
    out
}

/// The goals, judged on the GcHeap trigger's pairs (`--heap gc`, a policy on
/// the estimate): PASS or FAIL on the collections, the line `--check`
/// enforces, and whether it passed; "ok" or "miss" on peak RSS, advisory
/// (huge pages move it).
pub fn verdict(pairs: &[Pair]) -> (String, bool) {
    let judged: Vec<&Pair> = pairs.iter().filter(|p| p.on_gc_heap()).collect();
    let mut out = String::from("\nVerdict (the GcHeap trigger: --heap gc, estimate or goal)\n");
    if judged.is_empty() {
        out.push_str("  (no --heap gc run of estimate or goal: nothing to judge)\n");
        return (out, true);
    }
    let n = judged.len();
    let worst = judged.iter().max_by(|a, b| a.collections_moved().total_cmp(&b.collections_moved()));
    let ratio = worst.map_or(1.0, |p| p.collections_ratio());
    let within = judged.iter().filter(|p| p.collections_moved() <= COLLECTIONS_GOAL).count();
    let colls = within == n;
    let _ = writeln!(
        out,
        "  {} collections with noise within {COLLECTIONS_GOAL}x of without, either way: {within} of {n} (worst {ratio:.3}x)",
        mark(colls)
    );
    let share = judged.iter().map(|p| p.excess_share()).fold(f64::MIN, f64::max);
    let within = judged.iter().filter(|p| p.excess_share() <= RSS_GOAL).count();
    let rss = within == n;
    let _ = writeln!(
        out,
        "  {} peak RSS with noise - without <= the cache's peak + 5%: {within} of {n} (worst {share:.3}x the cache; \
         advisory: huge pages move it by a few %)",
        if rss { "ok  " } else { "miss" }
    );
    (out, colls)
}

fn mark(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, ArgsError};

    fn args(line: &str) -> Result<Args, String> {
        parse(line.split_whitespace().map(String::from)).map_err(|e| match e {
            ArgsError::Help => "help".into(),
            ArgsError::Invalid(message) => message,
        })
    }

    #[test]
    fn noise_takes_an_optional_size_and_compares_both_heaps() {
        let a = args("--noise --policies estimate").unwrap();
        assert_eq!((a.noise, a.heaps.clone()), (Some(500), vec![HeapKind::Gc, HeapKind::Global]));
        assert_eq!(a.policies, ["estimate"], "no base policy added: the comparison is with and without noise");
        let a = args("--noise 64 --heap gc").unwrap();
        assert_eq!((a.noise, a.heaps), (Some(64), vec![HeapKind::Gc]));
        let a = args("--cycle 10 --noise --heap global").unwrap();
        assert_eq!((a.noise, a.heaps), (Some(500), vec![HeapKind::Global]));
        let a = args("--heap gc").unwrap();
        assert_eq!((a.noise, a.heaps), (None, vec![HeapKind::Gc]));
        assert_eq!(args("").unwrap().heaps, [HeapKind::Global], "today's behaviour by default");
        assert_eq!(args("--runtime dumpster --noise").unwrap().heaps, [HeapKind::Global]);
    }

    #[test]
    fn heap_and_noise_misuse_is_refused() {
        let refused = |line: &str, says: &str| {
            let message = args(line).err().unwrap_or_else(|| panic!("{line} was accepted"));
            assert!(message.contains(says), "{line}: {message}");
        };
        refused("--heap gc --runtime dumpster", "toy runtime only");
        refused("--heap gc,global", "with --noise only");
        refused("--heap arena", "unknown heap");
        refused("--noise 0", "at least 1 MiB");
        refused("--noise --json out.json", "do not apply");
    }

    fn run(policy: &str, collections: usize, peak_mib: usize) -> RunResult {
        let mut r: RunResult = serde_json::from_str(
            r#"{"runtime":"toy","workload":"chain","cycle":10,"extra":0,"live":10,"cyclic_fraction":1.0,
               "threads":1,"total":100,"policy":"","time_s":1.0,"peak_rss_bytes":0,"max_trash":0,
               "pause_p50_ms":0,"pause_p99_ms":0,"pause_max_ms":0,"collections":0,"stable":true,
               "trash_slope":0}"#,
        )
        .expect("a run's JSON");
        (r.policy, r.collections, r.peak_rss_bytes) = (policy.into(), collections, peak_mib << 20);
        r
    }

    fn pair(heap: HeapKind, policy: &str, collections: [usize; 2], peak_mib: [usize; 2]) -> Pair {
        let (quiet, mut noisy) = (run(policy, collections[0], peak_mib[0]), run(policy, collections[1], peak_mib[1]));
        noisy.noise_peak_mib = 500;
        Pair { heap, quiet, noisy }
    }

    #[test]
    fn verdict_judges_the_gc_heap_trigger_only() {
        // The process-wide trigger and the RSS gate may move: not judged.
        let others = [
            pair(HeapKind::Global, "estimate", [1000, 170], [20, 600]),
            pair(HeapKind::Gc, "rss", [100, 300], [20, 900]),
            pair(HeapKind::Gc, "balanced:64", [1000, 600], [20, 520]),
        ];
        let good = pair(HeapKind::Gc, "estimate", [1000, 1050], [20, 544]);
        let pairs: Vec<Pair> = others.into_iter().chain([good]).collect();
        let (text, pass) = verdict(&pairs);
        assert!(pass, "{text}");
        assert!(text.contains("1 of 1 (worst 1.050x)") && text.contains("(worst 1.048x the cache;"), "{text}");
        assert!(table(&pairs, 500).contains("1000/170") && !table(&pairs, 500).contains("note:"));
        assert!(table(&pairs, 2000).contains("note: in 4 run(s) the cache stayed below half its peak"));

        let (text, pass) = verdict(&[pair(HeapKind::Gc, "goal", [1000, 1051], [20, 520])]);
        assert!(!pass && text.contains("FAIL collections"), "{text}");
        let (text, pass) = verdict(&[pair(HeapKind::Gc, "estimate", [1000, 950], [20, 520])]);
        assert!(!pass && text.contains("FAIL collections") && text.contains("0.950x"), "fewer is a miss too: {text}");
        let (text, pass) = verdict(&[pair(HeapKind::Gc, "goal:200", [1000, 1000], [20, 546])]);
        assert!(pass && text.contains("miss peak RSS") && text.contains("advisory"), "{text}");
    }

    #[test]
    fn the_cache_grows_to_its_peak_and_shrinks_over_and_over() {
        let cache = Cache::start(32);
        let seen = |size: &dyn Fn(usize) -> bool| {
            (0..5000).any(|_| {
                thread::sleep(Duration::from_micros(200));
                size(cache.held_mib())
            })
        };
        for _ in 0..2 {
            assert!(seen(&|mib| mib >= 30), "grows to 32 MiB");
            assert!(seen(&|mib| mib <= 2), "shrinks to nothing");
        }
        drop(cache); // stops and joins: a hang fails the test run
    }
}
