//! The writers' gate: a reader-writer lock split into cache-padded stripes, one per few threads,
//! each with its share of the entry count.
//!
//! Every write holds its thread's stripe shared for its whole length, and counts the entries it
//! adds or removes on that stripe. An operation that needs the whole map at one instant (`len`,
//! `clear`, `snapshot`) holds every stripe exclusively, in index order, so no write is under way
//! while it runs. Readers never touch the gate. Two threads with different stripes write
//! different lines, so writers to different keys share nothing but the chains they write.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::raw::thread_index;
use crate::sync::{AtomicIsize, RwLock, RwLockReadGuard, RwLockWriteGuard};
use crate::tally::acquire_timed;

struct Stripe {
    gate: RwLock<()>,
    /// Entries added minus entries removed by the writes that held this stripe.
    count: AtomicIsize,
}

pub(crate) struct Gate {
    // Invariant: a power of two in length.
    stripes: Box<[CachePadded<Stripe>]>,
}

/// A write's pass through the gate, and where it counts its entries.
pub(crate) struct Pass<'a> {
    stripe: &'a Stripe,
    _shared: RwLockReadGuard<'a, ()>,
}

/// The whole gate, held exclusively.
pub(crate) struct Closed<'a> {
    gate: &'a Gate,
    _exclusive: Vec<RwLockWriteGuard<'a, ()>>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let stripes = (0..threads.next_power_of_two())
            .map(|_| {
                CachePadded::new(Stripe {
                    gate: RwLock::new(()),
                    count: AtomicIsize::new(0),
                })
            })
            .collect();
        Gate { stripes }
    }

    fn stripe(&self) -> &Stripe {
        // A thread tearing down its thread-locals shares stripe 0: correct, only less spread.
        let index = thread_index::current().unwrap_or(0);
        &self.stripes[index & (self.stripes.len() - 1)]
    }

    /// Lets a write through, waiting while the gate is closed; `None` if `deadline` passes first.
    #[inline]
    pub(crate) fn pass(&self, deadline: Option<Instant>) -> Option<Pass<'_>> {
        let stripe = self.stripe();
        let shared = match deadline {
            None => acquire_timed(|| stripe.gate.try_read(), || stripe.gate.read()),
            Some(deadline) => stripe.gate.try_read_until(deadline)?,
        };
        Some(Pass {
            stripe,
            _shared: shared,
        })
    }

    /// Waits for every write under way and holds new ones back until the result is dropped.
    pub(crate) fn close(&self) -> Closed<'_> {
        Closed {
            gate: self,
            _exclusive: self.stripes.iter().map(|s| s.gate.write()).collect(),
        }
    }

    /// The entry count, give or take the writes under way.
    pub(crate) fn approximate_count(&self) -> usize {
        let sum: isize = self.stripes.iter().map(|s| s.count.load(Relaxed)).sum();
        sum.max(0) as usize
    }
}

impl Pass<'_> {
    /// Counts entries added (positive) or removed (negative).
    #[inline]
    pub(crate) fn count(&self, change: isize) {
        // Relaxed: the count is read exactly only with the gate closed, which orders it after
        // every write that held a stripe.
        self.stripe.count.fetch_add(change, Relaxed);
    }
}

impl Closed<'_> {
    /// The exact entry count: no write is under way.
    pub(crate) fn count(&self) -> usize {
        self.gate.approximate_count()
    }

    /// Records that the map is now empty.
    pub(crate) fn count_none(&self) {
        for stripe in &self.gate.stripes {
            // Relaxed: as in `Pass::count`.
            stripe.count.store(0, Relaxed);
        }
    }
}
