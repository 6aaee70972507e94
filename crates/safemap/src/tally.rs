//! What a call did besides its own work, tallied per thread for the access hook: time spent
//! waiting for contended locks, table resizes and version publishes.
//!
//! Timing costs two clock reads, so resizes and publishes are timed only while an
//! [`Observed`](crate::Observed) call runs on this thread ([`begin`] .. [`end`]); otherwise the
//! cost is one thread-local load. Lock waits are always tallied, since they are timed only on the
//! contended path, which is about to block anyway.
//!
//! Resizes are seen through the tables' allocator (`raw::table::TableAlloc`), which calls
//! [`table_allocating`] and [`table_freed`]: a growing table allocates its new buckets, moves
//! its entries and frees its old, smaller buckets within one call, so the allocation starts the
//! clock and a smaller release stops it. Copies of whole tables (snapshots, `for_each`) are made
//! through [`copying`], which forgets their allocations, and a release with no allocation before
//! it (`clear`, a dropped copy) is no resize. So the insert path is untouched, and each table
//! allocation or release, observed or not, costs one thread-local test.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::map::Maintenance;
use crate::sync::thread_local;

/// One call's tally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) lock_wait: Duration,
    /// Count and total time, indexed like [`Maintenance::ALL`].
    pub(crate) maintenance: [(u32, Duration); 2],
}

const ZERO: Tally = Tally {
    lock_wait: Duration::ZERO,
    maintenance: [(0, Duration::ZERO); 2],
};

thread_local! {
    static OBSERVING: Cell<bool> = const { Cell::new(false) };
    static TALLY: Cell<Tally> = const { Cell::new(ZERO) };
    /// When the running observed call last allocated a table's buckets, other than for a copy,
    /// and how many bytes: a resize under way, if a smaller release follows.
    static TABLE_ALLOCATED: Cell<Option<(Instant, usize)>> = const { Cell::new(None) };
}

/// An observed call being tallied. Ending it (or dropping it, if the call panicked) restores the
/// state of the call it is nested in, if any.
pub(crate) struct Call {
    enclosing: Option<Enclosing>,
}

/// The state of the call an observed call is nested in, restored when it ends.
struct Enclosing {
    observing: bool,
    tally: Tally,
    table_allocated: Option<(Instant, usize)>,
}

/// Starts tallying an observed call.
pub(crate) fn begin() -> Call {
    Call {
        enclosing: Some(Enclosing {
            observing: OBSERVING.with(|o| o.replace(true)),
            tally: TALLY.with(|t| t.replace(ZERO)),
            table_allocated: TABLE_ALLOCATED.with(|a| a.replace(None)),
        }),
    }
}

impl Call {
    /// Ends the call and returns its tally.
    pub(crate) fn end(mut self) -> Tally {
        self.restore()
    }

    fn restore(&mut self) -> Tally {
        let Some(enclosing) = self.enclosing.take() else {
            return ZERO;
        };
        TABLE_ALLOCATED.with(|a| a.set(enclosing.table_allocated));
        OBSERVING.with(|o| o.set(enclosing.observing));
        TALLY.with(|t| t.replace(enclosing.tally))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Whether an observed call is running on this thread.
#[inline]
pub(crate) fn observing() -> bool {
    OBSERVING.with(Cell::get)
}

/// Acquires a lock with `try_acquire`, or, when that fails because the lock is contended, with
/// `acquire`, adding the time it waited to this thread's tally. The
/// uncontended path costs what `acquire` alone would: one attempt.
#[inline]
pub(crate) fn acquire_timed<G>(
    try_acquire: impl FnOnce() -> Option<G>,
    acquire: impl FnOnce() -> G,
) -> G {
    match try_acquire() {
        Some(guard) => guard,
        None => acquire_contended(acquire),
    }
}

#[cold]
fn acquire_contended<G>(acquire: impl FnOnce() -> G) -> G {
    let start = std::time::Instant::now();
    let guard = acquire();
    lock_waited(start.elapsed());
    guard
}

/// Adds a contended lock wait.
pub(crate) fn lock_waited(waited: Duration) {
    let _ = TALLY.try_with(|t| {
        let mut tally = t.get();
        tally.lock_wait += waited;
        t.set(tally);
    });
}

fn add(kind: Maintenance, took: Duration) {
    TALLY.with(|t| {
        let mut tally = t.get();
        let slot = &mut tally.maintenance[kind as usize];
        slot.0 += 1;
        slot.1 += took;
        t.set(tally);
    });
}

/// Runs `work`, which may perform `kind` and says whether it did; times it if an observed call is
/// running.
#[inline]
pub(crate) fn maintain<R>(kind: Maintenance, work: impl FnOnce() -> (R, bool)) -> R {
    if !observing() {
        return work().0;
    }
    let start = Instant::now();
    let (result, done) = work();
    if !done {
        return result;
    }
    add(kind, start.elapsed());
    result
}

/// Runs `copy`, which copies whole tables: its allocations start no resize.
pub(crate) fn copying<R>(copy: impl FnOnce() -> R) -> R {
    let before = TABLE_ALLOCATED.with(Cell::get);
    let copied = copy();
    TABLE_ALLOCATED.with(|a| a.set(before));
    copied
}

/// A table is about to allocate `bytes` of buckets: if an observed call runs, this may be the
/// start of a resize. Out of line, like [`table_freed`], so that nothing of either is hoisted
/// into hashbrown's rehash loop that runs between them.
#[inline(never)]
pub(crate) fn table_allocating(bytes: usize) {
    // `try_with`: an allocation may come from a thread-local destructor, after this thread's
    // locals are gone; no observed call runs then.
    let _ = OBSERVING.try_with(|observing| {
        if observing.get() {
            TABLE_ALLOCATED.with(|a| a.set(Some((Instant::now(), bytes))));
        }
    });
}

/// A table freed `bytes` of buckets: smaller than what it allocated last in this observed call,
/// it has just moved into that allocation, and the resize is over.
#[inline(never)]
pub(crate) fn table_freed(bytes: usize) {
    let _ = OBSERVING.try_with(|observing| {
        if !observing.get() {
            return;
        }
        if let Some((since, allocated)) = TABLE_ALLOCATED.with(Cell::get) {
            if bytes < allocated {
                TABLE_ALLOCATED.with(|a| a.set(None));
                add(Maintenance::Resize, since.elapsed());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An incrementally growing table reports, through [`maintain`], each call that moved some
    /// of its entries; calls that moved none report nothing, and each report is that call's own.
    #[test]
    fn a_resize_spread_over_calls_is_reported_by_each_call_that_moved_entries() {
        for moved in [true, true, false, true] {
            let call = begin();
            maintain(Maintenance::Resize, || ((), moved));
            let tally = call.end();
            assert_eq!(
                tally.maintenance[Maintenance::Resize as usize].0,
                u32::from(moved)
            );
        }
        // Outside an observed call nothing is tallied.
        maintain(Maintenance::Resize, || ((), true));
        assert_eq!(begin().end(), ZERO);
    }
}
