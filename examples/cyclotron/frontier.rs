//! The time-memory frontier (`--sweep`, `--frontier`): each policy run over
//! its knob gives points (collection time, mean RSS); the lower-left
//! envelope of a policy's points is its frontier. The verdict compares the
//! balanced policies' frontiers with every other policy's, at equal
//! collection time and at equal mean RSS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::metrics::RunResult;
use crate::policy;
use crate::report::PointResults;

/// The policies whose frontier is judged against the others'.
const CHALLENGERS: [&str; 2] = ["balanced", "incremental"];

/// Goals: at equal collection time, this much less mean RSS; or at equal
/// mean RSS, this much less collection time (MemBalancer's published gains).
const RSS_GOAL: f64 = 0.16;
const TIME_GOAL: f64 = 0.30;

/// (collection time s, mean RSS MiB) of each run, per policy name, in
/// policy order.
/// A run without a knob (the base policy, added beside its sweep) is left
/// out where the same policy was swept.
fn by_policy(point: &PointResults) -> BTreeMap<&str, Vec<(f64, f64)>> {
    let swept = |name: &str| point.runs.iter().any(|r| matches!(policy::split(&r.policy), (n, Some(_)) if n == name));
    let mut map: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for run in &point.runs {
        let (name, knob) = policy::split(&run.policy);
        if knob.is_none() && swept(name) {
            continue;
        }
        map.entry(name).or_default().push(xy(run));
    }
    map
}

fn xy(run: &RunResult) -> (f64, f64) {
    (run.gc_time_s, run.mean_rss_bytes as f64 / (1 << 20) as f64)
}

/// The lower-left envelope: by increasing time, each point with less memory
/// than every faster one.
pub fn envelope(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if out.last().is_none_or(|last| p.1 < last.1) {
            out.push(p);
        }
    }
    out
}

/// The envelope's memory at collection time `t` (linear between points; its
/// slowest point's beyond it); `None` before its fastest point. (Any curve
/// of (x, y) points by increasing x: y at `t`.)
fn memory_at(env: &[(f64, f64)], t: f64) -> Option<f64> {
    let first = env.first()?;
    if t < first.0 {
        return None;
    }
    for pair in env.windows(2) {
        let ((t0, m0), (t1, m1)) = (pair[0], pair[1]);
        if t <= t1 {
            return Some(if t1 > t0 { m0 + (m1 - m0) * (t - t0) / (t1 - t0) } else { m1 });
        }
    }
    env.last().map(|p| p.1)
}

/// The envelope's collection time at memory `m` (linear between points;
/// its fastest point's above it); `None` below its leanest point. The
/// envelope read the other way: by increasing memory, time falls.
fn time_at(env: &[(f64, f64)], m: f64) -> Option<f64> {
    let by_memory: Vec<(f64, f64)> = env.iter().rev().map(|&(t, m)| (m, t)).collect();
    memory_at(&by_memory, m)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    Some(xs[xs.len() / 2])
}

/// How a challenger's frontier compares with another policy's points: the
/// median cut in mean RSS at equal time, and in time at equal mean RSS, over
/// the points where the frontiers overlap; and whether every point of the
/// other policy is matched or beaten on both axes by one of the
/// challenger's.
pub struct Comparison {
    pub rss_cut: Option<f64>,
    pub time_cut: Option<f64>,
    pub dominates: bool,
}

pub fn compare(challenger: &[(f64, f64)], other: &[(f64, f64)]) -> Comparison {
    let env = envelope(challenger);
    let rss_cut = median(other.iter().filter_map(|&(t, m)| Some(1.0 - memory_at(&env, t)? / m)).collect());
    let time_cut =
        median(other.iter().filter(|p| p.0 > 0.0).filter_map(|&(t, m)| Some(1.0 - time_at(&env, m)? / t)).collect());
    let dominates = other.iter().all(|&(t, m)| env.iter().any(|&(bt, bm)| bt <= t && bm <= m));
    Comparison { rss_cut, time_cut, dominates }
}

fn percent(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:+.0}%", -x * 100.0))
}

/// The dominance verdict, per point: each challenger against each other
/// policy.
pub fn verdict(points: &[PointResults]) -> String {
    let mut out = String::from(
        "\nFrontier (mean RSS against collection time; a cut is the challenger's change, negative is better;\n\
         advisory: single runs' collection times, which --check does not judge)\n",
    );
    for point in points {
        let Some(r0) = point.runs.first() else { continue };
        let _ =
            writeln!(out, "  {} {} cycle={} extra={} live={}", r0.runtime, r0.workload, r0.cycle, r0.extra, r0.live);
        let map = by_policy(point);
        for challenger in CHALLENGERS {
            let Some(mine) = map.get(challenger) else { continue };
            for (name, theirs) in map.iter().filter(|(n, _)| !CHALLENGERS.contains(n)) {
                let c = compare(mine, theirs);
                let pass = c.rss_cut.is_some_and(|x| x >= RSS_GOAL) || c.time_cut.is_some_and(|x| x >= TIME_GOAL);
                let _ = writeln!(
                    out,
                    "    {} {challenger} vs {name:<9} mean RSS at equal time {:>5}, time at equal mean RSS {:>5}{}",
                    if pass { "ok  " } else { "miss" },
                    percent(c.rss_cut),
                    percent(c.time_cut),
                    if c.dominates { "; dominates every point" } else { "" }
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "  goal: >= {:.0}% less mean RSS at equal collection time, or >= {:.0}% less collection time at equal mean RSS",
        RSS_GOAL * 100.0,
        TIME_GOAL * 100.0
    );
    out
}

const CELL: (u32, u32) = (560, 360);

/// One chart per point: mean RSS (MiB) against collection time (s), one
/// line per policy through its knob values, in knob order.
pub fn write_plot(path: &Path, points: &[PointResults]) -> Result<(), Box<dyn std::error::Error>> {
    let cols = points.len().clamp(1, 2);
    let rows = points.len().div_ceil(cols).max(1);
    let root = SVGBackend::new(path, (CELL.0 * cols as u32, CELL.1 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (point, area) in points.iter().zip(root.split_evenly((rows, cols)).iter()) {
        let Some(r0) = point.runs.first() else { continue };
        let all: Vec<(f64, f64)> = point.runs.iter().map(xy).collect();
        let t_max = all.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-3) * 1.05;
        let m_max = all.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.05;
        let caption = format!("{} {} cycle={} extra={} live={}", r0.runtime, r0.workload, r0.cycle, r0.extra, r0.live);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..t_max, 0.0..m_max)?;
        chart.configure_mesh().x_desc("collection time (s)").y_desc("mean RSS (MiB)").draw()?;
        for (i, (name, xys)) in by_policy(point).into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(xys.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(xys.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_the_lower_left_points() {
        let env = envelope(&[(2.0, 50.0), (1.0, 100.0), (3.0, 60.0), (4.0, 20.0)]);
        assert_eq!(env, [(1.0, 100.0), (2.0, 50.0), (4.0, 20.0)]);
        assert_eq!(memory_at(&env, 3.0), Some(35.0));
        assert_eq!(memory_at(&env, 0.5), None);
        assert_eq!(time_at(&env, 75.0), Some(1.5));
        assert_eq!(time_at(&env, 10.0), None);
    }

    #[test]
    fn a_frontier_below_another_cuts_memory_and_dominates() {
        let other = [(1.0, 100.0), (2.0, 50.0)];
        let better = [(1.0, 80.0), (2.0, 40.0)];
        let c = compare(&better, &other);
        assert!((c.rss_cut.unwrap() - 0.2).abs() < 1e-9 && c.dominates);
        let c = compare(&other, &better);
        assert!(c.rss_cut.unwrap() < 0.0 && !c.dominates);
    }
}
