//! [`SnapshotMap`]: readers load an immutable version with one atomic load; serialized writers
//! publish a new version that shares all but one path with the old.
//!
//! The version is a persistent hash trie (`raw::trie`) with flat hashbrown leaves, published
//! through `raw::published`: a read enters a reclamation guard (a store to its own thread's slot),
//! loads the version's pointer and probes it, touching no reference count, so readers on
//! different cores write nothing the others write, even right after a publish. `raw::versioned`
//! is the core that writes and publishes. A write takes the writer lock,
//! copies the path to one leaf, changes the copy and publishes it: no update is lost (there is no
//! load-copy-store race), and no write copies the whole map. [`SnapshotMap::write_batch`]
//! publishes many changes as one version. A snapshot is the current version itself: O(1), and
//! valid for as long as it is kept.

use equivalent::Equivalent;
use std::hash::{BuildHasher, Hash};

use crate::front::SafeMap;
use crate::map::DefaultHashBuilder;
use crate::raw::entry::Lookup;
use crate::raw::trie::Trie;
use crate::raw::versioned::Versioned;
use crate::reentry;

/// A map for read-mostly data (configuration, routing tables, registries): reads never wait and
/// cost about one atomic load plus a hash-table probe, snapshots are O(1), and every operation,
/// `len` and `for_each` included, is atomic.
///
/// Writers are serialized and each copies one short path of the trie (a leaf of at most 512
/// entries and one small branch per level), so writes cost microseconds, not nanoseconds: for
/// write-heavy maps use [`ShardedMap`](crate::ShardedMap). Batch writes with
/// [`write_batch`](Self::write_batch) to publish many changes at once. Writes from several
/// threads at once take turns, and the versions they displace are freed on whichever thread the
/// reclamation picks: with glibc's allocator that thread can sleep on the arena lock of the
/// thread that allocated them, so a map written from many threads is better written from one,
/// or in batches.
///
/// Keys and values are cloned when a write copies the leaf they share with older versions, so
/// both must be `Clone` for writes; cheap clones (integers, `Arc`s, short strings) suit it best.
///
/// A removed or cleared value is dropped once no version holds it. A displaced version is freed
/// once no reader can still be in it, in batches of up to 64 per writing thread (one heavy
/// barrier each), so the values only it held outlive the write by up to 63 more writes of that
/// thread; `clear`, `retain` and `shrink_to_fit` free theirs at once where no reader holds them.
/// Removals leave the trie's branches in place; `shrink_to_fit` folds every subtree holding 256
/// entries or fewer back into one leaf, so an emptied map gives back its nodes as well as its
/// entries (a map that held 1M entries kept 280 KiB of them before).
/// A [`TrieSnapshot`](crate::TrieSnapshot) keeps its version until it is dropped. The first
/// write makes the map's reclamation slots (about 16 KiB); an empty map holds a few cache lines.
/// The first map of this kind or a [`ScalableMap`](crate::ScalableMap) that a process makes
/// registers the process for the reclamation's heavy barrier (`membarrier`; 12-20 ms where we
/// measured), so that no write pays it. Values whose drop releases something that matters (a
/// file, a connection) should be released by the caller, not by the map's drop of the value.
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
/// the current version, all at once, when the batch closure returns.
pub struct Batch<'a, K, V, S> {
    trie: &'a mut Trie<K, V>,
    hasher: &'a S,
    changed: bool,
}

impl<K, V, S> SnapshotMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Applies every change `build` makes to its [`Batch`] as one new version: readers see all of
    /// them or none. Returns what `build` returns. Writers wait for the batch; readers do not.
    /// If `build` panics, nothing changes. Calling back into the same map from `build` panics.
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
        self.core().write_version(|trie| {
            let mut batch = Batch {
                trie,
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
        self.trie.get(self.lookup(key)).map(|(_, v)| v)
    }

    /// Stores `value` for `key`, returning the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.changed = true;
        let hash = self.hasher.hash_one(&key);
        self.trie.insert(hash, key, value, self.hasher)
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let removed = (self.trie).remove(self.lookup(key), self.hasher);
        self.changed |= removed.is_some();
        removed.map(|(_, v)| v)
    }

    /// The number of entries, with this batch's changes so far applied.
    pub fn len(&self) -> usize {
        self.trie.len()
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
