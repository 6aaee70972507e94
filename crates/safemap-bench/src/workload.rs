//! Workloads: operation mixes, key distributions, and the per-thread operation lists generated
//! before timing starts.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

/// One operation on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Look the key up.
    Read(u64),
    /// Store a value (overwriting).
    Insert(u64),
    /// Remove the key.
    Remove(u64),
    /// Read-modify-write the value if present.
    Update(u64),
    /// Return the value, computing and storing it if absent.
    GetOrInsert(u64),
    /// Take a point-in-time snapshot of the whole map and read its length.
    Snapshot,
}

/// The share of each operation, in percent (summing to 100), and how full the map starts.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Mix {
    /// Reads.
    pub read: f64,
    /// Inserts.
    pub insert: f64,
    /// Removes.
    pub remove: f64,
    /// Updates.
    pub update: f64,
    /// Get-or-inserts.
    pub get_or_insert: f64,
    /// Fraction of the key space inserted before timing starts.
    pub prefill: f64,
}

/// How a workload's threads divide the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every thread runs the mix; one operation in [`SAMPLE_EVERY`](crate::measure::SAMPLE_EVERY)
    /// is timed.
    Mixed,
    /// Thread 0 inserts every key once, in order, from empty, and times every insert; the other
    /// threads read meanwhile, untimed. The latency figures are the inserts', so p99.9 and max show
    /// the stalls that a blocking resize causes.
    Growth,
    /// Thread 0 takes [`SNAPSHOTS`] snapshots of the full map and times each; the other threads
    /// run the mix meanwhile, untimed. The latency figures are the snapshots'. Only contestants
    /// that can take a point-in-time snapshot run it.
    Snapshot,
}

/// Snapshots taken per repetition of a [`Shape::Snapshot`] workload.
pub const SNAPSHOTS: usize = 32;

/// A named workload.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Its name on the command line and in reports.
    pub name: &'static str,
    /// The operation mix (for [`Shape::Growth`], the readers' share is all reads).
    pub mix: Mix,
    /// Its key count when the user gives none.
    pub default_keys: usize,
    /// Whether it also runs at [`CACHE_RESIDENT`] keys when the user gives no key count, so
    /// that a run shows the regime where the map fits in cache beside the one where it does not.
    pub both_regimes: bool,
    /// How threads divide the work.
    pub shape: Shape,
}

/// The key count of the cache-resident regime: a map of u64s this size (about 2 MiB) fits in
/// the last-level cache, so a read's cost is what it writes and waits for, not DRAM.
pub const CACHE_RESIDENT: usize = 1 << 16;

impl Workload {
    /// The key counts it runs at: `keys` if the user gave some, else [`CACHE_RESIDENT`] (where
    /// it runs both regimes) and its default.
    pub fn sizes(&self, keys: &[usize]) -> Vec<usize> {
        if !keys.is_empty() {
            keys.to_vec()
        } else if self.both_regimes {
            vec![CACHE_RESIDENT, self.default_keys]
        } else {
            vec![self.default_keys]
        }
    }
}

const fn mix(read: f64, insert: f64, remove: f64, update: f64, prefill: f64) -> Mix {
    Mix {
        read,
        insert,
        remove,
        update,
        get_or_insert: 0.0,
        prefill,
    }
}

/// Every workload. conc-map-bench's three mixes come first; they are what `--quick` runs.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "ReadHeavy",
        both_regimes: true,
        mix: mix(98.0, 1.0, 1.0, 0.0, 0.75),
        default_keys: 1 << 20,
        shape: Shape::Mixed,
    },
    Workload {
        name: "Exchange",
        both_regimes: true,
        mix: mix(10.0, 40.0, 40.0, 10.0, 0.75),
        default_keys: 1 << 20,
        shape: Shape::Mixed,
    },
    Workload {
        name: "RapidGrow",
        both_regimes: true,
        mix: mix(5.0, 80.0, 5.0, 10.0, 0.0),
        default_keys: 1 << 20,
        shape: Shape::Mixed,
    },
    Workload {
        name: "ReadMostly",
        both_regimes: true,
        mix: mix(99.0, 0.5, 0.5, 0.0, 0.75),
        default_keys: 1 << 20,
        shape: Shape::Mixed,
    },
    // The device registry: about 5,000 reads per 300 registrations, 2M devices, most known.
    Workload {
        name: "DeviceRegistry",
        both_regimes: false,
        mix: Mix {
            read: 100.0 * 5000.0 / 5300.0,
            insert: 0.0,
            remove: 0.0,
            update: 0.0,
            get_or_insert: 100.0 * 300.0 / 5300.0,
            prefill: 0.9,
        },
        default_keys: 2_000_000,
        shape: Shape::Mixed,
    },
    // Snapshots of a full map at two sizes, while other threads read and write: an O(1) snapshot
    // takes as long at 1M entries as at 10k.
    Workload {
        name: "Snapshot10k",
        both_regimes: false,
        mix: mix(99.0, 0.5, 0.5, 0.0, 1.0),
        default_keys: 10_000,
        shape: Shape::Snapshot,
    },
    Workload {
        name: "Snapshot1M",
        both_regimes: false,
        mix: mix(99.0, 0.5, 0.5, 0.0, 1.0),
        default_keys: 1_000_000,
        shape: Shape::Snapshot,
    },
    // One thread grows a map from empty to 4M keys while the others read.
    Workload {
        name: "Growth",
        both_regimes: false,
        mix: mix(100.0, 0.0, 0.0, 0.0, 0.0),
        default_keys: 4 << 20,
        shape: Shape::Growth,
    },
];

/// Finds a workload by name, ignoring case.
pub fn workload(name: &str) -> Result<Workload, String> {
    WORKLOADS
        .iter()
        .find(|w| w.name.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            let known: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
            format!(
                "unknown workload {name:?}; expected one of {}",
                known.join(", ")
            )
        })
}

/// How keys are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    /// Every key equally likely.
    Uniform,
    /// Zipf with exponent 0.99: a few hot keys take most operations.
    Zipf,
}

/// The key with index `i`: a bijection of `[0, 2^64)`, so keys are distinct but not sequential.
pub fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The operations of thread `thread`, generated from a fixed seed.
pub fn plan(mix: &Mix, keys: usize, dist: Dist, ops: usize, thread: usize) -> Vec<Op> {
    let mut rng = SmallRng::seed_from_u64(0x5afe_0000 + thread as u64);
    let zipf = Zipf::new(keys as f64, 0.99).expect("keys >= 1 and exponent > 0");
    let thresholds = [
        mix.read,
        mix.read + mix.insert,
        mix.read + mix.insert + mix.remove,
        mix.read + mix.insert + mix.remove + mix.update,
    ];
    (0..ops)
        .map(|_| {
            let index = match dist {
                Dist::Uniform => rng.random_range(0..keys as u64),
                Dist::Zipf => zipf.sample(&mut rng) as u64 - 1,
            };
            let k = key(index);
            let roll = rng.random_range(0.0..100.0);
            match thresholds.iter().position(|&t| roll < t) {
                Some(0) => Op::Read(k),
                Some(1) => Op::Insert(k),
                Some(2) => Op::Remove(k),
                Some(3) => Op::Update(k),
                _ => Op::GetOrInsert(k),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_mix() {
        let w = workload("exchange").unwrap();
        let ops = plan(&w.mix, 1000, Dist::Uniform, 100_000, 0);
        let share = |f: fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count() as f64 / 1000.0;
        assert!((share(|o| matches!(o, Op::Read(_))) - 10.0).abs() < 1.0);
        assert!((share(|o| matches!(o, Op::Insert(_))) - 40.0).abs() < 1.0);
        assert!((share(|o| matches!(o, Op::Remove(_))) - 40.0).abs() < 1.0);
        assert!((share(|o| matches!(o, Op::Update(_))) - 10.0).abs() < 1.0);
    }

    #[test]
    fn zipf_concentrates_on_few_keys() {
        let w = workload("ReadHeavy").unwrap();
        let hot = key(0);
        let count = |dist| {
            plan(&w.mix, 10_000, dist, 100_000, 0)
                .iter()
                .filter(|o| matches!(o, Op::Read(k) if *k == hot))
                .count()
        };
        assert!(count(Dist::Zipf) > 50 * count(Dist::Uniform).max(1));
    }

    #[test]
    fn unknown_workload_names_the_choices() {
        let err = workload("nope").unwrap_err();
        assert!(
            err.contains("ReadHeavy") && err.contains("DeviceRegistry"),
            "{err}"
        );
    }
}
