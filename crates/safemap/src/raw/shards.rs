//! A power-of-two set of [`LockedTable`]s behind one hasher: the core of `LockedMap` (one shard)
//! and `ShardedMap` (many).
//!
//! # Algorithm
//! A key is hashed once. The bits just below the top seven choose the shard, and the full hash is
//! handed to that shard's table to probe with. hashbrown keys its control bytes on the top seven
//! bits and its bucket index on the low bits, so neither loses entropy to the shard choice.
//!
//! Before a single-key operation takes its shard's lock, it prefetches the cache lines where the
//! shard's table will start probing for the hash ([`super::probe_hint`]), so that the lock and
//! the table's memory are waited for at once rather than one after the other.
//!
//! Single-key operations lock one shard. Operations that need the whole map at one instant
//! (`len`, `clear`, `snapshot`) lock every shard in ascending index order and release them only
//! once all are held, which makes them atomic. Since every multi-shard lock is taken in the same
//! order and single-key operations hold one shard at a time, no cycle of waits can form.
//! `retain` and `for_each` visit one shard at a time and never hold two.
//!
//! Shards are cache-padded so that two shards' locks never share a cache line.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::snapshot::TableSnapshot;
use super::table::{LockedTable, copy_of};
use crate::map::{Action, TimedOut};
use crate::reentry::{self, MapId};

/// Most shards a map may have; beyond this the shard bits would reach into the control bits.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

/// Picks a shard from a hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Routing {
    shift: u32,
    // Invariant: mask + 1 is the shard count, a power of two no larger than MAX_SHARDS.
    mask: usize,
}

impl Routing {
    /// # Panics
    /// If `shards` is zero, not a power of two, or above [`MAX_SHARDS`].
    pub(crate) fn new(shards: usize) -> Self {
        assert!(
            shards.is_power_of_two() && shards <= MAX_SHARDS,
            "safemap: shard count must be a power of two between 1 and {MAX_SHARDS}, got {shards}"
        );
        Routing {
            shift: 64 - 7 - shards.trailing_zeros(),
            mask: shards - 1,
        }
    }

    #[inline]
    pub(crate) fn shard(self, hash: u64) -> usize {
        (hash >> self.shift) as usize & self.mask
    }
}

/// The shards of one map and the hasher that routes keys to them.
pub(crate) struct ShardSet<K, V, S> {
    // Invariant: shards.len() == routing.mask + 1.
    shards: Box<[CachePadded<LockedTable<K, V>>]>,
    routing: Routing,
    hasher: S,
}

impl<K, V, S> ShardSet<K, V, S> {
    /// # Panics
    /// As [`Routing::new`].
    pub(crate) fn new(shards: usize, capacity: usize, hasher: S) -> Self {
        let routing = Routing::new(shards);
        let per_shard = capacity.div_ceil(shards);
        ShardSet {
            shards: (0..shards)
                .map(|_| CachePadded::new(LockedTable::with_capacity(per_shard)))
                .collect(),
            routing,
            hasher,
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn hasher(&self) -> &S {
        &self.hasher
    }

    fn id(&self) -> MapId {
        MapId::of(self)
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> ShardSet<K, V, S> {
    #[inline]
    fn locate<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, &LockedTable<K, V>) {
        let hash = self.hasher.hash_one(key);
        let index = self.routing.shard(hash);
        // SAFETY: `shard` masks with `routing.mask`, and `shards.len() == routing.mask + 1`
        // (the struct's invariant, set in `new` and never changed), so `index` is in bounds.
        let shard = unsafe { self.shards.get_unchecked(index) };
        shard.prefetch(hash);
        (hash, shard)
    }

    fn rehash(&self) -> impl Fn(&K) -> u64 + '_ {
        |k| self.hasher.hash_one(k)
    }

    pub(crate) fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.locate(key);
        LockedTable::find(&shard.read(self.id()), hash, |k| k.borrow() == key, read)
    }

    /// [`Self::get_with`] for a user closure: records that it runs inside this map.
    pub(crate) fn get_with_user<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let id = self.id();
        self.get_with(key, |v| reentry::run_inside(id, "get_with", || read(v)))
    }

    pub(crate) fn insert(&self, key: K, value: V) -> Option<V> {
        let (hash, shard) = self.locate(&key);
        let rehash = self.rehash();
        LockedTable::insert(
            &mut shard.write(self.id()),
            hash,
            key,
            value,
            rehash,
            shard.hint(),
        )
    }

    pub(crate) fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.locate(key);
        LockedTable::remove_if(
            &mut shard.write(self.id()),
            hash,
            |k| k.borrow() == key,
            remove,
        )
    }

    /// [`Self::remove_if`] for a user predicate: records that it runs inside this map.
    pub(crate) fn remove_if_user<Q>(
        &self,
        key: &Q,
        remove: impl FnOnce(&K, &V) -> bool,
    ) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let id = self.id();
        self.remove_if(key, |k, v| {
            reentry::run_inside(id, "remove_if", || remove(k, v))
        })
    }

    pub(crate) fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        let (hash, shard) = self.locate(&key);
        shard.get_or_insert_with(self.id(), hash, key, make, self.rehash())
    }

    pub(crate) fn compute(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
    ) -> Option<V> {
        let (hash, shard) = self.locate(&key);
        let id = self.id();
        let hint = shard.hint();
        LockedTable::compute(
            &mut shard.write(id),
            id,
            hash,
            key,
            update,
            self.rehash(),
            hint,
        )
    }

    /// [`Self::get_with`] with `V::clone`, giving up at `deadline`.
    pub(crate) fn try_get_until<Q>(
        &self,
        key: &Q,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let (hash, shard) = self.locate(key);
        let table = shard.read_until(self.id(), deadline).ok_or(TimedOut(()))?;
        Ok(LockedTable::find(
            &table,
            hash,
            |k| k.borrow() == key,
            V::clone,
        ))
    }

    /// [`Self::insert`], giving up at `deadline`.
    pub(crate) fn try_insert_until(
        &self,
        key: K,
        value: V,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<(K, V)>> {
        let (hash, shard) = self.locate(&key);
        let Some(mut table) = shard.write_until(self.id(), deadline) else {
            return Err(TimedOut((key, value)));
        };
        Ok(LockedTable::insert(
            &mut table,
            hash,
            key,
            value,
            self.rehash(),
            shard.hint(),
        ))
    }

    /// Removal, giving up at `deadline`.
    pub(crate) fn try_remove_until<Q>(
        &self,
        key: &Q,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<()>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.locate(key);
        let mut table = shard.write_until(self.id(), deadline).ok_or(TimedOut(()))?;
        Ok(LockedTable::remove_if(
            &mut table,
            hash,
            |k| k.borrow() == key,
            |_, _| true,
        ))
    }

    /// [`Self::compute`], giving up at `deadline`.
    pub(crate) fn try_compute_until(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
        deadline: Instant,
    ) -> Result<Option<V>, TimedOut<K>> {
        let (hash, shard) = self.locate(&key);
        let Some(mut table) = shard.write_until(self.id(), deadline) else {
            return Err(TimedOut(key));
        };
        Ok(LockedTable::compute(
            &mut table,
            self.id(),
            hash,
            key,
            update,
            self.rehash(),
            shard.hint(),
        ))
    }

    /// One shard at a time, in ascending order.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        for shard in self.shards.iter() {
            shard.retain(self.id(), &mut keep);
        }
    }

    /// Copies one shard at a time and visits the copy with no lock held.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        for shard in self.shards.iter() {
            for (k, v) in shard.copy(self.id()).iter() {
                visit(k, v);
            }
        }
    }

    /// Exact: every shard is read-locked, in ascending order, before any count is read.
    pub(crate) fn len(&self) -> usize {
        let id = self.id();
        let tables: Vec<_> = self.shards.iter().map(|shard| shard.read(id)).collect();
        tables.iter().map(|table| table.len()).sum()
    }

    /// Each shard's length, read under its shared lock, one shard at a time.
    pub(crate) fn shard_lengths(&self) -> Vec<usize> {
        let id = self.id();
        self.shards
            .iter()
            .map(|shard| shard.read(id).len())
            .collect()
    }

    /// Atomic: every shard is write-locked, in ascending order, before any is emptied. The old
    /// entries are dropped after all locks are released.
    pub(crate) fn clear(&self) {
        let id = self.id();
        let mut tables: Vec<_> = self.shards.iter().map(|shard| shard.write(id)).collect();
        let old: Vec<_> = tables
            .iter_mut()
            .map(|table| std::mem::take(&mut **table))
            .collect();
        drop(tables);
        drop(old);
    }

    /// Point-in-time: every shard is read-locked, in ascending order, while all are copied.
    pub(crate) fn snapshot(&self) -> TableSnapshot<K, V, S>
    where
        K: Clone,
        V: Clone,
        S: Clone,
    {
        let id = self.id();
        let tables: Vec<_> = self.shards.iter().map(|shard| shard.read(id)).collect();
        let copies = tables.iter().map(|table| copy_of(table)).collect();
        drop(tables);
        TableSnapshot::new(copies, self.routing, self.hasher.clone())
    }

    /// Formats the entries one shard at a time.
    pub(crate) fn debug_entries(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result
    where
        K: std::fmt::Debug,
        V: std::fmt::Debug,
    {
        let mut out = f.debug_map();
        for shard in self.shards.iter() {
            out.entries(shard.read(self.id()).iter().map(|(k, v)| (k, v)));
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::DefaultHashBuilder;
    use crate::raw::probe_hint::ProbeHint;

    type Set = ShardSet<u64, u64, DefaultHashBuilder>;
    type AddKey<'a> = dyn Fn(&Set, u64) + 'a;

    /// Every shard's hint matches its table.
    fn assert_hints_current(set: &Set) {
        for shard in set.shards.iter() {
            let table = shard.read(set.id());
            assert_eq!(
                Some(shard.hint().current()),
                ProbeHint::layout_of(&table),
                "a shard of {} entries",
                table.len()
            );
        }
    }

    #[test]
    fn every_way_of_adding_a_key_keeps_the_probe_hints_current() {
        let later = Instant::now() + Duration::from_secs(60);
        let adders: [&AddKey; 5] = [
            &|set, key| assert_eq!(set.insert(key, key), None),
            &|set, key| assert_eq!(set.get_or_insert_with(key, || key), key),
            &|set, key| assert_eq!(set.compute(key, |_| Action::Set(key)), None),
            &|set, key| assert!(matches!(set.try_insert_until(key, key, later), Ok(None))),
            &|set, key| {
                let added = set.try_compute_until(key, |_| Action::Set(key), later);
                assert!(matches!(added, Ok(None)));
            },
        ];
        for add in adders {
            let set = ShardSet::new(4, 0, DefaultHashBuilder::default());
            for key in 0..5000 {
                add(&set, key);
            }
            assert_hints_current(&set);
        }
    }
}
