//! [`Buckets`]: chains of cache-line buckets, read with no lock, written under one chain's lock:
//! the core of `ScalableMap` (buckets of pointers to immutable entries, `bucket.rs`) and of
//! `ScalablePodMap` (buckets holding plain-old-data entries as atomic words, `inline.rs`). What
//! the core asks of a bucket line is the trait in `line.rs`; everything below is written once.
//!
//! # Algorithm
//! The design of CLHT-LB and Go's xsync map, with Java's `ConcurrentHashMap` resize:
//! - **Reads** keep what they load (`Line::Reader`), load the root table, and look in the key's
//!   head bucket: follow the slots whose tags match to their entries, under a reclamation guard
//!   (a store to the thread's own slot, `raw/reclaim.rs`; `bucket.rs`), or copy the matching
//!   slots from the line's block and validate the copies against the line's version word,
//!   announced in the gate (`inline.rs`, whose lines sit in a dense array apart from their
//!   blocks: `line::Blocks`; below). Nothing another thread writes is written.
//! - **Writes** pass the gate (`gate.rs`: a store to the thread's own slot), lock the key's chain and
//!   change it, holding no reclamation guard: the pass keeps the tables they load (`Leaving`
//!   below): an insert or a `compute` builds a new entry and swaps it in (or stores its words,
//!   inline), a removal empties the slot, and a pointer line retires the entry it displaced.
//!   Closures run under the chain's lock, so each runs exactly once and writers of other chains
//!   never wait for it. The value a write displaces is returned as a clone, since readers may
//!   still hold the stored one.
//! - **Resizes** move a chain per write (`resize.rs`), so no write waits for the whole table
//!   to be copied, and readers follow moved chains to the next table.
//! - **Whole-map operations** that must be atomic (`clear`, `snapshot`) close the gate: no write
//!   is under way while they run, and readers go on. Closing pays a process-wide barrier
//!   (`membarrier`, `raw/barrier.rs`) so that passing costs a write no locked instruction. `len`
//!   reads the gate's per-thread counts between writes instead, and closes the gate only when
//!   writes keep it from finding such a moment (`gate.rs`). `for_each`, `iter` and `retain` visit
//!   one chain at a time in position order (`table.rs`), so a key present throughout is visited
//!   once even if tables change in between.
//!
//! An empty map has no table; the first write makes it.
//!
//! # Tables that leave, and the writes that may still hold them
//! A write loads the root after its pass, and holds no guard: entering and leaving one took about
//! 35 of a write's 190 instructions (callgrind), a locked instruction among them. So a table that
//! a finished resize takes out of reach (the only way a table leaves while writes run; `clear`
//! and `shrink_to_fit` close the gate) is not retired at once: the mover swaps the root
//! (`SeqCst`), notes the writes under way ([`Gate::under_way`], the heavy side of the gate's
//! handshake), and parks the table in `leaving`. A write that passed after the note loads the new
//! root (the handshake), and reaches the old table from nowhere else; the noted ones may hold it.
//! Each write, as it leaves the gate, loads one slot: the one where the last check found a noted
//! write under way (`waiting_on`, a [`Mark`]). If that write has left, it checks every parked
//! table's noted writes and retires the tables whose writes have all left. So the writes that end
//! no wait write nothing shared, and the last noted write to leave retires the table (or, if it
//! leaves in the instant before the mark is stored, the next write after it). Retiring hands the
//! table to the reclamation, which then waits for the readers' guards as for any other object.
//!
//! # Reads that announce themselves instead
//! An inline line's readers copy entries out, so all a read can hold is tables; entering and
//! leaving a guard was about a fifth of such a read (a swap, a locked instruction, on leaving).
//! So they announce themselves in the gate as writes do, in a lane of their own
//! ([`Gate::read`]: the thread's own slot, two plain stores), and load the root with `SeqCst`
//! after the announcement: the same handshake with the mover's `SeqCst` store of the root and
//! [`Gate::under_way`], which notes the reads under way with the writes. A parked table is then
//! freed, not retired, once both have left. A root that `clear` or `shrink_to_fit` takes out is
//! parked the same way, with the gate closed (for pointer lines, it is then retired at once). A
//! read that runs inside another of its thread (a callback) is covered by the outer one's
//! announcement and makes none. The tables a read-only stretch leaves parked go at the next
//! write, or with the map.

mod bucket;
mod inline;
mod line;
mod ops;
mod resize;
mod spares;
mod table;
#[cfg(all(test, not(shuttle)))]
mod tests;

use std::cell::Cell;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};

use crate::raw::gate::{Gate, Mark, Pass, ReadPass, UnderWay};
pub use bucket::Bucket;
pub use inline::Inline;
use line::{Chain, Entry, Found, Line, Located, Slot, Stored};
use resize::MIN_BITS;
use table::{ALL, Detached, Table, position};

use super::core::Wait;
use super::entry::Probe;
use super::reclaim::{self, Collector, Guard, LazyCollector};
use crate::sync::{AtomicPtr, AtomicU64, Mutex};

/// How many chains ahead of the one it reads an iteration prefetches what that chain's head line
/// links to (`Line::prefetch_linked`: a pointer line's entries, and either kind's overflow line),
/// in tables of at least `2^PREFETCH_FROM_BITS` chains. Entries lie wherever the allocator put
/// them and overflow lines in spare blocks, so visiting them in chain order waits on a miss each
/// once they outgrow the caches. `safemap-bench iterate --reps 5`, alternated with the build
/// before, one pass:
/// - entries: `ScalableMap`, 1M entries (`2^18` chains), three runs, 38-43 -> 27-30 ms; 256k
///   (`2^16`) 8.5-9.8 -> 4.0-7.6 ms; but in tables that stay cached the prefetches only cost:
///   128k entries (`2^15`) 1.15-1.18 -> 1.27-1.39 ms, 64k 0.52-0.58 -> 0.67-0.92 ms. Two chains
///   ahead did as well as four, eight worse.
/// - overflow lines, two runs each: `ScalablePodMap` 900k entries 11.6-13.6 -> 6.6-7.9 ms, 450k
///   4.5-7.8 -> 3.3-5.1 ms, 256k level (2.3 / 2.2-2.3 ms); `ScalableMap` 900k 23.5-27.5 ->
///   18.4-25.9 ms.
const PREFETCH_AHEAD: usize = 4;
const PREFETCH_FROM_BITS: u32 = 16;

/// The core of `ScalableMap` and `ScalablePodMap`, over lines of kind `L`. Keys and values are
/// cloned where a reader may still hold the stored ones: a displaced value, an updated value.
pub struct Buckets<K, V, L: Line<K, V> = Bucket<K, V>> {
    /// The oldest live table, null while the map has none.
    root: AtomicPtr<Table<K, V, L>>,
    gate: Gate,
    /// Held by the writer linking a next table or installing a root.
    resizing: Mutex<()>,
    /// Made by the first write, so an empty map stays small. Dropped after `drop` has freed the
    /// tables.
    collector: LazyCollector,
    /// Tables out of reach that writes and reads under way may still hold (module docs). A lock
    /// schedule explorers see: `retire_left` loads the gate's lanes while it holds it.
    leaving: Mutex<Vec<Leaving<K, V, L>>>,
    /// 0 if `leaving` is empty; else a [`Mark`] of a write it waits for, which a write checks
    /// as it leaves (one load of that write's slot), so that the writes that do not end a wait
    /// write nothing shared.
    waiting_on: AtomicU64,
    owns: PhantomData<(Entry<K, V>, L)>,
}

/// A table out of reach, and the writes (and announced reads) that were under way when it went.
struct Leaving<K, V, L: Line<K, V>> {
    table: *mut Table<K, V, L>,
    /// Whether the table left as the root, with its entries and the tables it was moving into
    /// (`detach_root`), rather than behind a finished resize, having moved every entry on.
    detached: bool,
    under_way: UnderWay,
}

impl<K, V, L: Line<K, V>> Leaving<K, V, L> {
    /// Frees the table, and with a detached root what it still owns.
    ///
    /// # Safety
    /// The table came from `Box::into_raw`, is freed once, and no one can reach it any more.
    unsafe fn free(self) {
        // SAFETY: as the caller promises.
        let table = unsafe { Box::from_raw(self.table) };
        if self.detached {
            drop(Detached(Some(table)));
        } else {
            drop(table);
        }
    }

    /// Hands the table, and with a detached root what it still owns, to `collector`.
    ///
    /// # Safety
    /// As for [`Leaving::free`], but for guards entered before now, which `collector` waits for.
    unsafe fn retire(self, collector: &Collector) {
        if self.detached {
            // SAFETY: as the caller promises.
            let detached = Detached(Some(unsafe { Box::from_raw(self.table) }));
            // SAFETY: boxed just now and retired once.
            unsafe { collector.retire(Box::into_raw(Box::new(detached))) };
        } else {
            // SAFETY: as the caller promises.
            unsafe { collector.retire(self.table) };
        }
    }
}

/// What keeps the tables a thread loads from the root allocated while it holds it: a reclamation
/// guard, or a write's pass or a read's announcement in the gate (module docs).
pub trait Keeps {
    /// The root, loaded as what keeps it requires.
    fn load_root<T>(&self, root: &AtomicPtr<T>) -> *mut T;
}

impl Keeps for Guard<'_> {
    #[inline(always)]
    fn load_root<T>(&self, root: &AtomicPtr<T>) -> *mut T {
        self.load(root)
    }
}

impl Keeps for ReadPass<'_> {
    #[inline(always)]
    fn load_root<T>(&self, root: &AtomicPtr<T>) -> *mut T {
        // SeqCst: the light side's load after the read's announcement (module docs, `gate.rs`).
        root.load(SeqCst)
    }
}

/// How a read keeps what it loads: the reclamation guard it enters, or its announcement in the
/// gate.
pub trait Reads<'a>: Keeps + Sized {
    /// Whether the read announces itself in the gate rather than enter a reclamation guard:
    /// then a table out of reach is freed once the reads and writes under way have left, and
    /// not handed to the reclamation (module docs). Only lines whose readers copy entries out,
    /// so that no reader holds anything but tables, can read so.
    const ANNOUNCED: bool;

    /// Starts a read of a map with this gate and the collector `collector` gives, if it has made
    /// one; `None` if the read needs the collector and there is none (nor, then, a table). An
    /// announced read never asks for it.
    fn enter(collector: impl FnOnce() -> Option<&'a Collector>, gate: &'a Gate) -> Option<Self>;
}

impl<'a> Reads<'a> for Guard<'a> {
    const ANNOUNCED: bool = false;

    #[inline(always)]
    fn enter(collector: impl FnOnce() -> Option<&'a Collector>, _: &'a Gate) -> Option<Self> {
        collector().map(Collector::enter)
    }
}

impl<'a> Reads<'a> for ReadPass<'a> {
    const ANNOUNCED: bool = true;

    #[inline(always)]
    fn enter(_: impl FnOnce() -> Option<&'a Collector>, gate: &'a Gate) -> Option<Self> {
        Some(gate.read())
    }
}

impl Keeps for Pass<'_> {
    #[inline(always)]
    fn load_root<T>(&self, root: &AtomicPtr<T>) -> *mut T {
        // SeqCst: the light side's load after the pass's announcement (module docs, `gate.rs`).
        root.load(SeqCst)
    }
}

// SAFETY: the map owns its entries (`Box`es behind the table pointers); sending it sends them.
unsafe impl<K: Send, V: Send, L: Line<K, V>> Send for Buckets<K, V, L> {}
// SAFETY: shared use reads `K` and `V` from several threads at once (`Sync`) and drops retired
// entries on whichever thread reclaims them (`Send`).
unsafe impl<K: Send + Sync, V: Send + Sync, L: Line<K, V>> Sync for Buckets<K, V, L> {}

impl<K, V, L: Line<K, V>> Default for Buckets<K, V, L> {
    fn default() -> Self {
        reclaim::register_process();
        Buckets {
            root: AtomicPtr::new(ptr::null_mut()),
            gate: Gate::new(),
            resizing: Mutex::new(()),
            collector: LazyCollector::with_batch(reclaim::ENTRY_BATCH),
            leaving: Mutex::new(Vec::new()),
            waiting_on: AtomicU64::new(0),
            owns: PhantomData,
        }
    }
}

impl<K, V, L: Line<K, V>> Drop for Buckets<K, V, L> {
    fn drop(&mut self) {
        let root = self.root.swap(ptr::null_mut(), Relaxed);
        // SAFETY: the root came from `Box::into_raw`; with `&mut self` no guard is left.
        drop(Detached(
            (!root.is_null()).then(|| unsafe { Box::from_raw(root) }),
        ));
        for leaving in self.leaving.get_mut().drain(..) {
            // SAFETY: a table that left came from `Box::into_raw` and was not retired; with
            // `&mut self` no one holds it.
            unsafe { leaving.free() };
        }
        // The collector drops after this, with the fields: after every table, so that dropping
        // it frees what was retired.
    }
}

/// A chain whose lock a write holds: what the write may change, the positions it covers, where
/// displaced entries go and where entries are counted.
struct Locked<'a, K, V, L: Line<K, V>> {
    chain: Chain<'a, L>,
    table: &'a Table<K, V, L>,
    /// The chain's index in `table`.
    index: usize,
    /// Where displaced entries are retired; made before the map's first root (`install_root`).
    buckets: &'a Buckets<K, V, L>,
    pass: &'a Pass<'a>,
    /// Whether an overflow bucket was linked, so the table may need to grow.
    overflowed: Cell<bool>,
}

impl<'a, K, V, L: Line<K, V>> Locked<'a, K, V, L> {
    /// The entry for `probe`, and its slot.
    #[inline]
    fn locate(&self, probe: &impl Probe<K>) -> Option<Located<'a, K, V, L>> {
        L::locate(self.chain, *probe)
    }

    /// The positions the chain covers: worked out when asked, since few writes ask.
    fn span(&self) -> Range<u128> {
        self.table.span(self.index)
    }

    /// Adds `entry`, whose key is not in the chain.
    #[inline]
    fn add(&self, entry: L::Item) {
        if L::add(self.chain, entry, || self.table.spare()) {
            self.overflowed.set(true);
        }
        self.pass.count(1);
    }

    /// Puts `entry` in `slot` in place of the one there, which is retired.
    fn replace(&self, slot: Slot<'a, L>, entry: L::Item) {
        let old = L::replace(slot, entry);
        // SAFETY: unlinked just now, by this write, so retired once.
        unsafe { L::retire(|| self.buckets.collector(), old) };
    }

    /// Empties `slot` and retires its entry. The entry stays readable while this write's guard
    /// lives.
    fn remove(&self, slot: Slot<'a, L>) {
        let old = L::remove(slot);
        // SAFETY: as in `replace`.
        unsafe { L::retire(|| self.buckets.collector(), old) };
        self.pass.count(-1);
    }
}

impl<K, V, L: Line<K, V>> Buckets<K, V, L> {
    /// The reclamation, made first if need be: for writes and whole-map work.
    #[inline]
    fn collector(&self) -> &Collector {
        self.collector.made()
    }

    /// What a read holds (a guard, or an announcement); `None` for a guard while no write has
    /// made the reclamation, hence no table (`install_root` makes it first).
    #[inline(always)]
    fn reading(&self) -> Option<L::Reader<'_>> {
        L::Reader::enter(|| self.collector.get(), &self.gate)
    }

    /// What a read holds, the reclamation made first if need be: for whole-map work.
    fn reading_made(&self) -> L::Reader<'_> {
        L::Reader::enter(|| Some(self.collector()), &self.gate)
            .expect("a read with a made collector is entered")
    }

    #[inline(always)]
    fn root(&self, keeps: &impl Keeps) -> *const Table<K, V, L> {
        keeps.load_root(&self.root)
    }

    #[inline(always)]
    fn root_table<'k>(&self, keeps: &'k impl Keeps) -> Option<&'k Table<K, V, L>> {
        // SAFETY: a root is retired only after it stops being the root and after the writes
        // under way then have left (module docs), so one loaded under a guard or a pass stays
        // allocated while that lives.
        unsafe { self.root(keeps).as_ref() }
    }

    /// Makes a first table of `2^bits` chains, unless there is one.
    fn install_root(&self, keeps: &impl Keeps, bits: u32) {
        let _starting = self.resizing.lock();
        if self.root_table(keeps).is_none() {
            // First, as `reading` takes a map without a collector for a map without a table.
            self.collector();
            // Release: a reader that loads the root sees the table as built.
            self.root.store(Box::into_raw(Table::new(bits)), Release);
        }
    }

    /// The root, made first if the map has none.
    #[inline(always)]
    fn root_for_write<'p>(&self, pass: &'p Pass<'_>) -> &'p Table<K, V, L> {
        // The check inline, the making apart: only a map's first write makes its root.
        match self.root_table(pass) {
            Some(root) => root,
            None => self.make_first_root(pass),
        }
    }

    #[cold]
    fn make_first_root<'p>(&self, pass: &'p Pass<'_>) -> &'p Table<K, V, L> {
        loop {
            self.install_root(pass, MIN_BITS);
            if let Some(root) = self.root_table(pass) {
                return root;
            }
        }
    }

    /// Parks `table`, which a finished resize (or, `detached`, a `detach_root`) just took out of
    /// reach with a `SeqCst` store, until the writes and announced reads under way have left
    /// (module docs).
    fn park(&self, table: *mut Table<K, V, L>, detached: bool) {
        let under_way = self.gate.under_way();
        let leaving = Leaving {
            table,
            detached,
            under_way,
        };
        self.leaving.lock().push(leaving);
        self.retire_left();
    }

    /// Ends a write's pass, then retires the parked tables, if a write they wait for has left.
    #[inline(always)]
    fn leave(&self, pass: Pass<'_>) {
        drop(pass);
        // Relaxed: a stale word only costs a check, or leaves the table to a later write.
        let waiting_on = self.waiting_on.load(Relaxed);
        if waiting_on != 0 && self.gate.left_since(Mark::from_word(waiting_on)) {
            self.retire_left();
        }
    }

    /// Retires the parked tables whose writes have all left, unless another thread is at it,
    /// and marks where the rest wait.
    #[cold]
    fn retire_left(&self) {
        let Some(mut leaving) = self.leaving.try_lock() else {
            return;
        };
        let mut gone = Vec::new();
        let mut waiting_on = 0;
        let mut index = 0;
        while index < leaving.len() {
            match leaving[index].under_way.have_left(&self.gate) {
                Ok(()) => gone.push(leaving.swap_remove(index)),
                Err(mark) => {
                    waiting_on = mark.to_word();
                    index += 1;
                }
            }
        }
        // Relaxed: stored under the lock, which every parker and retirer takes.
        self.waiting_on.store(waiting_on, Relaxed);
        drop(leaving);
        if gone.is_empty() {
            return;
        }
        for parked in gone {
            #[cfg(shuttle)]
            // SAFETY: parked tables stay allocated until retired, just below.
            unsafe {
                (*parked.table).mark_retired()
            };
            // The table is out of reach since the root moved past it, was parked once and is
            // taken out of `leaving` here once; the writes that may hold it have left, and so
            // have the announced reads. A reader that entered a guard instead entered it before
            // the root moved.
            if <L::Reader<'_> as Reads>::ANNOUNCED && cfg!(not(shuttle)) {
                // SAFETY: so no one can reach it: every reader of these lines announces itself.
                unsafe { parked.free() };
            } else {
                // (Also under shuttle, whose collector keeps what it is given, so that a use of
                // the table, which it marks, fails the schedule.)
                // SAFETY: so it is retired once, unreachable to any guard entered from now on.
                unsafe { parked.retire(self.collector()) };
            }
        }
        self.collector().flush();
    }

    /// The entry for `probe`, as of a moment within the call.
    #[inline(always)]
    fn find<'g>(&self, guard: &'g L::Reader<'_>, probe: &impl Probe<K>) -> Option<L::View<'g>>
    where
        K: 'g,
        V: 'g,
        L: 'g,
    {
        let hash = probe.hash();
        let mut table = self.root_table(guard)?;
        loop {
            if <L::Reader<'_> as Reads>::ANNOUNCED {
                table.assert_kept();
            }
            match L::find(table.head_for(hash), guard, *probe) {
                Found::Entry(entry) => return Some(entry),
                Found::Absent => return None,
                Found::Moved => table = table.after_moved(),
            }
        }
    }

    /// Runs `change` on the chain for `hash` with its lock held, inside a pass through the gate,
    /// then counts and helps a resize under way (`hasher` places the entries it moves). Hands
    /// `payload` back if `wait` runs out first.
    fn write<P, R, S: BuildHasher>(
        &self,
        wait: Wait,
        hash: u64,
        payload: P,
        hasher: &S,
        change: impl FnOnce(&Locked<'_, K, V, L>, P) -> R,
    ) -> Result<R, P>
    where
        K: Hash,
    {
        let deadline = wait.deadline();
        let Some(pass) = self.gate.pass(deadline) else {
            return Err(payload);
        };
        let mut table = self.root_for_write(&pass);
        let (result, overflowed) = loop {
            let index = table.chain_at(position(hash));
            let head = table.head(index);
            L::prefetch_slots(head);
            let lock = match deadline {
                None => line::lock(head.line()),
                Some(deadline) => {
                    let Some(lock) = line::try_lock_until(head.line(), deadline) else {
                        self.leave(pass);
                        return Err(payload);
                    };
                    lock
                }
            };
            table.assert_kept();
            // SAFETY: the lock is held until `lock` drops, after `change` returns.
            let chain = unsafe { Chain::locked(head) };
            if L::is_moved(chain) {
                drop(lock);
                table = table.after_moved();
                continue;
            }
            let locked = Locked {
                chain,
                table,
                index,
                buckets: self,
                pass: &pass,
                overflowed: Cell::new(false),
            };
            let result = change(&locked, payload);
            table.assert_kept();
            drop(lock);
            break (result, locked.overflowed.get());
        };
        if overflowed || resize::STRESS {
            self.consider_growing(&pass, table);
        }
        // Moving chains waits for their locks, which a deadline does not allow for.
        if deadline.is_none() {
            self.help_resize(&pass, hasher);
        }
        self.leave(pass);
        Ok(result)
    }

    /// Whether `entry`, of a chain holding positions `chain`, lies at a position in `span`: every
    /// entry does when the chain lies inside `span`; otherwise the entry's hash says (which may
    /// hash its key again).
    #[inline]
    fn lies_in<S: BuildHasher>(
        entry: &L::View<'_>,
        chain: &Range<u128>,
        span: &Range<u128>,
        hasher: &S,
    ) -> bool
    where
        K: Hash,
    {
        (span.start <= chain.start && chain.end <= span.end)
            || span.contains(&position(L::hash_of(entry, hasher)))
    }

    /// Calls `visit` on every entry whose position is in `span`, chain by chain, with no lock.
    /// A chain that lies wholly inside `span` is visited whole; only one that reaches outside it
    /// (the table's size changed since the caller's position was taken) asks `hasher` where each
    /// entry lies ([`Self::lies_in`]).
    fn read_span<'g, S: BuildHasher>(
        guard: &'g L::Reader<'_>,
        table: &'g Table<K, V, L>,
        span: Range<u128>,
        hasher: &S,
        visit: &mut impl FnMut(L::View<'g>),
    ) where
        K: Hash,
    {
        let mut at = span.start;
        while at < span.end {
            let index = table.chain_at(at);
            let chain = table.span(index);
            let end = chain.end.min(span.end);
            if table.bits() >= PREFETCH_FROM_BITS && index + PREFETCH_AHEAD < table.chains() {
                L::prefetch_linked(table.head(index + PREFETCH_AHEAD));
            }
            let read = L::read_all(table.head(index), guard, |entry| {
                if Self::lies_in(&entry, &chain, &(at..end), hasher) {
                    visit(entry);
                }
            });
            if read.is_err() {
                let next = table.after_moved();
                Self::read_span(guard, next, at..end, hasher, visit);
            }
            at = end;
        }
    }

    /// Calls `visit` on every entry, for the holder of the closed gate or of `&mut self`.
    fn read_all<'g, S: BuildHasher>(
        &self,
        guard: &'g L::Reader<'_>,
        hasher: &S,
        visit: &mut impl FnMut(L::View<'g>),
    ) where
        K: Hash + 'g,
        V: 'g,
        L: 'g,
    {
        if let Some(root) = self.root_table(guard) {
            Self::read_span(guard, root, ALL, hasher, visit);
        }
    }

    /// Runs `keep` on the entries of the chain holding position `at` whose positions lie in
    /// `at..end`, removing those it rejects; returns where the chain's positions end.
    fn retain_chain<S: BuildHasher>(
        &self,
        at: u128,
        end: u128,
        keep: &mut impl FnMut(&K, &V) -> bool,
        hasher: &S,
    ) -> u128
    where
        K: Hash,
    {
        // A hash at position `at`: the position is the hash without its tag bits.
        let hash = (at >> super::routing::TAG_BITS) as u64;
        let retained = self.write(Wait::Forever, hash, (), hasher, |locked, ()| {
            let span = locked.span();
            for (slot, entry) in L::occupied(locked.chain) {
                let inside = Self::lies_in(&entry, &span, &(at..end), hasher);
                if inside && !keep(entry.key(), entry.value()) {
                    locked.remove(slot);
                }
            }
            span.end
        });
        match retained {
            Ok(chain_end) => chain_end.min(end),
            Err(()) => unreachable!("a write that waits forever completes"),
        }
    }
}
