//! The writers' gate: every write passes it, and an operation that needs the whole map at one
//! instant (`len`, `clear`, `snapshot`) closes it, so that no write is under way while it runs.
//! It also keeps the entry count. Readers never wait at it; those that hold nothing but tables
//! (`buckets/inline.rs`) announce themselves in a lane of their own, so that a table taken out of reach
//! waits for them ([`Gate::read`], `buckets/mod.rs`).
//!
//! # Algorithm
//! Each thread has a slot of its own (a cache line, indexed by `thread_index`) that no other
//! writer writes. A write announces itself in its slot (`writers`), then checks `closed`; if the
//! gate is closed it withdraws and waits on `closing`, which the closer holds, then tries again.
//! It counts the entries it adds and removes in its slot, with a load and a store (no other
//! thread writes that count while the gate is open), and withdraws when done. So an open gate
//! costs a write no locked instruction, and writes only the thread's own line: the announcement
//! and the check are the light side of an asymmetric barrier ([`barrier`]), whose heavy side the
//! closer pays.
//!
//! A closer takes `closing` exclusively (closers queue there), sets `closed`, and waits until
//! every slot is idle. Threads beyond the slots, and a write nested in another on the same thread,
//! announce and count themselves in one shared slot, with read-modify-writes. A slot counts the
//! writes that `entered` and `left` it; it is idle when the two agree.
//!
//! # `len` without closing
//! `len` needs the count at one instant, not a closed gate, so it first tries two passes over the
//! slots. The first reads each slot's `left` (acquire), its count (acquire), then `entered`, and
//! gives up unless the two agree; the second finds every `entered` unchanged. A write stores its
//! count with release after its announcement, so a count read from a write under way comes with
//! that write's `entered`, and the slot shows as busy. So each count read is the slot's between
//! two writes, and no write entered any slot between the passes: at the instant between them no
//! write was under way and every count was the one read, and the sum is the map's size then.
//! A closer that changes counts (`clear`) brackets its work like a seqlock writer
//! (`closings`, odd while it holds the gate), and `count` gives up if it saw one. Writes that keep
//! disturbing the passes (four tries) make `len` close the gate instead.
//!
//! # Why no write is under way once `close` returns
//! A write announces itself, then checks `closed`; the closer stores `closed`, then scans the
//! slots: Dekker's handshake, with the write on the light side of [`barrier`] and the closer on
//! the heavy side, so that at least one of the two sees the other's store. If the scan sees the
//! announcement, the closer waits for the write to withdraw. Otherwise the write sees the gate
//! closed (or, once the closer has reopened it, acquires the reopening store, which orders the
//! closer's work before the write). A write withdraws with a release store that the scan
//! acquires, so all it did, its count included, happens before the closer goes on.
//!
//! # Waiting out the writes under way without closing
//! A write may use a table it loaded after passing for as long as its pass lasts, with no
//! reclamation guard: a table taken out of the map's reach is freed only once every write that
//! was under way when it was taken out has left (`buckets/mod.rs`, `Leaving`). [`Gate::under_way`] is the
//! handshake's heavy side again: the caller has stored the change that takes the table out of
//! reach (`SeqCst`), and the barrier then cuts every write either after its announcement, which
//! the scan sees, or before it, and then the write's `SeqCst` load of the root sees the change.
//! [`UnderWay::have_left`] tells when the writes the scan saw are gone: a thread's own slot holds
//! one write at a time, so that write has left once `left` reaches the `entered` seen; the shared
//! slot holds several, so it must be seen idle once (its `left`, then its `entered`, read equal).

use std::cell::Cell;
use std::iter;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::raw::barrier;
use crate::raw::thread_index::{self, slot_count};
use crate::sync::{AtomicBool, AtomicIsize, AtomicUsize, RwLock, RwLockWriteGuard, Spin, fence};
use crate::tally::{self, acquire_timed};

/// Operations of one kind (writes, or announced reads) that went through one slot.
#[derive(Default)]
struct Lane {
    /// Operations that have entered through this lane; it is in use while this differs from
    /// `left`.
    entered: AtomicUsize,
    /// Operations that have left through this lane.
    left: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    writes: Lane,
    /// Entries added minus entries removed by the writes that went through this slot.
    count: AtomicIsize,
    /// Set while the owning thread writes through its own slot, so that a nested write takes the
    /// shared slot. Touched by the owner only.
    busy: Cell<bool>,
    /// The reads announced through this slot ([`Gate::read`]).
    reads: Lane,
}

pub struct Gate {
    /// One slot per thread index below the slot count.
    slots: Box<[CachePadded<Slot>]>,
    /// For the other threads, and nested writes.
    shared: CachePadded<Slot>,
    /// Set while a closer holds the gate.
    closed: AtomicBool,
    /// Held exclusively by the closer; writes that find the gate closed wait on it.
    closing: RwLock<()>,
    /// Closings begun plus closings ended: odd while a closer holds the gate, so that a `count`
    /// that a closer's change of the counts (`clear`) overlapped gives up.
    closings: AtomicUsize,
}

// SAFETY: `Slot::busy` is a `Cell` touched only by the live thread holding the slot's index
// (`thread_index` gives each index to one live thread at a time, handing it over through a
// mutex); everything else is atomic or a lock.
unsafe impl Sync for Gate {}

/// A write's pass through the gate, and where it counts its entries.
pub(crate) struct Pass<'a> {
    slot: &'a Slot,
    /// Whether `slot` is the thread's own (else the shared one).
    own: bool,
}

/// A read announced in the gate ([`Gate::read`]): the tables it loads stay allocated until it is
/// dropped, as a write's pass keeps them (`buckets/mod.rs`).
pub struct ReadPass<'a> {
    /// The thread's own lane, if the read entered it: only this thread writes it. Apart from
    /// `shared` so that leaving it, the common case, tests one pointer.
    own: Option<&'a Lane>,
    /// The shared lane, if the read entered that instead. Neither for a read nested in another
    /// of the same thread, whose announcement covers it.
    shared: Option<&'a Lane>,
}

/// The whole gate, held exclusively; reopened when dropped.
pub(crate) struct Closed<'a> {
    gate: &'a Gate,
    _exclusive: RwLockWriteGuard<'a, ()>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        barrier::prepare();
        Gate {
            slots: (0..slot_count()).map(|_| CachePadded::default()).collect(),
            shared: CachePadded::default(),
            closed: AtomicBool::new(false),
            closing: RwLock::new(()),
            closings: AtomicUsize::new(0),
        }
    }

    /// Lets a write through, waiting while the gate is closed; `None` if `deadline` passes first.
    #[inline]
    pub(crate) fn pass(&self, deadline: Option<Instant>) -> Option<Pass<'_>> {
        loop {
            let pass = self.announce();
            barrier::light_fence();
            // SeqCst: the light side's load (module docs); it also acquires a reopening store.
            if !self.closed.load(SeqCst) {
                return Some(pass);
            }
            drop(pass);
            self.wait_for_reopening(deadline)?;
        }
    }

    /// Marks a write under way, in the thread's own slot if it has one that is not in use.
    #[inline]
    fn announce(&self) -> Pass<'_> {
        let own = thread_index::current()
            .and_then(|index| self.slots.get(index))
            .filter(|slot| !slot.busy.get());
        match own {
            Some(slot) => {
                slot.busy.set(true);
                // No read-modify-write: only this thread writes its slot's counters.
                let entered = slot.writes.entered.load(Relaxed);
                // The light side's store (module docs): Relaxed where the closer's barrier is
                // process-wide, else SeqCst.
                slot.writes
                    .entered
                    .store(entered + 1, barrier::light_store());
                Pass { slot, own: true }
            }
            None => {
                // SeqCst: as above.
                self.shared.writes.entered.fetch_add(1, SeqCst);
                Pass {
                    slot: &self.shared,
                    own: false,
                }
            }
        }
    }

    /// Announces a read, in the thread's own slot if it has one: the light side of the handshake
    /// that [`Gate::under_way`] completes, so that a table taken out of reach after this is not
    /// freed before the read ends (`buckets/mod.rs`). Never waits, and never stops a closer.
    #[inline(always)]
    pub(crate) fn read(&self) -> ReadPass<'_> {
        self.read_in(thread_index::current().and_then(|index| self.slots.get(index)))
    }

    /// [`Gate::read`] in `own`, the thread's own slot, or in the shared one if it has none.
    #[inline(always)]
    fn read_in<'a>(&'a self, own: Option<&'a CachePadded<Slot>>) -> ReadPass<'a> {
        match own {
            Some(slot) => {
                let lane = &slot.reads;
                // Relaxed: only this thread writes its own lane.
                let entered = lane.entered.load(Relaxed);
                if entered != lane.left.load(Relaxed) {
                    // Inside a read of this thread (a callback): that read's announcement,
                    // which stays up until after this one, covers what this one loads.
                    return ReadPass {
                        own: None,
                        shared: None,
                    };
                }
                // The light side's store and fence (module docs), as a write's announcement.
                lane.entered.store(entered + 1, barrier::light_store());
                barrier::light_fence();
                ReadPass {
                    own: Some(lane),
                    shared: None,
                }
            }
            None => {
                // SeqCst: the light side's store, as for a write through the shared slot.
                self.shared.reads.entered.fetch_add(1, SeqCst);
                ReadPass {
                    own: None,
                    shared: Some(&self.shared.reads),
                }
            }
        }
    }

    /// A read announced in the shared slot, as a thread without a slot of its own announces it.
    #[cfg(test)]
    pub(crate) fn read_shared(&self) -> ReadPass<'_> {
        self.read_in(None)
    }

    /// Waits until the closer lets go of the gate; `None` if `deadline` passes first.
    #[cold]
    fn wait_for_reopening(&self, deadline: Option<Instant>) -> Option<()> {
        let reopened = match deadline {
            None => acquire_timed(|| self.closing.try_read(), || self.closing.read()),
            Some(deadline) => self.closing.try_read_until(deadline)?,
        };
        drop(reopened);
        Some(())
    }

    /// Waits for every write under way and holds new ones back until the result is dropped.
    pub(crate) fn close(&self) -> Closed<'_> {
        let exclusive = self.closing.write();
        // SeqCst: the heavy side's store (module docs).
        self.closed.store(true, SeqCst);
        barrier::heavy();
        if let Some(first) = self.every_slot().position(|slot| slot.writes.in_use()) {
            self.wait_for_writers(first);
        }
        // Relaxed, then a release fence: a `count` that reads a count the closer stores reads
        // this odd value or a later one (the seqlock pattern, as in `buckets/inline.rs`).
        let closings = self.closings.load(Relaxed);
        self.closings.store(closings + 1, Relaxed);
        fence(Release);
        Closed {
            gate: self,
            _exclusive: exclusive,
        }
    }

    /// Waits until the slots from `first` on are idle; the wait is tallied as a lock wait.
    #[cold]
    fn wait_for_writers(&self, first: usize) {
        let (spin, since) = (Spin::new(), Instant::now());
        for slot in self.every_slot().skip(first) {
            while slot.writes.in_use() {
                spin.rest();
            }
        }
        tally::lock_waited(since.elapsed());
    }

    fn every_slot(&self) -> impl Iterator<Item = &Slot> {
        self.slots
            .iter()
            .map(|slot| &**slot)
            .chain(iter::once(&*self.shared))
    }

    /// The exact entry count at one instant of the call, taken without closing the gate when
    /// the slots allow: two passes over them, the first reading every count between two agreeing
    /// reads of its slot's counters, the second finding no write entered since (module docs).
    /// Closes the gate after a few tries that writes kept disturbing.
    pub(crate) fn count(&self) -> usize {
        for _ in 0..4 {
            if let Some(count) = self.count_between_writes() {
                return count;
            }
        }
        self.close().count()
    }

    /// One try of `count`: `None` if a write was under way or entered during it.
    fn count_between_writes(&self) -> Option<usize> {
        // Acquire: counts a closer stored before this value are visible below.
        let closings = self.closings.load(Acquire);
        if closings % 2 == 1 {
            return None;
        }
        // The writes entered, summed: each slot's only grows, so an unchanged sum is every slot
        // unchanged.
        let (mut sum, mut entered) = (0, 0usize);
        for slot in self.every_slot() {
            // Acquire: what the writes that left did, their counts included, is visible below.
            let left = slot.writes.left.load(Acquire);
            // Acquire: a count a write stored comes with that write's entry, read next.
            let count = slot.count.load(Acquire);
            let since = slot.writes.entered.load(Relaxed);
            if since != left {
                return None;
            }
            sum += count;
            entered = entered.wrapping_add(since);
        }
        // Acquire: the second pass reads after every read of the first.
        fence(Acquire);
        let again = (self.every_slot()).fold(0usize, |sum, slot| {
            sum.wrapping_add(slot.writes.entered.load(Relaxed))
        });
        let undisturbed = again == entered && self.closings.load(Relaxed) == closings;
        undisturbed.then_some(sum.max(0) as usize)
    }

    /// The entry count, give or take the writes under way.
    pub(crate) fn approximate_count(&self) -> usize {
        // Relaxed: exact only with the gate closed, when the scan has ordered every count.
        let sum: isize = self.every_slot().map(|s| s.count.load(Relaxed)).sum();
        sum.max(0) as usize
    }
}

/// The writes and announced reads under way at one instant, by lane, in [`Gate::every_lane`]'s
/// order: for each lane in use then, the value of `entered` to wait for.
pub(crate) struct UnderWay(Box<[Option<usize>]>);

impl Gate {
    /// The writes and announced reads under way now; the caller has just taken something out of
    /// their reach with a `SeqCst` store (module docs).
    pub(crate) fn under_way(&self) -> UnderWay {
        barrier::heavy();
        UnderWay(
            self.every_lane()
                .map(|(lane, _)| lane.under_way())
                .collect(),
        )
    }

    /// Every lane, each with whether it is shared: the slots' writes, the shared slot's, the
    /// slots' reads, the shared slot's.
    fn every_lane(&self) -> impl Iterator<Item = (&Lane, bool)> {
        (0..2 * (self.slots.len() + 1)).map(|index| self.lane(index))
    }
}

/// Where [`UnderWay::have_left`] found a write or read still under way: a lane and its `left`
/// count then, packed in a word (the lane plus one above bit 48, the count's low 48 bits below)
/// that is never 0, so that a word can say "nothing to wait for" with 0.
#[derive(Clone, Copy)]
pub(crate) struct Mark(u64);

const MARK_COUNT_BITS: u32 = 48;

/// The low bits of a `left` count that a [`Mark`] keeps.
fn mark_count(left: usize) -> u64 {
    left as u64 & ((1 << MARK_COUNT_BITS) - 1)
}

impl Mark {
    pub(crate) fn to_word(self) -> u64 {
        self.0
    }

    /// The mark a nonzero word holds.
    pub(crate) fn from_word(word: u64) -> Self {
        debug_assert_ne!(word, 0);
        Mark(word)
    }
}

impl UnderWay {
    /// Whether every write and read under way when these were taken has left `gate` (what each
    /// did then happens before the caller goes on), or where one was found still under way.
    pub(crate) fn have_left(&mut self, gate: &Gate) -> Result<(), Mark> {
        let lanes = self.0.iter_mut().zip(gate.every_lane());
        for (index, (waited, (lane, shared))) in lanes.enumerate() {
            let Some(entered) = *waited else { continue };
            // A shared lane's `left` goes in no mark (`left_since` asks whether it is idle).
            let (gone, left) = if shared {
                // `in_use`'s SeqCst load of `left` acquires the withdrawals, as below.
                (!lane.in_use(), 0)
            } else {
                // Acquire: the release withdrawals, so that what they did happens before. An own
                // lane holds one operation at a time, so it has left once `left` reaches it.
                let left = lane.left.load(Acquire);
                (left.wrapping_sub(entered) as isize >= 0, left)
            };
            if !gone {
                return Err(Mark(
                    ((index as u64 + 1) << MARK_COUNT_BITS) | mark_count(left),
                ));
            }
            *waited = None;
        }
        Ok(())
    }
}

impl Gate {
    /// Whether an operation has left the own lane of `mark` since the mark was taken, or the
    /// shared lane is idle: one lane's loads, for writes to ask cheaply whether a wait may be
    /// over. (Every operation through a shared lane changes its `left`, so a change there says
    /// little when threads beyond the slots keep at it.)
    pub(crate) fn left_since(&self, mark: Mark) -> bool {
        let index = (mark.0 >> MARK_COUNT_BITS) as usize - 1;
        let (lane, shared) = self.lane(index);
        if shared {
            return !lane.in_use();
        }
        // Relaxed: a hint; `have_left` decides, with its own loads.
        mark_count(lane.left.load(Relaxed)) != mark_count(mark.0 as usize)
    }

    /// Lane `index` of [`Gate::every_lane`], without walking them.
    fn lane(&self, index: usize) -> (&Lane, bool) {
        let per_kind = self.slots.len() + 1;
        let slot = match self.slots.get(index % per_kind) {
            Some(own) => own,
            None => &self.shared,
        };
        let lane = if index < per_kind {
            &slot.writes
        } else {
            &slot.reads
        };
        (lane, index % per_kind == self.slots.len())
    }
}

impl Lane {
    fn in_use(&self) -> bool {
        self.under_way().is_some()
    }

    /// `entered`, if the lane is in use.
    fn under_way(&self) -> Option<usize> {
        // SeqCst: the heavy side's loads (module docs); the load of `left` also acquires the
        // writes' release withdrawals, so what a write did happens before the closer goes on.
        // `left` first: read equal, the slot was idle when `left` was read. Read the other way
        // round, the shared slot could show two writes under way, then one of them leaving and
        // a third entering and leaving between the loads, and read as idle with one still on.
        let left = self.left.load(SeqCst);
        let entered = self.entered.load(SeqCst);
        (entered != left).then_some(entered)
    }
}

impl Pass<'_> {
    /// Counts entries added (positive) or removed (negative).
    #[inline]
    pub(crate) fn count(&self, change: isize) {
        // Release: a `Gate::count` that reads this count sees the write's entry (module docs).
        if self.own {
            // No read-modify-write: while the gate is open, only this thread writes its count.
            let counted = self.slot.count.load(Relaxed);
            self.slot.count.store(counted + change, Release);
        } else {
            self.slot.count.fetch_add(change, Release);
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        // Release: everything the write did happens before a closer's scan that sees it gone.
        if self.own {
            let left = self.slot.writes.left.load(Relaxed);
            self.slot.writes.left.store(left + 1, Release);
            self.slot.busy.set(false);
        } else {
            self.slot.writes.left.fetch_add(1, Release);
        }
    }
}

impl Drop for ReadPass<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // Release: every load of the read happens before a retirer's scan that sees it gone.
        if let Some(lane) = self.own {
            let left = lane.left.load(Relaxed);
            lane.left.store(left + 1, Release);
        } else if let Some(lane) = self.shared {
            lane.left.fetch_add(1, Release);
        }
    }
}

impl Closed<'_> {
    /// The exact entry count: no write is under way.
    pub(crate) fn count(&self) -> usize {
        self.gate.approximate_count()
    }

    /// Counts entries the closer added (positive) or removed (negative).
    pub(crate) fn count_change(&self, change: isize) {
        // Relaxed: as in `count_none`.
        let counted = self.gate.shared.count.load(Relaxed);
        self.gate.shared.count.store(counted + change, Relaxed);
    }

    /// Records that the map is now empty.
    pub(crate) fn count_none(&self) {
        for slot in self.gate.every_slot() {
            // Relaxed: the reopening store orders this before any write that passes later.
            slot.count.store(0, Relaxed);
        }
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        let closings = self.gate.closings.load(Relaxed);
        // Release: a `count` that reads this even value sees the counts the closer stored.
        self.gate.closings.store(closings + 1, Release);
        // Release: what the closer did happens before a write whose check reads this store.
        self.gate.closed.store(false, Release);
    }
}
