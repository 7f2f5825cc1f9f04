//! Output: the tables (per point or per policy), the verdict, `--json` and
//! `--plot`.

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::MIN_TOTAL;
use crate::metrics::RunResult;

/// Results of one grid point, in policy order.
pub struct PointResults {
    pub runs: Vec<RunResult>,
}

impl PointResults {
    fn policy(&self, name: &str) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.policy == name)
    }
}

/// Bytes as MiB, the unit of every memory column.
fn mib(n: usize) -> String {
    format!("{:.0}", n as f64 / (1 << 20) as f64)
}

fn count(n: usize) -> String {
    if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

/// `new / base`, or "–" where the base is zero at the `resolution` its
/// column prints (a pause of 0.00 ms): a ratio to nothing is no figure.
fn ratio(new: f64, base: f64, resolution: f64) -> String {
    if base.abs() < resolution / 2.0 {
        "–".into()
    } else if new / base >= 100.0 {
        format!("{:.0}", new / base)
    } else {
        format!("{:.2}", new / base)
    }
}

/// Which table the report prints (`--by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// One table per grid point, one row per policy (the default): the
    /// policies on one point compare at a glance.
    Point,
    /// One table per policy, one row per grid point, as in the seed.
    Policy,
}

/// The question every report answers, its first line.
pub const QUESTION: &str = "cyclotron: each policy decides when to collect the same workload's garbage; \
                            lower peak RSS and trash at similar time is better";

const FIGURES_HEADER: [&str; 15] = [
    "t(s)", "r-t", "rssMiB", "r-rss", "hugeMiB", "meanMiB", "r-mean", "gc(s)", "gc%", "trash", "r-tr", "pause", "r-p",
    "colls", "stable",
];

fn figures_header() -> String {
    let h = FIGURES_HEADER;
    format!(
        "{:>7} {:>5} {:>7} {:>5} {:>7} {:>7} {:>6} {:>6} {:>5} {:>7} {:>5} {:>7} {:>5} {:>6} {:>6}",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14]
    )
}

/// One run's figures and their ratios to `b`'s, in the order of
/// [`FIGURES_HEADER`].
fn figures(run: &RunResult, b: &RunResult) -> String {
    const MIB: f64 = (1 << 20) as f64;
    format!(
        "{:>7.2} {:>5} {:>7} {:>5} {:>7} {:>7} {:>6} {:>6.2} {:>5.1} {:>7} {:>5} {:>7.2} {:>5} {:>6} {:>6}",
        run.time_s,
        ratio(run.time_s, b.time_s, 0.01),
        mib(run.peak_rss_bytes),
        ratio(run.peak_rss_bytes as f64, b.peak_rss_bytes as f64, MIB),
        run.anon_huge_bytes.map_or("–".into(), mib),
        mib(run.mean_rss_bytes),
        ratio(run.mean_rss_bytes as f64, b.mean_rss_bytes as f64, MIB),
        run.gc_time_s,
        run.gc_share * 100.0,
        count(run.max_trash),
        ratio(run.max_trash as f64, b.max_trash as f64, 1.0),
        run.pause_max_ms,
        ratio(run.pause_max_ms, b.pause_max_ms, 0.01),
        run.collections,
        if run.stable { "yes" } else { "NO" }
    )
}

/// `--threads`: the run's stops of the world, under its row.
fn stops_line(out: &mut String, run: &RunResult) {
    if run.threads > 1 {
        let _ = writeln!(
            out,
            "{:>5} stop-the-world: {} stops, longest wait for every thread to park {:.2} ms, \
             up to {} threads parked",
            "", run.stops, run.stop_latency_max_ms, run.parked_max
        );
    }
}

/// The report's tables: the question, what every row shares, then one
/// table per point (`View::Point`) or per policy (`View::Policy`), each
/// figure with its ratio to `base`'s, and the legend.
pub fn table(points: &[PointResults], policies: &[String], base: &str, view: View) -> String {
    let mut out = String::new();
    let Some(first) = points.first().and_then(|p| p.runs.first()) else {
        return out;
    };
    let _ = writeln!(out, "{QUESTION}");
    let _ = writeln!(
        out,
        "Uniform: runtime {}, cyc% {:.0}, threads {}; ratio r-X = policy / {base}",
        first.runtime,
        first.cyclic_fraction * 100.0,
        first.threads
    );
    match view {
        View::Point => by_point(&mut out, points, base),
        View::Policy => by_policy(&mut out, points, policies, base),
    }
    out.push_str(LEGEND);
    out
}

/// One table per grid point, one row per policy.
fn by_point(out: &mut String, points: &[PointResults], base: &str) {
    for point in points {
        let (Some(r0), Some(b)) = (point.runs.first(), point.policy(base)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n{} cycle={} extra={} live={} ({} objects; base={base})",
            r0.workload,
            count(r0.cycle),
            count(r0.extra),
            count(r0.live),
            count(r0.total)
        );
        let _ = writeln!(out, "{:<14} {}", "policy", figures_header());
        for run in &point.runs {
            let _ = writeln!(out, "{:<14} {}", run.policy, figures(run, b));
            stops_line(out, run);
        }
    }
}

/// One table per policy, each row one grid point, as in the seed.
fn by_policy(out: &mut String, points: &[PointResults], policies: &[String], base: &str) {
    for policy in policies {
        let against = if policy == base { " (base)".to_string() } else { format!(" vs base={base}") };
        let _ = writeln!(out, "\npolicy={policy}{against}");
        let _ = writeln!(out, "{:>5} {:>6} {:>7} {:>6} {}", "wl", "cycle", "extra", "live", figures_header());
        for point in points {
            let (Some(run), Some(b)) = (point.policy(policy), point.policy(base)) else {
                continue;
            };
            let _ = writeln!(
                out,
                "{:>5} {:>6} {:>7} {:>6} {}",
                run.workload,
                count(run.cycle),
                count(run.extra),
                count(run.live),
                figures(run, b)
            );
            stops_line(out, run);
        }
    }
}

const LEGEND: &str = "
Legend
  Uniform:  what every row shares: the runtime (toy = cyclotron's own mark-sweep;
            dumpster, gc-arena, rust-cc = those crates), the share of chains
            closed into cycles, mutator threads; r-X columns divide by the base
            policy's X (\"–\" where the base's X is 0 as printed).
  wl        workload: chain (chains held until `live` objects, then dropped)
            or tree (a B-tree whose chain values are replaced, 20% per round)
  cycle     objects per chain; extra: payload bytes each chain owns;
  live      objects kept reachable (at most)
  t(s)      wall time of the run, seconds
  rssMiB    peak RSS of the run's own process (VmHWM), MiB
  hugeMiB   AnonHugePages (transparent huge pages) at the sample of highest
            RSS (/proc/self/smaps_rollup), MiB; \"–\" where the kernel has none
  meanMiB   time-averaged RSS: the mean of the samples, taken at even steps of
            allocation (RSS over the mutator's progress), MiB
  gc(s)     total collection time: the collecting threads' CPU time over the
            pauses, s (rust-cc's own: the wall time of the allocations that
            collected); gc%: its share of the run's wall time
  trash     most garbage objects awaiting collection at any sample
  pause     longest collection pause, ms (dumpster: from the condition's yes
            to the next check; gc-arena: the longest collect_debt/finish_cycle;
            rust-cc's own: the longest allocation that collected)
  colls     collections (gc-arena: completed cycles)
  stable    trash does not rise over the run (Theil-Sen fit within 5%)
Time and pauses move from run to run (one row's max pause measured 20.8x,
0.73x and 0.60x of its base in three runs; times +-15% on a busy 2-core
machine): claim a time or pause ratio only from the median of 3 runs or
more, in separate processes. Peak RSS and trash repeat within a few percent.
";

/// The verdict's text, and how many of its checked lines failed.
pub struct Verdict {
    pub text: String,
    pub failures: usize,
}

impl std::fmt::Write for Verdict {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.text.write_str(s)
    }
}

/// Plain-words verdict on the goals of the runtime's issue: PASS or FAIL on
/// peak RSS and trash (which repeat within a few percent, and `--check`
/// judges), "ok" or "miss" on time (advisory: one run's time moves 15%).
pub fn verdict(points: &[PointResults]) -> Verdict {
    let runtime = points.first().and_then(|p| p.runs.first()).map_or("toy", |r| r.runtime.as_str());
    let mut out = Verdict { text: String::from("\nVerdict\n"), failures: 0 };
    if runtime == "toy" {
        toy_verdict(points, &mut out);
    } else {
        real_verdict(points, runtime, &mut out);
    }
    out
}

/// A checked line: PASS or FAIL.
fn line(out: &mut Verdict, pass: bool, text: &str) {
    out.failures += usize::from(!pass);
    let _ = writeln!(out, "  {} {text}", if pass { "PASS" } else { "FAIL" });
}

/// An advisory line on a single run's time: "ok" or "miss", never a failure.
fn advisory(out: &mut Verdict, ok: bool, text: &str) {
    let _ = writeln!(
        out,
        "  {} {text} (advisory: a single run's time moves by 15%; repeat 3 runs for a claim)",
        if ok { "ok  " } else { "miss" }
    );
}

/// A line on a goal set for default-sized runs, of a run shorter than that:
/// "ok" or "miss", never a failure (a few collections decide a short run).
fn short_run(out: &mut Verdict, ok: bool, text: &str) {
    let _ = writeln!(
        out,
        "  {} {text} (not judged: under {MIN_TOTAL} objects a run is too short for this goal)",
        if ok { "ok  " } else { "miss" }
    );
}

/// The worst of `ratios` (or "-"), and how many are within `goal`.
fn worst(ratios: &[f64], goal: f64) -> (String, usize) {
    let max = ratios.iter().copied().fold(f64::NAN, f64::max);
    let within = ratios.iter().filter(|&&r| r <= goal).count();
    (if max.is_nan() { "-".into() } else { format!("{max:.2}x") }, within)
}

/// The toy's goals: `estimate` against CPython's RSS gate.
fn toy_verdict(points: &[PointResults], out: &mut Verdict) {
    let pairs: Vec<(&RunResult, &RunResult)> = points
        .iter()
        .filter_map(|p| Some((p.policy("estimate")?, p.policy("rss")?)))
        .filter(|(e, _)| e.extra >= 10_000)
        .collect();
    if pairs.is_empty() {
        let _ = writeln!(out, "  (no point with extra >= 10k and both estimate and rss: nothing to judge)");
    } else {
        let n = pairs.len();
        // The goals are set for default-sized runs (at least MIN_TOTAL objects).
        let judge = if pairs.iter().all(|(e, _)| e.total >= MIN_TOTAL) { line } else { short_run };
        let rss: Vec<f64> = pairs.iter().map(|(e, r)| e.peak_rss_bytes as f64 / r.peak_rss_bytes as f64).collect();
        let (max, within) = worst(&rss, 0.5);
        judge(
            out,
            within == n,
            &format!("estimate's peak RSS <= 0.5x rss's where extra >= 10k: {within} of {n} (worst {max})"),
        );
        // Trash cannot fall below `live`: a chain holder drops `live` objects
        // at once, so estimate's floor is live / rss's trash.
        let at_floor =
            pairs.iter().filter(|(e, r)| e.max_trash as f64 <= 0.2 * r.max_trash as f64 || e.max_trash <= e.live);
        let floor = at_floor.count();
        judge(
            out,
            floor == n,
            &format!(
                "estimate's trash <= 0.2x rss's, or at its floor: {floor} of {n}. Trash cannot fall below `live` \
                 (a holder of `live` objects is dropped at once), so at live=30k a ratio of 0.33 is the floor, not a miss"
            ),
        );
    }
    let estimate: Vec<&RunResult> = points.iter().filter_map(|p| p.policy("estimate")).collect();
    let unstable = estimate.iter().filter(|r| !r.stable).count();
    line(
        out,
        unstable == 0,
        &format!("estimate stable on every row: {} of {}", estimate.len() - unstable, estimate.len()),
    );
    let time = |name: &str| points.iter().filter_map(|p| p.policy(name)).map(|r| r.time_s).sum::<f64>();
    if points.iter().any(|p| p.policy("count").is_some()) {
        let (e, c) = (time("estimate"), time("count"));
        advisory(out, e <= c, &format!("estimate's total time <= count's: {e:.1} s vs {c:.1} s"));
    }
}

/// Absolute slack on the peak-RSS goals of small heaps, bytes.
const SLACK: f64 = (4 << 20) as f64;

/// A real collector's goals: `estimate` against its own heuristic.
fn real_verdict(points: &[PointResults], runtime: &str, out: &mut Verdict) {
    let pairs: Vec<(&RunResult, &RunResult)> =
        points.iter().filter_map(|p| Some((p.policy("estimate")?, p.policy("own")?))).collect();
    if pairs.is_empty() {
        let _ = writeln!(out, "  (no point with both estimate and own: nothing to judge)");
        return;
    }
    let rss = |e: &RunResult, o: &RunResult| e.peak_rss_bytes as f64 / o.peak_rss_bytes as f64;
    let counts_mislead: Vec<f64> = pairs
        .iter()
        .filter(|(e, _)| e.workload == "chain" && e.live >= 30_000 && e.extra >= 300_000)
        .map(|(e, o)| rss(e, o))
        .collect();
    // rust-cc's threshold follows the bytes of its live boxes, so on chains
    // whose live and dead ones own equal payloads its own peak stays within
    // twice the live payloads, which no policy goes below: 0.5x of it lies
    // under that floor (0.53x at live=30k, extra=300k).
    let goal = if runtime == "rust-cc" { 0.75 } else { 0.5 };
    if counts_mislead.is_empty() {
        let _ = writeln!(out, "  (no chain point with live >= 30k and extra >= 300k: the {goal}x goal is not judged)");
    } else {
        let n = counts_mislead.len();
        let (max, within) = worst(&counts_mislead, goal);
        line(
            out,
            within == n,
            &format!("where object counts mislead (chain, live >= 30k, extra >= 300k), estimate's peak RSS <= {goal}x {runtime}'s own: {within} of {n} (worst {max})"),
        );
    }
    let n = pairs.len();
    let all_rss: Vec<f64> = pairs.iter().map(|(e, o)| rss(e, o)).collect();
    let (max, _) = worst(&all_rss, 1.10);
    // A few MiB of slack: on a 5 MiB heap one huge page is 40%.
    let within =
        pairs.iter().filter(|(e, o)| e.peak_rss_bytes as f64 <= 1.10 * o.peak_rss_bytes as f64 + SLACK).count();
    line(
        out,
        within == n,
        &format!("on every row, estimate's peak RSS <= 1.10x own's + 4 MiB: {within} of {n} (worst {max})"),
    );
    let times: Vec<f64> = pairs.iter().map(|(e, o)| e.time_s / o.time_s).collect();
    let (max, within) = worst(&times, 1.10);
    advisory(out, within == n, &format!("on every row, estimate's time <= 1.10x own's: {within} of {n} (worst {max})"));
}

/// `--memory-limit`: each run's peak RSS against the limit, its collection
/// share, and the trigger's limit hits and throttled collections.
pub fn limit_summary(points: &[PointResults], limit_mib: usize) -> String {
    let mut out = format!("\nSoft memory limit {limit_mib} MiB (own: no trigger, no limit)\n");
    for run in points.iter().flat_map(|p| &p.runs) {
        let _ = writeln!(
            out,
            "  {} {} cycle={} extra={} live={} {:<14} peak RSS {:.2}x the limit, collections {:.0}% of the run, \
             {} limit hits, {} throttled",
            run.runtime,
            run.workload,
            run.cycle,
            run.extra,
            run.live,
            run.policy,
            run.peak_rss_bytes as f64 / (limit_mib << 20) as f64,
            run.gc_share * 100.0,
            run.limit_hits,
            run.throttled
        );
    }
    out
}

/// Every run's figures as JSON (without the samples).
pub fn write_json(path: &Path, points: &[PointResults]) -> std::io::Result<()> {
    let runs: Vec<RunResult> = points
        .iter()
        .flat_map(|p| p.runs.iter().cloned())
        .map(|mut r| {
            r.samples.clear();
            r
        })
        .collect();
    let text = serde_json::to_string_pretty(&runs).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}
