//! `--plot`: RSS and trash over time, one row per grid point (titled with
//! the runtime and the point), one line per policy, the legend beside the
//! charts.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::metrics::Sample;
use crate::report::PointResults;

const WIDTH: u32 = 1200;
const TITLE_HEIGHT: u32 = 36;
const ROW_HEIGHT: u32 = 300;
/// Width of the legend column, right of each row's charts.
const LEGEND_WIDTH: u32 = 170;
/// Trash is a sawtooth with a tooth per collection, up to hundreds per run:
/// drawn sample by sample it fills its panel with vertical strokes. It is
/// drawn as its envelope: at each sample, the peak over a sliding window of
/// two teeth, and at least 1/this of the run.
const TRASH_WINDOWS: usize = 40;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Distinct on white (Tableau 10; no yellow).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// How policy `i` of `n` is drawn: the first ones widest, underneath; the
/// later ones thinner, on top, every other one dashed, so that a line that
/// follows another leaves it visible on both sides.
#[derive(Clone, Copy)]
struct Pen {
    style: ShapeStyle,
    dashed: bool,
}

fn pen(i: usize, n: usize) -> Pen {
    let width = (4 - i * 3 / n.max(1)) as u32;
    Pen { style: COLORS[i % COLORS.len()].stroke_width(width), dashed: i % 2 == 1 }
}

/// RSS and trash over time, one row of two charts per grid point.
pub fn write_plot(path: &Path, points: &[PointResults]) -> Result<(), Box<dyn std::error::Error>> {
    let rows = points.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH, TITLE_HEIGHT + ROW_HEIGHT * rows)).into_drawing_area();
    root.fill(&WHITE)?;
    let runtime = points.first().and_then(|p| p.runs.first()).map_or("", |r| r.runtime.as_str());
    let title = format!("cyclotron, {runtime}: RSS and trash over time, one line per policy");
    let body = root.titled(&title, ("sans-serif", 20))?;
    for (point, row) in points.iter().zip(body.split_evenly((points.len().max(1), 1)).iter()) {
        draw_row(row, point)?;
    }
    root.present()?;
    Ok(())
}

fn draw_row(row: &Area, point: &PointResults) -> Result<(), Box<dyn std::error::Error>> {
    let Some(r0) = point.runs.first() else { return Ok(()) };
    let caption = format!("{}: {} cycle={} extra={} live={}", r0.runtime, r0.workload, r0.cycle, r0.extra, r0.live);
    let row = row.titled(&caption, ("sans-serif", 16))?;
    let (charts, legend) = row.split_horizontally(WIDTH - LEGEND_WIDTH);
    let panels = charts.split_evenly((1, 2));
    let n = point.runs.len();
    let rss: Vec<Vec<(f64, f64)>> = point
        .runs
        .iter()
        .map(|r| r.samples.iter().map(|s| (s.t_s, s.rss_bytes as f64 / (1 << 20) as f64)).collect())
        .collect();
    let trash: Vec<Vec<(f64, f64)>> = point.runs.iter().map(|r| peak_envelope(&r.samples, TRASH_WINDOWS)).collect();
    draw_panel(&panels[0], "RSS (MiB)", &rss, n, &label)?;
    draw_panel(&panels[1], "trash (objects; peak over the last two collections)", &trash, n, &count_label)?;
    draw_legend(&legend, point)?;
    Ok(())
}

/// The samples' trash envelope: at each sample, the peak over the last two
/// teeth of the sawtooth (twice the mean distance between falls), and over
/// at least `1/windows` of the samples.
fn peak_envelope(samples: &[Sample], windows: usize) -> Vec<(f64, f64)> {
    let falls = samples.windows(2).filter(|w| w[1].trash < w[0].trash).count();
    let teeth = 2 * samples.len() / (falls + 1);
    let width = samples.len().div_ceil(windows.max(1)).max(teeth).max(1);
    (0..samples.len())
        .map(|i| {
            let window = &samples[(i + 1).saturating_sub(width)..=i];
            (samples[i].t_s, window.iter().map(|s| s.trash).max().unwrap_or(0) as f64)
        })
        .collect()
}

/// An axis label: integers without ".0", other values to two decimals at
/// most.
fn label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A count's axis label: thousands as "k", millions as "M".
fn count_label(v: &f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{}M", label(&(v / 1e6))),
        a if a >= 1e3 => format!("{}k", label(&(v / 1e3))),
        _ => label(v),
    }
}

fn draw_panel(
    area: &Area,
    caption: &str,
    series: &[Vec<(f64, f64)>],
    n: usize,
    y_label: &dyn Fn(&f64) -> String,
) -> Result<(), Box<dyn std::error::Error>> {
    let t_max = series.iter().flatten().map(|p| p.0).fold(0.0, f64::max);
    let y_max = series.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..t_max.max(1e-3) * 1.02, 0.0..y_max.max(1.0) * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .x_label_formatter(&label)
        .y_label_formatter(y_label)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, xy) in series.iter().enumerate() {
        let pen = pen(i, n);
        if pen.dashed {
            chart.draw_series(DashedLineSeries::new(xy.iter().copied(), 8, 4, pen.style))?;
        } else {
            chart.draw_series(LineSeries::new(xy.iter().copied(), pen.style))?;
        }
    }
    Ok(())
}

/// The policies' pens and names, in the column right of the charts.
fn draw_legend(area: &Area, point: &PointResults) -> Result<(), Box<dyn std::error::Error>> {
    let n = point.runs.len();
    for (i, run) in point.runs.iter().enumerate() {
        let y = 40 + 22 * i as i32;
        let pen = pen(i, n);
        let line = [(8, y), (48, y)];
        if pen.dashed {
            area.draw(&PathElement::new([(8, y), (22, y)], pen.style))?;
            area.draw(&PathElement::new([(32, y), (46, y)], pen.style))?;
        } else {
            area.draw(&PathElement::new(line, pen.style))?;
        }
        area.draw(&Text::new(run.policy.clone(), (56, y - 7), ("sans-serif", 14)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_drop_the_zero_decimal() {
        assert_eq!(label(&20.0), "20");
        assert_eq!(label(&2.5), "2.5");
        assert_eq!(label(&1200.0), "1200");
        assert_eq!(count_label(&40_000.0), "40k");
        assert_eq!(count_label(&2_500.0), "2.5k");
        assert_eq!(count_label(&1_500_000.0), "1.5M");
    }

    #[test]
    fn the_trash_envelope_is_flat_over_a_steady_sawtooth() {
        let samples: Vec<Sample> =
            (0..100).map(|i| Sample { t_s: i as f64, rss_bytes: 0, trash: i % 10 * 100 }).collect();
        let envelope = peak_envelope(&samples, 10);
        assert_eq!(envelope.len(), 100);
        assert!(envelope[9..].iter().all(|&(_, y)| y == 900.0), "{envelope:?}");
    }
}
