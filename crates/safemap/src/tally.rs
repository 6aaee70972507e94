//! What a call did besides its own work, tallied per thread for the access hook: time spent
//! waiting for contended locks, table resizes and version publishes.
//!
//! Timing costs two clock reads, so resizes and publishes are timed only while an
//! [`Observed`](crate::Observed) call runs on this thread ([`begin`] .. [`end`]); otherwise the
//! cost is one thread-local load. Lock waits are always tallied, since they are timed only on the
//! contended path, which is about to block anyway.
//!
//! A resize is noticed without touching the insert path: hashbrown calls a table's rehash function
//! only while it grows or rehashes the table, once per entry moved, so [`rehashing`] (called from
//! it) is the only code that runs, and unobserved it is one thread-local test per entry moved. The
//! first entry moved starts the clock; the observed call's end stops it. Calls that do not grow a
//! table run the code they ran without the hook (callgrind, 65k inserts into a presized map then
//! 4 x 65k gets and overwrites: 45,738,791 -> 45,743,335 instructions); a growing table's rehash
//! loop runs about 20 more instructions per entry moved (4.58M -> 5.72M for 57k entries moved).

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::sync::thread_local;

/// Maintenance a call can trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Maintenance {
    /// A table of a lock-based strategy (`LockedMap`, `ShardedMap`, a `ReadMostlyMap` shard)
    /// grew or rehashed its entries in place. Timed from the first entry moved to the end of the
    /// call, so it includes the rest of that call (one insert) and, for `ReadMostlyMap`, both
    /// copies of the shard; counted once per call.
    ///
    /// Noticing it costs nothing on calls that do not grow a table, and a thread-local test per
    /// entry moved on those that do, observed or not (callgrind: about 20 instructions per entry
    /// moved, next to about 80 for the move itself).
    Resize,
    /// A new version of a `SnapshotMap` was built and published.
    Publish,
}

impl Maintenance {
    /// Every kind, in declaration order.
    pub const ALL: [Maintenance; 2] = [Maintenance::Resize, Maintenance::Publish];

    /// A lower-case name, as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Maintenance::Resize => "resize",
            Maintenance::Publish => "publish",
        }
    }
}

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
    /// When the running observed call began to move entries to a grown table, if it has.
    static RESIZE_BEGAN: Cell<Option<Instant>> = const { Cell::new(None) };
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
    resize_began: Option<Instant>,
}

/// Starts tallying an observed call.
pub(crate) fn begin() -> Call {
    Call {
        enclosing: Some(Enclosing {
            observing: OBSERVING.with(|o| o.replace(true)),
            tally: TALLY.with(|t| t.replace(ZERO)),
            resize_began: RESIZE_BEGAN.with(|r| r.replace(None)),
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
        if let Some(began) = RESIZE_BEGAN.with(|r| r.replace(enclosing.resize_began)) {
            add(Maintenance::Resize, began.elapsed());
        }
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

/// Called by a table's rehash function, which runs only while the table grows or rehashes, once
/// per entry moved: starts timing the resize if an observed call is running.
#[inline]
pub(crate) fn rehashing() {
    if observing() {
        RESIZE_BEGAN.with(|r| {
            if r.get().is_none() {
                r.set(Some(Instant::now()));
            }
        });
    }
}
