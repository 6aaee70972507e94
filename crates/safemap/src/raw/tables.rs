//! [`Tables`]: a power-of-two set of [`LockedTable`]s, the core of `LockedMap` (one table) and
//! `ShardedMap` (many).
//!
//! # Algorithm
//! The front hashes a key once; the bits just below hashbrown's tag choose the shard
//! (`raw::routing`) and the full hash probes that shard's table.
//!
//! Before a single-key operation takes its shard's lock, it prefetches the cache lines where the
//! shard's table will start probing for the hash ([`super::probe_hint`]), so that the lock and
//! the table's memory are waited for at once rather than one after the other.
//!
//! Single-key operations lock one shard. Operations that need the whole map at one instant
//! (`len`, `clear`, `snapshot`) lock every shard in ascending index order and release them only
//! once all are held, which makes them atomic. Since every multi-shard lock is taken in the same
//! order and single-key operations hold one shard at a time, no cycle of waits can form.
//! `retain` and `for_each` visit one shard at a time and never hold two, which is why they are
//! weakly consistent with more than one shard ([`Layout`]).
//!
//! Shards are cache-padded so that two shards' locks never share a cache line.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::Flatten;
use std::marker::PhantomData;
use std::ops::Range;

use crossbeam_utils::CachePadded;

use super::core::{ATOMIC, BoundedWait, Core, Inserted, Probe, Timed, Wait, split_shards};
use super::frozen::TableSnapshot;
use super::locked_table::LockedTable;
use super::routing::{Routing, default_shard_count};
use super::table::{self, Table, copy_of};
use crate::map::{Action, Blocks, Consistency, TimedOut, WholeMap};

/// How many tables a [`Tables`] core has, and so what it can promise.
pub trait Layout {
    /// The shard count of a map built without one.
    fn default_shards() -> usize;
    /// What the core guarantees with this layout.
    const CONSISTENCY: Consistency;
}

/// One table behind one lock: every operation is atomic.
pub struct OneTable;

impl Layout for OneTable {
    fn default_shards() -> usize {
        1
    }

    const CONSISTENCY: Consistency = ATOMIC;
}

/// Many tables, each behind its own lock: `for_each` and `retain` go one shard at a time.
pub struct ManyTables;

impl Layout for ManyTables {
    fn default_shards() -> usize {
        default_shard_count()
    }

    const CONSISTENCY: Consistency = Consistency {
        for_each: WholeMap::WeaklyConsistent,
        retain: WholeMap::WeaklyConsistent,
        iter: WholeMap::WeaklyConsistent,
        closure_blocks_readers: Blocks::Shard,
        closure_blocks_writers: Blocks::Shard,
        ..ATOMIC
    };
}

/// The shards of one map and how keys are routed to them.
pub struct Tables<K, V, L> {
    // Invariant: shards.len() is the shard count `routing` was made with.
    shards: Box<[CachePadded<LockedTable<K, V>>]>,
    routing: Routing,
    layout: PhantomData<L>,
}

impl<K, V, L> Tables<K, V, L> {
    /// # Panics
    /// As [`Routing::new`].
    pub(crate) fn new(shards: usize, capacity: usize) -> Self {
        let routing = Routing::new(shards);
        let per_shard = capacity.div_ceil(shards);
        Tables {
            shards: (0..shards)
                .map(|_| CachePadded::new(LockedTable::with_capacity(per_shard)))
                .collect(),
            routing,
            layout: PhantomData,
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of `hash`, whose probe's first cache lines start loading now.
    #[inline]
    fn locate(&self, hash: u64) -> &LockedTable<K, V> {
        let index = self.routing.shard(hash);
        // SAFETY: `shard` is below the shard count `routing` was made with, which is `shards.len()`
        // (the struct's invariant, set in `new` and never changed), so `index` is in bounds.
        let shard = unsafe { self.shards.get_unchecked(index) };
        shard.prefetch(hash);
        shard
    }
}

impl<K, V, L: Layout> Default for Tables<K, V, L> {
    fn default() -> Self {
        Self::new(L::default_shards(), 0)
    }
}

/// The map's hasher, as hashbrown asks for it when a table grows.
fn rehash<K: Hash>(hasher: &impl BuildHasher) -> impl Fn(&K) -> u64 + '_ {
    |k| hasher.hash_one(k)
}

impl<K: Hash + Eq, V, L: Layout> Core for Tables<K, V, L> {
    type Key = K;
    type Value = V;
    type Snapshot<S: BuildHasher> = TableSnapshot<K, V, S>;

    const CONSISTENCY: Consistency = L::CONSISTENCY;

    fn with_capacity(capacity: usize) -> Self {
        Self::new(L::default_shards(), capacity)
    }

    fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read_now().capacity())
            .sum()
    }

    fn reserve<S: BuildHasher>(&self, additional: usize, hasher: &S) {
        let per_shard = additional.div_ceil(self.shards.len());
        for shard in self.shards.iter() {
            table::reserve(
                &mut shard.write_now(),
                per_shard,
                rehash(hasher),
                shard.hint(),
            );
        }
    }

    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S) {
        for shard in self.shards.iter() {
            table::shrink_to_fit(&mut shard.write_now(), rehash(hasher), shard.hint());
        }
    }

    #[inline]
    fn get<R>(
        &self,
        wait: Wait,
        probe: impl Probe<K>,
        read: impl FnOnce(&V) -> R,
    ) -> Timed<Option<R>, ()> {
        let shard = self.locate(probe.hash());
        let table = shard.read(wait).ok_or(TimedOut(()))?;
        Ok(table::find(&table, probe, read))
    }

    #[inline]
    fn insert<S: BuildHasher>(
        &self,
        wait: Wait,
        hash: u64,
        key: K,
        value: V,
        hasher: &S,
    ) -> Inserted<K, V> {
        let shard = self.locate(hash);
        let Some(mut table) = shard.write(wait) else {
            return Err(TimedOut((key, value)));
        };
        Ok(table::insert(
            &mut table,
            hash,
            key,
            value,
            rehash(hasher),
            shard.hint(),
        ))
    }

    #[inline]
    fn remove_if<S: BuildHasher>(
        &self,
        wait: Wait,
        probe: impl Probe<K>,
        remove: impl FnOnce(&K, &V) -> bool,
        _: &S,
    ) -> Timed<Option<V>, ()> {
        let shard = self.locate(probe.hash());
        let mut table = shard.write(wait).ok_or(TimedOut(()))?;
        Ok(table::remove_if(&mut table, probe, remove))
    }

    #[inline]
    fn compute<S: BuildHasher>(
        &self,
        wait: Wait,
        hash: u64,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
        hasher: &S,
    ) -> Timed<Option<V>, K> {
        let shard = self.locate(hash);
        let Some(mut table) = shard.write(wait) else {
            return Err(TimedOut(key));
        };
        Ok(table::compute(
            &mut table,
            hash,
            key,
            update,
            rehash(hasher),
            shard.hint(),
        ))
    }

    fn update<R, S: BuildHasher>(
        &self,
        probe: impl Probe<K>,
        change: impl FnOnce(&mut V) -> R,
        _: &S,
    ) -> Option<R> {
        let shard = self.locate(probe.hash());
        table::update(&mut shard.write_now(), probe, change)
    }

    fn update_or_insert_with<R, S: BuildHasher>(
        &self,
        hash: u64,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
        hasher: &S,
    ) -> R {
        let shard = self.locate(hash);
        let mut table = shard.write_now();
        table::update_or_insert_with(
            &mut table,
            hash,
            key,
            make,
            change,
            rehash(hasher),
            shard.hint(),
        )
    }

    /// One shard at a time, in ascending order; each shard's removed entries are dropped after
    /// its lock is released.
    fn retain<S: BuildHasher>(&self, keep: &mut impl FnMut(&K, &V) -> bool, _: &S) {
        for shard in self.shards.iter() {
            let removed = table::retain(&mut shard.write_now(), keep);
            drop(removed);
        }
    }

    /// Atomic: every shard is write-locked, in ascending order, before any is emptied. The old
    /// entries are dropped after all locks are released.
    fn clear(&self) {
        let mut tables: Vec<_> = self.shards.iter().map(|shard| shard.write_now()).collect();
        let old: Vec<_> = (tables.iter_mut())
            .map(|table| std::mem::take(&mut **table))
            .collect();
        drop(tables);
        drop(old);
    }

    /// Exact: every shard is read-locked, in ascending order, before any count is read.
    fn len(&self) -> usize {
        let tables: Vec<_> = self.shards.iter().map(|shard| shard.read_now()).collect();
        tables.iter().map(|table| table.len()).sum()
    }

    /// Each shard's length, read under its shared lock, one shard at a time.
    fn shard_lengths(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.read_now().len())
            .collect()
    }

    /// Point-in-time: every shard is read-locked, in ascending order, while all are copied.
    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> TableSnapshot<K, V, S>
    where
        K: Clone,
        V: Clone,
    {
        let tables: Vec<_> = self.shards.iter().map(|shard| shard.read_now()).collect();
        let copies = tables.iter().map(|table| copy_of(table)).collect();
        drop(tables);
        TableSnapshot::new(copies, self.routing, hasher.clone())
    }

    type IntoIter = Flatten<std::vec::IntoIter<Table<K, V>>>;

    /// Table by table, moving the entries.
    fn into_entries(self) -> Self::IntoIter {
        let tables: Vec<_> = (self.shards.into_vec().into_iter())
            .map(|shard| CachePadded::into_inner(shard).into_table())
            .collect();
        tables.into_iter().flatten()
    }

    /// The shards still to copy.
    type Cursor = Range<usize>;

    fn cursor(&self) -> Range<usize> {
        0..self.shards.len()
    }

    fn split_cursor(&self, shards: &mut Range<usize>) -> Option<Range<usize>> {
        split_shards(shards)
    }

    /// One shard at a time, copied under its shared lock: with one table, the whole map at once.
    fn next_chunk(&self, shards: &mut Range<usize>) -> Option<Vec<(K, V)>>
    where
        K: Clone,
        V: Clone,
    {
        let shard = self.shards.get(shards.next()?)?;
        Some(table::cloned(&shard.read_now()))
    }

    /// Every shard is read-locked, in ascending order, while all are copied, as for a snapshot.
    fn duplicate(&self) -> Self
    where
        K: Clone,
        V: Clone,
    {
        let tables: Vec<_> = self.shards.iter().map(|shard| shard.read_now()).collect();
        let copies: Vec<_> = tables.iter().map(|table| copy_of(table)).collect();
        drop(tables);
        Tables {
            shards: (copies.into_iter())
                .map(|copy| CachePadded::new(LockedTable::from_table(copy)))
                .collect(),
            routing: self.routing,
            layout: PhantomData,
        }
    }

    /// One shard at a time.
    fn debug_entries(&self, out: &mut fmt::DebugMap<'_, '_>)
    where
        K: fmt::Debug,
        V: fmt::Debug,
    {
        for shard in self.shards.iter() {
            out.entries(shard.read_now().iter().map(|(k, v)| (k, v)));
        }
    }
}

/// Every wait in this core is for a shard's lock.
impl<K: Hash + Eq, V, L: Layout> BoundedWait for Tables<K, V, L> {}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::map::DefaultHashBuilder;
    use crate::raw::probe_hint::ProbeHint;

    type Set = Tables<u64, u64, ManyTables>;
    type AddKey<'a> = dyn Fn(&Set, u64) + 'a;

    /// Every shard's hint matches its table (an empty table, which some hash seeds leave, has no
    /// layout to match).
    fn assert_hints_current(set: &Set) {
        for shard in set.shards.iter() {
            let table = shard.read_now();
            if let Some(layout) = ProbeHint::layout_of(&table) {
                assert_eq!(
                    shard.hint().current(),
                    layout,
                    "a shard of {} entries",
                    table.len()
                );
            }
        }
    }

    #[test]
    fn every_way_of_adding_a_key_keeps_the_probe_hints_current() {
        let hasher = DefaultHashBuilder::default();
        let h = |key: u64| hasher.hash_one(key);
        let later = Wait::Until(Instant::now() + Duration::from_secs(60));
        let adders: [&AddKey; 5] = [
            &|set, key| {
                assert_eq!(
                    set.insert(Wait::Forever, h(key), key, key, &hasher),
                    Ok(None)
                )
            },
            &|set, key| {
                let made = set.try_get_or_insert_with(h(key), key, || Ok::<_, ()>(key), &hasher);
                assert_eq!(made, Ok(key));
            },
            &|set, key| {
                let added = set.compute(Wait::Forever, h(key), key, |_| Action::Set(key), &hasher);
                assert_eq!(added, Ok(None));
            },
            &|set, key| assert_eq!(set.insert(later, h(key), key, key, &hasher), Ok(None)),
            &|set, key| {
                let added = set.compute(later, h(key), key, |_| Action::Set(key), &hasher);
                assert_eq!(added, Ok(None));
            },
        ];
        for add in adders {
            let set = Tables::new(4, 0);
            for key in 0..5000 {
                add(&set, key);
            }
            assert_hints_current(&set);
            // A copy's hints learn its tables' layout.
            assert_hints_current(&set.duplicate());
        }
    }
}
