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
//!
//! A head's summary of its overflow buckets' tags (`line.rs`, "Overflow summaries") is part of
//! its meta word, so a reader's one Acquire load of that word is the moment it reads both: the
//! bit is published (Release) before the slot store that places an entry so tagged in an
//! overflow bucket, and cleared only after the removal. A lookup of a key whose bit is clear
//! stops at the head, without loading the overflow bucket, which lies in a spare block and is a
//! miss of its own.

use std::hash::BuildHasher;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::line::{
    Blocks, Chain, Entry, Found, Head, Line, Located, MOVED, Slot, Unit, beyond, free_slot,
    slots_of, tag_of, tagged, with_tag,
};
use super::resize::STRESS;
use crate::raw::entry::Probe;
use crate::raw::prefetch;
use crate::raw::reclaim::{Collector, Guard};
use crate::sync::{AtomicPtr, AtomicU64, Mutex};

/// Entry pointers per bucket: with the lock, the meta word and the link, one 64-byte line.
pub(crate) const SLOTS: usize = 5;

/// The slots of a meta word that hold an entry.
#[inline(always)]
fn occupied(meta: u64) -> u64 {
    super::line::occupied::<SLOTS>(meta)
}

/// One line of a chain of pointers to boxed entries.
#[repr(align(64))]
pub struct Bucket<K, V> {
    lock: Mutex<()>,
    meta: AtomicU64,
    slots: [AtomicPtr<Entry<K, V>>; SLOTS],
    next: AtomicPtr<Bucket<K, V>>,
}

impl<K, V> Blocks for Bucket<K, V> {
    /// Nothing: a pointer line holds its slots.
    type Block = ();

    fn fresh_block() {}
}

impl<K, V> Bucket<K, V> {
    /// `line` as a chain's line: it has no block.
    fn head(line: &Self) -> Head<'_, Self> {
        Head::new(line, &())
    }

    /// The buckets of the chain, head first, for its lock holder.
    fn buckets(chain: Chain<'_, Self>) -> impl Iterator<Item = &Self> {
        std::iter::successors(Some(chain.head().line()), |bucket| {
            // SAFETY: overflow buckets live as long as the table, which outlives the lock.
            unsafe { bucket.next.load(Relaxed).as_ref() }
        })
    }

    /// Adds the entry behind `entry` in the first free slot; see [`Line::add`].
    fn add_pointer<'a>(
        chain: Chain<'a, Self>,
        entry: *mut Entry<K, V>,
        hash: u64,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) -> bool {
        let tag = tag_of(hash);
        let mut last = chain.head().line();
        for (depth, bucket) in Self::buckets(chain).enumerate() {
            let meta = bucket.meta.load(Relaxed);
            if let Some(index) = free_slot(meta, <Self as Line<K, V>>::SLOTS) {
                if depth > 0 {
                    Self::summarize(chain, tag);
                }
                // Release: a reader that loads the pointer sees the entry's contents.
                bucket.slots[index].store(entry, Release);
                // A reader that sees the tag sees the slot.
                bucket.publish_meta(with_tag(meta, index, tag));
                return false;
            }
            last = bucket;
        }
        Self::summarize(chain, tag);
        let overflow = spare().head().line();
        overflow.slots[0].store(entry, Relaxed);
        overflow.meta.store(u64::from(tag), Relaxed);
        // Release: a reader that follows the link sees the bucket as built.
        last.next.store(ptr::from_ref(overflow).cast_mut(), Release);
        true
    }
}

impl<K, V> Line<K, V> for Bucket<K, V> {
    /// One under the stress cfg and shuttle, so that a history of a few keys links overflow
    /// buckets and runs their protocol.
    const SLOTS: usize = if STRESS { 1 } else { SLOTS };

    const KEEPS_HASH: bool = true;

    type Item = Box<Entry<K, V>>;

    type View<'a>
        = &'a Entry<K, V>
    where
        Self: 'a;

    type Unlinked = *mut Entry<K, V>;

    /// A reclamation guard: readers dereference entries that writes retire.
    type Reader<'a> = Guard<'a>;

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
        head: Head<'g, Self>,
        guard: &'g Guard<'_>,
        probe: impl Probe<K>,
    ) -> Found<&'g Entry<K, V>> {
        let hash = probe.hash();
        let mut bucket = head.line();
        // Acquire: seeing a tag (or MOVED) makes the slot (or the next table's copy) visible.
        let mut meta = bucket.meta.load(Acquire);
        if meta & MOVED != 0 {
            return Found::Moved;
        }
        let tag = tag_of(hash);
        // Whether `bucket` is the head, whose summary tells whether the key may be further on.
        let mut at_head = true;
        loop {
            // The slots whose tag matches, found without a branch per slot (which slot holds a
            // key is random, and such a branch mispredicts): usually one, the key's.
            for slot in slots_of(tagged::<SLOTS>(meta, tag)) {
                let entry = guard.load(&bucket.slots[slot]);
                // SAFETY: a non-null slot points to a published entry, which stays allocated while
                // `guard` lives: it is retired only after being unlinked, and the guard was entered
                // before this load.
                if let Some(entry) = unsafe { entry.as_ref() }
                    && entry.hash == hash
                    && probe.matches(&entry.key)
                {
                    return Found::Entry(entry);
                }
            }
            if at_head && meta & beyond(tag) == 0 {
                return Found::Absent;
            }
            at_head = false;
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
        head: Head<'g, Self>,
        guard: &'g Guard<'_>,
        mut visit: impl FnMut(&'g Entry<K, V>),
    ) -> Result<(), ()> {
        let mut bucket = head.line();
        // Acquire: as in `find`.
        let mut meta = bucket.meta.load(Acquire);
        if meta & MOVED != 0 {
            return Err(());
        }
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
    fn prefetch_linked(head: Head<'_, Self>) {
        let bucket = head.line();
        for slot in slots_of(occupied(bucket.meta.load(Relaxed))) {
            prefetch(bucket.slots[slot].load(Relaxed).addr());
        }
        let next = bucket.next.load(Relaxed);
        if !next.is_null() {
            prefetch(next.addr());
        }
    }

    fn lock_word(&self) -> &Mutex<()> {
        &self.lock
    }

    fn meta(&self) -> &AtomicU64 {
        &self.meta
    }

    fn publish_meta(&self, meta: u64) {
        // Release: a reader that loads the word (Acquire) sees the holder's stores before it.
        self.meta.store(meta, Release);
    }

    /// Compares tags first, all of a bucket's at once as readers do, so that only a matching
    /// entry is loaded.
    #[inline]
    fn locate<'a>(chain: Chain<'a, Self>, probe: impl Probe<K>) -> Option<Located<'a, K, V, Self>> {
        let hash = probe.hash();
        let tag = tag_of(hash);
        for (depth, line) in Self::buckets(chain).enumerate() {
            let meta = line.meta.load(Relaxed);
            for index in slots_of(tagged::<SLOTS>(meta, tag)) {
                // SAFETY: a slot `tagged` lists has a tag (the one looked for or, past it,
                // another), so it holds a published entry; only lock holders unlink and retire
                // entries, and this writer holds the lock.
                let Some(entry) = (unsafe { line.slots[index].load(Relaxed).as_ref() }) else {
                    continue;
                };
                if entry.hash == hash && probe.matches(&entry.key) {
                    return Some((Slot::of(chain, Self::head(line), index), entry));
                }
            }
            // Past the head only if its summary has the tag.
            if depth == 0 && meta & beyond(tag) == 0 {
                return None;
            }
        }
        None
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
                (Slot::of(chain, Self::head(line), index), entry)
            })
        })
    }

    fn replace(slot: Slot<'_, Self>, item: Box<Entry<K, V>>) -> *mut Entry<K, V> {
        // Release: a reader that loads the pointer sees the entry's contents.
        slot.line().line().slots[slot.index()].swap(Box::into_raw(item), Release)
    }

    fn remove(slot: Slot<'_, Self>) -> *mut Entry<K, V> {
        let bucket = slot.line().line();
        // Relaxed: a reader that still sees the tag finds the entry or a null slot, either
        // of which is a valid answer from before or after the removal; the retire that follows
        // orders the unlink before the entry can be freed.
        let meta = bucket.meta.load(Relaxed);
        bucket.meta.store(with_tag(meta, slot.index(), 0), Relaxed);
        let unlinked = bucket.slots[slot.index()].swap(ptr::null_mut(), Relaxed);
        if !slot.in_head() {
            let chain = slot.chain();
            let overflow = Self::buckets(chain).skip(1);
            Self::resummarize(chain, overflow.map(|bucket| bucket.meta.load(Relaxed)));
        }
        unlinked
    }

    fn add<'a>(
        chain: Chain<'a, Self>,
        item: Box<Entry<K, V>>,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) -> bool {
        let hash = item.hash;
        Self::add_pointer(chain, Box::into_raw(item), hash, spare)
    }

    /// The pointer, not a copy: the entry is reachable from both chains until the old table goes.
    fn carry<'a>(
        chain: Chain<'a, Self>,
        entry: &&Entry<K, V>,
        hash: u64,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) {
        let pointer = ptr::from_ref(*entry).cast_mut();
        Self::add_pointer(chain, pointer, hash, spare);
    }

    fn drain(chain: Chain<'_, Self>) -> Vec<(K, V)> {
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

    unsafe fn retire<'c>(collector: impl FnOnce() -> &'c Collector, unlinked: *mut Entry<K, V>) {
        // SAFETY: an unlinked entry is unreachable for guards entered from now on: its chain was
        // the only place it was reachable from (a frozen copy of the chain is read only by guards
        // entered before it froze, see `resize.rs`). Freeing waits for the writer's guard too.
        unsafe { collector().retire(unlinked) };
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
}
