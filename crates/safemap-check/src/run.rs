//! Generating random concurrent histories against a map and checking them.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use safemap::fallible::TryConcurrentMap;
use safemap::{Consistency, MapSnapshot, WholeMap};

use crate::check::{Judged, Violation, check};
use crate::history::{
    Clock, Event, History, INIT_MARK, Key, MAX_KEYS, Op, Ret, Stamps, Val, compute_rule,
};

/// The shape of the histories to generate.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Threads per history.
    pub threads: usize,
    /// Operations per thread.
    pub ops: usize,
    /// Key space, at most [`MAX_KEYS`].
    pub keys: Key,
    /// Seed of the first history; history `i` uses `seed + i`.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threads: 3,
            ops: 8,
            keys: 4,
            seed: 1,
        }
    }
}

impl Config {
    /// Rejects shapes the checker cannot judge, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 || self.ops == 0 {
            return Err("threads and ops must be at least 1".into());
        }
        if self.keys == 0 || self.keys as usize > MAX_KEYS {
            return Err(format!(
                "keys must be between 1 and {MAX_KEYS}, got {}",
                self.keys
            ));
        }
        Ok(())
    }
}

/// What checking one strategy found.
#[derive(Debug, Default)]
pub struct Report {
    /// Histories checked.
    pub histories: usize,
    /// Histories with no linearization.
    pub violations: usize,
    /// Operations recorded.
    pub ops: usize,
    /// Operations that overlapped an operation of another thread.
    pub overlapping: usize,
    /// The first violation, shrunk, and the index of the history it came from.
    pub first: Option<(usize, Violation)>,
    /// Histories neither passed nor failed: the search of one of their parts gave up
    /// ([`crate::wgl::STATES`]).
    pub undecided: usize,
    /// The first undecided history, whole, and its index.
    pub first_undecided: Option<(usize, History)>,
    /// Whether `len` went unjudged: a map that declares it an estimate is asked `get`s instead.
    pub len_unjudged: bool,
}

impl Report {
    /// The share of operations that really ran concurrently with another thread's.
    pub fn overlap_share(&self) -> f64 {
        self.overlapping as f64 / self.ops.max(1) as f64
    }
}

/// A strategy the checker can run: its name and how to check it.
pub struct Contestant {
    /// Its name on the command line and in reports.
    pub name: &'static str,
    /// Checks `histories` histories of the given shape.
    pub check: fn(&Config, usize) -> Report,
}

impl Contestant {
    /// The contestant for map type `M`, a fresh `M::default()` per history.
    pub fn of<M>(name: &'static str) -> Self
    where
        M: TryConcurrentMap<Key, Val> + Default + Sync,
    {
        Contestant {
            name,
            check: check_many::<M>,
        }
    }
}

/// The contestants of the entries of `safemap::strategies!`.
macro_rules! contestants {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
        vec![$(Contestant::of::<safemap::$map<Key, Val>>(stringify!($map))),*]
    };
}

/// Every safemap strategy, from the one strategy list (`safemap::strategies!`).
pub fn strategies() -> Vec<Contestant> {
    safemap::strategies!(contestants!())
}

/// Checks `histories` fresh histories of map type `M`.
pub fn check_many<M>(config: &Config, histories: usize) -> Report
where
    M: TryConcurrentMap<Key, Val> + Default + Sync,
{
    check_each(config, histories, |_| M::default())
}

/// Checks `histories` histories, each on the fresh map `fresh(index)` returns.
pub fn check_each<M>(config: &Config, histories: usize, fresh: impl Fn(usize) -> M) -> Report
where
    M: TryConcurrentMap<Key, Val> + Sync,
{
    check_recorded(config, histories, |i, seed| {
        let map = fresh(i);
        (record(&map, config, seed), map.consistency())
    })
}

/// Checks `histories` histories, history `i` recorded by `run(i, seed)`, which returns it with
/// the contract of the map it ran on.
pub fn check_recorded(
    config: &Config,
    histories: usize,
    run: impl Fn(usize, u64) -> (History, Consistency),
) -> Report {
    let mut report = Report::default();
    for i in 0..histories {
        let (history, declared) = run(i, config.seed.wrapping_add(i as u64));
        report.len_unjudged |= declared.len == WholeMap::Estimate;
        report.histories += 1;
        report.ops += history.events.len();
        report.overlapping += history.overlapping();
        match check(&history, &declared, config.keys) {
            Ok(Judged::Linearizable) => {}
            Ok(Judged::Undecided) => {
                report.undecided += 1;
                report.first_undecided.get_or_insert((i, history));
            }
            Err(violation) => {
                report.violations += 1;
                report.first.get_or_insert((i, violation));
            }
        }
    }
    report
}

/// The operations of every thread of history `seed`, for a map that declared `declared`: a map
/// whose `len` is only an estimate (which the checker cannot judge) is asked `get`s instead.
pub fn plans(config: &Config, seed: u64, declared: &Consistency) -> Vec<Vec<Op>> {
    (0..config.threads)
        .map(|t| {
            let mut ops = plan(config, seed, t);
            if declared.len == WholeMap::Estimate {
                ops.iter_mut()
                    .filter(|op| **op == Op::Len)
                    .for_each(|op| *op = Op::Get(0));
            }
            ops
        })
        .collect()
}

/// Runs one random history on `map`, which must be empty, and records it.
pub fn record<M>(map: &M, config: &Config, seed: u64) -> History
where
    M: TryConcurrentMap<Key, Val> + Sync,
{
    let plans = plans(config, seed, &map.consistency());
    let clock = Clock::default();
    let start = SpinStart::new(config.threads);
    let logs = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(thread, ops)| {
                let (clock, start) = (&clock, &start);
                s.spawn(move || {
                    start.wait();
                    play(map, clock, thread, ops)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("history thread panicked"))
            .collect::<Vec<Vec<Event>>>()
    });
    History {
        events: logs.into_iter().flatten().collect(),
    }
}

/// Runs thread `thread`'s operations on `map`, stamping each on `clock`; returns its log. Any
/// threading runtime can drive it: OS threads here, shuttle's in the schedule tests.
pub fn play<M: TryConcurrentMap<Key, Val>>(
    map: &M,
    clock: &impl Stamps,
    thread: usize,
    ops: Vec<Op>,
) -> Vec<Event> {
    let mut log = Vec::with_capacity(ops.len());
    let mut kept = Vec::new();
    for op in ops {
        let call = op.clone();
        clock.record(&mut log, thread, op, || perform(map, &call, &mut kept));
    }
    // A snapshot never changes: the history checks what each held when it was taken, and here,
    // after the thread's later operations (and, likely, others'), it must hold the same.
    for (snapshot, taken) in kept {
        assert_eq!(
            entries_of(&snapshot),
            taken,
            "a snapshot changed after it was taken"
        );
    }
    log
}

/// Snapshots a thread took, each with its entries when it was taken.
type Kept<S> = Vec<(S, Vec<(Key, Val)>)>;

/// A snapshot's entries, sorted.
fn entries_of<S: MapSnapshot<Key, Val>>(snapshot: &S) -> Vec<(Key, Val)> {
    let mut entries: Vec<_> = snapshot.iter().map(|(k, v)| (*k, *v)).collect();
    entries.sort_unstable();
    entries
}

/// Releases all threads of a history at once. A sleeping barrier wakes them microseconds apart,
/// long enough for one thread to finish its whole plan before the next starts; spinning threads
/// start within nanoseconds of each other, so their operations really overlap.
struct SpinStart {
    waiting: AtomicUsize,
}

impl SpinStart {
    fn new(threads: usize) -> Self {
        SpinStart {
            waiting: AtomicUsize::new(threads),
        }
    }

    fn wait(&self) {
        // Relaxed: the start signal orders nothing; the history's clock does (see history.rs).
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        // With more threads than cores, a spinner may hold the core a late thread needs; after a
        // short spin it yields so the scheduler runs that thread.
        let mut spins = 0u32;
        while self.waiting.load(Ordering::Relaxed) > 0 {
            spins += 1;
            if spins < 1_000 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Thread `thread`'s operations: mostly single-key, a few whole-map. Written values are unique
/// within the history: the thread in the high bits, a counter below, and [`INIT_MARK`] on the
/// values that `get_or_insert_with` makes, so that the specification knows who stored a value.
pub fn plan(config: &Config, seed: u64, thread: usize) -> Vec<Op> {
    let mut rng = SmallRng::seed_from_u64(seed ^ ((thread as u64 + 1) << 48));
    (0..config.ops)
        .map(|i| {
            let key = rng.random_range(0..config.keys);
            let value = ((thread as Val + 1) << 32) | (i as Val * 2 + rng.random_range(0..2));
            match rng.random_range(0..100) {
                0..20 => Op::Get(key),
                20..35 => Op::Insert(key, value),
                35..45 => Op::Remove(key),
                45..50 => Op::RemoveIf(key, ((thread as Val + 1) << 32) | rng.random_range(0..8)),
                50..62 => Op::GetOrInsert(key, value | INIT_MARK),
                62..66 => Op::TryGetOrInsert(key, value | INIT_MARK),
                66..80 => Op::Compute(key, value),
                80..84 => Op::Update(key, value),
                84..88 => Op::Upsert(key, value),
                88..91 => Op::Len,
                91..93 => Op::Snapshot,
                93..95 => Op::ForEach,
                95..97 => Op::Iter,
                97..99 => Op::RetainEven,
                _ => Op::Clear,
            }
        })
        .collect()
}

/// Calls `op` on `map` and returns its result in recorded form; a snapshot it takes is kept in
/// `kept`, with its entries then.
fn perform<M: TryConcurrentMap<Key, Val>>(map: &M, op: &Op, kept: &mut Kept<M::Snapshot>) -> Ret {
    let sorted = |mut entries: Vec<(Key, Val)>| {
        entries.sort_unstable();
        Ret::Entries(entries)
    };
    match *op {
        Op::Get(k) => Ret::Value(ok(map.get(&k))),
        Op::Insert(k, v) => Ret::Value(ok(map.insert(k, v))),
        Op::Remove(k) => Ret::Value(ok(map.remove(&k))),
        Op::RemoveIf(k, want) => Ret::Value(ok(map.remove_if(&k, |_, v| *v == want))),
        Op::GetOrInsert(k, v) => {
            let mut ran = false;
            let value = ok(map.get_or_insert_with(k, || {
                ran = true;
                v
            }));
            Ret::Inserted { value, ran }
        }
        Op::TryGetOrInsert(k, v) => {
            let mut ran = false;
            let made = ok(map.try_get_or_insert_with(k, || {
                ran = true;
                if v % 2 == 0 { Ok(v) } else { Err(()) }
            }));
            made.map_or(Ret::Failed, |value| Ret::Inserted { value, ran })
        }
        Op::Compute(k, v) => Ret::Value(ok(map.compute(k, |old| compute_rule(old.copied(), v)))),
        Op::Update(k, v) => Ret::Value(ok(map.update(&k, |cur| std::mem::replace(cur, v)))),
        Op::Upsert(k, v) => Ret::Value(Some(ok(map.update_or_insert_with(
            k,
            || v,
            |cur| std::mem::replace(cur, v),
        )))),
        Op::Len => Ret::Len(ok(map.len())),
        Op::Snapshot => {
            let snapshot = ok(map.snapshot());
            let entries = entries_of(&snapshot);
            kept.push((snapshot, entries.clone()));
            Ret::Entries(entries)
        }
        Op::ForEach => {
            let mut entries = Vec::new();
            ok(map.for_each(|k, v| entries.push((*k, *v))));
            sorted(entries)
        }
        Op::Iter => sorted(map.iter().map(ok).collect()),
        Op::RetainEven => {
            ok(map.retain(|_, v| v % 2 == 0));
            Ret::Unit
        }
        Op::Clear => {
            ok(map.clear());
            Ret::Unit
        }
    }
}

/// The result of a call that must not fail.
///
/// # Panics
/// If it failed: a history with a failed call in it cannot be judged (a write that failed may or
/// may not have happened), and a map that fails here has a broken server or network.
fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|error| panic!("the map failed during a history: {error}"))
}
