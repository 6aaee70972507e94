//! The one interface between the generic front (`SafeMap`) and a strategy's core.
//!
//! The front hashes the key once, runs the re-entrancy check, wraps every user closure so that a
//! call back into the map panics, and implements the public traits. A core receives pre-hashed
//! operations (a [`Probe`], or a hash and an owned key) and, wherever it may need an entry's hash
//! again (to move, iterate or copy entries), the map's hasher; it owns its protocol: locking and
//! routing, publishing versions, or keeping two copies equal. It declares what it guarantees in
//! [`Core::CONSISTENCY`].
//!
//! Of the single-key operations a core implements two: `get`, and `write`, which excludes the
//! key's other writers and hands the key's entry to an operation ([`super::entry`]). The five
//! writes (`insert`, `remove_if`, `compute`, `update`, `update_or_insert_with`) are provided
//! methods over `write`, so each is written once for every core.
//!
//! Writes take a [`Wait`]: [`Wait::Forever`] for the ordinary methods, [`Wait::Until`] for
//! `DeadlineMap`'s. `get` has no deadline, as most cores' readers never wait; the deadline form
//! of a read is [`BoundedWait::get_until`], which only a core whose readers lock overrides. A
//! core that cannot honour a deadline all the way (it may wait on something that is not a lock)
//! does not implement [`BoundedWait`], and the front offers no deadline methods for it.
//!
//! How a core's entries are walked part by part (iteration, `Debug`, the move out of a map it
//! owns) is its [`Parts`], a supertrait of `Core` in [`super::parts`].
//!
//! The trait is public only so that `SafeMap`'s trait impls can name it; it lives in a private
//! module, so no code outside the crate can implement it (it is sealed).

use std::hash::BuildHasher;
use std::time::Instant;

use super::entry::{
    Change, ChangeOrInsert, Compute, EntryOp, Insert, Owned, Probe, RemoveIf, Target,
};
use super::parts::Parts;
use crate::map::{
    Action, Blocks, Consistency, Cost, Maintenance, MapSnapshot, Once, TimedOut, WholeMap,
};

/// How long an operation may wait for a lock.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// Until the lock is free.
    Forever,
    /// No later than this instant; then the operation gives up and changes nothing.
    Until(Instant),
}

impl Wait {
    /// The instant to give up at, if there is one.
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Forever => None,
            Wait::Until(deadline) => Some(deadline),
        }
    }
}

/// Unwraps the result of an operation that waited forever, which cannot have timed out.
#[inline(always)]
pub(crate) fn waited<T, G>(result: Timed<T, G>) -> T {
    match result {
        Ok(done) => done,
        Err(_) => unreachable!("an operation that waits forever does not time out"),
    }
}

/// The strongest contract, which cores weaken field by field: every whole-map operation takes
/// effect at one instant, and a snapshot copies the entries.
pub(crate) const ATOMIC: Consistency = Consistency {
    len: WholeMap::Atomic,
    for_each: WholeMap::Atomic,
    iter: WholeMap::Atomic,
    retain: WholeMap::Atomic,
    clear: WholeMap::Atomic,
    snapshot: WholeMap::Atomic,
    snapshot_cost: Cost::Linear,
    update_in_place: true,
    reserves: true,
    maintenance: &[Maintenance::Resize],
    closure_blocks_readers: Blocks::Map,
    closure_blocks_writers: Blocks::Map,
    once: Once::Always,
    rehashes_keys: true,
    frees_after_readers: false,
};

/// The result of an operation that may give up at a deadline, handing back `G`.
pub type Timed<T, G> = Result<T, TimedOut<G>>;

/// What an insert that may give up returns: the value it displaced, or the key and value back.
pub type Inserted<K, V> = Timed<Option<V>, (K, V)>;

/// A strategy's core: its storage and synchronization protocol behind pre-hashed operations.
///
/// Every closure a core receives has been wrapped by the front already (user closures run
/// recorded as inside the map), so a core calls them as they are. Values a write displaces are
/// returned, so that the caller drops them after every lock is released.
pub trait Core: Default + Parts {
    /// The point-in-time view [`Core::snapshot`] returns, hashing with `S`.
    type Snapshot<S: BuildHasher>: MapSnapshot<Self::Key, Self::Value>;

    /// What this core guarantees, operation by operation.
    const CONSISTENCY: Consistency;

    /// An empty core with room for `capacity` entries, where the core can make room ahead.
    fn with_capacity(capacity: usize) -> Self;

    /// How many entries the core holds room for without allocating.
    fn capacity(&self) -> usize;

    /// Makes room for `additional` more entries, where the core can.
    fn reserve<S: BuildHasher>(&self, additional: usize, hasher: &S);

    /// Gives back the memory the entries do not need.
    fn shrink_to_fit<S: BuildHasher>(&self, hasher: &S);

    /// Runs `read` on the value `probe` finds, waiting for a lock if the core's readers take one.
    fn get<R>(
        &self,
        probe: impl Probe<Self::Key>,
        read: impl FnOnce(&Self::Value) -> R,
    ) -> Option<R>;

    /// Runs `op` on the entry `target` locates, with the key's other writers excluded; hands
    /// `target` and `op` back if `wait`'s deadline passes first. Every single-key write is one
    /// (the provided methods below).
    fn write<T, S, O>(&self, wait: Wait, target: T, hasher: &S, op: O) -> Timed<O::Output, (T, O)>
    where
        T: Target<Self::Key>,
        S: BuildHasher,
        O: EntryOp<Self::Key, Self::Value>;

    /// Stores `value` for `key` (with hash `hash`); returns the value it replaced.
    #[inline(always)]
    fn insert<S: BuildHasher>(
        &self,
        wait: Wait,
        hash: u64,
        key: Self::Key,
        value: Self::Value,
        hasher: &S,
    ) -> Inserted<Self::Key, Self::Value> {
        let stored = self.write(wait, Owned { hash, key }, hasher, Insert(value));
        stored.map_err(|TimedOut((target, Insert(value)))| TimedOut((target.key, value)))
    }

    /// Removes the entry `probe` finds if `remove` approves; returns its value.
    #[inline(always)]
    fn remove_if<S: BuildHasher>(
        &self,
        wait: Wait,
        probe: impl Target<Self::Key>,
        remove: impl FnOnce(&Self::Key, &Self::Value) -> bool,
        hasher: &S,
    ) -> Timed<Option<Self::Value>, ()> {
        let removed = self.write(wait, probe, hasher, RemoveIf(remove));
        removed.map_err(|_| TimedOut(()))
    }

    /// Runs `change` exactly once on the value `probe` finds, with the key's writers excluded;
    /// `None` if the key is absent.
    fn update<R, S: BuildHasher>(
        &self,
        probe: impl Target<Self::Key>,
        change: impl FnOnce(&mut Self::Value) -> R,
        hasher: &S,
    ) -> Option<R> {
        waited(self.write(Wait::Forever, probe, hasher, Change(change)))
    }

    /// Runs `change` exactly once on the value for `key`, first building it with `make()` if
    /// the key is absent; an absent key is stored only once `change` has returned.
    fn update_or_insert_with<R, S: BuildHasher>(
        &self,
        hash: u64,
        key: Self::Key,
        make: impl FnOnce() -> Self::Value,
        change: impl FnOnce(&mut Self::Value) -> R,
        hasher: &S,
    ) -> R {
        let op = ChangeOrInsert { make, change };
        waited(self.write(Wait::Forever, Owned { hash, key }, hasher, op))
    }

    /// Runs `update` exactly once on the entry for `key` and applies its action; returns the
    /// value the action displaced.
    #[inline(always)]
    fn compute<S: BuildHasher>(
        &self,
        wait: Wait,
        hash: u64,
        key: Self::Key,
        update: impl FnOnce(Option<&Self::Value>) -> Action<Self::Value>,
        hasher: &S,
    ) -> Timed<Option<Self::Value>, Self::Key> {
        let computed = self.write(wait, Owned { hash, key }, hasher, Compute(update));
        computed.map_err(|TimedOut((target, _))| TimedOut(target.key))
    }

    /// Stores every entry, one `insert` each; a core that can publish many at once does so.
    fn extend<S: BuildHasher>(
        &self,
        entries: impl IntoIterator<Item = (Self::Key, Self::Value)>,
        hasher: &S,
    ) {
        for (key, value) in entries {
            let hash = hasher.hash_one(&key);
            // Displaced values are dropped here, after the insert released its locks.
            let _ = self.insert(Wait::Forever, hash, key, value, hasher);
        }
    }

    /// Keeps the entries `keep` approves of, asking once per entry.
    fn retain<S: BuildHasher>(
        &self,
        keep: &mut impl FnMut(&Self::Key, &Self::Value) -> bool,
        hasher: &S,
    );

    /// Removes every entry.
    fn clear(&self);

    /// The number of entries.
    fn len(&self) -> usize;

    /// Calls `visit` for every entry, holding no lock while it runs: by default on the copies
    /// [`Parts::next_chunk`] takes, one part at a time, so `for_each` is as consistent as `iter`. A
    /// core that promises more (an atomic `for_each`), or can visit without copying, overrides it.
    fn for_each<S: BuildHasher>(&self, visit: &mut impl FnMut(&Self::Key, &Self::Value), hasher: &S)
    where
        Self::Key: Clone,
        Self::Value: Clone,
    {
        let (mut cursor, mut chunk) = (self.cursor(), Vec::new());
        while self.next_chunk(&mut cursor, &mut chunk, hasher) {
            chunk.iter().for_each(|(k, v)| visit(k, v));
            chunk.clear();
        }
    }

    /// A point-in-time view, hashing lookups with a clone of `hasher`.
    fn snapshot<S: BuildHasher + Clone>(&self, hasher: &S) -> Self::Snapshot<S>
    where
        Self::Key: Clone,
        Self::Value: Clone;

    /// A new core holding a copy of this one's entries, taken at one instant.
    fn duplicate<S: BuildHasher>(&self, hasher: &S) -> Self
    where
        Self::Key: Clone,
        Self::Value: Clone;
}

/// A core whose every wait is for a lock, so a [`Wait::Until`] bounds the whole operation.
pub trait BoundedWait: Core {
    /// [`Core::get`], giving up at `deadline` if it has to wait that long for a lock. By default
    /// for a core whose readers take no lock: it never waits, so it never gives up.
    fn get_until<R>(
        &self,
        _deadline: Instant,
        probe: impl Probe<Self::Key>,
        read: impl FnOnce(&Self::Value) -> R,
    ) -> Timed<Option<R>, ()> {
        Ok(self.get(probe, read))
    }
}
