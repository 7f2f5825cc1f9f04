//! The suite's driver: runs every workload with every allocator binary
//! alternately, in a shuffled order each round, several rounds, and writes
//! `BENCHMARKS.md` and an SVG chart. See `bench-suite/README.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use gcm_suite::Outcome;
use plotters::prelude::*;

const USAGE: &str = "\
usage: driver [--quick | --full | --tiny] [options]

  --quick             1 and 2 threads (and N), scale 1, 3 rounds: ~14 min on 2 cores (default)
  --full              1, 2, N and 2N threads, scale 4, 5 rounds (bigger machines)
  --tiny              one round of everything at scale 0.05, no callgrind (CI: does it run)
  --rounds N          rounds of alternating runs
  --scale F           workload size (1.0: the quick suite's)
  --threads LIST      thread counts, e.g. 1,2,8
  --workloads LIST    a subset of the workloads
  --allocators LIST   a subset of the allocators
  --no-callgrind      skip the instruction counts (valgrind)
  --out FILE          the report (default BENCHMARKS.md)
  --svg FILE          the chart (default benchmarks.svg)";

/// An allocator under test: a binary of `alloc/*`, its flags and
/// environment.
struct Allocator {
    name: &'static str,
    binary: &'static str,
    flags: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const ALLOCATORS: &[Allocator] = &[
    Allocator { name: "gcmalloc", binary: "suite-gcmalloc", flags: &[], env: &[] },
    Allocator { name: "gcmalloc-nodelay", binary: "suite-gcmalloc", flags: &["--no-delay"], env: &[] },
    Allocator { name: "gcmalloc-qsbr", binary: "suite-gcmalloc", flags: &["--qsbr"], env: &[] },
    Allocator { name: "mimalloc-v2", binary: "suite-mimalloc-v2", flags: &[], env: &[] },
    Allocator { name: "mimalloc-v3", binary: "suite-mimalloc-v3", flags: &[], env: &[] },
    Allocator { name: "jemalloc", binary: "suite-jemalloc", flags: &[], env: &[] },
    Allocator { name: "snmalloc", binary: "suite-snmalloc", flags: &[], env: &[] },
    Allocator { name: "glibc", binary: "suite-glibc", flags: &[], env: &[] },
    // gcmalloc marking every arena for huge pages when it is reserved, as
    // stock mimalloc does: the "before" of the heap-size policy's table.
    Allocator {
        name: "gcmalloc-stockthp",
        binary: "suite-gcmalloc",
        flags: &[],
        env: &[("GCMALLOC_HUGE_PAGE_THRESHOLD_MIB", "0")],
    },
    // Not in the default set (`--allocators`): gcmalloc with its arena
    // committed on demand, the option behind most of the fixed RSS gap to
    // jemalloc on small heaps.
    Allocator {
        name: "gcmalloc-lazycommit",
        binary: "suite-gcmalloc",
        flags: &[],
        env: &[("MIMALLOC_ARENA_EAGER_COMMIT", "0")],
    },
    // Also not by default: gcmalloc with transparent huge pages off
    // (mimalloc asks for them on the arenas it commits eagerly).
    Allocator { name: "gcmalloc-nothp", binary: "suite-gcmalloc", flags: &[], env: &[("MIMALLOC_ALLOW_THP", "0")] },
];

/// The allocators run unless `--allocators` says otherwise.
const DEFAULT_ALLOCATORS: usize = 9;

/// The peers gcmalloc (delay on, no registered threads) is compared with.
const PEERS: &[&str] = &["mimalloc-v2", "mimalloc-v3", "jemalloc", "snmalloc", "glibc"];

const WORKLOADS: &[&str] =
    &["larson", "xmalloc", "cache-scratch", "mstress", "alloc-test", "rptest", "sh6bench", "bigheap", "syn", "json", "js"];

struct Config {
    rounds: usize,
    scale: f64,
    threads: Vec<usize>,
    workloads: Vec<String>,
    allocators: Vec<&'static Allocator>,
    callgrind: bool,
    out: PathBuf,
    svg: PathBuf,
    command: String,
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn parse() -> Result<Config, String> {
    let n = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut c = Config {
        rounds: 3,
        scale: 1.0,
        threads: vec![1, 2, n],
        workloads: WORKLOADS.iter().map(|s| s.to_string()).collect(),
        allocators: ALLOCATORS[..DEFAULT_ALLOCATORS].iter().collect(),
        callgrind: true,
        out: "BENCHMARKS.md".into(),
        svg: "benchmarks.svg".into(),
        // `run.sh` says how it was called; otherwise the driver's own line.
        command: std::env::var("SUITE_COMMAND").unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => {}
            "--full" => (c.rounds, c.scale, c.threads) = (5, 4.0, vec![1, 2, n, 2 * n]),
            "--tiny" => (c.rounds, c.scale, c.threads, c.callgrind) = (1, 0.05, vec![1, 2], false),
            "--rounds" => c.rounds = value()?.parse().map_err(|_| "--rounds needs a number")?,
            "--scale" => c.scale = value()?.parse().map_err(|_| "--scale needs a number")?,
            "--threads" => {
                c.threads =
                    list(&value()?).iter().map(|t| t.parse()).collect::<Result<_, _>>().map_err(|_| "bad --threads")?
            }
            "--workloads" => c.workloads = list(&value()?),
            "--allocators" => {
                let names = list(&value()?);
                if let Some(bad) = names.iter().find(|n| !ALLOCATORS.iter().any(|a| a.name == n.as_str())) {
                    return Err(format!("unknown allocator {bad}"));
                }
                c.allocators = ALLOCATORS.iter().filter(|a| names.iter().any(|n| n == a.name)).collect();
            }
            "--no-callgrind" => c.callgrind = false,
            "--out" => c.out = value()?.into(),
            "--svg" => c.svg = value()?.into(),
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    c.threads.sort_unstable();
    c.threads.dedup();
    c.rounds = c.rounds.max(1);
    if let Some(bad) = c.workloads.iter().find(|w| !WORKLOADS.contains(&w.as_str())) {
        return Err(format!("unknown workload {bad} (expected some of {})", WORKLOADS.join(", ")));
    }
    Ok(c)
}

/// Where the allocator binaries are: beside this one.
fn bin_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default()
}

/// Runs one child; `None` if the binary is missing or the run failed (said
/// on stderr).
fn run(a: &Allocator, workload: &str, threads: usize, scale: f64) -> Option<Outcome> {
    let out = Command::new(bin_dir().join(a.binary))
        .args([workload, &threads.to_string(), &scale.to_string()])
        .args(a.flags)
        .envs(a.env.iter().copied())
        .output()
        .map_err(|e| eprintln!("driver: cannot run {}: {e}", a.binary))
        .ok()?;
    if !out.status.success() {
        eprintln!("driver: {} {workload} t={threads} failed: {}", a.name, String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).map_err(|e| eprintln!("driver: bad output of {}: {e}", a.name)).ok()
}

/// Instructions of a single-thread run under callgrind, `None` if valgrind
/// is missing or fails.
fn instructions(a: &Allocator, workload: &str, scale: f64) -> Option<u64> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(bin_dir().join(a.binary))
        .args([workload, "1", &scale.to_string()])
        .args(a.flags)
        .envs(a.env.iter().copied())
        .output()
        .ok()?;
    if !out.status.success() {
        // snmalloc aborts under valgrind ("Failed to initialise snmalloc").
        eprintln!("callgrind: {} {workload} failed under valgrind: no count", a.name);
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("Collected :"))?;
    line.rsplit(':').next()?.trim().parse().ok()
}

/// Every round of one workload at one thread count: allocator -> outcomes.
type Rounds = BTreeMap<&'static str, Vec<Outcome>>;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// gcmalloc's figure over `peer`'s, round by round: (median, min, max).
fn ratios(rounds: &Rounds, peer: &str, f: impl Fn(&Outcome) -> f64) -> Option<(f64, f64, f64)> {
    ratios_between(rounds, "gcmalloc", peer, f)
}

/// `ours`'s figure over `peer`'s, round by round: (median, min, max).
fn ratios_between(rounds: &Rounds, ours: &str, peer: &str, f: impl Fn(&Outcome) -> f64) -> Option<(f64, f64, f64)> {
    let (ours, theirs) = (rounds.get(ours)?, rounds.get(peer)?);
    let mut r: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| f(a) / f(b)).collect();
    let (min, max) = r.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    Some((median(&mut r), min, max))
}

fn main() {
    let c = match parse() {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let available: Vec<&Allocator> = c
        .allocators
        .iter()
        .copied()
        .filter(|a| {
            let there = bin_dir().join(a.binary).exists();
            if !there {
                eprintln!("driver: {} not built ({} missing beside the driver): skipped", a.name, a.binary);
            }
            there
        })
        .collect();
    let total = c.workloads.len() * c.threads.len() * c.rounds * available.len();
    let mut done = 0;
    let mut results: Vec<(String, usize, Rounds)> = Vec::new();
    for workload in &c.workloads {
        for &threads in &c.threads {
            let mut rounds = Rounds::new();
            // A warm-up run, discarded: the first run after another workload
            // pays for the kernel's memory reclaim (measured up to 6x on
            // json), which would fall on whichever allocator comes first.
            if let Some(a) = available.first() {
                let _ = run(a, workload, threads, c.scale);
            }
            for round in 0..c.rounds {
                // Alternate, in a different order each round: in a fixed
                // cycle each allocator always follows the same one and pays
                // for the state it leaves the kernel in (measured: gcmalloc
                // after glibc, 1.16x stock v2 on alloc-test; head to head 1.00x).
                for a in shuffled(&available, round) {
                    done += 1;
                    if let Some(o) = run(a, workload, threads, c.scale) {
                        eprintln!(
                            "[{done}/{total}] {workload} t={threads} round {}/{} {}: {:.3} s, {} MiB",
                            round + 1,
                            c.rounds,
                            a.name,
                            o.time_s,
                            o.peak_rss_bytes >> 20
                        );
                        rounds.entry(a.name).or_default().push(o);
                    }
                }
            }
            let checks: Vec<(&str, u64)> = rounds.iter().flat_map(|(n, v)| v.first().map(|o| (*n, o.check))).collect();
            if checks.windows(2).any(|w| w[0].1 != w[1].1) {
                eprintln!("driver: {workload} t={threads}: the allocators computed different results: {checks:?}");
            }
            results.push((workload.clone(), threads, rounds));
        }
    }
    let mut icounts: Vec<(String, BTreeMap<&'static str, u64>)> = Vec::new();
    if c.callgrind {
        let synthetic = c.workloads.iter().filter(|w| !matches!(w.as_str(), "syn" | "json" | "js"));
        for workload in synthetic {
            let mut counts = BTreeMap::new();
            for a in &available {
                eprintln!("callgrind: {workload} {}", a.name);
                if let Some(n) = instructions(a, workload, c.scale * 0.05) {
                    counts.insert(a.name, n);
                }
            }
            icounts.push((workload.clone(), counts));
        }
    }
    let report = report(&c, &available, &results, &icounts);
    std::fs::write(&c.out, &report).unwrap_or_else(|e| eprintln!("driver: cannot write {}: {e}", c.out.display()));
    if let Err(e) = chart(&c.svg, &results) {
        eprintln!("driver: cannot draw {}: {e}", c.svg.display());
    }
    print!("{report}");
}

/// `items` in an order of their own for `round` (a seeded Fisher–Yates
/// shuffle: the same for every run of the suite).
fn shuffled<'a>(items: &[&'a Allocator], round: usize) -> Vec<&'a Allocator> {
    let mut order = items.to_vec();
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (round as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    for i in (1..order.len()).rev() {
        // xorshift64: plenty for picking an order.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: usize =
        meminfo.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    format!("{}, {cores} cores, {:.0} GiB", model.trim(), mem_kb as f64 / (1 << 20) as f64)
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map_or_else(|_| "?".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

const NOISE: &str = "\
Wall time on a shared 2-core machine moves by up to +-30% from round to round \
(a ratio whose min–max straddles 1.0 is no difference); the callgrind \
instruction counts below are the precise single-thread comparison. Peak RSS \
repeats within a few percent, except where it depends on how two threads \
overlap (xmalloc, json with 2 threads) and on how many transparent huge pages \
the kernel can give (it depends on what ran before: hence the shuffled order).\n\n";

fn fmt_ratio(r: Option<(f64, f64, f64)>) -> String {
    r.map_or("-".into(), |(m, lo, hi)| format!("{m:.2} ({lo:.2}–{hi:.2})"))
}

fn report(
    c: &Config,
    available: &[&Allocator],
    results: &[(String, usize, Rounds)],
    icounts: &[(String, BTreeMap<&str, u64>)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# gcmalloc against peer allocators\n");
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(out, "- date: {}", date());
    let _ = writeln!(out, "- mimalloc: gcmalloc and `mimalloc-v2` on v2.5.2 (gcmalloc patched)");
    let _ = writeln!(out, "- command: `{}` (see `bench-suite/README.md`)", c.command);
    let _ = writeln!(
        out,
        "- {} round(s) of alternating runs (a shuffled order each round) at scale {}, each allocator the global allocator of its own binary; \
         figures are medians over rounds, ratios are gcmalloc / peer per round: median (min–max)\n",
        c.rounds, c.scale
    );
    out.push_str(NOISE);
    let names: Vec<&str> = available.iter().map(|a| a.name).collect();
    for (title, unit, digits, f) in [
        ("Wall time", "s", 3, (|o: &Outcome| o.time_s) as fn(&Outcome) -> f64),
        ("Peak RSS", "MiB", 1, |o: &Outcome| o.peak_rss_bytes as f64 / (1 << 20) as f64),
    ] {
        let _ = writeln!(out, "## {title} ({unit}, median)\n");
        let _ = writeln!(out, "| workload | threads | {} |", names.join(" | "));
        let _ = writeln!(out, "| --- | --- |{}", " --- |".repeat(names.len()));
        for (w, t, rounds) in results {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    rounds
                        .get(n)
                        .map_or("-".into(), |v| format!("{:.digits$}", median(&mut v.iter().map(f).collect::<Vec<_>>())))
                })
                .collect();
            let _ = writeln!(out, "| {w} | {t} | {} |", cells.join(" | "));
        }
        let peers: Vec<&str> = PEERS.iter().copied().filter(|p| names.contains(p)).collect();
        if peers.is_empty() {
            let _ = writeln!(out); // only gcmalloc's own variants ran: the goals below compare them
            continue;
        }
        let _ = writeln!(out, "\n### {title}: gcmalloc / peer\n");
        let _ = writeln!(out, "| workload | threads | {} |", peers.join(" | "));
        let _ = writeln!(out, "| --- | --- |{}", " --- |".repeat(peers.len()));
        for (w, t, rounds) in results {
            let cells: Vec<String> = peers.iter().map(|p| fmt_ratio(ratios(rounds, p, f))).collect();
            let _ = writeln!(out, "| {w} | {t} | {} |", cells.join(" | "));
        }
        let _ = writeln!(out);
    }
    if !icounts.is_empty() {
        let _ = writeln!(out, "## Instructions, one thread (callgrind, scale {}), gcmalloc / peer\n", c.scale * 0.05);
        let peers: Vec<&str> = PEERS.iter().copied().filter(|p| names.contains(p)).collect();
        let _ = writeln!(out, "| workload | gcmalloc | {} |", peers.join(" | "));
        let _ = writeln!(out, "| --- | --- |{}", " --- |".repeat(peers.len()));
        for (w, counts) in icounts {
            let ours = counts.get("gcmalloc").copied();
            let cells: Vec<String> = peers
                .iter()
                .map(|p| match (ours, counts.get(p)) {
                    (Some(a), Some(&b)) => format!("{:.3}", a as f64 / b as f64),
                    _ => "-".into(),
                })
                .collect();
            let _ = writeln!(out, "| {w} | {} | {} |", ours.map_or("-".into(), |n| n.to_string()), cells.join(" | "));
        }
        if names.contains(&"snmalloc") {
            let _ = writeln!(out, "\nsnmalloc has no count: it aborts under valgrind (\"Failed to initialise snmalloc\").");
        }
        let _ = writeln!(out);
    }
    out.push_str(&huge_page_table(results));
    out.push_str(&goals(results, icounts));
    out
}

/// Peak RSS before and after the heap-size policy (huge pages marked only
/// once the heap is large): `gcmalloc-stockthp` (every arena marked, as
/// stock) against `gcmalloc`, each over jemalloc and stock v2, with the
/// goals met marked. Empty unless all four ran.
fn huge_page_table(results: &[(String, usize, Rounds)]) -> String {
    const BEFORE: &str = "gcmalloc-stockthp";
    let ran = |r: &Rounds| [BEFORE, "gcmalloc", "jemalloc", "mimalloc-v2"].iter().all(|a| r.contains_key(a));
    if !results.iter().any(|(_, _, r)| ran(r)) {
        return String::new();
    }
    let mib = |o: &Outcome| o.peak_rss_bytes as f64 / (1 << 20) as f64;
    let mut out = String::from("## Peak RSS before and after huge pages by heap size

");
    out.push_str(
        "Before: `gcmalloc-stockthp` (`GCMALLOC_HUGE_PAGE_THRESHOLD_MIB=0`: every arena marked for huge pages when \
         it is reserved, as stock mimalloc). After: `gcmalloc` (arenas marked once the estimate passes 128 MiB). \
         Medians in MiB; ratios per round, median. ✓ marks a goal met: ≤ 1.05x jemalloc (for heaps under 64 MiB), \
         ≤ 1.00x stock v2 (everywhere).\n\n",
    );
    out.push_str(
        "| workload | threads | before | after | jemalloc | mimalloc-v2 | before / jemalloc | after / jemalloc | before / v2 | after / v2 |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (w, t, r) in results.iter().filter(|(_, _, r)| ran(r)) {
        let med = |a: &str| median(&mut r[a].iter().map(mib).collect::<Vec<_>>());
        let small = med("jemalloc") < 64.0;
        let cell = |ours: &str, peer: &str, goal: f64, applies: bool| {
            ratios_between(r, ours, peer, mib).map_or("-".into(), |(m, _, _)| {
                format!("{m:.2}{}", if applies && m <= goal { " ✓" } else { "" })
            })
        };
        let _ = writeln!(
            out,
            "| {w} | {t} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
            med(BEFORE),
            med("gcmalloc"),
            med("jemalloc"),
            med("mimalloc-v2"),
            cell(BEFORE, "jemalloc", 1.05, small),
            cell("gcmalloc", "jemalloc", 1.05, small),
            cell(BEFORE, "mimalloc-v2", 1.00, true),
            cell("gcmalloc", "mimalloc-v2", 1.00, true),
        );
    }
    out.push('\n');
    out
}

/// The project's goals, PASS or FAIL each, with the worst ratio.
fn goals(results: &[(String, usize, Rounds)], icounts: &[(String, BTreeMap<&str, u64>)]) -> String {
    let mut out = String::from("## Goals\n\n");
    out.push_str(
        "A time goal fails where every round of a workload missed it; where only medians miss it (some \
         round met it on each workload) it is **noise**.\n\n",
    );
    // Per workload: (median, min, where).
    let ratios_of = |peer: &str, f: fn(&Outcome) -> f64, multi_only: bool| -> Vec<(f64, f64, String)> {
        results
            .iter()
            .filter(|(_, t, _)| !multi_only || *t > 1)
            .filter_map(|(w, t, r)| {
                let (median, min, _) = ratios(r, peer, f)?;
                Some((median, min, format!("{w} t={t}")))
            })
            .collect()
    };
    let time = (|o: &Outcome| o.time_s) as fn(&Outcome) -> f64;
    let rss = (|o: &Outcome| o.peak_rss_bytes as f64) as fn(&Outcome) -> f64;
    let mut line = |verdict: &str, text: String| {
        let _ = writeln!(out, "- **{verdict}** {text}");
    };
    // Time is noisy: a miss counts only if every round missed. RSS repeats.
    let judge = |all: Vec<(f64, f64, String)>, goal: f64, noisy: bool| {
        let by = |key: fn(&(f64, f64, String)) -> f64| all.iter().max_by(|a, b| key(a).total_cmp(&key(b))).cloned();
        let (Some(worst_median), Some(worst_min)) = (by(|r| r.0), by(|r| r.1)) else {
            return ("n/a", "no data".to_string());
        };
        let text = |(median, min, at): (f64, f64, String)| format!("worst median {median:.2}x, min {min:.2}x ({at})");
        if noisy && worst_min.1 > goal {
            ("FAIL", text(worst_min))
        } else if worst_median.0 <= goal {
            ("PASS", text(worst_median))
        } else if noisy {
            ("noise", text(worst_median))
        } else {
            ("FAIL", text(worst_median))
        }
    };
    let (v, t) = judge(ratios_of("mimalloc-v2", time, false), 1.00, true);
    line(v, format!("time <= 1.00x stock mimalloc v2.5.2 on every workload: {t}"));
    let instructions = icounts
        .iter()
        .filter_map(|(w, c)| Some((*c.get("gcmalloc")? as f64 / *c.get("mimalloc-v2")? as f64, w)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match instructions {
        Some((r, w)) => line(
            if r <= 1.0 { "PASS" } else { "FAIL" },
            format!("instructions (one thread, callgrind) <= 1.00x stock mimalloc v2.5.2: worst {r:.3}x ({w})"),
        ),
        None => line("n/a", "instructions (one thread, callgrind): not measured".into()),
    }
    let (v, t) = judge(ratios_of("mimalloc-v2", rss, false), 1.03, false);
    line(v, format!("peak RSS <= 1.03x stock mimalloc v2.5.2 on every workload: {t}"));
    for peer in ["jemalloc", "mimalloc-v3", "glibc"] {
        let (v, t) = judge(ratios_of(peer, time, true), 1.00, true);
        line(v, format!("faster than {peer} on every multi-threaded workload: {t}"));
    }
    let (v, t) = judge(ratios_of("jemalloc", rss, false), 1.10, false);
    line(v, format!("peak RSS within 1.10x jemalloc's on every workload: {t}"));
    // Huge pages by heap size: small heaps as lean as jemalloc's, large ones
    // as fast as marking every arena (`gcmalloc-stockthp`, when it ran).
    // A workload's heap: jemalloc's peak RSS, or gcmalloc's where jemalloc
    // did not run (`--allocators`).
    let heap_below = |limit: f64, r: &Rounds| {
        r.get("jemalloc")
            .or_else(|| r.get("gcmalloc"))
            .is_some_and(|v| median(&mut v.iter().map(|o| o.peak_rss_bytes as f64).collect::<Vec<_>>()) < limit)
    };
    let small: Vec<_> = results
        .iter()
        .filter(|(_, _, r)| heap_below(64.0 * (1 << 20) as f64, r))
        .filter_map(|(w, t, r)| ratios(r, "jemalloc", rss).map(|(m, lo, _)| (m, lo, format!("{w} t={t}"))))
        .collect();
    let (v, t) = judge(small, 1.05, false);
    line(v, format!("peak RSS <= 1.05x jemalloc's where its heap is under 64 MiB: {t}"));
    let (v, t) = judge(ratios_of("mimalloc-v2", rss, false), 1.00, false);
    line(v, format!("peak RSS <= 1.00x stock mimalloc v2.5.2 on every workload: {t}"));
    let large: Vec<_> = results
        .iter()
        .filter(|(_, _, r)| !heap_below(256.0 * (1 << 20) as f64, r))
        .filter_map(|(w, t, r)| ratios(r, "gcmalloc-stockthp", time).map(|(m, lo, _)| (m, lo, format!("{w} t={t}"))))
        .collect();
    if !large.is_empty() {
        let (v, t) = judge(large, 1.01, true);
        line(v, format!("time <= 1.01x gcmalloc-stockthp (every arena marked) where the heap is over 256 MiB: {t}"));
    }
    out
}

/// Ratios gcmalloc / peer per workload and thread count, one colour per
/// peer: wall time above, peak RSS below.
fn chart(path: &Path, results: &[(String, usize, Rounds)]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, 1000)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 1));
    let rss = |o: &Outcome| o.peak_rss_bytes as f64;
    panel(&panels[0], results, "wall time, gcmalloc / peer (below 1: gcmalloc faster)", |o| o.time_s)?;
    panel(&panels[1], results, "peak RSS, gcmalloc / peer (below 1: gcmalloc smaller)", rss)?;
    root.present()?;
    drop(root);
    start_rotated_labels(path)
}

/// plotters anchors the rotated x labels at their middle (whatever style it
/// is given), so each crosses the axis above it: anchor them at their start.
fn start_rotated_labels(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let svg = std::fs::read_to_string(path)?;
    let fixed: Vec<String> = svg
        .lines()
        .map(|l| {
            if l.contains("transform=\"rotate(90") {
                l.replace("text-anchor=\"middle\"", "text-anchor=\"start\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(path, fixed.join("\n") + "\n")?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    results: &[(String, usize, Rounds)],
    caption: &str,
    f: fn(&Outcome) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let labels: Vec<String> = results.iter().map(|(w, t, _)| format!("{w}/{t}")).collect();
    let series: Vec<(&str, Vec<(usize, f64)>)> = PEERS
        .iter()
        .map(|p| {
            (
                *p,
                results
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, _, r))| Some((i, ratios(r, p, f)?.0)))
                    .collect(),
            )
        })
        .collect();
    let y_max = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)).fold(1.5, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(110)
        .y_label_area_size(50)
        .build_cartesian_2d(0..labels.len().max(1), 0.0..y_max * 1.05)?;
    chart
        .configure_mesh()
        .x_labels(labels.len().max(1))
        .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
        .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    chart.draw_series(LineSeries::new([(0, 1.0), (labels.len(), 1.0)], BLACK.stroke_width(1)))?;
    for (i, (peer, points)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(points.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())))?
            .label(peer)
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One round per allocator, with these peak RSS figures in MiB.
    fn rounds(rss: &[(&'static str, f64)]) -> Rounds {
        rss.iter()
            .map(|&(name, mib)| {
                let o = Outcome {
                    workload: "w".into(),
                    threads: 1,
                    time_s: 1.0,
                    peak_rss_bytes: (mib * (1 << 20) as f64) as usize,
                    check: 0,
                };
                (name, vec![o])
            })
            .collect()
    }

    #[test]
    fn huge_page_table_marks_the_goals_met() {
        let small = rounds(&[("gcmalloc-stockthp", 30.0), ("gcmalloc", 20.0), ("jemalloc", 20.0), ("mimalloc-v2", 30.0)]);
        let missed = rounds(&[("gcmalloc-stockthp", 30.0), ("gcmalloc", 24.0), ("jemalloc", 20.0), ("mimalloc-v2", 20.0)]);
        let table = huge_page_table(&[("small".into(), 1, small), ("missed".into(), 2, missed)]);
        assert!(
            table.contains("| small | 1 | 30.0 | 20.0 | 20.0 | 30.0 | 1.50 | 1.00 ✓ | 1.00 ✓ | 0.67 ✓ |"),
            "{table}"
        );
        assert!(table.contains("| missed | 2 | 30.0 | 24.0 | 20.0 | 20.0 | 1.50 | 1.20 | 1.50 | 1.20 |"), "{table}");
    }

    #[test]
    fn huge_page_table_is_empty_without_the_stock_run() {
        let r = rounds(&[("gcmalloc", 20.0), ("jemalloc", 20.0), ("mimalloc-v2", 30.0)]);
        assert_eq!(huge_page_table(&[("w".into(), 1, r)]), "");
    }
}
