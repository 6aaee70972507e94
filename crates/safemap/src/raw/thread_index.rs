//! Small, dense per-thread indices, for per-thread slots inside a map.
//!
//! A thread takes the lowest free index the first time it asks, and gives it back when it exits,
//! so live threads always hold distinct indices and indices stay below the number of live threads.
//! A map that keeps one slot per index can therefore let slot `i` be touched by the thread holding
//! index `i` alone. The hand-over from an exiting thread to the next goes through a mutex, which
//! orders everything the old holder did to its slots before anything the new holder does.
//!
//! The fast path is one load of a const-initialized thread-local (no lazy-registration check);
//! the thread-local with the destructor that returns the index is touched only on the first call.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::sync::{BookkeepingMutex, thread_local};

const UNCLAIMED: usize = usize::MAX;

thread_local! {
    /// This thread's index, or `UNCLAIMED`. Invariant: equals `HOLDER`'s index while `HOLDER` lives.
    static INDEX: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Owns the index and returns it when the thread exits.
    static HOLDER: Holder = Holder::claim();
}

/// This thread's index, or `None` once the thread is tearing down its thread-locals.
#[inline]
pub(crate) fn current() -> Option<usize> {
    let index = INDEX.with(Cell::get);
    if index != UNCLAIMED {
        return Some(index);
    }
    claim()
}

/// How many per-thread slots a structure that keeps one per index should hold: enough for a few
/// threads per core; threads with higher indices take a shared path. Whoever scans every slot
/// pays for each, so there are not many more.
///
/// Under `--cfg safemap_stress` (`SAFEMAP_STRESS=1`, `build.rs`) and shuttle there is one slot,
/// so all but one thread take the shared path, and the schedules explore it.
pub(crate) fn slot_count() -> usize {
    if cfg!(any(safemap_stress, shuttle)) {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(4, usize::from);
    (cores * 4).clamp(8, 128)
}

#[cold]
fn claim() -> Option<usize> {
    // Fails once HOLDER has been destroyed: the thread is exiting and holds no index any more.
    let index = HOLDER.try_with(|holder| holder.0).ok()?;
    INDEX.with(|cell| cell.set(index));
    Some(index)
}

/// The indices not held by a live thread: everything from `next` on, plus `free`.
struct Pool {
    next: usize,
    free: BinaryHeap<Reverse<usize>>,
}

static POOL: BookkeepingMutex<Pool> = BookkeepingMutex::new(Pool {
    next: 0,
    free: BinaryHeap::new(),
});

struct Holder(usize);

impl Holder {
    fn claim() -> Self {
        let mut pool = POOL.lock();
        let index = match pool.free.pop() {
            Some(Reverse(index)) => index,
            None => {
                pool.next += 1;
                pool.next - 1
            }
        };
        Holder(index)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Stop using the index before handing it on.
        let _ = INDEX.try_with(|cell| cell.set(UNCLAIMED));
        POOL.lock().free.push(Reverse(self.0));
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use super::current;

    #[test]
    fn live_threads_hold_distinct_stable_indices() {
        let threads = 8;
        let barrier = std::sync::Barrier::new(threads);
        let mut indices: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let index = current().unwrap();
                        // All alive at once, each still holding its index.
                        barrier.wait();
                        assert_eq!(current(), Some(index), "an index changed");
                        index
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), threads, "two live threads shared an index");
    }
}
