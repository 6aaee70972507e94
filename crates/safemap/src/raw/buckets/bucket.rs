//! One cache line of a bucketed table: a lock for writers, a word of tags, five pointers to
//! immutable entries and a link to an overflow bucket.
//!
//! Readers take no lock. They load the head bucket's `meta` word, which holds a one-byte tag per
//! occupied slot and the `MOVED` flag, follow the slots whose tag matches, and compare the entry's
//! full hash and key. An entry is never changed once published: a write stores a new entry in the
//! slot and retires the old one, so what a reader dereferences is always whole.
//!
//! Writers hold the head bucket's lock for every change to its chain, so among themselves they see
//! the chain as a plain structure (their loads are Relaxed, ordered by the lock). Each store a
//! reader may observe is ordered for the reader: a slot is filled (Release, publishing the entry)
//! before its tag is set (Release, publishing the slot), and an overflow bucket is built before it
//! is linked (Release). A key, once placed, stays in its slot until it is removed, so a reader
//! scanning the chain finds every key present throughout its scan.

use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::raw::reclaim::Guard;
use crate::raw::routing::TAG_BITS;
use crate::sync::{AtomicPtr, AtomicU64, Mutex, MutexGuard};
use crate::tally::acquire_timed;

/// Entry pointers per bucket: with the lock, the meta word and the link, one 64-byte line.
pub(crate) const SLOTS: usize = 5;

/// Set in a head bucket's meta word once its chain has been copied to the next table; from then
/// on the chain is frozen and every operation on its keys goes to the next table.
const MOVED: u64 = 1 << 63;

/// A key, its value and its hash, immutable once published.
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// The tag a key's entry carries in its bucket: the hash's top bits (which the table index does
/// not use), with the high bit set so that a tag is never the empty byte.
#[inline(always)]
fn tag_of(hash: u64) -> u8 {
    ((hash >> (64 - TAG_BITS)) as u8) | 0x80
}

#[inline(always)]
fn tag_at(meta: u64, slot: usize) -> u8 {
    (meta >> (8 * slot)) as u8
}

/// The high bit of each slot's tag byte.
const TAG_HIGH_BITS: u64 = 0x80_8080_8080;

/// The slots that hold an entry: a tag always has its high bit set.
#[inline(always)]
fn occupied(meta: u64) -> u64 {
    meta & TAG_HIGH_BITS
}

/// The slot indices of a mask from [`occupied`], lowest first.
#[inline(always)]
fn slots_of(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let slot = (mask != 0).then(|| mask.trailing_zeros() as usize / 8)?;
        mask &= mask - 1;
        Some(slot)
    })
}

#[inline(always)]
fn with_tag(meta: u64, slot: usize, tag: u8) -> u64 {
    (meta & !(0xff << (8 * slot))) | (u64::from(tag) << (8 * slot))
}

/// One line of a chain. The head bucket of each chain lives in the table's array; overflow buckets
/// come from the table's spare blocks and are freed with the table.
#[repr(align(64))]
pub(crate) struct Bucket<K, V> {
    lock: Mutex<()>,
    meta: AtomicU64,
    slots: [AtomicPtr<Entry<K, V>>; SLOTS],
    next: AtomicPtr<Bucket<K, V>>,
}

/// What a reader found for a key in one table.
pub(crate) enum Found<'g, K, V> {
    /// The key's entry.
    Entry(&'g Entry<K, V>),
    /// The key is not in this table.
    Absent,
    /// The chain has moved; look in the next table.
    Moved,
}

/// An entry a writer found, and where it sits.
pub(crate) type Located<'a, K, V> = (Slot<'a, K, V>, &'a Entry<K, V>);

/// Where an entry sits in a chain.
pub(crate) struct Slot<'a, K, V> {
    bucket: &'a Bucket<K, V>,
    index: usize,
}

impl<K, V> Clone for Slot<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Slot<'_, K, V> {}

impl<K, V> Bucket<K, V> {
    pub(crate) fn new() -> Self {
        Bucket {
            lock: Mutex::new(()),
            meta: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether a fresh bucket is all zero bytes, so that zeroed memory is an array of fresh
    /// buckets. The atomics are zero when null or 0 by their documented representation; the
    /// lock is asked.
    #[cfg(not(shuttle))]
    pub(crate) fn zero_is_fresh() -> bool {
        let lock = Mutex::new(());
        size_of::<Mutex<()>>() == 1
            // SAFETY: the lock is one initialized byte (its state, an atomic no one else can
            // reach), read while nothing writes it.
            && unsafe { ptr::from_ref(&lock).cast::<u8>().read() } == 0
    }

    /// The entry for the key `matches` recognises among those with hash `hash`, as of a moment
    /// within this call; this bucket must be a chain's head.
    #[inline(always)]
    pub(crate) fn find<'g>(
        &'g self,
        guard: &'g Guard<'_>,
        hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Found<'g, K, V> {
        // Acquire: seeing a tag (or MOVED) makes the slot (or the next table's copy) visible.
        let mut meta = self.meta.load(Acquire);
        if meta & MOVED != 0 {
            return Found::Moved;
        }
        let tag = tag_of(hash);
        let mut bucket = self;
        loop {
            // A comparison per slot, unrolled: fewer instructions than `matching` here.
            for slot in 0..SLOTS {
                if tag_at(meta, slot) != tag {
                    continue;
                }
                let entry = guard.load(&bucket.slots[slot]);
                // SAFETY: a non-null slot points to a published entry, which stays allocated while
                // `guard` lives: it is retired only after being unlinked, and the guard was entered
                // before this load.
                if let Some(entry) = unsafe { entry.as_ref() }
                    && entry.hash == hash
                    && matches(&entry.key)
                {
                    return Found::Entry(entry);
                }
            }
            // Acquire: the overflow bucket was built before the Release store that linked it.
            let next = bucket.next.load(Acquire);
            // SAFETY: overflow buckets are freed only with their table, which `guard` keeps.
            match unsafe { next.as_ref() } {
                Some(next) => bucket = next,
                None => return Found::Absent,
            }
            meta = bucket.meta.load(Acquire);
        }
    }

    /// Calls `visit` on every entry of the chain, as readers see it; this bucket must be a chain's
    /// head. `Err(())` if the chain has moved.
    pub(crate) fn read_all<'g>(
        &'g self,
        guard: &'g Guard<'_>,
        mut visit: impl FnMut(&'g Entry<K, V>),
    ) -> Result<(), ()> {
        // Acquire: as in `find`.
        let mut meta = self.meta.load(Acquire);
        if meta & MOVED != 0 {
            return Err(());
        }
        let mut bucket = self;
        loop {
            for slot in slots_of(occupied(meta)) {
                let entry = guard.load(&bucket.slots[slot]);
                // SAFETY: as in `find`.
                if let Some(entry) = unsafe { entry.as_ref() } {
                    visit(entry);
                }
            }
            // Acquire: as in `find`.
            let next = bucket.next.load(Acquire);
            // SAFETY: as in `find`.
            match unsafe { next.as_ref() } {
                Some(next) => bucket = next,
                None => return Ok(()),
            }
            meta = bucket.meta.load(Acquire);
        }
    }

    /// Takes the chain's lock: a writer's right to change it.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        acquire_timed(|| self.lock.try_lock(), || self.lock.lock())
    }

    /// As [`Self::lock`], giving up at `deadline`.
    pub(crate) fn try_lock_until(
        &self,
        deadline: std::time::Instant,
    ) -> Option<MutexGuard<'_, ()>> {
        self.lock.try_lock_until(deadline)
    }
}

/// A chain while its head's lock is held: every change to it goes through here.
pub(crate) struct Chain<'a, K, V> {
    head: &'a Bucket<K, V>,
}

impl<K, V> Clone for Chain<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for Chain<'_, K, V> {}

impl<'a, K, V> Chain<'a, K, V> {
    /// # Safety
    /// The caller holds `head`'s lock for as long as it uses the chain, and `head` is the first
    /// bucket of a chain.
    pub(crate) unsafe fn locked(head: &'a Bucket<K, V>) -> Self {
        Chain { head }
    }

    pub(crate) fn is_moved(self) -> bool {
        // Relaxed: MOVED is set under the lock this writer holds.
        self.head.meta.load(Relaxed) & MOVED != 0
    }

    /// Marks the chain as copied to the next table: readers and writers go there from now on.
    pub(crate) fn mark_moved(self) {
        let meta = self.head.meta.load(Relaxed);
        // Release: whoever sees MOVED sees every entry already placed in the next table.
        self.head.meta.store(meta | MOVED, Release);
    }

    /// The buckets of the chain, head first.
    fn buckets(self) -> impl Iterator<Item = &'a Bucket<K, V>> {
        std::iter::successors(Some(self.head), |bucket| {
            // SAFETY: overflow buckets live as long as the table, which outlives the lock.
            unsafe { bucket.next.load(Relaxed).as_ref() }
        })
    }

    /// Every occupied slot and its entry.
    pub(crate) fn occupied(self) -> impl Iterator<Item = (Slot<'a, K, V>, &'a Entry<K, V>)> {
        self.buckets().flat_map(|bucket| {
            let meta = bucket.meta.load(Relaxed);
            slots_of(occupied(meta)).map(move |index| {
                // SAFETY: a tagged slot holds a published entry; only lock holders unlink and
                // retire entries, and this writer holds the lock.
                let entry = unsafe { &*bucket.slots[index].load(Relaxed) };
                (Slot { bucket, index }, entry)
            })
        })
    }

    /// The slot of the entry with hash `hash` whose key `matches` approves.
    #[inline]
    pub(crate) fn locate(
        self,
        hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Option<Located<'a, K, V>> {
        let tag = tag_of(hash);
        self.occupied().find(|(slot, entry)| {
            tag_at(slot.bucket.meta.load(Relaxed), slot.index) == tag
                && entry.hash == hash
                && matches(&entry.key)
        })
    }

    /// Puts `entry` in `slot` in place of the one there; returns the old one, to be retired.
    pub(crate) fn replace(self, slot: Slot<'a, K, V>, entry: Box<Entry<K, V>>) -> *mut Entry<K, V> {
        // Release: a reader that loads the pointer sees the entry's contents.
        slot.bucket.slots[slot.index].swap(Box::into_raw(entry), Release)
    }

    /// Empties `slot`; returns its entry, to be retired.
    pub(crate) fn remove(self, slot: Slot<'a, K, V>) -> *mut Entry<K, V> {
        let bucket = slot.bucket;
        // Relaxed: a reader that still sees the tag finds the entry or a null slot, either
        // of which is a valid answer from before or after the removal; the retire that follows
        // orders the unlink before the entry can be freed.
        let meta = bucket.meta.load(Relaxed);
        bucket.meta.store(with_tag(meta, slot.index, 0), Relaxed);
        bucket.slots[slot.index].swap(ptr::null_mut(), Relaxed)
    }

    /// Adds `entry` (whose key is not in the chain) in the first free slot, linking `spare()`, a
    /// fresh bucket that lives as long as the chain, if there is none; returns whether it did.
    pub(crate) fn add(
        self,
        entry: *mut Entry<K, V>,
        hash: u64,
        spare: impl FnOnce() -> &'a Bucket<K, V>,
    ) -> bool {
        let tag = tag_of(hash);
        let mut last = self.head;
        for bucket in self.buckets() {
            let meta = bucket.meta.load(Relaxed);
            if let Some(index) = (0..SLOTS).find(|&index| tag_at(meta, index) == 0) {
                // Release: a reader that loads the pointer sees the entry's contents.
                bucket.slots[index].store(entry, Release);
                // Release: a reader that sees the tag sees the slot.
                bucket.meta.store(with_tag(meta, index, tag), Release);
                return false;
            }
            last = bucket;
        }
        let overflow = spare();
        overflow.slots[0].store(entry, Relaxed);
        overflow.meta.store(u64::from(tag), Relaxed);
        // Release: a reader that follows the link sees the bucket as built.
        last.next.store(ptr::from_ref(overflow).cast_mut(), Release);
        true
    }
}

impl<K, V> Bucket<K, V> {
    /// Every entry of this chain, if it has not moved, with its slot emptied; for owners of the
    /// whole table (no reader or writer left), to move or free them. This bucket must be a head.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Box<Entry<K, V>>> + '_ {
        let moved = self.meta.load(Relaxed) & MOVED != 0;
        // SAFETY: `&mut self` excludes every other writer, as the lock would.
        let chain = unsafe { Chain::locked(self) };
        let taken: Vec<_> = if moved {
            Vec::new()
        } else {
            chain
                .occupied()
                .map(|(slot, _)| chain.remove(slot))
                .collect()
        };
        taken.into_iter().map(|entry| {
            // SAFETY: each pointer was a published entry, made by `Box::into_raw` and now
            // unlinked from the only table that held it (a moved chain's entries belong to the
            // next table).
            unsafe { Box::from_raw(entry) }
        })
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::*;

    /// Tables are allocated zeroed, with no pass over their buckets (`table.rs`).
    #[test]
    fn a_fresh_bucket_is_zeroed_memory() {
        assert!(Bucket::<u64, u64>::zero_is_fresh());
    }

    /// `occupied` lists exactly the slots with a tag, whatever the tags and the MOVED bit.
    #[test]
    fn occupied_lists_the_tagged_slots() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let tags: Vec<u8> = (0..SLOTS)
                .map(|i| match (state >> (8 * i)) as u8 {
                    t if t % 3 == 0 => 0,
                    t => 0x80 | t,
                })
                .collect();
            let moved = if state & 1 == 0 { MOVED } else { 0 };
            let meta = (0..SLOTS).fold(moved, |m, i| with_tag(m, i, tags[i]));
            let occupied: Vec<usize> = slots_of(occupied(meta)).collect();
            let expected: Vec<usize> = (0..SLOTS).filter(|&i| tags[i] != 0).collect();
            assert_eq!(occupied, expected);
        }
    }
}
