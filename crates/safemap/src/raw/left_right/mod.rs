//! [`LeftRight`]: shards of two-copy hash tables. Readers use one copy while a writer changes the
//! other (the left-right technique), so a read takes no lock and writes no shared cache line.
//!
//! Keys are routed to a power-of-two number of shards by their hash, as in `ShardedMap`. Writers
//! of different shards run in parallel, and growing a shard's table rehashes that shard only, so
//! a resize stalls one writer for 1/shards of the time a single table would.
//!
//! # Algorithm (per shard)
//! `readable` names the copy readers use, normally the "home" copy. A writer (serialized by the
//! shard's writer lock):
//! 1. waits until no reader is left in the other ("away") copy from the previous write;
//! 2. applies its change to the away copy;
//! 3. switches `readable` to it: from now on readers see the change;
//! 4. waits until every reader that entered the home copy has left it, and applies the same change
//!    there. The copies are equal again;
//! 5. switches `readable` back home. Readers thus spend nearly all their time in one copy, whose
//!    cache lines stay warm, instead of alternating between two.
//!
//! A reader announces the shard and copy it is about to read in its own per-thread slot (a cache
//! line no other reader writes; one slot serves all shards, since a thread reads one shard at a
//! time), then checks that `readable` still names that copy; if a writer switched meanwhile, it
//! announces again. It leaves by clearing its slot. Before announcing, a keyed read prefetches the
//! first cache lines its probe will touch in the copy `readable` names (`probe_hint`), so that the
//! table's memory is fetched while the announcement's fence completes rather than after it. Threads
//! without a slot (more live threads than slots), and a read nested inside another read on the same
//! thread (a `Hash`, `Eq` or `Clone` impl that reads the map), count themselves in a shared
//! per-copy counter instead.
//!
//! # Why a reader and a writer never touch the same copy at once
//! The reader's announcement and its re-check, and the writer's switch and its scan, are all
//! `SeqCst`, so they fall in one total order. If the reader's re-check comes before the switch, its
//! announcement does too, and the scan sees it and waits for the reader to leave. If the re-check
//! comes after, the reader sees the new `readable` and moves to the new copy, which the writer no
//! longer changes. A reader's exit is a release store that the writer's scan acquires, so the
//! reader's accesses happen before the writer's step 4.
//!
//! # Panics
//! If user code (`Hash`, `Eq`, `Clone`) panics while a change is applied, the copy being changed
//! is rebuilt from the other before the writer lock is released, so the copies never disagree. A
//! panic in step 2 leaves the map unchanged; a panic in step 4 leaves the change applied (it was
//! already visible), with readers left in the away copy, which is as good a home as any.

mod ops;

use std::cell::{Cell, UnsafeCell};
use std::hash::Hash;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use super::core::Wait;
use super::lazy_shards::LazyShards;
use super::parts::{Entries, ShardTables};
use super::probe_hint::ProbeHint;
use super::routing::{Routing, default_shard_count};
use super::table::{Table, TableAlloc, copy_of};
use super::thread_index::{self, slot_count};
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Spin, preemption_point};
use crate::tally::{self, acquire_timed};

/// A slot's reader is `IDLE`, or announces shard `s`, copy `c` as `announce(s, c)`.
const IDLE: usize = 0;

fn announcement(shard: usize, copy: usize) -> usize {
    (shard << 1 | copy) + 1
}

struct ReaderSlot {
    /// `IDLE`, or the `announcement` of the shard and copy this slot's thread is reading.
    reading: AtomicUsize,
    /// Set while the owning thread reads through this slot, so a nested read uses the shared
    /// counters instead of overwriting the outer read's announcement. Touched by the owner only.
    busy: Cell<bool>,
}

/// One shard: two equal tables, which one readers use, and the writer lock.
struct Shard<K, V> {
    // Invariant: outside the writer lock, both copies hold the same entries. Readers enter only
    // the copy `readable` names; a few may still be leaving the other.
    copies: [CachePadded<UnsafeCell<Table<K, V>>>; 2],
    readable: CachePadded<AtomicUsize>,
    /// Where each copy lies, for readers' prefetches (`probe_hint`); kept current by the
    /// insertions `Writer::apply` hands them to.
    hints: CachePadded<[ProbeHint; 2]>,
    writer: Mutex<()>,
    /// Readers without a slot of their own, per copy.
    shared_readers: [AtomicUsize; 2],
}

/// Shards of two-copy tables, and the readers' announcements, one slot per thread for all
/// shards: the core of `ReadMostlyMap` (its operations are in `ops.rs`). `Send` when `K` and `V`
/// are, like the tables it holds.
pub struct LeftRight<K, V> {
    // Invariant: shards.count() is the shard count `routing` was made with. A shard not yet
    // made is empty; its first write makes it (`raw::lazy_shards`).
    shards: LazyShards<CachePadded<Shard<K, V>>>,
    routing: Routing,
    slots: Box<[CachePadded<ReaderSlot>]>,
}

// SAFETY: readers share `&Table`s of one copy while a writer holds `&mut` only to a copy no
// reader is in (module docs), so the tables need `K, V: Sync` for shared reads and `Send` for the
// writer, which may be any thread, to drop entries. `ReaderSlot::busy` is a `Cell` touched only by
// the live thread holding the slot's index (`thread_index` gives each index to one live thread at
// a time, handing it over through a mutex).
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for LeftRight<K, V> {}

/// Exclusive write access to one shard: its writer lock, held until this is dropped.
pub(crate) struct Writer<'a, K, V> {
    lr: &'a LeftRight<K, V>,
    shard: &'a Shard<K, V>,
    index: usize,
    _lock: MutexGuard<'a, ()>,
}

impl<K, V> LeftRight<K, V> {
    /// # Panics
    /// If `shards` is not a power of two (see [`Routing::new`]).
    pub(crate) fn new(shards: usize) -> Self {
        Self::from_copies(
            (0..shards)
                .map(|_| [Table::default(), Table::default()])
                .collect(),
        )
    }

    /// A map whose shard `i` has the two copies `copies[i]`, which must hold the same entries,
    /// each in the shard [`Routing`] routes it to. A shard whose copies have no room is left
    /// unmade.
    ///
    /// # Panics
    /// If the number of shards is not a power of two.
    pub(crate) fn from_copies(copies: Vec<[Table<K, V>; 2]>) -> Self {
        let routing = Routing::new(copies.len());
        let slots = (0..slot_count())
            .map(|_| {
                CachePadded::new(ReaderSlot {
                    reading: AtomicUsize::new(IDLE),
                    busy: Cell::new(false),
                })
            })
            .collect();
        let mut copies = copies.into_iter();
        let shards = LazyShards::from_fn(routing.shards(), |_| {
            let copies = copies.next().filter(|[first, _]| first.capacity() > 0)?;
            Some(CachePadded::new(Shard::new(copies)))
        });
        LeftRight {
            shards,
            routing,
            slots,
        }
    }

    /// The shard that holds keys with `hash`.
    #[inline]
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        self.routing.shard(hash)
    }

    /// The indexes of the shards made so far, in ascending order.
    pub(crate) fn made_shards(&self) -> impl Iterator<Item = usize> {
        self.shards.made().map(|(i, _)| i)
    }

    /// Runs `read` on the readable copy of the shard that holds `hash`, after prefetching the
    /// cache lines its probe reads first.
    #[inline]
    pub(crate) fn read_keyed<R>(&self, hash: u64, read: impl FnOnce(&Table<K, V>) -> R) -> R {
        let shard = self.shard_of(hash);
        self.prefetch(shard, hash);
        self.read(shard, read)
    }

    /// Starts loading the cache lines a probe for `hash` reads first in the copy of shard `index`
    /// that readers use now, before [`Self::read`] announces itself; a writer switching copies
    /// meanwhile costs a wasted prefetch.
    #[inline(always)]
    pub(crate) fn prefetch(&self, index: usize, hash: u64) {
        if let Some(shard) = self.shards.get(index) {
            // Relaxed: only chooses what to prefetch.
            shard.hints[shard.readable.load(Relaxed)].prefetch::<(K, V)>(hash);
        }
    }

    /// Runs `read` on the readable copy of shard `index` (an empty table if the shard was never
    /// made). Writers that switch that shard's copies meanwhile wait for it.
    #[inline]
    pub(crate) fn read<R>(&self, index: usize, read: impl FnOnce(&Table<K, V>) -> R) -> R {
        let Some(shard) = self.shards.get(index) else {
            return read(&empty_table());
        };
        let own = thread_index::current()
            .and_then(|thread| self.slots.get(thread))
            .filter(|slot| !slot.busy.get());
        if let Some(slot) = own {
            slot.busy.set(true);
            // SeqCst: the announcement pairs with the writer's scan (module docs). A retried
            // announcement simply overwrites this one.
            let copy = shard.enter(
                |copy| slot.reading.store(announcement(index, copy), SeqCst),
                |_| {},
            );
            let _leave = LeaveSlot(slot);
            // SAFETY: this reader is announced in `copy`, and `readable` still named `copy` after
            // the announcement, so no writer changes it until the announcement is cleared.
            read(unsafe { &*shard.copies[copy].get() })
        } else {
            let copy = shard.enter(
                // SeqCst: as above, through the shared counter.
                |copy| {
                    shard.shared_readers[copy].fetch_add(1, SeqCst);
                },
                // Relaxed: this reader never touched the copy it takes back its count from.
                |copy| {
                    shard.shared_readers[copy].fetch_sub(1, Relaxed);
                },
            );
            let _leave = LeaveShared(&shard.shared_readers[copy]);
            // SAFETY: as above, announced through the shared counter of `copy`.
            read(unsafe { &*shard.copies[copy].get() })
        }
    }

    /// Takes shard `index`'s writer lock, making the shard first if it was not, or gives up
    /// (`None`) at the deadline `wait` names.
    pub(crate) fn write(&self, index: usize, wait: Wait) -> Option<Writer<'_, K, V>> {
        let shard = self.shards.get_or_make(index, wait, Default::default)?;
        let lock = match wait {
            Wait::Forever => acquire_timed(|| shard.writer.try_lock(), || shard.writer.lock()),
            Wait::Until(deadline) => shard.writer.try_lock_until(deadline)?,
        };
        Some(Writer {
            lr: self,
            shard,
            index,
            _lock: lock,
        })
    }

    /// Takes every made shard's writer lock, in ascending order (so two callers cannot
    /// deadlock), with the set frozen so that no shard is made meanwhile. With all of them
    /// held, nothing changes the map.
    pub(crate) fn write_all(&self) -> Vec<Writer<'_, K, V>> {
        let _frozen = self.shards.freeze();
        (self.made_shards())
            .filter_map(|i| self.write(i, Wait::Forever))
            .collect()
    }

    /// Waits until no reader is in copy `copy` of shard `index`. Usually none is, and one scan
    /// of the slots shows it; a wait that has to spin is timed and tallied as a lock wait, since
    /// to the writer it is one: a wait for readers to let go.
    fn wait_for_readers(&self, shard: &Shard<K, V>, index: usize, copy: usize) {
        let wanted = announcement(index, copy);
        // SeqCst: pairs with readers' announcements; it also acquires their release exits, so
        // their reads of the copy happen before our changes to it.
        let reading = |slot: &CachePadded<ReaderSlot>| slot.reading.load(SeqCst) == wanted;
        let shared = &shard.shared_readers[copy];
        match self.slots.iter().position(reading) {
            // SeqCst: as for the slots.
            None if shared.load(SeqCst) == 0 => {}
            busy => self.wait_for_readers_from(busy.unwrap_or(self.slots.len()), wanted, shared),
        }
    }

    /// [`Self::wait_for_readers`] once a reader was seen: spins on each slot from `first` on,
    /// then on the shared counter, and tallies the time.
    #[cold]
    fn wait_for_readers_from(&self, first: usize, wanted: usize, shared: &AtomicUsize) {
        let (spin, since) = (Spin::new(), Instant::now());
        for slot in &self.slots[first..] {
            // SeqCst: as in `wait_for_readers`.
            while slot.reading.load(SeqCst) == wanted {
                spin.wait();
            }
        }
        while shared.load(SeqCst) != 0 {
            spin.wait();
        }
        tally::lock_waited(since.elapsed());
    }
}

impl<K: Hash + Eq, V> Entries for LeftRight<K, V> {
    type Key = K;
    type Value = V;
}

/// Readers read a shard's readable copy, announced in their slot (see the module docs).
impl<K: Hash + Eq, V> ShardTables for LeftRight<K, V> {
    fn shard_count(&self) -> usize {
        self.shards.count()
    }

    fn read_shard<R>(&self, index: usize, read: impl FnOnce(&Table<K, V>) -> R) -> Option<R> {
        self.shards.get(index)?;
        Some(self.read(index, read))
    }

    /// One copy of each made shard's table; the other copies are dropped.
    fn into_tables(self) -> Vec<Table<K, V>> {
        let made = self.shards.into_made().map(|(_, shard)| shard);
        made.map(|shard| {
            let [first, _second] = CachePadded::into_inner(shard).copies;
            CachePadded::into_inner(first).into_inner()
        })
        .collect()
    }
}

impl<K, V> Default for LeftRight<K, V> {
    fn default() -> Self {
        Self::new(default_shard_count())
    }
}

/// A table with no entries and no memory.
fn empty_table<K, V>() -> Table<K, V> {
    Table::new_in(TableAlloc)
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Shard::new([empty_table(), empty_table()])
    }
}

impl<K, V> Shard<K, V> {
    /// A shard over two copies, which must hold the same entries; readers start in the first.
    fn new(copies: [Table<K, V>; 2]) -> Self {
        let hints = CachePadded::<[ProbeHint; 2]>::default();
        for (hint, copy) in hints.iter().zip(&copies) {
            hint.learn(copy);
        }
        Shard {
            copies: copies.map(|copy| CachePadded::new(UnsafeCell::new(copy))),
            readable: CachePadded::new(AtomicUsize::new(0)),
            hints,
            writer: Mutex::new(()),
            shared_readers: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    /// Announces a reader in the readable copy with `announce`, until the announcement sticks:
    /// `readable` still names the copy afterwards. `retract` takes back one that did not.
    #[inline]
    fn enter(&self, announce: impl Fn(usize), retract: impl Fn(usize)) -> usize {
        loop {
            // Relaxed: only a guess; the SeqCst re-check below decides.
            let copy = self.readable.load(Relaxed);
            announce(copy);
            // SeqCst: pairs with the writer's switch (module docs).
            if self.readable.load(SeqCst) == copy {
                return copy;
            }
            retract(copy);
        }
    }
}

impl<K, V> Writer<'_, K, V> {
    fn shard(&self) -> &Shard<K, V> {
        self.shard
    }

    /// The index of the shard this writer holds.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The shard's current entries, as the copy readers use holds them.
    pub(crate) fn table(&self) -> &Table<K, V> {
        let shard = self.shard();
        // Relaxed: only this shard's writers store `readable`, and this one holds the lock.
        let home = shard.readable.load(Relaxed);
        // SAFETY: only a writer changes a copy, and this one holds the shard's writer lock;
        // readers only read. So a shared reference to either copy is sound while `self` is
        // borrowed.
        unsafe { &*shard.copies[home].get() }
    }

    /// Applies a change to both copies of the shard (module docs, steps 1 to 5): `first` to the
    /// away copy, which readers are then switched to, and `second`, which must make the same
    /// change, to the home copy once its readers have left; then readers go home. Each change is
    /// given its copy's probe hint, for insertions to keep current. Returns both results; the
    /// second usually holds displaced values for the caller to drop after releasing the lock.
    pub(crate) fn apply<A, B>(
        &mut self,
        first: impl FnOnce(&mut Table<K, V>, &ProbeHint) -> A,
        second: impl FnOnce(&mut Table<K, V>, &ProbeHint) -> B,
    ) -> (A, B)
    where
        K: Clone,
        V: Clone,
    {
        let (lr, index, shard) = (self.lr, self.index, self.shard);
        // Relaxed: as in `table`.
        let home = shard.readable.load(Relaxed);
        let away = 1 - home;
        // Readers that entered `away` during the previous write's visit there: usually none.
        lr.wait_for_readers(shard, index, away);
        // SAFETY: no reader is in `away` (just checked, and `readable` names `home`), and the
        // shard's writer lock excludes writers.
        let a = unsafe { change_or_resync(shard, away, home, first) };
        // SeqCst: the switch pairs with readers' announcements (module docs).
        shard.readable.store(away, SeqCst);
        lr.wait_for_readers(shard, index, home);
        // SAFETY: readers of `home` have all left, and new ones go to `away`.
        let b = unsafe { change_or_resync(shard, home, away, second) };
        // Back home, so readers keep using one copy and its cache lines stay warm.
        shard.readable.store(home, SeqCst);
        (a, b)
    }
}

/// Applies `change` to copy `target`; if it panics, rebuilds `target` from copy `source` before
/// unwinding further.
///
/// # Safety
/// No reader may be in `target`, and the caller must hold the writer lock.
unsafe fn change_or_resync<K: Clone, V: Clone, R>(
    shard: &Shard<K, V>,
    target: usize,
    source: usize,
    change: impl FnOnce(&mut Table<K, V>, &ProbeHint) -> R,
) -> R {
    struct Resync<'a, K: Clone, V: Clone> {
        shard: &'a Shard<K, V>,
        target: usize,
        source: usize,
    }
    impl<K: Clone, V: Clone> Drop for Resync<'_, K, V> {
        fn drop(&mut self) {
            // SAFETY: the caller's contract holds for the whole call, this drop included; the
            // source copy is only read, and no writer changes it while the lock is held.
            unsafe {
                let source = copy_of(&*self.shard.copies[self.source].get());
                *self.shard.copies[self.target].get() = source;
            }
        }
    }
    let resync = Resync {
        shard,
        target,
        source,
    };
    preemption_point();
    // SAFETY: by the caller's contract, this is the only reference to the target copy.
    let result = change(
        unsafe { &mut *shard.copies[target].get() },
        &shard.hints[target],
    );
    std::mem::forget(resync);
    preemption_point();
    result
}

/// Clears a slot reader's announcement, also on unwind.
struct LeaveSlot<'a>(&'a ReaderSlot);

impl Drop for LeaveSlot<'_> {
    fn drop(&mut self) {
        // Release: this reader's accesses to the copy happen before a writer that sees it gone.
        self.0.reading.store(IDLE, Release);
        self.0.busy.set(false);
    }
}

/// Leaves a shared per-copy counter, also on unwind.
struct LeaveShared<'a>(&'a AtomicUsize);

impl Drop for LeaveShared<'_> {
    fn drop(&mut self) {
        // Release: as for `LeaveSlot`.
        self.0.fetch_sub(1, Release);
    }
}

#[cfg(test)]
impl<K, V> LeftRight<K, V> {
    /// Whether every copy's probe hint matches the copy.
    pub(crate) fn hints_current(&self) -> bool {
        self.shards.made().all(|(_, shard)| {
            (0..2).all(|copy| {
                // SAFETY: test code, called with no writer running, so no copy changes.
                let table = unsafe { &*shard.copies[copy].get() };
                // A table that never held a key has no layout, and its hint is never read
                // for a hit.
                ProbeHint::layout_of(table)
                    .is_none_or(|layout| layout == shard.hints[copy].current())
            })
        })
    }
}
