//! The self-contained HTML report: per workload, throughput against threads and latency
//! percentiles per contestant, as inline SVG drawn with plotters, then every row as a table.

use std::fmt::Write as _;

use plotters::prelude::*;

use plotters::coord::CoordTranslate;

use crate::report::{Machine, Row, ratio};

/// One colour per contestant, stable across charts.
fn colour(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    PALETTE[index % PALETTE.len()]
}

fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The legend box, the same on every chart.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Throughput (Mops/s) against thread count, one line per contestant.
fn throughput_chart(rows: &[&Row], contestants: &[&str], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max_threads = rows.iter().map(|r| r.threads).max().unwrap_or(1) as f64;
        let max_mops = rows.iter().map(|r| r.mops_max).fold(0.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.5..max_threads + 0.5, 0.0..max_mops.max(0.1))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("threads")
            .x_label_formatter(&|x| {
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .y_desc("Mops/s (median)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, name) in contestants.iter().enumerate() {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.contestant == *name)
                .map(|r| (r.threads as f64, r.mops))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let style = colour(i);
            chart
                .draw_series(LineSeries::new(points.clone(), style.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, style.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
        draw_legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// p50, p99 and p99.9 latency (log scale), one line per contestant, at one thread count.
fn latency_chart(rows: &[&Row], contestants: &[&str], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let top = rows.iter().map(|r| r.p999_ns).max().unwrap_or(1).max(10) as f64 * 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.2f64..2.2f64, (1.0..top).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(3)
            .x_label_formatter(&|x| match x.round() as i64 {
                0 => "p50".into(),
                1 => "p99".into(),
                2 => "p99.9".into(),
                _ => String::new(),
            })
            .y_desc("latency, ns (sampled)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, name) in contestants.iter().enumerate() {
            let Some(r) = rows.iter().find(|r| r.contestant == *name) else {
                continue;
            };
            let points = vec![
                (0.0, r.p50_ns.max(1) as f64),
                (1.0, r.p99_ns.max(1) as f64),
                (2.0, r.p999_ns.max(1) as f64),
            ];
            let style = colour(i);
            chart
                .draw_series(LineSeries::new(points, style.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        draw_legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole report.
pub fn render(machine: &Machine, rows: &[Row]) -> Result<String, String> {
    let contestants = distinct(rows.iter().map(|r| r.contestant.as_str()));
    let workloads = distinct(rows.iter().map(|r| r.workload.as_str()));
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>safemap-bench report</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
         td:first-child,th:first-child{text-align:left}</style></head><body>\n",
    );
    let _ = writeln!(
        html,
        "<h1>safemap-bench</h1><p>{} cores, {}; {}; Go: {}</p>",
        machine.cores,
        escape(&machine.cpu_model),
        escape(&machine.rustc),
        escape(machine.go_version.as_deref().unwrap_or("not installed"))
    );
    for workload in workloads {
        let of_workload: Vec<&Row> = rows.iter().filter(|r| r.workload == workload).collect();
        let _ = writeln!(html, "<h2>{}</h2>", escape(workload));
        html += &throughput_chart(
            &of_workload,
            &contestants,
            &format!("{workload}: throughput"),
        )?;
        let most = of_workload.iter().map(|r| r.threads).max().unwrap_or(1);
        let at_most: Vec<&Row> = of_workload
            .iter()
            .copied()
            .filter(|r| r.threads == most)
            .collect();
        html += &latency_chart(
            &at_most,
            &contestants,
            &format!("{workload}: latency at {most} thread(s)"),
        )?;
    }
    html += "<h2>All results</h2><table><tr><th>workload</th><th>threads</th><th>contestant</th>\
             <th>Mops/s</th><th>min</th><th>max</th><th>p50 ns</th><th>p99 ns</th>\
             <th>p99.9 ns</th><th>max ns</th><th>B/entry</th><th>x best peer</th><th>x floor</th></tr>\n";
    for r in rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.workload),
            r.threads,
            escape(&r.contestant),
            r.mops,
            r.mops_min,
            r.mops_max,
            r.p50_ns,
            r.p99_ns,
            r.p999_ns,
            r.max_ns,
            r.bytes_per_entry,
            ratio(r.vs_best_peer),
            ratio(r.vs_floor)
        );
    }
    html += "</table></body></html>\n";
    Ok(html)
}
