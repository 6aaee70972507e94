//! [`SnapshotMap`]: a hash trie changed in place under a lock per branch, read with no lock, and
//! copied on write only where a snapshot still shares it.
//!
//! The trie is `raw::live_trie`; `raw::versioned` is the core over it. A read enters a
//! reclamation guard (a store to its own thread's slot) and walks the trie with atomic loads, so
//! readers on different cores write nothing the others write. A write passes the writers' gate,
//! locks the branch holding its key's leaf and stores a changed copy of the leaf there: writes to
//! other branches go on beside it, and the closure runs once. A snapshot closes the gate, keeps
//! the root of that moment and starts a new generation, whose writes copy any older branch they
//! meet before they change it: O(1) in the map's size (one copy of the root), and valid for as
//! long as it is kept. [`SnapshotMap::write_batch`] changes a private copy with the gate closed
//! and publishes it with one store.

use equivalent::Equivalent;
use std::hash::{BuildHasher, Hash};

use crate::front::SafeMap;
use crate::map::DefaultHashBuilder;
use crate::raw::entry::{Insert, Lookup, Owned, RemoveIf};
use crate::raw::versioned::{InCopy, Versioned};
use crate::reentry;

/// A map for read-mostly data (configuration, routing tables, registries) that needs consistent
/// snapshots: reads never wait and write nothing another thread writes, snapshots are O(1) in the
/// map's size, and every operation, `len` and `for_each` included, is atomic.
///
/// A write locks one branch of the trie (up to 16 leaves of up to 32 entries) and stores a copy of
/// its key's leaf with the change, so writes to different branches run in parallel and a write
/// costs a copy of one leaf. The first write after a snapshot to a part of the trie the snapshot
/// shares copies that part's branches first. For write-heavy maps without snapshots,
/// [`ShardedMap`](crate::ShardedMap) or [`ScalableMap`](crate::ScalableMap) write for less.
/// [`write_batch`](Self::write_batch) publishes many changes at once, all or none.
///
/// Keys and values are cloned when a write copies the leaf they sit in, so both must be `Clone`
/// for writes; cheap clones (integers, `Arc`s, short strings) suit it best.
///
/// `len` counts without stopping writes where it can; `snapshot`, `for_each` and iteration close
/// the writers' gate for a moment (writers wait; readers do not), and so do `write_batch`,
/// `extend`, `retain`, `clear` and `shrink_to_fit` for as long as they run.
///
/// A removed or replaced value is dropped once no reader or snapshot can still reach it: the
/// leaf that held it is retired, and freed in batches of up to 256 per thread (one heavy barrier
/// each). Removals leave the trie's branches in place; `shrink_to_fit` rebuilds the trie from its
/// entries, so an emptied map gives back its nodes as well as its entries. A
/// [`TrieSnapshot`](crate::TrieSnapshot) keeps what it reaches until it is dropped. An empty map
/// holds its writers' gate (a cache line per thread slot); the first write makes the map's
/// reclamation slots (about 16 KiB) and its root (256 slots, 2 KiB). The first map of this kind
/// or a [`ScalableMap`](crate::ScalableMap) that a process makes registers the process for the
/// reclamation's heavy barrier (`membarrier`; 12-20 ms where we measured), so that no write pays
/// it. Values whose drop releases something that matters (a file, a connection) should be
/// released by the caller, not by the map's drop of the value.
///
/// ```
/// use safemap::{ConcurrentMap, MapSnapshot, SnapshotMap};
///
/// let routes: SnapshotMap<String, u16> = SnapshotMap::new();
/// routes.write_batch(|batch| {
///     batch.insert("api".to_string(), 8080);
///     batch.insert("web".to_string(), 8000);
/// });
/// let before = routes.snapshot(); // O(1), and it never changes
/// routes.insert("api".to_string(), 9090);
/// assert_eq!(before.get("api"), Some(&8080));
/// assert_eq!(routes.get("api"), Some(9090));
/// assert_eq!(routes.len(), 2);
/// ```
pub type SnapshotMap<K, V, S = DefaultHashBuilder> = SafeMap<Versioned<K, V>, S>;

/// The pending changes of a [`SnapshotMap::write_batch`]: a private copy of the map that becomes
/// the current one, all at once, when the batch closure returns.
pub struct Batch<'a, K, V, S> {
    copy: InCopy<'a, K, V>,
    hasher: &'a S,
    changed: bool,
}

impl<K, V, S> SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Applies every change `build` makes to its [`Batch`] as one change of the map: readers see
    /// all of them or none. Returns what `build` returns. Writers wait for the batch; readers do
    /// not. If `build` panics, nothing changes. Calling back into the same map from `build`
    /// panics.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, SnapshotMap};
    ///
    /// let table: SnapshotMap<u32, &str> = (0..3).map(|i| (i, "old")).collect();
    /// let replaced = table.write_batch(|batch| {
    ///     batch.remove(&0);
    ///     (1..3).filter(|k| batch.insert(*k, "new").is_some()).count()
    /// });
    /// assert_eq!(replaced, 2);
    /// assert_eq!((table.get(&0), table.get(&1), table.len()), (None, Some("new"), 2));
    /// ```
    pub fn write_batch<R>(&self, build: impl FnOnce(&mut Batch<'_, K, V, S>) -> R) -> R {
        let id = self.enter();
        self.core().write_version(|copy| {
            let mut batch = Batch {
                copy,
                hasher: self.hasher(),
                changed: false,
            };
            let result = reentry::run_inside(id, "write_batch", || build(&mut batch));
            (result, batch.changed)
        })
    }
}

impl<K, V, S> Batch<'_, K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// The value for `key`, with this batch's changes so far applied.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.copy.get(self.lookup(key)).map(|(_, v)| v)
    }

    /// Stores `value` for `key`, returning the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.changed = true;
        let hash = self.hasher.hash_one(&key);
        self.copy
            .run(Owned { hash, key }, self.hasher, Insert(value))
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let lookup = self.lookup(key);
        let removed = self
            .copy
            .run(lookup, self.hasher, RemoveIf(|_: &K, _: &V| true));
        self.changed |= removed.is_some();
        removed
    }

    /// The number of entries, with this batch's changes so far applied.
    pub fn len(&self) -> usize {
        self.copy.len()
    }

    /// Whether the map would be empty if the batch ended now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup<'q, Q: Hash + ?Sized>(&self, key: &'q Q) -> Lookup<'q, Q> {
        let hash = self.hasher.hash_one(key);
        Lookup { hash, key }
    }
}
