//! [`Versioned`]: the core of `SnapshotMap`. A persistent trie ([`super::trie`]) published one
//! version at a time ([`super::published`]).
//!
//! A read loads the current version (one uncontended atomic load on the fast path) and probes it.
//! A write takes the writer lock, clones the current trie (O(1): every node is shared), changes
//! the clone, which copies the one path it touches, and publishes it if anything changed. The
//! lock spans the whole read-modify-publish, so no update is lost, and a user closure sees the
//! version it changes. The displaced version, and with it any value no other version holds, is
//! retired after the lock is released and freed once no reader can still hold it
//! (`raw::published`).

use equivalent::Equivalent;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::sync::Arc;

use super::core::{ATOMIC, BoundedWait, Core, Timed, Wait};
use super::entry::{EntryOp, KeyEntry, Lookup, Probe, Target, key_to_store};
use super::parts::{Entries, Parts};
use super::published::{Published, Writer};
use super::trie::{Iter as TrieSnapshotIter, Leaves, Trie};
use crate::map::{Blocks, Consistency, Cost, Maintenance, MapSnapshot, TimedOut};
use crate::tally;

/// The published versions of one map.
pub struct Versioned<K, V> {
    published: Published<Trie<K, V>>,
}

impl<K, V> Default for Versioned<K, V> {
    fn default() -> Self {
        Versioned {
            published: Published::starting_with(Trie::default()),
        }
    }
}

impl<K, V> Versioned<K, V> {
    /// The current version, to keep.
    pub(crate) fn current(&self) -> Arc<Trie<K, V>> {
        self.published.load()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Versioned<K, V> {
    /// The writer lock, or `None` at the deadline `wait` names.
    fn writer(&self, wait: Wait) -> Option<Writer<'_, Trie<K, V>>> {
        self.published.write(wait)
    }

    /// [`rewrite`] under the writer lock, waiting for it as long as it takes.
    pub(crate) fn write_version<R>(&self, change: impl FnOnce(&mut Trie<K, V>) -> (R, bool)) -> R {
        let writer = self.writer(Wait::Forever).expect("waits forever");
        rewrite(writer, Reclaim::InBatch, change)
    }

    /// [`Self::write_version`] for a change that may displace every entry (`clear`, `retain`,
    /// `shrink_to_fit`): what no reader holds is freed at once rather than with a later batch.
    fn write_whole_map<R>(&self, change: impl FnOnce(&mut Trie<K, V>) -> (R, bool)) -> R {
        let writer = self.writer(Wait::Forever).expect("waits forever");
        rewrite(writer, Reclaim::Soon, change)
    }
}

/// When a displaced version is freed.
#[derive(Clone, Copy, PartialEq)]
enum Reclaim {
    /// With this thread's next batch of retired versions.
    InBatch,
    /// Once the readers active now are gone.
    Soon,
}

/// The writer's read-modify-publish under `writer`: `change` edits a copy of the current version
/// and says whether to publish it. The displaced version is retired after the lock is released.
fn rewrite<K: Clone, V: Clone, R>(
    mut writer: Writer<'_, Trie<K, V>>,
    reclaim: Reclaim,
    change: impl FnOnce(&mut Trie<K, V>) -> (R, bool),
) -> R {
    let (result, displaced) = tally::maintain(Maintenance::Publish, || {
        let mut next = Trie::clone(writer.current());
        let (result, changed) = change(&mut next);
        ((result, changed.then(|| writer.publish(next))), changed)
    });
    drop(writer);
    match displaced {
        Some(displaced) if reclaim == Reclaim::Soon => displaced.free_soon(),
        displaced => drop(displaced),
    }
    result
}

/// One key's entry in the next version, under the writer lock: `changed` records whether the
/// version is to be published, `seen` whether `get` found the key, so a removal after it does
/// not look again.
struct InVersion<'w, K, V, T, S> {
    trie: &'w mut Trie<K, V>,
    target: T,
    hasher: &'w S,
    changed: &'w mut bool,
    seen: bool,
}

impl<K: Hash + Eq + Clone, V: Clone, T: Target<K>, S: BuildHasher> KeyEntry<K, V>
    for InVersion<'_, K, V, T, S>
{
    fn get(&mut self) -> Option<(&K, &V)> {
        let found = self.trie.get(self.target.probe());
        self.seen = found.is_some();
        found
    }

    /// In the writer's copy of its leaf: `change` runs once, on a copy no reader sees until it
    /// is published.
    fn change<R>(&mut self, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        let value = self.trie.get_mut(self.target.probe(), self.hasher)?;
        *self.changed = true;
        Some(change(value))
    }

    fn set(mut self, value: V) -> Option<V> {
        if !T::OWNS_KEY {
            return self.change(|stored| mem::replace(stored, value));
        }
        *self.changed = true;
        let hash = self.target.probe().hash();
        (self.trie).insert(hash, key_to_store(self.target), value, self.hasher)
    }

    fn remove(self) -> Option<V> {
        let probe = self.target.probe();
        let removed = match self.seen {
            true => self.trie.remove_present(probe, self.hasher),
            false => self.trie.remove(probe, self.hasher),
        };
        *self.changed |= removed.is_some();
        removed.map(|(_, value)| value)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Core for Versioned<K, V> {
    type Snapshot<S: BuildHasher> = TrieSnapshot<K, V, S>;

    /// Every operation works on one version, so all are atomic, and a snapshot is a version. A
    /// closure holds the one writer lock, which readers ignore.
    const CONSISTENCY: Consistency = Consistency {
        snapshot_cost: Cost::Constant,
        update_in_place: false,
        reserves: false,
        maintenance: &[Maintenance::Publish],
        closure_blocks_readers: Blocks::Nothing,
        frees_after_readers: true,
        ..ATOMIC
    };

    /// A trie cannot make room ahead (every write copies a path), so this is an empty map.
    fn with_capacity(_: usize) -> Self {
        Self::default()
    }

    /// The length: every new entry allocates the path it is written on.
    fn capacity(&self) -> usize {
        self.len()
    }

    /// Does nothing (`Consistency::reserves` is false): there is no room to make ahead.
    fn reserve<S: BuildHasher>(&self, _: usize, _: &S) {}

    /// Publishes a version whose leaves are shrunk to their entries: it copies every leaf that
    /// has room to give back. Older versions, and their memory, live on while readers hold them.
    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S) {
        self.write_whole_map(|trie| ((), trie.shrink_to_fit(hasher)));
    }

    /// Never waits: reads take no lock.
    #[inline]
    fn get<R>(&self, probe: impl Probe<K>, read: impl FnOnce(&V) -> R) -> Option<R> {
        (self.published).read(|trie| trie.get(probe).map(|(_, v)| read(v)))
    }

    fn write<T, S, O>(&self, wait: Wait, target: T, hasher: &S, op: O) -> Timed<O::Output, (T, O)>
    where
        T: Target<K>,
        S: BuildHasher,
        O: EntryOp<K, V>,
    {
        let Some(writer) = self.writer(wait) else {
            return Err(TimedOut((target, op)));
        };
        Ok(rewrite(writer, Reclaim::InBatch, |trie| {
            let mut changed = false;
            let entry = InVersion {
                trie,
                target,
                hasher,
                changed: &mut changed,
                seen: false,
            };
            (op.run(entry), changed)
        }))
    }

    /// One version for all the entries.
    fn extend<S: BuildHasher>(&self, entries: impl IntoIterator<Item = (K, V)>, hasher: &S) {
        self.write_version(|trie| {
            let mut changed = false;
            for (key, value) in entries {
                trie.insert(hasher.hash_one(&key), key, value, hasher);
                changed = true;
            }
            ((), changed)
        });
    }

    fn retain<S: BuildHasher>(&self, keep: &mut impl FnMut(&K, &V) -> bool, _: &S) {
        let removed = self.write_whole_map(|trie| {
            let removed = trie.retain(keep);
            let changed = !removed.is_empty();
            (removed, changed)
        });
        drop(removed);
    }

    fn clear(&self) {
        let emptied = self.write_whole_map(|trie| {
            let changed = trie.len() != 0;
            (std::mem::take(trie), changed)
        });
        drop(emptied);
    }

    fn len(&self) -> usize {
        self.published.read(Trie::len)
    }

    /// Visits the current version, which no writer changes.
    fn for_each<S: BuildHasher>(&self, visit: &mut impl FnMut(&K, &V), _hasher: &S) {
        self.current().iter().for_each(|(k, v)| visit(k, v));
    }

    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> TrieSnapshot<K, V, S> {
        TrieSnapshot {
            version: self.current(),
            hasher: hasher.clone(),
        }
    }

    /// O(1): the new map starts from the current version, sharing every node.
    fn duplicate<S: BuildHasher>(&self, _hasher: &S) -> Self {
        Versioned {
            published: Published::new(Trie::clone(&self.current())),
        }
    }
}

impl<K: Hash + Eq, V> Entries for Versioned<K, V> {
    type Key = K;
    type Value = V;
}

impl<K: Hash + Eq + Clone, V: Clone> Parts for Versioned<K, V> {
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// The current version's entries, moved out of the nodes no snapshot still shares.
    fn into_entries(self) -> Self::IntoIter {
        let trie = match Arc::try_unwrap(self.published.into_current()) {
            Ok(version) => version,
            // A snapshot still holds the version: share its nodes (O(1)).
            Err(shared) => Trie::clone(&shared),
        };
        trie.into_entries().into_iter()
    }

    /// The leaves of the version current when the iteration began.
    type Cursor = Leaves<K, V>;

    fn cursor(&self) -> Leaves<K, V> {
        Leaves::of(&self.current())
    }

    fn split_cursor(&self, leaves: &mut Leaves<K, V>) -> Option<Leaves<K, V>> {
        leaves.split()
    }

    /// One leaf (at most about `LEAF_MAX` entries) at a time, all from one version: no lock.
    fn next_chunk<S: BuildHasher>(
        &self,
        leaves: &mut Leaves<K, V>,
        chunk: &mut Vec<(K, V)>,
        _hasher: &S,
    ) -> bool {
        let Some(leaf) = leaves.next_leaf() else {
            return false;
        };
        chunk.extend(leaf.entries().cloned());
        true
    }

    /// One count: the trie has no parts locked apart.
    fn shard_lengths<S: BuildHasher>(&self, _hasher: &S) -> Vec<usize> {
        vec![self.len()]
    }

    fn debug_entries<S: BuildHasher>(&self, out: &mut fmt::DebugMap<'_, '_>, _hasher: &S)
    where
        K: fmt::Debug,
        V: fmt::Debug,
    {
        out.entries(self.current().iter());
    }
}

/// Writers wait only for the writer lock; readers never wait.
impl<K: Hash + Eq + Clone, V: Clone> BoundedWait for Versioned<K, V> {}

/// A [`SnapshotMap`](crate::SnapshotMap)'s point-in-time view: the version that was current when
/// it was taken, shared, not copied.
pub struct TrieSnapshot<K, V, S> {
    version: Arc<Trie<K, V>>,
    hasher: S,
}

#[allow(
    refining_impl_trait,
    reason = "a named iterator, so `&snapshot` is `IntoIterator`"
)]
impl<K, V, S> MapSnapshot<K, V> for TrieSnapshot<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        self.version.get(Lookup { hash, key }).map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.version.len()
    }

    fn iter<'a>(&'a self) -> TrieSnapshotIter<'a, K, V>
    where
        K: 'a,
        V: 'a,
    {
        self.version.iter()
    }
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> IntoIterator for &'a TrieSnapshot<K, V, S> {
    type Item = (&'a K, &'a V);
    type IntoIter = TrieSnapshotIter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// O(1): both share the one version.
impl<K, V, S: Clone> Clone for TrieSnapshot<K, V, S> {
    fn clone(&self) -> Self {
        TrieSnapshot {
            version: Arc::clone(&self.version),
            hasher: self.hasher.clone(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for TrieSnapshot<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.version.iter()).finish()
    }
}
