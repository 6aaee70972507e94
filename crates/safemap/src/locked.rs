//! [`LockedMap`]: one reader-writer lock over one hash table.
//!
//! The simplest strategy and the reference the others are cross-checked against. Every operation
//! holds the single lock, so every operation, including `len`, `for_each`, `retain`, `clear` and
//! `snapshot`, is atomic. Readers share the lock; a writer excludes everyone.

use crate::DefaultHashBuilder;
use crate::map::{Consistency, Cost, WholeMap};
use crate::raw::lock_based_map;
use crate::raw::shards::ShardSet;

/// A hash map behind a single `parking_lot::RwLock`: Go's `sync.RWMutex` + `map`, without the
/// ways to get it wrong.
///
/// Use it for small maps, for low contention, or as the reference to cross-check other
/// strategies. Under many writers, [`ShardedMap`](crate::ShardedMap) scales further.
///
/// ```
/// use safemap::{ConcurrentMap, LockedMap};
///
/// let sessions: LockedMap<u64, String> = LockedMap::new();
/// std::thread::scope(|s| {
///     for id in 0..4 {
///         let sessions = &sessions;
///         s.spawn(move || sessions.insert(id, format!("user-{id}")));
///     }
/// });
/// assert_eq!(sessions.len(), 4);
/// assert_eq!(sessions.get(&2).as_deref(), Some("user-2"));
/// ```
pub struct LockedMap<K, V, S = DefaultHashBuilder> {
    core: ShardSet<K, V, S>,
}

impl<K, V> LockedMap<K, V> {
    /// An empty map with a randomly seeded hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` entries before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<K, V, S> LockedMap<K, V, S> {
    /// An empty map that hashes with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty map with room for `capacity` entries, hashing with `hasher`.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        LockedMap {
            core: ShardSet::new(1, capacity, hasher),
        }
    }

    /// The map's hasher.
    pub fn hasher(&self) -> &S {
        self.core.hasher()
    }
}

lock_based_map!(
    LockedMap,
    Consistency {
        len: WholeMap::Atomic,
        for_each: WholeMap::Atomic,
        retain: WholeMap::Atomic,
        clear: WholeMap::Atomic,
        snapshot_cost: Cost::Linear,
        insert_closure_blocks_shard: true,
    }
);
