//! One hashbrown table of entries and the operations on it: the vocabulary every table-based core
//! speaks, whether the table sits behind a lock (`raw::locked_table`) or is one copy of a
//! left-right pair (`raw::left_right`).
//!
//! Callers hash the key once and pass a [`Probe`] (or the hash with an owned key); a table reuses
//! the hash to probe, and calls `rehash` (the map's hasher) only when it grows. Each insertion of
//! a new key updates the table's [`ProbeHint`], which is where tables grow. Tables allocate
//! through [`TableAlloc`], which is how the access hook learns of resizes without a single
//! instruction on the insert path. hashbrown keeps a table valid if a `Hash` or `Eq` impl panics,
//! so a panicking closure leaves it consistent.
//!
//! Displaced values (`insert`, `remove_if`, `compute`, `retain`) are moved out and returned, so
//! that the caller drops them after releasing its lock.

use std::alloc::Layout;
use std::mem;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Global};
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::core::Probe;
use super::probe_hint::ProbeHint;
use crate::map::Action;
use crate::tally;

/// The entries of one table.
pub(crate) type Table<K, V> = HashTable<(K, V), TableAlloc>;

/// The global allocator, telling [`tally`] when a table's memory comes and goes: a table that
/// grows allocates its new buckets, moves its entries, then frees the old, smaller buckets, all
/// within the insert that grew it, so an observed call can time its resize from the first to the
/// last, and nothing else runs on the paths that do not allocate.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableAlloc;

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

/// Makes room in `table` for `additional` more entries and tells `hint` where the table now lies.
pub(crate) fn reserve<K, V>(
    table: &mut Table<K, V>,
    additional: usize,
    rehash: impl Fn(&K) -> u64,
    hint: &ProbeHint,
) {
    table.reserve(additional, |(k, _)| rehash(k));
    hint.learn(table);
}

/// Shrinks `table` to what its entries need and tells `hint` where the table now lies.
pub(crate) fn shrink_to_fit<K, V>(
    table: &mut Table<K, V>,
    rehash: impl Fn(&K) -> u64,
    hint: &ProbeHint,
) {
    table.shrink_to_fit(|(k, _)| rehash(k));
    hint.learn(table);
}

/// Appends clones of every entry of `table` to `out` (a chunk of an iteration), growing it at
/// most once.
pub(crate) fn clone_into<K: Clone, V: Clone>(table: &Table<K, V>, out: &mut Vec<(K, V)>) {
    out.reserve(table.len());
    out.extend(table.iter().cloned());
}

/// Runs `read` on the value of the entry `probe` finds.
#[inline]
pub(crate) fn find<K, V, R>(
    table: &Table<K, V>,
    probe: impl Probe<K>,
    read: impl FnOnce(&V) -> R,
) -> Option<R> {
    table
        .find(probe.hash(), |(k, _)| probe.matches(k))
        .map(|(_, v)| read(v))
}

/// Inserts or replaces; a new key's position updates `hint` (the table may have grown to make
/// room for it).
#[inline(always)]
pub(crate) fn insert<K: Eq, V>(
    table: &mut Table<K, V>,
    hash: u64,
    key: K,
    value: V,
    rehash: impl Fn(&K) -> u64,
    hint: &ProbeHint,
) -> Option<V> {
    match table.entry(hash, |(k, _)| *k == key, |(k, _)| rehash(k)) {
        Entry::Occupied(mut entry) => Some(mem::replace(&mut entry.get_mut().1, value)),
        Entry::Vacant(entry) => {
            hint.follow(entry.insert((key, value)));
            None
        }
    }
}

/// Removes the entry `probe` finds if `remove` agrees.
#[inline]
pub(crate) fn remove_if<K, V>(
    table: &mut Table<K, V>,
    probe: impl Probe<K>,
    remove: impl FnOnce(&K, &V) -> bool,
) -> Option<V> {
    let entry = table
        .find_entry(probe.hash(), |(k, _)| probe.matches(k))
        .ok()?;
    let (k, v) = entry.get();
    if remove(k, v) {
        Some(entry.remove().0.1)
    } else {
        None
    }
}

/// Runs `change` on the value `probe` finds, in place.
#[inline]
pub(crate) fn update<K, V, R>(
    table: &mut Table<K, V>,
    probe: impl Probe<K>,
    change: impl FnOnce(&mut V) -> R,
) -> Option<R> {
    let (_, value) = table.find_mut(probe.hash(), |(k, _)| probe.matches(k))?;
    Some(change(value))
}

/// Runs `change` on the value for `key` in place, or on `make()`'s value, which is then stored
/// (so a panic in either stores nothing); a new key updates `hint`.
pub(crate) fn update_or_insert_with<K: Eq, V, R>(
    table: &mut Table<K, V>,
    hash: u64,
    key: K,
    make: impl FnOnce() -> V,
    change: impl FnOnce(&mut V) -> R,
    rehash: impl Fn(&K) -> u64,
    hint: &ProbeHint,
) -> R {
    match table.entry(hash, |(k, _)| *k == key, |(k, _)| rehash(k)) {
        Entry::Occupied(mut entry) => change(&mut entry.get_mut().1),
        Entry::Vacant(entry) => {
            let mut value = make();
            let result = change(&mut value);
            hint.follow(entry.insert((key, value)));
            result
        }
    }
}

/// Runs `update` on the entry for `key` and applies its action; a new key updates `hint`.
pub(crate) fn compute<K: Eq, V>(
    table: &mut Table<K, V>,
    hash: u64,
    key: K,
    update: impl FnOnce(Option<&V>) -> Action<V>,
    rehash: impl Fn(&K) -> u64,
    hint: &ProbeHint,
) -> Option<V> {
    // find_entry, unlike entry, does not grow the table when the key is absent and the closure
    // decides to keep it absent.
    match table.find_entry(hash, |(k, _)| *k == key) {
        Ok(mut entry) => match update(Some(&entry.get().1)) {
            Action::Keep => None,
            Action::Set(value) => Some(mem::replace(&mut entry.get_mut().1, value)),
            Action::Remove => Some(entry.remove().0.1),
        },
        Err(absent) => {
            if let Action::Set(value) = update(None) {
                let filled = absent
                    .into_table()
                    .insert_unique(hash, (key, value), |(k, _)| rehash(k));
                hint.follow(filled);
            }
            None
        }
    }
}

/// Removes the entries `keep` declines, asking once per entry, and returns them.
pub(crate) fn retain<K, V>(
    table: &mut Table<K, V>,
    keep: &mut impl FnMut(&K, &V) -> bool,
) -> Vec<(K, V)> {
    table.extract_if(|(k, v)| !keep(k, v)).collect()
}
