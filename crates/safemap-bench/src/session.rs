//! One benchmark session: resolve the options into cells, measure each contestant on each cell
//! with a progress bar, then print and write the results.

use indicatif::{ProgressBar, ProgressStyle};

use crate::RunArgs;
use crate::contestants::{Contestant, Family, contestants};
use crate::measure::{Cell, Measurement, SAMPLE_EVERY};
use crate::report::{Document, Machine, Row, fill_ratios, table};
use crate::steal;
use crate::workload::{Dist, Op, SNAPSHOTS, Shape, WORKLOADS, Workload, key, plan, workload};

/// A resolved session: what to measure.
pub struct Plan {
    /// Workloads with the key space each runs on.
    pub workloads: Vec<(Workload, usize)>,
    /// Thread counts.
    pub threads: Vec<usize>,
    /// Key distribution.
    pub dist: Dist,
    /// Contestants.
    pub contestants: Vec<Contestant>,
    /// Repetitions per cell.
    pub reps: usize,
    /// Operations per repetition, over all threads.
    pub ops: usize,
    /// Time limit per thread and repetition, for mixed workloads.
    pub budget: Option<std::time::Duration>,
    /// Whether to run the Go baseline too.
    pub with_go: bool,
}

/// `value`, or an error if it is 0.
pub fn positive(name: &str, value: usize) -> Result<usize, String> {
    if value == 0 {
        Err(format!("--{name} must be at least 1"))
    } else {
        Ok(value)
    }
}

/// The contestants named in `names` that `able` approves, or every local one it approves when
/// `names` is empty; an error from `unable` for a named one it does not approve.
pub fn pick_able(
    names: &[String],
    able: impl Fn(&Contestant) -> bool,
    unable: impl Fn(&Contestant) -> String,
) -> Result<Vec<Contestant>, String> {
    let chosen: Vec<_> = pick_contestants(names)?
        .into_iter()
        .filter(|c| able(c) || !names.is_empty())
        .collect();
    match chosen.iter().find(|c| !able(c)) {
        Some(c) => Err(unable(c)),
        None => Ok(chosen),
    }
}

/// The contestants named in `names` (all local ones when empty: a remote one starts a server, so
/// it runs only when named), or an error naming the unknown one. The name `go` stands for the Go
/// baseline, which is not a Rust contestant.
pub fn pick_contestants(names: &[String]) -> Result<Vec<Contestant>, String> {
    if names.is_empty() {
        return Ok(contestants()
            .into_iter()
            .filter(|c| c.family != Family::Remote)
            .collect());
    }
    let names: Vec<&String> = names
        .iter()
        .filter(|n| !n.eq_ignore_ascii_case("go"))
        .collect();
    let known: Vec<&str> = contestants().iter().map(|c| c.name).collect();
    if let Some(bad) = names
        .iter()
        .find(|n| !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
    {
        return Err(format!(
            "unknown contestant {bad:?}; expected go or one of {}",
            known.join(", ")
        ));
    }
    Ok(contestants()
        .into_iter()
        .filter(|c| names.iter().any(|n| n.eq_ignore_ascii_case(c.name)))
        .collect())
}

impl Plan {
    /// Resolves the command-line options, with `--quick` defaults.
    pub fn from_args(args: &RunArgs) -> Result<Self, String> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let chosen: Vec<Workload> = if !args.workload.is_empty() {
            args.workload
                .iter()
                .map(|w| workload(w))
                .collect::<Result<_, _>>()?
        } else if args.quick {
            WORKLOADS[..3].to_vec()
        } else {
            WORKLOADS.to_vec()
        };
        let keys: Vec<usize> = (args.keys.iter())
            .map(|&k| positive("keys", k))
            .collect::<Result<_, _>>()?;
        let mut threads = if !args.threads.is_empty() {
            args.threads.clone()
        } else if args.quick {
            vec![1, 2]
        } else {
            vec![1, cores, 4 * cores]
        };
        threads.sort_unstable();
        threads.dedup();
        if threads.contains(&0) {
            return Err("--threads must all be at least 1".into());
        }
        Ok(Plan {
            workloads: chosen
                .into_iter()
                .flat_map(|w| w.sizes(&keys).into_iter().map(move |k| (w, k)))
                .collect(),
            threads,
            dist: args.dist,
            contestants: pick_contestants(&args.contestants)?,
            with_go: args.contestants.is_empty()
                || args
                    .contestants
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case("go")),
            reps: positive("reps", args.reps.unwrap_or(if args.quick { 3 } else { 5 }))?,
            ops: positive(
                "ops",
                args.ops
                    .unwrap_or(if args.quick { 600_000 } else { 8_000_000 }),
            )?,
            budget: match args.max_seconds.or(args.quick.then_some(0.3)) {
                Some(s) if s > 0.0 && s.is_finite() => Some(std::time::Duration::from_secs_f64(s)),
                Some(s) => return Err(format!("--max-seconds must be positive, got {s}")),
                None => None,
            },
        })
    }

    /// Measures every cell. Within a cell, repetitions are interleaved across contestants
    /// (round-robin), so a burst of noise on this shared machine lands on all of them rather
    /// than on whichever contestant happened to be running, and each repetition starts one
    /// contestant later ([`turn_order`]), so none always runs first or after the same neighbour.
    pub fn measure(&self, progress: &ProgressBar) -> Vec<Row> {
        let runs: usize = self.reps
            * (self.workloads.iter())
                .flat_map(|(w, _)| self.threads.iter().map(move |&t| (w, t)))
                .map(|(w, t)| self.contestants.iter().filter(|c| c.runs(w, t)).count())
                .sum::<usize>();
        progress.set_length(runs as u64);
        let mut footprints: Vec<(usize, &str, f64)> = Vec::new();
        let mut rows = Vec::new();
        for &(workload, keys) in &self.workloads {
            for &threads in &self.threads {
                let (plans, sample_every) = plans(&workload, keys, self.dist, self.ops, threads);
                let cell = Cell {
                    prefill: (workload.mix.prefill * keys as f64) as u64,
                    plans: &plans,
                    sample_every: &sample_every,
                    reps: 1,
                    // Growth and snapshot workloads are defined by their whole operation list.
                    budget: self.budget.filter(|_| workload.shape == Shape::Mixed),
                };
                let entrants: Vec<&Contestant> = self
                    .contestants
                    .iter()
                    .filter(|c| c.runs(&workload, threads))
                    .collect();
                let mut measured: Vec<Option<Measurement>> =
                    entrants.iter().map(|_| None).collect();
                for rep in 0..self.reps {
                    for turn in turn_order(rep, entrants.len()) {
                        let (contestant, total) = (entrants[turn], &mut measured[turn]);
                        progress.set_message(format!(
                            "{} · {threads} thread(s) · {} · rep {}",
                            workload.name,
                            contestant.name,
                            rep + 1
                        ));
                        let one = (contestant.measure)(&cell);
                        match total {
                            Some(total) => total.merge(one),
                            None => *total = Some(one),
                        }
                        progress.inc(1);
                    }
                }
                for (contestant, total) in entrants.iter().zip(measured) {
                    let bytes = match footprints
                        .iter()
                        .find(|f| f.0 == keys && f.1 == contestant.name)
                    {
                        Some(f) => f.2,
                        None => {
                            let b = (contestant.footprint)(keys);
                            footprints.push((keys, contestant.name, b));
                            b
                        }
                    };
                    rows.push(Row::new(
                        (workload.name, threads, self.dist, keys),
                        (contestant.name, contestant.family),
                        &total.expect("reps >= 1"),
                        bytes,
                    ));
                }
            }
        }
        fill_ratios(&mut rows);
        rows
    }
}

/// The order in which `contestants` entrants take their turns in repetition `rep`: all of them,
/// starting at `rep`, so over `contestants` repetitions each runs once in every position.
fn turn_order(rep: usize, contestants: usize) -> impl Iterator<Item = usize> {
    (0..contestants).map(move |i| (rep + i) % contestants)
}

/// One operation list per thread, and how often each thread times an operation.
pub fn plans(
    workload: &Workload,
    keys: usize,
    dist: Dist,
    ops: usize,
    threads: usize,
) -> (Vec<Vec<Op>>, Vec<Option<usize>>) {
    match workload.shape {
        Shape::Mixed => (
            (0..threads)
                .map(|t| plan(&workload.mix, keys, dist, ops / threads, t))
                .collect(),
            vec![Some(SAMPLE_EVERY); threads],
        ),
        Shape::Growth => {
            let writer = (0..keys as u64).map(|i| Op::Insert(key(i))).collect();
            let readers = (1..threads).map(|t| plan(&workload.mix, keys, dist, keys, t));
            let mut every = vec![None; threads];
            every[0] = Some(1);
            (std::iter::once(writer).chain(readers).collect(), every)
        }
        Shape::Snapshot => {
            let snapshots = vec![Op::Snapshot; SNAPSHOTS];
            let others = (1..threads).map(|t| plan(&workload.mix, keys, dist, ops / threads, t));
            let mut every = vec![None; threads];
            every[0] = Some(1);
            (std::iter::once(snapshots).chain(others).collect(), every)
        }
    }
}

/// A progress bar on stderr, redrawn only when a cell finishes (no ticker thread to disturb
/// the measurements).
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    bar
}

/// `safemap-bench run`.
pub fn run(args: &RunArgs) -> Result<(), String> {
    let plan = Plan::from_args(args)?;
    // Find an unwritable output now, not after minutes of measuring.
    for path in [&args.json, &args.html].into_iter().flatten() {
        std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let machine = Machine::detect();
    eprintln!(
        "safemap-bench: {} cores ({}), {}; {} op(s) per repetition, median of {}",
        machine.cores, machine.cpu_model, machine.rustc, plan.ops, plan.reps
    );
    let progress = progress_bar();
    let started = steal::Mark::now();
    let mut rows = plan.measure(&progress);
    progress.finish_and_clear();
    if plan.with_go {
        rows.extend(crate::go::measure(&plan)?);
        fill_ratios(&mut rows);
    }
    let host = started.stolen();
    print!("{}", table(&rows));
    if let Some(host) = &host {
        print!("\n{}", host.line(machine.cores));
    }
    if let Some(path) = &args.json {
        let doc = Document {
            machine: &machine,
            results: &rows,
            host: host.as_ref(),
        };
        write_json(path, &doc)?;
    }
    if let Some(path) = &args.html {
        write(path, &crate::html::render(&machine, &rows)?)?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<(), String> {
    write(
        path,
        &serde_json::to_string_pretty(value).map_err(|e| e.to_string())?,
    )
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contestant_takes_every_turn_once_per_round() {
        let n = 4;
        let orders: Vec<Vec<usize>> = (0..n).map(|rep| turn_order(rep, n).collect()).collect();
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(
                sorted,
                (0..n).collect::<Vec<_>>(),
                "each runs once per rep: {order:?}"
            );
        }
        for position in 0..n {
            let mut at: Vec<usize> = orders.iter().map(|order| order[position]).collect();
            at.sort();
            assert_eq!(
                at,
                (0..n).collect::<Vec<_>>(),
                "position {position}: {orders:?}"
            );
        }
    }

    #[test]
    fn growth_has_one_timed_writer_of_every_key_and_untimed_readers() {
        let growth = workload("Growth").unwrap();
        let (plans, every) = plans(&growth, 1000, Dist::Uniform, 0, 3);
        assert_eq!(plans.len(), 3);
        let expected: Vec<Op> = (0..1000).map(|i| Op::Insert(key(i))).collect();
        assert_eq!(plans[0], expected);
        assert!(
            plans[1..]
                .iter()
                .all(|p| p.len() == 1000 && p.iter().all(|o| matches!(o, Op::Read(_))))
        );
        assert_eq!(every, vec![Some(1), None, None]);
    }

    #[test]
    fn snapshot_has_one_timed_snapshotter_and_untimed_mixed_threads() {
        let snapshot = workload("Snapshot1M").unwrap();
        let (plans, every) = plans(&snapshot, 1000, Dist::Uniform, 10_000, 3);
        assert_eq!(plans[0], vec![Op::Snapshot; SNAPSHOTS]);
        assert!(
            plans[1..]
                .iter()
                .all(|p| p.len() == 10_000 / 3 && p.iter().all(|o| !matches!(o, Op::Snapshot)))
        );
        assert_eq!(every, vec![Some(1), None, None]);
    }

    #[test]
    fn mixed_workloads_split_operations_and_sample_every_thread() {
        let heavy = workload("ReadHeavy").unwrap();
        let (plans, every) = plans(&heavy, 1000, Dist::Uniform, 10_000, 2);
        assert!(plans.iter().all(|p| p.len() == 5_000));
        assert_eq!(every, vec![Some(SAMPLE_EVERY); 2]);
    }

    #[test]
    fn the_mixes_run_in_both_regimes_unless_key_counts_are_given() {
        use crate::workload::CACHE_RESIDENT;
        use clap::Parser;
        let plan = |args: &[&str]| {
            let cli = crate::Cli::parse_from(
                std::iter::once("safemap-bench").chain(args.iter().copied()),
            );
            let sizes: Vec<(&str, usize)> = Plan::from_args(&cli.run)
                .unwrap()
                .workloads
                .iter()
                .map(|(w, k)| (w.name, *k))
                .collect();
            sizes
        };
        let quick = plan(&["--quick"]);
        for mix in ["ReadHeavy", "Exchange", "RapidGrow"] {
            let sizes: Vec<usize> = quick.iter().filter(|w| w.0 == mix).map(|w| w.1).collect();
            assert_eq!(sizes, [CACHE_RESIDENT, 1 << 20], "{mix}");
        }
        // Workloads defined by their size keep it.
        let growth = plan(&["--workload", "Growth,DeviceRegistry"]);
        assert_eq!(growth, [("Growth", 4 << 20), ("DeviceRegistry", 2_000_000)]);
        let given = plan(&["--quick", "--keys", "1000,5000"]);
        assert_eq!(given.len(), 6);
        assert!(given.iter().all(|w| w.1 == 1000 || w.1 == 5000));
    }
}
