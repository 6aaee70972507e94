//! What the core asks of one bucket of a chain, whatever it holds:
//! - `bucket.rs`: one cache line of tags and pointers to boxed, immutable entries, for any `K`
//!   and `V`; readers dereference the pointer they match, under their reclamation guard;
//! - `inline.rs`: a 16-byte line of tags, and apart from it a block of the entries themselves,
//!   as atomic words, for plain-old-data `K` and `V`; readers copy the matching slots and
//!   validate the copies against the line's sequence word.
//!
//! A line's [`Blocks::Block`] is what it keeps apart from itself (nothing, for `bucket.rs`): a
//! table holds its head lines in one array and their blocks in another, so the lines stay dense
//! and cached, and every operation gets a line with its block, a [`Head`]. Tags, shared by both
//! kinds, are a byte per slot in one meta word ([`tag_of`], [`tagged`], [`occupied`]).
//!
//! # Overflow summaries
//! A chain whose head line is full links overflow lines, which stay linked until the chain moves
//! or is drained. A head's meta word also holds, in six bits below its flags ([`BEYOND`]), a
//! summary of its overflow lines' tags: bit [`beyond`]`(tag)` is set while an overflow line holds
//! an entry tagged `tag`. Lookups and `locate` leave the head only if their tag's bit is set, so
//! that a key that is not there costs no overflow line's miss. The lock holder keeps the bits
//! exact ([`Line::summarize`], [`Line::resummarize`]): it publishes a tag's bit before it places
//! an entry so tagged in an overflow line, and the recomputed bits after it removes one. So a
//! reader whose copy of the head's meta word shows the bit clear copied it at a moment when no
//! entry so tagged was in the overflow lines, and its key was absent then if the head did not
//! hold it either (each line says why its copy of the head is of one moment).
//!
//! Readers call [`Line::find`] and [`Line::read_all`] with no lock. Everything else takes a
//! [`Chain`], which only the holder of the chain head's lock can make, so the changes are
//! serialized by that lock; each line orders what its readers may observe.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::Reads;
use crate::raw::entry::Probe;
use crate::raw::reclaim::Collector;
use crate::raw::routing::TAG_BITS;
use crate::sync::{AtomicU64, MutexGuard};

/// Set in a head line's meta word once its chain has been copied to the next table; from then
/// on the chain is frozen and every operation on its keys goes to the next table.
pub(super) const MOVED: u64 = 1 << 63;

/// Tag bytes a meta word has room for, below its byte of flags and summary bits.
pub(super) const MAX_TAGS: usize = 7;

/// A head line's summary of its overflow lines' tags, in the meta word's six bits below
/// [`MOVED`] and the inline lines' `LINKED` (module docs, "Overflow summaries").
pub(super) const BEYOND: u64 = 0x3f << 56;

/// The bit of [`BEYOND`] that stands for `tag`: its seven hash bits scaled to six places, with a
/// multiply and a shift rather than a division.
#[inline(always)]
pub(super) fn beyond(tag: u8) -> u64 {
    (1 << 56) << ((u32::from(tag & 0x7f) * 3) >> 6)
}

/// The [`BEYOND`] bits of the tags in a meta word.
pub(super) fn beyond_of(meta: u64) -> u64 {
    slots_of(occupied::<MAX_TAGS>(meta))
        .fold(0, |bits, index| bits | beyond((meta >> (8 * index)) as u8))
}

/// The tag a key's entry carries in its line's meta word: the hash's top bits (which the table
/// index does not use), with the high bit set so that a tag is never the empty byte.
#[inline(always)]
pub(super) fn tag_of(hash: u64) -> u8 {
    ((hash >> (64 - TAG_BITS)) as u8) | 0x80
}

/// The first of the first `slots` slots of a meta word that holds no entry: the lowest byte
/// whose high bit is clear, since a tag always has it set.
#[inline(always)]
pub(super) fn free_slot(meta: u64, slots: usize) -> Option<usize> {
    slots_of(!meta & per_slot(slots, 0x80)).next()
}

/// `meta` with slot `slot`'s tag set to `tag` (zero to empty it).
#[inline(always)]
pub(super) fn with_tag(meta: u64, slot: usize, tag: u8) -> u64 {
    (meta & !(0xff << (8 * slot))) | (u64::from(tag) << (8 * slot))
}

/// A byte of ones in each of the low `slots` bytes, times `byte`.
#[inline(always)]
const fn per_slot(slots: usize, byte: u8) -> u64 {
    (u64::MAX >> (64 - 8 * slots)) / 0xff * byte as u64
}

/// The slots of a meta word of `SLOTS` tag bytes that hold an entry, as the high bit of each
/// such slot's byte: a tag always has its high bit set.
#[inline(always)]
pub(super) fn occupied<const SLOTS: usize>(meta: u64) -> u64 {
    meta & per_slot(SLOTS, 0x80)
}

/// The slots whose tag is `tag`, as a mask like [`occupied`]'s, plus at most a few slots past
/// one that matches (the zero-byte test's borrow), which the caller's key comparison rejects.
#[inline(always)]
pub(super) fn tagged<const SLOTS: usize>(meta: u64, tag: u8) -> u64 {
    let differs = meta ^ per_slot(SLOTS, tag);
    differs.wrapping_sub(per_slot(SLOTS, 1)) & !differs & per_slot(SLOTS, 0x80)
}

/// The slot indices of a mask from [`occupied`] or [`tagged`], lowest first.
#[inline(always)]
pub(super) fn slots_of(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let slot = (mask != 0).then(|| mask.trailing_zeros() as usize / 8)?;
        mask &= mask - 1;
        Some(slot)
    })
}

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

/// What a line describes beside itself: the block of slots it keeps apart from it, so that the
/// lines a table holds stay dense and cached while the slots miss; `()` for a line that holds
/// its slots. A table keeps its head lines in one array and their blocks in another.
pub trait Blocks: Sized {
    /// The slots kept apart.
    type Block;

    /// An empty block.
    fn fresh_block() -> Self::Block;
}

/// One line of a chain. The head line of each chain lives in the table's array; overflow lines
/// come from the table's spare blocks and are freed with the table.
pub trait Line<K, V>: Blocks {
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

    /// What a reader holds while it reads, keeping what it loads allocated.
    type Reader<'a>: Reads<'a>;

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

    /// The entry for `probe`, as of a moment within this call; this line must be a chain's head.
    fn find<'g>(
        head: Head<'g, Self>,
        reader: &'g Self::Reader<'_>,
        probe: impl Probe<K>,
    ) -> Found<Self::View<'g>>;

    /// Calls `visit` on every entry of the chain, as readers see it; `head` must be a chain's
    /// head. `Err(())` if the chain has moved.
    fn read_all<'g>(
        head: Head<'g, Self>,
        reader: &'g Self::Reader<'_>,
        visit: impl FnMut(Self::View<'g>),
    ) -> Result<(), ()>;

    /// Starts loading the slots a lookup or a write of this chain reads after the line itself,
    /// where they lie apart from it, so that their miss overlaps the line's (a write's lock
    /// waits for the line). Changes nothing and reads nothing the program uses.
    #[inline(always)]
    fn prefetch_slots(_head: Head<'_, Self>) {}

    /// Starts loading what [`Line::read_all`] of this chain will follow beyond the line itself,
    /// so that an iteration has it in cache by the time it gets here; changes nothing and reads
    /// nothing the program uses.
    #[inline(always)]
    fn prefetch_linked(_head: Head<'_, Self>) {}

    /// The chain's lock, held by every change to it; this line must be a chain's head.
    fn lock_word(&self) -> &crate::sync::Mutex<()>;

    /// The line's meta word: a tag byte per slot, and flags above them ([`MOVED`] on a head).
    fn meta(&self) -> &AtomicU64;

    /// Whether the chain has been copied to the next table.
    fn is_moved(chain: Chain<'_, Self>) -> bool {
        // Relaxed: MOVED is set under the chain's lock, which the caller holds.
        chain.head().line().meta().load(Relaxed) & MOVED != 0
    }

    /// Stores `meta` as the line's meta word, for its chain's lock holder, so that a reader that
    /// sees the new word sees every store the holder made before it.
    fn publish_meta(&self, meta: u64);

    /// Marks the chain as copied to the next table: readers and writers go there from now on,
    /// and see there every entry already placed in it.
    fn mark_moved(chain: Chain<'_, Self>) {
        let head = chain.head().line();
        // Relaxed: the meta word changes only under the chain's lock, which the caller holds.
        head.publish_meta(head.meta().load(Relaxed) | MOVED);
    }

    /// Sets `tag`'s bit in the head's summary, before an entry tagged `tag` goes into an
    /// overflow line: a reader that finds the bit clear then read the head before the entry was
    /// there. For the chain's lock holder.
    #[cold]
    fn summarize(chain: Chain<'_, Self>, tag: u8) {
        let head = chain.head().line();
        // Relaxed: the meta word changes only under the chain's lock, which the caller holds.
        let meta = head.meta().load(Relaxed);
        if meta & beyond(tag) == 0 {
            head.publish_meta(meta | beyond(tag));
        }
    }

    /// Sets the head's summary to the tags in `overflow`, the meta words of the chain's overflow
    /// lines, after an entry left one: a bit that no entry stands for any more would send lookups
    /// on to the overflow lines in vain. For the chain's lock holder.
    #[cold]
    fn resummarize(chain: Chain<'_, Self>, overflow: impl Iterator<Item = u64>) {
        let bits = overflow.fold(0, |bits, meta| bits | beyond_of(meta));
        let head = chain.head().line();
        // Relaxed: as in `summarize`.
        let meta = head.meta().load(Relaxed);
        if meta & BEYOND != bits {
            head.publish_meta(meta & !BEYOND | bits);
        }
    }

    /// The slot of the entry for `probe`.
    fn locate<'a>(chain: Chain<'a, Self>, probe: impl Probe<K>) -> Option<Located<'a, K, V, Self>>;

    /// Every occupied slot of the chain and its entry.
    fn occupied<'a>(
        chain: Chain<'a, Self>,
    ) -> impl Iterator<Item = (Slot<'a, Self>, Self::View<'a>)>;

    /// Puts `item` in `slot` in place of the entry there, which it returns.
    fn replace(slot: Slot<'_, Self>, item: Self::Item) -> Self::Unlinked;

    /// Empties `slot`; returns its entry.
    fn remove(slot: Slot<'_, Self>) -> Self::Unlinked;

    /// Adds `item`, whose key is not in the chain, in the first free slot, linking `spare()`, a
    /// fresh line and block that live as long as the chain, if there is none; returns whether it
    /// did.
    fn add<'a>(
        chain: Chain<'a, Self>,
        item: Self::Item,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) -> bool;

    /// Adds an entry of a moved chain, whose key has hash `hash`, to `chain`, in the next table:
    /// the same entry, which the moved chain keeps showing to the readers already in it.
    fn carry<'a>(
        chain: Chain<'a, Self>,
        entry: &Self::View<'_>,
        hash: u64,
        spare: impl FnOnce() -> &'a Unit<Self>,
    );

    /// Every entry of the chain, if it has not moved, with its slot emptied; for owners of the
    /// whole table (no reader or writer left), to move or free them.
    fn drain(chain: Chain<'_, Self>) -> Vec<(K, V)>;

    /// Hands what a write unlinked to the map's collector, which `collector` gives (asked only by
    /// lines that retire something, so that the others' writes never load it).
    ///
    /// # Safety
    /// `unlinked` was taken out of its chain by the caller's write, and is retired once.
    unsafe fn retire<'c>(collector: impl FnOnce() -> &'c Collector, unlinked: Self::Unlinked);
}

/// A line and the block it describes.
pub struct Head<'a, L: Blocks> {
    line: &'a L,
    block: &'a L::Block,
}

impl<L: Blocks> Clone for Head<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L: Blocks> Copy for Head<'_, L> {}

impl<'a, L: Blocks> Head<'a, L> {
    pub(crate) fn new(line: &'a L, block: &'a L::Block) -> Self {
        Head { line, block }
    }

    /// The line.
    pub(crate) fn line(self) -> &'a L {
        self.line
    }

    /// The block it describes.
    pub(crate) fn block(self) -> &'a L::Block {
        self.block
    }
}

/// An overflow line with its block, made together from a table's spare memory.
#[repr(C)]
pub struct Unit<L: Blocks> {
    line: L,
    block: L::Block,
}

impl<L: Blocks> Unit<L> {
    /// A fresh unit.
    pub(crate) fn fresh(line: L) -> Self {
        Unit {
            line,
            block: L::fresh_block(),
        }
    }

    /// Its line and block.
    pub(crate) fn head(&self) -> Head<'_, L> {
        Head::new(&self.line, &self.block)
    }
}

/// A chain while its head's lock is held: every change to it goes through here.
pub struct Chain<'a, L: Blocks> {
    // Invariant: the maker of this value holds `head`'s lock while it is in use (`locked`).
    head: Head<'a, L>,
}

impl<L: Blocks> Clone for Chain<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L: Blocks> Copy for Chain<'_, L> {}

impl<'a, L: Blocks> Chain<'a, L> {
    /// # Safety
    /// The caller holds `head`'s lock for as long as it uses the chain, or no one else can reach
    /// the chain meanwhile; and `head` is the first line of a chain.
    pub(crate) unsafe fn locked(head: Head<'a, L>) -> Self {
        Chain { head }
    }

    /// The chain's first line and its block.
    pub(crate) fn head(self) -> Head<'a, L> {
        self.head
    }
}

/// Where an entry sits in a chain, for the holder of the chain's lock.
pub struct Slot<'a, L: Blocks> {
    // Invariant: made from `chain`, so the chain's lock is held; `line` is one of its lines.
    chain: Chain<'a, L>,
    line: Head<'a, L>,
    index: usize,
}

impl<'a, L: Blocks> Slot<'a, L> {
    /// Slot `index` of `line`, a line of `chain`.
    pub(crate) fn of(chain: Chain<'a, L>, line: Head<'a, L>, index: usize) -> Self {
        Slot { chain, line, index }
    }

    /// The chain the slot is in.
    pub(crate) fn chain(self) -> Chain<'a, L> {
        self.chain
    }

    /// Whether the slot is in the chain's head line.
    pub(crate) fn in_head(self) -> bool {
        std::ptr::eq(self.line.line(), self.chain.head().line())
    }

    pub(crate) fn line(self) -> Head<'a, L> {
        self.line
    }

    pub(crate) fn index(self) -> usize {
        self.index
    }
}

impl<L: Blocks> Clone for Slot<'_, L> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<L: Blocks> Copy for Slot<'_, L> {}

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

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::*;

    /// Random meta words of `SLOTS` tag bytes (a third of them empty, the others from a few
    /// values, so that equal tags are common), with the two top bits (the lines' flags) set at
    /// random.
    fn random_metas<const SLOTS: usize>() -> impl Iterator<Item = (u64, Vec<u8>)> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let tags: Vec<u8> = (0..SLOTS)
                .map(|i| match (state >> (8 * i)) as u8 {
                    t if t % 3 == 0 => 0,
                    t => 0x80 | (t % 4),
                })
                .collect();
            let flags = state & (0b11 << 62);
            let meta = (0..SLOTS).fold(flags, |m, i| with_tag(m, i, tags[i]));
            (meta, tags)
        })
        .take(100_000)
    }

    /// `occupied` lists exactly the slots with a tag, whatever the tags and the flags.
    fn occupied_lists_the_tagged_slots<const SLOTS: usize>() {
        for (meta, tags) in random_metas::<SLOTS>() {
            let listed: Vec<usize> = slots_of(occupied::<SLOTS>(meta)).collect();
            let expected: Vec<usize> = (0..SLOTS).filter(|&i| tags[i] != 0).collect();
            assert_eq!(listed, expected);
            assert!((0..SLOTS).all(|i| tag_at(meta, i) == tags[i]));
        }
    }

    /// The tag of slot `slot` in a meta word: its byte, zero if the slot is empty.
    fn tag_at(meta: u64, slot: usize) -> u8 {
        (meta >> (8 * slot)) as u8
    }

    /// `free_slot` finds the lowest slot without a tag, or none when all are tagged.
    fn free_slot_finds_the_first_untagged_slot<const SLOTS: usize>() {
        let mut full = 0;
        for (meta, tags) in random_metas::<SLOTS>() {
            let expected = (0..SLOTS).find(|&i| tags[i] == 0);
            assert_eq!(free_slot(meta, SLOTS), expected, "{meta:#x}");
            full += usize::from(expected.is_none());
        }
        assert!(full > 0, "no full line among the random ones");
    }

    /// `tagged` lists every slot with the tag looked for, and no other slot below the first
    /// such one (none at all if there is none).
    fn tagged_lists_every_slot_with_the_tag<const SLOTS: usize>() {
        for (meta, tags) in random_metas::<SLOTS>() {
            for tag in 0x80..0x84 {
                let listed: Vec<usize> = slots_of(tagged::<SLOTS>(meta, tag)).collect();
                let with_tag: Vec<usize> = (0..SLOTS).filter(|&i| tags[i] == tag).collect();
                assert!(
                    with_tag.iter().all(|slot| listed.contains(slot)),
                    "{meta:#x}, {tag:#x}: {listed:?} misses one of {with_tag:?}"
                );
                let first = with_tag.first().copied().unwrap_or(SLOTS);
                assert!(
                    listed.iter().all(|&slot| tags[slot] == tag || slot > first),
                    "{meta:#x}, {tag:#x}: {listed:?} lists a slot below {first} without the tag"
                );
                assert!(
                    listed.iter().all(|&slot| slot < SLOTS),
                    "{listed:?}: past the slots"
                );
            }
        }
    }

    /// Both kinds of line: five slots (`bucket.rs`) and seven (`inline.rs`).
    #[test]
    fn tags_are_read_alike_for_five_and_seven_slots() {
        occupied_lists_the_tagged_slots::<5>();
        occupied_lists_the_tagged_slots::<7>();
        tagged_lists_every_slot_with_the_tag::<5>();
        tagged_lists_every_slot_with_the_tag::<7>();
        free_slot_finds_the_first_untagged_slot::<5>();
        free_slot_finds_the_first_untagged_slot::<7>();
    }
}
