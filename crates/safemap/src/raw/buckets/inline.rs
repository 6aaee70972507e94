//! One line of a chain that holds its entries themselves, for keys and values that are plain
//! old data (`bytemuck::Pod`): a read touches the line, then the one slot it looks for.
//!
//! # Layout
//! A line is 16 bytes: the chain's lock (used in head lines), a sequence word, and a meta word
//! holding a tag byte per slot (the hash's top bits, high bit set; zero for a free slot), two
//! flags, `MOVED` (head lines) and `LINKED` (an overflow line follows), and in a head line six
//! bits summarizing its overflow lines' tags (below, "Overflow"). Its slots live apart, in
//! a 128-byte [`Slots`] block: [`WORDS`] words of entries and the link to the overflow line. A
//! slot is the entry's key's bytes, then its value's, each rounded up to whole words: `u64` keys
//! and values take two words, so a line has seven slots. A table keeps its head lines in one
//! dense array and their blocks in another (`table.rs`), and an overflow line comes with its
//! block from the table's spare memory. So the lines a lookup and a lock touch first are a
//! ninth of the table's bytes, and stay cached when the slots do not: at 64k keys the lines of
//! `ScalablePodMap` take 128 KiB. The hash is not kept: the core computes it again with the
//! map's hasher where it needs an entry's position (moving a chain to a larger table, iterating
//! across tables of different sizes).
//!
//! Why the lines apart from their slots: with the lock, tags and version in each 128-byte bucket,
//! a lookup at 64k keys missed the caches on the bucket's first line and a write's lock waited
//! for it. Two prototypes of this layout (`docs/performance-log.md`, "A dense header per chain")
//! read about 1.4 times as fast and wrote 1.4-1.6 times as fast.
//!
//! # Reads
//! A lookup prefetches the line's slot block, copies the line's meta word with atomic loads and
//! keeps the copy only if the sequence word was even before and is unchanged after. For each slot
//! whose tag matches (usually one), it copies the slot's key and value from the block, and keeps
//! them only if the sequence word still holds the value the meta word was validated at (else it
//! reads the line again); only then does it compare the key. Every word is an atomic, so a copy
//! that races a write is discarded, never undefined behaviour (a seqlock over non-atomic data
//! would be), and user code (`Eq`) only ever sees a validated copy, never a torn key. An
//! iteration copies a line's meta word and all its slot words the same way. A reader stores
//! nothing. It waits only while a writer is between the two stores of the sequence word, which
//! bracket a few word stores and no user code.
//!
//! # Overflow
//! A chain whose head line is full links overflow lines, each with its block, from the table's
//! spare memory. A lookup that found no match in the head would follow the link, in the head
//! block's second cache line, to the overflow line: one or two misses more, for a key that is
//! usually not there (at 64k keys about one lookup in seven went on; more under churn, which
//! leaves emptied overflow lines linked). The head's summary of its overflow lines' tags
//! (`line.rs`, "Overflow summaries") stops those lookups at the head: a bracket publishes a tag's
//! bit before the bracket that places an entry so tagged, and a removal's bracket comes before
//! the one that clears the bit, so a validated copy of the head's meta word is of one moment for
//! the summary as for the tags. Callgrind's cache simulation (one thread, 64k keys), first-level
//! read misses an operation: ReadHeavy 2.18 -> 2.06, Exchange 2.19 -> 1.81
//! (`docs/performance-log.md`, "A head line summarizes its overflow lines").
//!
//! # Writes
//! Every change goes through the holder of the chain head's lock, which reads the lines with
//! Relaxed loads (the lock orders the writers). A write prefetches the head's slot block before
//! it takes the lock, so that the block's miss overlaps the one the lock waits for, on the line.
//! Each change a reader may see is bracketed: the sequence word goes odd, the words change, the
//! word goes even again. An overflow line is filled before the bracketed store that links it. A
//! key, once placed, stays in its slot until removed, so a reader scanning the chain finds every
//! key present throughout its scan, as in `bucket.rs`.
//!
//! # Orderings
//! - Writer: `seq = s + 1` (Relaxed), fence(Release), the stores (Relaxed), `seq = s + 2`
//!   (Release).
//! - Reader: `s1 = seq` (Acquire), the loads (Relaxed), fence(Acquire), `s2 = seq` (Relaxed). A
//!   lookup's slot loads follow `s2 == s1` with a second fence(Acquire) and `s3 = seq` (Relaxed),
//!   kept if `s3 == s1`: the same argument, for loads made between `s1` and `s3`.
//!
//! If one of the reader's loads saw a store of a bracket, the reader's fence synchronizes with
//! that bracket's Release fence, so `s2` sees the odd value or a later one and differs from an
//! even `s1` taken before the bracket (the C++ seqlock argument, Boehm 2012). If `s1` is the even
//! value a bracket ended with, its Release store makes the bracket's stores visible to the loads.
//! The word is 32 bits: a reader fooled by wrap-around would have to sleep through 2^31 writes to
//! one line between its two loads of it.

use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use bytemuck::Pod;

use super::line::{
    Blocks, Chain, Entry, Found, Head, Line, Located, MAX_TAGS, MOVED, Slot, Stored, Unit, beyond,
    free_slot, occupied, slots_of, tag_of, tagged, with_tag,
};
use super::resize::STRESS;
use crate::raw::entry::Probe;
use crate::raw::gate::ReadPass;
use crate::raw::prefetch;
use crate::raw::reclaim::Collector;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Mutex, Spin, fence};

/// Slot words per block: with the link, one 128-byte block.
const WORDS: usize = 14;

/// Slots per line: as many as the meta word has tag bytes.
const MAX_SLOTS: usize = MAX_TAGS;

/// Set in a line's meta word once an overflow line is linked after it.
const LINKED: u64 = 1 << 62;

/// One line of a chain of inline entries: what a reader or a lock holder looks at first.
#[repr(C, align(16))]
pub struct Inline<K, V> {
    lock: Mutex<()>,
    /// Odd while a bracketed change is under way.
    seq: AtomicU32,
    /// A tag byte per slot, and `MOVED` and `LINKED`.
    meta: AtomicU64,
    holds: PhantomData<Entry<K, V>>,
}

/// The slots of one line, kept apart from it: 128 bytes, which a table's array starts on a cache
/// line (`table.rs`); aligned to 16 bytes only, so that an overflow line and its block take 144
/// bytes of spare memory rather than 192 (an overflow block may then span three cache lines).
#[repr(C, align(16))]
pub struct Slots<K, V> {
    words: [AtomicU64; WORDS],
    /// The overflow line after this one, with its block; set once, before `LINKED`.
    next: AtomicPtr<Unit<Inline<K, V>>>,
}

impl<K, V> Blocks for Inline<K, V> {
    type Block = Slots<K, V>;

    fn fresh_block() -> Slots<K, V> {
        Slots {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// An entry copied out of a block: its key and value (the line keeps no hash).
#[derive(Clone, Copy)]
pub struct Copied<K, V> {
    key: K,
    value: V,
}

impl<K, V> Stored<K, V> for Copied<K, V> {
    fn key(&self) -> &K {
        &self.key
    }

    fn value(&self) -> &V {
        &self.value
    }
}

/// The words a `T` takes.
const fn words_of<T>() -> usize {
    size_of::<T>().div_ceil(8)
}

fn decode<T: Pod>(words: &[u64]) -> T {
    bytemuck::pod_read_unaligned(&bytemuck::cast_slice::<u64, u8>(words)[..size_of::<T>()])
}

fn encode<T: Pod>(value: &T, words: &mut [u64]) {
    bytemuck::cast_slice_mut::<u64, u8>(words)[..size_of::<T>()]
        .copy_from_slice(bytemuck::bytes_of(value));
}

impl<K: Pod, V: Pod> Slots<K, V> {
    const KEY_WORDS: usize = words_of::<K>();
    const VALUE_WORDS: usize = words_of::<V>();
    const SLOT_WORDS: usize = Self::KEY_WORDS + Self::VALUE_WORDS;

    /// The entry in slot `index`, with Relaxed loads: inside a validated read, or by the lock
    /// holder.
    #[inline(always)]
    fn entry(&self, index: usize) -> Copied<K, V> {
        let first = index * Self::SLOT_WORDS;
        let words: [u64; WORDS] = std::array::from_fn(|word| {
            if word < Self::SLOT_WORDS {
                self.words[first + word].load(Relaxed)
            } else {
                0
            }
        });
        Copied {
            key: decode(&words[..Self::KEY_WORDS]),
            value: decode(&words[Self::KEY_WORDS..Self::SLOT_WORDS]),
        }
    }

    /// Every slot word, with Relaxed loads: inside a validated read, or by the lock holder.
    #[inline(always)]
    fn all_words(&self) -> [u64; WORDS] {
        std::array::from_fn(|index| self.words[index].load(Relaxed))
    }

    /// The entry of slot `index` in `words` (from [`Self::all_words`]).
    fn entry_in(words: &[u64; WORDS], index: usize) -> Copied<K, V> {
        let slot = &words[index * Self::SLOT_WORDS..][..Self::SLOT_WORDS];
        Copied {
            key: decode(&slot[..Self::KEY_WORDS]),
            value: decode(&slot[Self::KEY_WORDS..]),
        }
    }

    /// Stores `key` and `value` in slot `index`; inside a bracket, or in a block no reader sees
    /// yet.
    fn store(&self, index: usize, key: &K, value: &V) {
        let mut words = [0; WORDS];
        encode(key, &mut words[..Self::KEY_WORDS]);
        encode(value, &mut words[Self::KEY_WORDS..Self::SLOT_WORDS]);
        let first = index * Self::SLOT_WORDS;
        for (at, word) in words[..Self::SLOT_WORDS].iter().enumerate() {
            self.words[first + at].store(*word, Relaxed);
        }
    }

    /// The overflow line after this block's line, for a reader whose validated meta word said
    /// `LINKED`, or for the lock holder.
    fn next(&self) -> Option<Head<'_, Inline<K, V>>> {
        // SAFETY: the link is set once, before `LINKED` (in a bracket a reader's validated copy
        // saw, or under the lock the holder holds), to a unit of this table's spare memory,
        // which lives as long as the table, which the caller's guard or lock keeps.
        unsafe { self.next.load(Relaxed).as_ref() }.map(Unit::head)
    }
}

impl<K: Pod, V: Pod> Inline<K, V> {
    const FITS: () = assert!(
        Slots::<K, V>::SLOT_WORDS <= WORDS,
        "an inline entry's key and value take at most 112 bytes"
    );

    /// What `copy` loads of this line and its block (with Relaxed loads only), from a run during
    /// which no bracket was under way or began, and the sequence value of that run: the seqlock
    /// read, in one place.
    #[inline(always)]
    fn validated<T>(&self, copy: impl Fn(&Self) -> T) -> (T, u32) {
        match self.try_validated(&copy) {
            Some(validated) => validated,
            None => self.validated_after_waiting(copy),
        }
    }

    /// One try of [`Self::validated`]: `None` if a bracket was under way or began meanwhile.
    #[inline(always)]
    fn try_validated<T>(&self, copy: &impl Fn(&Self) -> T) -> Option<(T, u32)> {
        // Acquire: a bracket that ended with this value has its stores visible to `copy`.
        let before = self.seq.load(Acquire);
        if before % 2 == 1 {
            return None;
        }
        let copied = copy(self);
        // Acquire: if a load of `copy` saw a bracket's store, the load below sees that bracket's
        // odd value or a later one (module docs).
        fence(Acquire);
        (self.seq.load(Relaxed) == before).then_some((copied, before))
    }

    /// The tries after a first that met a bracket, spinning between them. Out of line, so that
    /// the loop and its state cost the lookups that need none of it no registers.
    #[cold]
    #[inline(never)]
    fn validated_after_waiting<T>(&self, copy: impl Fn(&Self) -> T) -> (T, u32) {
        let spin = Spin::new();
        loop {
            spin.wait();
            if let Some(validated) = self.try_validated(&copy) {
                return validated;
            }
        }
    }

    /// What `copy` loads now, if the line is still as it was in the run a [`Self::validated`]
    /// read returned `at` for: `None` if a bracket began since. The same argument as there, with
    /// the first load of the sequence word moved back to that run, makes these loads and that
    /// run's one moment's contents.
    #[inline(always)]
    fn still<T>(&self, at: u32, copy: impl FnOnce() -> T) -> Option<T> {
        let copied = copy();
        // Acquire: as in `validated`.
        fence(Acquire);
        (self.seq.load(Relaxed) == at).then_some(copied)
    }

    /// Runs `change`, which stores into this line or its block, as one bracket readers see whole
    /// or not at all.
    fn bracketed(&self, change: impl FnOnce()) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        // Release: a reader whose loads see the stores below sees the odd value (module docs).
        fence(Release);
        change();
        // Release: a reader that loads the even value sees every store of the bracket.
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// The occupied slots of a meta word whose tag is `tag`, plus at most a few more, which the
    /// key comparison rejects (`line::tagged`).
    #[inline(always)]
    fn candidates(meta: u64, tag: u8) -> u64 {
        tagged::<MAX_SLOTS>(meta, tag) & occupied::<MAX_SLOTS>(meta)
    }

    /// The entry for `probe` in the chain from `head`, whose meta word was validated as
    /// `validated`: the head's slots, then the overflow lines if the head's summary has the tag.
    #[inline(always)]
    fn find_from(
        head: Head<'_, Self>,
        validated: (u64, u32),
        probe: impl Probe<K>,
    ) -> Found<Copied<K, V>> {
        let tag = tag_of(probe.hash());
        match Self::find_in(head, validated, tag, probe) {
            Ok(entry) => Found::Entry(entry),
            Err(meta) if meta & LINKED == 0 || meta & beyond(tag) == 0 => Found::Absent,
            Err(_) => Self::find_beyond(head, tag, probe),
        }
    }

    /// The entry for `probe` (tagged `tag`) in the overflow lines after `head`.
    #[inline(always)]
    fn find_beyond(head: Head<'_, Self>, tag: u8, probe: impl Probe<K>) -> Found<Copied<K, V>> {
        let mut line = head;
        loop {
            line = line.block().next().expect("a linked line has a next one");
            let validated = line.line().validated(|l| l.meta.load(Relaxed));
            match Self::find_in(line, validated, tag, probe) {
                Ok(entry) => return Found::Entry(entry),
                Err(meta) if meta & LINKED == 0 => return Found::Absent,
                Err(_) => {}
            }
        }
    }

    /// The entry for `probe` (tagged `tag`) in `line` alone, whose meta word `meta` was
    /// validated at `at`, or the meta word it is absent under. Candidates (by tag) are copied,
    /// validated, then compared; a line that changed meanwhile is read again.
    #[inline(always)]
    fn find_in(
        line: Head<'_, Self>,
        (mut meta, mut at): (u64, u32),
        tag: u8,
        probe: impl Probe<K>,
    ) -> Result<Copied<K, V>, u64> {
        'again: loop {
            for index in slots_of(Self::candidates(meta, tag)) {
                let Some(entry) = line.line().still(at, || line.block().entry(index)) else {
                    (meta, at) = line.line().validated(|l| l.meta.load(Relaxed));
                    continue 'again;
                };
                if probe.matches(&entry.key) {
                    return Ok(entry);
                }
            }
            return Err(meta);
        }
    }

    /// Puts `key` and `value` in the first free slot of the chain, linking `spare()` if there is
    /// none; returns whether it did.
    #[inline(always)]
    fn add_pair<'a>(
        chain: Chain<'a, Self>,
        hash: u64,
        key: &K,
        value: &V,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) -> bool {
        let tag = tag_of(hash);
        let mut last = chain.head();
        for (depth, (line, meta)) in Self::lines(chain).enumerate() {
            if let Some(index) = free_slot(meta, Self::SLOTS) {
                if depth > 0 {
                    Self::summarize(chain, tag);
                }
                line.line().bracketed(|| {
                    line.block().store(index, key, value);
                    line.line().meta.store(with_tag(meta, index, tag), Relaxed);
                });
                return false;
            }
            last = line;
        }
        Self::summarize(chain, tag);
        Self::link_spare(last, tag, key, value, spare());
        true
    }

    /// Puts `key` and `value` in the first slot of `unit`, a spare line, and links it after
    /// `last`, the chain's last line, which is full: the rare end of an insert, kept out of its
    /// body.
    #[cold]
    fn link_spare(last: Head<'_, Self>, tag: u8, key: &K, value: &V, unit: &Unit<Self>) {
        let overflow = unit.head();
        overflow.block().store(0, key, value);
        overflow.line().meta.store(with_tag(0, 0, tag), Relaxed);
        let unit = ptr::from_ref(unit).cast_mut();
        let meta = last.line().meta.load(Relaxed);
        // Bracketed: a reader that sees `LINKED` sees, through the bracket's fence, the link and
        // the line as filled above.
        last.line().bracketed(|| {
            last.block().next.store(unit, Relaxed);
            last.line().meta.store(meta | LINKED, Relaxed);
        });
    }

    /// The lines of the chain, head first, each with its meta word as loaded once, for its lock
    /// holder. Lazy, unlike `successors`: a line's link sits in its block's second cache line,
    /// which a write that finds its key in the line should not wait for; and loaded only behind
    /// `LINKED`.
    fn lines(chain: Chain<'_, Self>) -> impl Iterator<Item = (Head<'_, Self>, u64)> {
        let mut last: Option<(Head<'_, Self>, u64)> = None;
        std::iter::from_fn(move || {
            let line = match last {
                None => chain.head(),
                Some((line, meta)) if meta & LINKED != 0 => {
                    line.block().next().expect("a linked line has a next one")
                }
                Some(_) => return None,
            };
            let meta = line.line().meta.load(Relaxed);
            last = Some((line, meta));
            last
        })
    }
}

impl<K: Pod, V: Pod> Line<K, V> for Inline<K, V> {
    /// As many as fit, up to one tag byte each; one under the stress cfg and shuttle, so that a
    /// history of a few keys links overflow lines and runs their protocol.
    const SLOTS: usize = {
        let () = Self::FITS;
        let fit = WORDS / Slots::<K, V>::SLOT_WORDS;
        if STRESS {
            1
        } else if fit < MAX_SLOTS {
            fit
        } else {
            MAX_SLOTS
        }
    };

    const KEEPS_HASH: bool = false;

    /// The entry as a write made it; its hash is not stored.
    type Item = Entry<K, V>;

    type View<'a>
        = Copied<K, V>
    where
        Self: 'a;

    /// Nothing: the entry was a copy, and the slot is reused in place.
    type Unlinked = ();

    /// An announcement in the gate: readers copy entries out, so they hold nothing but tables.
    type Reader<'a> = ReadPass<'a>;

    fn new() -> Self {
        Inline {
            lock: Mutex::new(()),
            seq: AtomicU32::new(0),
            meta: AtomicU64::new(0),
            holds: PhantomData,
        }
    }

    /// The atomics are zero when 0 by their documented representation, and so are a block's
    /// words and link; the lock is asked.
    #[cfg(not(shuttle))]
    fn zero_is_fresh() -> bool {
        super::line::lock_is_zero()
    }

    fn item(entry: Entry<K, V>) -> Entry<K, V> {
        entry
    }

    fn into_entry(item: Entry<K, V>) -> Entry<K, V> {
        item
    }

    /// Computed: the line keeps keys and values only.
    #[inline]
    fn hash_of<S: BuildHasher>(entry: &Copied<K, V>, hasher: &S) -> u64
    where
        K: Hash,
    {
        hasher.hash_one(entry.key)
    }

    /// The line's tags first, then the matching slots' words, each copy validated; keys are
    /// compared on validated copies.
    #[inline(always)]
    fn find<'g>(
        head: Head<'g, Self>,
        _reader: &'g ReadPass<'_>,
        probe: impl Probe<K>,
    ) -> Found<Self::View<'g>> {
        Self::prefetch_slots(head);
        let (meta, at) = head.line().validated(|l| l.meta.load(Relaxed));
        if meta & MOVED != 0 {
            return Found::Moved;
        }
        Self::find_from(head, (meta, at), probe)
    }

    fn read_all<'g>(
        head: Head<'g, Self>,
        _reader: &'g ReadPass<'_>,
        mut visit: impl FnMut(Self::View<'g>),
    ) -> Result<(), ()> {
        let mut line = head;
        let mut first = true;
        loop {
            let ((meta, words), _) = line
                .line()
                .validated(|l| (l.meta.load(Relaxed), line.block().all_words()));
            if first && meta & MOVED != 0 {
                return Err(());
            }
            first = false;
            for index in slots_of(occupied::<MAX_SLOTS>(meta)) {
                visit(Slots::entry_in(&words, index));
            }
            if meta & LINKED == 0 {
                return Ok(());
            }
            line = line.block().next().expect("a linked line has a next one");
        }
    }

    /// Both lines of the head's slot block.
    #[inline(always)]
    fn prefetch_slots(head: Head<'_, Self>) {
        let block = ptr::from_ref(head.block()).addr();
        prefetch(block);
        prefetch(block + 64);
    }

    /// Prefetches the chain's slot block, and the overflow line it links to, if any (from a spare
    /// block, away from the lines an iteration reads in order). Relaxed: a stale link only wastes
    /// a prefetch, which never faults.
    #[inline(always)]
    fn prefetch_linked(head: Head<'_, Self>) {
        Self::prefetch_slots(head);
        let next = head.block().next.load(Relaxed);
        if !next.is_null() {
            prefetch(next.addr());
            prefetch(next.addr() + 64);
            prefetch(next.addr() + 128);
        }
    }

    fn lock_word(&self) -> &Mutex<()> {
        &self.lock
    }

    fn meta(&self) -> &AtomicU64 {
        &self.meta
    }

    /// Bracketed: a reader that sees the word sees, through the bracket's fence, what the lock
    /// holder stored before.
    fn publish_meta(&self, meta: u64) {
        self.bracketed(|| self.meta.store(meta, Relaxed));
    }

    /// By tag, then key, as readers do.
    fn locate<'a>(chain: Chain<'a, Self>, probe: impl Probe<K>) -> Option<Located<'a, K, V, Self>> {
        let tag = tag_of(probe.hash());
        for (depth, (line, meta)) in Self::lines(chain).enumerate() {
            for index in slots_of(Self::candidates(meta, tag)) {
                let entry = line.block().entry(index);
                if probe.matches(&entry.key) {
                    return Some((Slot::of(chain, line, index), entry));
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
    ) -> impl Iterator<Item = (Slot<'a, Self>, Copied<K, V>)> {
        Self::lines(chain).flat_map(move |(line, meta)| {
            let words = line.block().all_words();
            slots_of(occupied::<MAX_SLOTS>(meta))
                .map(move |index| (Slot::of(chain, line, index), Slots::entry_in(&words, index)))
        })
    }

    fn replace(slot: Slot<'_, Self>, item: Entry<K, V>) {
        let line = slot.line();
        line.line()
            .bracketed(|| line.block().store(slot.index(), &item.key, &item.value));
    }

    fn remove(slot: Slot<'_, Self>) {
        let line = slot.line().line();
        let meta = line.meta.load(Relaxed);
        line.publish_meta(with_tag(meta, slot.index(), 0));
        if !slot.in_head() {
            let chain = slot.chain();
            Self::resummarize(chain, Self::lines(chain).skip(1).map(|(_, meta)| meta));
        }
    }

    #[inline(always)]
    fn add<'a>(
        chain: Chain<'a, Self>,
        item: Entry<K, V>,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) -> bool {
        Self::add_pair(chain, item.hash, &item.key, &item.value, spare)
    }

    /// A copy: readers of the moved chain read their own.
    fn carry<'a>(
        chain: Chain<'a, Self>,
        entry: &Copied<K, V>,
        hash: u64,
        spare: impl FnOnce() -> &'a Unit<Self>,
    ) {
        Self::add_pair(chain, hash, &entry.key, &entry.value, spare);
    }

    fn drain(chain: Chain<'_, Self>) -> Vec<(K, V)> {
        if Self::is_moved(chain) {
            return Vec::new();
        }
        let entries = Self::occupied(chain)
            .map(|(_, entry)| (entry.key, entry.value))
            .collect();
        for (line, meta) in Self::lines(chain) {
            line.line().meta.store(meta & LINKED, Relaxed);
        }
        entries
    }

    /// Nothing to retire: readers copy entries out, so none can hold a slot's old contents.
    unsafe fn retire<'c>(_: impl FnOnce() -> &'c Collector, (): ()) {}
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::*;
    use crate::raw::entry::Lookup;
    use crate::raw::gate::Gate;

    /// A probe for `key` with hash `hash`.
    fn probe(hash: u64, key: &u64) -> Lookup<'_, u64> {
        Lookup { hash, key }
    }

    #[test]
    fn a_line_is_sixteen_bytes_and_its_block_two_cache_lines_of_seven_word_sized_entries() {
        assert_eq!(size_of::<Inline<u64, u64>>(), 16);
        assert_eq!(size_of::<Slots<u64, u64>>(), 128);
        assert_eq!(size_of::<Unit<Inline<u64, u64>>>(), 144);
        if STRESS {
            assert_eq!(<Inline<u64, u64> as Line<u64, u64>>::SLOTS, 1);
            return;
        }
        assert_eq!(<Inline<u64, u64> as Line<u64, u64>>::SLOTS, 7);
        assert_eq!(<Inline<u32, [u8; 3]> as Line<u32, [u8; 3]>>::SLOTS, 7);
        assert_eq!(<Inline<[u64; 2], u64> as Line<[u64; 2], u64>>::SLOTS, 4);
        assert_eq!(
            <Inline<[u64; 3], [u8; 24]> as Line<[u64; 3], [u8; 24]>>::SLOTS,
            2
        );
        assert_eq!(
            <Inline<[u64; 7], [u64; 7]> as Line<[u64; 7], [u64; 7]>>::SLOTS,
            1
        );
        // One-word entries would fit fourteen times; the meta word has seven tag bytes.
        assert_eq!(<Inline<(), u64> as Line<(), u64>>::SLOTS, 7);
        assert!(<Inline<u64, u64> as Line<u64, u64>>::zero_is_fresh());
    }

    type Torn = Inline<u64, [u64; 2]>;

    /// Readers racing a writer that rewrites a two-word value, reading it with `read`, see one
    /// whole value or another, never halves of two: the version checks discard every torn copy.
    /// The writer keeps writing until the readers have read 200,000 times between them, so the
    /// two really overlap.
    fn no_read_is_torn(read: impl Fn(Head<'_, Torn>, &ReadPass<'_>) -> [u64; 2] + Sync) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::time::{Duration, Instant};

        const READS: usize = 200_000;
        let (line, block) = (Torn::new(), Torn::fresh_block());
        let head = Head::new(&line, &block);
        let hash = 0x1234;
        // SAFETY: only this test writes the line, from one thread at a time: the add here, then
        // the writer loop below, while the reader threads only read.
        let chain = unsafe { Chain::locked(head) };
        Torn::add(
            chain,
            Entry {
                hash,
                key: 7,
                value: [0; 2],
            },
            || unreachable!(),
        );
        let gate = Gate::new();
        let (done, reads) = (AtomicBool::new(false), AtomicUsize::new(0));
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        while !done.load(Ordering::Relaxed) {
                            let value = read(head, &gate.read());
                            assert_eq!(value[0], value[1], "a torn read");
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            let started = Instant::now();
            let mut round = 0u64;
            while reads.load(Ordering::Relaxed) < READS
                && started.elapsed() < Duration::from_secs(20)
            {
                round += 1;
                let (slot, _) = Torn::locate(chain, probe(hash, &7)).expect("stored");
                Torn::replace(
                    slot,
                    Entry {
                        hash,
                        key: 7,
                        value: [round; 2],
                    },
                );
            }
            done.store(true, Ordering::Relaxed);
            for reader in readers {
                reader.join().expect("no torn read");
            }
            assert!(round > 0);
        });
        assert!(
            reads.load(Ordering::Relaxed) >= READS,
            "the readers ran alongside the writer"
        );
    }

    /// A lookup copies the line's tags, then the matching slot, each checked against the
    /// version. (Without the checks, this fails in a debug build, and in some release builds;
    /// `slot_reuse_race` in the shuttle schedules finds it every time.)
    #[test]
    fn a_reader_never_sees_half_of_a_write() {
        no_read_is_torn(|head, guard| {
            let Found::Entry(entry) = Torn::find(head, guard, probe(0x1234, &7)) else {
                panic!("the key went missing");
            };
            entry.value
        });
    }

    /// An iteration copies the line and its whole block at once (`read_all`), under the version
    /// check alone.
    #[test]
    fn an_iteration_never_sees_half_of_a_write() {
        no_read_is_torn(|head, guard| {
            let mut value = None;
            Torn::read_all(head, guard, |entry| value = Some(entry.value))
                .expect("the line never moves");
            value.expect("the key went missing")
        });
    }

    /// What a slot stores comes back bit for bit, for sizes that do not fill their words.
    #[test]
    fn an_entry_comes_back_as_stored() {
        type Odd = Inline<[u8; 3], u32>;
        let block = Odd::fresh_block();
        let (key, value) = ([1, 2, 3], 0x0102_0304);
        for index in 0..<Odd as Line<[u8; 3], u32>>::SLOTS {
            block.store(index, &key, &value);
            let back = block.entry(index);
            assert_eq!((back.key, back.value), (key, value));
            let back = Slots::entry_in(&block.all_words(), index);
            assert_eq!((back.key, back.value), (key, value));
        }
    }
}
