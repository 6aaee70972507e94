//! [`ReadMostlyMap`]: Go's `sync.Map` method set, on shards of two-copy hash tables.
//!
//! Readers use one copy of their key's shard with no lock and no write to any shared cache line;
//! the shard's writer changes the other copy, switches readers over, waits for the last reader of
//! the old copy, and repeats the change there ([`raw::left_right`](crate::raw::left_right)).
//! Writes cost two hash-table operations and a short wait, never a copy of the map: there is no
//! promotion step, so no O(n) cliff when new keys arrive, a resize rehashes one shard only, and
//! values are stored inline, not boxed.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;

use crate::DefaultHashBuilder;
use crate::map::{Action, ConcurrentMap, Consistency, Cost, WholeMap};
use crate::raw::left_right::{LeftRight, Writer};
use crate::raw::probe_hint::ProbeHint;
use crate::raw::shards::Routing;
use crate::raw::snapshot::TableSnapshot;
use crate::raw::table::{LockedTable, Table, copy_of};
use crate::reentry::{self, MapId};

/// A map for read-mostly data with Go's `sync.Map` API: reads never take a lock and never
/// write a shared cache line, so they scale with cores; writes are serialized per shard (as in
/// [`ShardedMap`](crate::ShardedMap)) and cost about two ordinary hash-map writes.
///
/// It keeps two copies of every entry (twice the memory of [`ShardedMap`](crate::ShardedMap)),
/// which is how readers avoid locks: a writer changes the copy no one reads, then switches.
/// A writer waits for readers still in the old copy, so a [`get_with`](ConcurrentMap::get_with)
/// closure that blocks holds writers up like a read lock would.
///
/// # Coming from `sync.Map`
///
/// | Go | `ReadMostlyMap` |
/// |---|---|
/// | `Load(k)` | [`get`](ConcurrentMap::get), or [`get_with`](ConcurrentMap::get_with) without a clone |
/// | `Store(k, v)` | [`insert`](ConcurrentMap::insert) |
/// | `LoadOrStore(k, v)` | [`get_or_insert`](Self::get_or_insert), or [`get_or_insert_with`](ConcurrentMap::get_or_insert_with) to build the value only when needed |
/// | `LoadAndDelete(k)` | [`remove`](ConcurrentMap::remove) |
/// | `Delete(k)` | [`remove`](ConcurrentMap::remove) |
/// | `Swap(k, v)` | [`insert`](ConcurrentMap::insert), which returns the previous value |
/// | `CompareAndSwap(k, old, new)` | [`compare_and_swap`](Self::compare_and_swap) |
/// | `CompareAndDelete(k, old)` | [`compare_and_remove`](Self::compare_and_remove) |
/// | `Range(f)` | [`for_each`](ConcurrentMap::for_each), over a consistent copy |
/// | `Clear()` | [`clear`](ConcurrentMap::clear) |
/// | (none) | [`len`](ConcurrentMap::len), exact |
///
/// Unlike `sync.Map`, values keep their type (no `interface{}` boxing), `len` exists, and a new
/// key never triggers an O(n) promotion.
///
/// ```
/// use safemap::{ConcurrentMap, ReadMostlyMap};
///
/// let sessions: ReadMostlyMap<u64, String> = ReadMostlyMap::new();
/// assert_eq!(sessions.get_or_insert(7, "alice".to_string()), ("alice".to_string(), false));
/// assert_eq!(sessions.get_or_insert(7, "bob".to_string()), ("alice".to_string(), true));
/// assert!(sessions.compare_and_swap(&7, &"alice".to_string(), "carol".to_string()));
/// assert!(!sessions.compare_and_remove(&7, &"alice".to_string()));
/// assert_eq!(sessions.get(&7).as_deref(), Some("carol"));
/// assert_eq!(sessions.len(), 1);
/// ```
pub struct ReadMostlyMap<K, V, S = DefaultHashBuilder> {
    hasher: S,
    core: LeftRight<K, V>,
}

impl<K, V> ReadMostlyMap<K, V> {
    /// An empty map with a randomly seeded hasher.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<K, V, S> ReadMostlyMap<K, V, S> {
    /// An empty map that hashes with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        ReadMostlyMap {
            hasher,
            core: LeftRight::new(crate::default_shard_count()),
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

impl<K, V, S> ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Go's `LoadOrStore`: the value for `key` and `true` if it was present, else stores `value`
    /// and returns it with `false`.
    pub fn get_or_insert(&self, key: K, value: V) -> (V, bool) {
        let mut fresh = Some(value);
        let stored = self.get_or_insert_with(key, || fresh.take().expect("runs at most once"));
        (stored, fresh.is_some())
    }

    /// Go's `CompareAndSwap`: stores `new` for `key` if its value equals `current`; returns
    /// whether it did. Calling back into the same map from `PartialEq` panics.
    pub fn compare_and_swap<Q>(&self, key: &Q, current: &V, new: V) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PartialEq,
    {
        let hash = self.hash(key);
        let id = self.id();
        self.write(hash, |writer| {
            let matches = LockedTable::find(
                writer.table(),
                hash,
                |k| k.borrow() == key,
                |v| reentry::run_inside(id, "compare_and_swap", || v == current),
            );
            if matches != Some(true) {
                return (false, None);
            }
            let replace = |table: &mut Table<K, V>, value| {
                let (_, slot) = table.find_mut(hash, |(k, _)| k.borrow() == key)?;
                Some(mem::replace(slot, value))
            };
            let copy = new.clone();
            let displaced = writer.apply(|t, _| replace(t, copy), |t, _| replace(t, new));
            (true, Some(displaced))
        })
    }

    /// Go's `CompareAndDelete`: removes `key` if its value equals `current`; returns whether it
    /// did.
    pub fn compare_and_remove<Q>(&self, key: &Q, current: &V) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: PartialEq,
    {
        self.remove_if(key, |_, v| v == current).is_some()
    }

    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Runs `read` (trusted code of this crate) on the value for `key`.
    #[inline]
    fn read<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        reentry::check(self.id());
        let hash = self.hash(key);
        let shard = self.core.shard_of(hash);
        self.core.prefetch(shard, hash);
        self.core.read(shard, |table| {
            LockedTable::find(table, hash, |k: &K| k.borrow() == key, read)
        })
    }

    /// Runs `change` with the writer lock of the shard of `hash`; what it displaced (`D`) is
    /// dropped after the lock is released.
    fn write<R, D>(&self, hash: u64, change: impl FnOnce(&mut Writer<'_, K, V>) -> (R, D)) -> R {
        reentry::check(self.id());
        let mut writer = self.core.write(self.core.shard_of(hash));
        let (result, displaced) = change(&mut writer);
        drop(writer);
        drop(displaced);
        result
    }

    /// [`Self::write`] with every shard's writer lock: nothing changes meanwhile.
    fn write_all<R, D>(&self, change: impl FnOnce(&mut [Writer<'_, K, V>]) -> (R, D)) -> R {
        reentry::check(self.id());
        let mut writers = self.core.write_all();
        let (result, displaced) = change(&mut writers);
        drop(writers);
        drop(displaced);
        result
    }

    /// Stores `value` for `key` in both copies; returns the displaced values.
    fn insert_both(
        &self,
        writer: &mut Writer<'_, K, V>,
        hash: u64,
        key: K,
        value: V,
    ) -> (Option<V>, Option<V>) {
        let rehash = |k: &K| self.hasher.hash_one(k);
        let (key_copy, value_copy) = (key.clone(), value.clone());
        writer.apply(
            |t, hint| LockedTable::insert(t, hash, key_copy, value_copy, rehash, hint),
            |t, hint| LockedTable::insert(t, hash, key, value, rehash, hint),
        )
    }

    /// Removes the entry for `key` from both copies; returns the removed values.
    fn remove_both<Q>(writer: &mut Writer<'_, K, V>, hash: u64, key: &Q) -> (Option<V>, Option<V>)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let remove = |t: &mut Table<K, V>, _: &ProbeHint| {
            LockedTable::remove_if(t, hash, |k| k.borrow() == key, |_, _| true)
        };
        writer.apply(remove, remove)
    }
}

impl<K, V, S> ConcurrentMap<K, V> for ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    type Snapshot = TableSnapshot<K, V, S>;

    // `retain` and `clear` hold every shard's writer lock, but readers never wait for writer
    // locks: they can see one shard changed before another. `len` and snapshots only need the
    // locks, so they are exact.
    const CONSISTENCY: Consistency = Consistency {
        len: WholeMap::Atomic,
        for_each: WholeMap::Atomic,
        retain: WholeMap::WeaklyConsistent,
        clear: WholeMap::WeaklyConsistent,
        snapshot_cost: Cost::Linear,
        insert_closure_blocks_shard: true,
    };

    crate::raw::reads_through_read!();

    fn insert(&self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        self.write(hash, |writer| self.insert_both(writer, hash, key, value))
    }

    fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let id = self.id();
        self.write(hash, |writer| {
            let entry = writer.table().find(hash, |(k, _)| k.borrow() == key);
            let approved =
                entry.is_some_and(|(k, v)| reentry::run_inside(id, "remove_if", || remove(k, v)));
            if approved {
                Self::remove_both(writer, hash, key)
            } else {
                (None, None)
            }
        })
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
        self.write(hash, |writer| {
            if let Some((_, present)) = writer.table().find(hash, |(k, _)| *k == key) {
                return (present.clone(), (None, None));
            }
            let value = reentry::run_inside(id, "get_or_insert_with", make);
            let stored = value.clone();
            (stored, self.insert_both(writer, hash, key, value))
        })
    }

    fn compute(&self, key: K, update: impl FnOnce(Option<&V>) -> Action<V>) -> Option<V> {
        let hash = self.hash(&key);
        let id = self.id();
        self.write(hash, |writer| {
            let (action, present) = {
                let current = writer
                    .table()
                    .find(hash, |(k, _)| *k == key)
                    .map(|(_, v)| v);
                let action = reentry::run_inside(id, "compute", || update(current));
                (action, current.is_some())
            };
            match action {
                Action::Keep => (None, None),
                Action::Set(value) => self.insert_both(writer, hash, key, value),
                Action::Remove if present => Self::remove_both(writer, hash, &key),
                Action::Remove => (None, None),
            }
        })
    }

    fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let id = self.id();
        self.write_all(|writers| {
            let mut removed = Vec::new();
            for writer in writers {
                // Decide on the current entries, once each, then remove from both copies.
                let doomed: Vec<(u64, K)> = reentry::run_inside(id, "retain", || {
                    (writer.table().iter())
                        .filter(|(k, v)| !keep(k, v))
                        .map(|(k, _)| (self.hasher.hash_one(k), k.clone()))
                        .collect()
                });
                if doomed.is_empty() {
                    continue;
                }
                let remove_all = |t: &mut Table<K, V>, _: &ProbeHint| -> Vec<V> {
                    (doomed.iter())
                        .filter_map(|(hash, key)| {
                            LockedTable::remove_if(t, *hash, |k| k == key, |_, _| true)
                        })
                        .collect()
                };
                removed.push(writer.apply(remove_all, remove_all));
            }
            ((), removed)
        })
    }

    fn clear(&self) {
        self.write_all(|writers| {
            let emptied: Vec<_> = (writers.iter_mut())
                .filter(|writer| !writer.table().is_empty())
                .map(|writer| writer.apply(|t, _| mem::take(t), |t, _| mem::take(t)))
                .collect();
            ((), emptied)
        })
    }

    fn len(&self) -> usize {
        self.write_all(|writers| (writers.iter().map(|w| w.table().len()).sum(), ()))
    }

    fn shard_lengths(&self) -> Vec<usize> {
        reentry::check(self.id());
        (0..self.core.shard_count())
            .map(|shard| self.core.read(shard, |table| table.len()))
            .collect()
    }

    fn for_each(&self, mut visit: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        let copy = self.snapshot();
        crate::MapSnapshot::iter(&copy).for_each(|(k, v)| visit(k, v));
    }

    fn snapshot(&self) -> Self::Snapshot
    where
        K: Clone,
        V: Clone,
    {
        let tables = self.write_all(|writers| {
            let tables = writers.iter().map(|w| copy_of(w.table())).collect();
            (tables, ())
        });
        let routing = Routing::new(self.core.shard_count());
        TableSnapshot::new(tables, routing, self.hasher.clone())
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for ReadMostlyMap<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Shard by shard, as readers do: formatting holds no writer lock.
        reentry::check(self.id());
        let mut map = f.debug_map();
        for shard in 0..self.core.shard_count() {
            self.core.read(shard, |table| {
                map.entries(table.iter().map(|(k, v)| (k, v)));
            });
        }
        map.finish()
    }
}

impl<K, V, S: Default> Default for ReadMostlyMap<K, V, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, V, S> Extend<(K, V)> for ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (k, v) in entries {
            self.insert(k, v);
        }
    }
}

impl<K, V, S> FromIterator<(K, V)> for ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone + Default,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = Self::default();
        map.extend(entries);
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type AddKey = fn(&ReadMostlyMap<u64, u64>, u64);

    #[test]
    fn every_way_of_adding_a_key_keeps_both_copies_probe_hints_current() {
        let adders: [AddKey; 3] = [
            |map, key| assert_eq!(map.insert(key, key), None),
            |map, key| assert_eq!(map.get_or_insert_with(key, || key), key),
            |map, key| assert_eq!(map.compute(key, |_| Action::Set(key)), None),
        ];
        for add in adders {
            let map = ReadMostlyMap::new();
            for key in 0..5000 {
                add(&map, key);
            }
            assert!(map.core.hints_current());
        }
    }
}
