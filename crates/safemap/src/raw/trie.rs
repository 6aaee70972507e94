//! A persistent hash trie with wide, flat leaves: the immutable structure `SnapshotMap` publishes.
//!
//! # Shape
//! Branches have [`FANOUT`] children and are indexed by successive 4-bit groups of the key's
//! hash, taken from bit 56 downwards. The top 7 bits and the low bits are left to the leaves:
//! each leaf is a hashbrown table, which probes with the low bits and tags with the top 7, so the
//! trie's own bits do not rob it of entropy. A leaf splits into a branch when it passes
//! [`LEAF_MAX`] entries, until the trie is [`MAX_DEPTH`] branches deep; below that, a leaf only
//! grows (that takes a hash function so poor that more than [`LEAF_MAX`] keys agree on all 36 bits
//! the branches use). The bit layout is the one `raw::routing` describes. Removals never merge
//! nodes; `shrink_to_fit` does, folding every subtree of [`FOLD_MAX`] entries or fewer back into
//! one leaf.
//!
//! A lookup walks a few branches (two for 65,536 entries, three for a million) and probes one
//! leaf, so it costs close to one hashbrown probe: the branches near the root stay in cache.
//!
//! # Persistence
//! Nodes sit behind `Arc`s and are never changed once shared. A write copies the path from the
//! root to one leaf with `Arc::make_mut`: the leaf (at most [`LEAF_MAX`] entries, and the reason
//! that bound is small) and one branch per level. Everything else is shared with the previous
//! version. A node that the writer already copied is uniquely owned, so a batch of writes copies
//! each touched node once and then changes it in place.
//!
//! A write only ever changes its own private copy. If user code (`Hash`, `Eq`, `Clone`) panics
//! half-way, the copy is dropped and every published version is untouched.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;

use super::entry::Probe;
use super::routing::TAG_BITS;

/// Children per branch.
pub(crate) const FANOUT: usize = 1 << BITS;
/// Hash bits per branch level. A write copies one branch per level, and copying a branch takes a
/// reference to each of its children: an atomic add on a line of each child, which the old
/// version's drop undoes. With 64 children that was the larger part of a write's cost. 16
/// children against 64, alternated runs of `safemap-bench run --workload
/// ReadHeavy,ReadMostly,Exchange --keys 65536,1000000 --threads 1,2 --reps 3 --ops 3000000
/// --max-seconds 0.5 --contestants SnapshotMap` (Mops/s): Exchange 64k 1 thread 0.59-0.64 ->
/// 0.99-1.20; ReadHeavy 64k 1 thread 13.5-13.9 -> 18.4-20.0, 2 threads 7.6-9.8 -> 11.2-12.8;
/// ReadMostly 64k 2 threads 14.0-15.9 -> 16.1-19.3. At 1M a lookup walks one more level:
/// ReadMostly 1 thread 9.3-10.1 -> 8.7-10.7, 2 threads 9.7-11.1 -> 11.4-13.0. 8 children wrote a
/// little faster and read no better.
const BITS: u32 = 4;
/// The largest leaf that still splits. Every write copies one leaf, so this bounds write cost;
/// fewer, larger leaves make a lookup's walk shorter (6-bit branches with 512-entry leaves read
/// 1.5x faster than 5-bit with 128 at 1M keys, one thread; 256 and 512 measure alike with 4-bit
/// branches). Under `--cfg safemap_stress` (`SAFEMAP_STRESS=1`, `build.rs`) leaves split at 4 entries, so tests reach deep tries
/// and splits with a few hundred keys.
#[cfg(not(safemap_stress))]
pub(crate) const LEAF_MAX: usize = 512;
#[cfg(safemap_stress)]
pub(crate) const LEAF_MAX: usize = 4;
/// The deepest branch level: 9 levels use bits 56..21, leaving hashbrown the low 21.
const MAX_DEPTH: u32 = 9;
/// The highest hash bit the trie uses, plus one: the bits above are hashbrown's tag.
const TOP: u32 = 64 - TAG_BITS;

/// A subtree: nothing, a leaf, or a branch.
pub(crate) enum Child<K, V> {
    Empty,
    Leaf(Arc<Leaf<K, V>>),
    Branch(Arc<Branch<K, V>>),
}

/// Up to about [`LEAF_MAX`] entries whose hashes agree on every bit the branches above used.
#[derive(Clone)]
pub(crate) struct Leaf<K, V> {
    entries: HashTable<(K, V)>,
}

/// [`FANOUT`] subtrees, chosen by the next [`BITS`] (4) bits of the hash.
#[derive(Clone)]
pub(crate) struct Branch<K, V> {
    children: [Child<K, V>; FANOUT],
}

impl<K, V> Clone for Child<K, V> {
    fn clone(&self) -> Self {
        match self {
            Child::Empty => Child::Empty,
            Child::Leaf(leaf) => Child::Leaf(Arc::clone(leaf)),
            Child::Branch(branch) => Child::Branch(Arc::clone(branch)),
        }
    }
}

/// Which child of a branch at `depth` holds `hash`.
#[inline]
fn slot(hash: u64, depth: u32) -> usize {
    (hash >> (TOP - BITS * (depth + 1))) as usize & (FANOUT - 1)
}

/// A whole map: a root and its exact entry count. Cloning is O(1) and shares every node.
pub(crate) struct Trie<K, V> {
    root: Child<K, V>,
    len: usize,
}

impl<K, V> Clone for Trie<K, V> {
    fn clone(&self) -> Self {
        Trie {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for Trie<K, V> {
    fn default() -> Self {
        Trie {
            root: Child::Empty,
            len: 0,
        }
    }
}

impl<K, V> Trie<K, V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The entry `probe` finds.
    #[inline]
    pub(crate) fn get(&self, probe: impl Probe<K>) -> Option<(&K, &V)> {
        let hash = probe.hash();
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match node {
                Child::Branch(branch) => {
                    node = &branch.children[slot(hash, depth)];
                    depth += 1;
                }
                Child::Leaf(leaf) => {
                    return leaf
                        .entries
                        .find(hash, |(k, _)| probe.matches(k))
                        .map(|(k, v)| (k, v));
                }
                Child::Empty => return None,
            }
        }
    }

    /// Every entry, moved out of the nodes this trie alone holds and cloned out of those it
    /// shares with other versions.
    pub(crate) fn into_entries(self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        let mut entries = Vec::with_capacity(self.len);
        let mut pending = vec![self.root];
        while let Some(node) = pending.pop() {
            match node {
                Child::Empty => {}
                Child::Leaf(leaf) => entries.extend(Arc::unwrap_or_clone(leaf).entries),
                Child::Branch(branch) => pending.extend(Arc::unwrap_or_clone(branch).children),
            }
        }
        entries
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            pending: vec![&self.root],
            leaf: None,
        }
    }
}

impl<K, V> Trie<K, V>
where
    K: Clone + Hash + Eq,
    V: Clone,
{
    /// Stores `value` for `key`, returning the value it replaced. Copies the path to the key's
    /// leaf unless this trie already owns it.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        hasher: &impl BuildHasher,
    ) -> Option<V> {
        let leaf = leaf_for(&mut self.root, hash, 0, hasher);
        match leaf.find_mut(hash, |(k, _)| *k == key) {
            Some((_, old)) => Some(std::mem::replace(old, value)),
            None => {
                leaf.insert_unique(hash, (key, value), |(k, _)| hasher.hash_one(k));
                self.len += 1;
                None
            }
        }
    }

    /// The value `probe` finds, owned by this trie: the path to it is copied unless the trie
    /// already owns it. Copies nothing when the key is absent.
    pub(crate) fn get_mut(
        &mut self,
        probe: impl Probe<K>,
        hasher: &impl BuildHasher,
    ) -> Option<&mut V> {
        self.get(probe)?;
        let hash = probe.hash();
        let leaf = leaf_for(&mut self.root, hash, 0, hasher);
        let (_, value) = leaf.find_mut(hash, |(k, _)| probe.matches(k))?;
        Some(value)
    }

    /// Removes the entry `probe` finds, returning it. Copies the path only when the key is
    /// present.
    pub(crate) fn remove(
        &mut self,
        probe: impl Probe<K>,
        hasher: &impl BuildHasher,
    ) -> Option<(K, V)> {
        self.get(probe)?;
        self.remove_present(probe, hasher)
    }

    /// [`Self::remove`] for a key the caller has just found present, without looking again:
    /// copies the path.
    pub(crate) fn remove_present(
        &mut self,
        probe: impl Probe<K>,
        hasher: &impl BuildHasher,
    ) -> Option<(K, V)> {
        let hash = probe.hash();
        let leaf = leaf_for(&mut self.root, hash, 0, hasher);
        let removed = leaf
            .find_entry(hash, |(k, _)| probe.matches(k))
            .ok()
            .map(|entry| entry.remove().0);
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// Shrinks every leaf that has room to spare, and folds every branch whose subtree holds
    /// [`FOLD_MAX`] entries or fewer into one leaf (an empty one into nothing), copying what it
    /// changes (and the branches above) unless this trie already owns it; returns whether
    /// anything changed.
    pub(crate) fn shrink_to_fit(&mut self, hasher: &impl BuildHasher) -> bool {
        shrink_in(&mut self.root, hasher).changed
    }

    /// Keeps the entries `keep` approves of, calling it once per entry. Copies only the leaves
    /// that lose an entry; returns the removed entries.
    pub(crate) fn retain(&mut self, keep: &mut impl FnMut(&K, &V) -> bool) -> Vec<(K, V)> {
        let mut removed = Vec::new();
        retain_in(&mut self.root, keep, &mut removed);
        self.len -= removed.len();
        removed
    }
}

/// The leaf that holds (or will hold) `hash`, owned by this trie: shared nodes on the way are
/// copied, a missing leaf is created, and a full leaf is split first.
fn leaf_for<'t, K, V>(
    mut node: &'t mut Child<K, V>,
    hash: u64,
    mut depth: u32,
    hasher: &impl BuildHasher,
) -> &'t mut HashTable<(K, V)>
where
    K: Clone + Hash,
    V: Clone,
{
    loop {
        if let Child::Leaf(leaf) = node {
            if leaf.entries.len() >= LEAF_MAX && depth < MAX_DEPTH {
                let entries = std::mem::take(&mut Arc::make_mut(leaf).entries);
                *node = Child::Branch(Arc::new(split(entries, depth, hasher)));
            }
        }
        match node {
            Child::Empty => {
                *node = Child::Leaf(Arc::new(Leaf {
                    entries: HashTable::new(),
                }));
            }
            Child::Leaf(_) => {
                let Child::Leaf(leaf) = node else {
                    unreachable!()
                };
                return &mut Arc::make_mut(leaf).entries;
            }
            Child::Branch(branch) => {
                node = &mut Arc::make_mut(branch).children[slot(hash, depth)];
                depth += 1;
            }
        }
    }
}

/// Spreads a full leaf at `depth` over a new branch's children by the next bits of each hash.
fn split<K: Hash, V>(
    entries: HashTable<(K, V)>,
    depth: u32,
    hasher: &impl BuildHasher,
) -> Branch<K, V> {
    let mut tables: [HashTable<(K, V)>; FANOUT] = std::array::from_fn(|_| HashTable::new());
    for (key, value) in entries {
        let hash = hasher.hash_one(&key);
        tables[slot(hash, depth)].insert_unique(hash, (key, value), |(k, _)| hasher.hash_one(k));
    }
    Branch {
        children: tables.map(|entries| {
            if entries.is_empty() {
                Child::Empty
            } else {
                Child::Leaf(Arc::new(Leaf { entries }))
            }
        }),
    }
}

/// A subtree no larger than this is one leaf after `shrink_to_fit`: half a leaf, so that the
/// writes after a shrink do not split it again at once.
const FOLD_MAX: usize = LEAF_MAX / 2;

/// What [`shrink_in`] did to a subtree.
struct Shrunk {
    changed: bool,
    /// The entries the subtree holds.
    entries: usize,
}

/// Shrinks the subtree at `node`, children first: an empty leaf becomes nothing, a leaf with
/// room to spare is shrunk, and a branch whose children (folded first) hold [`FOLD_MAX`] entries
/// or fewer becomes one leaf holding them, the inverse of [`split`]. Without the folding, a map
/// emptied by removals kept every branch and leaf it ever grew.
fn shrink_in<K: Clone + Hash, V: Clone>(
    node: &mut Child<K, V>,
    hasher: &impl BuildHasher,
) -> Shrunk {
    match node {
        Child::Empty => Shrunk {
            changed: false,
            entries: 0,
        },
        Child::Leaf(leaf) if leaf.entries.is_empty() => {
            *node = Child::Empty;
            Shrunk {
                changed: true,
                entries: 0,
            }
        }
        // Tables run below full, so nearly every leaf has room: each is copied and shrunk.
        Child::Leaf(leaf) => {
            let entries = leaf.entries.len();
            let changed = leaf.entries.capacity() > entries;
            if changed {
                Arc::make_mut(leaf)
                    .entries
                    .shrink_to_fit(|(k, _)| hasher.hash_one(k));
            }
            Shrunk { changed, entries }
        }
        Child::Branch(branch) => {
            let children = &mut Arc::make_mut(branch).children;
            let mut shrunk = Shrunk {
                changed: false,
                entries: 0,
            };
            for child in children.iter_mut() {
                let one = shrink_in(child, hasher);
                shrunk.changed |= one.changed;
                shrunk.entries += one.entries;
            }
            if shrunk.entries <= FOLD_MAX {
                *node = fold(children, shrunk.entries, hasher);
                shrunk.changed = true;
            }
            shrunk
        }
    }
}

/// One leaf holding the entries of `children` (`entries` of them), each of which is a leaf or
/// nothing; nothing if they hold none. Entries a snapshot still shares are cloned, the others
/// moved.
fn fold<K: Clone + Hash, V: Clone>(
    children: &mut [Child<K, V>; FANOUT],
    entries: usize,
    hasher: &impl BuildHasher,
) -> Child<K, V> {
    if entries == 0 {
        return Child::Empty;
    }
    let mut folded = HashTable::with_capacity(entries);
    for child in children {
        match std::mem::replace(child, Child::Empty) {
            Child::Empty => {}
            Child::Leaf(leaf) => {
                for (key, value) in Arc::unwrap_or_clone(leaf).entries {
                    let hash = hasher.hash_one(&key);
                    folded.insert_unique(hash, (key, value), |(k, _)| hasher.hash_one(k));
                }
            }
            Child::Branch(_) => unreachable!("a subtree of so few entries was folded first"),
        }
    }
    Child::Leaf(Arc::new(Leaf { entries: folded }))
}

fn retain_in<K: Clone, V: Clone>(
    node: &mut Child<K, V>,
    keep: &mut impl FnMut(&K, &V) -> bool,
    removed: &mut Vec<(K, V)>,
) {
    match node {
        Child::Empty => {}
        Child::Branch(branch) => {
            // Ask about every entry of the subtree before copying anything, so an unchanged
            // subtree stays shared: visit shared children through a cheap clone of the branch.
            let mut copy = (**branch).clone();
            let before = removed.len();
            for child in &mut copy.children {
                retain_in(child, keep, removed);
            }
            if removed.len() != before {
                *branch = Arc::new(copy);
            }
        }
        Child::Leaf(leaf) => {
            let doomed: Vec<bool> = leaf.entries.iter().map(|(k, v)| !keep(k, v)).collect();
            if doomed.contains(&true) {
                // A clone keeps the bucket layout, so its iteration order matches `doomed`.
                let mut order = doomed.into_iter();
                Arc::make_mut(leaf)
                    .entries
                    .extract_if(|_| order.next().unwrap_or(false))
                    .for_each(|entry| removed.push(entry));
            }
        }
    }
}

/// The leaves of one version, depth first, each handed out as a shared reference to the version's
/// own node. Holding the cursor keeps that version's nodes alive, so it walks one version
/// however many are published meanwhile.
pub struct Leaves<K, V> {
    pending: Vec<Child<K, V>>,
}

impl<K, V> Leaves<K, V> {
    pub(crate) fn of(trie: &Trie<K, V>) -> Self {
        Leaves {
            pending: vec![trie.root.clone()],
        }
    }

    /// About half of the subtrees still to visit, handed to a cursor of their own; `None` once
    /// at most one leaf is left. A lone branch is opened first, so that its children can be
    /// shared out.
    pub(crate) fn split(&mut self) -> Option<Self> {
        loop {
            self.pending.retain(|child| !matches!(child, Child::Empty));
            let [Child::Branch(branch)] = self.pending.as_slice() else {
                break;
            };
            let branch = Arc::clone(branch);
            self.pending.clear();
            self.pending.extend(branch.children.iter().cloned());
        }
        if self.pending.len() < 2 {
            return None;
        }
        let half = self.pending.len() / 2;
        Some(Leaves {
            pending: self.pending.split_off(half),
        })
    }

    /// The entries of the next leaf.
    pub(crate) fn next_leaf(&mut self) -> Option<Arc<Leaf<K, V>>> {
        loop {
            match self.pending.pop()? {
                Child::Empty => {}
                Child::Leaf(leaf) => return Some(leaf),
                Child::Branch(branch) => self.pending.extend(branch.children.iter().cloned()),
            }
        }
    }
}

impl<K, V> Leaf<K, V> {
    /// The leaf's entries.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &(K, V)> {
        self.entries.iter()
    }
}

/// The entries of a trie, depth first, by reference; a
/// [`TrieSnapshot`](crate::TrieSnapshot)'s iterator.
pub struct Iter<'a, K, V> {
    pending: Vec<&'a Child<K, V>>,
    leaf: Option<hashbrown::hash_table::Iter<'a, (K, V)>>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((k, v)) = self.leaf.as_mut().and_then(Iterator::next) {
                return Some((k, v));
            }
            match self.pending.pop()? {
                Child::Empty => {}
                Child::Leaf(leaf) => self.leaf = Some(leaf.entries.iter()),
                Child::Branch(branch) => self.pending.extend(branch.children.iter()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The trie against `std::collections::HashMap`, at sizes that split leaves several levels
    //! deep, with old versions checked to stay exactly as they were.

    use std::collections::HashMap;
    use std::hash::{BuildHasherDefault, Hasher};

    use proptest::prelude::*;

    use super::*;
    use crate::raw::entry::Lookup;

    type Model = HashMap<u32, u32>;

    fn contents(trie: &Trie<u32, u32>) -> Model {
        let entries: Vec<_> = trie.iter().map(|(k, v)| (*k, *v)).collect();
        let model: Model = entries.iter().copied().collect();
        assert_eq!(model.len(), entries.len(), "iteration repeated a key");
        assert_eq!(trie.len(), entries.len(), "len disagrees with the entries");
        model
    }

    /// Inserts, removes, retains and shrinks against a model, keeping a few old versions (O(1) clones) and
    /// checking at the end that each still holds exactly what it held when it was taken.
    fn differential(hasher: &impl BuildHasher, ops: &[(u8, u32, u32)]) {
        let mut trie = Trie::default();
        let mut model = Model::new();
        let mut kept = Vec::new();
        for (i, &(op, key, value)) in ops.iter().enumerate() {
            let hash = hasher.hash_one(key);
            match op % 4 {
                0 | 1 => assert_eq!(
                    trie.insert(hash, key, value, hasher),
                    model.insert(key, value)
                ),
                2 => {
                    let removed = trie.remove(Lookup { hash, key: &key }, hasher);
                    assert_eq!(removed, model.remove_entry(&key));
                }
                _ if i % 97 == 0 => {
                    let mut removed = trie.retain(&mut |k, _| k % 3 != value % 3);
                    removed.sort_unstable();
                    let mut expected: Vec<_> =
                        model.extract_if(|k, _| k % 3 == value % 3).collect();
                    expected.sort_unstable();
                    assert_eq!(removed, expected);
                }
                _ if i % 89 == 0 => {
                    trie.shrink_to_fit(hasher);
                }
                _ => assert_eq!(
                    trie.get(Lookup { hash, key: &key }).map(|(_, v)| *v),
                    model.get(&key).copied()
                ),
            }
            if i % 500 == 0 {
                kept.push((trie.clone(), model.clone()));
            }
        }
        assert_eq!(contents(&trie), model);
        for (old, then) in &kept {
            assert_eq!(&contents(old), then, "an old version changed");
        }
    }

    fn ops(keys: u32) -> impl Strategy<Value = Vec<(u8, u32, u32)>> {
        proptest::collection::vec((any::<u8>(), 0..keys, any::<u32>()), 1..6000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Thousands of keys: leaves split into branches two and three levels deep.
        #[test]
        fn matches_a_hash_map(ops in ops(20_000)) {
            differential(&foldhash::fast::FixedState::with_seed(7), &ops);
        }

        /// A hasher that gives every key the same hash: the trie bottoms out at its maximum depth
        /// with one ever-growing leaf, and stays correct.
        #[test]
        fn survives_a_constant_hash(ops in ops(400)) {
            differential(&BuildHasherDefault::<Constant>::default(), &ops);
        }
    }

    #[derive(Default)]
    struct Constant;

    impl Hasher for Constant {
        fn finish(&self) -> u64 {
            0x5555_5555_5555_5555
        }
        fn write(&mut self, _: &[u8]) {}
    }

    /// Shrinking folds what removals thinned out back into leaves, and an emptied trie into
    /// nothing, while a version taken before keeps its own nodes and entries.
    #[test]
    fn shrinking_folds_thinned_subtrees_and_keeps_old_versions() {
        let hasher = foldhash::fast::FixedState::with_seed(3);
        let find = |trie: &Trie<u32, u32>, k: u32| {
            trie.get(Lookup {
                hash: hasher.hash_one(k),
                key: &k,
            })
            .map(|(_, v)| *v)
        };
        let mut trie = Trie::default();
        for k in 0..20_000u32 {
            trie.insert(hasher.hash_one(k), k, k, &hasher);
        }
        let full = trie.clone();
        // Few enough to fold into one leaf (two under the stress cfg's tiny leaves).
        let kept = FOLD_MAX.min(10) as u32;
        trie.retain(&mut |k, _| *k < kept);
        assert!(
            matches!(trie.root, Child::Branch(_)),
            "removals leave the branches"
        );
        assert!(trie.shrink_to_fit(&hasher));
        let Child::Leaf(leaf) = &trie.root else {
            panic!("{kept} entries must fold into one leaf");
        };
        assert_eq!(leaf.entries.len(), kept as usize);
        assert!((0..kept).all(|k| find(&trie, k) == Some(k)));
        assert_eq!(find(&trie, kept), None);
        trie.retain(&mut |_, _| false);
        assert!(trie.shrink_to_fit(&hasher));
        assert!(matches!(trie.root, Child::Empty));
        assert_eq!(trie.len(), 0);
        assert_eq!(contents(&full).len(), 20_000);
        assert!((0..20_000).step_by(997).all(|k| find(&full, k) == Some(k)));
        // A folded trie grows and splits again as before.
        for k in 0..20_000u32 {
            trie.insert(hasher.hash_one(k), k, k + 1, &hasher);
        }
        assert!(matches!(trie.root, Child::Branch(_)));
        assert!(
            (0..20_000)
                .step_by(997)
                .all(|k| find(&trie, k) == Some(k + 1))
        );
    }

    #[test]
    fn many_keys_split_and_share_structure() {
        let hasher = foldhash::fast::FixedState::with_seed(1);
        let mut trie = Trie::default();
        for k in 0..100_000u32 {
            trie.insert(hasher.hash_one(k), k, k, &hasher);
        }
        let before = trie.clone();
        trie.insert(hasher.hash_one(7u32), 7, 70, &hasher);
        assert_eq!(
            before.get(Lookup {
                hash: hasher.hash_one(7u32),
                key: &7
            }),
            Some((&7, &7))
        );
        assert_eq!(
            trie.get(Lookup {
                hash: hasher.hash_one(7u32),
                key: &7
            }),
            Some((&7, &70))
        );
        // One write copied one path; every other top-level subtree is still shared.
        let (Child::Branch(old), Child::Branch(new)) = (&before.root, &trie.root) else {
            panic!("100,000 entries must have split the root");
        };
        let shared = (old.children.iter().zip(&new.children))
            .filter(|(a, b)| match (a, b) {
                (Child::Branch(a), Child::Branch(b)) => Arc::ptr_eq(a, b),
                (Child::Leaf(a), Child::Leaf(b)) => Arc::ptr_eq(a, b),
                _ => false,
            })
            .count();
        assert_eq!(shared, FANOUT - 1);
    }
}
