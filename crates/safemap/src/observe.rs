//! Access auditing for any strategy: [`Observed`] wraps a map and reports every operation, the
//! key's hash and the outcome to an [`Observer`].
//!
//! The hook is a wrapper rather than a parameter of each strategy: a map that is not observed
//! carries no hook at all (not even an inlined no-op), every strategy, present and future, gets
//! the same hook without code of its own, and the strategies stay small. Keys are reported by a
//! specified hash with a fixed key ([`audit_hash`], SipHash-2-4), not the map's randomly seeded
//! one, so an audit log or an eBPF probe can correlate keys across maps, process restarts and
//! versions of this crate without ever seeing the keys themselves.

use equivalent::Equivalent;
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::map::Maintenance;
use crate::map::{Action, ConcurrentMap, Consistency};
use crate::sync::thread_local;
use crate::tally::{self, Call};

/// Which operation ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`ConcurrentMap::get`].
    Get,
    /// [`ConcurrentMap::get_with`].
    GetWith,
    /// [`ConcurrentMap::contains_key`].
    ContainsKey,
    /// [`ConcurrentMap::insert`].
    Insert,
    /// [`ConcurrentMap::remove`].
    Remove,
    /// [`ConcurrentMap::remove_if`].
    RemoveIf,
    /// [`ConcurrentMap::get_or_insert_with`].
    GetOrInsertWith,
    /// [`ConcurrentMap::try_get_or_insert_with`].
    TryGetOrInsertWith,
    /// [`ConcurrentMap::update`].
    Update,
    /// [`ConcurrentMap::update_or_insert_with`].
    UpdateOrInsertWith,
    /// [`ConcurrentMap::compute`].
    Compute,
    /// [`ConcurrentMap::retain`].
    Retain,
    /// [`ConcurrentMap::clear`].
    Clear,
    /// [`ConcurrentMap::len`].
    Len,
    /// [`ConcurrentMap::for_each`].
    ForEach,
    /// [`ConcurrentMap::iter`], `keys` or `values`, reported when the iterator is made.
    Iter,
    /// [`ConcurrentMap::snapshot`].
    Snapshot,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 17] = [
        Operation::Get,
        Operation::GetWith,
        Operation::ContainsKey,
        Operation::Insert,
        Operation::Remove,
        Operation::RemoveIf,
        Operation::GetOrInsertWith,
        Operation::TryGetOrInsertWith,
        Operation::Update,
        Operation::UpdateOrInsertWith,
        Operation::Compute,
        Operation::Retain,
        Operation::Clear,
        Operation::Len,
        Operation::ForEach,
        Operation::Iter,
        Operation::Snapshot,
    ];

    /// The method's name, as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::GetWith => "get_with",
            Operation::ContainsKey => "contains_key",
            Operation::Insert => "insert",
            Operation::Remove => "remove",
            Operation::RemoveIf => "remove_if",
            Operation::GetOrInsertWith => "get_or_insert_with",
            Operation::TryGetOrInsertWith => "try_get_or_insert_with",
            Operation::Update => "update",
            Operation::UpdateOrInsertWith => "update_or_insert_with",
            Operation::Compute => "compute",
            Operation::Retain => "retain",
            Operation::Clear => "clear",
            Operation::Len => "len",
            Operation::ForEach => "for_each",
            Operation::Iter => "iter",
            Operation::Snapshot => "snapshot",
        }
    }
}

/// What an operation found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A lookup found the key (for `get_or_insert_with` and `try_get_or_insert_with`: the key
    /// was present, nothing stored).
    Hit,
    /// A lookup did not find the key.
    Miss,
    /// A new key was stored. For `get_or_insert_with`: its closure ran, which it does only for
    /// an absent key (if a plain write stored a value while the closure ran, that value was
    /// returned instead of the closure's).
    Inserted,
    /// A present key's value was replaced, or changed in place (`update`).
    Replaced,
    /// A key was removed.
    Removed,
    /// Nothing changed: the key was absent, a predicate declined, `compute` kept the entry, or
    /// `try_get_or_insert_with`'s initializer failed.
    Unchanged,
    /// A whole-map operation ran.
    WholeMap,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Inserted,
        Outcome::Replaced,
        Outcome::Removed,
        Outcome::Unchanged,
        Outcome::WholeMap,
    ];

    /// A lower-case name, as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Inserted => "inserted",
            Outcome::Replaced => "replaced",
            Outcome::Removed => "removed",
            Outcome::Unchanged => "unchanged",
            Outcome::WholeMap => "whole_map",
        }
    }
}

/// One access, as an [`Observer`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// The operation.
    pub operation: Operation,
    /// The key's hash under [`audit_hash`], or `None` for whole-map operations.
    pub key_hash: Option<u64>,
    /// What it found or did.
    pub outcome: Outcome,
}

/// Receives every access to an [`Observed`] map, after the operation, on the calling thread and
/// with no lock of the map held. Keep it cheap: it runs on every call.
///
/// Closures `Fn(Access)` are observers.
pub trait Observer {
    /// Called once per operation.
    fn on_access(&self, access: Access);

    /// Called after an operation that had to wait for a contended lock, with the time it waited.
    /// Uncontended operations do not call it, so the fast path stays fast.
    fn on_lock_wait(&self, operation: Operation, waited: Duration) {
        let _ = (operation, waited);
    }

    /// Called after an operation that triggered [`Maintenance`] (a table resize, a `SnapshotMap`
    /// version publish), with `count` and the total time they took. Calls that trigger none do
    /// not call it.
    fn on_maintenance(&self, operation: Operation, kind: Maintenance, count: u32, took: Duration) {
        let _ = (operation, kind, count, took);
    }

    /// Called with the map's [`ShardBalance`] after a call that resized a table, after every
    /// [`CENSUS_INTERVAL`]th observed call on a thread, and on [`Observed::report_balance`].
    /// Taking it reads every shard's length, one shard at a time, after the call returned.
    fn on_balance(&self, balance: ShardBalance) {
        let _ = balance;
    }
}

/// How many observed calls a thread makes between two shard censuses it takes on its own.
pub const CENSUS_INTERVAL: u32 = 1 << 16;

thread_local! {
    /// Observed calls this thread has made since its last census.
    static CALLS_SINCE_CENSUS: Cell<u32> = const { Cell::new(0) };
}

/// Counts an observed call; true when it is the thread's [`CENSUS_INTERVAL`]th since the last.
fn census_due() -> bool {
    CALLS_SINCE_CENSUS.with(|calls| {
        let due = calls.get() + 1 >= CENSUS_INTERVAL;
        calls.set(if due { 0 } else { calls.get() + 1 });
        due
    })
}

impl<F: Fn(Access)> Observer for F {
    fn on_access(&self, access: Access) {
        self(access)
    }
}

/// How a map's entries are spread over its shards (see [`ConcurrentMap::shard_lengths`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardBalance {
    /// The number of shards (1 for strategies with a single lock or none).
    pub shards: usize,
    /// Entries over all shards.
    pub entries: usize,
    /// Entries in the fullest shard.
    pub largest: usize,
}

impl ShardBalance {
    /// The balance of these shard lengths.
    ///
    /// ```
    /// use safemap::ShardBalance;
    /// let balance = ShardBalance::of(&[10, 30, 20, 20]);
    /// assert_eq!((balance.shards, balance.entries, balance.largest), (4, 80, 30));
    /// assert_eq!(balance.imbalance(), 1.5);
    /// ```
    pub fn of(lengths: &[usize]) -> Self {
        ShardBalance {
            shards: lengths.len(),
            entries: lengths.iter().sum(),
            largest: lengths.iter().copied().max().unwrap_or(0),
        }
    }

    /// The largest shard's length over the mean shard length: 1.0 when perfectly even (or
    /// empty), up to the shard count when every entry is in one shard. Uniformly hashed keys
    /// stay close to 1 once shards hold a few thousand entries each.
    pub fn imbalance(&self) -> f64 {
        if self.entries == 0 {
            return 1.0;
        }
        self.largest as f64 * self.shards as f64 / self.entries as f64
    }
}

/// The observer that ignores everything, the default of [`Observed`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    #[inline(always)]
    fn on_access(&self, _: Access) {}
}

/// The hash an observer sees for `key`: SipHash-2-4 with the all-zero key, over the bytes the
/// key's `Hash` impl writes. SipHash is specified (Aumasson and Bernstein, 2012), so the value
/// is the same across maps, runs, builds and crate versions, unlike a fast hasher's output; the
/// tests pin it with test vectors. It is as stable as the key type's `Hash` impl: std's integer
/// impls write native-endian bytes, so hashes agree across machines of one byte order.
///
/// ```
/// assert_eq!(safemap::audit_hash(&42u64), safemap::audit_hash(&42u64));
/// assert_ne!(safemap::audit_hash("device-7"), safemap::audit_hash("device-8"));
/// ```
pub fn audit_hash<Q: Hash + ?Sized>(key: &Q) -> u64 {
    let mut hasher = siphasher::sip::SipHasher24::new_with_keys(0, 0);
    key.hash(&mut hasher);
    hasher.finish()
}

/// A map `M` whose every operation is reported to `O`. It implements [`ConcurrentMap`] with the
/// same guarantees as `M`.
///
/// ```
/// use std::sync::Mutex;
/// use safemap::{Access, ConcurrentMap, Observed, Operation, Outcome, ShardedMap};
///
/// let log = Mutex::new(Vec::new());
/// let map = Observed::new(ShardedMap::<u32, u32>::new(), |a: Access| log.lock().unwrap().push(a));
/// map.insert(1, 10);
/// map.get(&2);
/// let log = log.lock().unwrap();
/// assert_eq!((log[0].operation, log[0].outcome), (Operation::Insert, Outcome::Inserted));
/// assert_eq!((log[1].operation, log[1].outcome), (Operation::Get, Outcome::Miss));
/// assert_eq!(log[1].key_hash, Some(safemap::audit_hash(&2u32)));
/// ```
#[derive(Debug, Default)]
pub struct Observed<M, O = NoObserver> {
    map: M,
    observer: O,
}

impl<M, O> Observed<M, O> {
    /// Wraps `map`, reporting to `observer`.
    pub fn new(map: M, observer: O) -> Self {
        Observed { map, observer }
    }

    /// The wrapped map, for what the trait does not cover (its hasher, `write_batch`, ...).
    /// Calls made through it are not observed.
    pub fn inner(&self) -> &M {
        &self.map
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }
}

impl<M, O: Observer> Observed<M, O> {
    /// Takes the map's [`ShardBalance`] now and reports it to the observer.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, Observed, Observer, ShardBalance, ShardedMap, Access};
    ///
    /// struct Balance;
    /// impl Observer for Balance {
    ///     fn on_access(&self, _: Access) {}
    ///     fn on_balance(&self, balance: ShardBalance) {
    ///         assert_eq!(balance.entries, 1);
    ///     }
    /// }
    /// let map = Observed::new(ShardedMap::<u32, u32>::new(), Balance);
    /// map.insert(1, 1);
    /// assert_eq!(map.report_balance().largest, 1);
    /// ```
    pub fn report_balance<K, V>(&self) -> ShardBalance
    where
        M: ConcurrentMap<K, V>,
    {
        let balance = ShardBalance::of(&self.map.shard_lengths());
        self.observer.on_balance(balance);
        balance
    }

    /// Runs `call` on the map as one observed call, and reports it with the key's hash (`None`
    /// for whole-map calls) and the outcome `judge` reads from its result.
    fn observed<K, V, R>(
        &self,
        operation: Operation,
        key_hash: Option<u64>,
        call: impl FnOnce(&M) -> R,
        judge: impl FnOnce(&R) -> Outcome,
    ) -> R
    where
        M: ConcurrentMap<K, V>,
    {
        let tally = tally::begin();
        let result = call(&self.map);
        let outcome = judge(&result);
        self.deliver(
            tally,
            Access {
                operation,
                key_hash,
                outcome,
            },
        );
        result
    }

    /// [`Self::observed`] for a call on one key.
    fn keyed<K, V, R>(
        &self,
        operation: Operation,
        key_hash: u64,
        call: impl FnOnce(&M) -> R,
        judge: impl FnOnce(&R) -> Outcome,
    ) -> R
    where
        M: ConcurrentMap<K, V>,
    {
        self.observed(operation, Some(key_hash), call, judge)
    }

    /// [`Self::observed`] for a whole-map call.
    fn whole<K, V, R>(&self, operation: Operation, call: impl FnOnce(&M) -> R) -> R
    where
        M: ConcurrentMap<K, V>,
    {
        self.observed(operation, None, call, |_| Outcome::WholeMap)
    }

    fn deliver<K, V>(&self, call: Call, access: Access)
    where
        M: ConcurrentMap<K, V>,
    {
        let tally = call.end();
        if !tally.lock_wait.is_zero() {
            self.observer
                .on_lock_wait(access.operation, tally.lock_wait);
        }
        for (kind, (count, took)) in Maintenance::ALL.into_iter().zip(tally.maintenance) {
            if count > 0 {
                self.observer
                    .on_maintenance(access.operation, kind, count, took);
            }
        }
        self.observer.on_access(access);
        // After a resize the spread has changed the most; otherwise sample it now and then.
        let resized = tally.maintenance[Maintenance::Resize as usize].0 > 0;
        if census_due() || resized {
            self.report_balance();
        }
    }
}

fn found<T>(value: &Option<T>) -> Outcome {
    if value.is_some() {
        Outcome::Hit
    } else {
        Outcome::Miss
    }
}

fn removed<T>(value: &Option<T>) -> Outcome {
    if value.is_some() {
        Outcome::Removed
    } else {
        Outcome::Unchanged
    }
}

impl<K, V, M, O> ConcurrentMap<K, V> for Observed<M, O>
where
    K: Hash,
    M: ConcurrentMap<K, V>,
    O: Observer,
{
    type Snapshot = M::Snapshot;

    const CONSISTENCY: Consistency = M::CONSISTENCY;

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        self.keyed(Operation::Get, audit_hash(key), |m| m.get(key), found)
    }

    fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.keyed(
            Operation::GetWith,
            audit_hash(key),
            |m| m.get_with(key, read),
            found,
        )
    }

    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let judge = |present: &bool| {
            if *present {
                Outcome::Hit
            } else {
                Outcome::Miss
            }
        };
        self.keyed(
            Operation::ContainsKey,
            audit_hash(key),
            |m| m.contains_key(key),
            judge,
        )
    }

    fn insert(&self, key: K, value: V) -> Option<V> {
        let judge = |old: &Option<V>| {
            if old.is_some() {
                Outcome::Replaced
            } else {
                Outcome::Inserted
            }
        };
        self.keyed(
            Operation::Insert,
            audit_hash(&key),
            |m| m.insert(key, value),
            judge,
        )
    }

    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.keyed(
            Operation::Remove,
            audit_hash(key),
            |m| m.remove(key),
            removed,
        )
    }

    fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let call = |m: &M| m.remove_if(key, remove);
        self.keyed(Operation::RemoveIf, audit_hash(key), call, removed)
    }

    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        let key_hash = audit_hash(&key);
        let made = Cell::new(false);
        let call = |m: &M| {
            m.get_or_insert_with(key, || {
                made.set(true);
                make()
            })
        };
        let judge = |_: &V| {
            if made.get() {
                Outcome::Inserted
            } else {
                Outcome::Hit
            }
        };
        self.keyed(Operation::GetOrInsertWith, key_hash, call, judge)
    }

    fn try_get_or_insert_with<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<V, E>
    where
        V: Clone,
    {
        let key_hash = audit_hash(&key);
        let made = Cell::new(false);
        let call = |m: &M| {
            m.try_get_or_insert_with(key, || {
                made.set(true);
                make()
            })
        };
        let judge = |result: &Result<V, E>| match (made.get(), result.is_ok()) {
            (false, _) => Outcome::Hit,
            (true, true) => Outcome::Inserted,
            (true, false) => Outcome::Unchanged,
        };
        self.keyed(Operation::TryGetOrInsertWith, key_hash, call, judge)
    }

    fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let judge = |changed: &Option<R>| {
            if changed.is_some() {
                Outcome::Replaced
            } else {
                Outcome::Unchanged
            }
        };
        let call = |m: &M| m.update(key, change);
        self.keyed(Operation::Update, audit_hash(key), call, judge)
    }

    fn update_or_insert_with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> R {
        let key_hash = audit_hash(&key);
        let made = Cell::new(false);
        let call = |m: &M| {
            let make = || {
                made.set(true);
                make()
            };
            m.update_or_insert_with(key, make, change)
        };
        let judge = |_: &R| {
            if made.get() {
                Outcome::Inserted
            } else {
                Outcome::Replaced
            }
        };
        self.keyed(Operation::UpdateOrInsertWith, key_hash, call, judge)
    }

    fn compute(&self, key: K, update: impl FnOnce(Option<&V>) -> Action<V>) -> Option<V> {
        let key_hash = audit_hash(&key);
        let outcome = Cell::new(Outcome::Unchanged);
        let call = |m: &M| {
            m.compute(key, |current| {
                let action = update(current);
                outcome.set(match (&action, current.is_some()) {
                    (Action::Set(_), true) => Outcome::Replaced,
                    (Action::Set(_), false) => Outcome::Inserted,
                    (Action::Remove, true) => Outcome::Removed,
                    _ => Outcome::Unchanged,
                });
                action
            })
        };
        self.keyed(Operation::Compute, key_hash, call, |_| outcome.get())
    }

    fn retain(&self, keep: impl FnMut(&K, &V) -> bool) {
        self.whole(Operation::Retain, |m| m.retain(keep))
    }

    fn clear(&self) {
        self.whole(Operation::Clear, |m| m.clear())
    }

    fn len(&self) -> usize {
        self.whole(Operation::Len, |m| m.len())
    }

    /// Not reported as an access: it is the census [`Observed::report_balance`] takes.
    fn shard_lengths(&self) -> Vec<usize> {
        self.map.shard_lengths()
    }

    /// Capacity management is not reported: it is the operator's own call, not traffic.
    fn capacity(&self) -> usize {
        self.map.capacity()
    }

    /// Not reported, as [`Self::capacity`].
    fn reserve(&self, additional: usize) {
        self.map.reserve(additional)
    }

    /// Not reported, as [`Self::capacity`].
    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit()
    }

    fn for_each(&self, visit: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        self.whole(Operation::ForEach, |m| m.for_each(visit))
    }

    /// Reported once, when the iterator is made; its later copies are not observed calls.
    fn iter(&self) -> impl Iterator<Item = (K, V)> + '_
    where
        K: Clone,
        V: Clone,
    {
        let call = tally::begin();
        let entries = self.map.iter();
        let access = Access {
            operation: Operation::Iter,
            key_hash: None,
            outcome: Outcome::WholeMap,
        };
        self.deliver(call, access);
        entries
    }

    fn snapshot(&self) -> Self::Snapshot
    where
        K: Clone,
        V: Clone,
    {
        self.whole(Operation::Snapshot, |m| m.snapshot())
    }
}
