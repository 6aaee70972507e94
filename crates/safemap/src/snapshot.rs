//! [`SnapshotMap`]: readers load an immutable version with one atomic load; serialized writers
//! publish a new version that shares all but one path with the old.
//!
//! The version is a persistent hash trie ([`raw::trie`](crate::raw::trie)) with flat hashbrown
//! leaves, published through [`raw::published`](crate::raw::published), whose per-thread cache
//! makes a read cost one uncontended atomic load plus a lookup. A write takes the writer lock,
//! copies the path to one leaf, changes the copy and publishes it: no update is lost (there is no
//! load-copy-store race), and no write copies the whole map. [`SnapshotMap::write_batch`]
//! publishes many changes as one version. A snapshot is the current version itself: O(1), and
//! valid for as long as it is kept.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Instant;

use crate::DefaultHashBuilder;
use crate::map::{
    Action, ConcurrentMap, Consistency, Cost, DeadlineMap, MapSnapshot, TimedOut, WholeMap,
};
use crate::raw::published::{Published, Stamped, Writer};
use crate::raw::trie::Trie;
use crate::reentry::{self, MapId};
use crate::tally::{self, Maintenance};

/// A map for read-mostly data (configuration, routing tables, registries): reads never wait and
/// cost about one atomic load plus a hash-table probe, snapshots are O(1), and every operation,
/// `len` and `for_each` included, is atomic.
///
/// Writers are serialized and each copies one short path of the trie (a leaf of at most 512
/// entries and one small branch per level), so writes cost microseconds, not nanoseconds: for
/// write-heavy maps use [`ShardedMap`](crate::ShardedMap). Batch writes with
/// [`write_batch`](Self::write_batch) to publish many changes at once.
///
/// Keys and values are cloned when a write copies the leaf they share with older versions, so
/// both must be `Clone` for writes; cheap clones (integers, `Arc`s, short strings) suit it best.
///
/// ```
/// use safemap::{ConcurrentMap, MapSnapshot, SnapshotMap};
///
/// let routes: SnapshotMap<String, u16> = SnapshotMap::new();
/// routes.write_batch(|batch| {
///     batch.insert("api".to_string(), 8080);
///     batch.insert("web".to_string(), 8000);
/// });
/// let before = routes.snapshot(); // O(1), and it never changes
/// routes.insert("api".to_string(), 9090);
/// assert_eq!(before.get("api"), Some(&8080));
/// assert_eq!(routes.get("api"), Some(9090));
/// assert_eq!(routes.len(), 2);
/// ```
pub struct SnapshotMap<K, V, S = DefaultHashBuilder> {
    hasher: S,
    published: Published<Trie<K, V>>,
}

/// A [`SnapshotMap`]'s point-in-time view: the version that was current when it was taken,
/// shared, not copied.
pub struct TrieSnapshot<K, V, S = DefaultHashBuilder> {
    version: Arc<Stamped<Trie<K, V>>>,
    hasher: S,
}

/// The pending changes of a [`SnapshotMap::write_batch`]: a private copy of the map that becomes
/// the current version, all at once, when the batch closure returns.
pub struct Batch<'a, K, V, S> {
    trie: &'a mut Trie<K, V>,
    hasher: &'a S,
    changed: bool,
}

impl<K, V> SnapshotMap<K, V> {
    /// An empty map with a randomly seeded hasher.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<K, V, S> SnapshotMap<K, V, S> {
    /// An empty map that hashes with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        SnapshotMap {
            hasher,
            published: Published::new(Trie::default()),
        }
    }

    /// The map's hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    fn id(&self) -> MapId {
        MapId::of(self)
    }
}

impl<K, V, S> SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Applies every change `build` makes to its [`Batch`] as one new version: readers see all of
    /// them or none. Returns what `build` returns. Writers wait for the batch; readers do not.
    /// If `build` panics, nothing changes. Calling back into the same map from `build` panics.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, SnapshotMap};
    ///
    /// let table: SnapshotMap<u32, &str> = (0..3).map(|i| (i, "old")).collect();
    /// let replaced = table.write_batch(|batch| {
    ///     batch.remove(&0);
    ///     (1..3).filter(|k| batch.insert(*k, "new").is_some()).count()
    /// });
    /// assert_eq!(replaced, 2);
    /// assert_eq!((table.get(&0), table.get(&1), table.len()), (None, Some("new"), 2));
    /// ```
    pub fn write_batch<R>(&self, build: impl FnOnce(&mut Batch<'_, K, V, S>) -> R) -> R {
        self.write(self.lock(), |trie| {
            let mut batch = Batch {
                trie,
                hasher: &self.hasher,
                changed: false,
            };
            let result = reentry::run_inside(self.id(), "write_batch", || build(&mut batch));
            (result, batch.changed)
        })
    }

    /// Takes the writer lock, after the re-entrancy check.
    fn lock(&self) -> Writer<'_, Trie<K, V>> {
        reentry::check(self.id());
        self.published.write()
    }

    /// [`Self::lock`], giving up at `deadline`.
    fn lock_until(&self, deadline: Instant) -> Option<Writer<'_, Trie<K, V>>> {
        reentry::check(self.id());
        self.published.write_until(deadline)
    }

    /// The writer's read-modify-publish under `writer`: `change` edits a copy of the current
    /// version and says whether to publish it. The displaced version is dropped after the lock is
    /// released.
    fn write<R>(
        &self,
        mut writer: Writer<'_, Trie<K, V>>,
        change: impl FnOnce(&mut Trie<K, V>) -> (R, bool),
    ) -> R {
        let (result, displaced) = tally::maintain(Maintenance::Publish, || {
            let mut next = Trie::clone(&writer.current());
            let (result, changed) = change(&mut next);
            ((result, changed.then(|| writer.publish(next))), changed)
        });
        drop(writer);
        drop(displaced);
        result
    }

    fn insert_locked(&self, writer: Writer<'_, Trie<K, V>>, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        self.write(writer, |trie| {
            (trie.insert(hash, key, value, &self.hasher), true)
        })
    }

    fn remove_if_locked<Q>(
        &self,
        writer: Writer<'_, Trie<K, V>>,
        key: &Q,
        remove: impl FnOnce(&K, &V) -> bool,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let id = self.id();
        self.write(writer, |trie| {
            let approve = |k: &K, v: &V| reentry::run_inside(id, "remove_if", || remove(k, v));
            let removed = trie.remove_if(hash, key, approve, &self.hasher);
            let changed = removed.is_some();
            (removed.map(|(_, v)| v), changed)
        })
    }

    fn compute_locked(
        &self,
        writer: Writer<'_, Trie<K, V>>,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
    ) -> Option<V> {
        let hash = self.hash(&key);
        let id = self.id();
        self.write(writer, |trie| {
            let current = trie.get(hash, &key).map(|(_, v)| v);
            match reentry::run_inside(id, "compute", || update(current)) {
                Action::Keep => (None, false),
                Action::Set(value) => (trie.insert(hash, key, value, &self.hasher), true),
                Action::Remove => {
                    let removed = trie.remove_if(hash, &key, |_, _| true, &self.hasher);
                    let changed = removed.is_some();
                    (removed.map(|(_, v)| v), changed)
                }
            }
        })
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Runs `read` (trusted code of this crate) on the value for `key` in the current version.
    #[inline]
    fn read<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        reentry::check(self.id());
        let hash = self.hash(key);
        self.published
            .read(|trie| trie.get(hash, key).map(|(_, v)| read(v)))
    }
}

impl<K, V, S> ConcurrentMap<K, V> for SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    type Snapshot = TrieSnapshot<K, V, S>;

    const CONSISTENCY: Consistency = Consistency {
        len: WholeMap::Atomic,
        for_each: WholeMap::Atomic,
        retain: WholeMap::Atomic,
        clear: WholeMap::Atomic,
        snapshot_cost: Cost::Constant,
        insert_closure_blocks_shard: true,
    };

    crate::raw::reads_through_read!();

    fn insert(&self, key: K, value: V) -> Option<V> {
        self.insert_locked(self.lock(), key, value)
    }

    fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if_locked(self.lock(), key, remove)
    }

    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        if let Some(present) = self.read(&key, V::clone) {
            return present;
        }
        let hash = self.hash(&key);
        let id = self.id();
        self.write(self.lock(), |trie| {
            if let Some((_, present)) = trie.get(hash, &key) {
                return (present.clone(), false);
            }
            let value = reentry::run_inside(id, "get_or_insert_with", make);
            trie.insert(hash, key, value.clone(), &self.hasher);
            (value, true)
        })
    }

    fn compute(&self, key: K, update: impl FnOnce(Option<&V>) -> Action<V>) -> Option<V> {
        self.compute_locked(self.lock(), key, update)
    }

    fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let id = self.id();
        let removed = self.write(self.lock(), |trie| {
            let removed = reentry::run_inside(id, "retain", || trie.retain(&mut keep));
            let changed = !removed.is_empty();
            (removed, changed)
        });
        drop(removed);
    }

    fn clear(&self) {
        let emptied = self.write(self.lock(), |trie| {
            let changed = trie.len() != 0;
            (std::mem::take(trie), changed)
        });
        drop(emptied);
    }

    fn len(&self) -> usize {
        reentry::check(self.id());
        self.published.read(Trie::len)
    }

    fn for_each(&self, mut visit: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        reentry::check(self.id());
        let version = self.published.load();
        version.iter().for_each(|(k, v)| visit(k, v));
    }

    fn snapshot(&self) -> Self::Snapshot
    where
        K: Clone,
        V: Clone,
    {
        reentry::check(self.id());
        TrieSnapshot {
            version: self.published.load(),
            hasher: self.hasher.clone(),
        }
    }
}

/// Reads never wait, so `try_get_until` always answers at once; writes wait only for the writer
/// lock, and give up on it at the deadline.
impl<K, V, S> DeadlineMap<K, V> for SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    fn try_get_until<Q>(&self, key: &Q, _deadline: Instant) -> Result<Option<V>, TimedOut<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.get(key))
    }

    fn try_insert_until(
        &self,
        key: K,
        value: V,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<(K, V)>> {
        match self.lock_until(deadline) {
            Some(writer) => Ok(self.insert_locked(writer, key, value)),
            None => Err(TimedOut((key, value))),
        }
    }

    fn try_remove_until<Q>(&self, key: &Q, deadline: Instant) -> Result<Option<V>, TimedOut<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let writer = self.lock_until(deadline).ok_or(TimedOut(()))?;
        Ok(self.remove_if_locked(writer, key, |_, _| true))
    }

    fn try_compute_until(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<K>> {
        match self.lock_until(deadline) {
            Some(writer) => Ok(self.compute_locked(writer, key, update)),
            None => Err(TimedOut(key)),
        }
    }
}

impl<K, V, S> Batch<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// The value for `key`, with this batch's changes so far applied.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.trie
            .get(self.hasher.hash_one(key), key)
            .map(|(_, v)| v)
    }

    /// Stores `value` for `key`, returning the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.changed = true;
        let hash = self.hasher.hash_one(&key);
        self.trie.insert(hash, key, value, self.hasher)
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let removed = self.trie.remove_if(hash, key, |_, _| true, self.hasher);
        self.changed |= removed.is_some();
        removed.map(|(_, v)| v)
    }

    /// The number of entries, with this batch's changes so far applied.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    /// Whether the map would be empty if the batch ended now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V, S> MapSnapshot<K, V> for TrieSnapshot<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.version
            .get(self.hasher.hash_one(key), key)
            .map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.version.len()
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a,
    {
        self.version.iter()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for TrieSnapshot<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.version.iter()).finish()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for SnapshotMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.published.load().iter()).finish()
    }
}

impl<K, V, S: Default> Default for SnapshotMap<K, V, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

/// Publishes all the entries as one version.
impl<K, V, S> Extend<(K, V)> for SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        self.write_batch(|batch| {
            for (k, v) in entries {
                batch.insert(k, v);
            }
        });
    }
}

impl<K, V, S> FromIterator<(K, V)> for SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::default();
        map.extend(entries);
        map
    }
}
