//! `safemap-bench iterate`: what a whole-map iteration costs, and what it costs the map's other
//! users.
//!
//! For every contestant that can iterate, holding `--keys` entries (1M by default), the median of
//! `--reps` repetitions of:
//! - one sequential pass through the map's iterator, one through its visiting method
//!   (`for_each`) where it has one apart from the iterator, and one parallel pass on rayon's pool
//!   where it has one;
//! - the sequential pass's peak extra memory: live bytes above the map's own while it runs, beside
//!   the bytes the map itself holds;
//! - the longest single operation of one writer thread that removes and re-inserts present keys
//!   while sequential passes run back to back for a quarter of a second, beside the same writer's
//!   longest operation over a quarter of a second while this thread spins instead (the control:
//!   the host's own noise with both threads busy; a writer that waits for the iteration shows up
//!   as the difference).
//!
//! Every pass sums the values it sees; a pass with no writer must see each entry once, or the run
//! fails.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use clap::Args;
use rayon::prelude::*;
use safemap::{ConcurrentMap, SafeMap};
use serde::Serialize;

use crate::alloc;
use crate::contestants::{Hasher, SharedMap};
use crate::measure::{median, timed_beside};
use crate::session::{pick_able, positive, write_json};
use crate::workload::key;

/// How long the writer runs, alongside back-to-back passes or none.
const WRITER_WINDOW: Duration = Duration::from_millis(250);

/// Options of `iterate`.
#[derive(Args, Debug, Clone)]
pub struct IterateArgs {
    /// Entries in each map.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Repetitions; medians are reported (the writer's worst is the worst of all).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Contestants, comma-separated (default: every one that can iterate).
    #[arg(long, value_delimiter = ',')]
    contestants: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What a pass does with each value.
pub type Work = fn(u64) -> u64;

/// Next to nothing: the pass is all iteration.
fn light(v: u64) -> u64 {
    v
}

/// About 30 ns of arithmetic, as a consumer that formats or hashes each entry spends.
fn heavy(v: u64) -> u64 {
    (0..32).fold(v, |x, _| {
        (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    })
}

/// The sum of `work` over `values`, wrapping.
fn total(values: impl Iterator<Item = u64>, work: Work) -> u64 {
    values.map(work).fold(0, u64::wrapping_add)
}

/// A map whose entries can be visited while other threads use it.
pub trait Iterable: SharedMap {
    /// The sum of `work` over the values, through the map's sequential iterator.
    fn iter_sum(&self, work: Work) -> u64;
    /// The sum through a visiting method other than the iterator, where the map has one.
    fn for_each_sum(&self, _work: Work) -> Option<u64> {
        None
    }
    /// The sum on rayon's pool, where the map has a parallel iteration.
    fn par_sum(&self, _work: Work) -> Option<u64> {
        None
    }
}

impl<C: Sync> Iterable for SafeMap<C, Hasher>
where
    Self: SharedMap + ConcurrentMap<u64, u64>,
    for<'a> &'a Self: IntoParallelIterator<Item = (u64, u64)>,
{
    fn iter_sum(&self, work: Work) -> u64 {
        total(self.iter().map(|(_, v)| v), work)
    }
    fn for_each_sum(&self, work: Work) -> Option<u64> {
        let mut sum = 0u64;
        self.for_each(|_, v| sum = sum.wrapping_add(work(*v)));
        Some(sum)
    }
    fn par_sum(&self, work: Work) -> Option<u64> {
        Some(
            self.into_par_iter()
                .map(|(_, v)| work(v))
                .reduce(|| 0, u64::wrapping_add),
        )
    }
}

/// Holds one shard's read lock while the caller consumes that shard's entries.
impl Iterable for dashmap::DashMap<u64, u64, Hasher> {
    fn iter_sum(&self, work: Work) -> u64 {
        total(self.iter().map(|entry| *entry.value()), work)
    }
    fn par_sum(&self, work: Work) -> Option<u64> {
        let values = self.par_iter().map(|entry| work(*entry.value()));
        Some(values.reduce(|| 0, u64::wrapping_add))
    }
}

impl Iterable for papaya::HashMap<u64, u64, Hasher> {
    fn iter_sum(&self, work: Work) -> u64 {
        total(self.pin().iter().map(|(_, v)| *v), work)
    }
}

impl Iterable for scc::HashMap<u64, u64, Hasher> {
    /// scc's `HashMap` has no iterator: its visiting method, which locks a bucket at a time.
    fn iter_sum(&self, work: Work) -> u64 {
        let mut sum = 0u64;
        self.iter_sync(|_, v| {
            sum = sum.wrapping_add(work(*v));
            true
        });
        sum
    }
}

impl Iterable for scc::HashIndex<u64, u64, Hasher> {
    fn iter_sum(&self, work: Work) -> u64 {
        let guard = scc::Guard::new();
        total(self.iter(&guard).map(|(_, v)| *v), work)
    }
}

/// Holds the read lock for the whole pass.
impl Iterable for RwLock<std::collections::HashMap<u64, u64, Hasher>> {
    fn iter_sum(&self, work: Work) -> u64 {
        total(self.read().unwrap().values().copied(), work)
    }
}

/// What one contestant's iteration costs.
#[derive(Clone, Debug, Serialize)]
pub struct IterationCost {
    /// The contestant.
    pub name: &'static str,
    /// Entries in the map.
    pub entries: usize,
    /// One sequential pass through the iterator, in milliseconds (median).
    pub iter_ms: f64,
    /// One pass through the visiting method, where there is one apart from the iterator.
    pub for_each_ms: Option<f64>,
    /// One parallel pass on rayon's pool, where there is one.
    pub par_ms: Option<f64>,
    /// One sequential pass doing about 30 ns of work per entry, through the visiting method
    /// where there is one, else the iterator.
    pub heavy_ms: f64,
    /// One parallel pass doing that work, where there is one.
    pub heavy_par_ms: Option<f64>,
    /// Rayon's thread count for `par_ms`.
    pub par_threads: usize,
    /// Live bytes the map holds.
    pub map_bytes: f64,
    /// The sequential pass's peak live bytes above the map's own (median).
    pub iter_peak_bytes: f64,
    /// The writer's longest operation during a pass, in microseconds: the median over
    /// repetitions, and the worst.
    pub writer_max_us: f64,
    /// As `writer_max_us`, the worst repetition.
    pub writer_worst_us: f64,
    /// The writer's 99.9th-percentile operation during a pass, in microseconds (median).
    pub writer_p999_us: f64,
    /// Writer operations during the passes (median).
    pub writer_ops: f64,
    /// The writer's longest operation over as long a stretch while this thread spins instead of
    /// passing over the map (median): the host's noise with both threads busy.
    pub idle_writer_max_us: f64,
    /// Writer operations over 1 ms during the passes, summed over repetitions.
    pub writer_over_1ms: u64,
    /// Writer operations over 1 ms during the control, summed over repetitions.
    pub idle_writer_over_1ms: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times `pass`, failing unless it summed `work` over every value of a map of `entries` (whose
/// values are `0..entries`), each once.
fn timed_pass(entries: usize, work: Work, pass: impl FnOnce() -> u64) -> f64 {
    let expected = total(0..entries as u64, work);
    let start = Instant::now();
    let sum = pass();
    let elapsed = start.elapsed();
    assert_eq!(sum, expected, "a pass did not see every entry exactly once");
    ms(elapsed)
}

/// What the writer saw while `main` ran on this thread.
struct WriterRecord {
    max_us: f64,
    p999_us: f64,
    ops: u64,
    /// Operations that took longer than a millisecond.
    over_1ms: u64,
}

/// Runs `main` here while a writer removes and re-inserts random present keys of `map`, each
/// operation timed on its own. The map holds every entry again on return.
fn with_writer<M: SharedMap>(map: &M, entries: usize, main: impl FnOnce()) -> WriterRecord {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut removed = None;
    let mut write = || match removed.take() {
        Some(i) => map.insert(key(i), i),
        None => {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = state % entries as u64;
            map.remove(key(i));
            removed = Some(i);
        }
    };
    let (_, latencies) = timed_beside(Duration::ZERO, &mut write, main);
    // The writer may have stopped between a remove and its re-insert.
    if let Some(i) = removed {
        map.insert(key(i), i);
    }
    WriterRecord {
        max_us: latencies.max() as f64 / 1e3,
        p999_us: latencies.value_at_quantile(0.999) as f64 / 1e3,
        ops: latencies.len(),
        over_1ms: latencies.len() - latencies.count_between(0, 1_000_000),
    }
}

/// Measures contestant `M` with `entries` entries over `reps` (at least 1) repetitions.
pub fn measure_iteration<M: Iterable>(
    name: &'static str,
    entries: usize,
    reps: usize,
) -> IterationCost {
    let map_bytes = alloc::footprint::<M>(entries) * entries as f64;
    let map = M::create_filled(entries as u64);
    let (mut iter, mut for_each, mut par, mut peak) = (vec![], vec![], vec![], vec![]);
    let (mut heavy_seq, mut heavy_par) = (vec![], vec![]);
    let (mut writer_max, mut writer_p999, mut writer_ops, mut idle_max) =
        (vec![], vec![], vec![], vec![]);
    let (mut busy_over, mut idle_over) = (0, 0);
    for _ in 0..reps {
        iter.push(timed_pass(entries, light, || map.iter_sum(light)));
        let has_for_each = map.for_each_sum(light).is_some();
        let has_par = map.par_sum(light).is_some();
        if has_for_each {
            for_each.push(timed_pass(entries, light, || {
                map.for_each_sum(light).unwrap_or(0)
            }));
        }
        heavy_seq.push(timed_pass(entries, heavy, || {
            map.for_each_sum(heavy)
                .unwrap_or_else(|| map.iter_sum(heavy))
        }));
        if has_par {
            par.push(timed_pass(entries, light, || {
                map.par_sum(light).unwrap_or(0)
            }));
            heavy_par.push(timed_pass(entries, heavy, || {
                map.par_sum(heavy).unwrap_or(0)
            }));
        }
        peak.push(alloc::peak_during(|| map.iter_sum(light)).1 as f64);

        // The control: this thread as busy, on something other than the map.
        let idle = with_writer(&map, entries, || {
            let start = Instant::now();
            while start.elapsed() < WRITER_WINDOW {
                std::hint::spin_loop();
            }
        });
        idle_max.push(idle.max_us);
        idle_over += idle.over_1ms;
        let busy = with_writer(&map, entries, || {
            let start = Instant::now();
            while start.elapsed() < WRITER_WINDOW {
                std::hint::black_box(map.iter_sum(light));
            }
        });
        writer_max.push(busy.max_us);
        busy_over += busy.over_1ms;
        writer_p999.push(busy.p999_us);
        writer_ops.push(busy.ops as f64);
    }
    let worst = writer_max.iter().copied().fold(0.0, f64::max);
    IterationCost {
        name,
        entries,
        iter_ms: median(iter),
        for_each_ms: (!for_each.is_empty()).then(|| median(for_each)),
        par_ms: (!par.is_empty()).then(|| median(par)),
        heavy_ms: median(heavy_seq),
        heavy_par_ms: (!heavy_par.is_empty()).then(|| median(heavy_par)),
        par_threads: rayon::current_num_threads(),
        map_bytes,
        iter_peak_bytes: median(peak),
        writer_max_us: median(writer_max),
        writer_worst_us: worst,
        writer_p999_us: median(writer_p999),
        writer_ops: median(writer_ops),
        idle_writer_max_us: median(idle_max),
        writer_over_1ms: busy_over,
        idle_writer_over_1ms: idle_over,
    }
}

fn optional_ms(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

/// The table `iterate` prints.
pub fn table(costs: &[IterationCost]) -> String {
    let mut out = String::from(
        "| contestant | iter ms | for_each ms | par ms | 30 ns/entry: sequential ms | 30 ns/entry: par ms | iter peak / map bytes | writer max µs (worst) | writer p99.9 µs | writer ops | ops > 1 ms | control: writer max µs | control: ops > 1 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in costs {
        out += &format!(
            "| {} | {:.1} | {} | {} | {:.1} | {} | {:.4} ({:.1} KiB of {:.1} MiB) | {:.0} ({:.0}) | {:.1} | {:.0} | {} | {:.0} | {} |\n",
            c.name,
            c.iter_ms,
            optional_ms(c.for_each_ms),
            optional_ms(c.par_ms),
            c.heavy_ms,
            optional_ms(c.heavy_par_ms),
            c.iter_peak_bytes / c.map_bytes,
            c.iter_peak_bytes / 1024.0,
            c.map_bytes / (1024.0 * 1024.0),
            c.writer_max_us,
            c.writer_worst_us,
            c.writer_p999_us,
            c.writer_ops,
            c.writer_over_1ms,
            c.idle_writer_max_us,
            c.idle_writer_over_1ms,
        );
    }
    out
}

/// Runs `iterate`.
pub fn iterate(args: &IterateArgs) -> Result<(), String> {
    positive("keys", args.keys)?;
    positive("reps", args.reps)?;
    let chosen = pick_able(
        &args.contestants,
        |c| c.iterate.is_some(),
        |c| format!("{} cannot be iterated while it is shared", c.name),
    )?;
    let costs: Vec<IterationCost> = chosen
        .iter()
        .filter_map(|c| {
            c.iterate
                .map(|measure| measure(c.name, args.keys, args.reps))
        })
        .collect();
    println!(
        "{} entries, {} repetitions, one writer; par on {} threads\n",
        args.keys,
        args.reps,
        rayon::current_num_threads()
    );
    print!("{}", table(&costs));
    if let Some(path) = &args.json {
        write_json(path, &costs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_leaves_every_entry_in_place() {
        let entries = 1000;
        let map = dashmap::DashMap::<u64, u64, Hasher>::create_filled(entries as u64);
        // Each round stops the writer wherever it is: after a remove about half the time.
        for _ in 0..20 {
            let record = with_writer(&map, entries, || {
                std::thread::sleep(Duration::from_micros(50))
            });
            assert!(record.ops > 0);
            timed_pass(entries, light, || map.iter_sum(light));
        }
    }
}
