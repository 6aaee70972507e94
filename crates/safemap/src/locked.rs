//! [`LockedMap`]: one reader-writer lock over one hash table.
//!
//! The simplest strategy and the reference the others are cross-checked against. Every operation
//! holds the single lock, so every operation, including `len`, `for_each`, `retain`, `clear` and
//! `snapshot`, is atomic. Readers share the lock; a writer excludes everyone. Its core is the
//! lock-based one (`raw::tables`) with one table.

use crate::front::SafeMap;
use crate::map::DefaultHashBuilder;
use crate::raw::tables::{OneTable, Tables};

/// A hash map behind a single `parking_lot::RwLock`: Go's `sync.RWMutex` + `map`, without the
/// ways to get it wrong.
///
/// Use it for small maps, for low contention, or as the reference to cross-check other
/// strategies. Under many writers, [`ShardedMap`](crate::ShardedMap) scales further.
///
/// Its [`iter`](crate::ConcurrentMap::iter) is atomic: it copies the one table whole under the
/// shared lock, so the iterator holds a copy of every entry and a writer waits for that copy.
/// For bounded memory and short waits, iterate a [`ShardedMap`](crate::ShardedMap), which copies
/// one shard at a time.
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
pub type LockedMap<K, V, S = DefaultHashBuilder> = SafeMap<Tables<K, V, OneTable>, S>;
