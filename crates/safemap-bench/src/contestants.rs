//! The maps under test, each behind the same five operations, all hashing with foldhash.
//!
//! Shared maps implement [`SharedMap`]; every thread gets a `&M`. The floor, an unsynchronized
//! hashbrown map, can only be handed to one thread as `&mut`, which the type system enforces
//! through [`Contender::handles`].

use std::collections::HashMap as StdHashMap;
use std::sync::{Mutex, RwLock};

use safemap::{Action, ConcurrentMap, Consistency, SafeMap};
use safemap_redis::RedisMap;
use safemap_redis::server::LocalServer;
use serde::Serialize;

use crate::iterate::{Iterable, IterationCost, measure_iteration};
use crate::measure::{Cell, Measurement, measure};
use crate::neighbour;
use crate::workload::{Shape, Workload, key};

/// The hasher every contestant uses, so that hashing cost is equal.
pub type Hasher = foldhash::fast::RandomState;

/// The five operations a workload performs, on one thread's handle.
pub trait MapOps: Send {
    /// Whether the key is present (the value is read).
    fn get(&mut self, k: u64) -> bool;
    /// Stores `v` for `k`.
    fn insert(&mut self, k: u64, v: u64);
    /// Removes `k`.
    fn remove(&mut self, k: u64);
    /// Adds one to `k`'s value if present.
    fn update(&mut self, k: u64);
    /// Returns `k`'s value, storing `make()` first if absent.
    fn get_or_insert(&mut self, k: u64, make: impl FnOnce() -> u64) -> u64;
    /// Takes a point-in-time snapshot and returns its length.
    ///
    /// # Panics
    /// If the map has none: the runner only asks contestants whose `Contender::SNAPSHOTS` is set.
    fn snapshot_len(&mut self) -> usize {
        unreachable!("snapshot asked of a contestant without snapshots")
    }
}

/// A map that the runner can create and hand out to threads.
pub trait Contender {
    /// What one thread operates through.
    type Handle<'a>: MapOps
    where
        Self: 'a;
    /// Whether its handles implement [`MapOps::snapshot_len`].
    const SNAPSHOTS: bool = false;
    /// An empty map.
    fn create() -> Self;
    /// A map holding keys `key(0..n)`, each with its index as value: the untimed prefill.
    fn create_filled(n: u64) -> Self
    where
        Self: Sized,
    {
        let mut map = Self::create();
        if let Some(handle) = map.handles(1).first_mut() {
            (0..n).for_each(|i| handle.insert(key(i), i));
        }
        map
    }
    /// One handle per thread.
    fn handles(&mut self, threads: usize) -> Vec<Self::Handle<'_>>;
}

/// A map all threads share by reference.
pub trait SharedMap: Sync + Sized {
    /// As [`Contender::SNAPSHOTS`].
    const SNAPSHOTS: bool = false;
    /// An empty map.
    fn create() -> Self;
    /// As [`Contender::create_filled`].
    fn create_filled(n: u64) -> Self {
        let map = Self::create();
        (0..n).for_each(|i| map.insert(key(i), i));
        map
    }
    /// As [`MapOps::get`].
    fn get(&self, k: u64) -> bool;
    /// As [`MapOps::insert`].
    fn insert(&self, k: u64, v: u64);
    /// As [`MapOps::remove`].
    fn remove(&self, k: u64);
    /// As [`MapOps::update`].
    fn update(&self, k: u64);
    /// As [`MapOps::get_or_insert`].
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64;
    /// As [`MapOps::snapshot_len`].
    fn snapshot_len(&self) -> usize {
        unreachable!("snapshot asked of a contestant without snapshots")
    }
}

impl<M: SharedMap> MapOps for &M {
    fn get(&mut self, k: u64) -> bool {
        SharedMap::get(*self, k)
    }
    fn insert(&mut self, k: u64, v: u64) {
        SharedMap::insert(*self, k, v)
    }
    fn remove(&mut self, k: u64) {
        SharedMap::remove(*self, k)
    }
    fn update(&mut self, k: u64) {
        SharedMap::update(*self, k)
    }
    fn get_or_insert(&mut self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        SharedMap::get_or_insert(*self, k, make)
    }
    fn snapshot_len(&mut self) -> usize {
        SharedMap::snapshot_len(*self)
    }
}

impl<M: SharedMap> Contender for M {
    type Handle<'a>
        = &'a M
    where
        M: 'a;
    const SNAPSHOTS: bool = M::SNAPSHOTS;
    fn create() -> Self {
        SharedMap::create()
    }
    fn create_filled(n: u64) -> Self {
        SharedMap::create_filled(n)
    }
    fn handles(&mut self, threads: usize) -> Vec<&M> {
        vec![&*self; threads]
    }
}

/// Every safemap strategy, through the one trait they share.
impl<C: Sync> SharedMap for SafeMap<C, Hasher>
where
    Self: ConcurrentMap<u64, u64> + FromIterator<(u64, u64)> + Default,
{
    const SNAPSHOTS: bool = true;
    fn create() -> Self {
        Self::default()
    }
    /// Through `FromIterator`, which batches where the strategy can (`SnapshotMap`
    /// publishes one version instead of one per key).
    fn create_filled(n: u64) -> Self {
        (0..n).map(|i| (key(i), i)).collect()
    }
    fn get(&self, k: u64) -> bool {
        ConcurrentMap::get(self, &k).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        ConcurrentMap::insert(self, k, v);
    }
    fn remove(&self, k: u64) {
        ConcurrentMap::remove(self, &k);
    }
    fn update(&self, k: u64) {
        self.compute(k, |v| v.map_or(Action::Keep, |v| Action::Set(v + 1)));
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        self.get_or_insert_with(k, make)
    }
    fn snapshot_len(&self) -> usize {
        safemap::MapSnapshot::len(&ConcurrentMap::snapshot(self))
    }
}

impl SharedMap for RwLock<StdHashMap<u64, u64, Hasher>> {
    const SNAPSHOTS: bool = true;
    fn create() -> Self {
        RwLock::new(StdHashMap::with_hasher(Hasher::default()))
    }
    /// A copy under the read lock: consistent, and O(n).
    fn snapshot_len(&self) -> usize {
        self.read().unwrap().clone().len()
    }
    fn get(&self, k: u64) -> bool {
        self.read().unwrap().get(&k).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        self.write().unwrap().insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.write().unwrap().remove(&k);
    }
    fn update(&self, k: u64) {
        if let Some(v) = self.write().unwrap().get_mut(&k) {
            *v += 1;
        }
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        if let Some(v) = self.read().unwrap().get(&k) {
            return *v;
        }
        *self.write().unwrap().entry(k).or_insert_with(make)
    }
}

impl SharedMap for Mutex<StdHashMap<u64, u64, Hasher>> {
    fn create() -> Self {
        Mutex::new(StdHashMap::with_hasher(Hasher::default()))
    }
    fn get(&self, k: u64) -> bool {
        self.lock().unwrap().get(&k).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        self.lock().unwrap().insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.lock().unwrap().remove(&k);
    }
    fn update(&self, k: u64) {
        if let Some(v) = self.lock().unwrap().get_mut(&k) {
            *v += 1;
        }
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        *self.lock().unwrap().entry(k).or_insert_with(make)
    }
}

impl SharedMap for dashmap::DashMap<u64, u64, Hasher> {
    fn create() -> Self {
        dashmap::DashMap::with_hasher(Hasher::default())
    }
    fn get(&self, k: u64) -> bool {
        dashmap::DashMap::get(self, &k).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        dashmap::DashMap::insert(self, k, v);
    }
    fn remove(&self, k: u64) {
        dashmap::DashMap::remove(self, &k);
    }
    fn update(&self, k: u64) {
        if let Some(mut v) = self.get_mut(&k) {
            *v += 1;
        }
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        *self.entry(k).or_insert_with(make)
    }
}

impl SharedMap for papaya::HashMap<u64, u64, Hasher> {
    fn create() -> Self {
        papaya::HashMap::with_hasher(Hasher::default())
    }
    fn get(&self, k: u64) -> bool {
        self.pin().get(&k).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        self.pin().insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.pin().remove(&k);
    }
    fn update(&self, k: u64) {
        self.pin().update(k, |v| v + 1);
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        *self.pin().get_or_insert_with(k, make)
    }
}

impl SharedMap for scc::HashMap<u64, u64, Hasher> {
    fn create() -> Self {
        scc::HashMap::with_hasher(Hasher::default())
    }
    fn get(&self, k: u64) -> bool {
        self.read_sync(&k, |_, v| *v).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        self.upsert_sync(k, v);
    }
    fn remove(&self, k: u64) {
        self.remove_sync(&k);
    }
    fn update(&self, k: u64) {
        self.update_sync(&k, |_, v| *v += 1);
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        *self.entry_sync(k).or_insert_with(make).get()
    }
}

impl SharedMap for scc::HashIndex<u64, u64, Hasher> {
    fn create() -> Self {
        scc::HashIndex::with_hasher(Hasher::default())
    }
    fn get(&self, k: u64) -> bool {
        self.peek_with(&k, |_, v| *v).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        match self.entry_sync(k) {
            scc::hash_index::Entry::Occupied(mut e) => e.update(v),
            scc::hash_index::Entry::Vacant(e) => {
                e.insert_entry(v);
            }
        }
    }
    fn remove(&self, k: u64) {
        self.remove_sync(&k);
    }
    fn update(&self, k: u64) {
        if let scc::hash_index::Entry::Occupied(mut e) = self.entry_sync(k) {
            let next = *e.get() + 1;
            e.update(next);
        }
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        if let Some(v) = self.peek_with(&k, |_, v| *v) {
            return v;
        }
        *self.entry_sync(k).or_insert_with(make).get()
    }
}

/// `RedisMap` (one-hash layout) on a `redis-server` of its own on loopback, started for each
/// map the runner creates and stopped with it: the cost of going remote, beside the local maps.
pub struct RedisContestant {
    map: RedisMap<u64, u64>,
    server: LocalServer,
}

/// A remote map's failure ends the run: a figure from a half-working server means nothing.
fn remote<T>(result: Result<T, safemap_redis::Error>) -> T {
    result.unwrap_or_else(|error| panic!("redis contestant: {error}"))
}

impl SharedMap for RedisContestant {
    fn create() -> Self {
        safemap_redis::server::install_if_missing()
            .expect("redis contestant: installing redis-server");
        let server = LocalServer::start().expect("redis contestant: starting redis-server");
        let map = remote(RedisMap::builder(&server.url(), "bench").build());
        RedisContestant { map, server }
    }
    /// Pipelined, a batch of writes per round trip: one by one, a million keys take minutes.
    fn create_filled(n: u64) -> Self {
        let filled = <Self as SharedMap>::create();
        remote(filled.map.try_extend((0..n).map(|i| (key(i), i))));
        filled
    }
    fn get(&self, k: u64) -> bool {
        remote(safemap::fallible::TryConcurrentMap::get(&self.map, &k)).is_some()
    }
    fn insert(&self, k: u64, v: u64) {
        remote(safemap::fallible::TryConcurrentMap::insert(&self.map, k, v));
    }
    fn remove(&self, k: u64) {
        remote(safemap::fallible::TryConcurrentMap::remove(&self.map, &k));
    }
    fn update(&self, k: u64) {
        remote(safemap::fallible::TryConcurrentMap::compute(
            &self.map,
            k,
            |v| v.map_or(Action::Keep, |v| Action::Set(v + 1)),
        ));
    }
    fn get_or_insert(&self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        remote(safemap::fallible::TryConcurrentMap::get_or_insert_with(
            &self.map, k, make,
        ))
    }
}

/// Bytes per entry of a remote map: the server's own memory (`used_memory`), since the client
/// keeps nothing per entry.
fn remote_footprint(entries: usize) -> f64 {
    let map = <RedisContestant as SharedMap>::create();
    let used = || -> f64 {
        let mut connection = redis::Client::open(map.server.url())
            .and_then(|client| client.get_connection())
            .expect("redis contestant: connecting");
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut connection)
            .expect("redis contestant: INFO");
        info.lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("redis contestant: used_memory in INFO")
    };
    let before = used();
    remote(map.map.try_extend((0..entries as u64).map(|i| (key(i), i))));
    (used() - before) / entries.max(1) as f64
}

/// The floor: hashbrown with no synchronization at all, run on one thread.
pub struct Unsynchronized(hashbrown::HashMap<u64, u64, Hasher>);

impl Contender for Unsynchronized {
    type Handle<'a> = &'a mut hashbrown::HashMap<u64, u64, Hasher>;
    fn create() -> Self {
        Unsynchronized(hashbrown::HashMap::with_hasher(Hasher::default()))
    }
    /// # Panics
    /// For more than one thread: the floor is unsynchronized by definition.
    fn handles(&mut self, threads: usize) -> Vec<Self::Handle<'_>> {
        assert_eq!(threads, 1, "the floor runs on one thread only");
        vec![&mut self.0]
    }
}

impl MapOps for &mut hashbrown::HashMap<u64, u64, Hasher> {
    fn get(&mut self, k: u64) -> bool {
        hashbrown::HashMap::get(*self, &k).is_some()
    }
    fn insert(&mut self, k: u64, v: u64) {
        hashbrown::HashMap::insert(*self, k, v);
    }
    fn remove(&mut self, k: u64) {
        hashbrown::HashMap::remove(*self, &k);
    }
    fn update(&mut self, k: u64) {
        if let Some(v) = self.get_mut(&k) {
            *v += 1;
        }
    }
    fn get_or_insert(&mut self, k: u64, make: impl FnOnce() -> u64) -> u64 {
        *self.entry(k).or_insert_with(make)
    }
}

/// Where a contestant comes from, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// A safemap strategy.
    Safemap,
    /// Another Rust map.
    Peer,
    /// Go's maps, from bench/go.
    Go,
    /// A map on a server (Redis over loopback): run only when named, since it starts a server.
    Remote,
    /// The unsynchronized single-thread floor.
    Floor,
}

/// A contestant: its name, family, and how to measure it.
pub struct Contestant {
    /// Its name on the command line and in reports.
    pub name: &'static str,
    /// Where it comes from.
    pub family: Family,
    /// Measures one cell.
    pub measure: fn(&Cell) -> Measurement,
    /// Measures bytes per entry with `n` entries.
    pub footprint: fn(usize) -> f64,
    /// What a safemap strategy declares it guarantees; `None` for the others.
    pub consistency: Option<Consistency>,
    /// Whether it can take a point-in-time snapshot.
    pub snapshots: bool,
    /// Measures its iteration (name, entries, repetitions), if it can be iterated while shared.
    pub iterate: Option<fn(&'static str, usize, usize) -> IterationCost>,
    /// Grows it from empty (keys, repetitions) beside a thread that maps and unmaps memory.
    pub neighbour: fn(usize, usize) -> Vec<neighbour::Rep>,
}

impl Contestant {
    fn of<M: Contender>(name: &'static str, family: Family) -> Self {
        Contestant {
            name,
            family,
            measure: measure::<M>,
            footprint: crate::alloc::footprint::<M>,
            consistency: None,
            snapshots: M::SNAPSHOTS,
            iterate: None,
            neighbour: neighbour::measure_neighbour::<M>,
        }
    }

    fn iterating<M: Iterable>(self) -> Self {
        Contestant {
            iterate: Some(measure_iteration::<M>),
            ..self
        }
    }

    fn safemap<M: Iterable + ConcurrentMap<u64, u64>>(name: &'static str) -> Self {
        Contestant {
            consistency: Some(M::CONSISTENCY),
            ..Self::of::<M>(name, Family::Safemap).iterating::<M>()
        }
    }

    /// Whether it can run `workload` with `threads` threads.
    pub fn runs(&self, workload: &Workload, threads: usize) -> bool {
        (self.family != Family::Floor || threads == 1)
            && (workload.shape != Shape::Snapshot || self.snapshots)
    }
}

/// The contestants of the entries of `safemap::strategies!`.
macro_rules! safemap_contestants {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
        vec![$(Contestant::safemap::<safemap::$map<u64, u64, Hasher>>(stringify!($map))),*]
    };
}

/// Every contestant: each safemap strategy (from the one strategy list), then the peers.
pub fn contestants() -> Vec<Contestant> {
    use Family::*;
    let mut all = safemap::strategies!(safemap_contestants!());
    all.extend([
        Contestant::of::<RwLock<StdHashMap<u64, u64, Hasher>>>("std-RwLock", Peer)
            .iterating::<RwLock<StdHashMap<u64, u64, Hasher>>>(),
        Contestant::of::<Mutex<StdHashMap<u64, u64, Hasher>>>("std-Mutex", Peer),
        Contestant::of::<dashmap::DashMap<u64, u64, Hasher>>("dashmap", Peer)
            .iterating::<dashmap::DashMap<u64, u64, Hasher>>(),
        Contestant::of::<papaya::HashMap<u64, u64, Hasher>>("papaya", Peer)
            .iterating::<papaya::HashMap<u64, u64, Hasher>>(),
        Contestant::of::<scc::HashMap<u64, u64, Hasher>>("scc-HashMap", Peer)
            .iterating::<scc::HashMap<u64, u64, Hasher>>(),
        Contestant::of::<scc::HashIndex<u64, u64, Hasher>>("scc-HashIndex", Peer)
            .iterating::<scc::HashIndex<u64, u64, Hasher>>(),
        Contestant::of::<Unsynchronized>("hashbrown-floor", Floor),
        Contestant {
            footprint: remote_footprint,
            consistency: Some(safemap_redis::Layout::OneHash.consistency()),
            ..Contestant::of::<RedisContestant>("redis", Remote)
        },
    ]);
    all
}
