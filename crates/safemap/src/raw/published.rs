//! One immutable value at a time, published by serialized writers and read, on the fast path,
//! with one uncontended atomic load.
//!
//! # Algorithm
//! The current version sits in an `ArcSwap`, stamped with an even sequence number that is also
//! kept in the atomic `seq`. Every thread owns a per-map slot (by a small thread index, see
//! below) caching the `Arc` of the version it last read. A read loads `seq`; if the cached
//! version carries that stamp, the read uses it and touches no shared cache line for writing.
//! Otherwise it loads the current version from the `ArcSwap` (a reference-count increment),
//! caches it, and uses it. Threads beyond the slot count, or a read nested inside another read of
//! the same map on the same thread (a `Hash`, `Eq` or `Drop` impl calling back), skip the cache
//! and use the `ArcSwap` directly.
//!
//! A writer holds the writer lock for the whole read-modify-publish, so no update is lost. It
//! publishes in three steps: `seq` becomes odd, the new version is swapped in, `seq` becomes the
//! new even stamp.
//!
//! # Why that is linearizable
//! A read returns the version whose stamp equals the `seq` it loaded, or a version it loaded from
//! the `ArcSwap` after that. Suppose reader X returned the new version (via the `ArcSwap`) while
//! the writer was between its steps, and reader Y started after X returned. The odd store comes
//! before the swap in the writer's program order, and the swap is a release that X's load
//! acquired, so Y's load of `seq` sees the odd value or a later one: Y misses its cache and also
//! reads the new version. Without the odd step, Y could see the old even stamp and return the old
//! version after X returned the new one.
//!
//! # Slots
//! Slot `i` is only ever touched by the live thread holding index `i` of
//! [`thread_index`](super::thread_index) (and by the map's own drop), which is what makes the
//! unsynchronized slot sound. A cached version stays alive until its slot's thread reads this map again, or the
//! map is dropped: at most one stale version per slot.

use crossbeam_utils::CachePadded;
use std::cell::{Cell, UnsafeCell};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::core::Wait;
use super::thread_index;
use crate::sync::{ArcSwap, AtomicU64, Mutex, MutexGuard};
use crate::tally::acquire_timed;

/// A published value and the stamp it was published under.
pub(crate) struct Stamped<T> {
    /// Even; 0 for the first value, then +2 per publish.
    seq: u64,
    value: T,
}

impl<T> Stamped<T> {
    /// The value.
    pub(crate) fn into_value(self) -> T {
        self.value
    }
}

impl<T> Deref for Stamped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// One thread's cache of the version it last read.
struct Slot<T> {
    cached: UnsafeCell<Option<Arc<Stamped<T>>>>,
    /// Set while the owning thread reads through `cached`, so a nested read leaves it alone.
    busy: Cell<bool>,
}

/// The published value, its writer lock and the readers' caches. `Send` when `T: Send + Sync`, as
/// the `Arc`s it holds are.
pub(crate) struct Published<T> {
    /// The stamp of the current version; odd while a new one is being swapped in.
    seq: AtomicU64,
    current: ArcSwap<Stamped<T>>,
    writer: Mutex<()>,
    slots: Box<[CachePadded<Slot<T>>]>,
}

// SAFETY: the only fields that are not `Sync` are the slots' `UnsafeCell` and `Cell`. Slot `i` is
// accessed only by the one live thread holding index `i` (`thread_index` hands each index to one
// live thread at a time, through a mutex that orders the old holder's accesses before the new
// holder's), and by `drop`, which has `&mut self`. The slots hold
// `Arc<Stamped<T>>`s that another thread may drop or read, hence `T: Send + Sync`.
unsafe impl<T: Send + Sync> Sync for Published<T> {}

/// Exclusive write access: the writer lock, held until this is dropped.
pub(crate) struct Writer<'a, T> {
    published: &'a Published<T>,
    _lock: MutexGuard<'a, ()>,
}

impl<T> Published<T> {
    pub(crate) fn new(value: T) -> Self {
        let slots = (0..slot_count())
            .map(|_| {
                CachePadded::new(Slot {
                    cached: UnsafeCell::new(None),
                    busy: Cell::new(false),
                })
            })
            .collect();
        Published {
            seq: AtomicU64::new(0),
            current: ArcSwap::from_pointee(Stamped { seq: 0, value }),
            writer: Mutex::new(()),
            slots,
        }
    }

    /// Runs `read` on the current version.
    #[inline]
    pub(crate) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        // Acquire: pairs with the writer's release store of the even stamp, so that a miss below
        // loads that version or a later one.
        let seq = self.seq.load(Ordering::Acquire);
        if let Some(slot) = thread_index::current().and_then(|index| self.slots.get(index)) {
            if !slot.busy.replace(true) {
                let _free = Free(&slot.busy);
                // SAFETY: this thread holds the slot's index (see the `Sync` impl), and `busy` was
                // false, so no other reference into `cached` is live on this thread either.
                let cached = unsafe { &mut *slot.cached.get() };
                if cached.as_ref().is_none_or(|version| version.seq != seq) {
                    *cached = Some(self.current.load_full());
                }
                let version = cached.as_ref().expect("filled above");
                return read(version);
            }
        }
        read(&self.current.load_full())
    }

    /// The current version, the readers' caches dropped first, so that the version is owned
    /// here alone unless something else (a snapshot) still holds it.
    pub(crate) fn into_current(self) -> Arc<Stamped<T>> {
        drop(self.slots);
        self.current.into_inner()
    }

    /// The current version, to keep.
    pub(crate) fn load(&self) -> Arc<Stamped<T>> {
        self.current.load_full()
    }

    /// Takes the writer lock, or gives up (`None`) at the deadline `wait` names.
    pub(crate) fn write(&self, wait: Wait) -> Option<Writer<'_, T>> {
        let lock = match wait {
            Wait::Forever => acquire_timed(|| self.writer.try_lock(), || self.writer.lock()),
            Wait::Until(deadline) => self.writer.try_lock_until(deadline)?,
        };
        Some(Writer {
            published: self,
            _lock: lock,
        })
    }
}

impl<T> Writer<'_, T> {
    /// The current version. No other writer can publish while this one holds the lock.
    pub(crate) fn current(&self) -> Arc<Stamped<T>> {
        self.published.current.load_full()
    }

    /// Makes `value` the current version and returns the one it replaced, for the caller to drop
    /// after releasing the lock (dropping it may drop user values).
    pub(crate) fn publish(&mut self, value: T) -> Arc<Stamped<T>> {
        let published = self.published;
        // Relaxed: only writers store `seq`, and they are serialized by the lock.
        let next = published.seq.load(Ordering::Relaxed) + 2;
        // Relaxed: the swap below is a release, which orders this store before it for any reader
        // that sees the new version (see the module docs).
        published.seq.store(next - 1, Ordering::Relaxed);
        let old = published
            .current
            .swap(Arc::new(Stamped { seq: next, value }));
        // Release: a reader that sees this stamp must also see the version swapped in above.
        published.seq.store(next, Ordering::Release);
        old
    }
}

/// Clears a slot's `busy` flag, also on unwind.
struct Free<'a>(&'a Cell<bool>);

impl Drop for Free<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Enough slots for every thread of a program that runs a few threads per core; later threads
/// read through the `ArcSwap`, which is correct, only slower.
///
/// Under `--cfg safemap_stress` there is one slot, so all but one thread take the slotless path.
fn slot_count() -> usize {
    if cfg!(safemap_stress) {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(4, usize::from);
    (cores * 4).clamp(16, 256)
}
