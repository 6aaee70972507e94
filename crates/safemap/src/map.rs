//! The API every strategy implements: [`ConcurrentMap`], its declared [`Consistency`], the
//! [`Action`] a [`compute`](ConcurrentMap::compute) closure returns, and the read-only
//! [`MapSnapshot`] view.
//!
//! Every method takes `&self` and returns owned data, so no lock guard ever leaves a call: nothing
//! returned can deadlock the map, and nothing returned pins a lock across an `.await`.

use equivalent::Equivalent;
use std::fmt;
use std::hash::Hash;
use std::time::Instant;

/// The default hasher: foldhash's `quality` variant, randomly seeded per map.
///
/// Not foldhash's `fast` variant: with sequential integer keys, about one process seed in 400
/// left its hashes' upper bits so alike that one shard took over twice its share of the keys
/// (sometimes all of them), and those bits also pick trie branches and hashbrown's tags. The
/// `quality` variant's final mixing step spreads them for every seed tried (`raw::routing`'s
/// tests).
pub type DefaultHashBuilder = foldhash::quality::RandomState;

/// What a [`compute`](ConcurrentMap::compute) closure decides to do with the entry it was shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<V> {
    /// Leave the entry as it is (absent stays absent).
    Keep,
    /// Store this value, inserting the key if it was absent.
    Set(V),
    /// Remove the entry if it is present.
    Remove,
}

/// Maintenance a call can trigger, reported to an [`Observer`](crate::Observer). Each strategy
/// declares which kinds it reports in [`Consistency::maintenance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Maintenance {
    /// A call moved entries to a larger table: reported once per table the call worked on,
    /// with the time it spent doing so. A table that grows all at once (the hashbrown tables of
    /// `LockedMap`, `ShardedMap` and either copy of a `ReadMostlyMap` shard) allocates larger
    /// buckets, moves every entry and frees the old ones within the call that grew it, which is
    /// timed from the allocation to the release; a table that grows incrementally reports each
    /// call that moved some of its entries, so one resize shows as several, each with its share
    /// of the time. A table that only cleans out deleted slots in place (hashbrown does so
    /// instead of growing when at least half its capacity is deleted slots) allocates nothing
    /// and is not reported.
    Resize,
    /// A `SnapshotMap`'s whole-map write (`write_batch`, `extend`, `retain`, `shrink_to_fit`)
    /// built a private copy and published it.
    Publish,
}

impl Maintenance {
    /// Every kind, in declaration order.
    pub const ALL: [Maintenance; 2] = [Maintenance::Resize, Maintenance::Publish];

    /// A lower-case name, as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Maintenance::Resize => "resize",
            Maintenance::Publish => "publish",
        }
    }
}

/// How a whole-map operation relates to the writes that run at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WholeMap {
    /// The operation takes effect at a single instant within the call: it is linearizable.
    /// For `len`, the count is exact at that instant.
    Atomic,
    /// Each key is observed (or changed) at some instant within the call, but different keys may
    /// be observed at different instants. For `len`, the count lies between the smallest and the
    /// largest size the map had during the call, and need not equal the size at any one instant.
    /// A key present throughout the call is still seen exactly once.
    WeaklyConsistent,
    /// For `len` alone: each key is counted as it was at some instant within the call, so the
    /// count lies between the number of keys present throughout the call and the number present
    /// at any time during it, but, unlike a weakly consistent `len`, need not lie between the
    /// smallest and largest size the map had (a key removed and another inserted during the call
    /// may both be counted). What a map spread over several servers can count.
    Estimate,
}

/// How long [`snapshot`](ConcurrentMap::snapshot) takes as the map grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Independent of the number of entries.
    Constant,
    /// Proportional to the number of entries (the snapshot copies them).
    Linear,
}

/// The consistency contract a strategy declares, operation by operation.
///
/// Single-key operations (`get`, `get_with`, `contains_key`, `insert`, `remove`, `remove_if`,
/// `get_or_insert_with`, `compute`) are linearizable in every strategy; this struct states what
/// differs. Docs, tests and the linearizability checker read it, so a strategy is judged against
/// exactly what it claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consistency {
    /// [`len`](ConcurrentMap::len): `Atomic` means exact at an instant.
    pub len: WholeMap,
    /// [`for_each`](ConcurrentMap::for_each).
    pub for_each: WholeMap,
    /// [`iter`](ConcurrentMap::iter), [`keys`](ConcurrentMap::keys) and
    /// [`values`](ConcurrentMap::values), over the whole iteration.
    pub iter: WholeMap,
    /// [`retain`](ConcurrentMap::retain).
    pub retain: WholeMap,
    /// [`clear`](ConcurrentMap::clear).
    pub clear: WholeMap,
    /// [`snapshot`](ConcurrentMap::snapshot): `Atomic` (a view of a single instant) in every
    /// in-memory strategy. A map spread over several servers, where no instant can be read
    /// whole, declares `WeaklyConsistent`: each key as it was at some instant of the call.
    pub snapshot: WholeMap,
    /// What a [`snapshot`](ConcurrentMap::snapshot) costs to take.
    pub snapshot_cost: Cost,
    /// Which readers wait while a closure of [`compute`](ConcurrentMap::compute) or
    /// [`remove_if`](ConcurrentMap::remove_if) runs on a key. (A
    /// [`get_or_insert_with`](ConcurrentMap::get_or_insert_with) closure holds up no one but
    /// the callers for its own key, in every strategy.)
    pub closure_blocks_readers: Blocks,
    /// Whether [`update`](ConcurrentMap::update) and
    /// [`update_or_insert_with`](ConcurrentMap::update_or_insert_with) change the stored value
    /// itself (`true`), or a clone that they then store in its place, because readers may be
    /// holding the stored one (`false`).
    pub update_in_place: bool,
    /// Whether [`reserve`](ConcurrentMap::reserve) and `with_capacity` make room ahead, so that
    /// the entries they made room for are stored without allocating the map's own memory
    /// (`true`). `false` for `SnapshotMap`, whose every write allocates the leaf it copies, and
    /// whose capacity is therefore its length; and for the ScalableMaps, whose tables are sized
    /// ahead but which allocate each entry (`ScalableMap`) or a chain's overflow bucket
    /// (`ScalablePodMap`) as it is stored.
    pub reserves: bool,
    /// The [`Maintenance`] kinds this strategy reports to an [`Observer`](crate::Observer) wrapped
    /// around it; it reports no other.
    pub maintenance: &'static [Maintenance],
    /// Which writers wait while such a closure runs. Never [`Blocks::Nothing`] in a strategy
    /// whose closures run exactly once, since another writer of the key must wait to see the
    /// closure's result.
    pub closure_blocks_writers: Blocks,
    /// How far the run-once rules of closures reach: `make` of
    /// [`get_or_insert_with`](ConcurrentMap::get_or_insert_with) at most once per value stored,
    /// the closures of [`compute`](ConcurrentMap::compute) and
    /// [`update`](ConcurrentMap::update) exactly once.
    pub once: Once,
    /// Whether the map runs a stored key's `Hash` again after storing it (`true`): to move
    /// entries when a table grows or shrinks, or to place them while iterating or copying across
    /// tables of different sizes. A `Hash` that panics there leaves the map consistent and the
    /// panic goes to the caller whose call ran it, as any panic in user code does. `false` where
    /// every entry keeps its hash, so only the key passed to a call is hashed, once.
    pub rehashes_keys: bool,
    /// Whether what a write takes out of the map (a replaced or removed entry, an old table or
    /// version) is freed only once no reader can still hold it, by a reclamation collector (seize)
    /// that the map makes with its first write, with per-thread slots of about 16 KiB (`true`).
    /// Until then the map's copy of a removed value stays allocated. `false` where readers lock or
    /// announce themselves, so a write frees what it takes out before it returns (except a large
    /// old table, which goes to a release thread).
    pub frees_after_readers: bool,
}

/// How far the run-once rules of a map's closures reach, declared in [`Consistency::once`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Once {
    /// Always, for every caller of the map: every in-memory strategy.
    Always,
    /// For every client of a shared server, as long as each closure returns within the lease
    /// its call took on the key. A closure that outlives its lease has its result refused (the
    /// call returns an error and changes nothing), and once the lease has lapsed another client
    /// may run its own closure for that key.
    WithinLease,
}

/// How much of a map a running closure holds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Blocks {
    /// No one waits.
    Nothing,
    /// Those who write the closure's key.
    Key,
    /// Those who touch any key of the closure's key's shard.
    Shard,
    /// Those who touch any key.
    Map,
}

/// A concurrent hash map whose every operation takes `&self` and returns owned data.
///
/// Names follow [`std::collections::HashMap`]. Lookups accept any form `Q` of the key that is
/// [`Equivalent`](crate::Equivalent) to it and hashes as it does: every borrowed form, as
/// `HashMap::get` takes, and forms of one's own, as hashbrown, indexmap, papaya and scc take (a
/// composite key found without building one). Each strategy states its guarantees in
/// [`Self::CONSISTENCY`].
///
/// ```
/// use safemap::{ConcurrentMap, Equivalent, ShardedMap};
///
/// /// A (user, device) pair of borrowed names, hashing as the owned pair does.
/// #[derive(Hash)]
/// struct Pair<'a>(&'a str, &'a str);
///
/// impl Equivalent<(String, String)> for Pair<'_> {
///     fn equivalent(&self, key: &(String, String)) -> bool {
///         self.0 == key.0 && self.1 == key.1
///     }
/// }
///
/// let sessions: ShardedMap<(String, String), u32> = ShardedMap::new();
/// sessions.insert(("ana".to_string(), "phone".to_string()), 7);
/// assert_eq!(sessions.get(&Pair("ana", "phone")), Some(7));
/// assert_eq!(sessions.get(&Pair("ana", "laptop")), None);
/// ```
///
/// Rules that hold for every implementation:
/// - no lock guard escapes a call;
/// - a user closure that panics leaves the map consistent and usable, with nothing poisoned,
///   leaked or dropped twice;
/// - a closure that calls back into the same map either works or panics with a message naming
///   the problem; it never hangs.
///
/// ```
/// use safemap::{Action, ConcurrentMap, ShardedMap};
///
/// let hits: ShardedMap<&str, u64> = ShardedMap::new();
/// hits.insert("home", 1);
/// hits.compute("home", |n| Action::Set(n.copied().unwrap_or(0) + 1));
/// assert_eq!(hits.get("home"), Some(2));
/// assert_eq!(hits.get_or_insert_with("about", || 7), 7);
/// assert_eq!(hits.len(), 2);
/// ```
pub trait ConcurrentMap<K, V> {
    /// The point-in-time view returned by [`snapshot`](Self::snapshot).
    type Snapshot: MapSnapshot<K, V>;

    /// What this strategy guarantees for each operation.
    const CONSISTENCY: Consistency;

    /// Returns a clone of the value for `key`.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, LockedMap};
    /// let m: LockedMap<String, u32> = LockedMap::new();
    /// m.insert("a".to_string(), 1);
    /// assert_eq!(m.get("a"), Some(1)); // look up by &str
    /// assert_eq!(m.get("b"), None);
    /// ```
    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone;

    /// Runs `read` on the value for `key` and returns its result, without cloning the value.
    ///
    /// `read` runs while writers of the entry wait for it (behind a read lock, or, in
    /// `ReadMostlyMap`, as a reader the writer waits to leave), except in `SnapshotMap`, where it
    /// reads an immutable version and holds up no one. Keep it short either way. Calling back
    /// into the same map from `read` panics.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let m: ShardedMap<u32, Vec<u8>> = ShardedMap::new();
    /// m.insert(1, vec![1, 2, 3]);
    /// assert_eq!(m.get_with(&1, |v| v.len()), Some(3));
    /// ```
    fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized;

    /// Whether `key` is present.
    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.get_with(key, |_| ()).is_some()
    }

    /// Stores `value` for `key`, returning the value it replaced. Where the key was present,
    /// the stored key stays and `key` is dropped, as in std's `HashMap::insert` (this shows
    /// only for keys that are equal but can be told apart).
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let m = ShardedMap::new();
    /// assert_eq!(m.insert(1, "a"), None);
    /// assert_eq!(m.insert(1, "b"), Some("a"));
    /// ```
    fn insert(&self, key: K, value: V) -> Option<V>;

    /// Removes `key`, returning its value. In a `SnapshotMap`, older versions that readers still
    /// hold keep a clone of it until they let go.
    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized;

    /// Removes `key` only if `remove` returns true for its entry, atomically; returns the removed
    /// value. Calling back into the same map from `remove` panics.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, LockedMap};
    /// let m = LockedMap::new();
    /// m.insert("job", 3);
    /// assert_eq!(m.remove_if("job", |_, v| *v > 5), None);
    /// assert_eq!(m.remove_if("job", |_, v| *v == 3), Some(3));
    /// ```
    fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized;

    /// Returns the value for `key`, first storing `make()` if the key is absent.
    ///
    /// `make` runs **at most once per value stored**, even when many threads race on that key:
    /// the first caller claims the key and the others wait (they park) and return its value (Go's
    /// `LoadOrStore`, Java's `computeIfAbsent`). `make` runs with **no lock of the map held**, so
    /// a slow `make` stalls no other key, and readers of its key see it absent meanwhile. `make`
    /// may use the map for other keys; asking for its own key panics rather than waiting for
    /// itself. If `make` panics nothing is stored and one waiting caller runs its own `make`. A
    /// value stored for the key by another method while `make` runs wins: it is returned, and
    /// `make`'s value is dropped.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let fingerprints: ShardedMap<u64, String> = ShardedMap::new();
    /// let fp = fingerprints.get_or_insert_with(42, || format!("{:x}", 42 * 31));
    /// assert_eq!(fp, "516");
    /// // Present now: the closure does not run again.
    /// let again = fingerprints.get_or_insert_with(42, || unreachable!());
    /// assert_eq!(again, fp);
    /// ```
    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone;

    /// [`get_or_insert_with`](Self::get_or_insert_with) for a `make` that can fail (moka's
    /// `try_get_with`): on `Err` nothing is stored and the error is returned, and one waiting
    /// caller, if any, runs its own `make`. As there, a successful `make` runs at most once per
    /// value stored, with no lock of the map held.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let ports: ShardedMap<&str, u16> = ShardedMap::new();
    /// assert_eq!(ports.try_get_or_insert_with("web", || "80x".parse::<u16>()).is_err(), true);
    /// assert!(!ports.contains_key("web"));
    /// assert_eq!(ports.try_get_or_insert_with("web", || "80".parse::<u16>()), Ok(80));
    /// ```
    fn try_get_or_insert_with<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E>
    where
        V: Clone;

    /// Changes the value for `key` in place and returns what `change` returns, or `None` if the
    /// key is absent (std's `get_mut`, dashmap's `alter`, without a guard). `change` runs exactly
    /// once, with the key's writers excluded. Calling back into the same map from `change` panics.
    ///
    /// The lock-based strategies change the stored value itself, so appending to a `Vec` value
    /// copies nothing; if `change` panics, the value keeps what `change` did before it panicked.
    /// `SnapshotMap` and `ReadMostlyMap` change a clone (readers may hold the stored value) and
    /// store it when `change` returns; if `change` panics, nothing changes.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let log: ShardedMap<&str, Vec<u8>> = ShardedMap::new();
    /// log.insert("a", vec![1]);
    /// assert_eq!(log.update("a", |bytes| { bytes.push(2); bytes.len() }), Some(2));
    /// assert_eq!(log.update("b", |bytes| bytes.len()), None);
    /// assert_eq!(log.get("a"), Some(vec![1, 2]));
    /// ```
    fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized;

    /// Changes the value for `key` in place, first building it with `make()` if the key is
    /// absent (`entry(k).or_insert_with(make)` followed by a change, without a guard); returns
    /// what `change` returns. `change` runs exactly once, `make` at most once, with the key's
    /// writers excluded. An absent key is stored only after `change` returns, so a panic in
    /// `make` or `change` leaves it absent. Costs as for [`update`](Self::update).
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let groups: ShardedMap<&str, Vec<u32>> = ShardedMap::new();
    /// for (group, member) in [("admins", 1), ("users", 2), ("admins", 3)] {
    ///     groups.update_or_insert_with(group, Vec::new, |members| members.push(member));
    /// }
    /// assert_eq!(groups.get("admins"), Some(vec![1, 3]));
    /// ```
    fn update_or_insert_with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> R;

    /// Atomically reads the entry for `key` and applies the [`Action`] that `update` returns.
    ///
    /// `update` runs **exactly once**, seeing the current value (or `None`). Returns the value
    /// the action displaced: the old value on [`Action::Set`] over a present key or on
    /// [`Action::Remove`], `None` otherwise. If `update` panics nothing changes. Calling back
    /// into the same map from `update` panics.
    ///
    /// ```
    /// use safemap::{Action, ConcurrentMap, ShardedMap};
    /// let counters: ShardedMap<&str, u64> = ShardedMap::new();
    /// for _ in 0..3 {
    ///     counters.compute("clicks", |n| Action::Set(n.map_or(1, |n| n + 1)));
    /// }
    /// assert_eq!(counters.get("clicks"), Some(3));
    /// assert_eq!(counters.compute("clicks", |_| Action::Remove), Some(3));
    /// assert!(counters.is_empty());
    /// ```
    fn compute(&self, key: K, update: impl FnOnce(Option<&V>) -> Action<V>) -> Option<V>;

    /// Keeps only the entries for which `keep` returns true. Calling back into the same map from
    /// `keep` panics. See [`Consistency::retain`] for how it orders against concurrent writes.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, LockedMap};
    /// let m: LockedMap<u32, u32> = (0..10).map(|i| (i, i)).collect();
    /// m.retain(|_, v| v % 2 == 0);
    /// assert_eq!(m.len(), 5);
    /// ```
    fn retain(&self, keep: impl FnMut(&K, &V) -> bool);

    /// Removes every entry. Values are dropped after the map's locks are released; in a
    /// `SnapshotMap`, once no version holds them (a reader still in the old version, or a
    /// snapshot of it, keeps them alive until it leaves it).
    fn clear(&self);

    /// The number of entries. See [`Consistency::len`] for whether it is exact.
    fn len(&self) -> usize;

    /// Whether the map has no entries.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the map holds room for without allocating its own memory (shard by
    /// shard, so under concurrent writes an estimate); see [`Consistency::reserves`].
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let m: ShardedMap<u64, u64> = ShardedMap::new();
    /// m.reserve(10_000);
    /// assert!(m.capacity() >= 10_000);
    /// (0..10_000).for_each(|i| { m.insert(i, i); });
    /// m.retain(|k, _| *k < 10);
    /// m.shrink_to_fit();
    /// assert!(m.capacity() < 10_000);
    /// ```
    fn capacity(&self) -> usize;

    /// Makes room for `additional` more entries beside those the map holds, spread over the
    /// shards as keys spread, so that growing by that many does not resize a table (a table
    /// resize stalls its shard). The ScalableMaps grow their table and return once it is moved;
    /// `SnapshotMap` has no table to size and does nothing (see [`Consistency::reserves`]).
    fn reserve(&self, additional: usize);

    /// Gives back the memory the entries do not need: after a map shrank, its tables keep their
    /// size until this is called. Each part is shrunk under its own lock, one at a time.
    fn shrink_to_fit(&self);

    /// How many entries each independently locked part of the map holds: one count per shard,
    /// or one count for strategies with a single lock or none. A skewed spread means a poor
    /// hasher or adversarial keys, and writers that queue on the crowded shards.
    ///
    /// Shards are counted one after another, each exactly, so under concurrent writes the counts
    /// need not add up to [`len`](Self::len) at any one instant.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let m: ShardedMap<u32, u32> = ShardedMap::with_shards(4);
    /// for i in 0..1000 {
    ///     m.insert(i, i);
    /// }
    /// let lengths = m.shard_lengths();
    /// assert_eq!(lengths.len(), 4);
    /// assert_eq!(lengths.iter().sum::<usize>(), 1000);
    /// ```
    fn shard_lengths(&self) -> Vec<usize> {
        vec![self.len()]
    }

    /// Calls `visit` once for every entry. Every key present throughout the call is visited
    /// exactly once; see [`Consistency::for_each`] for the rest. `visit` runs with no lock held,
    /// so it may call back into the map: the strategy visits copies of its entries, or an
    /// immutable version. Writers wait while the copies are taken: for one shard at a time where
    /// `for_each` is weakly consistent, for the whole copy where it is atomic and the strategy
    /// copies (`LockedMap`, `ReadMostlyMap`); `SnapshotMap` copies nothing and holds up no one.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let m: ShardedMap<u32, u32> = (1..=4).map(|i| (i, i * 10)).collect();
    /// let mut sum = 0;
    /// m.for_each(|_, v| sum += v);
    /// assert_eq!(sum, 100);
    /// ```
    fn for_each(&self, visit: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone;

    /// Every entry, as owned clones, in no particular order. No lock is held between calls to
    /// `next`: the iterator copies one part of the map at a time (a shard; in `SnapshotMap`, a
    /// leaf of the version current when the iteration began; in `LockedMap`, whose one lock
    /// covers everything, the whole table), so a writer waits at most for one part to be
    /// copied, and dropping the iterator stops the work. See [`Consistency::iter`] for what it
    /// sees of concurrent writes. The map may be called from the loop.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// let m: ShardedMap<u32, u32> = (1..=4).map(|i| (i, i * 10)).collect();
    /// let mut pairs: Vec<(u32, u32)> = m.iter().collect();
    /// pairs.sort();
    /// assert_eq!(pairs, [(1, 10), (2, 20), (3, 30), (4, 40)]);
    /// assert_eq!(m.keys().max(), Some(4));
    /// assert_eq!(m.values().sum::<u32>(), 100);
    /// ```
    fn iter(&self) -> impl Iterator<Item = (K, V)> + '_
    where
        K: Clone,
        V: Clone;

    /// Every key, as [`iter`](Self::iter) sees them.
    fn keys(&self) -> impl Iterator<Item = K> + '_
    where
        K: Clone,
        V: Clone,
    {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, as [`iter`](Self::iter) sees them.
    fn values(&self) -> impl Iterator<Item = V> + '_
    where
        K: Clone,
        V: Clone,
    {
        self.iter().map(|(_, v)| v)
    }

    /// An immutable view of the whole map at a single instant. It stays valid, and unchanged,
    /// while writers go on. See [`Consistency::snapshot_cost`] for what it costs.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, MapSnapshot, ShardedMap};
    /// let m: ShardedMap<u32, &str> = ShardedMap::new();
    /// m.insert(1, "one");
    /// let view = m.snapshot();
    /// m.insert(2, "two");
    /// assert_eq!(view.len(), 1);
    /// assert_eq!(view.get(&1), Some(&"one"));
    /// assert_eq!(view.get(&2), None);
    /// ```
    fn snapshot(&self) -> Self::Snapshot
    where
        K: Clone,
        V: Clone;
}

/// A read-only, point-in-time view of a map, returned by [`ConcurrentMap::snapshot`].
pub trait MapSnapshot<K, V> {
    /// The value for `key` at the snapshot's instant.
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized;

    /// Whether `key` was present at the snapshot's instant.
    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The number of entries at the snapshot's instant.
    fn len(&self) -> usize;

    /// Whether the map was empty at the snapshot's instant.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, in no particular order.
    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a;

    /// Every key, in no particular order.
    fn keys<'a>(&'a self) -> impl Iterator<Item = &'a K>
    where
        K: 'a,
        V: 'a,
    {
        self.iter().map(|(k, _)| k)
    }

    /// Every value, in no particular order.
    fn values<'a>(&'a self) -> impl Iterator<Item = &'a V>
    where
        K: 'a,
        V: 'a,
    {
        self.iter().map(|(_, v)| v)
    }
}

/// The error of a deadline-bounded operation that could not get its lock in time. The map is
/// unchanged, no closure ran, and whatever the call was given to store comes back in `.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut<T>(pub T);

impl<T> fmt::Display for TimedOut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("safemap: the deadline passed before the map's lock was free; nothing changed")
    }
}

impl<T: fmt::Debug> std::error::Error for TimedOut<T> {}

/// Deadline-bounded variants of the operations that can wait for a lock, for strategies that
/// have locks. Each returns by `deadline` (give `Instant::now() + timeout` for a timeout): on
/// time with the operation done, or with [`TimedOut`] and the map unchanged.
///
/// ```
/// use std::time::{Duration, Instant};
/// use safemap::{Action, DeadlineMap, ShardedMap};
///
/// let m: ShardedMap<&str, u32> = ShardedMap::new();
/// let soon = Instant::now() + Duration::from_millis(10);
/// assert_eq!(m.try_insert_until("a", 1, soon), Ok(None));
/// assert_eq!(m.try_compute_until("a", |v| Action::Set(v.unwrap() + 1), soon), Ok(Some(1)));
/// assert_eq!(m.try_get_until("a", soon), Ok(Some(2)));
/// assert_eq!(m.try_remove_until("a", soon), Ok(Some(2)));
/// ```
pub trait DeadlineMap<K, V>: ConcurrentMap<K, V> {
    /// [`ConcurrentMap::get`], giving up at `deadline`.
    fn try_get_until<Q>(&self, key: &Q, deadline: Instant) -> Result<Option<V>, TimedOut<()>>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone;

    /// [`ConcurrentMap::insert`], giving up at `deadline`; on timeout the key and value come back.
    fn try_insert_until(
        &self,
        key: K,
        value: V,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<(K, V)>>;

    /// [`ConcurrentMap::remove`], giving up at `deadline`.
    fn try_remove_until<Q>(&self, key: &Q, deadline: Instant) -> Result<Option<V>, TimedOut<()>>
    where
        Q: Hash + Equivalent<K> + ?Sized;

    /// [`ConcurrentMap::compute`], giving up at `deadline`; on timeout `update` has not run and
    /// the key comes back.
    fn try_compute_until(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<K>>;
}
