//! `rayon` support, behind the `rayon` feature: parallel iteration, `ParallelExtend` and
//! `FromParallelIterator` for every map, and bulk operations with a parallelism threshold, as
//! Java's `ConcurrentHashMap` has (`forEach`, `reduce`, `search`).
//!
//! # How the work is split
//! A parallel iteration visits the same parts as [`iter`](ConcurrentMap::iter): the shards of a
//! lock-based or left-right map, the leaves of a `SnapshotMap`'s current version. The parts still
//! to visit are halved between threads as rayon asks for work (`Parts::split_cursor`); a thread
//! copies one part at a time, holding the part's lock only while it copies, as `iter` does, and
//! gives the copy to the consumer with no lock held. A part that cannot be split (a `LockedMap`'s
//! one table) is copied once and its entries are shared out. So a parallel iteration is exactly
//! as consistent as a sequential one ([`Consistency::iter`](crate::Consistency::iter)), and holds
//! at most one part per thread in memory.
//!
//! Every thread that copies a part first checks that it is not inside a closure of the same map,
//! as every call does: rayon may run a stolen task on a thread that is waiting in a closure, and
//! that thread's locks must not be taken again.

use std::hash::BuildHasher;
use std::mem;

use rayon::iter::plumbing::{Folder, UnindexedConsumer, UnindexedProducer, bridge_unindexed};
use rayon::iter::{FromParallelIterator, IntoParallelIterator, ParallelExtend, ParallelIterator};

use crate::front::SafeMap;
use crate::map::ConcurrentMap;
use crate::raw::core::Core;
use crate::reentry::{self, MapId};

/// How many entries a thread of a parallel `extend` gathers before it stores them: a
/// `SnapshotMap` publishes each batch as one version.
const EXTEND_BATCH: usize = 1024;

impl<C: Core + Sync, S: BuildHasher + Sync> SafeMap<C, S>
where
    C::Key: Clone + Send,
    C::Value: Clone + Send,
    C::Cursor: Send,
{
    /// Every entry, as owned clones, on rayon's threads: the parallel [`iter`](ConcurrentMap::iter),
    /// with its consistency ([`Consistency::iter`](crate::Consistency::iter)) and no lock held
    /// while the consumer runs.
    ///
    /// ```
    /// use rayon::prelude::*;
    /// use safemap::ShardedMap;
    /// let m: ShardedMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
    /// assert_eq!(m.par_iter().map(|(_, v)| v).sum::<u64>(), 499_500);
    /// ```
    pub fn par_iter(&self) -> ParIter<'_, C, S> {
        ParIter {
            core: self.core(),
            hasher: self.hasher(),
            map: self.enter(),
        }
    }

    /// Calls `visit` for every entry, on rayon's threads once the map holds at least
    /// `threshold` entries, on this thread (as [`for_each`](ConcurrentMap::for_each)) below it.
    /// A `threshold` of 1 always goes parallel; `usize::MAX` never does. Either way no lock is
    /// held while `visit` runs, which may call back into the map.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use safemap::ShardedMap;
    /// let m: ShardedMap<u64, u64> = (0..100).map(|i| (i, 1)).collect();
    /// let total = AtomicU64::new(0);
    /// m.par_for_each(1, |_, v| {
    ///     total.fetch_add(*v, Ordering::Relaxed);
    /// });
    /// assert_eq!(total.into_inner(), 100);
    /// ```
    pub fn par_for_each(&self, threshold: usize, visit: impl Fn(&C::Key, &C::Value) + Sync + Send)
    where
        S: Clone,
    {
        if self.goes_parallel(threshold) {
            self.par_iter().for_each(|(k, v)| visit(&k, &v));
        } else {
            self.for_each(visit);
        }
    }

    /// Maps every entry with `map` and combines the results with `reduce`, in parallel from
    /// `threshold` entries (as [`par_for_each`](Self::par_for_each)); `None` for an empty map.
    /// `reduce` must be associative, since the results are combined in no particular order.
    ///
    /// ```
    /// use safemap::SnapshotMap;
    /// let m: SnapshotMap<u64, u64> = (1..=10).map(|i| (i, i * i)).collect();
    /// assert_eq!(m.par_reduce(1, |_, v| *v, u64::max), Some(100));
    /// ```
    pub fn par_reduce<R: Send>(
        &self,
        threshold: usize,
        map: impl Fn(&C::Key, &C::Value) -> R + Sync + Send,
        reduce: impl Fn(R, R) -> R + Sync + Send,
    ) -> Option<R>
    where
        S: Clone,
    {
        if self.goes_parallel(threshold) {
            self.par_iter()
                .map(|(k, v)| map(&k, &v))
                .reduce_with(reduce)
        } else {
            self.iter().map(|(k, v)| map(&k, &v)).reduce(reduce)
        }
    }

    /// Some result of `search` that is not `None`, stopping the other threads' work once one is
    /// found; in parallel from `threshold` entries (as [`par_for_each`](Self::par_for_each)).
    /// Which match is returned when several exist is unspecified.
    ///
    /// ```
    /// use safemap::ReadMostlyMap;
    /// let m: ReadMostlyMap<u64, &str> = ReadMostlyMap::from([(1, "a"), (2, "bb"), (3, "c")]);
    /// assert_eq!(m.par_search(1, |k, v| (v.len() == 2).then_some(*k)), Some(2));
    /// ```
    pub fn par_search<R: Send>(
        &self,
        threshold: usize,
        search: impl Fn(&C::Key, &C::Value) -> Option<R> + Sync + Send,
    ) -> Option<R>
    where
        S: Clone,
    {
        if self.goes_parallel(threshold) {
            self.par_iter().find_map_any(|(k, v)| search(&k, &v))
        } else {
            self.iter().find_map(|(k, v)| search(&k, &v))
        }
    }

    fn goes_parallel(&self, threshold: usize) -> bool {
        self.enter();
        threshold != usize::MAX && self.core().len() >= threshold
    }
}

/// The parallel iterator of [`SafeMap::par_iter`]: owned clones, one part of the map copied at
/// a time on each thread.
pub struct ParIter<'a, C, S> {
    core: &'a C,
    hasher: &'a S,
    map: MapId,
}

/// Driven by `Parts`, which shares the parts out as rayon asks.
impl<'a, C: Core + Sync, S: Sync> ParallelIterator for ParIter<'a, C, S>
where
    Parts<'a, C, S>: UnindexedProducer<Item = (C::Key, C::Value)>,
    (C::Key, C::Value): Send,
{
    type Item = (C::Key, C::Value);

    fn drive_unindexed<U: UnindexedConsumer<Self::Item>>(self, consumer: U) -> U::Result {
        let parts = Parts {
            core: self.core,
            hasher: self.hasher,
            map: self.map,
            left: Left::Uncopied(self.core.cursor()),
        };
        bridge_unindexed(parts, consumer)
    }
}

impl<'a, C, S> IntoParallelIterator for &'a SafeMap<C, S>
where
    C: Core + Sync,
    C::Key: Clone + Send,
    C::Value: Clone + Send,
    C::Cursor: Send,
    S: BuildHasher + Sync,
{
    type Item = (C::Key, C::Value);
    type Iter = ParIter<'a, C, S>;

    fn into_par_iter(self) -> ParIter<'a, C, S> {
        self.par_iter()
    }
}

/// The share of a parallel iteration that one rayon task holds.
struct Parts<'a, C: Core, S> {
    core: &'a C,
    hasher: &'a S,
    map: MapId,
    left: Left<C>,
}

/// What a task has still to visit.
enum Left<C: Core> {
    /// Parts of the map not yet copied.
    Uncopied(C::Cursor),
    /// Entries of a part already copied, which can be shared out further.
    Copied(Vec<(C::Key, C::Value)>),
}

/// The next part's copy, taken after this thread's re-entrancy check.
fn copy_next<C: Core, S: BuildHasher>(
    (core, hasher, map): (&C, &S, MapId),
    cursor: &mut C::Cursor,
) -> Option<Vec<(C::Key, C::Value)>>
where
    C::Key: Clone,
    C::Value: Clone,
{
    reentry::check(map);
    let mut chunk = Vec::new();
    core.next_chunk(cursor, &mut chunk, hasher).then_some(chunk)
}

impl<C: Core + Sync, S: BuildHasher + Sync> UnindexedProducer for Parts<'_, C, S>
where
    C::Key: Clone + Send,
    C::Value: Clone + Send,
    C::Cursor: Send,
{
    type Item = (C::Key, C::Value);

    fn split(mut self) -> (Self, Option<Self>) {
        let other = match &mut self.left {
            Left::Uncopied(cursor) => match self.core.split_cursor(cursor) {
                Some(other) => Left::Uncopied(other),
                // One part is left: copy it, so that its entries can be shared out.
                None => match copy_next((self.core, self.hasher, self.map), cursor) {
                    Some(entries) => {
                        self.left = Left::Copied(entries);
                        return self.split();
                    }
                    None => return (self, None),
                },
            },
            Left::Copied(entries) if entries.len() >= 2 => {
                Left::Copied(entries.split_off(entries.len() / 2))
            }
            Left::Copied(_) => return (self, None),
        };
        let other = Parts {
            core: self.core,
            hasher: self.hasher,
            map: self.map,
            left: other,
        };
        (self, Some(other))
    }

    fn fold_with<F: Folder<Self::Item>>(self, mut folder: F) -> F {
        match self.left {
            Left::Copied(entries) => folder.consume_iter(entries),
            Left::Uncopied(mut cursor) => {
                while !folder.full() {
                    let Some(entries) = copy_next((self.core, self.hasher, self.map), &mut cursor)
                    else {
                        break;
                    };
                    folder = folder.consume_iter(entries);
                }
                folder
            }
        }
    }
}

/// Stores every entry from rayon's threads, each gathering a batch of entries and storing it as
/// `extend` does (a `SnapshotMap` publishes each batch as one version).
///
/// ```
/// use rayon::prelude::*;
/// use safemap::{ConcurrentMap, ShardedMap};
/// let m: ShardedMap<u64, u64> = ShardedMap::new();
/// (&m).par_extend((0..10_000u64).into_par_iter().map(|i| (i, i)));
/// assert_eq!(m.len(), 10_000);
/// ```
impl<C, S> ParallelExtend<(C::Key, C::Value)> for &SafeMap<C, S>
where
    C: Core + Sync,
    C::Key: Send,
    C::Value: Send,
    S: BuildHasher + Sync,
{
    fn par_extend<I>(&mut self, entries: I)
    where
        I: IntoParallelIterator<Item = (C::Key, C::Value)>,
    {
        let map = self.enter();
        let (core, hasher) = (self.core(), self.hasher());
        let store = |batch: Vec<_>| {
            reentry::check(map);
            core.extend(batch, hasher);
        };
        entries
            .into_par_iter()
            .fold(Vec::new, |mut batch, entry| {
                batch.push(entry);
                if batch.len() == EXTEND_BATCH {
                    store(mem::take(&mut batch));
                }
                batch
            })
            .for_each(store);
    }
}

/// As `ParallelExtend` for `&SafeMap`.
impl<C: Core, S> ParallelExtend<(C::Key, C::Value)> for SafeMap<C, S>
where
    for<'a> &'a Self: ParallelExtend<(C::Key, C::Value)>,
    C::Key: Send,
    C::Value: Send,
{
    fn par_extend<I>(&mut self, entries: I)
    where
        I: IntoParallelIterator<Item = (C::Key, C::Value)>,
    {
        (&*self).par_extend(entries);
    }
}

/// A new map of every entry, stored from rayon's threads as `par_extend` does.
///
/// ```
/// use rayon::prelude::*;
/// use safemap::{ConcurrentMap, SnapshotMap};
/// let m: SnapshotMap<u64, u64> = (0..10_000u64).into_par_iter().map(|i| (i, i)).collect();
/// assert_eq!(m.get(&9_999), Some(9_999));
/// ```
impl<C, S> FromParallelIterator<(C::Key, C::Value)> for SafeMap<C, S>
where
    C: Core + Sync,
    C::Key: Send,
    C::Value: Send,
    S: BuildHasher + Default + Sync,
{
    fn from_par_iter<I>(entries: I) -> Self
    where
        I: IntoParallelIterator<Item = (C::Key, C::Value)>,
    {
        let map = Self::default();
        (&map).par_extend(entries);
        map
    }
}
