//! The command line end to end, on tiny workloads: the JSON document has the promised shape and
//! every contestant, `advise` recommends with figures, and bad input is refused with a reason.
//! Timings are not asserted.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_safemap-bench"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TINY: &[&str] = &["--keys", "2000", "--ops", "20000", "--reps", "1"];

/// The names of the entries of `safemap::strategies!`.
macro_rules! names {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
        [$(stringify!($map)),*]
    };
}

/// Every contestant: the safemap strategies, then the peers and the floor.
fn contestants() -> Vec<&'static str> {
    let mut all: Vec<&str> = safemap::strategies!(names!()).into();
    all.extend(PEERS);
    all
}

const PEERS: &[&str] = &[
    "std-RwLock",
    "std-Mutex",
    "dashmap",
    "papaya",
    "scc-HashMap",
    "scc-HashIndex",
    "hashbrown-floor",
];

#[test]
fn quick_run_writes_every_contestant_to_json() {
    let path = std::env::temp_dir().join(format!("safemap-bench-{}.json", std::process::id()));
    let html = path.with_extension("html");
    let (path_arg, html_arg) = (path.to_str().unwrap(), html.to_str().unwrap());
    let mut args = vec!["--quick", "--json", path_arg, "--html", html_arg];
    args.extend_from_slice(TINY);
    let (code, out, err) = bench(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ReadHeavy") && out.contains("x peer"), "{out}");

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).ok();
    let report = std::fs::read_to_string(&html).unwrap();
    std::fs::remove_file(&html).ok();
    // Two plots (throughput, latency) per regime, each with its contestants in the legend.
    assert_eq!(report.matches("<svg").count(), 6, "{report}");
    assert!(
        report.contains("RapidGrow · 2000 keys: throughput") && report.contains("scc-HashIndex")
    );
    // Beside each regime's plots, the ratios to the best peer.
    assert_eq!(
        report.matches("<table><tr><th>x best peer</th>").count(),
        3,
        "{report}"
    );
    let machine = &doc["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert!(machine["cpu_model"].is_string() && machine["rustc"].is_string());
    assert!(machine.get("go_version").is_some());
    // What the host took while it measured, where Linux counts it: also said under the table.
    if std::fs::read_to_string("/proc/stat").is_ok_and(|stat| stat.starts_with("cpu ")) {
        let host = &doc["host"];
        assert!(host["steal_ms"].as_u64().is_some(), "{host}");
        assert!(host["seconds"].as_f64().unwrap() > 0.0, "{host}");
        assert!(out.contains("host: steal time"), "{out}");
    }
    let results = doc["results"].as_array().unwrap();
    for workload in ["ReadHeavy", "Exchange", "RapidGrow"] {
        for threads in [1, 2] {
            for contestant in contestants() {
                if contestant == "hashbrown-floor" && threads > 1 {
                    continue;
                }
                let row = results
                    .iter()
                    .find(|r| {
                        r["workload"] == workload
                            && r["threads"] == threads
                            && r["contestant"] == *contestant
                    })
                    .unwrap_or_else(|| panic!("no row {workload}/{threads}/{contestant}"));
                for field in ["mops", "mops_min", "mops_max", "bytes_per_entry"] {
                    assert!(row[field].as_f64().unwrap() > 0.0, "{field} in {row}");
                }
                for field in ["p50_ns", "p99_ns", "p999_ns", "max_ns"] {
                    assert!(row[field].as_u64().is_some(), "{field} in {row}");
                }
                assert!(row["p50_ns"].as_u64() <= row["p99_ns"].as_u64());
                assert!(row["mops_min"].as_f64() <= row["mops"].as_f64());
                assert!(["safemap", "peer", "floor"].contains(&row["family"].as_str().unwrap()));
                assert!(row["vs_floor"].as_f64().unwrap() > 0.0, "{row}");
                assert!(row["vs_best_peer"].as_f64().unwrap() > 0.0, "{row}");
                assert_eq!(row["dist"], "uniform");
            }
        }
    }
}

/// The snapshot scenario runs exactly the contestants that can take a consistent snapshot.
#[test]
fn snapshot_scenario_times_snapshots_of_those_that_have_them() {
    let path = std::env::temp_dir().join(format!("safemap-snap-{}.json", std::process::id()));
    let args = [
        "run",
        "--workload",
        "Snapshot10k",
        "--threads",
        "1,2",
        "--reps",
        "1",
        "--ops",
        "2000",
        "--json",
        path.to_str().unwrap(),
    ];
    let (code, out, err) = bench(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Snapshot10k"), "{out}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).ok();
    let results = doc["results"].as_array().unwrap();
    let ran: std::collections::BTreeSet<&str> = results
        .iter()
        .map(|r| r["contestant"].as_str().unwrap())
        .collect();
    // Every safemap strategy (all have snapshots) and the one peer with a consistent snapshot.
    let mut expected: Vec<&str> = safemap::strategies!(names!()).into();
    expected.push("std-RwLock");
    expected.sort_unstable();
    assert_eq!(ran.into_iter().collect::<Vec<_>>(), expected);
    assert_eq!(
        results.len(),
        2 * expected.len(),
        "one row per contestant and thread count"
    );
}

#[test]
fn advise_recommends_a_strategy_with_figures() {
    let (code, out, err) = bench(&[
        "advise",
        "--read-pct",
        "90",
        "--insert-pct",
        "5",
        "--remove-pct",
        "5",
        "--keys",
        "2000,4000",
        "--threads",
        "2",
        "--ops",
        "20000",
        "--reps",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    // One recommendation per key count, each naming its count.
    let lines: Vec<&str> = (out.lines())
        .filter(|l| l.starts_with("recommendation: "))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, keys) in lines.iter().zip(["2000 keys", "4000 keys"]) {
        assert!(line.contains("Map:") && line.contains("Mops/s"), "{line}");
        assert!(
            line.contains("the best peer") && line.contains(keys),
            "{line}"
        );
    }
}

#[test]
fn iterate_reports_every_iterable_contestant_and_tells_bounded_copies_from_whole_ones() {
    let path = std::env::temp_dir().join(format!("safemap-iterate-{}.json", std::process::id()));
    let args = ["iterate", "--keys", "20000", "--reps", "1", "--json"];
    let (code, out, err) = bench(&[&args[..], &[path.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("writer max"), "{out}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).ok();
    let rows = doc.as_array().expect("an array of contestants");
    let iterable: Vec<&str> = contestants()
        .into_iter()
        .filter(|c| !["std-Mutex", "hashbrown-floor"].contains(c))
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, iterable);
    let row = |name: &str| &rows[names.iter().position(|n| *n == name).unwrap()];
    for r in rows {
        assert_eq!(r["entries"], 20000);
        assert!(r["iter_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["writer_ops"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["writer_over_1ms"].as_u64().is_some() && r["idle_writer_over_1ms"].as_u64().is_some()
        );
        assert!(r["map_bytes"].as_f64().unwrap() >= 20000.0 * 16.0, "{r}");
    }
    // ShardedMap copies one shard at a time; LockedMap copies its one table whole.
    let share = |name| {
        row(name)["iter_peak_bytes"].as_f64().unwrap() / row(name)["map_bytes"].as_f64().unwrap()
    };
    assert!(share("ShardedMap") < 0.125, "{}", share("ShardedMap"));
    assert!(share("LockedMap") > 0.25, "{}", share("LockedMap"));
    assert!(row("ShardedMap")["par_ms"].as_f64().is_some());
    assert!(row("ShardedMap")["heavy_par_ms"].as_f64().is_some());
    assert!(row("papaya")["heavy_par_ms"].is_null());
}

#[test]
fn neighbour_grows_every_in_process_contestant_and_a_control() {
    let path = std::env::temp_dir().join(format!("safemap-neighbour-{}.json", std::process::id()));
    let args = ["neighbour", "--keys", "5000", "--reps", "1", "--json"];
    let (code, out, err) = bench(&[&args[..], &[path.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("neighbour p99.9"), "{out}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).ok();
    let rows = doc.as_array().expect("an array of contestants");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut expected = contestants();
    expected.push("control");
    assert_eq!(names, expected);
    for r in rows {
        assert!(r["neighbour_calls"].as_f64().unwrap() >= 1.0, "{r}");
        let grew = r["insert_mops"].as_f64().unwrap() > 0.0;
        assert_eq!(grew, r["name"] != "control", "{r}");
    }
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let cases: &[(&[&str], &str)] = &[
        (&["--workload", "nope"], "unknown workload"),
        (&["--max-seconds", "0"], "--max-seconds must be positive"),
        (&["--contestants", "nope"], "unknown contestant"),
        (&["--threads", "0"], "--threads"),
        (&["--reps", "0"], "--reps"),
        (
            &["--json", "/nonexistent-dir/out.json", "--keys", "10"],
            "cannot write /nonexistent-dir/out.json",
        ),
        (
            &[
                "advise",
                "--read-pct",
                "90",
                "--insert-pct",
                "20",
                "--remove-pct",
                "0",
            ],
            "sum to at most 100",
        ),
        (
            &[
                "advise",
                "--read-pct",
                "90",
                "--insert-pct",
                "5",
                "--remove-pct",
                "0",
                "--keys",
                "0,100",
            ],
            "--keys, --threads, --reps and --ops must be at least 1",
        ),
        (&["iterate", "--keys", "0"], "--keys must be at least 1"),
        (&["iterate", "--contestants", "nope"], "unknown contestant"),
        (
            &["iterate", "--contestants", "std-Mutex", "--keys", "10"],
            "std-Mutex cannot be iterated",
        ),
        (&["neighbour", "--reps", "0"], "--reps must be at least 1"),
        (
            &["neighbour", "--contestants", "redis", "--keys", "10"],
            "redis does not grow in this process",
        ),
    ];
    for (args, reason) in cases {
        let (code, _, err) = bench(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}
