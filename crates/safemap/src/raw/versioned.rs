//! [`Versioned`]: the core of `SnapshotMap`, over a live trie ([`super::live_trie`]).
//!
//! A read walks the trie with no lock. A single-key write locks the branch that holds its key's
//! leaf and stores a changed copy of the leaf, so the closure it runs sees the entry as it is and
//! runs once, and writes to other branches go on beside it. A snapshot keeps the root of the
//! moment, which no write changes afterwards, and costs one copy of the root. A batch, `extend`,
//! `retain` and `shrink_to_fit` change a private copy with the writers' gate closed and publish it
//! with one store, so readers see all of it or none. What a write displaces is freed once no
//! reader or snapshot can still reach it.

use equivalent::Equivalent;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::sync::Arc;

use super::core::{ATOMIC, BoundedWait, Core, Timed, Wait};
use super::entry::{EntryOp, KeyEntry, Lookup, Probe, Target, key_to_store};
use super::live_trie::{
    Iter, Leaf, Leaves, LiveTrie, Located, Private, Root, find_held, lock_domains,
};
use super::parts::{Entries, Parts};
use crate::map::{Blocks, Consistency, Cost, Maintenance, MapSnapshot, TimedOut};
use crate::tally;

/// The live trie of one map.
pub struct Versioned<K, V> {
    trie: LiveTrie<K, V>,
}

impl<K, V> Default for Versioned<K, V> {
    fn default() -> Self {
        Versioned {
            trie: LiveTrie::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Versioned<K, V> {
    /// Runs `build` on a private copy of the map and publishes it, all at once, if `build`
    /// says so (`write_batch`, `extend`, `retain`, `shrink_to_fit`).
    pub(crate) fn write_version<R>(&self, build: impl FnOnce(InCopy<'_, K, V>) -> (R, bool)) -> R {
        tally::maintain(Maintenance::Publish, || {
            (self.trie).rebuild(|private| {
                let (result, publish) = build(InCopy::new(&self.trie, private));
                ((result, publish), publish)
            })
        })
    }
}

/// A private copy of the map that a whole-map write changes before it is published.
pub(crate) struct InCopy<'a, K, V> {
    trie: &'a LiveTrie<K, V>,
    private: &'a mut Private<K, V>,
}

impl<'a, K: Hash + Eq + Clone, V: Clone> InCopy<'a, K, V> {
    fn new(trie: &'a LiveTrie<K, V>, private: &'a mut Private<K, V>) -> Self {
        InCopy { trie, private }
    }

    /// The entry `probe` finds, with the changes so far.
    pub(crate) fn get(&self, probe: impl Probe<K>) -> Option<&(K, V)> {
        self.private.get(probe)
    }

    /// The entry count, with the changes so far.
    pub(crate) fn len(&self) -> usize {
        self.private.len()
    }

    /// Runs `op` on the entry `target` locates.
    pub(crate) fn run<T: Target<K>, S: BuildHasher, O: EntryOp<K, V>>(
        &mut self,
        target: T,
        hasher: &S,
        op: O,
    ) -> O::Output {
        let hash = target.probe().hash();
        (self.private).edit(self.trie, hash, |at, added| {
            op.run(InLeaf::new(at, target, hasher, added))
        })
    }
}

/// One key's entry in its leaf, with the leaf's branch locked: each change stores a changed copy
/// of the leaf, and `added` counts the entries it adds.
struct InLeaf<'a, 'g, K, V, T, S> {
    at: &'a Located<'g, K, V>,
    target: T,
    hasher: &'a S,
    added: &'a mut isize,
    /// The entry's index in the slot's leaf, once looked up.
    index: Option<Option<usize>>,
}

impl<'a, 'g, K: Hash + Eq + Clone, V: Clone, T: Target<K>, S: BuildHasher>
    InLeaf<'a, 'g, K, V, T, S>
{
    fn new(at: &'a Located<'g, K, V>, target: T, hasher: &'a S, added: &'a mut isize) -> Self {
        InLeaf {
            at,
            target,
            hasher,
            added,
            index: None,
        }
    }

    /// Where the key is in the slot's leaf, looked up once.
    fn index(&mut self) -> Option<usize> {
        if self.index.is_none() {
            let probe = self.target.probe();
            self.index = Some(self.at.leaf().and_then(|leaf| leaf.find(&probe)));
        }
        self.index.flatten()
    }

    /// Stores a copy of the slot's leaf with `change` made to it; returns what `change` returns.
    /// If `change` panics, nothing is stored.
    fn store_changed<R>(&self, leaf: &Leaf<K, V>, change: impl FnOnce(&mut Leaf<K, V>) -> R) -> R {
        let mut next = leaf.clone();
        let result = change(&mut next);
        self.at.store((next.len() > 0).then_some(next));
        result
    }
}

impl<K: Hash + Eq + Clone, V: Clone, T: Target<K>, S: BuildHasher> KeyEntry<K, V>
    for InLeaf<'_, '_, K, V, T, S>
{
    fn get(&mut self) -> Option<(&K, &V)> {
        let index = self.index()?;
        let (key, value) = self.at.leaf()?.entry(index);
        Some((key, value))
    }

    /// On a copy of the leaf, stored once `change` returns: `change` runs once.
    fn change<R>(&mut self, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        let index = self.index()?;
        let leaf = self.at.leaf()?;
        Some(self.store_changed(leaf, |next| change(next.value_mut(index))))
    }

    fn set(mut self, value: V) -> Option<V> {
        if !T::OWNS_KEY {
            return self.change(|stored| mem::replace(stored, value));
        }
        if let Some(index) = self.index() {
            let leaf = self.at.leaf()?;
            return Some(
                self.store_changed(leaf, |next| mem::replace(next.value_mut(index), value)),
            );
        }
        let hash = self.target.probe().hash();
        let key = key_to_store(self.target);
        match self.at.leaf() {
            None => self.at.store(Some(Leaf::single(hash, key, value))),
            Some(leaf) if leaf.is_full() && self.at.can_split() => {
                let hasher = self.hasher;
                let mut entries: Vec<_> = leaf
                    .entries()
                    .map(|(k, v)| (hasher.hash_one(k), k.clone(), v.clone()))
                    .collect();
                entries.push((hash, key, value));
                self.at.store_split(entries);
            }
            Some(leaf) => self.at.store(Some(leaf.with_entry(hash, key, value))),
        }
        *self.added += 1;
        None
    }

    fn remove(mut self) -> Option<V> {
        let index = self.index()?;
        let leaf = self.at.leaf()?;
        let (_, value) = self.store_changed(leaf, |next| next.take(index));
        *self.added -= 1;
        Some(value)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Core for Versioned<K, V> {
    type Snapshot<S: BuildHasher> = TrieSnapshot<K, V, S>;

    /// Every operation is atomic: a write changes one leaf's slot with one store, whole-map
    /// writes publish a copy with one store, and `len`, `for_each` and snapshots see the map
    /// with the writers' gate closed. A closure holds one branch's lock (a shard: the keys whose
    /// leaves the branch holds), which readers ignore.
    const CONSISTENCY: Consistency = Consistency {
        snapshot_cost: Cost::Constant,
        closure_blocks_writers: Blocks::Shard,
        update_in_place: false,
        reserves: false,
        maintenance: &[Maintenance::Publish],
        closure_blocks_readers: Blocks::Nothing,
        frees_after_readers: true,
        ..ATOMIC
    };

    /// A trie cannot make room ahead (every write copies a leaf), so this is an empty map.
    fn with_capacity(_: usize) -> Self {
        Self::default()
    }

    /// The length: every new entry allocates the leaf it is written in.
    fn capacity(&self) -> usize {
        self.len()
    }

    /// Does nothing (`Consistency::reserves` is false): there is no room to make ahead.
    fn reserve<S: BuildHasher>(&self, _: usize, _: &S) {}

    /// Publishes a trie rebuilt from the entries, in leaves as full as they can be, so an
    /// emptied map gives back its branches as well as its entries. Snapshots keep what they hold.
    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S) {
        self.write_version(|copy| {
            let entries = copy.private.iter();
            let entries = entries.map(|(k, v)| (hasher.hash_one(k), k.clone(), v.clone()));
            let entries = entries.collect();
            copy.private.refill(entries);
            ((), true)
        });
        self.trie.flush();
    }

    /// Never waits: reads take no lock.
    #[inline]
    fn get<R>(&self, probe: impl Probe<K>, read: impl FnOnce(&V) -> R) -> Option<R> {
        self.trie.get(probe, |_, value| read(value))
    }

    fn write<T, S, O>(&self, wait: Wait, target: T, hasher: &S, op: O) -> Timed<O::Output, (T, O)>
    where
        T: Target<K>,
        S: BuildHasher,
        O: EntryOp<K, V>,
    {
        let deadline = wait.deadline();
        let hash = target.probe().hash();
        let written = self
            .trie
            .write(deadline, hash, (target, op), |at, added, (target, op)| {
                op.run(InLeaf::new(at, target, hasher, added))
            });
        written.map_err(TimedOut)
    }

    /// One publish for all the entries.
    fn extend<S: BuildHasher>(&self, entries: impl IntoIterator<Item = (K, V)>, hasher: &S) {
        let displaced = self.write_version(|mut copy| {
            let mut displaced = Vec::new();
            for (key, value) in entries {
                let hash = hasher.hash_one(&key);
                let target = super::entry::Owned { hash, key };
                displaced.extend(copy.run(target, hasher, super::entry::Insert(value)));
            }
            (displaced, true)
        });
        drop(displaced);
    }

    fn retain<S: BuildHasher>(&self, keep: &mut impl FnMut(&K, &V) -> bool, hasher: &S) {
        let removed = self.write_version(|mut copy| {
            let leaving: Vec<K> = (copy.private.iter())
                .filter(|(k, v)| !keep(k, v))
                .map(|(k, _)| k.clone())
                .collect();
            let mut removed = Vec::with_capacity(leaving.len());
            for key in &leaving {
                let target = Lookup {
                    hash: hasher.hash_one(key),
                    key,
                };
                let op = super::entry::RemoveIf(|_: &K, _: &V| true);
                removed.extend(copy.run(target, hasher, op));
            }
            let changed = !removed.is_empty();
            (removed, changed)
        });
        drop(removed);
        self.trie.flush();
    }

    fn clear(&self) {
        self.trie.clear();
        self.trie.flush();
    }

    fn len(&self) -> usize {
        self.trie.len()
    }

    /// Visits a snapshot: atomic, and no write waits for `visit`.
    fn for_each<S: BuildHasher>(&self, visit: &mut impl FnMut(&K, &V), _hasher: &S) {
        let (root, _) = self.trie.snapshot();
        // SAFETY: a snapshot's root, which no write changes.
        unsafe { Iter::of(&root) }.for_each(|(k, v)| visit(k, v));
    }

    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> TrieSnapshot<K, V, S> {
        let (root, len) = self.trie.snapshot();
        TrieSnapshot {
            root,
            len,
            hasher: hasher.clone(),
        }
    }

    /// O(1) but for one copy of the root: the new map starts from a snapshot, sharing its nodes.
    fn duplicate<S: BuildHasher>(&self, _hasher: &S) -> Self {
        let (root, len) = self.trie.snapshot();
        Versioned {
            // SAFETY: a snapshot's root, which no write changes.
            trie: unsafe { LiveTrie::from_kept(&root, len) },
        }
    }
}

impl<K: Hash + Eq, V> Entries for Versioned<K, V> {
    type Key = K;
    type Value = V;
}

impl<K: Hash + Eq + Clone, V: Clone> Parts for Versioned<K, V> {
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// The entries, moved out of the nodes no snapshot shares.
    fn into_entries(self) -> Self::IntoIter {
        self.trie.into_entries().into_iter()
    }

    /// The leaves of a snapshot taken when the iteration began.
    type Cursor = Leaves<K, V>;

    fn cursor(&self) -> Leaves<K, V> {
        let (root, _) = self.trie.snapshot();
        // SAFETY: a snapshot's root, which no write changes.
        unsafe { Leaves::of(root) }
    }

    fn split_cursor(&self, leaves: &mut Leaves<K, V>) -> Option<Leaves<K, V>> {
        leaves.split()
    }

    /// One leaf (at most about `LEAF_MAX` entries) at a time, all from one snapshot: no lock.
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

    /// A shard is a branch of the trie, with the keys whose leaves its slots hold: a write locks
    /// the branch. Counted on a snapshot, the root's branch first, then depth first.
    fn shard_lengths<S: BuildHasher>(&self, _hasher: &S) -> Vec<usize> {
        let (root, _) = self.trie.snapshot();
        // SAFETY: a snapshot's root, which no write changes.
        unsafe { lock_domains(&root) }
    }

    fn debug_entries<S: BuildHasher>(&self, out: &mut fmt::DebugMap<'_, '_>, _hasher: &S)
    where
        K: fmt::Debug,
        V: fmt::Debug,
    {
        let (root, _) = self.trie.snapshot();
        // SAFETY: a snapshot's root, which no write changes.
        out.entries(unsafe { Iter::of(&root) });
    }
}

/// Writers wait only for the gate and one branch's lock; readers never wait.
impl<K: Hash + Eq + Clone, V: Clone> BoundedWait for Versioned<K, V> {}

/// A [`SnapshotMap`](crate::SnapshotMap)'s point-in-time view: the map's root of that moment,
/// which no write changes afterwards, shared, not copied.
pub struct TrieSnapshot<K, V, S> {
    root: Arc<Root<K, V>>,
    len: usize,
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
        find_held(&self.root, Lookup { hash, key }).map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn iter<'a>(&'a self) -> Iter<'a, K, V>
    where
        K: 'a,
        V: 'a,
    {
        // SAFETY: a snapshot's root, which no write changes.
        unsafe { Iter::of(&self.root) }
    }
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> IntoIterator for &'a TrieSnapshot<K, V, S> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// O(1): both share the one root.
impl<K, V, S: Clone> Clone for TrieSnapshot<K, V, S> {
    fn clone(&self) -> Self {
        TrieSnapshot {
            root: Arc::clone(&self.root),
            len: self.len,
            hasher: self.hasher.clone(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for TrieSnapshot<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: a snapshot's root, which no write changes.
        f.debug_map()
            .entries(unsafe { Iter::of(&self.root) })
            .finish()
    }
}
