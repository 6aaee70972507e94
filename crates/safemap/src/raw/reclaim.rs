//! Memory reclamation for cores whose readers take no lock: a reader enters a [`Guard`] before it
//! loads a shared pointer, and a writer that unlinks an object [`retire`](Collector::retire)s it
//! instead of freeing it; the object is freed once every guard that could have loaded it is gone.
//!
//! Normally this is seize (the scheme papaya uses), one collector per map. With seize's
//! `fast-barrier`, entering a guard is a plain store to the calling thread's own slot, leaving
//! one is a swap on that same slot, and the heavy barrier (`membarrier`) is paid by the retiring
//! side, once per batch. So a reader writes no cache line that another thread writes.
//!
//! `ScalablePodMap`'s readers hold nothing but tables, and announce themselves in the map's
//! writers' gate instead; its tables are freed once the reads under way have left, not here
//! (`raw/buckets/mod.rs`).
//!
//! Under `--cfg shuttle` seize cannot run (its thread-locals are per OS thread, and shuttle runs
//! every modelled thread on one), so retired objects are kept until the collector is dropped.
//! Shuttle then explores publication and hand-off, and reclamation itself is left to the
//! sanitizer runs, where ASAN catches a use after free.

#[cfg(not(shuttle))]
mod seized {
    use std::sync::atomic::{AtomicPtr, Ordering};

    use seize::Guard as _;

    /// The objects a map has retired and the guards that keep them alive.
    pub struct Collector(seize::Collector);

    /// Proof that the current thread is inside a read: what it loads through [`Guard::load`]
    /// stays allocated until the guard is dropped.
    pub struct Guard<'a>(seize::LocalGuard<'a>);

    /// Registers the process for the heavy barrier seize uses (`membarrier`), once per process,
    /// by making and dropping a collector. Registration took 12-20 ms here (the kernel waits for
    /// every CPU), and seize does it inside the first `Collector::new`; maps call this when they
    /// are made, so that no write pays it, and make their own collectors lazily.
    pub(crate) fn register_process() {
        static REGISTERED: std::sync::Once = std::sync::Once::new();
        REGISTERED.call_once(|| drop(seize::Collector::new()));
    }

    impl Collector {
        /// A collector that frees in batches of `size` retired objects.
        pub(crate) fn with_batch(size: usize) -> Self {
            Collector(seize::Collector::new().batch_size(size))
        }

        #[inline]
        pub(crate) fn enter(&self) -> Guard<'_> {
            Guard(self.0.enter())
        }

        /// Frees `object` once no guard that may have loaded it remains.
        ///
        /// # Safety
        /// `object` came from `Box::into_raw`, is retired once, and is unreachable from every
        /// pointer a guard entered from now on could load.
        pub(crate) unsafe fn retire<T>(&self, object: *mut T) {
            // SAFETY: the caller's promise is seize's contract for `retire`, and `boxed` frees
            // with `Box::from_raw`, which matches how the object was made.
            unsafe { self.0.retire(object, seize::reclaim::boxed) };
        }

        /// Drops the strong count `object` carries once no guard that may have loaded it remains.
        ///
        /// # Safety
        /// `object` came from `Arc::into_raw`, carries one strong count that is retired once, and
        /// is unreachable from every pointer a guard entered from now on could load.
        pub(crate) unsafe fn retire_arc<T>(&self, object: *const T) {
            /// # Safety
            /// `object` came from `Arc::into_raw` and its count is dropped once.
            unsafe fn drop_count<T>(object: *mut T, _: &seize::Collector) {
                // SAFETY: as the caller of `retire_arc` promised.
                drop(unsafe { std::sync::Arc::from_raw(object.cast_const()) });
            }
            // SAFETY: the caller's promise is seize's contract for `retire`, and `drop_count`
            // gives back the one strong count the pointer carries, as it was made.
            unsafe { self.0.retire(object.cast_mut(), drop_count::<T>) };
        }

        /// Starts freeing what this thread has retired without waiting for a full batch, for
        /// large objects (a table): they are freed once the guards now active are gone.
        pub(crate) fn flush(&self) {
            self.0.enter().flush();
        }
    }

    impl Guard<'_> {
        /// Loads `pointer`; the object it points to, if it is retired after this guard was
        /// entered, stays allocated while the guard lives.
        #[inline(always)]
        pub(crate) fn load<T>(&self, pointer: &AtomicPtr<T>) -> *mut T {
            // Acquire: the pointee was initialized before the Release store that published it.
            self.0.protect(pointer, Ordering::Acquire)
        }
    }
}

#[cfg(shuttle)]
mod deferred {
    use std::marker::PhantomData;
    use std::sync::atomic::Ordering;

    use crate::sync::{AtomicPtr, BookkeepingMutex};

    /// A retired object and how to free it.
    struct Retired {
        object: *mut (),
        free: unsafe fn(*mut ()),
    }

    // SAFETY: a retired object is only freed, once, by whichever thread drops the collector; the
    // map holding it is `Send` only when its keys and values are.
    unsafe impl Send for Retired {}

    /// Keeps every retired object until it is dropped itself.
    pub struct Collector(BookkeepingMutex<Vec<Retired>>);

    /// Nothing to record: no object is freed while the collector lives.
    pub struct Guard<'a>(PhantomData<&'a Collector>);

    /// # Safety
    /// `object` came from `Box::<T>::into_raw` and is freed once.
    unsafe fn free_box<T>(object: *mut ()) {
        // SAFETY: as the caller promises.
        drop(unsafe { Box::from_raw(object.cast::<T>()) });
    }

    /// # Safety
    /// `object` came from `Arc::<T>::into_raw` and its strong count is dropped once.
    unsafe fn drop_count<T>(object: *mut ()) {
        // SAFETY: as the caller promises.
        drop(unsafe { std::sync::Arc::from_raw(object.cast::<T>().cast_const()) });
    }

    /// Nothing to register without seize.
    pub(crate) fn register_process() {}

    impl Collector {
        /// Batches mean nothing here: everything is kept until the collector drops.
        pub(crate) fn with_batch(_: usize) -> Self {
            Collector(BookkeepingMutex::new(Vec::new()))
        }

        pub(crate) fn enter(&self) -> Guard<'_> {
            Guard(PhantomData)
        }

        /// # Safety
        /// As for the seize collector.
        pub(crate) unsafe fn retire<T>(&self, object: *mut T) {
            self.0.lock().push(Retired {
                object: object.cast(),
                free: free_box::<T>,
            });
        }

        /// # Safety
        /// As for the seize collector.
        pub(crate) unsafe fn retire_arc<T>(&self, object: *const T) {
            self.0.lock().push(Retired {
                object: object.cast_mut().cast(),
                free: drop_count::<T>,
            });
        }

        /// Frees nothing before the collector drops.
        pub(crate) fn flush(&self) {}
    }

    impl Drop for Collector {
        fn drop(&mut self) {
            for retired in self.0.get_mut().drain(..) {
                // SAFETY: each object was retired once, from `Box::into_raw` (the `retire`
                // contract), and no guard outlives the collector.
                unsafe { (retired.free)(retired.object) };
            }
        }
    }

    impl Guard<'_> {
        pub(crate) fn load<T>(&self, pointer: &AtomicPtr<T>) -> *mut T {
            // Acquire: the pointee was initialized before the Release store that published it.
            pointer.load(Ordering::Acquire)
        }
    }
}

/// Retired entries freed at a time: 1,024 rather than seize's 32, since each batch pays a heavy
/// barrier (a `membarrier` call), and with 32, ScalableMap's Exchange mix ran at 0.25 of
/// ShardedMap's rate on one thread and 0.13 on two (64k keys); with 1,024, at 0.44 and 0.49. A
/// thread holds up to a batch of retired entries before they can be freed.
pub(crate) const ENTRY_BATCH: usize = 1024;

#[cfg(shuttle)]
pub(crate) use deferred::{Collector, Guard, register_process};
#[cfg(not(shuttle))]
pub(crate) use seized::{Collector, Guard, register_process};

/// A map's collector, made at the map's first write: a map that is never written holds none
/// (seize's per-thread slots take about 16 KiB), and a read that finds none has nothing to
/// protect, since the write that makes it makes it before it publishes anything.
pub(crate) struct LazyCollector {
    made: crate::sync::AtomicPtr<Collector>,
    /// Retired objects freed at a time (`Collector::with_batch`).
    batch: usize,
}

impl LazyCollector {
    pub(crate) fn with_batch(batch: usize) -> Self {
        LazyCollector {
            made: crate::sync::AtomicPtr::new(std::ptr::null_mut()),
            batch,
        }
    }

    /// The collector, if a write has made it.
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<&Collector> {
        // Acquire: the collector was built before the Release that published it.
        let made = self.made.load(std::sync::atomic::Ordering::Acquire);
        // SAFETY: a published collector lives until `self` drops.
        unsafe { made.as_ref() }
    }

    /// The collector, made first if need be.
    #[inline]
    pub(crate) fn made(&self) -> &Collector {
        self.get().unwrap_or_else(|| self.make())
    }

    #[cold]
    fn make(&self) -> &Collector {
        let fresh = Box::into_raw(Box::new(Collector::with_batch(self.batch)));
        let made = super::install_once(&self.made, fresh, |lost| {
            // SAFETY: a collector that lost was never shared; it is freed once.
            drop(unsafe { Box::from_raw(lost) })
        });
        // SAFETY: published, so it lives until `self` drops.
        unsafe { &*made }
    }
}

impl Drop for LazyCollector {
    fn drop(&mut self) {
        let made = *self.made.get_mut();
        if !made.is_null() {
            // SAFETY: made by `Box::into_raw` in `make`, dropped once, here; dropping it frees
            // what was retired.
            drop(unsafe { Box::from_raw(made) });
        }
    }
}
