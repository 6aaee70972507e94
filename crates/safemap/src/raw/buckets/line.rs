//! What the core asks of one bucket of a chain (one cache line or two), whatever it holds:
//! - `bucket.rs`: tags and pointers to boxed, immutable entries, for any `K` and `V`; readers
//!   dereference the pointer they match, under their reclamation guard;
//! - `inline.rs`: the entries themselves, as atomic words, for plain-old-data `K` and `V`;
//!   readers copy the line and validate the copy against the line's sequence word.
//!
//! Readers call [`Line::find`] and [`Line::read_all`] with no lock. Everything else takes a
//! [`Chain`], which only the holder of the chain head's lock can make, so the changes are
//! serialized by that lock; each line orders what its readers may observe.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use crate::raw::reclaim::{Collector, Guard};
use crate::sync::MutexGuard;

/// A key, its value and its hash: what a write hands a line, and what a pointer line stores.
#[derive(Clone, Copy)]
pub struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// A key and its value as a line shows them to a reader or a lock holder: a stored entry, or a
/// copy of one. A line need not keep the key's hash ([`Line::hash_of`] gives it).
pub trait Stored<K, V> {
    /// The key.
    fn key(&self) -> &K;
    /// The value.
    fn value(&self) -> &V;
}

impl<K, V> Stored<K, V> for &Entry<K, V> {
    fn key(&self) -> &K {
        &self.key
    }

    fn value(&self) -> &V {
        &self.value
    }
}

/// What a reader found for a key in one table.
pub enum Found<E> {
    /// The key's entry.
    Entry(E),
    /// The key is not in this table.
    Absent,
    /// The chain has moved; look in the next table.
    Moved,
}

/// One line of a chain. The head line of each chain lives in the table's array; overflow lines
/// come from the table's spare blocks and are freed with the table.
pub trait Line<K, V>: Sized {
    /// Entries one line holds.
    const SLOTS: usize;

    /// Whether a stored entry keeps its key's hash, so that [`Line::hash_of`] runs no user code.
    const KEEPS_HASH: bool;

    /// An entry on its way into a chain: boxed, or as it is.
    type Item: Borrow<Entry<K, V>>;

    /// An entry as a reader or a lock holder sees it: a reference to the stored entry, alive while
    /// the reader's guard or the holder's lock is, or a copy of it.
    type View<'a>: Stored<K, V>
    where
        Self: 'a;

    /// What a write took out of a chain, retired once no reader can hold it.
    type Unlinked;

    /// An empty line.
    fn new() -> Self;

    /// Whether a fresh line is all zero bytes, so that zeroed memory is an array of fresh lines.
    #[cfg(not(shuttle))]
    fn zero_is_fresh() -> bool;

    /// `entry`, ready to be added.
    fn item(entry: Entry<K, V>) -> Self::Item;

    /// The entry an item holds.
    fn into_entry(item: Self::Item) -> Entry<K, V>;

    /// The hash of `entry`'s key under the map's hasher: kept in the entry, or computed (which
    /// runs the key's `Hash`, and may panic).
    fn hash_of<S: BuildHasher>(entry: &Self::View<'_>, hasher: &S) -> u64
    where
        K: Hash;

    /// The entry for the key `matches` recognises among those with hash `hash`, as of a moment
    /// within this call; this line must be a chain's head.
    fn find<'g>(
        &'g self,
        guard: &'g Guard<'_>,
        hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Found<Self::View<'g>>;

    /// Calls `visit` on every entry of the chain, as readers see it; this line must be a chain's
    /// head. `Err(())` if the chain has moved.
    fn read_all<'g>(
        &'g self,
        guard: &'g Guard<'_>,
        visit: impl FnMut(Self::View<'g>),
    ) -> Result<(), ()>;

    /// Starts loading what [`Line::read_all`] of this chain will follow beyond the line itself,
    /// so that an iteration has it in cache by the time it gets here; changes nothing and reads
    /// nothing the program uses.
    #[inline(always)]
    fn prefetch_linked(&self) {}

    /// The chain's lock, held by every change to it; this line must be a chain's head.
    fn lock_word(&self) -> &crate::sync::Mutex<()>;

    /// Whether the chain has been copied to the next table.
    fn is_moved(chain: Chain<'_, Self>) -> bool;

    /// Marks the chain as copied to the next table: readers and writers go there from now on.
    fn mark_moved(chain: Chain<'_, Self>);

    /// The slot of the entry with hash `hash` whose key `matches` approves.
    fn locate<'a>(
        chain: Chain<'a, Self>,
        hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Option<Located<'a, K, V, Self>>;

    /// Every occupied slot of the chain and its entry.
    fn occupied<'a>(
        chain: Chain<'a, Self>,
    ) -> impl Iterator<Item = (Slot<'a, Self>, Self::View<'a>)>;

    /// Puts `item` in `slot` in place of the entry there, which it returns.
    fn replace(slot: Slot<'_, Self>, item: Self::Item) -> Self::Unlinked;

    /// Empties `slot`; returns its entry.
    fn remove(slot: Slot<'_, Self>) -> Self::Unlinked;

    /// Adds `item`, whose key is not in the chain, in the first free slot, linking `spare()`, a
    /// fresh line that lives as long as the chain, if there is none; returns whether it did.
    fn add<'a>(chain: Chain<'a, Self>, item: Self::Item, spare: impl FnOnce() -> &'a Self) -> bool;

    /// Adds an entry of a moved chain to `chain`, in the next table: the same entry, which the
    /// moved chain keeps showing to the readers already in it.
    fn carry<'a>(chain: Chain<'a, Self>, entry: &Self::View<'_>, spare: impl FnOnce() -> &'a Self);

    /// Every entry of this chain, if it has not moved, with its slot emptied; for owners of the
    /// whole table (no reader or writer left), to move or free them. This line must be a head.
    fn drain(&mut self) -> Vec<(K, V)>;

    /// Hands what a write unlinked to `collector`.
    ///
    /// # Safety
    /// `unlinked` was taken out of its chain by the caller's write, and is retired once.
    unsafe fn retire(collector: &Collector, unlinked: Self::Unlinked);
}

/// A chain while its head's lock is held: every change to it goes through here.
pub struct Chain<'a, L> {
    // Invariant: the maker of this value holds `head`'s lock while it is in use (`locked`).
    head: &'a L,
}

impl<L> Clone for Chain<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Chain<'_, L> {}

impl<'a, L> Chain<'a, L> {
    /// # Safety
    /// The caller holds `head`'s lock for as long as it uses the chain, or no one else can reach
    /// the chain meanwhile; and `head` is the first line of a chain.
    pub(crate) unsafe fn locked(head: &'a L) -> Self {
        Chain { head }
    }

    /// The chain's first line.
    pub(crate) fn head(self) -> &'a L {
        self.head
    }
}

/// Where an entry sits in a chain, for the holder of the chain's lock.
pub struct Slot<'a, L> {
    // Invariant: made from a `Chain`, so the chain's lock is held; `line` is one of its lines.
    line: &'a L,
    index: usize,
}

impl<'a, L> Slot<'a, L> {
    /// Slot `index` of `line`, a line of `chain`.
    pub(crate) fn of(_chain: Chain<'a, L>, line: &'a L, index: usize) -> Self {
        Slot { line, index }
    }

    pub(crate) fn line(self) -> &'a L {
        self.line
    }

    pub(crate) fn index(self) -> usize {
        self.index
    }
}

impl<L> Clone for Slot<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L> Copy for Slot<'_, L> {}

/// An entry a writer found, and where it sits.
pub type Located<'a, K, V, L> = (Slot<'a, L>, <L as Line<K, V>>::View<'a>);

/// Takes a chain's lock: a writer's right to change it.
#[inline]
pub(crate) fn lock<K, V, L: Line<K, V>>(head: &L) -> MutexGuard<'_, ()> {
    let lock = head.lock_word();
    crate::tally::acquire_timed(|| lock.try_lock(), || lock.lock())
}

/// As [`lock`], for a chain of a table that a resize is filling, whose page nothing may have
/// touched yet: the lock's compare-and-swap comes first, so the page is mapped once, writable.
/// ([`lock`] tries with a load first, which maps the shared zero page; the write after it then
/// faults again and flushes the other CPUs' TLBs, which was a third of a growing map's time
/// under `perf`.) Not tallied as a wait: a mover waits only for a write or a move of that chain.
#[inline]
pub(crate) fn lock_fresh<K, V, L: Line<K, V>>(head: &L) -> MutexGuard<'_, ()> {
    head.lock_word().lock()
}

/// As [`lock`], giving up at `deadline`.
pub(crate) fn try_lock_until<K, V, L: Line<K, V>>(
    head: &L,
    deadline: Instant,
) -> Option<MutexGuard<'_, ()>> {
    head.lock_word().try_lock_until(deadline)
}

/// Whether a fresh chain lock is one zero byte, so that zeroed memory holds fresh locks.
#[cfg(not(shuttle))]
pub(crate) fn lock_is_zero() -> bool {
    let lock = crate::sync::Mutex::new(());
    size_of::<crate::sync::Mutex<()>>() == 1
        // SAFETY: the lock is one initialized byte (its state, an atomic no one else can
        // reach), read while nothing writes it.
        && unsafe { std::ptr::from_ref(&lock).cast::<u8>().read() } == 0
}
