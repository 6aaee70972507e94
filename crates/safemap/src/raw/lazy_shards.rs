//! [`LazyShards`]: a fixed number of shards, each allocated by the first write that needs it, so
//! that an empty map holds one pointer per shard and a small one only the shards its keys use.
//!
//! # Protocol
//! A shard that does not exist is empty: a read of it is one acquire load of its pointer, finds
//! null and needs nothing more. A write makes the shard first, under the `making` lock, which
//! publishes the pointer with a release store; a shard, once made, stays until the whole set is
//! dropped, so a reference to it lives as long as `&self`.
//!
//! Whole-map operations that must be atomic hold `making` ([`LazyShards::freeze`]) while they
//! lock every made shard. No shard can appear meanwhile, so with all those locks held they see
//! every shard that exists, and know the others are empty. Lock order is `making`, then shards in
//! ascending order; a write releases `making` before it takes its shard's lock, so no cycle of
//! waits can form.

use std::ptr;
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::{Acquire, Release};

use super::core::Wait;
use crate::sync::{Mutex, MutexGuard, preemption_point};
use crate::tally::acquire_timed;

/// The shards of one map, each made on demand.
pub(crate) struct LazyShards<T> {
    // Each pointer is null or came from `Box::into_raw` in `make`, and is freed only by `drop`
    // or `into_made`, which own the set.
    shards: Box<[AtomicPtr<T>]>,
    making: Mutex<()>,
}

// SAFETY: the set owns its shards (as a `Vec<Box<T>>` would), so it may move to another thread
// when `T` may.
unsafe impl<T: Send> Send for LazyShards<T> {}
// SAFETY: shared access hands out `&T` to any thread (needs `T: Sync`), and a thread may make a
// shard that another thread later drops with the set (needs `T: Send`).
unsafe impl<T: Send + Sync> Sync for LazyShards<T> {}

impl<T> LazyShards<T> {
    /// `count` shards, shard `i` made from `made(i)` where that gives one, absent otherwise.
    pub(crate) fn from_fn(count: usize, mut made: impl FnMut(usize) -> Option<T>) -> Self {
        let shards = (0..count)
            .map(|i| {
                AtomicPtr::new(made(i).map_or(ptr::null_mut(), |s| Box::into_raw(Box::new(s))))
            })
            .collect();
        LazyShards {
            shards,
            making: Mutex::new(()),
        }
    }

    /// The number of shards, made or not.
    pub(crate) fn count(&self) -> usize {
        self.shards.len()
    }

    /// Shard `index`, if it has been made.
    ///
    /// # Panics
    /// If `index` is not below [`Self::count`].
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        // Acquire: pairs with the release store in `make`, so the shard's contents are visible.
        let shard = self.shards[index].load(Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` (the field's invariant) and is
        // freed only by `drop` or `into_made`, which take the set by value or `&mut`, so it is
        // valid for as long as `self` is borrowed, and only shared references to it exist.
        unsafe { shard.as_ref() }
    }

    /// Shard `index`, made with `make` if it was not; `None` if `wait`'s deadline passes while
    /// another thread makes a shard.
    #[inline(always)]
    pub(crate) fn get_or_make(
        &self,
        index: usize,
        wait: Wait,
        make: impl FnOnce() -> T,
    ) -> Option<&T> {
        match self.get(index) {
            Some(shard) => Some(shard),
            None => self.make(index, wait, make),
        }
    }

    #[cold]
    fn make(&self, index: usize, wait: Wait, make: impl FnOnce() -> T) -> Option<&T> {
        let _making = match wait {
            Wait::Forever => self.freeze(),
            Wait::Until(deadline) => self.making.try_lock_until(deadline)?,
        };
        if self.get(index).is_none() {
            let shard = Box::into_raw(Box::new(make()));
            preemption_point();
            // Release: readers that load the pointer see the shard fully built.
            self.shards[index].store(shard, Release);
        }
        self.get(index)
    }

    /// Holds off the making of shards until the guard is dropped: with it held, the made shards
    /// are all there will be.
    pub(crate) fn freeze(&self) -> MutexGuard<'_, ()> {
        acquire_timed(|| self.making.try_lock(), || self.making.lock())
    }

    /// The made shards with their indexes, in ascending order.
    pub(crate) fn made(&self) -> impl Iterator<Item = (usize, &T)> {
        (0..self.count()).filter_map(|i| Some((i, self.get(i)?)))
    }

    /// The made shards with their indexes, in ascending order, moved out.
    pub(crate) fn into_made(mut self) -> impl Iterator<Item = (usize, T)> {
        let shards = std::mem::take(&mut self.shards);
        // Collected at once, so that no pointer is left unfreed if the caller stops early.
        let made: Vec<_> = (shards.into_vec().into_iter().enumerate())
            .filter_map(|(i, shard)| {
                let shard = shard.into_inner();
                // SAFETY: the set was taken by value and its pointers moved out of it, so each
                // non-null one (from `Box::into_raw`, the field's invariant) is freed here only.
                (!shard.is_null()).then(|| (i, *unsafe { Box::from_raw(shard) }))
            })
            .collect();
        made.into_iter()
    }
}

impl<T> Drop for LazyShards<T> {
    fn drop(&mut self) {
        for shard in self.shards.iter_mut() {
            let shard = *shard.get_mut();
            if !shard.is_null() {
                // SAFETY: `&mut self` means no reference to a shard is left, and each non-null
                // pointer came from `Box::into_raw` (the field's invariant) and is freed once.
                drop(unsafe { Box::from_raw(shard) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_shard_is_made_once_and_kept() {
        let set = LazyShards::from_fn(4, |i| (i == 2).then_some(20));
        assert_eq!(set.get(2), Some(&20));
        assert_eq!(set.get(1), None);
        assert_eq!(set.get_or_make(1, Wait::Forever, || 10), Some(&10));
        assert_eq!(
            set.get_or_make(1, Wait::Forever, || unreachable!()),
            Some(&10)
        );
        assert_eq!(set.made().collect::<Vec<_>>(), [(1, &10), (2, &20)]);
        assert_eq!(set.into_made().collect::<Vec<_>>(), [(1, 10), (2, 20)]);
    }

    #[test]
    fn a_frozen_set_makes_no_shard_until_the_deadline() {
        let set = LazyShards::<u32>::from_fn(2, |_| None);
        let frozen = set.freeze();
        let soon = Wait::Until(Instant::now() + Duration::from_millis(20));
        assert_eq!(set.get_or_make(0, soon, || 1), None);
        drop(frozen);
        assert_eq!(set.get_or_make(0, soon, || 1), Some(&1));
    }

    #[test]
    fn every_made_shard_is_dropped_once() {
        let token = Arc::new(());
        let set = LazyShards::from_fn(3, |i| (i != 1).then(|| Arc::clone(&token)));
        set.get_or_make(1, Wait::Forever, || Arc::clone(&token));
        assert_eq!(Arc::strong_count(&token), 4);
        let moved: Vec<_> = set.into_made().take(1).collect();
        // The shards not taken are dropped with the iterator.
        assert_eq!(Arc::strong_count(&token), 2);
        drop(moved);
        let set = LazyShards::from_fn(3, |_| Some(Arc::clone(&token)));
        drop(set);
        assert_eq!(Arc::strong_count(&token), 1);
    }
}
