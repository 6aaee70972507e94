//! `safemap-bench neighbour`: what growing a map costs the process's other threads.
//!
//! A growing map allocates ever larger tables and frees the old ones, and on Linux each mapping
//! or unmapping of memory takes the process's address-space lock for writing; safemap hands the
//! giving back of large tables' pages (and, for the ScalableMaps, the mapping in of fresh ones)
//! to a thread of its own, which takes that lock for reading, step after step. Every other thread
//! of the process that maps or unmaps memory, or whose allocator grows or shrinks a heap, waits
//! for both.
//!
//! For every in-process contestant, `--reps` repetitions of: one thread inserting `--keys` keys
//! (4M by default) into an empty map, each insert timed, while a neighbour thread that never
//! touches the map maps and unmaps 64 KiB every 50 us, each pair of calls timed. The control row
//! is the neighbour alone, beside a thread that spins as long as the median growth took: the
//! host's own noise. Medians over repetitions, and the worst repetition's longest call.

use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::contestants::{Contender, Family, MapOps};
use crate::measure::{histogram, median, timed_beside};
use crate::session::{pick_able, positive, write_json};
use crate::workload::key;

/// What the neighbour maps and unmaps each time.
const NEIGHBOUR_BYTES: usize = 64 << 10;
/// How long the neighbour sleeps between its calls.
const NEIGHBOUR_PERIOD: Duration = Duration::from_micros(50);

/// Options of `neighbour`.
#[derive(Args, Debug, Clone)]
pub struct NeighbourArgs {
    /// Keys each map grows to, from empty.
    #[arg(long, default_value_t = 4 << 20)]
    keys: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Contestants, comma-separated (default: every in-process one).
    #[arg(long, value_delimiter = ',')]
    contestants: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What one repetition saw.
pub struct Rep {
    /// How long the growth took.
    elapsed: Duration,
    /// Each insert, in nanoseconds; empty for the control.
    inserts: Histogram<u64>,
    /// Each of the neighbour's map-and-unmap pairs, in nanoseconds.
    neighbour: Histogram<u64>,
}

/// What growing one contestant cost, itself and its neighbour.
#[derive(Clone, Debug, Serialize)]
pub struct NeighbourCost {
    /// The contestant, or `control` for the neighbour beside a spinning thread.
    pub name: String,
    /// Keys inserted.
    pub keys: usize,
    /// Inserts per second, in millions (median); 0 for the control.
    pub insert_mops: f64,
    /// The 99.9th-percentile insert, in microseconds (median).
    pub insert_p999_us: f64,
    /// The longest insert, in microseconds (median).
    pub insert_max_us: f64,
    /// The neighbour's map-and-unmap pairs (median).
    pub neighbour_calls: f64,
    /// The neighbour's median pair, in microseconds (median).
    pub neighbour_p50_us: f64,
    /// The neighbour's 99.9th-percentile pair, in microseconds (median).
    pub neighbour_p999_us: f64,
    /// The neighbour's longest pair, in microseconds (median).
    pub neighbour_max_us: f64,
    /// As `neighbour_max_us`, the worst repetition.
    pub neighbour_worst_us: f64,
    /// The neighbour's pairs over 1 ms, summed over repetitions.
    pub neighbour_over_1ms: u64,
}

/// Maps and unmaps `NEIGHBOUR_BYTES` of fresh memory, and touches it in between so that the
/// unmapping has a page to give back.
fn map_and_unmap() {
    #[cfg(unix)]
    // SAFETY: an anonymous private mapping of our own, written within its bounds and unmapped
    // once; no other code knows its address.
    unsafe {
        let memory = libc::mmap(
            std::ptr::null_mut(),
            NEIGHBOUR_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(memory, libc::MAP_FAILED, "mmap of 64 KiB failed");
        memory.cast::<u8>().write_volatile(1);
        libc::munmap(memory, NEIGHBOUR_BYTES);
    }
}

/// One repetition: an empty `M` grown to `keys` keys on this thread, beside the neighbour.
fn grow<M: Contender>(keys: usize) -> Rep {
    let mut map = M::create();
    let mut inserts = histogram();
    let (elapsed, neighbour) = {
        let mut handles = map.handles(1);
        let handle = handles.first_mut().expect("one handle");
        timed_beside(NEIGHBOUR_PERIOD, map_and_unmap, || {
            for i in 0..keys as u64 {
                let start = Instant::now();
                handle.insert(key(i), i);
                inserts.saturating_record(start.elapsed().as_nanos() as u64);
            }
        })
    };
    drop(map);
    safemap::settle_memory();
    Rep {
        elapsed,
        inserts,
        neighbour,
    }
}

/// One repetition of the control: the neighbour beside a thread that spins for `spin`.
fn control(spin: Duration) -> Rep {
    let (elapsed, neighbour) = timed_beside(NEIGHBOUR_PERIOD, map_and_unmap, || {
        let start = Instant::now();
        while start.elapsed() < spin {
            std::hint::spin_loop();
        }
    });
    Rep {
        elapsed,
        inserts: histogram(),
        neighbour,
    }
}

fn us(nanos: u64) -> f64 {
    nanos as f64 / 1e3
}

/// The medians of `reps` (at least one).
fn summarize(name: String, keys: usize, reps: &[Rep]) -> NeighbourCost {
    let of = |f: &dyn Fn(&Rep) -> f64| median(reps.iter().map(f).collect());
    let neighbour_max: Vec<f64> = reps.iter().map(|r| us(r.neighbour.max())).collect();
    NeighbourCost {
        name,
        keys,
        insert_mops: of(&|r| r.inserts.len() as f64 / r.elapsed.as_secs_f64() / 1e6),
        insert_p999_us: of(&|r| us(r.inserts.value_at_quantile(0.999))),
        insert_max_us: of(&|r| us(r.inserts.max())),
        neighbour_calls: of(&|r| r.neighbour.len() as f64),
        neighbour_p50_us: of(&|r| us(r.neighbour.value_at_quantile(0.5))),
        neighbour_p999_us: of(&|r| us(r.neighbour.value_at_quantile(0.999))),
        neighbour_max_us: median(neighbour_max.clone()),
        neighbour_worst_us: neighbour_max.into_iter().fold(0.0, f64::max),
        neighbour_over_1ms: reps
            .iter()
            .map(|r| r.neighbour.len() - r.neighbour.count_between(0, 1_000_000))
            .sum(),
    }
}

/// Grows `M` to `keys` keys `reps` times beside the neighbour.
pub fn measure_neighbour<M: Contender>(keys: usize, reps: usize) -> Vec<Rep> {
    (0..reps).map(|_| grow::<M>(keys)).collect()
}

/// The table `neighbour` prints.
fn table(costs: &[NeighbourCost]) -> String {
    let mut out = String::from(
        "| contestant | inserts Mops/s | insert p99.9 µs | insert max µs | neighbour calls | neighbour p50 µs | neighbour p99.9 µs | neighbour max µs (worst) | neighbour calls > 1 ms |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in costs {
        let insert = |x: f64| {
            if c.insert_mops > 0.0 {
                format!("{x:.1}")
            } else {
                "-".into()
            }
        };
        out += &format!(
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.0} | {:.0} ({:.0}) | {} |\n",
            c.name,
            insert(c.insert_mops),
            insert(c.insert_p999_us),
            insert(c.insert_max_us),
            c.neighbour_calls,
            c.neighbour_p50_us,
            c.neighbour_p999_us,
            c.neighbour_max_us,
            c.neighbour_worst_us,
            c.neighbour_over_1ms,
        );
    }
    out
}

/// Runs `neighbour`.
pub fn neighbour(args: &NeighbourArgs) -> Result<(), String> {
    positive("keys", args.keys)?;
    positive("reps", args.reps)?;
    let chosen = pick_able(
        &args.contestants,
        |c| c.family != Family::Remote,
        |c| format!("{} does not grow in this process", c.name),
    )?;
    let mut costs = Vec::new();
    let mut spans = Vec::new();
    for c in &chosen {
        let reps = (c.neighbour)(args.keys, args.reps);
        spans.extend(reps.iter().map(|r| r.elapsed.as_secs_f64()));
        costs.push(summarize(c.name.into(), args.keys, &reps));
    }
    let spin = Duration::from_secs_f64(if spans.is_empty() { 1.0 } else { median(spans) });
    let controls: Vec<Rep> = (0..args.reps).map(|_| control(spin)).collect();
    costs.push(summarize("control".into(), 0, &controls));
    println!(
        "{} keys from empty, {} repetitions; a neighbour thread maps and unmaps 64 KiB every 50 µs\n",
        args.keys, args.reps
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
    use crate::contestants::Unsynchronized;

    #[test]
    fn a_growth_inserts_every_key_while_the_neighbour_calls() {
        let reps = measure_neighbour::<safemap::ShardedMap<u64, u64, crate::contestants::Hasher>>(
            20_000, 1,
        );
        assert_eq!(reps[0].inserts.len(), 20_000);
        assert!(
            !reps[0].neighbour.is_empty(),
            "the neighbour ran at least once"
        );
        let cost = summarize("ShardedMap".into(), 20_000, &reps);
        assert!(cost.insert_mops > 0.0 && cost.insert_max_us >= cost.insert_p999_us);
        assert!(cost.neighbour_worst_us >= cost.neighbour_p50_us);
    }

    #[test]
    fn the_control_inserts_nothing_and_its_row_says_so() {
        let reps = [control(Duration::from_millis(5))];
        assert!(reps[0].elapsed >= Duration::from_millis(5));
        let cost = summarize("control".into(), 0, &reps);
        assert_eq!(cost.insert_mops, 0.0);
        let row = table(&[cost]).lines().last().unwrap().to_string();
        assert!(row.starts_with("| control | - | - | - |"), "{row}");
    }

    #[test]
    fn the_floor_grows_too() {
        let reps = measure_neighbour::<Unsynchronized>(1_000, 2);
        assert_eq!(reps.len(), 2);
        assert!(reps.iter().all(|r| r.inserts.len() == 1_000));
    }
}
