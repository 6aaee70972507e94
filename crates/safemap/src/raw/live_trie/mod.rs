//! A live trie: a hash trie whose branches change in place under a lock each, with copy on write
//! only for what a snapshot still shares. `SnapshotMap`'s core (`raw::versioned`) is built on it.
//!
//! # Shape
//! The root has 256 slots, indexed by the hash's top eight bits; the branches below it have 16,
//! indexed by the next four bits each. A slot holds nothing, a branch, or a leaf of up to
//! [`LEAF_MAX`] entries (`node.rs`). Leaves never change once shared: a write copies its leaf
//! with the change and stores the copy in the leaf's slot, and a leaf that would pass
//! [`LEAF_MAX`] becomes a branch of leaves split by the next bits. So 65,536 keys sit one branch
//! below the root, and a million two.
//!
//! # Reads
//! A read enters a reclamation guard (a store to its own thread's slot), loads the root and the
//! slots on its key's path with acquire, and probes one leaf: it takes no lock and writes nothing
//! another thread writes.
//!
//! # Writes
//! A write passes the writers' gate (`raw/gate.rs`, a store to its own thread's slot), walks to
//! the slot that holds its key's leaf, locks the branch holding that slot, and stores a changed
//! copy of the leaf there; its closure runs once, under that lock. Writes to other branches go
//! on in parallel. A branch, once in the trie, leaves it only with the whole root (a snapshot's
//! copy, `clear`, a batch), so a write that finds a branch in a slot can walk into it unlocked.
//!
//! # Generations and snapshots
//! Every branch records the generation that made it; the map has a current generation, which
//! changes only while the gate is closed, so a write sees one throughout. A write changes a
//! branch in place only if it is of the current generation. `snapshot` closes the gate, keeps
//! the current root for the snapshot, and publishes a copy of it (sharing every child) under a
//! fresh generation: from then on every node the snapshot reaches is of an older generation,
//! and a write that meets an older branch on its path first replaces it, under its parent's
//! lock, with a copy of the current generation (the parent is current, by induction from the
//! root). So nothing a snapshot reaches ever changes, and a snapshot costs one copy of the root.
//! Generations come from one counter for the process, so a map made from another's snapshot
//! never takes the other's branches for its own. A batch (`rebuild`) works the same way on a
//! private copy of the root with the gate closed, and publishes it with one store.
//!
//! # Reclamation
//! A node is held by counts (`Arc`), one per edge: a slot, the root pointer, a snapshot. A slot
//! or root pointer that is overwritten gives its count back through the collector (seize), once
//! every reader that may have loaded the old edge has left; a node dropped with its last count
//! gives its children's counts back at once. That is safe: a reader inside a node reached it
//! along a path of edges from the root it loaded, and each edge of that path is either still in
//! place or was overwritten after the reader loaded it, so its count is given back only after
//! the reader left; by induction from the root, every node on the path keeps a count until
//! then. A snapshot's reader needs no guard: its snapshot's count keeps the root, and every node
//! below has a count from its parent there, which never changes.

mod iter;
mod node;

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::Instant;

pub use iter::Iter;
pub use iter::Leaves;
pub(crate) use iter::lock_domains;
use node::{BITS, Edge, Node, ROOT_SHIFT, Slot, below, subtree};
pub(crate) use node::{Leaf, Root};

use crate::raw::entry::Probe;
use crate::raw::gate::{Closed, Gate};
use crate::raw::install_once;
use crate::raw::reclaim::{self, Collector, Guard, LazyCollector};
use crate::sync::{AtomicPtr, AtomicU64, Mutex, MutexGuard};
use crate::tally::acquire_timed;

/// Retired edges a thread gives back at a time: each batch pays a heavy barrier.
const RECLAIM_BATCH: usize = 256;

/// Where generations come from, for every map of the process (module docs).
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn fresh_generation() -> u64 {
    // Relaxed: only uniqueness matters.
    GENERATIONS.fetch_add(1, Relaxed)
}

pub(crate) struct LiveTrie<K, V> {
    /// One strong count of the current root; null until the first write, and after `clear`.
    root: AtomicPtr<Root<K, V>>,
    /// The generation writes change in place; changes only while the gate is closed.
    generation: AtomicU64,
    gate: Gate,
    /// Made by the first write, before it makes the root.
    collector: LazyCollector,
    _holds: PhantomData<Arc<Root<K, V>>>,
}

// SAFETY: the map owns its nodes through `root` (as an `Arc<Root>` would), and shares them with
// readers on other threads: keys and values are dropped wherever a count ends, and read through
// shared references from any thread. The gate and the collector are `Sync`.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for LiveTrie<K, V> {}
// SAFETY: as above.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for LiveTrie<K, V> {}

impl<K, V> Default for LiveTrie<K, V> {
    fn default() -> Self {
        Self::starting_from(None, fresh_generation(), 0)
    }
}

/// The slot a write changes, with its branch's lock held.
pub(crate) struct Located<'g, K, V> {
    slot: &'g Slot<K, V>,
    /// The hash bits from this up index the slot's branch.
    shift: u32,
    generation: u64,
    guard: &'g Guard<'g>,
    collector: &'g Collector,
    _held: MutexGuard<'g, ()>,
}

impl<'g, K, V> Located<'g, K, V> {
    /// The leaf in the slot, if any: never a branch while the lock is held.
    pub(crate) fn leaf(&self) -> Option<&'g Leaf<K, V>> {
        match self.slot.read(self.guard) {
            Node::Leaf(leaf) => Some(leaf),
            Node::Empty => None,
            Node::Branch(_) => unreachable!("a slot holding a branch is never locked for a write"),
        }
    }

    /// Stores `leaf` in the slot, or empties it.
    pub(crate) fn store(&self, leaf: Option<Leaf<K, V>>) {
        let edge = leaf.map(|leaf| Edge::Leaf(Arc::new(leaf)));
        self.slot.replace(edge, self.collector);
    }

    /// Whether a full leaf here can split: hash bits are left below this slot's.
    pub(crate) fn can_split(&self) -> bool {
        below(self.shift).is_some()
    }

    /// Stores a subtree of `entries` (each with its hash) in the slot.
    pub(crate) fn store_split(&self, entries: Vec<(u64, K, V)>) {
        let edge = subtree(entries, below(self.shift), self.generation);
        self.slot.replace(Some(edge), self.collector);
    }
}

/// Waits for `lock`, until `deadline` if there is one.
fn acquire(lock: &Mutex<()>, deadline: Option<Instant>) -> Option<MutexGuard<'_, ()>> {
    match deadline {
        None => Some(acquire_timed(|| lock.try_lock(), || lock.lock())),
        Some(deadline) => lock.try_lock_until(deadline),
    }
}

impl<K, V> LiveTrie<K, V> {
    /// A map of generation `generation` whose root is `root`, holding `len` entries.
    fn starting_from(root: Option<Root<K, V>>, generation: u64, len: usize) -> Self {
        reclaim::register_process();
        let root = root.map_or(std::ptr::null(), |root| Arc::into_raw(Arc::new(root)));
        let trie = LiveTrie {
            generation: AtomicU64::new(generation),
            root: AtomicPtr::new(root.cast_mut()),
            gate: Gate::new(),
            collector: LazyCollector::with_batch(RECLAIM_BATCH),
            _holds: PhantomData,
        };
        if len > 0 {
            // Closing pays the heavy barrier: only a map made holding entries needs it.
            trie.gate.close().count_change(len as isize);
        }
        trie
    }

    /// A map holding what `root` holds, `len` entries, sharing its nodes.
    ///
    /// # Safety
    /// No write changes a node below `root` any more (a snapshot's root).
    pub(crate) unsafe fn from_kept(root: &Root<K, V>, len: usize) -> Self {
        let generation = fresh_generation();
        // SAFETY: as the caller promises.
        Self::starting_from(Some(unsafe { root.copy(generation) }), generation, len)
    }

    /// The root, if there is one, for a reader inside `guard`.
    fn root<'g>(&self, guard: &'g Guard<'_>) -> Option<&'g Root<K, V>> {
        // SAFETY: the pointer holds a count of the root; a root it loses gives that count back
        // only after the guards that may have loaded it (`publish`).
        unsafe { guard.load(&self.root).as_ref() }
    }

    /// The root, made first if the map has none, for a write inside `guard` with a pass
    /// through the gate (so no closer replaces the root meanwhile).
    fn root_for_write<'g>(&self, guard: &'g Guard<'_>, generation: u64) -> &'g Root<K, V> {
        if let Some(root) = self.root(guard) {
            return root;
        }
        let fresh = Arc::into_raw(Arc::new(Root::empty(generation))).cast_mut();
        let made = install_once(&self.root, fresh, |lost| {
            // SAFETY: a root that lost was never shared; its one count is taken back once.
            drop(unsafe { Arc::from_raw(lost) })
        });
        // SAFETY: published, and given back only after the guards that may have loaded it.
        unsafe { &*made }
    }

    /// Runs `read` on the entry `probe` finds, as of a moment within the call.
    #[inline]
    pub(crate) fn get<R>(&self, probe: impl Probe<K>, read: impl FnOnce(&K, &V) -> R) -> Option<R> {
        // No collector: nothing was ever written.
        let guard = self.collector.get()?.enter();
        let root = self.root(&guard)?;
        let (key, value) = find_below(root, &probe, |slot| slot.read(&guard))?;
        Some(read(key, value))
    }

    /// Locks the slot `hash` leads to below `root` (of generation `generation`), replacing each
    /// older branch on the way by a copy of this generation; `None` once `deadline` passes.
    fn locate<'g>(
        &'g self,
        root: &'g Root<K, V>,
        hash: u64,
        generation: u64,
        guard: &'g Guard<'g>,
        deadline: Option<Instant>,
    ) -> Option<Located<'g, K, V>> {
        let (mut lock, mut shift) = (root.lock(), ROOT_SHIFT);
        let mut slot = root.slot(hash, shift);
        loop {
            match slot.read(guard) {
                Node::Branch(branch) if branch.generation() == generation => {
                    (lock, shift) = (branch.lock(), shift - BITS);
                    slot = branch.slot(hash, shift);
                }
                Node::Branch(older) => {
                    let _held = acquire(lock, deadline)?;
                    // Another write may have copied it meanwhile; then the loop walks into that.
                    if matches!(slot.read(guard), Node::Branch(b) if std::ptr::eq(b, older)) {
                        // SAFETY: a branch of an older generation never changes again.
                        let copy = Arc::new(unsafe { older.copy(generation) });
                        slot.replace(Some(Edge::Branch(copy)), self.collector.made());
                    }
                }
                _ => {
                    let held = acquire(lock, deadline)?;
                    // A write may have split the leaf meanwhile: then walk on.
                    if !matches!(slot.read(guard), Node::Branch(_)) {
                        return Some(Located {
                            slot,
                            shift,
                            generation,
                            guard,
                            collector: self.collector.made(),
                            _held: held,
                        });
                    }
                }
            }
        }
    }

    /// Runs `edit` on the slot for `hash`, locked, inside a pass through the gate, with
    /// `payload`, and counts the entries it says it added; hands `payload` back if `deadline`
    /// passes first.
    pub(crate) fn write<P, R>(
        &self,
        deadline: Option<Instant>,
        hash: u64,
        payload: P,
        edit: impl FnOnce(&Located<'_, K, V>, &mut isize, P) -> R,
    ) -> Result<R, P> {
        let Some(pass) = self.gate.pass(deadline) else {
            return Err(payload);
        };
        let collector = self.collector.made();
        let guard = collector.enter();
        // Relaxed: it changes only while the gate is closed, and passing it acquired the store
        // that reopened it.
        let generation = self.generation.load(Relaxed);
        let root = self.root_for_write(&guard, generation);
        let Some(located) = self.locate(root, hash, generation, &guard, deadline) else {
            return Err(payload);
        };
        let mut added = 0;
        let result = edit(&located, &mut added, payload);
        drop(located);
        pass.count(added);
        Ok(result)
    }

    /// Replaces the root by `root`, of generation `generation`, with the gate closed; the old
    /// root's count is given back after the readers that may hold it.
    fn publish(&self, root: Option<Arc<Root<K, V>>>, generation: u64, _closed: &Closed<'_>) {
        // Relaxed: the gate's reopening (release) orders it before every write that passes later.
        self.generation.store(generation, Relaxed);
        let new = root.map_or(std::ptr::null(), Arc::into_raw).cast_mut();
        // Release: a reader that loads the new root sees it initialized.
        let old = self.root.swap(new, Release);
        if !old.is_null() {
            // SAFETY: `old` came from `Arc::into_raw` and carries the pointer's count, and no
            // reader that loads the root from now on reaches it through the pointer. A root was
            // made by a write, which made the collector first.
            unsafe { self.collector.made().retire_arc(old) };
        }
    }

    /// The current root, with a count of its own, for a caller holding the closed gate.
    fn keep_root(&self, _closed: &Closed<'_>) -> Option<Arc<Root<K, V>>> {
        // Relaxed: with the gate closed no write replaces it, and closing ordered its store.
        let raw = self.root.load(Relaxed);
        if raw.is_null() {
            return None;
        }
        // SAFETY: the pointer holds a count while the gate is closed; the increment makes this
        // one.
        unsafe {
            Arc::increment_strong_count(raw);
            Some(Arc::from_raw(raw))
        }
    }

    /// The current root, kept for a snapshot that no write will change, and its entry count.
    /// The map goes on from a copy of a fresh generation (module docs).
    pub(crate) fn snapshot(&self) -> (Arc<Root<K, V>>, usize) {
        let closed = self.gate.close();
        let generation = fresh_generation();
        let Some(kept) = self.keep_root(&closed) else {
            return (Arc::new(Root::empty(generation)), 0);
        };
        // SAFETY: the gate is closed and `kept` is the map's root.
        let copy = unsafe { kept.copy(generation) };
        self.publish(Some(Arc::new(copy)), generation, &closed);
        (kept, closed.count())
    }

    /// Runs `build` on a private copy of the map (a fresh generation, the gate closed) and
    /// publishes the copy as one change if `build` says so; returns what `build` returns.
    pub(crate) fn rebuild<R>(&self, build: impl FnOnce(&mut Private<K, V>) -> (R, bool)) -> R {
        let closed = self.gate.close();
        let generation = fresh_generation();
        let current = self.keep_root(&closed);
        let mut private = Private {
            // SAFETY: the gate is closed and `current` is the map's root.
            root: Arc::new(current.as_ref().map_or_else(
                || Root::empty(generation),
                |current| unsafe { current.copy(generation) },
            )),
            generation,
            base: closed.count(),
            added: 0,
        };
        drop(current);
        let (result, publish) = build(&mut private);
        if publish {
            closed.count_change(private.added);
            self.publish(Some(private.root), generation, &closed);
        }
        result
    }

    /// Empties the map.
    pub(crate) fn clear(&self) {
        let closed = self.gate.close();
        let generation = fresh_generation();
        self.publish(None, generation, &closed);
        closed.count_none();
    }

    /// The number of entries at one instant of the call.
    pub(crate) fn len(&self) -> usize {
        self.gate.count()
    }

    /// Frees the retired edges this thread holds once the readers now active are gone.
    pub(crate) fn flush(&self) {
        if let Some(collector) = self.collector.get() {
            collector.flush();
        }
    }
}

impl<K: Clone, V: Clone> LiveTrie<K, V> {
    /// The entries, moved out of every node no snapshot shares, cloned from the others.
    pub(crate) fn into_entries(mut self) -> Vec<(K, V)> {
        let root = std::mem::replace(self.root.get_mut(), std::ptr::null_mut());
        // Dropping the collector gives back the counts of the edges it still held, so that what
        // only this map holds has one count.
        drop(self);
        let mut entries = Vec::new();
        if !root.is_null() {
            // SAFETY: the pointer's count, taken over from the map.
            let root = unsafe { Arc::from_raw(root) };
            match Arc::try_unwrap(root) {
                Ok(root) => root.into_edges().for_each(|e| drain(e, &mut entries)),
                // SAFETY: a snapshot shares it, so no write changes it.
                Err(shared) => entries.extend(clones(unsafe { Iter::of(&shared) })),
            }
        }
        entries
    }
}

/// Clones of the entries `iter` visits.
fn clones<'a, K: Clone + 'a, V: Clone + 'a>(
    iter: impl Iterator<Item = (&'a K, &'a V)>,
) -> impl Iterator<Item = (K, V)> {
    iter.map(|(k, v)| (k.clone(), v.clone()))
}

/// Moves the entries below `edge` into `entries`, cloning those of nodes shared with a snapshot.
fn drain<K: Clone, V: Clone>(edge: Edge<K, V>, entries: &mut Vec<(K, V)>) {
    match edge {
        Edge::Leaf(leaf) => match Arc::try_unwrap(leaf) {
            Ok(leaf) => entries.extend(leaf.into_entries()),
            Err(shared) => entries.extend(clones(shared.entries().map(|(k, v)| (k, v)))),
        },
        Edge::Branch(branch) => match Arc::try_unwrap(branch) {
            Ok(branch) => branch.into_edges().for_each(|e| drain(e, entries)),
            // SAFETY: a snapshot shares it, so no write changes it.
            Err(shared) => entries.extend(clones(unsafe { Iter::below(shared.slots()) })),
        },
    }
}

impl<K, V> Drop for LiveTrie<K, V> {
    fn drop(&mut self) {
        let root = *self.root.get_mut();
        if !root.is_null() {
            // SAFETY: the pointer holds a count, given back once here; `&mut self` excludes
            // readers. The collector drops after this, with the fields.
            drop(unsafe { Arc::from_raw(root) });
        }
    }
}

/// A private copy of the map, of its own generation, that a batch changes with the gate closed.
pub(crate) struct Private<K, V> {
    root: Arc<Root<K, V>>,
    generation: u64,
    /// The map's entry count when the copy was made.
    base: usize,
    /// Entries added since, less those removed.
    added: isize,
}

impl<K, V> Private<K, V> {
    /// The entry count, with the batch's changes so far.
    pub(crate) fn len(&self) -> usize {
        (self.base.checked_add_signed(self.added)).expect("a count of entries present")
    }

    /// The entries of the copy, as it is now.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        // SAFETY: only `&mut self` edits change the copy's nodes, and the map's writes change
        // none of them (the copy is of its own generation and unpublished).
        unsafe { Iter::of(&self.root) }
    }

    /// The entry `probe` finds in the copy.
    pub(crate) fn get(&self, probe: impl Probe<K>) -> Option<&(K, V)> {
        find_held(&self.root, probe)
    }

    /// Runs `edit` on the copy's slot for `hash` (of `trie`, the map copied), as
    /// [`LiveTrie::write`] does on the map's.
    pub(crate) fn edit<R>(
        &mut self,
        trie: &LiveTrie<K, V>,
        hash: u64,
        edit: impl FnOnce(&Located<'_, K, V>, &mut isize) -> R,
    ) -> R {
        let guard = trie.collector.made().enter();
        let root = &*self.root;
        let located = trie.locate(root, hash, self.generation, &guard, None);
        let located = located.expect("waits without a deadline");
        let result = edit(&located, &mut self.added);
        drop(located);
        result
    }

    /// Replaces everything in the copy by `entries` (each with its hash), in leaves as full as
    /// they can be.
    pub(crate) fn refill(&mut self, entries: Vec<(u64, K, V)>) {
        let mut parts: Vec<Vec<(u64, K, V)>> =
            (0..1 << node::ROOT_BITS).map(|_| Vec::new()).collect();
        self.added = entries.len() as isize - self.base as isize;
        for entry in entries {
            parts[(entry.0 >> ROOT_SHIFT) as usize].push(entry);
        }
        let mut root = Root::empty(self.generation);
        for (index, part) in parts.into_iter().enumerate() {
            if !part.is_empty() {
                root.set(index, subtree(part, below(ROOT_SHIFT), self.generation));
            }
        }
        self.root = Arc::new(root);
    }
}

/// The entry `probe` finds below `root`, a root no write changes while it is borrowed (a
/// snapshot's, or a batch's private copy, which only its `&mut` edits change).
pub(crate) fn find_held<K, V>(root: &Root<K, V>, probe: impl Probe<K>) -> Option<&(K, V)> {
    // SAFETY: no write replaces a slot below `root` while it is borrowed (as above), and each
    // node holds a count of its children.
    find_below(root, &probe, |slot| unsafe { slot.held() })
}

/// The entry `probe` finds below `root`, each slot on the way read by `read`.
#[inline(always)]
fn find_below<'a, K: 'a, V: 'a>(
    root: &'a Root<K, V>,
    probe: &impl Probe<K>,
    read: impl Fn(&'a Slot<K, V>) -> Node<'a, K, V>,
) -> Option<&'a (K, V)> {
    let hash = probe.hash();
    let mut shift = ROOT_SHIFT;
    let mut node = read(root.slot(hash, shift));
    loop {
        match node {
            Node::Empty => return None,
            Node::Leaf(leaf) => return leaf.find(probe).map(|at| leaf.entry(at)),
            Node::Branch(branch) => {
                shift -= BITS;
                node = read(branch.slot(hash, shift));
            }
        }
    }
}
