//! Reading result files back: medians per label (`summary`) and SVG charts
//! (`chart`): latency against load, node memory against connections, and
//! node CPU per delivery.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cli::{ChartArgs, SummaryArgs};
use crate::report::show;

/// One result line.
#[derive(Debug, Clone)]
pub struct Run {
    /// The scenario.
    pub scenario: String,
    /// The label.
    pub label: String,
    /// The parameters.
    pub params: Value,
    /// The figures.
    pub figures: Value,
}

impl Run {
    /// A numeric figure.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.figures.get(key)?.as_f64()
    }
}

/// Reads every JSON line of `files` (other lines are skipped).
pub fn read_runs(files: &[PathBuf]) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let Some(scenario) = v.get("scenario").and_then(Value::as_str) else {
                continue;
            };
            runs.push(Run {
                scenario: scenario.to_string(),
                label: v["label"].as_str().unwrap_or(scenario).to_string(),
                params: v["params"].clone(),
                figures: v["figures"].clone(),
            });
        }
    }
    Ok(runs)
}

/// Runs grouped by label, labels in order of first appearance.
pub fn by_label(runs: &[Run]) -> Vec<(String, Vec<&Run>)> {
    let mut groups: Vec<(String, Vec<&Run>)> = Vec::new();
    for run in runs {
        match groups.iter_mut().find(|(l, _)| *l == run.label) {
            Some((_, list)) => list.push(run),
            None => groups.push((run.label.clone(), vec![run])),
        }
    }
    groups
}

/// The median of `values` (mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// `summary`: per label, the median (and range) of every numeric figure.
pub fn summary(args: &SummaryArgs) -> Result<()> {
    let runs = read_runs(&args.files)?;
    let mut out = String::new();
    for (label, group) in by_label(&runs) {
        let scenario = &group[0].scenario;
        if args.markdown {
            let _ = writeln!(out, "\n### {label} ({scenario}, {} runs)\n", group.len());
            let _ = writeln!(out, "| figure | median | min | max |\n|---|---:|---:|---:|");
        } else {
            let _ = writeln!(out, "== {label} ({scenario}, {} runs)", group.len());
        }
        let mut keys: Vec<String> = Vec::new();
        for run in &group {
            if let Some(map) = run.figures.as_object() {
                for (k, v) in map {
                    if v.is_number() && !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
        }
        for key in keys {
            let mut values: Vec<f64> = group.iter().filter_map(|r| r.num(&key)).collect();
            let (lo, hi) = values
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let Some(mid) = median(&mut values) else {
                continue;
            };
            let fmt = |v: f64| show(&Value::from(v));
            if args.markdown {
                let _ = writeln!(out, "| {key} | {} | {} | {} |", fmt(mid), fmt(lo), fmt(hi));
            } else {
                let _ = writeln!(
                    out,
                    "  {key:<40} {:>14}   [{} .. {}]",
                    fmt(mid),
                    fmt(lo),
                    fmt(hi)
                );
            }
        }
        // Non-numeric figures (failure maps, mismatches) of the last run.
        if let Some(map) = group.last().and_then(|r| r.figures.as_object()) {
            for (k, v) in map.iter().filter(|(_, v)| v.is_object()) {
                if args.markdown {
                    let _ = writeln!(out, "| {k} (last run) | {} | | |", show(v));
                } else {
                    let _ = writeln!(out, "  {k:<40} {} (last run)", show(v));
                }
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// `chart`: writes the SVG charts and prints their paths.
pub fn chart(args: &ChartArgs) -> Result<()> {
    let runs = read_runs(&args.files)?;
    let dir = match &args.out_dir {
        Some(dir) => dir.clone(),
        None => args.files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    std::fs::create_dir_all(&dir)?;
    for (name, svg) in charts(&runs) {
        let path = dir.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// The charts for `runs`, as (file name, SVG text).
pub fn charts(runs: &[Run]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();

    // Latency against delivered load, per message scenario and percentile.
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for run in runs
        .iter()
        .filter(|r| matches!(r.scenario.as_str(), "p2p" | "fanout" | "broadcast"))
    {
        let Some(x) = run.num("delivered_per_s") else {
            continue;
        };
        for p in ["p50", "p99"] {
            if let Some(y) = run.num(&format!("latency_{p}_ms")) {
                series
                    .entry(format!("{} {p}", run.scenario))
                    .or_default()
                    .push((x, y));
            }
        }
    }
    out.push((
        "latency_vs_load.svg",
        scatter(
            "End-to-end latency vs delivered load",
            "deliveries per second (log)",
            "latency (ms)",
            &series.into_iter().collect::<Vec<_>>(),
            true,
        ),
    ));

    // Node memory against connections (idle runs).
    let mut rss = Vec::new();
    let mut per_conn = Vec::new();
    for run in runs.iter().filter(|r| r.scenario == "idle") {
        if let (Some(x), Some(y)) = (run.num("connections_ok"), run.num("node_rss_delta_mib")) {
            rss.push((x, y));
        }
        if let (Some(x), Some(y)) = (
            run.num("connections_ok"),
            run.num("node_rss_per_conn_bytes"),
        ) {
            per_conn.push((x, y / 1024.0));
        }
    }
    out.push((
        "memory_vs_connections.svg",
        scatter(
            "Node memory vs open connections",
            "open connections",
            "RSS growth (MiB) / per connection (KiB)",
            &[
                ("RSS growth MiB".to_string(), rss),
                ("RSS per connection KiB".to_string(), per_conn),
            ],
            false,
        ),
    ));

    // Node CPU per delivery, median per label.
    let mut bars = Vec::new();
    for (label, group) in by_label(runs) {
        let mut values: Vec<f64> = group
            .iter()
            .filter_map(|r| r.num("node_cpu_us_per_delivery"))
            .collect();
        if let Some(m) = median(&mut values) {
            bars.push((label, m));
        }
    }
    out.push((
        "cpu_per_delivery.svg",
        bar_chart("Node CPU per delivery (median)", "µs per delivery", &bars),
    ));
    out
}

const W: f64 = 760.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn header(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        esc(title)
    )
}

/// Ends a chart that has nothing to plot with a centred "no data".
fn finish_empty(mut svg: String) -> String {
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data</text>\n</svg>",
        W / 2.0,
        H / 2.0
    );
    svg
}

/// A chart axis: linear from zero, or logarithmic over whole decades.
#[derive(Debug, Clone, Copy)]
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn fit(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let (lo, hi) = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if lo > hi {
            return Axis {
                log,
                lo: 0.0,
                hi: 1.0,
            };
        }
        if log {
            let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
            Axis {
                log,
                lo,
                hi: hi.max(lo + 1.0),
            }
        } else {
            let step = nice_step(hi / 5.0);
            Axis {
                log,
                lo: 0.0,
                hi: ((hi / step).ceil() * step).max(step),
            }
        }
    }

    /// Where `v` falls, 0.0 ..= 1.0.
    fn at(&self, v: f64) -> f64 {
        let v = if self.log { v.max(1e-300).log10() } else { v };
        (v - self.lo) / (self.hi - self.lo)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            (self.lo as i32..=self.hi as i32)
                .map(|e| 10f64.powi(e))
                .collect()
        } else {
            let step = nice_step(self.hi / 5.0);
            let n = (self.hi / step).round() as usize;
            (0..=n).map(|i| i as f64 * step).collect()
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

/// A scatter plot with lines joining each series' points (sorted by x).
pub fn scatter(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log: bool,
) -> String {
    let mut svg = header(title);
    let usable =
        |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log || (x > 0.0 && y > 0.0));
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .filter(usable)
        .collect();
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
    );
    if points.is_empty() {
        return finish_empty(svg);
    }
    let xa = Axis::fit(points.iter().map(|p| p.0), log);
    let ya = Axis::fit(points.iter().map(|p| p.1), log);
    let sx = |x: f64| LEFT + xa.at(x) * pw;
    let sy = |y: f64| TOP + ph - ya.at(y) * ph;
    for x in xa.ticks() {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#ddd\"/>\
             <text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>",
            sx(x),
            TOP,
            TOP + ph,
            TOP + ph + 16.0,
            trim_number(x)
        );
    }
    for y in ya.ticks() {
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            sy(y),
            LEFT + pw,
            LEFT - 6.0,
            sy(y) + 4.0,
            trim_number(y)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        LEFT + pw / 2.0,
        H - 18.0,
        esc(x_label),
        TOP + ph / 2.0,
        esc(y_label)
    );
    for (n, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let mut pts: Vec<(f64, f64)> = pts.iter().copied().filter(usable).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() > 1 {
            let path: Vec<String> = pts
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = writeln!(
                svg,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-opacity=\"0.5\"/>",
                path.join(" ")
            );
        }
        for &(x, y) in &pts {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"><title>{} ({}, {})</title></circle>",
                sx(x),
                sy(y),
                esc(name),
                trim_number(x),
                trim_number(y)
            );
        }
        let ly = TOP + 14.0 + n as f64 * 18.0;
        let _ = writeln!(
            svg,
            "<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            LEFT + pw + 16.0,
            ly - 4.0,
            LEFT + pw + 28.0,
            ly,
            esc(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A horizontal bar chart of (label, value).
pub fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let mut svg = header(title);
    if bars.is_empty() {
        return finish_empty(svg);
    }
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let left = 230.0;
    let width = W - left - 170.0;
    let step = ((H - TOP - 40.0) / bars.len() as f64).min(36.0);
    for (n, (label, value)) in bars.iter().enumerate() {
        let y = TOP + 10.0 + n as f64 * step;
        let w = value / max * width;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{} {}</text>",
            left - 8.0,
            y + step * 0.45,
            esc(label),
            step * 0.7,
            COLORS[n % COLORS.len()],
            left + w + 6.0,
            y + step * 0.45,
            trim_number(*value),
            esc(unit)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn trim_number(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        show(&Value::from(v.round() as i64))
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(scenario: &str, label: &str, figures: Value) -> Run {
        Run {
            scenario: scenario.into(),
            label: label.into(),
            params: Value::Null,
            figures,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn charts_are_svg_with_points() {
        let runs = vec![
            run(
                "p2p",
                "p2p-paced",
                serde_json::json!({"delivered_per_s": 10000.0, "latency_p50_ms": 0.4,
                                   "latency_p99_ms": 2.0, "node_cpu_us_per_delivery": 5.0}),
            ),
            run(
                "idle",
                "idle-15000",
                serde_json::json!({"connections_ok": 15000, "node_rss_delta_mib": 30.0,
                                   "node_rss_per_conn_bytes": 2048.0}),
            ),
        ];
        let charts = charts(&runs);
        assert_eq!(charts.len(), 3);
        for (name, svg) in &charts {
            assert!(svg.starts_with("<svg"), "{name}");
            assert!(svg.trim_end().ends_with("</svg>"), "{name}");
            assert!(svg.contains("<circle") || svg.contains("<rect x"), "{name}");
        }
    }

    #[test]
    fn empty_charts_say_so() {
        let svg = scatter("t", "x", "y", &[], true);
        assert!(svg.contains("no data"));
    }
}
