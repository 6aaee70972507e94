//! One immutable value at a time, published by serialized writers and read with no lock and no
//! shared write: a reader enters a reclamation guard (a store to its own thread's slot) and loads
//! one pointer.
//!
//! # Algorithm
//! The current version is an `Arc<T>` whose strong count is owned by the atomic pointer `current`
//! (`Arc::into_raw`). A read enters a [`Guard`] of the map's [`Collector`], loads `current` and
//! reads the version it points to; it touches no reference count, so two threads reading the
//! same map write nothing the other writes, even right after a publish.
//!
//! A writer holds the writer lock for the whole read-modify-publish, so no update is lost. It
//! publishes by swapping the new version's pointer into `current`, then, after releasing the
//! lock, retires the old pointer: its strong count is dropped once no guard that could have
//! loaded it remains. A snapshot (`load`) takes a strong count of its own, under a guard, so it
//! outlives any retirement.
//!
//! # Why that is linearizable
//! Every read and every publish is one atomic access to `current`: a read takes effect at its
//! load, a publish at its swap, and the swap is a release that the load acquires, so a read that
//! sees a version sees everything written into it. Writers are serialized by the lock, so each
//! publish builds on the one before.
//!
//! # Lazily made collector
//! A collector costs about 16 KiB of per-thread slots, too much for an empty map. A map made with
//! [`Published::starting_with`] has none until its first publish: until then `current` is null
//! and readers read `first`, which lives as long as the map and so needs no guard. The first
//! publish makes the collector before it stores a pointer, and a reader that loads a pointer
//! (Acquire, against the publish's Release) finds the collector made.
//!
//! # Reclamation
//! Retired versions are freed in batches of [`BATCH`] per writing thread (each batch pays one
//! heavy barrier, see `raw::reclaim`), so up to that many displaced versions, and the values only
//! they hold, outlive their replacement for a while. A whole-map change (`clear`, `retain`,
//! `shrink_to_fit`) displaces a version that may hold every entry, so it frees at once what no
//! reader holds ([`Displaced::free_soon`]). Everything left is freed when the map is dropped.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::core::Wait;
use super::reclaim::Collector;
use crate::sync::{AtomicPtr, Mutex, MutexGuard};
use crate::tally::acquire_timed;

/// Displaced versions per batch of reclamation. Small, because a version can hold values no
/// other version shares; large enough that the barrier a batch pays is a small part of the
/// writes that filled it (each write already copies a path of the trie).
const BATCH: usize = 64;

/// The published value, its writer lock and the collector that frees displaced versions. `Send`
/// and `Sync` when `T: Send + Sync`, as the `Arc`s it holds are.
pub(crate) struct Published<T> {
    /// `Arc::into_raw` of the current version, or null while `first` is current.
    current: AtomicPtr<T>,
    /// The version a [`Published::starting_with`] map began with, current until the first
    /// publish and kept, unchanged, until the map is dropped.
    first: Option<Arc<T>>,
    writer: Mutex<()>,
    /// Made by the first publish, or by [`Published::new`].
    collector: OnceLock<Collector>,
}

// SAFETY: `current` owns one strong count of an `Arc<T>`, which any thread may read (through a
// guard) or drop (by retiring it), hence `T: Send + Sync`, the bounds under which `Arc<T>` is
// `Send` and `Sync`. The collector and the lock are both.
unsafe impl<T: Send + Sync> Send for Published<T> {}
// SAFETY: as for `Send`: shared access reads versions through guards and publishes under the lock.
unsafe impl<T: Send + Sync> Sync for Published<T> {}

/// Exclusive write access: the writer lock, held until this is dropped.
pub(crate) struct Writer<'a, T> {
    published: &'a Published<T>,
    _lock: MutexGuard<'a, ()>,
}

/// A version a publish replaced, retired when dropped. Drop it after releasing the writer lock:
/// retiring may free older versions, and with them user values, whose `Drop` may call the map.
#[must_use = "dropping it retires the displaced version"]
pub(crate) struct Displaced<'a, T> {
    collector: &'a Collector,
    /// Null when the displaced version is `first`, which is not retired.
    version: *const T,
}

impl<T> Published<T> {
    /// Publishes `value` at once, with its collector made now: for a first version that holds
    /// entries, which should be freed when it is replaced.
    pub(crate) fn new(value: T) -> Self {
        Published {
            current: AtomicPtr::new(Arc::into_raw(Arc::new(value)).cast_mut()),
            first: None,
            writer: Mutex::new(()),
            collector: OnceLock::from(Collector::with_batch(BATCH)),
        }
    }

    /// Starts from `first`, kept until the map is dropped, with no collector until the first
    /// publish: for an empty first version, so that an empty map stays small.
    pub(crate) fn starting_with(first: T) -> Self {
        super::reclaim::register_process();
        Published {
            current: AtomicPtr::new(std::ptr::null_mut()),
            first: Some(Arc::new(first)),
            writer: Mutex::new(()),
            collector: OnceLock::new(),
        }
    }

    /// The map's collector; only called once `current` has held a pointer.
    fn collector(&self) -> &Collector {
        self.collector
            .get()
            .expect("made before the first pointer was stored")
    }

    /// `first`; only called while `current` is null, which only a `starting_with` map allows.
    fn first(&self) -> &Arc<T> {
        self.first.as_ref().expect("a null version means `first`")
    }

    /// Runs `read` on the current version.
    #[inline]
    pub(crate) fn read<R>(&self, read: impl FnOnce(&T) -> R) -> R {
        // Acquire: a pointer seen here was stored after the collector was made (module docs).
        if self.current.load(Ordering::Acquire).is_null() {
            return read(self.first());
        }
        let guard = self.collector().enter();
        let version = guard.load(&self.current);
        // A version is retired only after it has been swapped out, and the guard, entered before
        // the load, keeps one loaded through it alive until the guard is dropped, after `read`
        // returns; once non-null, `current` stays non-null while the map is borrowed.
        // SAFETY: so `version` points to a live version for as long as `read` runs.
        read(unsafe { &*version })
    }

    /// The current version, to keep.
    pub(crate) fn load(&self) -> Arc<T> {
        // Acquire: as in `read`.
        if self.current.load(Ordering::Acquire).is_null() {
            return Arc::clone(self.first());
        }
        let guard = self.collector().enter();
        let version = guard.load(&self.current);
        // SAFETY: as in `read`, the version is alive while the guard lives; the count taken here
        // is the snapshot's own, given back by the `Arc` made from it.
        unsafe {
            Arc::increment_strong_count(version);
            Arc::from_raw(version)
        }
    }

    /// The current version, the map consumed: no guard or retirement can still refer to it, and
    /// the displaced versions are freed with the collector.
    pub(crate) fn into_current(self) -> Arc<T> {
        // Relaxed: `self` is owned, so no other thread accesses it. Null tells `drop` that the
        // count is taken.
        let version = self.current.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if version.is_null() {
            return Arc::clone(self.first());
        }
        // SAFETY: `current` owned this strong count, and now hands it over.
        unsafe { Arc::from_raw(version) }
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

impl<T> Drop for Published<T> {
    fn drop(&mut self) {
        // Relaxed: `&mut self` excludes every other access.
        let version = self.current.load(Ordering::Relaxed);
        if !version.is_null() {
            // SAFETY: `current` owns one strong count (see the `Send` impl), given back once
            // here; no guard can be live, since `&mut self` excludes every reader.
            drop(unsafe { Arc::from_raw(version) });
        }
    }
}

impl<'a, T> Writer<'a, T> {
    /// The current version. No other writer can publish while this one holds the lock.
    pub(crate) fn current(&self) -> &T {
        // Relaxed: only writers store `current`, and they are serialized by the lock, whose
        // acquisition ordered the last publish before this load.
        let version = self.published.current.load(Ordering::Relaxed);
        if version.is_null() {
            return self.published.first();
        }
        // SAFETY: the current version is retired only after a publish replaces it, which needs
        // the lock this writer holds, so it lives as long as `self` borrows the lock.
        unsafe { &*version }
    }

    /// Makes `value` the current version; the one it replaced is retired when the returned
    /// value is dropped, which must happen after this writer is dropped.
    pub(crate) fn publish(&mut self, value: T) -> Displaced<'a, T> {
        let published = self.published;
        let collector = published
            .collector
            .get_or_init(|| Collector::with_batch(BATCH));
        let next = Arc::into_raw(Arc::new(value)).cast_mut();
        // Release: a reader that loads the new pointer sees the version built before it, and the
        // collector made above. Acquire is not needed: the old pointer was stored by a writer
        // this lock ordered before us.
        let version = published.current.swap(next, Ordering::Release);
        Displaced { collector, version }
    }
}

impl<T> Displaced<'_, T> {
    /// Retires the version now and starts freeing this thread's retired versions without
    /// waiting for a full batch: they are freed once the guards active now are gone.
    pub(crate) fn free_soon(self) {
        let collector = self.collector;
        drop(self);
        collector.flush();
    }
}

impl<T> Drop for Displaced<'_, T> {
    fn drop(&mut self) {
        if self.version.is_null() {
            return;
        }
        // SAFETY: the pointer came from `Arc::into_raw` in `publish` (or `new`) and carried the
        // strong count `current` owned; the swap made it unreachable from `current`, so a guard
        // entered from now on cannot load it, and this `Displaced` is its only owner.
        unsafe { self.collector.retire_arc(self.version) };
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A version that counts its drops.
    struct Counted<'a>(u64, &'a AtomicUsize);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn publish<T>(published: &Published<T>, value: T) -> Displaced<'_, T> {
        let mut writer = published.write(Wait::Forever).expect("waits forever");
        writer.publish(value)
    }

    /// Readers on many threads, before and after a publish, hold no count of the version: only
    /// `current` and the snapshot taken here do.
    #[test]
    fn readers_take_no_count_of_the_version() {
        for published in [Published::new(7u64), Published::starting_with(7u64)] {
            let read_on_threads = |want: u64| {
                std::thread::scope(|s| {
                    let readers: Vec<_> = (0..4)
                        .map(|_| s.spawn(|| assert_eq!(published.read(|v| *v), want)))
                        .collect();
                    // Joined by hand: the scope's own wait is uninstrumented std, which TSAN
                    // cannot see order the readers before what follows; `pthread_join` it sees.
                    readers
                        .into_iter()
                        .for_each(|reader| reader.join().unwrap());
                });
            };
            read_on_threads(7);
            drop(publish(&published, 8));
            read_on_threads(8);
            let held = published.load();
            assert_eq!((*held, Arc::strong_count(&held)), (8, 2));
        }
    }

    /// `free_soon` frees a displaced version no reader holds before it returns; one a snapshot
    /// holds lives on with the snapshot; and every version is dropped exactly once.
    #[test]
    fn displaced_versions_are_freed_once_and_soon_when_asked() {
        let drops = AtomicUsize::new(0);
        let published = Published::starting_with(Counted(0, &drops));
        publish(&published, Counted(1, &drops)).free_soon();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            0,
            "the first version lives with the map"
        );
        let snapshot = published.load();
        publish(&published, Counted(2, &drops)).free_soon();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            0,
            "the snapshot holds version 1"
        );
        drop(snapshot);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        publish(&published, Counted(3, &drops)).free_soon();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            2,
            "version 2 was freed at once"
        );
        assert_eq!(published.read(|v| v.0), 3);
        drop(publish(&published, Counted(4, &drops)));
        drop(published);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            5,
            "each version dropped once"
        );
    }
}
