//! [`SafeMap`]: the one generic front that every strategy is. It owns the map's hasher and one
//! strategy core (`raw::core::Core`), and does, once for every strategy, what is the same in all:
//!
//! - hashes the key once per call and hands the core a pre-hashed operation;
//! - runs the re-entrancy check ([`reentry`]) at the start of every call, and runs every user
//!   closure recorded as inside this map, so a closure that calls back panics instead of hanging;
//! - answers `get_or_insert_with` for present keys on the read path, and runs the closure for an
//!   absent key with no lock of the map held, under a claim on the key that makes other callers
//!   for it wait (`claims`), then stores the value with a `compute` that keeps a present one;
//! - implements [`ConcurrentMap`], [`DeadlineMap`] (for cores whose waits are all for locks) and
//!   the std traits (`Debug`, `Default`, `Extend`, `FromIterator`).
//!
//! A strategy is a type alias naming its core, such as
//! `ShardedMap<K, V, S> = SafeMap<Tables<K, V, ManyTables>, S>`; its own file adds constructors
//! and the methods only it has.

use equivalent::Equivalent;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::time::Instant;

use crate::claims::Claims;
use crate::map::{
    Action, ConcurrentMap, Consistency, DeadlineMap, DefaultHashBuilder, MapSnapshot, TimedOut,
};
use crate::raw::core::{BoundedWait, Core, Inserted, Wait, waited};
use crate::raw::entry::Lookup;
use crate::reentry::{self, MapId};

/// A concurrent map made of a strategy core `C` and a hasher `S`. Use it through a strategy's
/// name: [`LockedMap`](crate::LockedMap), [`ShardedMap`](crate::ShardedMap),
/// [`SnapshotMap`](crate::SnapshotMap) or [`ReadMostlyMap`](crate::ReadMostlyMap), and its
/// methods through [`ConcurrentMap`].
///
/// ```
/// use safemap::{ConcurrentMap, ShardedMap};
///
/// let m: ShardedMap<&str, u32> = ShardedMap::new();
/// m.insert("a", 1);
/// assert_eq!(m.get("a"), Some(1));
/// ```
pub struct SafeMap<C, S = DefaultHashBuilder> {
    core: C,
    hasher: S,
    /// The `get_or_insert_with` calls whose closures run now, one per key.
    claims: Claims,
}

impl<C: Default> SafeMap<C> {
    /// An empty map with a randomly seeded hasher.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<C: Default, S> SafeMap<C, S> {
    /// An empty map that hashes with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        Self::from_parts(C::default(), hasher)
    }
}

impl<C: Core> SafeMap<C> {
    /// An empty map with room for `capacity` entries before it grows, where the strategy can
    /// make room ahead ([`Consistency::reserves`]), and a randomly seeded hasher.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ReadMostlyMap};
    /// let m: ReadMostlyMap<u32, u32> = ReadMostlyMap::with_capacity(1000);
    /// assert!(m.capacity() >= 1000);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, DefaultHashBuilder::default())
    }
}

impl<C: Core, S> SafeMap<C, S> {
    /// An empty map with room for `capacity` entries, hashing with `hasher`.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        Self::from_parts(C::with_capacity(capacity), hasher)
    }
}

impl<C, S> SafeMap<C, S> {
    pub(crate) fn from_parts(core: C, hasher: S) -> Self {
        SafeMap {
            core,
            hasher,
            claims: Claims::default(),
        }
    }

    /// The map's hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    pub(crate) fn core(&self) -> &C {
        &self.core
    }

    fn id(&self) -> MapId {
        MapId::of(self)
    }

    /// Panics if this thread is inside a closure of this map; returns the map's id, for wrapping
    /// the call's own closures.
    #[inline]
    pub(crate) fn enter(&self) -> MapId {
        let id = self.id();
        reentry::check(id);
        id
    }

    /// The probe for `key`.
    #[inline]
    pub(crate) fn probe<'q, Q: Hash + ?Sized>(&self, key: &'q Q) -> Lookup<'q, Q>
    where
        S: BuildHasher,
    {
        Lookup {
            hash: self.hasher.hash_one(key),
            key,
        }
    }
}

impl<C: Core, S: BuildHasher> SafeMap<C, S> {
    /// `get_with` for trusted code of this crate (a clone, a presence test).
    #[inline]
    fn read<Q, R>(&self, key: &Q, read: impl FnOnce(&C::Value) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        self.enter();
        self.core.get(self.probe(key), read)
    }

    /// `remove_if` and its deadline form.
    #[inline]
    fn remove_waiting<Q>(
        &self,
        wait: Wait,
        key: &Q,
        remove: impl FnOnce(&C::Key, &C::Value) -> bool,
    ) -> Result<Option<C::Value>, TimedOut<()>>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        let id = self.enter();
        let remove =
            |k: &C::Key, v: &C::Value| reentry::run_inside(id, "remove_if", || remove(k, v));
        self.core
            .remove_if(wait, self.probe(key), remove, &self.hasher)
    }

    /// `get_or_insert_with` and its fallible form, for operation `op`: the value, and whether
    /// `make`'s value was the one stored (see `claims` for the protocol).
    pub(crate) fn get_or_make<E>(
        &self,
        op: &'static str,
        key: C::Key,
        make: impl FnOnce() -> Result<C::Value, E>,
    ) -> Result<(C::Value, bool), E>
    where
        C::Value: Clone,
    {
        self.enter();
        let hash = self.hasher.hash_one(&key);
        // Most calls find the key: answer those on the read path.
        if let Some(present) = self.look(hash, &key) {
            return Ok((present, false));
        }
        loop {
            match self.claims.claim(hash, op) {
                Some(claim) => {
                    let made = self.make_claimed(hash, key, make);
                    // Withdrawn after the value is stored, or on failure or unwind.
                    drop(claim);
                    return made;
                }
                // Another caller's claim was withdrawn: its value is stored, or it failed.
                None => {
                    if let Some(present) = self.look(hash, &key) {
                        return Ok((present, false));
                    }
                }
            }
        }
    }

    /// The claim holder's part of [`Self::get_or_make`]: look again, make, store if still
    /// absent.
    fn make_claimed<E>(
        &self,
        hash: u64,
        key: C::Key,
        make: impl FnOnce() -> Result<C::Value, E>,
    ) -> Result<(C::Value, bool), E>
    where
        C::Value: Clone,
    {
        // A value may have been stored between the first look and the claim.
        if let Some(present) = self.look(hash, &key) {
            return Ok((present, false));
        }
        // No lock of the map is held: `make` may use the map, for other keys.
        Ok(self.store_if_absent(hash, key, make()?))
    }

    /// A clone of the value for `key`, whose hash is `hash`.
    pub(crate) fn look(&self, hash: u64, key: &C::Key) -> Option<C::Value>
    where
        C::Value: Clone,
    {
        self.core.get(Lookup { hash, key }, C::Value::clone)
    }

    /// Stores `made` for `key` if it is still absent; returns the value the key then holds, and
    /// whether it is `made` (a value a plain write stored meanwhile wins).
    pub(crate) fn store_if_absent(&self, hash: u64, key: C::Key, made: C::Value) -> (C::Value, bool)
    where
        C::Value: Clone,
    {
        let mut stored = Some(made.clone());
        let mut present = None;
        let keep_or_store = |current: Option<&C::Value>| match current {
            Some(value) => {
                present = Some(value.clone());
                Action::Keep
            }
            None => Action::Set(stored.take().expect("compute runs its closure once")),
        };
        // Nothing is displaced: the action keeps a present value or fills an absent key.
        let _ = self
            .core
            .compute(Wait::Forever, hash, key, keep_or_store, &self.hasher);
        match present {
            Some(present) => (present, false),
            None => (made, true),
        }
    }

    /// The claims of this map's running inits.
    pub(crate) fn claims(&self) -> &Claims {
        &self.claims
    }

    /// `compute` and its deadline form.
    #[inline]
    fn compute_waiting(
        &self,
        wait: Wait,
        key: C::Key,
        update: impl FnOnce(Option<&C::Value>) -> Action<C::Value>,
    ) -> Result<Option<C::Value>, TimedOut<C::Key>> {
        let id = self.enter();
        let hash = self.hasher.hash_one(&key);
        let update =
            |current: Option<&C::Value>| reentry::run_inside(id, "compute", || update(current));
        self.core.compute(wait, hash, key, update, &self.hasher)
    }

    /// `insert` and its deadline form.
    #[inline]
    fn insert_waiting(
        &self,
        wait: Wait,
        key: C::Key,
        value: C::Value,
    ) -> Inserted<C::Key, C::Value> {
        self.enter();
        let hash = self.hasher.hash_one(&key);
        self.core.insert(wait, hash, key, value, &self.hasher)
    }
}

impl<C, S> ConcurrentMap<C::Key, C::Value> for SafeMap<C, S>
where
    C: Core,
    S: BuildHasher + Clone,
{
    type Snapshot = C::Snapshot<S>;

    const CONSISTENCY: Consistency = C::CONSISTENCY;

    #[inline]
    fn get<Q>(&self, key: &Q) -> Option<C::Value>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
        C::Value: Clone,
    {
        self.read(key, C::Value::clone)
    }

    fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&C::Value) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        let id = self.id();
        self.read(key, |v| reentry::run_inside(id, "get_with", || read(v)))
    }

    #[inline]
    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        self.read(key, |_| ()).is_some()
    }

    #[inline]
    fn insert(&self, key: C::Key, value: C::Value) -> Option<C::Value> {
        waited(self.insert_waiting(Wait::Forever, key, value))
    }

    #[inline]
    fn remove<Q>(&self, key: &Q) -> Option<C::Value>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        self.enter();
        waited(
            self.core
                .remove_if(Wait::Forever, self.probe(key), |_, _| true, &self.hasher),
        )
    }

    fn remove_if<Q>(
        &self,
        key: &Q,
        remove: impl FnOnce(&C::Key, &C::Value) -> bool,
    ) -> Option<C::Value>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        waited(self.remove_waiting(Wait::Forever, key, remove))
    }

    fn get_or_insert_with(&self, key: C::Key, make: impl FnOnce() -> C::Value) -> C::Value
    where
        C::Value: Clone,
    {
        match self.get_or_make("get_or_insert_with", key, || Ok::<_, Infallible>(make())) {
            Ok((value, _)) => value,
            Err(never) => match never {},
        }
    }

    fn try_get_or_insert_with<E>(
        &self,
        key: C::Key,
        make: impl FnOnce() -> Result<C::Value, E>,
    ) -> Result<C::Value, E>
    where
        C::Value: Clone,
    {
        self.get_or_make("try_get_or_insert_with", key, make)
            .map(|(value, _)| value)
    }

    fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut C::Value) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        let id = self.enter();
        let change = |value: &mut C::Value| reentry::run_inside(id, "update", || change(value));
        self.core.update(self.probe(key), change, &self.hasher)
    }

    fn update_or_insert_with<R>(
        &self,
        key: C::Key,
        make: impl FnOnce() -> C::Value,
        change: impl FnOnce(&mut C::Value) -> R,
    ) -> R {
        let id = self.enter();
        let hash = self.hasher.hash_one(&key);
        let make = || reentry::run_inside(id, "update_or_insert_with", make);
        let change = |value: &mut C::Value| {
            reentry::run_inside(id, "update_or_insert_with", || change(value))
        };
        self.core
            .update_or_insert_with(hash, key, make, change, &self.hasher)
    }

    #[inline]
    fn compute(
        &self,
        key: C::Key,
        update: impl FnOnce(Option<&C::Value>) -> Action<C::Value>,
    ) -> Option<C::Value> {
        waited(self.compute_waiting(Wait::Forever, key, update))
    }

    fn retain(&self, mut keep: impl FnMut(&C::Key, &C::Value) -> bool) {
        let id = self.enter();
        let mut keep = |k: &C::Key, v: &C::Value| reentry::run_inside(id, "retain", || keep(k, v));
        self.core.retain(&mut keep, &self.hasher);
    }

    fn clear(&self) {
        self.enter();
        self.core.clear();
    }

    fn len(&self) -> usize {
        self.enter();
        self.core.len()
    }

    fn shard_lengths(&self) -> Vec<usize> {
        self.enter();
        self.core.shard_lengths(&self.hasher)
    }

    fn capacity(&self) -> usize {
        self.enter();
        self.core.capacity()
    }

    fn reserve(&self, additional: usize) {
        self.enter();
        self.core.reserve(additional, &self.hasher);
    }

    fn shrink_to_fit(&self) {
        self.enter();
        self.core.shrink_to_fit(&self.hasher);
    }

    fn for_each(&self, mut visit: impl FnMut(&C::Key, &C::Value))
    where
        C::Key: Clone,
        C::Value: Clone,
    {
        self.enter();
        self.core.for_each(&mut visit, &self.hasher);
    }

    fn snapshot(&self) -> Self::Snapshot
    where
        C::Key: Clone,
        C::Value: Clone,
    {
        self.enter();
        self.core.snapshot(&self.hasher)
    }

    #[allow(
        refining_impl_trait,
        reason = "the iterator has a name, so that `&SafeMap` can implement `IntoIterator`"
    )]
    fn iter(&self) -> Iter<'_, C, S>
    where
        C::Key: Clone,
        C::Value: Clone,
    {
        Iter {
            map: self.enter(),
            cursor: self.core.cursor(),
            core: &self.core,
            hasher: &self.hasher,
            chunk: Vec::new(),
        }
    }
}

/// The iterator of [`ConcurrentMap::iter`] on a [`SafeMap`]: owned clones, one part of the map
/// copied at a time, no lock held between calls to `next`.
pub struct Iter<'a, C: Core, S> {
    core: &'a C,
    /// The map's hasher, for a core that finds where an entry lies by hashing its key again.
    hasher: &'a S,
    map: MapId,
    cursor: C::Cursor,
    /// The copies of the current part not yet handed out. Its buffer is kept for the next part,
    /// so a copy taken under a lock seldom allocates (and never faults in fresh pages) there.
    chunk: Vec<(C::Key, C::Value)>,
}

impl<C: Core, S: BuildHasher> Iterator for Iter<'_, C, S>
where
    C::Key: Clone,
    C::Value: Clone,
{
    type Item = (C::Key, C::Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // From the back: a part's entries come in no promised order.
            if let Some(entry) = self.chunk.pop() {
                return Some(entry);
            }
            // Copying the next part takes a lock: refuse it inside a closure of this map.
            reentry::check(self.map);
            if !self
                .core
                .next_chunk(&mut self.cursor, &mut self.chunk, self.hasher)
            {
                return None;
            }
        }
    }
}

/// `for (k, v) in map`: every entry, moved out of the map (cloned only where a `SnapshotMap`'s
/// snapshot still shares it).
///
/// ```
/// use safemap::ShardedMap;
/// let m = ShardedMap::from([(1, "a".to_string()), (2, "b".to_string())]);
/// let mut entries: Vec<(u32, String)> = m.into_iter().collect();
/// entries.sort();
/// assert_eq!(entries, [(1, "a".to_string()), (2, "b".to_string())]);
/// ```
impl<C: Core, S> IntoIterator for SafeMap<C, S> {
    type Item = (C::Key, C::Value);
    type IntoIter = IntoIter<C>;

    fn into_iter(self) -> IntoIter<C> {
        IntoIter(self.core.into_entries())
    }
}

/// The entries of a [`SafeMap`], moved out of it: its `IntoIterator`.
pub struct IntoIter<C: Core>(C::IntoIter);

impl<C: Core> Iterator for IntoIter<C> {
    type Item = (C::Key, C::Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// `for (k, v) in &map`: [`ConcurrentMap::iter`].
impl<'a, C, S> IntoIterator for &'a SafeMap<C, S>
where
    C: Core,
    C::Key: Clone,
    C::Value: Clone,
    S: BuildHasher + Clone,
{
    type Item = (C::Key, C::Value);
    type IntoIter = Iter<'a, C, S>;

    fn into_iter(self) -> Iter<'a, C, S> {
        ConcurrentMap::iter(self)
    }
}

impl<C, S> DeadlineMap<C::Key, C::Value> for SafeMap<C, S>
where
    C: BoundedWait,
    S: BuildHasher + Clone,
{
    fn try_get_until<Q>(&self, key: &Q, deadline: Instant) -> Result<Option<C::Value>, TimedOut<()>>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
        C::Value: Clone,
    {
        self.enter();
        (self.core).get_until(deadline, self.probe(key), C::Value::clone)
    }

    fn try_insert_until(
        &self,
        key: C::Key,
        value: C::Value,
        deadline: Instant,
    ) -> Result<Option<C::Value>, TimedOut<(C::Key, C::Value)>> {
        self.insert_waiting(Wait::Until(deadline), key, value)
    }

    fn try_remove_until<Q>(
        &self,
        key: &Q,
        deadline: Instant,
    ) -> Result<Option<C::Value>, TimedOut<()>>
    where
        Q: Hash + Equivalent<C::Key> + ?Sized,
    {
        self.remove_waiting(Wait::Until(deadline), key, |_, _| true)
    }

    fn try_compute_until(
        &self,
        key: C::Key,
        update: impl FnOnce(Option<&C::Value>) -> Action<C::Value>,
        deadline: Instant,
    ) -> Result<Option<C::Value>, TimedOut<C::Key>> {
        self.compute_waiting(Wait::Until(deadline), key, update)
    }
}

/// Formats the entries as readers see them, one shard at a time.
impl<C, S> fmt::Debug for SafeMap<C, S>
where
    C: Core,
    C::Key: fmt::Debug,
    C::Value: fmt::Debug,
    S: BuildHasher,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.enter();
        let mut out = f.debug_map();
        self.core.debug_entries(&mut out, &self.hasher);
        out.finish()
    }
}

impl<C: Default, S: Default> Default for SafeMap<C, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

/// Stores every entry; a `SnapshotMap` publishes them all as one version.
impl<C: Core, S: BuildHasher> Extend<(C::Key, C::Value)> for SafeMap<C, S> {
    fn extend<I: IntoIterator<Item = (C::Key, C::Value)>>(&mut self, entries: I) {
        (&*self).extend(entries);
    }
}

/// Extends a shared map, for instance one behind an `Arc`, as `Extend` for the map does.
///
/// ```
/// use std::sync::Arc;
/// use safemap::{ConcurrentMap, ShardedMap};
/// let shared = Arc::new(ShardedMap::new());
/// (&*shared).extend([(1, "a"), (2, "b")]);
/// assert_eq!(shared.len(), 2);
/// ```
impl<C: Core, S: BuildHasher> Extend<(C::Key, C::Value)> for &SafeMap<C, S> {
    fn extend<I: IntoIterator<Item = (C::Key, C::Value)>>(&mut self, entries: I) {
        self.enter();
        self.core.extend(entries, &self.hasher);
    }
}

/// ```
/// use safemap::{ConcurrentMap, LockedMap};
/// let m = LockedMap::from([(1, "one"), (2, "two")]);
/// assert_eq!(m.get(&2), Some("two"));
/// ```
/// With the default hasher, as std's `HashMap::from` (a map built some other way can
/// `extend` from an array).
impl<C: Core, const N: usize> From<[(C::Key, C::Value); N]> for SafeMap<C> {
    fn from(entries: [(C::Key, C::Value); N]) -> Self {
        entries.into_iter().collect()
    }
}

/// A map with the same entries, copied at one instant (O(1) for a `SnapshotMap`, which shares
/// its current version) and the same hasher and shard count.
///
/// ```
/// use safemap::{ConcurrentMap, ShardedMap};
/// let a = ShardedMap::from([(1, 10)]);
/// let b = a.clone();
/// a.insert(2, 20);
/// assert_eq!((a.len(), b.len()), (2, 1));
/// ```
impl<C, S> Clone for SafeMap<C, S>
where
    C: Core,
    C::Key: Clone,
    C::Value: Clone,
    S: BuildHasher + Clone,
{
    fn clone(&self) -> Self {
        self.enter();
        SafeMap::from_parts(self.core.duplicate(&self.hasher), self.hasher.clone())
    }
}

/// Maps are equal when they hold the same entries; each side is read from a snapshot, so from
/// one instant of its own.
///
/// ```
/// use safemap::{LockedMap, ShardedMap};
/// assert_eq!(ShardedMap::from([(1, 'a'), (2, 'b')]), ShardedMap::from([(2, 'b'), (1, 'a')]));
/// assert_ne!(LockedMap::from([(1, 'a')]), LockedMap::from([(1, 'b')]));
/// ```
impl<C, S> PartialEq for SafeMap<C, S>
where
    C: Core,
    C::Key: Clone,
    C::Value: Clone + PartialEq,
    S: BuildHasher + Clone,
{
    fn eq(&self, other: &Self) -> bool {
        let (mine, theirs) = (self.snapshot(), other.snapshot());
        mine.len() == theirs.len() && mine.iter().all(|(k, v)| theirs.get(k) == Some(v))
    }
}

impl<C: Core, S> Eq for SafeMap<C, S>
where
    Self: PartialEq<Self>,
    C::Value: Eq,
{
}

// A panic in a user closure leaves every strategy consistent and usable, with no lock poisoned
// and nothing leaked or dropped twice (`tests/panic.rs` runs that for every strategy), so a map
// may be used again after `catch_unwind`; what a panicking closure did to a value before it
// panicked (see `ConcurrentMap::update`) is the user's to judge, as with std's `HashMap`.
impl<C, S> UnwindSafe for SafeMap<C, S>
where
    C: Core,
    C::Key: UnwindSafe,
    C::Value: UnwindSafe,
    S: UnwindSafe,
{
}

impl<C, S> RefUnwindSafe for SafeMap<C, S>
where
    C: Core,
    C::Key: RefUnwindSafe,
    C::Value: RefUnwindSafe,
    S: RefUnwindSafe,
{
}

impl<C: Core, S: BuildHasher + Default> FromIterator<(C::Key, C::Value)> for SafeMap<C, S> {
    fn from_iter<I: IntoIterator<Item = (C::Key, C::Value)>>(entries: I) -> Self {
        let mut map = Self::default();
        map.extend(entries);
        map
    }
}
