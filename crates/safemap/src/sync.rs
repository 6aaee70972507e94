//! The one place that names synchronization primitives.
//!
//! Every strategy takes its locks (and its thread-locals) from here, so that a schedule explorer
//! can be swapped in behind a `--cfg` without touching strategy code:
//! - normally, `parking_lot` locks, which do not poison: a panicking closure releases its lock on
//!   unwind and leaves the map usable;
//! - under `--cfg shuttle`, shuttle's locks and thread-locals, so that shuttle controls every point
//!   where one thread can wait for another. Shuttle's locks poison like std's; the wrapper ignores
//!   poison, as `parking_lot` does, so both builds behave alike.

/// A lock that schedule explorers leave alone, for bookkeeping held only for a push or a pop and
/// never while waiting on anything else. `parking_lot`, so TSAN sees it.
pub(crate) use parking_lot::Mutex as BookkeepingMutex;

/// A word that only steers prefetches (`raw::probe_hint`) or a write's faulting in of pages
/// (`raw::release`): no thread waits on it and no result depends on it, so schedule explorers
/// leave it alone.
pub(crate) use std::sync::atomic::AtomicUsize as HintCell;

#[cfg(not(shuttle))]
pub(crate) use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
#[cfg(not(shuttle))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, fence,
};
#[cfg(not(shuttle))]
pub(crate) use std::thread_local;

#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::{
    AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, fence,
};
#[cfg(shuttle)]
pub(crate) use shuttle::thread_local;
#[cfg(shuttle)]
pub(crate) use shuttle_locks::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A condition variable for [`Mutex`]: `parking_lot`'s, or shuttle's under `--cfg shuttle`,
/// waited on by value so that both builds share one API.
pub(crate) struct Condvar(
    #[cfg(not(shuttle))] parking_lot::Condvar,
    #[cfg(shuttle)] shuttle::sync::Condvar,
);

impl Condvar {
    pub(crate) fn new() -> Self {
        #[cfg(not(shuttle))]
        return Condvar(parking_lot::Condvar::new());
        #[cfg(shuttle)]
        return Condvar(shuttle::sync::Condvar::new());
    }

    /// Releases `guard`'s lock until notified, then takes it again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(not(shuttle))]
        {
            let mut guard = guard;
            self.0.wait(&mut guard);
            guard
        }
        #[cfg(shuttle)]
        {
            self.0
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// Lets a schedule explorer switch threads here: under shuttle, around code that takes time but
/// contains no synchronization (changing a table copy), which shuttle would otherwise treat as
/// instantaneous. Nothing otherwise.
#[inline(always)]
pub(crate) fn preemption_point() {
    #[cfg(shuttle)]
    shuttle::thread::yield_now();
}

/// Waits a little before a spinning thread looks again: backs off on the CPU, then yields.
#[cfg(not(shuttle))]
pub(crate) struct Spin(crossbeam_utils::Backoff);

#[cfg(not(shuttle))]
impl Spin {
    pub(crate) fn new() -> Self {
        Spin(crossbeam_utils::Backoff::new())
    }

    pub(crate) fn wait(&self) {
        self.0.snooze();
    }

    /// As [`Spin::wait`], for a wait that may last as long as a user's closure runs: once
    /// backing off is done, sleeps between looks rather than yielding on a busy CPU.
    pub(crate) fn rest(&self) {
        if self.0.is_completed() {
            std::thread::sleep(std::time::Duration::from_micros(50));
        } else {
            self.0.snooze();
        }
    }
}

/// Under shuttle, every wait is a yield, so the explorer can run the thread being waited for.
#[cfg(shuttle)]
pub(crate) struct Spin;

#[cfg(shuttle)]
impl Spin {
    pub(crate) fn new() -> Self {
        Spin
    }

    pub(crate) fn wait(&self) {
        shuttle::thread::yield_now();
    }

    pub(crate) fn rest(&self) {
        shuttle::thread::yield_now();
    }
}

#[cfg(shuttle)]
mod shuttle_locks {
    use std::sync::{PoisonError, TryLockError};
    use std::time::Instant;

    pub(crate) use shuttle::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

    /// shuttle's `Mutex` with `parking_lot`'s guard-returning, non-poisoning API.
    pub struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.try_lock_until(Instant::now())
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }

        /// As [`RwLock::try_read_until`]: one try, since shuttle's clock is virtual.
        pub(crate) fn try_lock_until(&self, _deadline: Instant) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        }
    }

    /// shuttle's `RwLock` with `parking_lot`'s guard-returning, non-poisoning API.
    pub(crate) struct RwLock<T>(shuttle::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(shuttle::sync::RwLock::new(value))
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
            self.try_read_until(Instant::now())
        }

        pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
            self.try_write_until(Instant::now())
        }

        /// Shuttle's clock is virtual, so a deadline cannot pass while waiting: the timed
        /// variants try once, which still never blocks past the deadline.
        pub(crate) fn try_read_until(&self, _deadline: Instant) -> Option<RwLockReadGuard<'_, T>> {
            match self.0.try_read() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        }

        /// As [`Self::try_read_until`].
        pub(crate) fn try_write_until(
            &self,
            _deadline: Instant,
        ) -> Option<RwLockWriteGuard<'_, T>> {
            match self.0.try_write() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        }
    }
}
