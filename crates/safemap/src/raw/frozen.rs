//! [`TableSnapshot`]: the frozen copy of a table-based map's tables, taken at one instant by the
//! lock-based core (`raw::tables`) and the left-right core (`raw::left_right`).

use equivalent::Equivalent;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use super::routing::Routing;
use super::table::{Table, copy_of};
use crate::map::MapSnapshot;

/// An immutable, point-in-time copy of a [`LockedMap`](crate::LockedMap),
/// [`ShardedMap`](crate::ShardedMap) or [`ReadMostlyMap`](crate::ReadMostlyMap), returned by their
/// [`snapshot`](crate::ConcurrentMap::snapshot). Lookups take no lock.
pub struct TableSnapshot<K, V, S> {
    // Invariant: tables.len() is routing's shard count, and each key sits in the table that
    // routing picks for its hash under `hasher`.
    tables: Box<[Table<K, V>]>,
    routing: Routing,
    hasher: S,
    len: usize,
}

impl<K, V, S> TableSnapshot<K, V, S> {
    pub(crate) fn new(tables: Box<[Table<K, V>]>, routing: Routing, hasher: S) -> Self {
        let len = tables.iter().map(Table::len).sum();
        TableSnapshot {
            tables,
            routing,
            hasher,
            len,
        }
    }
}

#[allow(
    refining_impl_trait,
    reason = "a named iterator, so `&snapshot` is `IntoIterator`"
)]
impl<K: Hash + Eq, V, S: BuildHasher> MapSnapshot<K, V> for TableSnapshot<K, V, S> {
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.tables[self.routing.shard(hash)]
            .find(hash, |(k, _)| key.equivalent(k))
            .map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter<'a>(&'a self) -> TableSnapshotIter<'a, K, V>
    where
        K: 'a,
        V: 'a,
    {
        TableSnapshotIter {
            tables: self.tables.iter(),
            table: None,
        }
    }
}

/// The entries of a [`TableSnapshot`], by reference: `for (k, v) in &snapshot`.
pub struct TableSnapshotIter<'a, K, V> {
    tables: std::slice::Iter<'a, Table<K, V>>,
    table: Option<hashbrown::hash_table::Iter<'a, (K, V)>>,
}

impl<'a, K, V> Iterator for TableSnapshotIter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.table.as_mut().and_then(Iterator::next) {
                return Some((k, v));
            }
            self.table = Some(self.tables.next()?.iter());
        }
    }
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> IntoIterator for &'a TableSnapshot<K, V, S> {
    type Item = (&'a K, &'a V);
    type IntoIter = TableSnapshotIter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A copy of the copy: O(n).
impl<K: Clone, V: Clone, S: Clone> Clone for TableSnapshot<K, V, S> {
    fn clone(&self) -> Self {
        TableSnapshot {
            tables: self.tables.iter().map(copy_of).collect(),
            routing: self.routing,
            hasher: self.hasher.clone(),
            len: self.len,
        }
    }
}

impl<K: fmt::Debug + Hash + Eq, V: fmt::Debug, S: BuildHasher> fmt::Debug
    for TableSnapshot<K, V, S>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
