//! The Go baseline: builds `bench/go` (standard library only) when `go` is installed, runs it on
//! the same workloads, key counts, thread counts, repetitions and repetition budget, and turns
//! its JSON into rows.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;

use crate::contestants::Family;
use crate::report::Row;
use crate::session::Plan;
use crate::workload::{Dist, Shape};

/// The Go program's source, next to the workspace's crates.
fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/go")
}

#[derive(Deserialize)]
struct GoRow {
    workload: String,
    threads: usize,
    keys: usize,
    contestant: String,
    mops: f64,
    mops_min: f64,
    mops_max: f64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    bytes_per_entry: f64,
}

/// Whether `go` can be run.
pub fn available() -> bool {
    Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds and runs the Go baseline for every workload of `plan` it implements. Returns no rows,
/// and says why in one line, when Go is not installed.
pub fn measure(plan: &Plan) -> Result<Vec<Row>, String> {
    if !available() {
        eprintln!("Go baseline: skipped, `go` is not installed (apt-get install -y golang-go)");
        return Ok(Vec::new());
    }
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/safemap-bench-go");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(source_dir())
        .output()
        .map_err(|e| format!("cannot run go build: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "go build of bench/go failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    let threads: Vec<String> = plan.threads.iter().map(usize::to_string).collect();
    let dist = match plan.dist {
        Dist::Uniform => "uniform",
        Dist::Zipf => "zipf",
    };
    let mut rows = Vec::new();
    let implemented = |shape: Shape| matches!(shape, Shape::Mixed | Shape::Growth);
    // One run per key count, with every workload at that count: the Go side measures each
    // contestant's footprint once per run, a few seconds at 1M keys.
    let mut by_keys: Vec<(usize, Vec<&str>)> = Vec::new();
    for (workload, keys) in plan.workloads.iter().filter(|w| implemented(w.0.shape)) {
        match by_keys.iter_mut().find(|(k, _)| k == keys) {
            Some((_, names)) => names.push(workload.name),
            None => by_keys.push((*keys, vec![workload.name])),
        }
    }
    for (keys, names) in &by_keys {
        let names = names.join(",");
        eprintln!("Go baseline: {names} at {keys} keys ...");
        let out = Command::new(&binary)
            .args(["-workloads", &names, "-threads", &threads.join(",")])
            .args(["-keys", &keys.to_string(), "-ops", &plan.ops.to_string()])
            .args(["-reps", &plan.reps.to_string(), "-dist", dist])
            .args(
                plan.budget
                    .map(|b| format!("-max-seconds={}", b.as_secs_f64())),
            )
            .output()
            .map_err(|e| format!("cannot run the Go baseline: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the Go baseline failed on {names}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let parsed: Vec<GoRow> = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("the Go baseline printed unreadable JSON: {e}"))?;
        rows.extend(parsed.into_iter().map(|g| Row {
            workload: g.workload,
            threads: g.threads,
            dist: plan.dist,
            keys: g.keys,
            contestant: g.contestant,
            family: Family::Go,
            mops: g.mops,
            mops_min: g.mops_min,
            mops_max: g.mops_max,
            p50_ns: g.p50_ns,
            p99_ns: g.p99_ns,
            p999_ns: g.p999_ns,
            max_ns: g.max_ns,
            bytes_per_entry: g.bytes_per_entry,
            vs_best_peer: None,
            vs_floor: None,
        }));
    }
    Ok(rows)
}
