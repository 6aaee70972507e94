//! One reader-writer lock over one [`Table`], with the table's [`ProbeHint`] beside it: the unit
//! the lock-based core (`raw::tables`) is made of.
//!
//! Every lock is taken through [`LockedTable::read`] or [`LockedTable::write`] with a [`Wait`]:
//! waiting forever (a contended wait is timed for the access hook, see `tally::acquire_timed`) or
//! giving up at a deadline. Locks are `parking_lot`'s, released on unwind and never poisoned, so a
//! panicking closure leaves the table usable.

use crossbeam_utils::CachePadded;

use super::core::Wait;
use super::probe_hint::ProbeHint;
use super::table::{Table, TableAlloc};
use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use crate::tally::acquire_timed;

/// One lock over one table, and where the table lies, for prefetches issued before the lock.
pub(crate) struct LockedTable<K, V> {
    table: RwLock<Table<K, V>>,
    /// On a line of its own: every operation reads it before it takes the lock, and a read from
    /// the lock's line would fetch that line shared only for the lock to need it exclusive
    /// next, two transfers where one will do when another core last held the lock.
    hint: CachePadded<ProbeHint>,
}

/// An empty table, which allocates nothing until it holds an entry.
impl<K, V> Default for LockedTable<K, V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<K, V> LockedTable<K, V> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        LockedTable {
            table: RwLock::new(Table::with_capacity_in(capacity, TableAlloc)),
            hint: CachePadded::default(),
        }
    }

    /// A lock over `table`, a copy, whose layout the hint learns.
    pub(crate) fn from_table(table: Table<K, V>) -> Self {
        let hint = CachePadded::<ProbeHint>::default();
        hint.learn(&table);
        LockedTable {
            table: RwLock::new(table),
            hint,
        }
    }

    /// The table, lock and hint gone.
    pub(crate) fn into_table(self) -> Table<K, V> {
        self.table.into_inner()
    }

    /// Where the table lies; the insertions in `raw::table` keep it current.
    pub(crate) fn hint(&self) -> &ProbeHint {
        &self.hint
    }

    /// Starts loading the cache lines a probe for `hash` reads first, without taking the lock.
    #[inline(always)]
    pub(crate) fn prefetch(&self, hash: u64) {
        self.hint.prefetch::<(K, V)>(hash);
    }

    /// Locks for reading, or gives up (`None`) at the deadline `wait` names.
    #[inline]
    pub(crate) fn read(&self, wait: Wait) -> Option<RwLockReadGuard<'_, Table<K, V>>> {
        match wait {
            Wait::Forever => Some(self.read_now()),
            Wait::Until(deadline) => self.table.try_read_until(deadline),
        }
    }

    /// Locks for writing, or gives up (`None`) at the deadline `wait` names.
    #[inline]
    pub(crate) fn write(&self, wait: Wait) -> Option<RwLockWriteGuard<'_, Table<K, V>>> {
        match wait {
            Wait::Forever => Some(self.write_now()),
            Wait::Until(deadline) => self.table.try_write_until(deadline),
        }
    }

    /// [`Self::read`], waiting as long as it takes.
    #[inline]
    pub(crate) fn read_now(&self) -> RwLockReadGuard<'_, Table<K, V>> {
        acquire_timed(|| self.table.try_read(), || self.table.read())
    }

    /// [`Self::write`], waiting as long as it takes.
    #[inline]
    pub(crate) fn write_now(&self) -> RwLockWriteGuard<'_, Table<K, V>> {
        acquire_timed(|| self.table.try_write(), || self.table.write())
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
