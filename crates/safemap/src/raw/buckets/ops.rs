//! The [`Core`] operations of [`Buckets`], each a read with no lock or a write on one locked chain
//! (`mod.rs`), and the whole-map ones over the gate.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::mem;
use std::ops::Range;
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use super::line::{Entry, Line, Located, Stored};
use super::table::{ALL, Table};
use super::{Buckets, Locked};
use crate::map::{Blocks, Consistency, TimedOut, WholeMap};
use crate::raw::core::{ATOMIC, BoundedWait, Core, Timed, Wait};
use crate::raw::entry::{EntryOp, KeyEntry, Probe, Target, key_to_store};
use crate::raw::frozen::TableSnapshot;
use crate::raw::parts::{Entries, Parts};
use crate::raw::routing::Routing;
use crate::raw::table::{Table as FrozenTable, TableAlloc};

/// Entries an iteration copies at a time, at least (a chain is never split).
const CHUNK_ENTRIES: usize = 64;

impl<K: Hash + Eq + Clone, V: Clone, L: Line<K, V>> Buckets<K, V, L> {
    fn entry(hash: u64, key: K, value: V) -> L::Item {
        L::item(Entry { hash, key, value })
    }

    /// Stores `entry`, whose key is absent: for building a map from known-distinct entries.
    fn add_new<S: BuildHasher>(&self, entry: L::Item, hasher: &S) {
        let hash = entry.borrow().hash;
        let stored = self.write(Wait::Forever, hash, entry, hasher, |locked, entry| {
            locked.add(entry);
        });
        debug_assert!(stored.is_ok(), "a write that waits forever completes");
    }
}

/// One key's entry in a chain whose lock a write holds: located on first use, then kept.
/// Values are immutable once stored, so a change stores a changed clone.
struct InChain<'l, 'a, K, V, L: Line<K, V>, T> {
    locked: &'l Locked<'a, K, V, L>,
    target: T,
    found: Found<'a, K, V, L>,
}

/// Where an [`InChain`] entry stands.
enum Found<'a, K, V, L: Line<K, V> + 'a> {
    Unprobed,
    Present(Located<'a, K, V, L>),
    Absent,
}

impl<'a, K, V, L, T> InChain<'_, 'a, K, V, L, T>
where
    K: Hash + Eq + Clone,
    V: Clone,
    L: Line<K, V>,
    T: Target<K>,
{
    /// Locates the key in the chain if it has not been.
    #[inline(always)]
    fn locate(&mut self) {
        if let Found::Unprobed = self.found {
            self.found = match self.locked.locate(&self.target.probe()) {
                Some(located) => Found::Present(located),
                None => Found::Absent,
            };
        }
    }

    /// Where the key is, if present, located now unless it was; leaves the entry to be
    /// located again.
    #[inline(always)]
    fn take_located(&mut self) -> Option<Located<'a, K, V, L>> {
        match mem::replace(&mut self.found, Found::Unprobed) {
            Found::Unprobed => self.locked.locate(&self.target.probe()),
            Found::Present(located) => Some(located),
            Found::Absent => None,
        }
    }
}

impl<K, V, L, T> KeyEntry<K, V> for InChain<'_, '_, K, V, L, T>
where
    K: Hash + Eq + Clone,
    V: Clone,
    L: Line<K, V>,
    T: Target<K>,
{
    #[inline]
    fn get(&mut self) -> Option<(&K, &V)> {
        self.locate();
        match &self.found {
            Found::Present((_, view)) => Some((view.key(), view.value())),
            _ => None,
        }
    }

    fn change<R>(&mut self, change: impl FnOnce(&mut V) -> R) -> Option<R> {
        let (slot, view) = self.take_located()?;
        let mut value = view.value().clone();
        let result = change(&mut value);
        let hash = self.target.probe().hash();
        let item = Buckets::<K, V, L>::entry(hash, view.key().clone(), value);
        self.locked.replace(slot, item);
        Some(result)
    }

    #[inline(always)]
    fn set(mut self, value: V) -> Option<V> {
        let hash = self.target.probe().hash();
        match self.take_located() {
            Some((slot, view)) => {
                let displaced = view.value().clone();
                // The stored key stays, as std's `insert` keeps it and the other strategies do;
                // the caller's equal key is dropped.
                let key = view.key().clone();
                (self.locked).replace(slot, Buckets::<K, V, L>::entry(hash, key, value));
                Some(displaced)
            }
            None => {
                let key = key_to_store(self.target);
                (self.locked).add(Buckets::<K, V, L>::entry(hash, key, value));
                None
            }
        }
    }

    #[inline(always)]
    fn remove(mut self) -> Option<V> {
        let (slot, view) = self.take_located()?;
        let displaced = view.value().clone();
        self.locked.remove(slot);
        Some(displaced)
    }
}

impl<K: Hash + Eq + Clone, V: Clone, L: Line<K, V>> Core for Buckets<K, V, L> {
    type Snapshot<S: BuildHasher> = TableSnapshot<K, V, S>;

    /// `len`, `clear` and `snapshot` close the gate and are atomic; the visits go chain by
    /// chain. A closure holds its chain's lock, which readers ignore. Values are immutable once
    /// stored, so an update stores a changed clone.
    const CONSISTENCY: Consistency = Consistency {
        for_each: WholeMap::WeaklyConsistent,
        iter: WholeMap::WeaklyConsistent,
        retain: WholeMap::WeaklyConsistent,
        update_in_place: false,
        reserves: false,
        maintenance: &[],
        closure_blocks_readers: Blocks::Nothing,
        closure_blocks_writers: Blocks::Shard,
        rehashes_keys: !L::KEEPS_HASH,
        frees_after_readers: true,
        ..ATOMIC
    };

    fn with_capacity(capacity: usize) -> Self {
        let core = Self::default();
        if capacity > 0 {
            core.collector();
            core.root
                .store(Box::into_raw(Table::new(Self::bits_for(capacity))), Relaxed);
        }
        core
    }

    fn capacity(&self) -> usize {
        let Some(guard) = self.reading() else {
            return 0;
        };
        self.root_table(&guard)
            .map_or(0, |root| root.chains() * L::SLOTS)
    }

    /// Grows to the size `additional` more entries need, moving the chains alongside the writes
    /// that go on meanwhile, and returns once the move is done.
    fn reserve<S: BuildHasher>(&self, additional: usize, hasher: &S) {
        let Some(pass) = self.gate.pass(None) else {
            return;
        };
        self.finish_resize(&pass, hasher);
        let wanted = Self::bits_for(self.gate.approximate_count().saturating_add(additional));
        match self.root_table(&pass) {
            None => self.install_root(&pass, wanted),
            Some(root) if root.bits() < wanted => {
                self.link_next_once(root, wanted);
                self.finish_resize(&pass, hasher);
            }
            Some(_) => {}
        }
        self.leave(pass);
    }

    /// With the gate closed: moves every chain into a table sized for the entries, or drops the
    /// table of an empty map.
    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S) {
        let closed = self.gate.close();
        // No write is under way, so a table a resize left behind can go now, not at the next
        // write's leaving.
        self.retire_left();
        let guard = self.reading_made();
        self.finish_resize(&guard, hasher);
        if closed.count() == 0 {
            self.detach_root();
        } else if let Some(root) = self.root_table(&guard)
            && Self::bits_for(closed.count()) < root.bits()
        {
            self.link_next_once(root, Self::bits_for(closed.count()));
            self.finish_resize(&guard, hasher);
        }
        // Leaving the guard frees the old table unless a reader still holds it (or, where
        // readers announce themselves, the parked tables go once this read has left): here,
        // however large, as the method promises.
        crate::raw::release::on_this_thread(|| {
            drop(guard);
            self.retire_left();
        });
    }

    /// Never waits: readers take no lock.
    #[inline(always)]
    fn get<R>(&self, probe: impl Probe<K>, read: impl FnOnce(&V) -> R) -> Option<R> {
        let guard = self.reading()?;
        self.find(&guard, &probe).map(|entry| read(entry.value()))
    }

    #[inline(always)]
    fn write<T, S, O>(&self, wait: Wait, target: T, hasher: &S, op: O) -> Timed<O::Output, (T, O)>
    where
        T: Target<K>,
        S: BuildHasher,
        O: EntryOp<K, V>,
    {
        let hash = target.probe().hash();
        let written = self.write(wait, hash, (target, op), hasher, |locked, (target, op)| {
            let found = Found::Unprobed;
            op.run(InChain {
                locked,
                target,
                found,
            })
        });
        written.map_err(TimedOut)
    }

    /// Chain by chain, in position order.
    fn retain<S: BuildHasher>(&self, keep: &mut impl FnMut(&K, &V) -> bool, hasher: &S) {
        if self.capacity() == 0 {
            return;
        }
        let mut at = ALL.start;
        while at < ALL.end {
            at = self.retain_chain(at, ALL.end, keep, hasher);
        }
    }

    /// Swaps in no table at all, with the gate closed: readers see every entry or none.
    fn clear(&self) {
        let closed = self.gate.close();
        self.detach_root();
        closed.count_none();
    }

    fn len(&self) -> usize {
        self.gate.count()
    }

    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> TableSnapshot<K, V, S> {
        let closed = self.gate.close();
        let guard = self.reading_made();
        let mut table = FrozenTable::with_capacity_in(closed.count(), TableAlloc);
        self.read_all(&guard, hasher, &mut |entry| {
            table.insert_unique(
                L::hash_of(&entry, hasher),
                (entry.key().clone(), entry.value().clone()),
                |(k, _)| hasher.hash_one(k),
            );
        });
        TableSnapshot::new(Box::new([table]), Routing::new(1), hasher.clone())
    }

    fn duplicate<S: BuildHasher>(&self, hasher: &S) -> Self {
        let closed = self.gate.close();
        let guard = self.reading_made();
        let copy = Self::with_capacity(closed.count());
        self.read_all(&guard, hasher, &mut |e| {
            let entry = Self::entry(L::hash_of(&e, hasher), e.key().clone(), e.value().clone());
            copy.add_new(entry, hasher);
        });
        copy
    }
}

impl<K: Hash + Eq, V, L: Line<K, V>> Entries for Buckets<K, V, L> {
    type Key = K;
    type Value = V;
}

impl<K: Hash + Eq + Clone, V: Clone, L: Line<K, V>> Parts for Buckets<K, V, L> {
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_entries(self) -> Self::IntoIter {
        let root = self.root.swap(ptr::null_mut(), Relaxed);
        if root.is_null() {
            return Vec::new().into_iter();
        }
        // SAFETY: the root came from `Box::into_raw`; owning the map, no guard is left.
        let table = unsafe { Box::from_raw(root) };
        table.drain().into_iter()
    }

    /// The positions still to visit.
    type Cursor = Range<u128>;

    fn cursor(&self) -> Range<u128> {
        ALL
    }

    /// Halves the positions left, while they span more than one chain of the root.
    fn split_cursor(&self, cursor: &mut Range<u128>) -> Option<Range<u128>> {
        let guard = self.reading()?;
        let root = self.root_table(&guard)?;
        if root.chain_at(cursor.start) >= root.chain_at(cursor.end - 1) {
            return None;
        }
        let middle = cursor.start + (cursor.end - cursor.start) / 2;
        let second = middle..cursor.end;
        cursor.end = middle;
        Some(second)
    }

    /// Chain by chain of the root, until there are enough entries to hand out.
    fn next_chunk<S: BuildHasher>(
        &self,
        cursor: &mut Range<u128>,
        chunk: &mut Vec<(K, V)>,
        hasher: &S,
    ) -> bool {
        let Some(guard) = self.reading() else {
            cursor.start = cursor.end;
            return false;
        };
        let before = chunk.len();
        while chunk.len() - before < CHUNK_ENTRIES {
            if cursor.is_empty() {
                break;
            }
            let Some(root) = self.root_table(&guard) else {
                cursor.start = cursor.end;
                break;
            };
            let end = root.span(root.chain_at(cursor.start)).end.min(cursor.end);
            Self::read_span(&guard, root, cursor.start..end, hasher, &mut |e| {
                chunk.push((e.key().clone(), e.value().clone()));
            });
            cursor.start = end;
        }
        chunk.len() > before
    }

    /// Per chain of the root: each chain is locked on its own.
    fn shard_lengths<S: BuildHasher>(&self, hasher: &S) -> Vec<usize> {
        let Some(guard) = self.reading() else {
            return vec![0];
        };
        let Some(root) = self.root_table(&guard) else {
            return vec![0];
        };
        (0..root.chains())
            .map(|index| {
                let mut entries = 0;
                Self::read_span(&guard, root, root.span(index), hasher, &mut |_| {
                    entries += 1
                });
                entries
            })
            .collect()
    }

    fn debug_entries<S: BuildHasher>(&self, out: &mut fmt::DebugMap<'_, '_>, hasher: &S)
    where
        K: fmt::Debug,
        V: fmt::Debug,
    {
        let Some(guard) = self.reading() else {
            return;
        };
        self.read_all(&guard, hasher, &mut |entry| {
            out.entry(entry.key(), entry.value());
        });
    }
}

/// Every wait is for the gate or a chain's lock, and a write with a deadline moves no chains.
impl<K: Hash + Eq + Clone, V: Clone, L: Line<K, V>> BoundedWait for Buckets<K, V, L> {}

impl<K, V, L: Line<K, V>> Buckets<K, V, L> {
    /// Takes the root out (the map reads as empty) and parks it with its entries until the reads
    /// under way have left (`park`); with the gate closed, so no write, and no chain move, is
    /// under way. A resize half done goes as it stands: the root's unmoved chains and the next
    /// table hold every entry once (`Table::drain`).
    fn detach_root(&self) {
        // SeqCst: the store that takes the table out of reach (the heavy side of the handshake
        // with announced reads, `park`).
        let root = self.root.swap(ptr::null_mut(), SeqCst);
        if !root.is_null() {
            self.park(root, true);
        }
    }
}
