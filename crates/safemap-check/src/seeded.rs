//! Deliberately broken maps: the proof that the checker can fail.
//!
//! Each wraps a correct [`LockedMap`] and breaks one operation the way real concurrent maps get
//! it wrong. The broken paths yield the thread in their race window, so that the races they
//! contain show up within a few histories rather than once in a blue moon.

use safemap::Equivalent;
use std::hash::Hash;

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use safemap::fallible::Local;
use safemap::{Action, ConcurrentMap, Consistency, LockedMap, TableSnapshot, WholeMap};

use crate::history::{Key, Val};
use crate::run::Contestant;

/// Which bug a [`Seeded`] map carries.
pub mod bug {
    /// `get_or_insert_with` as check-then-act: look up, and if absent build and insert, with no
    /// lock across the two, so the closure can run twice and two values can win.
    pub const CHECK_THEN_ACT: u8 = 0;
    /// Reads served from a cached copy that is refreshed only on every second write, so a read
    /// after a completed write can return the old value.
    pub const STALE_READ: u8 = 1;
    /// `compute` as get, then apply, then insert: a concurrent update in between is lost.
    pub const LOST_UPDATE: u8 = 2;
    /// A weakly consistent `len` that counts writes in flight as done: `insert` bumps a counter
    /// before it stores and drops it after, and `len` adds the counter. A replace in flight then
    /// makes `len` one more than any size the map had.
    pub const OVERCOUNTING_LEN: u8 = 3;
    /// `get_or_insert_with` that runs its closure outside the lock, as safemap's does, but
    /// without claiming the key first: two callers both run their closures, one value is stored
    /// and the other closure ran for nothing.
    pub const UNCLAIMED_INIT: u8 = 4;
}

/// A map with the bug numbered `BUG` (see [`bug`]).
#[derive(Default)]
pub struct Seeded<const BUG: u8> {
    inner: LockedMap<Key, Val>,
    /// For [`bug::STALE_READ`]: the cached copy reads come from, and the writes since it was taken.
    cache: Mutex<(Vec<(Key, Val)>, usize)>,
    /// For [`bug::OVERCOUNTING_LEN`]: inserts under way.
    inserting: AtomicUsize,
}

/// The five seeded bugs, by name.
pub fn seeded_bugs() -> Vec<Contestant> {
    vec![
        Contestant::of::<Local<Seeded<{ bug::CHECK_THEN_ACT }>>>("seeded:check-then-act"),
        Contestant::of::<Local<Seeded<{ bug::STALE_READ }>>>("seeded:stale-read"),
        Contestant::of::<Local<Seeded<{ bug::LOST_UPDATE }>>>("seeded:lost-update"),
        Contestant::of::<Local<Seeded<{ bug::OVERCOUNTING_LEN }>>>("seeded:overcounting-len"),
        Contestant::of::<Local<Seeded<{ bug::UNCLAIMED_INIT }>>>("seeded:unclaimed-init"),
    ]
}

/// What the correct map underneath declares.
const LOCKED: Consistency = <LockedMap<Key, Val> as ConcurrentMap<Key, Val>>::CONSISTENCY;

impl<const BUG: u8> Seeded<BUG> {
    /// Called after every write: refreshes the stale cache on every second one.
    fn wrote(&self) {
        if BUG == bug::STALE_READ {
            let mut cache = self.cache.lock();
            cache.1 += 1;
            if cache.1 % 2 == 0 {
                let mut copy = Vec::new();
                self.inner.for_each(|k, v| copy.push((*k, *v)));
                cache.0 = copy;
            }
        }
    }

    fn after_write<R>(&self, result: R) -> R {
        self.wrote();
        result
    }
}

impl<const BUG: u8> ConcurrentMap<Key, Val> for Seeded<BUG> {
    type Snapshot = TableSnapshot<Key, Val, safemap::DefaultHashBuilder>;
    /// The correct map's contract, but for the overcounting `len`, which claims only to be weakly
    /// consistent, so that the checker's bounds for such a `len` are what rejects it.
    const CONSISTENCY: Consistency = if BUG == bug::OVERCOUNTING_LEN {
        Consistency {
            len: WholeMap::WeaklyConsistent,
            ..LOCKED
        }
    } else {
        LOCKED
    };

    fn get<Q>(&self, key: &Q) -> Option<Val>
    where
        Q: Hash + Equivalent<Key> + ?Sized,
    {
        if BUG == bug::STALE_READ {
            let cache = self.cache.lock();
            return cache
                .0
                .iter()
                .find(|(k, _)| key.equivalent(k))
                .map(|(_, v)| *v);
        }
        self.inner.get(key)
    }

    fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&Val) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<Key> + ?Sized,
    {
        self.inner.get_with(key, read)
    }

    fn insert(&self, key: Key, value: Val) -> Option<Val> {
        if BUG == bug::OVERCOUNTING_LEN {
            // Relaxed: the bug needs no ordering, only the window between the two counts.
            self.inserting.fetch_add(1, Ordering::Relaxed);
            std::thread::yield_now();
            let old = self.inner.insert(key, value);
            self.inserting.fetch_sub(1, Ordering::Relaxed);
            return old;
        }
        self.after_write(self.inner.insert(key, value))
    }

    fn remove<Q>(&self, key: &Q) -> Option<Val>
    where
        Q: Hash + Equivalent<Key> + ?Sized,
    {
        self.after_write(self.inner.remove(key))
    }

    fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&Key, &Val) -> bool) -> Option<Val>
    where
        Q: Hash + Equivalent<Key> + ?Sized,
    {
        self.after_write(self.inner.remove_if(key, remove))
    }

    fn get_or_insert_with(&self, key: Key, make: impl FnOnce() -> Val) -> Val {
        if BUG == bug::CHECK_THEN_ACT {
            if let Some(found) = self.inner.get(&key) {
                return found;
            }
            std::thread::yield_now();
            let value = make();
            self.inner.insert(key, value);
            return value;
        }
        if BUG == bug::UNCLAIMED_INIT {
            if let Some(found) = self.inner.get(&key) {
                return found;
            }
            std::thread::yield_now();
            let made = make();
            let mut present = None;
            self.inner.compute(key, |current| match current {
                Some(value) => {
                    present = Some(*value);
                    Action::Keep
                }
                None => Action::Set(made),
            });
            return self.after_write(present.unwrap_or(made));
        }
        self.after_write(self.inner.get_or_insert_with(key, make))
    }

    fn try_get_or_insert_with<E>(
        &self,
        key: Key,
        make: impl FnOnce() -> Result<Val, E>,
    ) -> Result<Val, E> {
        self.after_write(self.inner.try_get_or_insert_with(key, make))
    }

    fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut Val) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<Key> + ?Sized,
    {
        self.after_write(self.inner.update(key, change))
    }

    fn update_or_insert_with<R>(
        &self,
        key: Key,
        make: impl FnOnce() -> Val,
        change: impl FnOnce(&mut Val) -> R,
    ) -> R {
        self.after_write(self.inner.update_or_insert_with(key, make, change))
    }

    fn compute(&self, key: Key, update: impl FnOnce(Option<&Val>) -> Action<Val>) -> Option<Val> {
        if BUG == bug::LOST_UPDATE {
            let old = self.inner.get(&key);
            std::thread::yield_now();
            return match update(old.as_ref()) {
                Action::Keep => None,
                Action::Set(v) => self.inner.insert(key, v).and(old),
                Action::Remove => self.inner.remove(&key).and(old),
            };
        }
        self.after_write(self.inner.compute(key, update))
    }

    fn retain(&self, keep: impl FnMut(&Key, &Val) -> bool) {
        self.inner.retain(keep);
        self.wrote();
    }

    fn clear(&self) {
        self.inner.clear();
        self.wrote();
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    fn reserve(&self, additional: usize) {
        self.inner.reserve(additional)
    }

    fn shrink_to_fit(&self) {
        self.inner.shrink_to_fit()
    }

    fn len(&self) -> usize {
        if BUG == bug::OVERCOUNTING_LEN {
            return self.inner.len() + self.inserting.load(Ordering::Relaxed);
        }
        self.inner.len()
    }

    fn for_each(&self, visit: impl FnMut(&Key, &Val)) {
        self.inner.for_each(visit)
    }

    fn iter(&self) -> impl Iterator<Item = (Key, Val)> + '_ {
        self.inner.iter()
    }

    fn snapshot(&self) -> Self::Snapshot {
        self.inner.snapshot()
    }
}
