//! What a call did besides its own work, tallied per thread for the access hook: time spent
//! waiting for contended locks, table resizes and version publishes.
//!
//! Timing costs two clock reads, so resizes and publishes are timed only while an
//! [`Observed`](crate::Observed) call runs on this thread ([`begin`] .. [`end`]); otherwise the
//! cost is one thread-local load. Lock waits are always tallied, since they are timed only on the
//! contended path, which is about to block anyway.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::sync::thread_local;

/// Maintenance a call can trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Maintenance {
    /// A hash table grew and rehashed its entries. Not reported yet: timing it cost the insert
    /// path about 14 instructions even when unobserved (callgrind), so it waits for a cheaper
    /// way in.
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
}

/// An observed call being tallied. Ending it (or dropping it, if the call panicked) restores the
/// state of the call it is nested in, if any.
pub(crate) struct Call {
    enclosing: Option<(bool, Tally)>,
}

/// Starts tallying an observed call.
pub(crate) fn begin() -> Call {
    let observing = OBSERVING.with(|o| o.replace(true));
    Call {
        enclosing: Some((observing, TALLY.with(|t| t.replace(ZERO)))),
    }
}

impl Call {
    /// Ends the call and returns its tally.
    pub(crate) fn end(mut self) -> Tally {
        self.restore()
    }

    fn restore(&mut self) -> Tally {
        match self.enclosing.take() {
            Some((observing, enclosing)) => {
                OBSERVING.with(|o| o.set(observing));
                TALLY.with(|t| t.replace(enclosing))
            }
            None => ZERO,
        }
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
