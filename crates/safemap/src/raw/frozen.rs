//! [`TableSnapshot`]: the frozen copy of a table-based map's tables, taken at one instant by the
//! lock-based core (`raw::tables`) and the left-right core (`raw::left_right`).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use super::routing::Routing;
use super::table::Table;
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

impl<K: Hash + Eq, V, S: BuildHasher> MapSnapshot<K, V> for TableSnapshot<K, V, S> {
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.tables[self.routing.shard(hash)]
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a,
    {
        self.tables
            .iter()
            .flat_map(|table| table.iter().map(|(k, v)| (k, v)))
    }
}

impl<K: fmt::Debug + Hash + Eq, V: fmt::Debug, S: BuildHasher> fmt::Debug
    for TableSnapshot<K, V, S>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
