//! [`ShardedMap`]: a power-of-two number of cache-padded reader-writer locked tables.
//!
//! A key's hash is computed once; its upper bits pick the shard and the whole hash probes the
//! shard's table (see `raw/routing.rs` for the bit layout and `raw/tables.rs` for the lock order).
//! Single-key operations lock one shard, so writers to different shards never wait for each
//! other, and they start loading the table's cache lines before taking the lock
//! (`raw/probe_hint.rs`). `len`, `clear` and `snapshot` lock every shard in ascending order and
//! are atomic; `for_each` and `retain` go one shard at a time and are weakly consistent. Each
//! shard is made by the first write routed to it (`raw/lazy_shards.rs`), so an empty map holds
//! only a pointer per shard.

use crate::front::SafeMap;
use crate::map::DefaultHashBuilder;
use crate::raw::tables::{ManyTables, Tables};

/// A sharded hash map: Go's padded, power-of-two sharded `RWMutex` map, with the lock order and
/// the hashing done right.
///
/// The general-purpose choice, and the one for write-heavy workloads. It has
/// [`default_shard_count`](crate::default_shard_count) shards unless built
/// [`with_shards`](Self::with_shards). An empty map holds 8 bytes per shard; a shard's lock and
/// table header (256 bytes) come with its first write, so a map of a few keys stays small.
///
/// [`iter`](crate::ConcurrentMap::iter) copies one shard at a time under its shared lock, so a
/// writer waits for at most one shard's copy (`len / shards` entries) and the iterator holds at
/// most one shard's entries.
///
/// ```
/// use safemap::{Action, ConcurrentMap, ShardedMap};
///
/// let stock: ShardedMap<&str, i64> = ShardedMap::with_shards(16);
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             for _ in 0..100 {
///                 stock.compute("widgets", |n| Action::Set(n.copied().unwrap_or(0) + 1));
///             }
///         });
///     }
/// });
/// assert_eq!(stock.get("widgets"), Some(400));
/// ```
pub type ShardedMap<K, V, S = DefaultHashBuilder> = SafeMap<Tables<K, V, ManyTables>, S>;

impl<K, V> ShardedMap<K, V> {
    /// An empty map with `shards` shards.
    ///
    /// # Panics
    /// If `shards` is zero, not a power of two, or above 65,536.
    ///
    /// ```should_panic
    /// # use safemap::ShardedMap;
    /// let _ = ShardedMap::<u32, u32>::with_shards(12); // not a power of two
    /// ```
    pub fn with_shards(shards: usize) -> Self {
        Self::with_shards_capacity_and_hasher(shards, 0, DefaultHashBuilder::default())
    }
}

impl<K, V, S> ShardedMap<K, V, S> {
    /// An empty map with `shards` shards, room for `capacity` entries, hashing with `hasher`.
    ///
    /// # Panics
    /// If `shards` is zero, not a power of two, or above 65,536.
    pub fn with_shards_capacity_and_hasher(shards: usize, capacity: usize, hasher: S) -> Self {
        SafeMap::from_parts(Tables::new(shards, capacity), hasher)
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.core().shard_count()
    }
}
