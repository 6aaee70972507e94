//! The self-contained HTML report: for each regime (workload and key count), throughput against
//! threads and latency percentiles as inline SVG drawn with plotters, with a table of ratios to
//! the best peer beside them; then every row as a table.
//!
//! Every contestant keeps one look across the report: its own colour and marker, a bold line for
//! a safemap strategy, a thin one for a peer, a dashed one for Go. Legends sit beside the plot
//! area, never on the data.

use std::fmt::Write as _;

use plotters::coord::CoordTranslate;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::contestants::Family;
use crate::report::{Machine, Row, ratio};

/// Sixteen colours far enough apart to tell lines apart (Kelly's set, without the white, the
/// black and the palest shades).
const PALETTE: [RGBColor; 16] = [
    RGBColor(230, 25, 75),
    RGBColor(60, 180, 75),
    RGBColor(0, 130, 200),
    RGBColor(245, 130, 48),
    RGBColor(145, 30, 180),
    RGBColor(70, 190, 200),
    RGBColor(240, 50, 230),
    RGBColor(150, 150, 20),
    RGBColor(0, 128, 128),
    RGBColor(170, 110, 40),
    RGBColor(128, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 128, 128),
    RGBColor(100, 140, 60),
    RGBColor(210, 90, 120),
    RGBColor(30, 30, 30),
];

/// Point markers, cycled so that two contestants never share both colour and marker.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Plus,
}

impl Marker {
    /// The marker's outline, in pixels around its point.
    fn outline(self) -> Vec<(i32, i32)> {
        match self {
            Marker::Circle => vec![
                (-2, -4),
                (2, -4),
                (4, -2),
                (4, 2),
                (2, 4),
                (-2, 4),
                (-4, 2),
                (-4, -2),
            ],
            Marker::Triangle => vec![(0, -5), (5, 4), (-5, 4)],
            Marker::Square => vec![(-4, -4), (4, -4), (4, 4), (-4, 4)],
            Marker::Plus => vec![
                (-1, -5),
                (1, -5),
                (1, -1),
                (5, -1),
                (5, 1),
                (1, 1),
                (1, 5),
                (-1, 5),
                (-1, 1),
                (-5, 1),
                (-5, -1),
                (-1, -1),
            ],
        }
    }
}

/// How one contestant is drawn, in every plot.
#[derive(Clone, Copy)]
struct Look {
    colour: RGBColor,
    marker: Marker,
    family: Family,
}

impl Look {
    fn of(index: usize, family: Family) -> Self {
        const MARKERS: [Marker; 4] = [
            Marker::Circle,
            Marker::Triangle,
            Marker::Square,
            Marker::Plus,
        ];
        // Each round of the palette shifts the markers by one, so two contestants share a colour
        // only with different markers (for up to 64 of them).
        let round = index / PALETTE.len();
        Look {
            colour: PALETTE[index % PALETTE.len()],
            marker: MARKERS[(index + round) % MARKERS.len()],
            family,
        }
    }

    /// Bold for a safemap strategy, thin for the others.
    fn line(&self) -> ShapeStyle {
        let width = if self.family == Family::Safemap { 3 } else { 1 };
        self.colour.stroke_width(width)
    }

    /// Draws the line through `points` (dashed for Go) and a marker at each, in `area`'s
    /// coordinates.
    fn draw<C: Clone + 'static, DB: DrawingBackend, CT: CoordTranslate<From = C>>(
        &self,
        area: &DrawingArea<DB, CT>,
        points: &[C],
    ) -> Result<(), String> {
        let style = self.line();
        let line = if self.family == Family::Go {
            area.draw(&DashedPathElement::new(points.to_vec(), 6, 4, style))
        } else {
            area.draw(&PathElement::new(points.to_vec(), style))
        };
        line.map_err(|e| e.to_string())?;
        for p in points {
            let outline = Polygon::new(self.marker.outline(), self.colour.filled());
            let marker = EmptyElement::at(p.clone()) + outline;
            area.draw(&marker).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
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

/// The contestants of `rows`, each with its look.
fn looks(rows: &[Row]) -> Vec<(&str, Look)> {
    let names = distinct(rows.iter().map(|r| r.contestant.as_str()));
    (names.iter().enumerate())
        .map(|(i, name)| {
            let family = rows
                .iter()
                .find(|r| r.contestant == *name)
                .map(|r| r.family);
            (*name, Look::of(i, family.unwrap_or(Family::Peer)))
        })
        .collect()
}

/// One contestant's line in a chart: its name, its look and its points in data coordinates.
type Series<'a> = (&'a str, Look, Vec<(f64, f64)>);

const WIDTH: u32 = 860;
const PLOT_WIDTH: u32 = 600;
const HEIGHT: u32 = 360;

/// A chart of `series` (per contestant, its points in data coordinates) on `x` and `y` ranges,
/// with the legend to the right of the plot area.
struct Chart<'a> {
    title: String,
    x_desc: &'a str,
    y_desc: &'a str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    log_y: bool,
    x_label: &'a dyn Fn(&f64) -> String,
}

impl Chart<'_> {
    fn render(&self, series: &[Series<'_>]) -> Result<String, String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let (plot, legend) = root.split_horizontally(PLOT_WIDTH);
            let mut builder = ChartBuilder::on(&plot);
            builder
                .caption(&self.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60);
            if self.log_y {
                let chart = builder
                    .build_cartesian_2d(self.x.clone(), self.y.clone().log_scale())
                    .map_err(|e| e.to_string())?;
                self.plot(chart, series)?;
            } else {
                let chart = builder
                    .build_cartesian_2d(self.x.clone(), self.y.clone())
                    .map_err(|e| e.to_string())?;
                self.plot(chart, series)?;
            }
            for (i, (name, look, _)) in series.iter().enumerate() {
                let y = 40 + 20 * i as i32;
                look.draw(&legend, &[(10, y), (40, y)])?;
                (legend.draw(&Text::new(
                    name.to_string(),
                    (50, y - 7),
                    ("sans-serif", 14),
                )))
                .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    /// Draws the axes, the grid and every series.
    fn plot<DB: DrawingBackend, X, Y>(
        &self,
        mut chart: ChartContext<'_, DB, Cartesian2d<X, Y>>,
        series: &[Series<'_>],
    ) -> Result<(), String>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.y_desc)
            .x_label_formatter(self.x_label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (_, look, points) in series {
            look.draw(chart.plotting_area(), points)?;
        }
        Ok(())
    }
}

/// Throughput (Mops/s) against thread count, one line per contestant.
fn throughput_chart(
    rows: &[&Row],
    looks: &[(&str, Look)],
    title: String,
) -> Result<String, String> {
    let series: Vec<_> = (looks.iter())
        .filter_map(|&(name, look)| {
            let mut points: Vec<(f64, f64)> = (rows.iter())
                .filter(|r| r.contestant == name)
                .map(|r| (r.threads as f64, r.mops))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then_some((name, look, points))
        })
        .collect();
    let max_threads = rows.iter().map(|r| r.threads).max().unwrap_or(1) as f64;
    let max_mops = rows.iter().map(|r| r.mops).fold(0.0, f64::max) * 1.1;
    let whole = |x: &f64| {
        if x.fract() == 0.0 {
            format!("{x:.0}")
        } else {
            String::new()
        }
    };
    Chart {
        title,
        x_desc: "threads",
        y_desc: "Mops/s (median)",
        x: 0.5..max_threads + 0.5,
        y: 0.0..max_mops.max(0.1),
        log_y: false,
        x_label: &whole,
    }
    .render(&series)
}

/// p50, p99 and p99.9 latency (log scale), one line per contestant, at one thread count.
fn latency_chart(rows: &[&Row], looks: &[(&str, Look)], title: String) -> Result<String, String> {
    let series: Vec<_> = (looks.iter())
        .filter_map(|&(name, look)| {
            let r = rows.iter().find(|r| r.contestant == name)?;
            let points = [r.p50_ns, r.p99_ns, r.p999_ns];
            let points = (points.iter().enumerate())
                .map(|(i, ns)| (i as f64, (*ns).max(1) as f64))
                .collect();
            Some((name, look, points))
        })
        .collect();
    let top = rows.iter().map(|r| r.p999_ns).max().unwrap_or(1).max(10) as f64 * 2.0;
    let percentile = |x: &f64| match (x.fract() == 0.0).then_some(*x as i64) {
        Some(0) => "p50".into(),
        Some(1) => "p99".into(),
        Some(2) => "p99.9".into(),
        _ => String::new(),
    };
    Chart {
        title,
        x_desc: "",
        y_desc: "latency, ns (sampled)",
        x: -0.2..2.2,
        y: 1.0..top,
        log_y: true,
        x_label: &percentile,
    }
    .render(&series)
}

/// Each contestant's throughput over the best peer's, one column per thread count.
fn ratio_table(rows: &[&Row], looks: &[(&str, Look)]) -> String {
    let mut threads: Vec<usize> = rows.iter().map(|r| r.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut out = String::from("<table><tr><th>x best peer</th>");
    for t in &threads {
        let _ = write!(out, "<th>{t} thr</th>");
    }
    out += "</tr>";
    for &(name, look) in looks {
        if !rows.iter().any(|r| r.contestant == name) {
            continue;
        }
        let RGBColor(r, g, b) = look.colour;
        let weight = if look.family == Family::Safemap {
            "bold"
        } else {
            "normal"
        };
        let _ = write!(
            out,
            "<tr><td style=\"color:rgb({r},{g},{b});font-weight:{weight}\">{}</td>",
            escape(name)
        );
        for t in &threads {
            let cell = rows
                .iter()
                .find(|r| r.contestant == name && r.threads == *t);
            let _ = write!(
                out,
                "<td>{}</td>",
                cell.map_or("".into(), |c| ratio(c.vs_best_peer))
            );
        }
        out += "</tr>";
    }
    out + "</table>"
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole report.
pub fn render(machine: &Machine, rows: &[Row]) -> Result<String, String> {
    let looks = looks(rows);
    let mut regimes: Vec<&Row> = Vec::new();
    for row in rows {
        if !regimes.iter().any(|r| r.same_regime(row)) {
            regimes.push(row);
        }
    }
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>safemap-bench report</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
         td:first-child,th:first-child{text-align:left}\
         .regime{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}</style></head><body>\n",
    );
    let _ = writeln!(
        html,
        "<h1>safemap-bench</h1><p>{} cores, {}; {}; Go: {}</p>\
         <p>Bold lines: safemap strategies; thin: other Rust maps; dashed: Go.</p>",
        machine.cores,
        escape(&machine.cpu_model),
        escape(&machine.rustc),
        escape(machine.go_version.as_deref().unwrap_or("not installed"))
    );
    for regime in regimes {
        let of_regime: Vec<&Row> = rows.iter().filter(|r| r.same_regime(regime)).collect();
        let name = format!("{} · {} keys", regime.workload, regime.keys);
        let _ = writeln!(html, "<h2>{}</h2><div class=\"regime\">", escape(&name));
        html += &throughput_chart(&of_regime, &looks, format!("{name}: throughput"))?;
        html += &ratio_table(&of_regime, &looks);
        let most = of_regime.iter().map(|r| r.threads).max().unwrap_or(1);
        let at_most: Vec<&Row> = (of_regime.iter().copied())
            .filter(|r| r.threads == most)
            .collect();
        html += &latency_chart(
            &at_most,
            &looks,
            format!("{name}: latency at {most} thread(s)"),
        )?;
        html += "</div>\n";
    }
    html += "<h2>All results</h2><table><tr><th>workload</th><th>keys</th><th>threads</th>\
             <th>contestant</th><th>Mops/s</th><th>min</th><th>max</th><th>p50 ns</th>\
             <th>p99 ns</th><th>p99.9 ns</th><th>max ns</th><th>B/entry</th><th>x best peer</th>\
             <th>x floor</th></tr>\n";
    for r in rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(&r.workload),
            r.keys,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// No two of 64 contestants (four times the palette) look alike.
    #[test]
    fn every_contestant_has_its_own_colour_and_marker() {
        let looks: Vec<_> = (0..4 * PALETTE.len())
            .map(|i| {
                let look = Look::of(i, Family::Peer);
                (look.colour, look.marker)
            })
            .collect();
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[i + 1..] {
                assert!(a != b, "two contestants drawn alike: {a:?}");
            }
        }
    }
}
