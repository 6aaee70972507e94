//! One bucket of a chain that holds its entries themselves, for keys and values that are plain
//! old data (`bytemuck::Pod`): a read touches this bucket and nothing else.
//!
//! # Layout
//! 128 bytes, two adjacent cache lines: the chain's lock (used in head buckets), an occupancy byte
//! (a bit per slot, and `MOVED`), a sequence word, the link to an overflow bucket, and [`WORDS`]
//! words of slots. A slot is the entry's key's bytes, then its value's, each rounded up to whole
//! words: `u64` keys and values take two words, so a bucket holds seven entries. The hash is not
//! kept: the core computes it again with the map's hasher where it needs an entry's position
//! (moving a chain to a larger table, iterating across tables of different sizes), so the slots
//! hold only data.
//!
//! Why two lines and not one: a 64-byte line held three `u64` entries (a sixth of it is header),
//! and a table grows at one bucket's worth of entries per chain, so at the load it grows at a third
//! of the chains had an overflow bucket, which a lookup there follows (a second miss at 1M keys),
//! and which costs a whole bucket for one or two entries. Seven slots per 128 bytes take 18 bytes a
//! slot instead of 21, and a chain overflows less often for the entries it holds. `safemap-bench
//! memory`: 44.1 -> 35.8 bytes per entry on average (1.58 -> 1.28 of hashbrown's), highest 72.1
//! -> 62.3. The README gives the speed on both sides of the change.
//!
//! # Reads
//! A lookup copies the line's occupancy, link and keys with atomic loads, and keeps the copy only
//! if the sequence word was even before and is unchanged after. Every word is an atomic, so a copy
//! that races a write is discarded, never undefined behaviour (a seqlock over non-atomic data
//! would be). It compares the probe with the copied keys, then loads the words of the matching
//! slot's value and keeps them only if the sequence word still holds the value the keys were
//! validated at (else it reads the line again): keys and value are one moment's, and user code
//! (`Eq`) only ever sees a validated copy, never a torn key. Loading only the value it hands out
//! took a lookup from about 195 to 150 instructions (callgrind, ReadHeavy on 64k keys, one thread;
//! 140 with 64-byte lines). A lookup compares the probe with every slot of a line, free ones too
//! (whose words are a removed key or zeros, a valid `K` either way), and masks the hits by
//! occupancy: a branch per slot would mispredict on which slot holds the key, and that cost a
//! cache-resident lookup more than the comparisons (ReadHeavy on 64k keys, one thread: 24-25 ->
//! 29-31 Mops/s). An iteration copies whole lines the same way. A reader stores nothing in the
//! line. It waits only while a writer is between the two stores of the sequence word, which
//! bracket a few word stores and no user code.
//!
//! # Writes
//! Every change goes through the holder of the chain head's lock, which reads the lines with
//! Relaxed loads (the lock orders the writers). Each change a reader may see is bracketed: the
//! sequence word goes odd, the words change, the word goes even again. An overflow line is filled
//! before the bracketed store that links it. A key, once placed, stays in its slot until removed,
//! so a reader scanning the chain finds every key present throughout its scan, as in `bucket.rs`.
//!
//! # Orderings
//! - Writer: `seq = s + 1` (Relaxed), fence(Release), the stores (Relaxed), `seq = s + 2`
//!   (Release).
//! - Reader: `s1 = seq` (Acquire), the loads (Relaxed), fence(Acquire), `s2 = seq` (Relaxed). A
//!   lookup's value loads follow `s2 == s1` with a second fence(Acquire) and `s3 = seq` (Relaxed),
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

use super::line::{Chain, Entry, Found, Line, Located, Slot, Stored};
use crate::raw::prefetch;
use crate::raw::reclaim::{Collector, Guard};
use crate::sync::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Mutex, Spin, fence};

/// Slot words per bucket: with the lock, occupancy, sequence word and link, two 64-byte lines.
const WORDS: usize = 14;

/// Set in a head line's occupancy once its chain has been copied to the next table.
const MOVED: u8 = 0x80;

/// One bucket of a chain of inline entries.
#[repr(C, align(128))]
pub struct Inline<K, V> {
    lock: Mutex<()>,
    occupied: AtomicU8,
    /// Odd while a bracketed change is under way.
    seq: AtomicU32,
    next: AtomicPtr<Inline<K, V>>,
    words: [AtomicU64; WORDS],
    holds: PhantomData<Entry<K, V>>,
}

/// A reader's validated copy of one line.
struct LineCopy<K, V> {
    occupied: u8,
    next: *const Inline<K, V>,
    words: [u64; WORDS],
}

/// An entry copied out of a line: its key and value (the line keeps no hash).
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

impl<K: Pod, V: Pod> Inline<K, V> {
    const KEY_WORDS: usize = words_of::<K>();
    const VALUE_WORDS: usize = words_of::<V>();
    const SLOT_WORDS: usize = Self::KEY_WORDS + Self::VALUE_WORDS;
    const FITS: () = assert!(
        Self::SLOT_WORDS <= WORDS,
        "an inline entry's key and value take at most 112 bytes"
    );

    /// The occupied slots of `occupied`, lowest first.
    fn slots_of(occupied: u8) -> impl Iterator<Item = usize> {
        (0..<Self as Line<K, V>>::SLOTS).filter(move |&index| occupied & (1 << index) != 0)
    }

    /// The words of slot `index` in `words`.
    fn slot_words(words: &[u64; WORDS], index: usize) -> &[u64] {
        &words[index * Self::SLOT_WORDS..][..Self::SLOT_WORDS]
    }

    fn key_at(words: &[u64; WORDS], index: usize) -> K {
        decode(&Self::slot_words(words, index)[..Self::KEY_WORDS])
    }

    fn entry_at(words: &[u64; WORDS], index: usize) -> Copied<K, V> {
        let slot = Self::slot_words(words, index);
        Copied {
            key: decode(&slot[..Self::KEY_WORDS]),
            value: decode(&slot[Self::KEY_WORDS..]),
        }
    }

    /// What `copy` loads of this line (with Relaxed loads only), from a run during which no
    /// bracket was under way or began, and the sequence value of that run: the seqlock read, in
    /// one place.
    #[inline(always)]
    fn validated<T>(&self, copy: impl Fn(&Self) -> T) -> (T, u32) {
        let spin = Spin::new();
        loop {
            // Acquire: a bracket that ended with this value has its stores visible to `copy`.
            let before = self.seq.load(Acquire);
            if before % 2 == 0 {
                let copied = copy(self);
                // Acquire: if a load of `copy` saw a bracket's store, the load below sees that
                // bracket's odd value or a later one (module docs).
                fence(Acquire);
                if self.seq.load(Relaxed) == before {
                    return (copied, before);
                }
            }
            spin.wait();
        }
    }

    /// What `copy` loads now, if the line is still as it was in the run a [`Self::validated`]
    /// read returned `at` for: `None` if a bracket began since. The same argument as there, with
    /// the first load of the sequence word moved back to that run, makes these loads and that
    /// run's one moment's contents.
    #[inline(always)]
    fn still<T>(&self, at: u32, copy: impl FnOnce(&Self) -> T) -> Option<T> {
        let copied = copy(self);
        // Acquire: as in `validated`.
        fence(Acquire);
        (self.seq.load(Relaxed) == at).then_some(copied)
    }

    /// A validated copy of this line, as of one moment within the call.
    #[inline(always)]
    fn read(&self) -> LineCopy<K, V> {
        self.read_with(Self::all_words).0
    }

    /// A validated copy of this line's occupancy, link and keys (its value words left zero), and
    /// the sequence value it is valid at: what a lookup compares, without the values it does not
    /// hand out.
    #[inline(always)]
    fn read_keys(&self) -> (LineCopy<K, V>, u32) {
        self.read_with(Self::key_words)
    }

    /// A validated copy of the occupancy, the link and the slot words `words` loads, with the
    /// sequence value it is valid at.
    #[inline(always)]
    fn read_with(&self, words: impl Fn(&Self) -> [u64; WORDS]) -> (LineCopy<K, V>, u32) {
        self.validated(|line| LineCopy {
            occupied: line.occupied.load(Relaxed),
            next: line.next.load(Relaxed),
            words: words(line),
        })
    }

    /// Every slot word, with Relaxed loads: inside a validated read, or by the lock holder (for
    /// whom no change is under way).
    #[inline(always)]
    fn all_words(&self) -> [u64; WORDS] {
        std::array::from_fn(|index| self.words[index].load(Relaxed))
    }

    /// The slots' key words, with Relaxed loads, and zeros for the value words: inside a
    /// validated read, or by the lock holder.
    #[inline(always)]
    fn key_words(&self) -> [u64; WORDS] {
        std::array::from_fn(|index| {
            if index % Self::SLOT_WORDS < Self::KEY_WORDS {
                self.words[index].load(Relaxed)
            } else {
                0
            }
        })
    }

    /// The value in slot `index`, if the line is still as a [`Self::read_keys`] that returned
    /// `at` copied it.
    #[inline(always)]
    fn value_at(&self, index: usize, at: u32) -> Option<V> {
        self.still(at, |line| line.load_value(index))
    }

    /// The value of slot `index`, with Relaxed loads: inside a validated read, or by the lock
    /// holder.
    #[inline(always)]
    fn load_value(&self, index: usize) -> V {
        let first = index * Self::SLOT_WORDS + Self::KEY_WORDS;
        let words: [u64; WORDS] = std::array::from_fn(|word| {
            if word < Self::VALUE_WORDS {
                self.words[first + word].load(Relaxed)
            } else {
                0
            }
        });
        decode(&words[..Self::VALUE_WORDS])
    }

    /// The first occupied slot of a line (its `words` and `occupied` as read) whose key
    /// `matches` approves. Every slot's key is compared, and the hits masked by occupancy, with no
    /// branch per slot: which slot holds a key is random, and such a branch mispredicts. (A free
    /// slot's words are a removed key or zeros, either a valid `K`, as `K: Pod`.)
    #[inline(always)]
    fn matching_slot(
        words: &[u64; WORDS],
        occupied: u8,
        matches: impl Fn(&K) -> bool,
    ) -> Option<usize> {
        let hits = (0..<Self as Line<K, V>>::SLOTS).fold(0u8, |hits, index| {
            hits | u8::from(matches(&Self::key_at(words, index))) << index
        }) & occupied;
        (hits != 0).then(|| hits.trailing_zeros() as usize)
    }

    /// The entry whose key `matches` approves in `line`, whose keys `keys` copied at sequence
    /// value `at`, or in the rest of its chain. Keys are compared on validated copies; the
    /// matching slot's value is then loaded and kept only if the line is still as it was then,
    /// else the line is read again.
    #[inline(always)]
    fn find_from(
        mut line: &Self,
        (mut keys, mut at): (LineCopy<K, V>, u32),
        matches: impl Fn(&K) -> bool,
    ) -> Found<Copied<K, V>> {
        loop {
            if let Some(index) = Self::matching_slot(&keys.words, keys.occupied, &matches) {
                match line.value_at(index, at) {
                    Some(value) => {
                        let key = Self::key_at(&keys.words, index);
                        return Found::Entry(Copied { key, value });
                    }
                    None => {
                        (keys, at) = line.read_keys();
                        continue;
                    }
                }
            }
            // SAFETY: the link was read in a validated copy, so it points to an overflow line of
            // this table, which is freed only with the table, which the reader's guard keeps.
            match unsafe { keys.next.as_ref() } {
                Some(next) => {
                    line = next;
                    (keys, at) = next.read_keys();
                }
                None => return Found::Absent,
            }
        }
    }

    /// Puts `key` and `value` in the first free slot of the chain, linking `spare()` if there is
    /// none; returns whether it did.
    fn add_pair<'a>(
        chain: Chain<'a, Self>,
        key: &K,
        value: &V,
        spare: impl FnOnce() -> &'a Self,
    ) -> bool {
        let mut last = chain.head();
        for line in Self::lines(chain) {
            let occupied = line.occupied.load(Relaxed);
            let free = !occupied & ((1 << <Self as Line<K, V>>::SLOTS) - 1);
            if free != 0 {
                let index = free.trailing_zeros() as usize;
                line.bracketed(|| {
                    line.store_slot(index, key, value);
                    line.occupied.store(occupied | 1 << index, Relaxed);
                });
                return false;
            }
            last = line;
        }
        let overflow = spare();
        overflow.store_slot(0, key, value);
        overflow.occupied.store(1, Relaxed);
        // Bracketed: a reader that follows the link sees, through the bracket's fence, the line
        // as filled above.
        last.bracketed(|| last.next.store(ptr::from_ref(overflow).cast_mut(), Relaxed));
        true
    }

    /// Runs `change`, which stores into this line, as one bracket readers see whole or not at all.
    fn bracketed(&self, change: impl FnOnce()) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        // Release: a reader whose loads see the stores below sees the odd value (module docs).
        fence(Release);
        change();
        // Release: a reader that loads the even value sees every store of the bracket.
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// Stores `key` and `value` in slot `index`; inside a bracket, or in a line no reader sees
    /// yet.
    fn store_slot(&self, index: usize, key: &K, value: &V) {
        let mut words = [0; WORDS];
        encode(key, &mut words[..Self::KEY_WORDS]);
        encode(value, &mut words[Self::KEY_WORDS..Self::SLOT_WORDS]);
        let first = index * Self::SLOT_WORDS;
        for (at, word) in words[..Self::SLOT_WORDS].iter().enumerate() {
            self.words[first + at].store(*word, Relaxed);
        }
    }

    /// The lines of the chain, head first, for its lock holder.
    fn lines(chain: Chain<'_, Self>) -> impl Iterator<Item = &Self> {
        std::iter::successors(Some(chain.head()), |line| {
            // SAFETY: overflow lines live as long as the table, which outlives the lock.
            unsafe { line.next.load(Relaxed).as_ref() }
        })
    }
}

impl<K: Pod, V: Pod> Line<K, V> for Inline<K, V> {
    const SLOTS: usize = {
        let () = Self::FITS;
        // As many as fit, up to one occupancy bit each below `MOVED`.
        let fit = WORDS / Self::SLOT_WORDS;
        let bits = MOVED.trailing_zeros() as usize;
        if fit < bits { fit } else { bits }
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

    fn new() -> Self {
        Inline {
            lock: Mutex::new(()),
            occupied: AtomicU8::new(0),
            seq: AtomicU32::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
            holds: PhantomData,
        }
    }

    /// The atomics are zero when null or 0 by their documented representation; the lock is
    /// asked.
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

    /// Copies each line of the chain whole, validated, and compares the keys on the copy: with
    /// no hash kept, a key is told apart by `Eq` alone.
    #[inline(always)]
    fn find<'g>(
        &'g self,
        _guard: &'g Guard<'_>,
        _hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Found<Self::View<'g>> {
        let keys = self.read_keys();
        if keys.0.occupied & MOVED != 0 {
            return Found::Moved;
        }
        Self::find_from(self, keys, matches)
    }

    fn read_all<'g>(
        &'g self,
        _guard: &'g Guard<'_>,
        mut visit: impl FnMut(Self::View<'g>),
    ) -> Result<(), ()> {
        let mut copy = self.read();
        if copy.occupied & MOVED != 0 {
            return Err(());
        }
        loop {
            for index in Self::slots_of(copy.occupied) {
                visit(Self::entry_at(&copy.words, index));
            }
            // SAFETY: as in `find_from`.
            match unsafe { copy.next.as_ref() } {
                Some(next) => copy = next.read(),
                None => return Ok(()),
            }
        }
    }

    /// Prefetches both lines of the overflow line this head links to, if any: an overflow line
    /// comes from a spare block, away from the head lines an iteration reads in order. Relaxed: a
    /// stale link only wastes a prefetch, which never faults.
    #[inline(always)]
    fn prefetch_linked(&self) {
        let next = self.next.load(Relaxed);
        if !next.is_null() {
            prefetch(next.addr());
            prefetch(next.addr() + 64);
        }
    }

    fn lock_word(&self) -> &Mutex<()> {
        &self.lock
    }

    fn is_moved(chain: Chain<'_, Self>) -> bool {
        chain.head().occupied.load(Relaxed) & MOVED != 0
    }

    /// Bracketed: a reader that sees `MOVED` sees, through the bracket's fence, every entry
    /// already placed in the next table.
    fn mark_moved(chain: Chain<'_, Self>) {
        let head = chain.head();
        let occupied = head.occupied.load(Relaxed);
        head.bracketed(|| head.occupied.store(occupied | MOVED, Relaxed));
    }

    /// By key alone, as readers do: the keys, then the matching slot's value.
    fn locate<'a>(
        chain: Chain<'a, Self>,
        _hash: u64,
        matches: impl Fn(&K) -> bool,
    ) -> Option<Located<'a, K, V, Self>> {
        Self::lines(chain).find_map(|line| {
            let keys = line.key_words();
            let index = Self::matching_slot(&keys, line.occupied.load(Relaxed), &matches)?;
            let entry = Copied {
                key: Self::key_at(&keys, index),
                value: line.load_value(index),
            };
            Some((Slot::of(chain, line, index), entry))
        })
    }

    fn occupied<'a>(
        chain: Chain<'a, Self>,
    ) -> impl Iterator<Item = (Slot<'a, Self>, Copied<K, V>)> {
        Self::lines(chain).flat_map(move |line| {
            let words = line.all_words();
            Self::slots_of(line.occupied.load(Relaxed))
                .map(move |index| (Slot::of(chain, line, index), Self::entry_at(&words, index)))
        })
    }

    fn replace(slot: Slot<'_, Self>, item: Entry<K, V>) {
        let line = slot.line();
        line.bracketed(|| line.store_slot(slot.index(), &item.key, &item.value));
    }

    fn remove(slot: Slot<'_, Self>) {
        let line = slot.line();
        let occupied = line.occupied.load(Relaxed);
        line.bracketed(|| {
            line.occupied
                .store(occupied & !(1 << slot.index()), Relaxed)
        });
    }

    fn add<'a>(
        chain: Chain<'a, Self>,
        item: Entry<K, V>,
        spare: impl FnOnce() -> &'a Self,
    ) -> bool {
        Self::add_pair(chain, &item.key, &item.value, spare)
    }

    /// A copy: readers of the moved chain read their own.
    fn carry<'a>(chain: Chain<'a, Self>, entry: &Copied<K, V>, spare: impl FnOnce() -> &'a Self) {
        Self::add_pair(chain, &entry.key, &entry.value, spare);
    }

    fn drain(&mut self) -> Vec<(K, V)> {
        // SAFETY: `&mut self` excludes every other writer, as the lock would.
        let chain = unsafe { Chain::locked(&*self) };
        if Self::is_moved(chain) {
            return Vec::new();
        }
        let entries = Self::occupied(chain)
            .map(|(_, entry)| (entry.key, entry.value))
            .collect();
        for line in Self::lines(chain) {
            line.occupied.store(0, Relaxed);
        }
        entries
    }

    /// Nothing to retire: readers copy entries out, so none can hold a slot's old contents.
    unsafe fn retire(_: &Collector, (): ()) {}
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_two_cache_lines_holding_seven_word_sized_entries() {
        assert_eq!(size_of::<Inline<u64, u64>>(), 128);
        assert_eq!(align_of::<Inline<u64, u64>>(), 128);
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
        // One-word entries would fit fourteen times; the occupancy byte has seven slot bits.
        assert_eq!(<Inline<(), u64> as Line<(), u64>>::SLOTS, 7);
        assert!(<Inline<u64, u64> as Line<u64, u64>>::zero_is_fresh());
    }

    type Torn = Inline<u64, [u64; 2]>;

    /// Readers racing a writer that rewrites a two-word value, reading it with `read`, see one
    /// whole value or another, never halves of two: the version checks discard every torn copy.
    /// The writer keeps writing until the readers have read 200,000 times between them, so the
    /// two really overlap.
    fn no_read_is_torn(read: impl Fn(&Torn, &Guard<'_>) -> [u64; 2] + Sync) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::time::{Duration, Instant};

        const READS: usize = 200_000;
        let line = Torn::new();
        let hash = 0x1234;
        // SAFETY: only this test writes the line, from one thread at a time: the add here, then
        // the writer loop below, while the reader threads only read.
        let chain = unsafe { Chain::locked(&line) };
        Torn::add(
            chain,
            Entry {
                hash,
                key: 7,
                value: [0; 2],
            },
            || unreachable!(),
        );
        let collector = Collector::new();
        let (done, reads) = (AtomicBool::new(false), AtomicUsize::new(0));
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        while !done.load(Ordering::Relaxed) {
                            let value = read(&line, &collector.enter());
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
                let (slot, _) = Torn::locate(chain, hash, |k| *k == 7).expect("stored");
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

    /// A lookup copies the keys, then the matching value, each checked against the version.
    /// (Without the checks, this fails in a debug build, and in some release builds;
    /// `slot_reuse_race` in the shuttle schedules finds it every time.)
    #[test]
    fn a_reader_never_sees_half_of_a_write() {
        no_read_is_torn(|line, guard| {
            let Found::Entry(entry) = line.find(guard, 0x1234, |k| *k == 7) else {
                panic!("the key went missing");
            };
            entry.value
        });
    }

    /// An iteration copies the whole line at once (`read_all`), under the version check alone.
    #[test]
    fn an_iteration_never_sees_half_of_a_write() {
        no_read_is_torn(|line, guard| {
            let mut value = None;
            line.read_all(guard, |entry| value = Some(entry.value))
                .expect("the line never moves");
            value.expect("the key went missing")
        });
    }

    /// What a slot stores comes back bit for bit, for sizes that do not fill their words.
    #[test]
    fn an_entry_comes_back_as_stored() {
        type Odd = Inline<[u8; 3], u32>;
        let line = Odd::new();
        let (key, value) = ([1, 2, 3], 0x0102_0304);
        for index in 0..<Odd as Line<[u8; 3], u32>>::SLOTS {
            line.store_slot(index, &key, &value);
            let back = Odd::entry_at(&line.all_words(), index);
            assert_eq!((back.key, back.value), (key, value));
            assert_eq!(Odd::key_at(&line.all_words(), index), key);
        }
    }
}
