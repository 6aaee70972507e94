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
//! Shards are cache-padded so that two shards' locks never share a cache line, and each is made
//! by the first write routed to it ([`LazyShards`]): an empty map holds a pointer per shard, and a
//! shard that was never made reads as empty. The atomic whole-map operations freeze the set while
//! they lock every made shard, so no shard appears behind them.

use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::core::{ATOMIC, BoundedWait, Core, Timed, Wait, waited};
use super::entry::{EntryOp, Probe, Target};
use super::frozen::TableSnapshot;
use super::lazy_shards::LazyShards;
use super::locked_table::LockedTable;
use super::parts::{Entries, ShardTables};
use super::probe_hint::ProbeHint;
use super::routing::{Routing, default_shard_count};
use super::table::{self, Table, TableAlloc, TableEntry, copy_of};
use crate::map::{Blocks, Consistency, TimedOut, WholeMap};
use crate::sync::RwLockWriteGuard;

type TableWriteGuard<'a, K, V> = RwLockWriteGuard<'a, Table<K, V>>;

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

type Shard<K, V> = CachePadded<LockedTable<K, V>>;

/// The shards of one map and how keys are routed to them.
pub struct Tables<K, V, L> {
    // Invariant: shards.count() is the shard count `routing` was made with.
    shards: LazyShards<Shard<K, V>>,
    routing: Routing,
    layout: PhantomData<L>,
}

impl<K, V, L> Tables<K, V, L> {
    /// `shards` shards with room for `capacity` entries among them, made now if that is more
    /// than none.
    ///
    /// # Panics
    /// As [`Routing::new`].
    pub(crate) fn new(shards: usize, capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(shards);
        Self::from_tables(Routing::new(shards), |_| {
            Some(Table::with_capacity_in(per_shard, TableAlloc))
        })
    }

    /// Shard `i` over `table(i)`'s table; a table with no room, or none, leaves its shard unmade.
    fn from_tables(routing: Routing, mut table: impl FnMut(usize) -> Option<Table<K, V>>) -> Self {
        let made = |i| {
            let table = table(i).filter(|t| t.capacity() > 0)?;
            Some(CachePadded::new(LockedTable::from_table(table)))
        };
        Tables {
            shards: LazyShards::from_fn(routing.shards(), made),
            routing,
            layout: PhantomData,
        }
    }

    /// How many shards the map routes to, made or not.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.count()
    }

    /// The shard of `hash`, if made, whose probe's first cache lines start loading now.
    #[inline(always)]
    fn locate(&self, hash: u64) -> Option<&LockedTable<K, V>> {
        let shard = self.shards.get(self.routing.shard(hash))?;
        shard.prefetch(hash);
        Some(shard)
    }

    /// Runs `read` on the value `probe` finds, under its shard's shared lock; gives up if
    /// `wait`'s deadline passes first.
    #[inline(always)]
    fn read_waiting<R>(
        &self,
        wait: Wait,
        probe: impl Probe<K>,
        read: impl FnOnce(&V) -> R,
    ) -> Timed<Option<R>, ()> {
        let Some(shard) = self.locate(probe.hash()) else {
            return Ok(None);
        };
        let table = shard.read(wait).ok_or(TimedOut(()))?;
        Ok(table::find(&table, probe, read))
    }

    /// The write lock of `hash`'s shard, made now if it was not, and the shard's hint; `None`
    /// if `wait`'s deadline passes first.
    #[inline(always)]
    fn lock_for_write(
        &self,
        hash: u64,
        wait: Wait,
    ) -> Option<(TableWriteGuard<'_, K, V>, &ProbeHint)> {
        let index = self.routing.shard(hash);
        let shard = self.shards.get_or_make(index, wait, Shard::default)?;
        shard.prefetch(hash);
        Some((shard.write(wait)?, shard.hint()))
    }

    /// Every made shard's lock, in ascending order, taken with the set frozen, so that nothing
    /// changes the map while the locks are held; `lock` takes one.
    fn lock_all<'a, G>(&'a self, lock: impl Fn(&'a LockedTable<K, V>) -> G) -> Vec<(usize, G)> {
        let _frozen = self.shards.freeze();
        self.shards
            .made()
            .map(|(i, shard)| (i, lock(shard)))
            .collect()
    }

    /// One table per shard, in order: a copy of each made shard's (taken with all of them
    /// locked) and an empty one for each unmade shard.
    fn copies(&self) -> Vec<Table<K, V>>
    where
        K: Clone,
        V: Clone,
    {
        let tables = self.lock_all(LockedTable::read_now);
        let mut copies: Vec<_> = (0..self.shard_count())
            .map(|_| Table::new_in(TableAlloc))
            .collect();
        for (i, table) in &tables {
            copies[*i] = copy_of(table);
        }
        copies
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

impl<K: Hash + Eq, V, L: Layout> Entries for Tables<K, V, L> {
    type Key = K;
    type Value = V;
}

/// Readers take a shard's shared lock.
impl<K: Hash + Eq, V, L: Layout> ShardTables for Tables<K, V, L> {
    fn shard_count(&self) -> usize {
        Tables::shard_count(self)
    }

    fn read_shard<R>(&self, index: usize, read: impl FnOnce(&Table<K, V>) -> R) -> Option<R> {
        Some(read(&self.shards.get(index)?.read_now()))
    }

    fn into_tables(self) -> Vec<Table<K, V>> {
        (self.shards.into_made())
            .map(|(_, shard)| CachePadded::into_inner(shard).into_table())
            .collect()
    }
}

impl<K: Hash + Eq, V, L: Layout> Core for Tables<K, V, L> {
    type Snapshot<S: BuildHasher> = TableSnapshot<K, V, S>;

    const CONSISTENCY: Consistency = L::CONSISTENCY;

    fn with_capacity(capacity: usize) -> Self {
        Self::new(L::default_shards(), capacity)
    }

    fn capacity(&self) -> usize {
        (self.shards.made())
            .map(|(_, shard)| shard.read_now().capacity())
            .sum()
    }

    /// Makes every shard, each with room for its share.
    fn reserve<S: BuildHasher>(&self, additional: usize, hasher: &S) {
        let per_shard = additional.div_ceil(self.shard_count());
        for index in 0..self.shard_count() {
            let shard = (self
                .shards
                .get_or_make(index, Wait::Forever, Shard::default))
            .expect("waits forever");
            table::reserve(
                &mut shard.write_now(),
                per_shard,
                rehash(hasher),
                shard.hint(),
            );
        }
    }

    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S) {
        for (_, shard) in self.shards.made() {
            table::shrink_to_fit(&mut shard.write_now(), rehash(hasher), shard.hint());
        }
    }

    #[inline]
    fn get<R>(&self, probe: impl Probe<K>, read: impl FnOnce(&V) -> R) -> Option<R> {
        waited(self.read_waiting(Wait::Forever, probe, read))
    }

    /// Locks the key's shard; a write that cannot store (its key is borrowed) leaves a shard
    /// that was never made unmade, and finds nothing.
    #[inline(always)]
    fn write<T, S, O>(&self, wait: Wait, target: T, hasher: &S, op: O) -> Timed<O::Output, (T, O)>
    where
        T: Target<K>,
        S: BuildHasher,
        O: EntryOp<K, V>,
    {
        let hash = target.probe().hash();
        let locked = if T::OWNS_KEY {
            self.lock_for_write(hash, wait)
        } else {
            let Some(shard) = self.locate(hash) else {
                return Ok(op.run(TableEntry::nowhere(target, hasher)));
            };
            shard.write(wait).map(|table| (table, shard.hint()))
        };
        let Some((mut table, hint)) = locked else {
            return Err(TimedOut((target, op)));
        };
        Ok(op.run(TableEntry::new(&mut table, hint, target, hasher)))
    }

    /// One shard at a time, in ascending order; each shard's removed entries are dropped after
    /// its lock is released.
    fn retain<S: BuildHasher>(&self, keep: &mut impl FnMut(&K, &V) -> bool, _: &S) {
        for (_, shard) in self.shards.made() {
            let removed = table::retain(&mut shard.write_now(), keep);
            drop(removed);
        }
    }

    /// Atomic: every made shard is write-locked, in ascending order with the set frozen, before
    /// any is emptied. The old entries are dropped after all locks are released.
    fn clear(&self) {
        let mut tables = self.lock_all(LockedTable::write_now);
        let old: Vec<_> = (tables.iter_mut())
            .map(|(_, table)| std::mem::take(&mut **table))
            .collect();
        drop(tables);
        drop(old);
    }

    /// Exact: every made shard is read-locked, in ascending order with the set frozen, before
    /// any count is read.
    fn len(&self) -> usize {
        let tables = self.lock_all(LockedTable::read_now);
        tables.iter().map(|(_, table)| table.len()).sum()
    }

    /// Point-in-time: every made shard is read-locked, as for `len`, while all are copied.
    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> TableSnapshot<K, V, S>
    where
        K: Clone,
        V: Clone,
    {
        TableSnapshot::new(self.copies().into(), self.routing, hasher.clone())
    }

    /// Copied as for a snapshot; the shards this map has not made, the copy does not either.
    fn duplicate<S: BuildHasher>(&self, _hasher: &S) -> Self
    where
        K: Clone,
        V: Clone,
    {
        let mut copies = self.copies().into_iter();
        Self::from_tables(self.routing, |_| copies.next())
    }
}

/// Every wait in this core is for a shard's lock.
impl<K: Hash + Eq, V, L: Layout> BoundedWait for Tables<K, V, L> {
    /// Readers take their shard's shared lock, and may wait for it.
    fn get_until<R>(
        &self,
        deadline: Instant,
        probe: impl Probe<K>,
        read: impl FnOnce(&V) -> R,
    ) -> Timed<Option<R>, ()> {
        self.read_waiting(Wait::Until(deadline), probe, read)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::map::{Action, DefaultHashBuilder};
    use crate::raw::probe_hint::ProbeHint;

    type Set = Tables<u64, u64, ManyTables>;
    type AddKey<'a> = dyn Fn(&Set, u64) + 'a;

    /// Every shard's hint matches its table (an empty table, which some hash seeds leave, has no
    /// layout to match).
    fn assert_hints_current(set: &Set) {
        for (_, shard) in set.shards.made() {
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
        let adders: [&AddKey; 4] = [
            &|set, key| {
                assert_eq!(
                    set.insert(Wait::Forever, h(key), key, key, &hasher),
                    Ok(None)
                )
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
            assert_hints_current(&set.duplicate(&hasher));
        }
    }
}
