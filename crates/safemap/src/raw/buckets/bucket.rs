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

use std::hash::BuildHasher;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::line::{Chain, Entry, Found, Line, Located, Slot};
use crate::raw::prefetch;
use crate::raw::reclaim::{Collector, Guard};
use crate::raw::routing::TAG_BITS;
use crate::sync::{AtomicPtr, AtomicU64, Mutex};

/// Entry pointers per bucket: with the lock, the meta word and the link, one 64-byte line.
pub(crate) const SLOTS: usize = 5;

/// Set in a head bucket's meta word once its chain has been copied to the next table; from then
/// on the chain is frozen and every operation on its keys goes to the next table.
const MOVED: u64 = 1 << 63;

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

/// The slots whose tag is `tag`, as a mask like [`occupied`]'s, plus at most a few slots past
/// one that matches (the zero-byte test's borrow), which the caller's hash comparison rejects.
#[inline(always)]
fn tagged(meta: u64, tag: u8) -> u64 {
    let differs = meta ^ (u64::from(tag) * 0x01_0101_0101);
    differs.wrapping_sub(0x01_0101_0101) & !differs & TAG_HIGH_BITS
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

/// One line of a chain of pointers to boxed entries.
#[repr(align(64))]
pub struct Bucket<K, V> {
    lock: Mutex<()>,
    meta: AtomicU64,
    slots: [AtomicPtr<Entry<K, V>>; SLOTS],
    next: AtomicPtr<Bucket<K, V>>,
}

impl<K, V> Bucket<K, V> {
    /// The buckets of the chain, head first, for its lock holder.
    fn buckets(chain: Chain<'_, Self>) -> impl Iterator<Item = &Self> {
        std::iter::successors(Some(chain.head()), |bucket| {
            // SAFETY: overflow buckets live as long as the table, which outlives the lock.
            unsafe { bucket.next.load(Relaxed).as_ref() }
        })
    }

    /// Adds the entry behind `entry` in the first free slot; see [`Line::add`].
    fn add_pointer<'a>(
        chain: Chain<'a, Self>,
        entry: *mut Entry<K, V>,
        hash: u64,
        spare: impl FnOnce() -> &'a Self,
    ) -> bool {
        let tag = tag_of(hash);
        let mut last = chain.head();
        for bucket in Self::buckets(chain) {
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

impl<K, V> Line<K, V> for Bucket<K, V> {
    const SLOTS: usize = SLOTS;

    const KEEPS_HASH: bool = true;

    type Item = Box<Entry<K, V>>;

    type View<'a>
        = &'a Entry<K, V>
    where
        Self: 'a;

    type Unlinked = *mut Entry<K, V>;

    fn new() -> Self {
        Bucket {
            lock: Mutex::new(()),
            meta: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The atomics are zero when null or 0 by their documented representation; the lock is
    /// asked.
    #[cfg(not(shuttle))]
    fn zero_is_fresh() -> bool {
        super::line::lock_is_zero()
    }

    fn item(entry: Entry<K, V>) -> Box<Entry<K, V>> {
        Box::new(entry)
    }

    fn into_entry(item: Box<Entry<K, V>>) -> Entry<K, V> {
        *item
    }

    /// Kept in the entry: a pointer line needs no hasher.
    #[inline]
    fn hash_of<S: BuildHasher>(entry: &&Entry<K, V>, _hasher: &S) -> u64 {
        entry.hash
    }

    #[inline(always)]
    fn find<'g>(
        &'g self,
        guard: &'g Guard<'_>,
        hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Found<&'g Entry<K, V>> {
        // Acquire: seeing a tag (or MOVED) makes the slot (or the next table's copy) visible.
        let mut meta = self.meta.load(Acquire);
        if meta & MOVED != 0 {
            return Found::Moved;
        }
        let tag = tag_of(hash);
        let mut bucket = self;
        loop {
            // The slots whose tag matches, found without a branch per slot (which slot holds a
            // key is random, and such a branch mispredicts): usually one, the key's.
            for slot in slots_of(tagged(meta, tag)) {
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

    fn read_all<'g>(
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

    /// Prefetches the entries the head line's occupied slots point to, and the overflow line it
    /// links to, if any (it comes from a spare block, away from the head lines an iteration reads
    /// in order). Relaxed: a stale or freed pointer only wastes a prefetch, which never faults.
    #[inline(always)]
    fn prefetch_linked(&self) {
        for slot in slots_of(occupied(self.meta.load(Relaxed))) {
            prefetch(self.slots[slot].load(Relaxed).addr());
        }
        let next = self.next.load(Relaxed);
        if !next.is_null() {
            prefetch(next.addr());
        }
    }

    fn lock_word(&self) -> &Mutex<()> {
        &self.lock
    }

    fn is_moved(chain: Chain<'_, Self>) -> bool {
        // Relaxed: MOVED is set under the lock this writer holds.
        chain.head().meta.load(Relaxed) & MOVED != 0
    }

    fn mark_moved(chain: Chain<'_, Self>) {
        let meta = chain.head().meta.load(Relaxed);
        // Release: whoever sees MOVED sees every entry already placed in the next table.
        chain.head().meta.store(meta | MOVED, Release);
    }

    /// Compares tags first, all of a bucket's at once as readers do, so that only a matching
    /// entry is loaded.
    #[inline]
    fn locate<'a>(
        chain: Chain<'a, Self>,
        hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Option<Located<'a, K, V, Self>> {
        let tag = tag_of(hash);
        Self::buckets(chain).find_map(|line| {
            let meta = line.meta.load(Relaxed);
            slots_of(tagged(meta, tag)).find_map(|index| {
                // SAFETY: a slot `tagged` lists has a tag (the one looked for or, past it,
                // another), so it holds a published entry; only lock holders unlink and retire
                // entries, and this writer holds the lock.
                let entry = unsafe { line.slots[index].load(Relaxed).as_ref() }?;
                (entry.hash == hash && matches(&entry.key))
                    .then(|| (Slot::of(chain, line, index), entry))
            })
        })
    }

    fn occupied<'a>(
        chain: Chain<'a, Self>,
    ) -> impl Iterator<Item = (Slot<'a, Self>, &'a Entry<K, V>)> {
        Self::buckets(chain).flat_map(move |line| {
            let meta = line.meta.load(Relaxed);
            slots_of(occupied(meta)).map(move |index| {
                // SAFETY: a tagged slot holds a published entry; only lock holders unlink and
                // retire entries, and this writer holds the lock.
                let entry = unsafe { &*line.slots[index].load(Relaxed) };
                (Slot::of(chain, line, index), entry)
            })
        })
    }

    fn replace(slot: Slot<'_, Self>, item: Box<Entry<K, V>>) -> *mut Entry<K, V> {
        // Release: a reader that loads the pointer sees the entry's contents.
        slot.line().slots[slot.index()].swap(Box::into_raw(item), Release)
    }

    fn remove(slot: Slot<'_, Self>) -> *mut Entry<K, V> {
        let bucket = slot.line();
        // Relaxed: a reader that still sees the tag finds the entry or a null slot, either
        // of which is a valid answer from before or after the removal; the retire that follows
        // orders the unlink before the entry can be freed.
        let meta = bucket.meta.load(Relaxed);
        bucket.meta.store(with_tag(meta, slot.index(), 0), Relaxed);
        bucket.slots[slot.index()].swap(ptr::null_mut(), Relaxed)
    }

    fn add<'a>(
        chain: Chain<'a, Self>,
        item: Box<Entry<K, V>>,
        spare: impl FnOnce() -> &'a Self,
    ) -> bool {
        let hash = item.hash;
        Self::add_pointer(chain, Box::into_raw(item), hash, spare)
    }

    /// The pointer, not a copy: the entry is reachable from both chains until the old table goes.
    fn carry<'a>(chain: Chain<'a, Self>, entry: &&Entry<K, V>, spare: impl FnOnce() -> &'a Self) {
        let pointer = ptr::from_ref(*entry).cast_mut();
        Self::add_pointer(chain, pointer, entry.hash, spare);
    }

    fn drain(&mut self) -> Vec<(K, V)> {
        // SAFETY: `&mut self` excludes every other writer, as the lock would.
        let chain = unsafe { Chain::locked(&*self) };
        if Self::is_moved(chain) {
            return Vec::new();
        }
        let taken: Vec<_> = Self::occupied(chain)
            .map(|(slot, _)| Self::remove(slot))
            .collect();
        taken
            .into_iter()
            .map(|entry| {
                // SAFETY: each pointer was a published entry, made by `Box::into_raw` and now
                // unlinked from the only table that held it (a moved chain's entries belong to
                // the next table).
                let entry = unsafe { Box::from_raw(entry) };
                (entry.key, entry.value)
            })
            .collect()
    }

    unsafe fn retire(collector: &Collector, unlinked: *mut Entry<K, V>) {
        // SAFETY: an unlinked entry is unreachable for guards entered from now on: its chain was
        // the only place it was reachable from (a frozen copy of the chain is read only by guards
        // entered before it froze, see `resize.rs`). Freeing waits for the writer's guard too.
        unsafe { collector.retire(unlinked) };
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::*;

    /// Tables are allocated zeroed, with no pass over their buckets (`table.rs`).
    #[test]
    fn a_fresh_bucket_is_zeroed_memory() {
        assert!(<Bucket<u64, u64> as Line<u64, u64>>::zero_is_fresh());
    }

    /// Random meta words: slot tags (a third of them empty, the others from a few values, so
    /// that equal tags are common), and the MOVED bit half the time.
    fn random_metas() -> impl Iterator<Item = (u64, Vec<u8>)> {
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
            let moved = if state & 1 == 0 { MOVED } else { 0 };
            let meta = (0..SLOTS).fold(moved, |m, i| with_tag(m, i, tags[i]));
            (meta, tags)
        })
        .take(100_000)
    }

    /// `occupied` lists exactly the slots with a tag, whatever the tags and the MOVED bit.
    #[test]
    fn occupied_lists_the_tagged_slots() {
        for (meta, tags) in random_metas() {
            let occupied: Vec<usize> = slots_of(occupied(meta)).collect();
            let expected: Vec<usize> = (0..SLOTS).filter(|&i| tags[i] != 0).collect();
            assert_eq!(occupied, expected);
        }
    }

    /// `tagged` lists every slot with the tag looked for, and no other slot below the first
    /// such one (none at all if there is none).
    #[test]
    fn tagged_lists_every_slot_with_the_tag() {
        for (meta, tags) in random_metas() {
            for tag in 0x80..0x84 {
                let listed: Vec<usize> = slots_of(tagged(meta, tag)).collect();
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
            }
        }
    }
}
