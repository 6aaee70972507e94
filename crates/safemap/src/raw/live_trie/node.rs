//! The nodes of a live trie: branches whose slots change in place under the branch's lock, and
//! leaves that never change once made.
//!
//! A slot holds one strong count of an `Arc<Leaf>` or an `Arc<Inner>` (the pointer's low bit
//! marks a branch), or nothing. Counts are edges: a branch's slot, the map's root pointer, a
//! snapshot. A slot that a writer overwrites gives its count back through the collector, once
//! no reader that may have loaded it remains; a node dropped with its last count gives its
//! children's back at once (module docs of `live_trie`, "Reclamation").

use std::marker::PhantomData;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use smallvec::SmallVec;

use crate::raw::entry::Probe;
use crate::raw::reclaim::{Collector, Guard};
use crate::sync::{AtomicPtr, Mutex};

/// Hash bits the root indexes by: the top eight, so that 65,536 keys sit one branch below it.
/// Under `--cfg safemap_stress` (`SAFEMAP_STRESS=1`, `build.rs`) and shuttle, the trie is binary
/// and its leaves hold two entries, so that a few keys make branches, splits and copies of older
/// branches.
#[cfg(not(any(safemap_stress, shuttle)))]
pub(crate) const ROOT_BITS: u32 = 8;
#[cfg(any(safemap_stress, shuttle))]
pub(crate) const ROOT_BITS: u32 = 1;
/// Hash bits each branch below the root indexes by.
#[cfg(not(any(safemap_stress, shuttle)))]
pub(crate) const BITS: u32 = 4;
#[cfg(any(safemap_stress, shuttle))]
pub(crate) const BITS: u32 = 1;
/// Where the root's bits start.
pub(crate) const ROOT_SHIFT: u32 = 64 - ROOT_BITS;
/// The largest leaf a write splits into a branch; a write copies its leaf, so this bounds what a
/// write copies. A leaf below the last branch level grows past it (only keys whose hashes agree
/// on every bit the branches use meet there).
#[cfg(not(any(safemap_stress, shuttle)))]
pub(crate) const LEAF_MAX: usize = 32;
#[cfg(any(safemap_stress, shuttle))]
pub(crate) const LEAF_MAX: usize = 2;

/// The low pointer bit that marks a branch (nodes are aligned to at least 8 bytes).
const BRANCH: usize = 1;

/// The map's root branch.
pub(crate) type Root<K, V> = Branch<K, V, { 1usize << ROOT_BITS }>;
/// A branch below the root.
pub(crate) type Inner<K, V> = Branch<K, V, { 1usize << BITS }>;

/// The hash bits below `shift` that a branch below the root indexes by, if any are left.
pub(crate) fn below(shift: u32) -> Option<u32> {
    shift.checked_sub(BITS)
}

/// A leaf's one-byte summary of a hash: its low seven bits, with the top bit set so that no tag
/// is zero.
fn tag_of(hash: u64) -> u8 {
    (hash as u8 & 0x7f) | 0x80
}

/// Up to about [`LEAF_MAX`] entries, with a tag each. Never changed once shared: a write makes a
/// changed copy. The tags sit in the leaf's first cache line with the entries' pointer, and the
/// entries in an array of their own, as long as they are many (inline room for [`LEAF_MAX`] took
/// 96 bytes an entry on average over the sizes `safemap-bench memory` sweeps, against 28 for
/// hashbrown, since most leaves are far from full).
#[derive(Clone)]
pub(crate) struct Leaf<K, V> {
    /// Entry `i`'s tag is byte `i % 8` of word `i / 8`; bytes past the last entry are zero, which
    /// no tag is, so a lookup compares whole words.
    tags: SmallVec<[u64; LEAF_MAX.div_ceil(8)]>,
    entries: Vec<(K, V)>,
}

impl<K, V> Leaf<K, V> {
    /// A leaf of one entry.
    pub(crate) fn single(hash: u64, key: K, value: V) -> Self {
        let mut leaf = Leaf::with_room(1);
        leaf.push(hash, key, value);
        leaf
    }

    /// An empty leaf with room for `entries`.
    fn with_room(entries: usize) -> Self {
        Leaf {
            tags: SmallVec::with_capacity(entries.div_ceil(8)),
            entries: Vec::with_capacity(entries),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether a write adding an entry splits this leaf (where bits are left to split by).
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= LEAF_MAX
    }

    pub(crate) fn entry(&self, index: usize) -> &(K, V) {
        &self.entries[index]
    }

    pub(crate) fn entries(&self) -> std::slice::Iter<'_, (K, V)> {
        self.entries.iter()
    }

    pub(crate) fn push(&mut self, hash: u64, key: K, value: V) {
        let at = self.len();
        if at % 8 == 0 {
            self.tags.push(0);
        }
        self.set_tag(at, tag_of(hash));
        self.entries.push((key, value));
    }

    fn tag(&self, index: usize) -> u8 {
        (self.tags[index / 8] >> (index % 8 * 8)) as u8
    }

    fn set_tag(&mut self, index: usize, tag: u8) {
        let word = &mut self.tags[index / 8];
        let shift = index % 8 * 8;
        *word = (*word & !(0xff << shift)) | u64::from(tag) << shift;
    }

    /// The value at `index`, to change.
    pub(crate) fn value_mut(&mut self, index: usize) -> &mut V {
        &mut self.entries[index].1
    }

    /// A copy with one more entry, sized for it.
    pub(crate) fn with_entry(&self, hash: u64, key: K, value: V) -> Self
    where
        K: Clone,
        V: Clone,
    {
        let mut next = Leaf::with_room(self.len() + 1);
        next.tags.extend_from_slice(&self.tags);
        next.entries.extend_from_slice(&self.entries);
        next.push(hash, key, value);
        next
    }

    /// The entries, moved out.
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        self.entries.into_iter()
    }

    /// Takes the entry at `index` out (the last one takes its place).
    pub(crate) fn take(&mut self, index: usize) -> (K, V) {
        let last = self.len() - 1;
        self.set_tag(index, self.tag(last));
        self.set_tag(last, 0);
        if last % 8 == 0 {
            self.tags.pop();
        }
        self.entries.swap_remove(index)
    }

    /// The index of the entry `probe` finds: tags compared eight at a time, then keys.
    #[inline]
    pub(crate) fn find(&self, probe: &impl Probe<K>) -> Option<usize> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        let wanted = u64::from(tag_of(probe.hash())) * ONES;
        for (group, &word) in self.tags.iter().enumerate() {
            // A zero byte of `x` is a tag equal to the wanted one; bytes past the leaf's end are
            // zero in `word`, which no tag is, so they never match.
            let x = word ^ wanted;
            // Each byte whose top bit this sets is a zero byte of `x`, or (rarely) one above a
            // zero byte; the key comparison rejects the latter.
            let mut candidates = x.wrapping_sub(ONES) & !x & (ONES << 7);
            while candidates != 0 {
                let index = group * 8 + candidates.trailing_zeros() as usize / 8;
                candidates &= candidates - 1;
                if index < self.len() && probe.matches(&self.entries[index].0) {
                    return Some(index);
                }
            }
        }
        None
    }
}

/// What a slot holds, borrowed.
pub(crate) enum Node<'a, K, V> {
    Empty,
    Leaf(&'a Leaf<K, V>),
    Branch(&'a Inner<K, V>),
}

/// What a slot holds, owned: one strong count.
pub(crate) enum Edge<K, V> {
    Leaf(Arc<Leaf<K, V>>),
    Branch(Arc<Inner<K, V>>),
}

impl<K, V> Edge<K, V> {
    fn into_raw(self) -> *mut () {
        match self {
            Edge::Leaf(leaf) => Arc::into_raw(leaf).cast_mut().cast(),
            Edge::Branch(branch) => Arc::into_raw(branch)
                .cast_mut()
                .map_addr(|a| a | BRANCH)
                .cast(),
        }
    }

    /// # Safety
    /// `raw` is non-null and came from [`Edge::into_raw`], and its count is taken back once.
    unsafe fn from_raw(raw: *mut ()) -> Self {
        if raw.addr() & BRANCH != 0 {
            let branch = raw.map_addr(|a| a & !BRANCH).cast::<Inner<K, V>>();
            // SAFETY: as the caller promises.
            Edge::Branch(unsafe { Arc::from_raw(branch) })
        } else {
            // SAFETY: as the caller promises.
            Edge::Leaf(unsafe { Arc::from_raw(raw.cast::<Leaf<K, V>>()) })
        }
    }
}

/// A node's decoding of a slot's pointer.
///
/// # Safety
/// `raw` is null or came from [`Edge::into_raw`], and its node outlives `'a`.
unsafe fn decode<'a, K, V>(raw: *mut ()) -> Node<'a, K, V> {
    if raw.is_null() {
        Node::Empty
    } else if raw.addr() & BRANCH != 0 {
        // SAFETY: as the caller promises.
        Node::Branch(unsafe { &*raw.map_addr(|a| a & !BRANCH).cast::<Inner<K, V>>() })
    } else {
        // SAFETY: as the caller promises.
        Node::Leaf(unsafe { &*raw.cast::<Leaf<K, V>>() })
    }
}

/// A place for one edge.
pub(crate) struct Slot<K, V> {
    raw: AtomicPtr<()>,
    _holds: PhantomData<Edge<K, V>>,
}

impl<K, V> Slot<K, V> {
    pub(crate) fn new(edge: Option<Edge<K, V>>) -> Self {
        Slot {
            raw: AtomicPtr::new(edge.map_or(ptr::null_mut(), Edge::into_raw)),
            _holds: PhantomData,
        }
    }

    /// What the slot holds, for a reader inside `guard`: the node stays while the guard lives.
    #[inline(always)]
    pub(crate) fn read<'g>(&self, guard: &'g Guard<'_>) -> Node<'g, K, V> {
        // The edge came from `into_raw`; an edge a slot loses keeps its count until no guard that
        // may have loaded it remains (`replace`), so its node, and by induction every node below
        // it, outlives this guard (module docs of `live_trie`, "Reclamation").
        // SAFETY: as just argued, the node outlives `'g`.
        unsafe { decode(guard.load(&self.raw)) }
    }

    /// What the slot holds, for a caller that holds a count of the slot's branch (directly or
    /// through its ancestors) and that no write to the slot can overlap: a snapshot's nodes,
    /// which are older than every generation a map changes, or a batch's private copy.
    ///
    /// # Safety
    /// No one replaces the slot's edge while `'a` lasts, and the slot's branch outlives `'a`.
    pub(crate) unsafe fn held<'a>(&self) -> Node<'a, K, V> {
        // Acquire: pairs with the Release store that published the edge (the gate's closing
        // also orders it, but this costs nothing on x86).
        // SAFETY: no one replaces the edge (as the caller promises), so its count, and the node,
        // last as long as the branch holding it.
        unsafe { decode(self.raw.load(Acquire)) }
    }

    /// Takes one more count of what the slot holds: for a copy of a branch no one changes.
    ///
    /// # Safety
    /// No write replaces the slot's edge any more (its branch is older than the generation of
    /// every map that reaches it), and the caller holds a count of the slot's branch.
    pub(crate) unsafe fn share(&self) -> Option<Edge<K, V>> {
        // Relaxed: the slot's branch no longer changes, and the closed gate ordered its last
        // store before this copy (module docs of `live_trie`).
        let raw = self.raw.load(Relaxed);
        if raw.is_null() {
            return None;
        }
        // SAFETY: `raw` came from `into_raw` and the slot keeps its count while this runs (as
        // the caller promises); the increment gives the copy a count of its own.
        unsafe {
            if raw.addr() & BRANCH != 0 {
                Arc::increment_strong_count(raw.map_addr(|a| a & !BRANCH).cast::<Inner<K, V>>());
            } else {
                Arc::increment_strong_count(raw.cast::<Leaf<K, V>>());
            }
            Some(Edge::from_raw(raw))
        }
    }

    /// Stores `edge`; the edge it replaces gives its count back once no reader that may have
    /// loaded it remains. For the holder of the slot's branch's lock, in a branch of its map's
    /// generation.
    pub(crate) fn replace(&self, edge: Option<Edge<K, V>>, collector: &Collector) {
        let new = edge.map_or(ptr::null_mut(), Edge::into_raw);
        // Release: a reader that loads the new edge sees the node initialized. Relaxed would
        // do for the old value: the lock holder alone stores here.
        let old = self.raw.swap(new, Release);
        if old.is_null() {
            return;
        }
        // SAFETY: `old` came from `into_raw`, carries the slot's count, and is unreachable from
        // this slot for every reader that loads it from now on; the collector gives the count
        // back after the readers that may hold it.
        unsafe {
            if old.addr() & BRANCH != 0 {
                collector.retire_arc(old.map_addr(|a| a & !BRANCH).cast::<Inner<K, V>>());
            } else {
                collector.retire_arc(old.cast::<Leaf<K, V>>());
            }
        }
    }
}

impl<K, V> Slot<K, V> {
    /// The slot's edge, moved out.
    fn into_edge(mut self) -> Option<Edge<K, V>> {
        let raw = std::mem::replace(self.raw.get_mut(), ptr::null_mut());
        // SAFETY: the slot owned the count; it is moved out once, and the slot left empty.
        (!raw.is_null()).then(|| unsafe { Edge::from_raw(raw) })
    }
}

impl<K, V> Drop for Slot<K, V> {
    fn drop(&mut self) {
        let raw = *self.raw.get_mut();
        if !raw.is_null() {
            // SAFETY: the slot owns the count (`new`, `replace`), given back once here. The slot's
            // branch is being dropped with its last count, so no reader reaches this slot.
            drop(unsafe { Edge::<K, V>::from_raw(raw) });
        }
    }
}

/// `N` slots, indexed by hash bits, the generation that made the branch, and the lock its
/// writers take.
pub(crate) struct Branch<K, V, const N: usize> {
    generation: u64,
    lock: Mutex<()>,
    slots: [Slot<K, V>; N],
}

impl<K, V, const N: usize> Branch<K, V, N> {
    pub(crate) fn empty(generation: u64) -> Self {
        Branch {
            generation,
            lock: Mutex::new(()),
            slots: std::array::from_fn(|_| Slot::new(None)),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn lock(&self) -> &Mutex<()> {
        &self.lock
    }

    /// The slot for `hash`, whose bits from `shift` up index this branch.
    #[inline(always)]
    pub(crate) fn slot(&self, hash: u64, shift: u32) -> &Slot<K, V> {
        &self.slots[(hash >> shift) as usize & (N - 1)]
    }

    pub(crate) fn slots(&self) -> &[Slot<K, V>] {
        &self.slots
    }

    /// A copy of generation `generation` sharing every child, whose children then gain a
    /// parent.
    ///
    /// # Safety
    /// No write changes this branch any more: it is older than the generation of every map
    /// that reaches it, or its map's gate is closed and it is the map's root.
    pub(crate) unsafe fn copy(&self, generation: u64) -> Self {
        Branch {
            generation,
            lock: Mutex::new(()),
            // SAFETY: as the caller promises; `&self` holds the branch.
            slots: std::array::from_fn(|i| Slot::new(unsafe { self.slots[i].share() })),
        }
    }

    /// The branch's edges, moved out.
    pub(crate) fn into_edges(self) -> impl Iterator<Item = Edge<K, V>> {
        self.slots.into_iter().filter_map(Slot::into_edge)
    }

    /// The slot at `index`, with an edge to store in an unpublished branch.
    pub(crate) fn set(&mut self, index: usize, edge: Edge<K, V>) {
        self.slots[index] = Slot::new(Some(edge));
    }
}

/// A subtree holding `entries` (each with its hash), of generation `generation`, indexed by the
/// hash bits from `shift` up, where bits are left: a leaf if they fit in one.
pub(crate) fn subtree<K, V>(
    entries: Vec<(u64, K, V)>,
    shift: Option<u32>,
    generation: u64,
) -> Edge<K, V> {
    let Some(shift) = shift.filter(|_| entries.len() > LEAF_MAX) else {
        let mut leaf = Leaf::with_room(entries.len());
        entries.into_iter().for_each(|(h, k, v)| leaf.push(h, k, v));
        return Edge::Leaf(Arc::new(leaf));
    };
    let mut parts: [Vec<(u64, K, V)>; 1 << BITS] = std::array::from_fn(|_| Vec::new());
    for entry in entries {
        parts[(entry.0 >> shift) as usize & ((1 << BITS) - 1)].push(entry);
    }
    let mut branch = Inner::empty(generation);
    for (index, part) in parts.into_iter().enumerate() {
        if !part.is_empty() {
            branch.set(index, subtree(part, below(shift), generation));
        }
    }
    Edge::Branch(Arc::new(branch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::entry::Lookup;

    fn probe(hash: u64, key: &u64) -> Lookup<'_, u64> {
        Lookup { hash, key }
    }

    #[test]
    fn a_leaf_finds_by_tag_then_key_and_only_its_entries() {
        let mut leaf = Leaf::single(0x11, 1u64, "one");
        // Ten entries, two of them under one tag: two groups of tags, the second partial.
        for key in 2..=10u64 {
            leaf.push(0x11 + key, key, "more");
        }
        leaf.push(0x11 + 0x80, 11, "same tag as 1");
        assert_eq!(leaf.find(&probe(0x11, &1)), Some(0));
        assert_eq!(leaf.find(&probe(0x11, &11)), Some(10));
        assert_eq!(leaf.find(&probe(0x11 + 7, &7)), Some(6));
        assert_eq!(leaf.find(&probe(0x11 + 8, &8)), Some(7));
        // An absent key whose tag is present, and one whose tag is not.
        assert_eq!(leaf.find(&probe(0x11 + 7, &99)), None);
        assert_eq!(leaf.find(&probe(0x7f, &99)), None);
        let (key, _) = leaf.take(0);
        assert_eq!(key, 1);
        assert_eq!(leaf.find(&probe(0x11, &1)), None);
        assert_eq!(leaf.find(&probe(0x11, &11)), Some(0));
    }

    #[test]
    fn a_subtree_splits_by_hash_bits_until_its_leaves_fit() {
        let hash_of = |k: u64| k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let entries: Vec<_> = (0..200u64).map(|k| (hash_of(k), k, k)).collect();
        let Edge::Branch(branch) = subtree(entries, below(ROOT_SHIFT), 7) else {
            panic!("200 entries make a branch");
        };
        assert_eq!(branch.generation(), 7);
        for key in 0..200u64 {
            let hash = hash_of(key);
            let mut shift = ROOT_SHIFT - BITS;
            let mut slot = branch.slot(hash, shift);
            loop {
                // SAFETY: the branch is held here and no one changes it.
                match unsafe { slot.held() } {
                    Node::Branch(next) => {
                        shift -= BITS;
                        slot = next.slot(hash, shift);
                    }
                    Node::Leaf(leaf) => {
                        assert!(leaf.len() <= LEAF_MAX);
                        let at = leaf.find(&probe(hash, &key)).expect("every key is found");
                        assert_eq!(leaf.entry(at).1, key);
                        break;
                    }
                    Node::Empty => panic!("key {key} lost"),
                }
            }
        }
    }
}
