//! Output: the seed-style table, `--json` and `--plot`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

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

fn bytes(n: usize) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else {
        format!("{:.0}M", n / 1e6)
    }
}

fn count(n: usize) -> String {
    if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

fn ratio(new: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.2}", new / base)
    } else {
        "-".into()
    }
}

/// One table per policy other than `base`, each row one grid point, as in
/// the seed: the policy's figures and their ratio to `base`'s.
pub fn table(points: &[PointResults], policies: &[String], base: &str) -> String {
    let mut out = String::new();
    let Some(first) = points.first().and_then(|p| p.runs.first()) else {
        return out;
    };
    let _ = writeln!(
        out,
        "Uniform: cyc% {:.0}, threads {}; ratio r-X = policy / {base}",
        first.cyclic_fraction * 100.0,
        first.threads
    );
    for policy in policies {
        let against = if policy == base { " (base)".to_string() } else { format!(" vs base={base}") };
        let _ = writeln!(out, "\npolicy={policy}{against}");
        let _ = writeln!(
            out,
            "{:>5} {:>6} {:>7} {:>6} {:>7} {:>5} {:>6} {:>5} {:>7} {:>5} {:>7} {:>5} {:>6} {:>6}",
            "wl",
            "cycle",
            "extra",
            "live",
            "t(s)",
            "r-t",
            "rss",
            "r-rss",
            "trash",
            "r-tr",
            "pause",
            "r-p",
            "colls",
            "stable"
        );
        for point in points {
            let (Some(run), Some(b)) = (point.policy(policy), point.policy(base)) else {
                continue;
            };
            let _ = writeln!(
                out,
                "{:>5} {:>6} {:>7} {:>6} {:>7.2} {:>5} {:>6} {:>5} {:>7} {:>5} {:>7.2} {:>5} {:>6} {:>6}",
                run.workload,
                count(run.cycle),
                count(run.extra),
                count(run.live),
                run.time_s,
                ratio(run.time_s, b.time_s),
                bytes(run.peak_rss_bytes),
                ratio(run.peak_rss_bytes as f64, b.peak_rss_bytes as f64),
                count(run.max_trash),
                ratio(run.max_trash as f64, b.max_trash as f64),
                run.pause_max_ms,
                ratio(run.pause_max_ms, b.pause_max_ms),
                run.collections,
                if run.stable { "yes" } else { "NO" }
            );
        }
    }
    let _ = writeln!(
        out,
        "\nLegend: t(s) wall time; rss peak RSS of the run's own process; trash max uncollected\n\
         cyclic garbage (objects); pause max GC pause (ms); colls collections; stable: trash\n\
         not rising (Theil-Sen fit flat within 5%)."
    );
    out
}

/// The goal of issue 8, checked on these results: `estimate` vs `rss` where
/// extra >= 10k (peak RSS <= 0.5x, max trash <= 0.2x), stable everywhere,
/// and total time no more than `count`'s.
pub fn goal_summary(points: &[PointResults]) -> String {
    let pairs: Vec<(&RunResult, &RunResult)> = points
        .iter()
        .filter_map(|p| Some((p.policy("estimate")?, p.policy("rss")?)))
        .filter(|(e, _)| e.extra >= 10_000)
        .collect();
    let ratios = |f: &dyn Fn(&RunResult, &RunResult) -> f64| {
        let mut v: Vec<f64> = pairs.iter().map(|(e, r)| f(e, r)).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let rss = ratios(&|e, r| e.peak_rss_bytes as f64 / r.peak_rss_bytes as f64);
    let trash = ratios(&|e, r| e.max_trash as f64 / r.max_trash.max(1) as f64);
    let within = |v: &[f64], goal: f64| v.iter().filter(|&&x| x <= goal).count();
    let estimate_runs = points.iter().filter_map(|p| p.policy("estimate"));
    let unstable = estimate_runs.clone().filter(|r| !r.stable).count();
    let time = |name: &str| points.iter().filter_map(|p| p.policy(name)).map(|r| r.time_s).sum::<f64>();
    let mut out = String::new();
    if !pairs.is_empty() {
        let n = pairs.len();
        let _ = writeln!(
            out,
            "estimate vs rss where extra >= 10k ({n} points):\n  \
             r-rss median {:.2}, max {:.2}; <= 0.5 on {} of {n}\n  \
             r-trash median {:.2}, max {:.2}; <= 0.2 on {} of {n}",
            rss[n / 2],
            rss[n - 1],
            within(&rss, 0.5),
            trash[n / 2],
            trash[n - 1],
            within(&trash, 0.2)
        );
    }
    let _ = writeln!(out, "estimate unstable rows: {unstable} of {} (goal 0)", estimate_runs.count());
    if points.iter().any(|p| p.policy("count").is_some()) {
        let _ = writeln!(
            out,
            "total time: estimate {:.1} s, count {:.1} s, rss {:.1} s (goal: estimate <= count)",
            time("estimate"),
            time("count"),
            time("rss")
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

const ROW_HEIGHT: u32 = 260;

/// RSS and trash over time, one row of two charts per grid point, one line
/// per policy.
pub fn write_plot(path: &Path, points: &[PointResults]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1100, ROW_HEIGHT * points.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let rows = root.split_evenly((points.len().max(1), 2));
    for (point, cells) in points.iter().zip(rows.chunks(2)) {
        let r0 = &point.runs[0];
        let title = format!("{} cycle={} extra={} live={}", r0.workload, r0.cycle, r0.extra, r0.live);
        draw_series(&cells[0], &format!("{title}: RSS (MB)"), point, |s| s.rss_bytes as f64 / 1e6)?;
        draw_series(&cells[1], &format!("{title}: trash (objects)"), point, |s| s.trash as f64)?;
    }
    root.present()?;
    Ok(())
}

fn draw_series(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    caption: &str,
    point: &PointResults,
    value: impl Fn(&crate::metrics::Sample) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let t_max = point.runs.iter().flat_map(|r| r.samples.last()).map(|s| s.t_s).fold(0.0, f64::max);
    let y_max = point.runs.iter().flat_map(|r| r.samples.iter().map(&value)).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..t_max.max(1e-3) * 1.02, 0.0..y_max.max(1.0) * 1.05)?;
    chart.configure_mesh().x_desc("seconds").draw()?;
    for (i, run) in point.runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(run.samples.iter().map(|s| (s.t_s, value(s))), color.stroke_width(2)))?
            .label(run.policy.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}
