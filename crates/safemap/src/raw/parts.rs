//! How a core's entries are walked part by part ([`Parts`]): the copies `iter` and `par_iter`
//! take, the formatting `Debug` does, the per-part counts, and the move of every entry out.
//!
//! A core made of shards, each one table read under its shard's lock, implements [`ShardTables`]
//! and gets its walk from there, shard by shard, written once here. Other cores walk their own
//! parts (chains of a root table, leaves of one version) and implement [`Parts`] themselves.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::Flatten;
use std::ops::Range;

use super::table::{self, Table};

/// The types a core stores: the base of a core's [`Parts`] and of its `Core`.
pub trait Entries {
    /// The key type.
    type Key: Hash + Eq;
    /// The value type.
    type Value;
}

/// A core's walk over its entries, one part (a shard, a chain, a trie leaf) at a time.
pub trait Parts: Entries {
    /// The iterator [`Parts::into_entries`] returns.
    type IntoIter: Iterator<Item = (Self::Key, Self::Value)>;

    /// Every entry, moved out of the core.
    fn into_entries(self) -> Self::IntoIter;

    /// Where an iteration over this core stands.
    type Cursor;

    /// A cursor before the first part of the map.
    fn cursor(&self) -> Self::Cursor;

    /// Hands off about half of the parts `cursor` has still to visit, as a cursor of its own,
    /// for a parallel iteration to give another thread; `None` once `cursor` has one part or
    /// none left. The two cursors together visit what `cursor` would have.
    fn split_cursor(&self, cursor: &mut Self::Cursor) -> Option<Self::Cursor>;

    /// Appends copies of the entries of the next part of the map to `chunk`, advancing
    /// `cursor`; `false`, appending nothing, past the last part. Holds a lock, if any, only while
    /// it copies. Callers pass one buffer again and again, emptied, so that after the first parts
    /// a copy allocates nothing while it holds a lock.
    fn next_chunk<S: BuildHasher>(
        &self,
        cursor: &mut Self::Cursor,
        chunk: &mut Vec<(Self::Key, Self::Value)>,
        hasher: &S,
    ) -> bool
    where
        Self::Key: Clone,
        Self::Value: Clone;

    /// The number of entries in each independently locked part.
    fn shard_lengths<S: BuildHasher>(&self, hasher: &S) -> Vec<usize>;

    /// Adds every entry to `out`, as readers see them.
    fn debug_entries<S: BuildHasher>(&self, out: &mut fmt::DebugMap<'_, '_>, hasher: &S)
    where
        Self::Key: fmt::Debug,
        Self::Value: fmt::Debug;
}

/// A core of shards, each one table that its readers read under the shard's lock (or as that
/// core's readers read); its [`Parts`] go shard by shard.
pub trait ShardTables: Entries {
    /// How many shards the core routes to, made or not.
    fn shard_count(&self) -> usize;

    /// Runs `read` on shard `index`'s table as a reader; `None`, without running it, for a shard
    /// never made (it holds nothing).
    fn read_shard<R>(&self, index: usize, read: impl FnOnce(&ShardTable<Self>) -> R) -> Option<R>;

    /// Every shard's table, moved out (an unmade shard's is empty or left out).
    fn into_tables(self) -> Vec<ShardTable<Self>>;
}

/// The table of one of `C`'s shards.
pub type ShardTable<C> = Table<<C as Entries>::Key, <C as Entries>::Value>;

impl<C: ShardTables> Parts for C {
    type IntoIter = Flatten<std::vec::IntoIter<ShardTable<C>>>;

    /// Table by table, moving the entries.
    fn into_entries(self) -> Self::IntoIter {
        self.into_tables().into_iter().flatten()
    }

    /// The shards still to copy.
    type Cursor = Range<usize>;

    fn cursor(&self) -> Range<usize> {
        0..self.shard_count()
    }

    fn split_cursor(&self, shards: &mut Range<usize>) -> Option<Range<usize>> {
        if shards.len() < 2 {
            return None;
        }
        let middle = shards.start + shards.len() / 2;
        let second = middle..shards.end;
        shards.end = middle;
        Some(second)
    }

    /// One made shard at a time, copied as a reader: the shard's writers wait for the copy, and
    /// with one shard that is the whole map at once. Shards not made hold nothing, so the walk
    /// goes on to the next made one.
    fn next_chunk<S: BuildHasher>(
        &self,
        shards: &mut Range<usize>,
        chunk: &mut Vec<(C::Key, C::Value)>,
        _hasher: &S,
    ) -> bool
    where
        C::Key: Clone,
        C::Value: Clone,
    {
        shards
            .find_map(|index| self.read_shard(index, |table| table::clone_into(table, chunk)))
            .is_some()
    }

    /// Each shard's length, read as a reader, one shard at a time (0 for one not made).
    fn shard_lengths<S: BuildHasher>(&self, _hasher: &S) -> Vec<usize> {
        (0..self.shard_count())
            .map(|index| self.read_shard(index, |table| table.len()).unwrap_or(0))
            .collect()
    }

    /// One shard at a time, as readers see it.
    fn debug_entries<S: BuildHasher>(&self, out: &mut fmt::DebugMap<'_, '_>, _hasher: &S)
    where
        C::Key: fmt::Debug,
        C::Value: fmt::Debug,
    {
        for index in 0..self.shard_count() {
            self.read_shard(index, |table| {
                out.entries(table.iter().map(|(k, v)| (k, v)));
            });
        }
    }
}
