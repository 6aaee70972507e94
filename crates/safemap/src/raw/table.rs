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
//! A lock-based core writes through [`TableEntry`], the key's entry in its locked table, probed
//! once per write; the left-right core changes both its copies with [`insert`] and [`remove_if`].
//! Displaced values are moved out and returned, so that the caller drops them after releasing
//! its lock.

use std::alloc::Layout;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator, Global};
use hashbrown::HashTable;
use hashbrown::hash_table::{Entry, OccupiedEntry};

use super::entry::{KeyEntry, Probe, Target, key_to_store};
use super::probe_hint::ProbeHint;
use super::release;
use crate::tally;

/// The entries of one table.
pub(crate) type Table<K, V> = HashTable<(K, V), TableAlloc>;

/// The global allocator, telling [`tally`] when a table's memory comes and goes: a table that
/// grows allocates its new buckets, moves its entries, then frees the old, smaller buckets, all
/// within the insert that grew it, so an observed call can time its resize from the first to the
/// last, and nothing else runs on the paths that do not allocate.
///
/// Buckets of a megabyte or more are freed by the release thread (`raw::release`), not by the
/// insert that grew out of them or the `clear` or drop that let them go: unmapping a large block
/// takes milliseconds, with the writer's lock held, and holds up every thread of the process that
/// maps memory meanwhile (`safemap-bench neighbour`).
#[derive(Clone, Copy, Debug, Default)]
pub struct TableAlloc;

// SAFETY: `allocate` forwards to `Global` unchanged, so every block this allocator hands out is a
// `Global` block, that is one of the global allocator; `deallocate` returns it to the global
// allocator through `release::free`, once, with its layout. The tally calls neither touch the
// memory nor fail. The allocator is a stateless value, so its copies are interchangeable, as the
// trait requires of clones.
unsafe impl Allocator for TableAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        tally::table_allocating(layout.size());
        Global.allocate(layout)
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return; // A dangling pointer from `Global`, with nothing to free.
        }
        let block = release::Allocation {
            memory: block,
            layout,
        };
        // SAFETY: the caller passes a block of this allocator, that is of the global allocator,
        // with the layout it was allocated with, frees it once and uses it no more.
        unsafe { release::free(&[block]) };
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
    // Freed here, as `shrink_to_fit` promises the memory back on return.
    release::on_this_thread(|| table.shrink_to_fit(|(k, _)| rehash(k)));
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

/// One key's entry in a write-locked table ([`KeyEntry`]): probed on first use, then kept, so a
/// write probes once. A new key's position updates the table's hint.
pub(crate) struct TableEntry<'a, K, V, T, S> {
    place: Place<'a, K, V>,
    target: T,
    hasher: &'a S,
}

/// Where a [`TableEntry`] stands.
enum Place<'a, K, V> {
    /// Not looked for yet, in a table with this hint.
    Unprobed(&'a mut Table<K, V>, &'a ProbeHint),
    /// Found.
    Present(OccupiedEntry<'a, (K, V), TableAlloc>),
    /// Looked for and not found.
    Absent(&'a mut Table<K, V>, &'a ProbeHint),
    /// There is no table (a shard never made): absent, and nowhere to store.
    Nowhere,
}

impl<'a, K, V, T, S> TableEntry<'a, K, V, T, S> {
    /// The entry `target` locates in `table`, whose hint is `hint`; `hasher` rehashes keys if
    /// the table grows.
    #[inline(always)]
    pub(crate) fn new(
        table: &'a mut Table<K, V>,
        hint: &'a ProbeHint,
        target: T,
        hasher: &'a S,
    ) -> Self {
        let place = Place::Unprobed(table, hint);
        TableEntry {
            place,
            target,
            hasher,
        }
    }

    /// The absent entry of a key whose table was never made: there is nowhere to store it.
    pub(crate) fn nowhere(target: T, hasher: &'a S) -> Self {
        TableEntry {
            place: Place::Nowhere,
            target,
            hasher,
        }
    }
}

impl<K: Hash, V, T: Target<K>, S: BuildHasher> TableEntry<'_, K, V, T, S> {
    /// Probes the table if it has not been.
    #[inline(always)]
    fn locate(&mut self) {
        if let Place::Unprobed(..) = self.place {
            let Place::Unprobed(table, hint) = mem::replace(&mut self.place, Place::Nowhere) else {
                unreachable!("just matched")
            };
            let probe = self.target.probe();
            self.place = match table.find_entry(probe.hash(), |(k, _)| probe.matches(k)) {
                Ok(present) => Place::Present(present),
                Err(absent) => Place::Absent(absent.into_table(), hint),
            };
        }
    }
}

impl<K: Hash, V, T: Target<K>, S: BuildHasher> KeyEntry<K, V> for TableEntry<'_, K, V, T, S> {
    #[inline]
    fn get(&mut self) -> Option<(&K, &V)> {
        self.locate();
        match &self.place {
            Place::Present(entry) => {
                let (k, v) = entry.get();
                Some((k, v))
            }
            _ => None,
        }
    }

    /// In place.
    #[inline]
    fn change<R>(&mut self, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        self.locate();
        match &mut self.place {
            Place::Present(entry) => Some(change(&mut entry.get_mut().1)),
            _ => None,
        }
    }

    #[inline(always)]
    fn set(self, value: V) -> Option<V> {
        let rehash = |(k, _): &(K, V)| self.hasher.hash_one(k);
        let hash = self.target.probe().hash();
        let (filled, hint) = match self.place {
            Place::Present(mut entry) => return Some(mem::replace(&mut entry.get_mut().1, value)),
            // Unprobed: one probe finds the key or the slot to fill.
            Place::Unprobed(table, hint) => {
                let probe = self.target.probe();
                match table.entry(hash, |(k, _)| probe.matches(k), rehash) {
                    Entry::Occupied(mut entry) => {
                        return Some(mem::replace(&mut entry.get_mut().1, value));
                    }
                    Entry::Vacant(slot) => (slot.insert((key_to_store(self.target), value)), hint),
                }
            }
            Place::Absent(table, hint) => {
                let entry = (key_to_store(self.target), value);
                (table.insert_unique(hash, entry, rehash), hint)
            }
            Place::Nowhere => unreachable!("a write that may store makes its table"),
        };
        hint.follow(filled);
        None
    }

    #[inline]
    fn remove(mut self) -> Option<V> {
        self.locate();
        match self.place {
            Place::Present(entry) => Some(entry.remove().0.1),
            _ => None,
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
