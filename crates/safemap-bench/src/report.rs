//! Results: one row per (workload, threads, distribution, key count, contestant), ratios computed
//! within the same run, a terminal table and the JSON document.

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use crate::contestants::Family;
use crate::measure::Measurement;
use crate::steal::Stolen;
use crate::workload::Dist;

/// One measured cell.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// Threads.
    pub threads: usize,
    /// Key distribution.
    pub dist: Dist,
    /// Key space.
    pub keys: usize,
    /// Contestant name.
    pub contestant: String,
    /// Where it comes from.
    pub family: Family,
    /// Median throughput over repetitions, Mops/s.
    pub mops: f64,
    /// Slowest repetition.
    pub mops_min: f64,
    /// Fastest repetition.
    pub mops_max: f64,
    /// Sampled latency percentiles and maximum, ns.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sampled latency.
    pub max_ns: u64,
    /// Live heap bytes per entry with `keys` entries.
    pub bytes_per_entry: f64,
    /// Throughput over the best peer's in the same workload, threads, distribution and keys.
    pub vs_best_peer: Option<f64>,
    /// Throughput over the single-thread floor's in the same workload, distribution and keys.
    pub vs_floor: Option<f64>,
}

impl Row {
    /// A row from a measurement; ratios are filled in by [`fill_ratios`].
    pub fn new(
        cell: (&str, usize, Dist, usize),
        contestant: (&str, Family),
        measured: &Measurement,
        bytes_per_entry: f64,
    ) -> Self {
        let mut mops = measured.mops.clone();
        mops.sort_by(f64::total_cmp);
        let q = |p| measured.latency.value_at_quantile(p);
        Row {
            workload: cell.0.to_string(),
            threads: cell.1,
            dist: cell.2,
            keys: cell.3,
            contestant: contestant.0.to_string(),
            family: contestant.1,
            mops: mops[mops.len() / 2],
            mops_min: mops[0],
            mops_max: mops[mops.len() - 1],
            p50_ns: q(0.5),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: measured.latency.max(),
            bytes_per_entry,
            vs_best_peer: None,
            vs_floor: None,
        }
    }

    fn same_cell(&self, other: &Row) -> bool {
        self.same_regime(other) && self.threads == other.threads
    }

    /// The same workload, distribution and key count: the rows one plot shows.
    pub fn same_regime(&self, other: &Row) -> bool {
        self.workload == other.workload && self.dist == other.dist && self.keys == other.keys
    }
}

/// Sets each row's ratios against the best peer and the floor measured in this run.
pub fn fill_ratios(rows: &mut [Row]) {
    let snapshot = rows.to_vec();
    for row in rows.iter_mut() {
        let best_peer = snapshot
            .iter()
            .filter(|r| r.family == Family::Peer && r.same_cell(row))
            .map(|r| r.mops)
            .max_by(f64::total_cmp);
        let floor = snapshot
            .iter()
            .find(|r| r.family == Family::Floor && r.same_regime(row))
            .map(|r| r.mops);
        row.vs_best_peer = best_peer.map(|p| row.mops / p);
        row.vs_floor = floor.map(|f| row.mops / f);
    }
}

/// The machine the run happened on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Available parallelism.
    pub cores: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `go version`, if Go is installed.
    pub go_version: Option<String>,
}

fn first_line_of(program: &str, arg: &str) -> Option<String> {
    let out = Command::new(program).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status
        .success()
        .then(|| text.lines().next().unwrap_or("").trim().to_string())
}

impl Machine {
    /// Reads the facts of this machine.
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            rustc: first_line_of("rustc", "--version").unwrap_or_else(|| "unknown".into()),
            go_version: first_line_of("go", "version"),
        }
    }
}

/// The JSON document `--json` writes.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    /// Where it ran.
    pub machine: &'a Machine,
    /// Every row.
    pub results: &'a [Row],
    /// What the host took from this machine while the rows were measured, where the system
    /// counts it.
    pub host: Option<&'a Stolen>,
}

/// A ratio for display: two decimals, or `-` when there was nothing to compare with.
pub fn ratio(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.2}"))
}

/// A terminal table per (workload, threads, distribution, keys), fastest first, the best marked
/// `*`.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut cells: Vec<&Row> = Vec::new();
    for row in rows {
        if !cells.iter().any(|c| c.same_cell(row)) {
            cells.push(row);
        }
    }
    for cell in cells {
        let mut group: Vec<&Row> = rows.iter().filter(|r| r.same_cell(cell)).collect();
        group.sort_by(|a, b| b.mops.total_cmp(&a.mops));
        let _ = writeln!(
            out,
            "\n{} · {} thread(s) · {:?} · {} keys",
            cell.workload, cell.threads, cell.dist, cell.keys
        );
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>17} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
            "contestant",
            "Mops/s",
            "min-max",
            "p50 ns",
            "p99 ns",
            "p99.9 ns",
            "max ns",
            "B/entry",
            "x peer",
            "x floor"
        );
        for (i, r) in group.iter().enumerate() {
            let _ = writeln!(
                out,
                "{} {:<16} {:>8.2} {:>17} {:>8} {:>8} {:>8} {:>9} {:>8.1} {:>8} {:>8}",
                if i == 0 { "*" } else { " " },
                r.contestant,
                r.mops,
                format!("{:.2}-{:.2}", r.mops_min, r.mops_max),
                r.p50_ns,
                r.p99_ns,
                r.p999_ns,
                r.max_ns,
                r.bytes_per_entry,
                ratio(r.vs_best_peer),
                ratio(r.vs_floor),
            );
        }
    }
    out
}
