//! Two copies of one hash table: readers use one while the writer changes the other (the
//! left-right technique), so a read takes no lock and writes no shared cache line.
//!
//! # Algorithm
//! `readable` names the copy readers use, normally the "home" copy. A writer (serialized by the
//! writer lock):
//! 1. waits until no reader is left in the other ("away") copy from the previous write;
//! 2. applies its change to the away copy;
//! 3. switches `readable` to it: from now on readers see the change;
//! 4. waits until every reader that entered the home copy has left it, and applies the same change
//!    there. The copies are equal again;
//! 5. switches `readable` back home. Readers thus spend nearly all their time in one copy, whose
//!    cache lines stay warm, instead of alternating between two.
//!
//! A reader announces the copy it is about to read in its own per-thread slot (a cache line no
//! other reader writes), then checks that `readable` still names that copy; if a writer switched
//! meanwhile, it announces again. It leaves by clearing its slot. Threads without a slot (more
//! live threads than slots), and a read nested inside another read on the same thread (a `Hash`,
//! `Eq` or `Clone` impl that reads the map), count themselves in a shared per-copy counter instead.
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

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};

use crossbeam_utils::CachePadded;

use super::table::Table;
use super::thread_index;
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Spin, preemption_point};

/// Which copy a slot's reader is in: `IDLE`, or the copy's index plus one.
const IDLE: usize = 0;

struct ReaderSlot {
    /// `IDLE`, or 1 + the copy this slot's thread is reading.
    reading: AtomicUsize,
    /// Set while the owning thread reads through this slot, so a nested read uses the shared
    /// counters instead of overwriting the outer read's announcement. Touched by the owner only.
    busy: Cell<bool>,
}

/// Two equal tables, a writer lock, and the readers' announcements.
pub(crate) struct LeftRight<K, V> {
    // Invariant: outside the writer lock, both copies hold the same entries. Readers enter only
    // the copy `readable` names; a few may still be leaving the other.
    copies: [CachePadded<UnsafeCell<Table<K, V>>>; 2],
    readable: CachePadded<AtomicUsize>,
    writer: Mutex<()>,
    slots: Box<[CachePadded<ReaderSlot>]>,
    /// Readers without a slot of their own, per copy.
    shared_readers: [CachePadded<AtomicUsize>; 2],
}

// SAFETY: readers share `&Table`s of one copy while the writer holds `&mut` only to a copy no
// reader is in (module docs), so the tables need `K, V: Sync` for shared reads and `Send` for the
// writer, which may be any thread, to drop entries. `ReaderSlot::busy` is a `Cell` touched only by
// the live thread holding the slot's index (`thread_index` gives each index to one live thread at
// a time, handing it over through a mutex).
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for LeftRight<K, V> {}
// SAFETY: moving the structure moves the entries; `K, V: Send` makes that sound.
unsafe impl<K: Send, V: Send> Send for LeftRight<K, V> {}

/// Exclusive write access: the writer lock, held until this is dropped.
pub(crate) struct Writer<'a, K, V> {
    lr: &'a LeftRight<K, V>,
    _lock: MutexGuard<'a, ()>,
}

impl<K, V> LeftRight<K, V> {
    pub(crate) fn new() -> Self {
        let slots = (0..slot_count())
            .map(|_| {
                CachePadded::new(ReaderSlot {
                    reading: AtomicUsize::new(IDLE),
                    busy: Cell::new(false),
                })
            })
            .collect();
        LeftRight {
            copies: [(); 2].map(|()| CachePadded::new(UnsafeCell::new(Table::new()))),
            readable: CachePadded::new(AtomicUsize::new(0)),
            writer: Mutex::new(()),
            slots,
            shared_readers: [(); 2].map(|()| CachePadded::new(AtomicUsize::new(0))),
        }
    }

    /// Runs `read` on the readable copy. Writers that switch copies meanwhile wait for it.
    #[inline]
    pub(crate) fn read<R>(&self, read: impl FnOnce(&Table<K, V>) -> R) -> R {
        let own = thread_index::current()
            .and_then(|index| self.slots.get(index))
            .filter(|slot| !slot.busy.get());
        if let Some(slot) = own {
            slot.busy.set(true);
            // SeqCst: the announcement pairs with the writer's scan (module docs). A retried
            // announcement simply overwrites this one.
            let copy = self.enter(|copy| slot.reading.store(copy + 1, SeqCst), |_| {});
            let _leave = LeaveSlot(slot);
            // SAFETY: this reader is announced in `copy`, and `readable` still named `copy` after
            // the announcement, so no writer changes it until the announcement is cleared.
            read(unsafe { &*self.copies[copy].get() })
        } else {
            let copy = self.enter(
                // SeqCst: as above, through the shared counter.
                |copy| {
                    self.shared_readers[copy].fetch_add(1, SeqCst);
                },
                // Relaxed: this reader never touched the copy it takes back its count from.
                |copy| {
                    self.shared_readers[copy].fetch_sub(1, Relaxed);
                },
            );
            let _leave = LeaveShared(&self.shared_readers[copy]);
            // SAFETY: as above, announced through the shared counter of `copy`.
            read(unsafe { &*self.copies[copy].get() })
        }
    }

    /// Announces this reader in the readable copy, until the announcement sticks: `readable`
    /// still names the copy afterwards. `retract` takes back an announcement that did not.
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

    /// Takes the writer lock.
    pub(crate) fn write(&self) -> Writer<'_, K, V> {
        Writer {
            lr: self,
            _lock: self.writer.lock(),
        }
    }
}

impl<K, V> Writer<'_, K, V> {
    /// The current entries, as the copy readers use holds them.
    pub(crate) fn table(&self) -> &Table<K, V> {
        // SAFETY: only a writer changes a copy, and this one holds the writer lock; readers only
        // read. So a shared reference to either copy is sound while `self` is borrowed.
        unsafe { &*self.lr.copies[1 - self.unread()].get() }
    }

    fn unread(&self) -> usize {
        // Relaxed: only writers store `readable`, and they hold the lock.
        1 - self.lr.readable.load(Relaxed)
    }

    /// Applies a change to both copies (module docs, steps 1 to 5): `first` to the unread copy,
    /// which readers are then switched to, and `second`, which must make the same change, to the
    /// home copy once its readers have left; then readers go home. Returns both results; the
    /// second usually holds displaced values for the caller to drop after releasing the lock.
    pub(crate) fn apply<A, B>(
        &mut self,
        first: impl FnOnce(&mut Table<K, V>) -> A,
        second: impl FnOnce(&mut Table<K, V>) -> B,
    ) -> (A, B)
    where
        K: Clone,
        V: Clone,
    {
        let lr = self.lr;
        let away = self.unread();
        let home = 1 - away;
        // Readers that entered `away` during the previous write's visit there: usually none.
        lr.wait_for_readers(away);
        // SAFETY: no reader is in `away` (just checked, and `readable` names `home`), and the
        // writer lock excludes writers.
        let a = unsafe { change_or_resync(lr, away, home, first) };
        // SeqCst: the switch pairs with readers' announcements (module docs).
        lr.readable.store(away, SeqCst);
        lr.wait_for_readers(home);
        // SAFETY: readers of `home` have all left, and new ones go to `away`.
        let b = unsafe { change_or_resync(lr, home, away, second) };
        // Back home, so readers keep using one copy and its cache lines stay warm.
        lr.readable.store(home, SeqCst);
        (a, b)
    }
}

/// Applies `change` to copy `target`; if it panics, rebuilds `target` from copy `source` before
/// unwinding further.
///
/// # Safety
/// No reader may be in `target`, and the caller must hold the writer lock.
unsafe fn change_or_resync<K: Clone, V: Clone, R>(
    lr: &LeftRight<K, V>,
    target: usize,
    source: usize,
    change: impl FnOnce(&mut Table<K, V>) -> R,
) -> R {
    struct Resync<'a, K: Clone, V: Clone> {
        lr: &'a LeftRight<K, V>,
        target: usize,
        source: usize,
    }
    impl<K: Clone, V: Clone> Drop for Resync<'_, K, V> {
        fn drop(&mut self) {
            // SAFETY: the caller's contract holds for the whole call, this drop included; the
            // source copy is only read, and no writer changes it while the lock is held.
            unsafe {
                let source = (*self.lr.copies[self.source].get()).clone();
                *self.lr.copies[self.target].get() = source;
            }
        }
    }
    let resync = Resync { lr, target, source };
    preemption_point();
    // SAFETY: by the caller's contract, this is the only reference to the target copy.
    let result = change(unsafe { &mut *lr.copies[target].get() });
    std::mem::forget(resync);
    preemption_point();
    result
}

impl<K, V> LeftRight<K, V> {
    /// Waits until no reader is in `copy`.
    fn wait_for_readers(&self, copy: usize) {
        let spin = Spin::new();
        for slot in self.slots.iter() {
            // SeqCst: pairs with readers' announcements; it also acquires their release exits, so
            // their reads of the copy happen before our changes to it.
            while slot.reading.load(SeqCst) == copy + 1 {
                spin.wait();
            }
        }
        while self.shared_readers[copy].load(SeqCst) != 0 {
            spin.wait();
        }
    }
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

/// One slot per thread index, for programs with a few threads per core; further threads use the
/// shared counters. A writer scans every slot, so there are not many more.
fn slot_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(4, usize::from);
    (cores * 4).clamp(8, 128)
}
