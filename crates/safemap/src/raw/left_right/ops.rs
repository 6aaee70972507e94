//! The map operations of the left-right core: each write takes its shard's writer lock and
//! makes the same change to both copies through [`Writer::apply`]; whole-map operations hold
//! every shard's writer lock, in ascending order.
//!
//! A write computes its change on the current entries first (running the user's closure once),
//! then applies it to both copies: so `compute`, `remove_if` and `get_or_insert_with` run their
//! closures exactly once, though every change is made twice. The copy made second returns the
//! displaced values, which are dropped after the writer lock is released.

use std::hash::{BuildHasher, Hash};
use std::mem;

use super::{LeftRight, Writer};
use crate::map::{Blocks, Consistency, TimedOut, WholeMap};
use crate::raw::core::{ATOMIC, Core, Timed, Wait};
use crate::raw::entry::{EntryOp, KeyEntry, Lookup, Probe, Target, key_to_store};
use crate::raw::frozen::TableSnapshot;
use crate::raw::parts::ShardTables;
use crate::raw::probe_hint::ProbeHint;
use crate::raw::routing::Routing;
use crate::raw::routing::default_shard_count;
use crate::raw::table::{self, Table, TableAlloc, copy_of};

impl<K: Hash + Eq + Clone, V: Clone> LeftRight<K, V> {
    /// The writer of the shard that holds `hash`, or `None` at the deadline `wait` names.
    fn writer(&self, hash: u64, wait: Wait) -> Option<Writer<'_, K, V>> {
        self.write(self.shard_of(hash), wait)
    }

    /// Copies of every shard's tables, in order, taken with every writer lock held (an empty
    /// table for each shard not made).
    fn copies(&self) -> Box<[Table<K, V>]> {
        let writers = self.write_all();
        let mut copies: Vec<_> = (0..self.shard_count())
            .map(|_| Table::new_in(TableAlloc))
            .collect();
        for writer in &writers {
            copies[writer.index()] = copy_of(writer.table());
        }
        copies.into()
    }

    /// Replaces the value `probe` finds with `new` if `matches` approves of the current one;
    /// returns whether it did.
    pub(crate) fn replace_if(
        &self,
        probe: impl Probe<K>,
        matches: impl FnOnce(&V) -> bool,
        new: V,
    ) -> bool {
        let mut writer = self
            .writer(probe.hash(), Wait::Forever)
            .expect("waits forever");
        if table::find(writer.table(), probe, matches) != Some(true) {
            return false;
        }
        let change = replace_both(&mut writer, probe, new);
        release(writer, change);
        true
    }
}

/// Replaces the value `probe` finds in both copies with `value`; returns the displaced values.
fn replace_both<K: Clone, V: Clone>(
    writer: &mut Writer<'_, K, V>,
    probe: impl Probe<K>,
    value: V,
) -> (Option<V>, Option<V>) {
    let replace = |table: &mut Table<K, V>, value| {
        let (_, slot) = table.find_mut(probe.hash(), |(k, _)| probe.matches(k))?;
        Some(mem::replace(slot, value))
    };
    let copy = value.clone();
    writer.apply(|t, _| replace(t, copy), |t, _| replace(t, value))
}

/// Releases `writers` (one writer, or a `Vec` of them), then drops what a change displaced in the
/// copy it changed second; returns what it displaced in the first (equal values, as the copies
/// were equal).
fn release<W, R, D>(writers: W, (result, displaced): (R, D)) -> R {
    drop(writers);
    drop(displaced);
    result
}

/// Stores `value` for `key` in both copies; returns the displaced values.
fn insert_both<K: Hash + Eq + Clone, V: Clone>(
    writer: &mut Writer<'_, K, V>,
    hash: u64,
    key: K,
    value: V,
    hasher: &impl BuildHasher,
) -> (Option<V>, Option<V>) {
    let rehash = |k: &K| hasher.hash_one(k);
    let (key_copy, value_copy) = (key.clone(), value.clone());
    writer.apply(
        |t, hint| table::insert(t, hash, key_copy, value_copy, rehash, hint),
        |t, hint| table::insert(t, hash, key, value, rehash, hint),
    )
}

/// Removes the entry `probe` finds from both copies; returns the removed values.
fn remove_both<K, V>(writer: &mut Writer<'_, K, V>, probe: impl Probe<K>) -> (Option<V>, Option<V>)
where
    K: Clone,
    V: Clone,
{
    let remove = |t: &mut Table<K, V>, _: &ProbeHint| table::remove_if(t, probe, |_, _| true);
    writer.apply(remove, remove)
}

/// One key's entry in a shard whose writer lock is held: read in the copy readers use, changed
/// in both. Values displaced from the copies wait in `displaced` until the lock is released
/// (each operation displaces at most one value from each copy).
struct BothCopies<'w, 'a, K, V, T, S> {
    writer: &'w mut Writer<'a, K, V>,
    target: T,
    hasher: &'w S,
    displaced: &'w mut (Option<V>, Option<V>),
}

/// Keeps the second copy's displaced value in `displaced`, to drop later; returns the first's.
/// A value with nothing to drop is let go at once: where it goes makes no difference.
#[inline(always)]
fn keep_second<V>(
    displaced: &mut (Option<V>, Option<V>),
    change: (Option<V>, Option<V>),
) -> Option<V> {
    if mem::needs_drop::<V>() {
        displaced.1 = change.1;
    }
    change.0
}

impl<K: Hash + Eq + Clone, V: Clone, T: Target<K>, S: BuildHasher> KeyEntry<K, V>
    for BothCopies<'_, '_, K, V, T, S>
{
    #[inline]
    fn get(&mut self) -> Option<(&K, &V)> {
        let probe = self.target.probe();
        let (k, v) = self
            .writer
            .table()
            .find(probe.hash(), |(k, _)| probe.matches(k))?;
        Some((k, v))
    }

    /// On a clone, which is then stored in both copies: `change` runs once, on a value no reader
    /// sees until it is stored.
    fn change<R>(&mut self, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        let probe = self.target.probe();
        let mut value = table::find(self.writer.table(), probe, V::clone)?;
        let result = change(&mut value);
        *self.displaced = replace_both(self.writer, probe, value);
        Some(result)
    }

    #[inline]
    fn set(self, value: V) -> Option<V> {
        let probe = self.target.probe();
        let (hash, hasher) = (probe.hash(), self.hasher);
        let change = if T::OWNS_KEY {
            insert_both(self.writer, hash, key_to_store(self.target), value, hasher)
        } else {
            replace_both(self.writer, probe, value)
        };
        keep_second(self.displaced, change)
    }

    #[inline]
    fn remove(self) -> Option<V> {
        let change = remove_both(self.writer, self.target.probe());
        keep_second(self.displaced, change)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Core for LeftRight<K, V> {
    type Snapshot<S: BuildHasher> = TableSnapshot<K, V, S>;

    // `retain` and `clear` hold every shard's writer lock, but readers never wait for writer
    // locks: they can see one shard changed before another. `len` and snapshots only need the
    // locks, so they are exact. A closure holds its shard's writer lock, which readers ignore.
    const CONSISTENCY: Consistency = Consistency {
        retain: WholeMap::WeaklyConsistent,
        clear: WholeMap::WeaklyConsistent,
        update_in_place: false,
        iter: WholeMap::WeaklyConsistent,
        closure_blocks_readers: Blocks::Nothing,
        closure_blocks_writers: Blocks::Shard,
        ..ATOMIC
    };

    fn with_capacity(capacity: usize) -> Self {
        let shards = default_shard_count();
        let per_shard = capacity.div_ceil(shards);
        let table = || Table::with_capacity_in(per_shard, TableAlloc);
        LeftRight::from_copies((0..shards).map(|_| [table(), table()]).collect())
    }

    /// Of the copies readers use, shard by shard (the other copy has as much).
    fn capacity(&self) -> usize {
        (0..self.shard_count())
            .map(|shard| self.read(shard, |table| table.capacity()))
            .sum()
    }

    /// In both copies, one shard at a time, making every shard.
    fn reserve<S: BuildHasher>(&self, additional: usize, hasher: &S) {
        let per_shard = additional.div_ceil(self.shard_count());
        let rehash = |k: &K| hasher.hash_one(k);
        let grow =
            |t: &mut Table<K, V>, hint: &ProbeHint| table::reserve(t, per_shard, rehash, hint);
        for shard in 0..self.shard_count() {
            self.write(shard, Wait::Forever)
                .expect("waits forever")
                .apply(grow, grow);
        }
    }

    /// In both copies, one made shard at a time.
    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S) {
        let rehash = |k: &K| hasher.hash_one(k);
        let shrink = |t: &mut Table<K, V>, hint: &ProbeHint| table::shrink_to_fit(t, rehash, hint);
        for shard in self.made_shards().collect::<Vec<_>>() {
            self.write(shard, Wait::Forever)
                .expect("waits forever")
                .apply(shrink, shrink);
        }
    }

    /// Never waits: readers take no lock.
    #[inline]
    fn get<R>(&self, probe: impl Probe<K>, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.read_keyed(probe.hash(), |table| table::find(table, probe, read))
    }

    fn write<T, S, O>(&self, wait: Wait, target: T, hasher: &S, op: O) -> Timed<O::Output, (T, O)>
    where
        T: Target<K>,
        S: BuildHasher,
        O: EntryOp<K, V>,
    {
        let Some(mut writer) = self.writer(target.probe().hash(), wait) else {
            return Err(TimedOut((target, op)));
        };
        let mut displaced = (None, None);
        let entry = BothCopies {
            writer: &mut writer,
            target,
            hasher,
            displaced: &mut displaced,
        };
        let output = op.run(entry);
        Ok(release(writer, (output, displaced)))
    }

    fn retain<S: BuildHasher>(&self, keep: &mut impl FnMut(&K, &V) -> bool, hasher: &S) {
        let mut writers = self.write_all();
        let mut removed = Vec::new();
        for writer in &mut writers {
            // Decide on the current entries, once each, then remove from both copies.
            let doomed: Vec<(u64, K)> = (writer.table().iter())
                .filter(|(k, v)| !keep(k, v))
                .map(|(k, _)| (hasher.hash_one(k), k.clone()))
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let remove_all = |t: &mut Table<K, V>, _: &ProbeHint| -> Vec<V> {
                (doomed.iter())
                    .filter_map(|(hash, key)| {
                        table::remove_if(t, Lookup { hash: *hash, key }, |_, _| true)
                    })
                    .collect()
            };
            removed.push(writer.apply(remove_all, remove_all));
        }
        release(writers, ((), removed));
    }

    fn clear(&self) {
        let mut writers = self.write_all();
        let emptied: Vec<_> = (writers.iter_mut())
            .filter(|writer| !writer.table().is_empty())
            .map(|writer| writer.apply(|t, _| mem::take(t), |t, _| mem::take(t)))
            .collect();
        release(writers, ((), emptied));
    }

    fn len(&self) -> usize {
        let writers = self.write_all();
        writers.iter().map(|w| w.table().len()).sum()
    }

    /// Visits a snapshot: atomic, and no lock is held while `visit` runs.
    fn for_each<S: BuildHasher>(&self, visit: &mut impl FnMut(&K, &V), _hasher: &S) {
        for table in self.copies() {
            table.iter().for_each(|(k, v)| visit(k, v));
        }
    }

    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> TableSnapshot<K, V, S> {
        let routing = Routing::new(self.shard_count());
        TableSnapshot::new(self.copies(), routing, hasher.clone())
    }

    /// Copies of every shard, taken with every writer lock held, become both copies of the new
    /// map's shards.
    fn duplicate<S: BuildHasher>(&self, _hasher: &S) -> Self {
        let copies = self
            .copies()
            .into_iter()
            .map(|table| [copy_of(&table), table]);
        LeftRight::from_copies(copies.collect())
    }
}
