//! What one run measured: samples over time, pauses, and the summary figures.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use gcmalloc::MemorySource;
use serde::{Deserialize, Serialize};

use crate::heap::TrashGauge;

/// Samples taken per run (RSS and trash over time, for the plot and the
/// stability fit).
const SAMPLES_PER_RUN: usize = 400;

/// The fitted rise of trash over a whole run must stay within this fraction
/// of its mean level for the run to count as stable.
const STABLE_RISE: f64 = 0.05;

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub rss_bytes: usize,
    pub trash: usize,
}

/// Takes a sample every `total / SAMPLES_PER_RUN` allocated objects.
/// With several threads, only the first one samples (the process's RSS and
/// the run's trash), at its own progress.
pub struct Sampler {
    every: usize,
    next: usize,
    start: Instant,
    gauge: Option<std::sync::Arc<TrashGauge>>,
    pub samples: Vec<Sample>,
    /// AnonHugePages at the sample of highest RSS (read again whenever RSS
    /// passes the last read's by 2%), `None` where the kernel reports none.
    pub anon_huge_bytes: Option<usize>,
    /// The RSS of the last AnonHugePages read.
    huge_read_at: usize,
}

impl Sampler {
    pub fn new(total: usize, gauge: std::sync::Arc<TrashGauge>) -> Self {
        Sampler {
            every: (total / SAMPLES_PER_RUN).max(1),
            next: 0,
            start: Instant::now(),
            gauge: Some(gauge),
            samples: Vec::with_capacity(SAMPLES_PER_RUN + 16),
            anon_huge_bytes: None,
            huge_read_at: 0,
        }
    }

    /// A sampler that takes no samples.
    pub fn idle() -> Self {
        Sampler {
            every: usize::MAX,
            next: usize::MAX,
            start: Instant::now(),
            gauge: None,
            samples: Vec::new(),
            anon_huge_bytes: None,
            huge_read_at: 0,
        }
    }

    #[inline]
    pub fn tick(&mut self, made: usize) {
        if made < self.next {
            return;
        }
        let Some(gauge) = &self.gauge else { return };
        self.next = made + self.every;
        let rss_bytes = MemorySource::Rss.read().unwrap_or(0);
        self.samples.push(Sample { t_s: self.start.elapsed().as_secs_f64(), rss_bytes, trash: gauge.now() });
        // smaps_rollup walks the page tables: read it only as RSS climbs.
        if rss_bytes > self.huge_read_at + self.huge_read_at / 50 {
            self.huge_read_at = rss_bytes;
            self.anon_huge_bytes = anon_huge_bytes();
        }
    }
}

/// This process's transparent huge pages (AnonHugePages of
/// /proc/self/smaps_rollup), in bytes; `None` where the kernel has no such
/// line.
pub fn anon_huge_bytes() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("AnonHugePages:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Collection CPU time of the whole run, in nanoseconds (every thread's).
static GC_CPU_NS: AtomicU64 = AtomicU64::new(0);

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes the timespec it is given.
    let ts = unsafe {
        let mut ts = std::mem::zeroed::<libc::timespec>();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Times one collection pause: its wall-clock length (what a mutator
/// waits) and the collecting thread's CPU time over it (what the collection
/// cost, which a busy machine's preemption does not inflate).
pub struct PauseTimer {
    wall: Instant,
    cpu: Duration,
}

impl PauseTimer {
    pub fn start() -> PauseTimer {
        PauseTimer { wall: Instant::now(), cpu: thread_cpu() }
    }

    /// Adds the CPU time to the run's collection time; returns the pause.
    pub fn stop(self) -> Duration {
        let cpu = thread_cpu().saturating_sub(self.cpu);
        GC_CPU_NS.fetch_add(cpu.as_nanos() as u64, Relaxed);
        self.wall.elapsed()
    }
}

/// Adds a pause measured without a CPU clock (rust-cc's own collections,
/// inside an allocation) to the run's collection time.
pub fn add_gc_time(pause: Duration) {
    GC_CPU_NS.fetch_add(pause.as_nanos() as u64, Relaxed);
}

/// The run's collection CPU time so far.
pub fn gc_cpu() -> Duration {
    Duration::from_nanos(GC_CPU_NS.load(Relaxed))
}

/// One policy's run on one grid point: every figure of the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub runtime: String,
    pub workload: String,
    pub cycle: usize,
    pub extra: usize,
    pub live: usize,
    pub cyclic_fraction: f64,
    pub threads: usize,
    pub total: usize,
    pub policy: String,
    pub time_s: f64,
    pub peak_rss_bytes: usize,
    /// AnonHugePages at the sample of highest RSS (`Sampler`), bytes.
    #[serde(default)]
    pub anon_huge_bytes: Option<usize>,
    /// Time-averaged RSS: the samples' mean (see `mean_rss_bytes`).
    #[serde(default)]
    pub mean_rss_bytes: usize,
    /// Total collection time (the collecting threads' CPU time over the
    /// pauses), seconds, and its share of the run's wall time.
    #[serde(default)]
    pub gc_time_s: f64,
    #[serde(default)]
    pub gc_share: f64,
    pub max_trash: usize,
    pub pause_p50_ms: f64,
    pub pause_p99_ms: f64,
    pub pause_max_ms: f64,
    pub collections: usize,
    /// `--threads`: stops of the world, the longest wait for every thread
    /// to park (ms), and the most threads parked by one stop.
    #[serde(default)]
    pub stops: usize,
    #[serde(default)]
    pub stop_latency_max_ms: f64,
    #[serde(default)]
    pub parked_max: usize,
    pub stable: bool,
    /// The trigger's checks at the soft limit, and the limit-driven
    /// collections its CPU cap held back (`--memory-limit`).
    #[serde(default)]
    pub limit_hits: u64,
    #[serde(default)]
    pub throttled: u64,
    /// Theil-Sen slope of the trash peaks, in objects per stability window.
    pub trash_slope: f64,
    /// `--noise`: the largest the cache beside the run grew, MiB.
    #[serde(default)]
    pub noise_peak_mib: usize,
    /// Over time; left out of `--json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
}

impl RunResult {
    /// Whether `other` ran on the same grid point (all but the policy).
    pub fn same_point(&self, other: &RunResult) -> bool {
        (&self.runtime, &self.workload, self.cycle, self.extra, self.live, self.threads, self.total)
            == (&other.runtime, &other.workload, other.cycle, other.extra, other.live, other.threads, other.total)
            && self.cyclic_fraction == other.cyclic_fraction
    }
}

/// Pause percentiles in milliseconds: (p50, p99, max); zeros if none.
pub fn pause_percentiles(pauses: &[Duration]) -> (f64, f64, f64) {
    if pauses.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut ms: Vec<f64> = pauses.iter().map(|p| p.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99), ms[ms.len() - 1])
}

/// The Theil-Sen slope (median of pairwise slopes) of `ys` over their index.
pub fn theil_sen_slope(ys: &[f64]) -> f64 {
    let mut slopes = Vec::with_capacity(ys.len() * ys.len().saturating_sub(1) / 2);
    for i in 0..ys.len() {
        for j in i + 1..ys.len() {
            slopes.push((ys[j] - ys[i]) / (j - i) as f64);
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    let mid = slopes.len() / 2;
    *slopes.select_nth_unstable_by(mid, f64::total_cmp).1
}

/// Most windows whose trash peaks the stability fit uses. Trash is a
/// sawtooth (rising between collections, dropping at each), on which a fit
/// over raw samples leans upward; the peaks of windows spanning two teeth
/// or more are flat when trash is not rising.
const STABILITY_WINDOWS: usize = 20;

/// Stable: trash is not rising: the Theil-Sen fit over the per-window peaks
/// of trash rises, across the whole run, by at most 5% of their mean. Each
/// window spans two collections or more (`collections` in the run).
/// Returns (stable, slope in objects per window).
pub fn stability(samples: &[Sample], collections: usize) -> (bool, f64) {
    let windows = (collections / 2).clamp(4, STABILITY_WINDOWS);
    let per_window = samples.len().div_ceil(windows).max(1);
    let peaks: Vec<f64> =
        samples.chunks(per_window).map(|w| w.iter().map(|s| s.trash).max().unwrap_or(0) as f64).collect();
    let slope = theil_sen_slope(&peaks);
    let mean = peaks.iter().sum::<f64>() / peaks.len().max(1) as f64;
    let rise = slope * peaks.len() as f64;
    (rise <= STABLE_RISE * mean.max(1.0), slope)
}

/// The mean of the samples' RSS, in bytes (0 without samples). Samples come
/// at even steps of allocation, so this is RSS averaged over the mutator's
/// progress: the time average for a steady mutator, without the noise a
/// busy machine's stalls add to wall-clock weights (measured: identical
/// runs' time-weighted means 30% apart under a load of 8 on 2 cores).
pub fn mean_rss_bytes(samples: &[Sample]) -> usize {
    let sum: u128 = samples.iter().map(|s| s.rss_bytes as u128).sum();
    (sum / samples.len().max(1) as u128) as usize
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theil_sen_ignores_outliers() {
        let mut ys: Vec<f64> = (0..50).map(|x| 2.0 * x as f64 + 1.0).collect();
        ys[10] = 1e6;
        ys[40] = -1e6;
        assert_eq!(theil_sen_slope(&ys), 2.0);
    }

    #[test]
    fn sawtooth_is_stable_and_ramp_is_not() {
        let sample = |trash| Sample { t_s: 0.0, rss_bytes: 0, trash };
        let saw: Vec<Sample> = (0..300).map(|i| sample(i % 37 * 100)).collect();
        assert!(stability(&saw, 300 / 37).0);
        let ramp: Vec<Sample> = (0..300).map(|i| sample(i % 37 * 100 + i * 10)).collect();
        assert!(!stability(&ramp, 300 / 37).0);
    }

    #[test]
    fn mean_rss_averages_the_samples() {
        let sample = |t_s, rss_bytes| Sample { t_s, rss_bytes, trash: 0 };
        let samples = [sample(0.0, 100), sample(3.0, 400), sample(4.0, 100)];
        assert_eq!(mean_rss_bytes(&samples), 200);
        assert_eq!(mean_rss_bytes(&[]), 0);
    }

    #[test]
    fn pause_timer_counts_cpu_not_sleep() {
        let before = gc_cpu();
        let timer = PauseTimer::start();
        std::thread::sleep(Duration::from_millis(30));
        let wall = timer.stop();
        assert!(wall >= Duration::from_millis(30));
        assert!(gc_cpu() - before < Duration::from_millis(10), "a sleep is no collection work");
    }

    #[test]
    fn percentiles_pick_ranks() {
        let pauses: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pause_percentiles(&pauses), (51.0, 99.0, 100.0));
    }
}
