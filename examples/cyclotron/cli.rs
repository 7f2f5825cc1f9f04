//! Command-line arguments and the grid of runs they describe.

use std::fmt;
use std::path::PathBuf;

use crate::gc_heap::HeapKind;
use crate::policy::{self, POLICIES};
use crate::report::View;
use crate::workloads::Shape;

pub const USAGE: &str = "\
usage: cyclotron [--quick | --grid] [options]

  --quick               a few representative points (the default): about 60 s on
                        2 cores with the toy, 90 s with dumpster, 35 s with gc-arena,
                        70 s with rust-cc
  --grid                the seed's grid: cycle {10,100,1k} x extra {0,10k,100k,300k}
                        x live {100,10k,30k}
  --runtime R           toy (default: cyclotron's own mark-sweep), dumpster,
                        gc-arena or rust-cc (real Rust collectors; see --policies)
  --workload W          chain (default) or tree
  --cycle LIST          objects per chain, e.g. 10,100 (with --extra/--live:
  --extra LIST          payload bytes per chain          a grid of your own)
  --live LIST           objects kept reachable at most
  --cyclic-fraction F   fraction of chains closed into cycles (default 1.0)
  --total N             objects allocated per run (default: sized per point)
  --threads N           mutator threads (default 1)
  --policies LIST       of own, count, rss, estimate, goal, debt, balanced,
                        incremental, each optionally with its knob (goal:200,
                        balanced:16) (default: all the runtime has; `own` is a
                        real collector's own heuristic, which the toy lacks;
                        `debt` is gc-arena's pacing with the estimate's growth
                        added as debt; `balanced` is MemBalancer's limit;
                        `incremental` (gc-arena) paces its steps by that limit)
  --sweep N             run each policy at N knob values across its range
                        (0: the whole range): the time-memory frontier
  --frontier FILE.svg   mean RSS against collection time, one line per policy
  --memory-limit MIB    a soft memory limit on every trigger policy (10%
                        headroom, collections capped at 50% of the time)
  --base P              policy the ratio columns compare against (default: rss
                        for the toy, own for a real collector)
  --by point|policy     one table per grid point, a row per policy (default), or
                        one table per policy, a row per point (the seed's layout)
  --check               exit with 1 when a verdict line says FAIL (peak RSS and
                        trash; the time lines are advisory: ok or miss)
  --json FILE           every figure of every run, as JSON
  --from-json FILE      the report (tables, verdict, --check) on a --json file's
                        runs, without running
  --plot FILE.svg       RSS and trash over time, per point and policy
  --heap LIST           where the toy's objects live: global (default), or gc:
                        a gcmalloc::GcHeap, whose own figure the estimate,
                        goal and balanced policies then read
  --noise [MIB]         beside each run, a cache grows to MIB (default 500) in
                        1 MiB chunks and is dropped, over and over: runs each
                        policy and heap (default gc,global) with and without
                        it and compares collections and peak RSS

All memory figures are MiB (2^20 bytes). Exit codes: 0, 1 (--check found a
FAIL), 2 (bad arguments or a failed run).";

/// The collector the workloads run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collector {
    Toy,
    Dumpster,
    GcArena,
    RustCc,
}

impl Collector {
    pub fn name(self) -> &'static str {
        match self {
            Collector::Toy => "toy",
            Collector::Dumpster => "dumpster",
            Collector::GcArena => "gc-arena",
            Collector::RustCc => "rust-cc",
        }
    }

    fn parse(name: &str) -> Result<Collector, String> {
        match name {
            "toy" => Ok(Collector::Toy),
            "dumpster" => Ok(Collector::Dumpster),
            "gc-arena" => Ok(Collector::GcArena),
            "rust-cc" => Ok(Collector::RustCc),
            other => Err(format!("unknown runtime {other} (expected toy, dumpster, gc-arena or rust-cc)")),
        }
    }

    /// The policies this collector runs by default: those it has.
    fn policies(self) -> Vec<String> {
        POLICIES.iter().filter(|p| self.has(p)).map(|p| p.to_string()).collect()
    }

    /// `own` is a real collector's heuristic; `debt` and `incremental`
    /// pace gc-arena's.
    fn has(self, policy: &str) -> bool {
        match policy::split(policy).0 {
            "own" => self != Collector::Toy,
            "debt" | "incremental" => self == Collector::GcArena,
            _ => true,
        }
    }
}

/// Allocation volume a default-sized run aims at (objects plus payloads).
const RUN_BYTES: usize = 3 << 30;
/// Bytes of one payload-less object (header, edges), for sizing runs.
const OBJECT_BYTES: usize = 64;
/// Bounds of a default-sized run, in objects.
pub const MIN_TOTAL: usize = 1_000_000;
const MAX_TOTAL: usize = 3_000_000;
const MIN_TOTAL_REAL: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Chain,
    Tree,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Chain => "chain",
            Workload::Tree => "tree",
        }
    }
}

/// One grid point: a workload and its shape.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub workload: Workload,
    pub shape: Shape,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shape;
        write!(f, "{} cycle={} extra={} live={}", self.workload.name(), s.cycle, s.extra, s.live)
    }
}

/// The run a child process performs.
pub struct ChildRun {
    pub point: Point,
    pub policy: String,
}

pub struct Args {
    pub runtime: Collector,
    pub points: Vec<Point>,
    pub policies: Vec<String>,
    pub base: String,
    pub threads: usize,
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub frontier: Option<PathBuf>,
    /// `--memory-limit`, in MiB.
    pub memory_limit: Option<usize>,
    pub child: Option<ChildRun>,
    /// `--by`: the report's tables per point or per policy.
    pub view: View,
    /// `--check`: exit with 1 when a checked verdict line fails.
    pub check: bool,
    /// `--from-json FILE`: report on a `--json` file's runs instead of
    /// running (`--base`, if given, in `base`).
    pub from_json: Option<PathBuf>,
    /// `--heap`: one entry, or several with `--noise`.
    pub heaps: Vec<HeapKind>,
    /// `--noise`: the cache's peak, in MiB.
    pub noise: Option<usize>,
}

/// The base a runtime's ratios compare against by default: CPython's RSS
/// gate for the toy, a real collector's own heuristic.
pub fn default_base(runtime: &str) -> &'static str {
    if runtime == "toy" {
        "rss"
    } else {
        "own"
    }
}

/// Objects per run when `--total` is not given: about `RUN_BYTES` of
/// allocation, within [`MIN_TOTAL`, `MAX_TOTAL`] objects. A real
/// collector's own heuristic may collect nothing for gigabytes, so its runs
/// stop at `RUN_BYTES` (at least `MIN_TOTAL_REAL` objects): the toy's
/// floor of a million objects would allocate 30,000 MiB at extra=300k.
pub fn default_total(cycle: usize, extra: usize, runtime: Collector) -> usize {
    let per_object = OBJECT_BYTES + extra / cycle;
    let min = if runtime == Collector::Toy { MIN_TOTAL } else { MIN_TOTAL_REAL };
    (RUN_BYTES / per_object).clamp(min, MAX_TOTAL)
}

fn list(value: &str) -> Result<Vec<usize>, String> {
    value.split(',').map(|v| number(v.trim())).collect()
}

/// `30000`, `30k` or `1m`.
fn number(v: &str) -> Result<usize, String> {
    let (digits, scale) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1_000),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1_000_000),
        _ => (v, 1),
    };
    let n: f64 = digits.parse().map_err(|_| format!("not a number: {v}"))?;
    Ok((n * scale as f64) as usize)
}

fn policy(name: &str) -> Result<String, String> {
    policy::parse(name)
}

/// Why the arguments give no run.
pub enum ArgsError {
    /// `--help`: print the usage.
    Help,
    Invalid(String),
}

impl From<String> for ArgsError {
    fn from(message: String) -> Self {
        ArgsError::Invalid(message)
    }
}

impl From<&str> for ArgsError {
    fn from(message: &str) -> Self {
        ArgsError::Invalid(message.to_string())
    }
}

pub fn parse(raw: impl Iterator<Item = String>) -> Result<Args, ArgsError> {
    let mut raw = raw.peekable();
    let mut grid = false;
    let mut workload = Workload::Chain;
    let (mut cycles, mut extras, mut lives) = (None, None, None);
    let mut cyclic_fraction = 1.0;
    let mut total = None;
    let mut threads = 1;
    let mut runtime = Collector::Toy;
    let mut policies: Option<Vec<String>> = None;
    let mut base = None;
    let (mut json, mut plot, mut child, mut child_policy) = (None, None, false, None);
    let (mut sweep, mut frontier, mut memory_limit) = (None, None, None);
    let (mut view, mut check, mut from_json) = (View::Point, false, None);
    let (mut heaps, mut noise) = (None, None);
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => grid = false,
            "--grid" => grid = true,
            "--runtime" => runtime = Collector::parse(&value()?)?,
            "--workload" => {
                workload = match value()?.as_str() {
                    "chain" => Workload::Chain,
                    "tree" => Workload::Tree,
                    other => return Err(format!("unknown workload {other}").into()),
                }
            }
            "--cycle" => cycles = Some(list(&value()?)?),
            "--extra" => extras = Some(list(&value()?)?),
            "--live" => lives = Some(list(&value()?)?),
            "--cyclic-fraction" => {
                cyclic_fraction = value()?.parse().map_err(|_| "--cyclic-fraction needs a number in 0..=1")?
            }
            "--total" => total = Some(number(&value()?)?),
            "--threads" => threads = number(&value()?)?.max(1),
            "--policies" => policies = Some(value()?.split(',').map(policy).collect::<Result<_, _>>()?),
            "--base" => base = Some(policy(&value()?)?),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--plot" => plot = Some(PathBuf::from(value()?)),
            "--frontier" => frontier = Some(PathBuf::from(value()?)),
            "--sweep" => sweep = Some(number(&value()?)?),
            "--memory-limit" => memory_limit = Some(number(&value()?)?),
            "--by" => {
                view = match value()?.as_str() {
                    "point" => View::Point,
                    "policy" => View::Policy,
                    other => return Err(format!("unknown view {other} (expected point or policy)").into()),
                }
            }
            "--check" => check = true,
            "--heap" => heaps = Some(value()?.split(',').map(HeapKind::parse).collect::<Result<Vec<_>, _>>()?),
            "--noise" => noise = Some(raw.next_if(|v| !v.starts_with("--")).map_or(Ok(500), |v| number(&v))?),
            "--from-json" => from_json = Some(PathBuf::from(value()?)),
            "--child" => child = true,
            "--policy" => child_policy = Some(policy(&value()?)?),
            "--help" | "-h" => return Err(ArgsError::Help),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if !(0.0..=1.0).contains(&cyclic_fraction) {
        return Err("--cyclic-fraction needs a number in 0..=1".into());
    }
    let mut policies = policies.unwrap_or_else(|| runtime.policies());
    if let Some(n) = sweep {
        policies = policies.iter().flat_map(|p| policy::sweep(p, n)).collect();
    }
    let heaps = crate::noise::check_heaps(heaps, noise, runtime, [&json, &plot, &frontier, &from_json])?;
    let replay = from_json.is_some();
    if replay && plot.is_some() {
        return Err("--plot needs the runs' samples, which --json leaves out: not with --from-json".into());
    }
    let args = move |points, policies, base, child| Args {
        runtime,
        points,
        policies,
        base,
        threads,
        json,
        plot,
        frontier,
        memory_limit,
        child,
        view,
        check,
        from_json,
        heaps,
        noise,
    };
    if replay {
        // The runs, their runtime and policies come from the file.
        return Ok(args(Vec::new(), Vec::new(), base.unwrap_or_default(), None));
    }
    let base = base.unwrap_or_else(|| default_base(runtime.name()).to_string());
    if !policies.contains(&base) && noise.is_none() {
        policies.insert(0, base.clone());
    }
    if let Some(p) = policies.iter().find(|p| !runtime.has(p)) {
        return Err(format!(
            "the {} runtime has no policy {p}: `own` needs dumpster, gc-arena or rust-cc; `debt` and \
             `incremental` need gc-arena",
            runtime.name()
        )
        .into());
    }
    if runtime != Collector::Toy && threads > 1 {
        return Err(format!("--threads applies to the toy runtime only ({} runs on one thread)", runtime.name()).into());
    }
    let custom = cycles.is_some() || extras.is_some() || lives.is_some();
    let mut dims: Vec<(Workload, usize, usize, usize)> = if custom || grid {
        let cycles = cycles.unwrap_or_else(|| if grid { vec![10, 100, 1000] } else { vec![10] });
        let extras = extras.unwrap_or_else(|| if grid { vec![0, 10_000, 100_000, 300_000] } else { vec![0] });
        let lives = lives.unwrap_or_else(|| if grid { vec![100, 10_000, 30_000] } else { vec![10_000] });
        let mut dims = Vec::new();
        for &c in &cycles {
            for &e in &extras {
                for &l in &lives {
                    dims.push((workload, c, e, l));
                }
            }
        }
        dims
    } else {
        quick_points(runtime)
    };
    if dims.iter().any(|&(_, c, _, l)| c == 0 || l == 0) {
        return Err("--cycle and --live must be at least 1".into());
    }
    let points = dims
        .drain(..)
        .map(|(workload, cycle, extra, live)| Point {
            workload,
            shape: Shape {
                cycle,
                extra,
                live,
                cyclic_fraction,
                total: total.unwrap_or_else(|| default_total(cycle, extra, runtime)),
            },
        })
        .collect::<Vec<_>>();
    let child = match (child, child_policy) {
        (false, _) => None,
        (true, Some(policy)) if points.len() == 1 => Some(ChildRun { point: points[0], policy }),
        (true, _) => return Err("--child needs --policy and exactly one point".into()),
    };
    Ok(args(points, policies, base, child))
}

/// `--quick`: representative points: no payload, payloads of 10k, 100k and
/// 300k bytes, and two trees.
fn quick_points(runtime: Collector) -> Vec<(Workload, usize, usize, usize)> {
    if runtime != Collector::Toy {
        // No payload; payloads of 100k and (where counts mislead) 300k at
        // live=30k; a tree.
        return vec![
            (Workload::Chain, 10, 0, 10_000),
            (Workload::Chain, 10, 100_000, 10_000),
            (Workload::Chain, 10, 300_000, 30_000),
            (Workload::Tree, 10, 10_000, 10_000),
        ];
    }
    vec![
        (Workload::Chain, 10, 0, 10_000),
        (Workload::Chain, 10, 100_000, 10_000),
        (Workload::Chain, 100, 10_000, 30_000),
        (Workload::Chain, 10, 300_000, 30_000),
        (Workload::Tree, 10, 10_000, 10_000),
        (Workload::Tree, 100, 100_000, 30_000),
    ]
}

/// The arguments that make a child process run `policy` on `point`.
pub fn child_args(runtime: Collector, point: &Point, policy: &str, args: &Args) -> Vec<String> {
    let s = &point.shape;
    let threads = args.threads;
    let limit = args.memory_limit.map(|l| ["--memory-limit".to_string(), l.to_string()]);
    [
        "--child",
        "--runtime",
        runtime.name(),
        "--policy",
        policy,
        "--workload",
        point.workload.name(),
        "--cycle",
        &s.cycle.to_string(),
        "--extra",
        &s.extra.to_string(),
        "--live",
        &s.live.to_string(),
        "--cyclic-fraction",
        &s.cyclic_fraction.to_string(),
        "--total",
        &s.total.to_string(),
        "--threads",
        &threads.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(limit.into_iter().flatten())
    .collect()
}
