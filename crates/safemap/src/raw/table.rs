//! One reader-writer lock over one hashbrown table: the unit that every lock-based strategy is
//! made of.
//!
//! Callers hash the key once and pass the hash in; the table reuses it to probe, and calls `rehash`
//! (the map's hasher) only when it grows. Tables allocate through [`TableAlloc`], which is how the
//! access hook learns of resizes without a single instruction on the insert path. Every lock is
//! taken through [`LockedTable::read`] or [`LockedTable::write`] (or their `_until` forms, which
//! give up at a deadline), each of which first runs the re-entrancy check. The single-key
//! operations are functions of the locked table, so the waiting and the deadline-bounded paths
//! share one body each. Every user closure runs through [`reentry::run_inside`], so a closure that
//! calls back into its map panics instead of deadlocking. Locks are released on unwind and never
//! poisoned, and hashbrown keeps its table valid if a `Hash` or `Eq` impl panics, so a panicking
//! closure leaves the table consistent.
//!
//! Displaced values (`insert`, `remove`, `compute`) are moved out and returned, so they are
//! dropped by the caller after the lock is released.

use std::alloc::Layout;
use std::mem;
use std::ptr::NonNull;
use std::time::Instant;

use allocator_api2::alloc::{AllocError, Allocator, Global};
use crossbeam_utils::CachePadded;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::probe_hint::ProbeHint;
use crate::map::Action;
use crate::reentry::{self, MapId};
use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, acquire_timed};
use crate::tally;

/// The entries of one table.
pub(crate) type Table<K, V> = HashTable<(K, V), TableAlloc>;

/// The global allocator, telling [`tally`] when a table's memory comes and goes: a table that
/// grows allocates its new buckets, moves its entries, then frees the old, smaller buckets, all
/// within the insert that grew it, so an observed call can time its resize from the first to the
/// last, and nothing else runs on the paths that do not allocate.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TableAlloc;

// SAFETY: both methods forward to `Global` unchanged, so every block this allocator hands out is a
// `Global` block and is returned to `Global`; the tally calls around them neither touch the memory
// nor fail. The allocator is a stateless value, so its copies are interchangeable, as the trait
// requires of clones.
unsafe impl Allocator for TableAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        tally::table_allocating(layout.size());
        Global.allocate(layout)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller passes a block of this allocator, that is a `Global` block, with the
        // layout it was allocated with.
        unsafe { Global.deallocate(block, layout) };
        tally::table_freed(layout.size());
    }
}

/// A copy of `table`. Its allocation is not the start of a resize, and the access hook is told so.
pub(crate) fn copy_of<K: Clone, V: Clone>(table: &Table<K, V>) -> Table<K, V> {
    tally::copying(|| table.clone())
}

/// One lock over one table, and where the table lies, for prefetches issued before the lock.
pub(crate) struct LockedTable<K, V> {
    table: RwLock<Table<K, V>>,
    /// On a line of its own: every operation reads it before it takes the lock, and a read from
    /// the lock's line would fetch that line shared only for the lock to need it exclusive
    /// next, two transfers where one will do when another core last held the lock.
    hint: CachePadded<ProbeHint>,
}

impl<K, V> LockedTable<K, V> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        LockedTable {
            table: RwLock::new(HashTable::with_capacity_in(capacity, TableAlloc)),
            hint: CachePadded::default(),
        }
    }

    /// Where the table lies; the write functions below keep it current.
    pub(crate) fn hint(&self) -> &ProbeHint {
        &self.hint
    }

    /// Starts loading the cache lines a probe for `hash` reads first, without taking the lock.
    #[inline(always)]
    pub(crate) fn prefetch(&self, hash: u64) {
        self.hint.prefetch::<(K, V)>(hash);
    }

    /// Locks for reading, after checking that this thread is not inside a closure of `map`.
    pub(crate) fn read(&self, map: MapId) -> RwLockReadGuard<'_, Table<K, V>> {
        reentry::check(map);
        acquire_timed(|| self.table.try_read(), || self.table.read())
    }

    /// Locks for writing, after checking that this thread is not inside a closure of `map`.
    pub(crate) fn write(&self, map: MapId) -> RwLockWriteGuard<'_, Table<K, V>> {
        reentry::check(map);
        acquire_timed(|| self.table.try_write(), || self.table.write())
    }

    /// [`Self::read`], giving up at `deadline`.
    pub(crate) fn read_until(
        &self,
        map: MapId,
        deadline: Instant,
    ) -> Option<RwLockReadGuard<'_, Table<K, V>>> {
        reentry::check(map);
        self.table.try_read_until(deadline)
    }

    /// [`Self::write`], giving up at `deadline`.
    pub(crate) fn write_until(
        &self,
        map: MapId,
        deadline: Instant,
    ) -> Option<RwLockWriteGuard<'_, Table<K, V>>> {
        reentry::check(map);
        self.table.try_write_until(deadline)
    }

    /// Runs `read` on the value of the entry `is_key` picks among those with `hash`. `read` is
    /// trusted code of this crate (a clone, a presence test); user closures are wrapped by the
    /// caller with [`reentry::run_inside`].
    pub(crate) fn find<R>(
        table: &Table<K, V>,
        hash: u64,
        is_key: impl Fn(&K) -> bool,
        read: impl FnOnce(&V) -> R,
    ) -> Option<R> {
        table.find(hash, |(k, _)| is_key(k)).map(|(_, v)| read(v))
    }

    /// Inserts or replaces; a new key's position updates `hint` (the table may have grown to
    /// make room for it).
    pub(crate) fn insert(
        table: &mut Table<K, V>,
        hash: u64,
        key: K,
        value: V,
        rehash: impl Fn(&K) -> u64,
        hint: &ProbeHint,
    ) -> Option<V>
    where
        K: Eq,
    {
        match table.entry(hash, |(k, _)| *k == key, |(k, _)| rehash(k)) {
            Entry::Occupied(mut entry) => Some(mem::replace(&mut entry.get_mut().1, value)),
            Entry::Vacant(entry) => {
                hint.follow(entry.insert((key, value)));
                None
            }
        }
    }

    /// Removes the entry `is_key` picks if `remove` (already wrapped by the caller when it is
    /// user code) agrees.
    pub(crate) fn remove_if(
        table: &mut Table<K, V>,
        hash: u64,
        is_key: impl Fn(&K) -> bool,
        remove: impl FnOnce(&K, &V) -> bool,
    ) -> Option<V> {
        let entry = table.find_entry(hash, |(k, _)| is_key(k)).ok()?;
        let (k, v) = entry.get();
        if remove(k, v) {
            Some(entry.remove().0.1)
        } else {
            None
        }
    }

    pub(crate) fn get_or_insert_with(
        &self,
        map: MapId,
        hash: u64,
        key: K,
        make: impl FnOnce() -> V,
        rehash: impl Fn(&K) -> u64,
    ) -> V
    where
        K: Eq,
        V: Clone,
    {
        // Most calls find the key: answer those under the shared lock.
        let found = Self::find(&self.read(map), hash, |k| *k == key, V::clone);
        if let Some(found) = found {
            return found;
        }
        let mut table = self.write(map);
        // Re-check under the exclusive lock: another thread may have inserted it meanwhile. The
        // closure runs only here, with the lock held, which is what makes it run at most once.
        match table.entry(hash, |(k, _)| *k == key, |(k, _)| rehash(k)) {
            Entry::Occupied(entry) => entry.get().1.clone(),
            Entry::Vacant(entry) => {
                let value = reentry::run_inside(map, "get_or_insert_with", make);
                let filled = entry.insert((key, value));
                let found = filled.get().1.clone();
                self.hint.follow(filled);
                found
            }
        }
    }

    /// Runs `update` (recorded as inside `map`) on the entry for `key` and applies its action;
    /// a new key updates `hint` as in [`Self::insert`].
    pub(crate) fn compute(
        table: &mut Table<K, V>,
        map: MapId,
        hash: u64,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
        rehash: impl Fn(&K) -> u64,
        hint: &ProbeHint,
    ) -> Option<V>
    where
        K: Eq,
    {
        // find_entry, unlike entry, does not grow the table when the key is absent and the
        // closure decides to keep it absent.
        match table.find_entry(hash, |(k, _)| *k == key) {
            Ok(mut entry) => {
                match reentry::run_inside(map, "compute", || update(Some(&entry.get().1))) {
                    Action::Keep => None,
                    Action::Set(value) => Some(mem::replace(&mut entry.get_mut().1, value)),
                    Action::Remove => Some(entry.remove().0.1),
                }
            }
            Err(absent) => {
                if let Action::Set(value) = reentry::run_inside(map, "compute", || update(None)) {
                    let filled = absent
                        .into_table()
                        .insert_unique(hash, (key, value), |(k, _)| rehash(k));
                    hint.follow(filled);
                }
                None
            }
        }
    }

    pub(crate) fn retain(&self, map: MapId, keep: &mut impl FnMut(&K, &V) -> bool) {
        let mut table = self.write(map);
        // Values removed here are dropped under the lock; the record makes a `Drop` impl that
        // calls back into the map panic rather than hang.
        reentry::run_inside(map, "retain", || table.retain(|(k, v)| keep(k, v)));
    }

    /// A copy of the table, taken under the shared lock.
    pub(crate) fn copy(&self, map: MapId) -> Table<K, V>
    where
        K: Clone,
        V: Clone,
    {
        copy_of(&self.read(map))
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn the_probe_hint_shares_no_cache_line_with_the_lock() {
        type Shard = LockedTable<u64, u64>;
        let lines = |start: usize, len: usize| start / 64..(start + len).div_ceil(64);
        let lock = lines(
            offset_of!(Shard, table),
            size_of::<RwLock<Table<u64, u64>>>(),
        );
        let hint = lines(offset_of!(Shard, hint), size_of::<ProbeHint>());
        assert!(
            lock.end <= hint.start || hint.end <= lock.start,
            "{lock:?} {hint:?}"
        );
    }
}
