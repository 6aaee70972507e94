//! [`TryConcurrentMap`]: the map contract for maps that can fail, such as a map kept on a
//! server, and the blanket implementation that puts every in-memory strategy behind it.
//!
//! Generic code written against `TryConcurrentMap` runs unchanged on a local strategy (whose
//! error type is [`Infallible`]) and on a remote map such as `safemap-redis`'s `RedisMap`:
//!
//! ```
//! use safemap::fallible::TryConcurrentMap;
//! use safemap::{Action, ShardedMap};
//!
//! /// Counts a visit and returns the new count, on whatever map the caller keeps.
//! fn visit<M: TryConcurrentMap<String, u64>>(hits: &M, page: &str) -> Result<u64, M::Error> {
//!     hits.compute(page.to_string(), |n| Action::Set(n.map_or(1, |n| n + 1)))?;
//!     Ok(hits.get(&page.to_string())?.unwrap_or(0))
//! }
//!
//! let local: ShardedMap<String, u64> = ShardedMap::new();
//! assert_eq!(visit(&local, "home"), Ok(1));
//! assert_eq!(visit(&local, "home"), Ok(2));
//! ```
//!
//! The methods carry the names of [`ConcurrentMap`]'s, so that generic code reads the same. For
//! that reason this trait is not re-exported at the crate root: a module that imports both traits
//! and calls a method on an in-memory map must say which one it means
//! (`ConcurrentMap::get(&map, &key)`).
//!
//! Lookups take `&K` rather than a borrowed form: a remote map finds a key by its encoding, and a
//! borrowed form need not encode as the key does.

use std::convert::Infallible;
use std::hash::Hash;
use std::ops::Deref;

use crate::front::SafeMap;
use crate::map::{Action, ConcurrentMap, Consistency, MapSnapshot};
use crate::observe::Observed;

/// A concurrent map whose operations can fail, each returning `Result<_, Self::Error>`.
///
/// The contract is [`ConcurrentMap`]'s, method by method, with the consistency declared by
/// [`consistency`](Self::consistency). A call that returns an error has either taken effect
/// entirely or not at all; which one may be unknown to the caller when the connection was lost
/// after the request was sent (the implementation's error says so).
pub trait TryConcurrentMap<K, V> {
    /// Why an operation failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The view [`snapshot`](Self::snapshot) returns.
    type Snapshot: MapSnapshot<K, V>;

    /// What this map guarantees for each operation. For an in-memory strategy, its
    /// [`ConcurrentMap::CONSISTENCY`]; a remote map's depends on how it was built.
    fn consistency(&self) -> Consistency;

    /// [`ConcurrentMap::get`].
    fn get(&self, key: &K) -> Result<Option<V>, Self::Error>
    where
        V: Clone;

    /// [`ConcurrentMap::contains_key`].
    fn contains_key(&self, key: &K) -> Result<bool, Self::Error>;

    /// [`ConcurrentMap::insert`].
    fn insert(&self, key: K, value: V) -> Result<Option<V>, Self::Error>;

    /// [`ConcurrentMap::remove`].
    fn remove(&self, key: &K) -> Result<Option<V>, Self::Error>;

    /// [`ConcurrentMap::remove_if`].
    fn remove_if(
        &self,
        key: &K,
        remove: impl FnOnce(&K, &V) -> bool,
    ) -> Result<Option<V>, Self::Error>;

    /// [`ConcurrentMap::get_or_insert_with`]: by default,
    /// [`try_get_or_insert_with`](Self::try_get_or_insert_with) with a `make` that cannot fail.
    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V, Self::Error>
    where
        V: Clone,
    {
        let made = self.try_get_or_insert_with(key, || Ok::<_, Infallible>(make()))?;
        Ok(made.unwrap_or_else(|never| match never {}))
    }

    /// [`ConcurrentMap::try_get_or_insert_with`]: the outer error is the map's, the inner one
    /// `make`'s.
    fn try_get_or_insert_with<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Result<V, E>, Self::Error>
    where
        V: Clone;

    /// [`ConcurrentMap::update`].
    fn update<R>(
        &self,
        key: &K,
        change: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, Self::Error>;

    /// [`ConcurrentMap::update_or_insert_with`].
    fn update_or_insert_with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> Result<R, Self::Error>;

    /// [`ConcurrentMap::compute`].
    fn compute(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
    ) -> Result<Option<V>, Self::Error>;

    /// [`ConcurrentMap::retain`].
    fn retain(&self, keep: impl FnMut(&K, &V) -> bool) -> Result<(), Self::Error>;

    /// [`ConcurrentMap::clear`].
    fn clear(&self) -> Result<(), Self::Error>;

    /// [`ConcurrentMap::len`].
    fn len(&self) -> Result<usize, Self::Error>;

    /// [`ConcurrentMap::is_empty`].
    fn is_empty(&self) -> Result<bool, Self::Error> {
        Ok(self.len()? == 0)
    }

    /// [`ConcurrentMap::for_each`].
    fn for_each(&self, visit: impl FnMut(&K, &V)) -> Result<(), Self::Error>
    where
        K: Clone,
        V: Clone;

    /// [`ConcurrentMap::iter`]: an error ends the iteration after it is yielded.
    fn iter(&self) -> impl Iterator<Item = Result<(K, V), Self::Error>>
    where
        K: Clone,
        V: Clone;

    /// [`ConcurrentMap::snapshot`].
    fn snapshot(&self) -> Result<Self::Snapshot, Self::Error>
    where
        K: Clone,
        V: Clone;
}

mod sealed {
    /// The in-memory maps: every strategy, any of them observed, any map wrapped in
    /// [`Local`](super::Local), and a pointer (`&M`, `Arc<M>`, `Box<M>`) to one.
    ///
    /// The blanket impl below is bounded by this rather than by `ConcurrentMap` alone: another
    /// crate may implement `ConcurrentMap<ItsOwnKey, V>` for any type, a remote map included, so
    /// a blanket over every `ConcurrentMap` would leave no remote map room for its own impl.
    pub trait InMemory {}
}

impl<C, S> sealed::InMemory for SafeMap<C, S> {}
impl<M, O> sealed::InMemory for Observed<M, O> {}
impl<M> sealed::InMemory for Local<M> {}
impl<M: sealed::InMemory + ?Sized> sealed::InMemory for &M {}
impl<M: sealed::InMemory + ?Sized> sealed::InMemory for std::sync::Arc<M> {}
impl<M: sealed::InMemory + ?Sized> sealed::InMemory for Box<M> {}

/// Any other in-memory [`ConcurrentMap`] (one of your own, say) as a [`TryConcurrentMap`] that
/// never fails. This crate's maps need no wrapper.
///
/// ```
/// use safemap::fallible::{Local, TryConcurrentMap};
/// use safemap::{ConcurrentMap, ShardedMap};
///
/// fn stored<M: TryConcurrentMap<u32, u32>>(map: &M) -> Result<usize, M::Error> {
///     map.len()
/// }
/// // `ShardedMap` stands in for a map type of your own here.
/// let map = Local(ShardedMap::<u32, u32>::new());
/// ConcurrentMap::insert(&*map, 1, 1);
/// assert_eq!(stored(&map), Ok(1));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Local<M>(pub M);

impl<M> Deref for Local<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.0
    }
}

/// Every in-memory map is a `TryConcurrentMap` that never fails.
impl<K, V, M> TryConcurrentMap<K, V> for M
where
    K: Hash + Eq,
    M: sealed::InMemory + ConcurrentMap<K, V>,
{
    type Error = Infallible;
    type Snapshot = M::Snapshot;

    fn consistency(&self) -> Consistency {
        M::CONSISTENCY
    }

    fn get(&self, key: &K) -> Result<Option<V>, Infallible>
    where
        V: Clone,
    {
        Ok(ConcurrentMap::get(self, key))
    }

    fn contains_key(&self, key: &K) -> Result<bool, Infallible> {
        Ok(ConcurrentMap::contains_key(self, key))
    }

    fn insert(&self, key: K, value: V) -> Result<Option<V>, Infallible> {
        Ok(ConcurrentMap::insert(self, key, value))
    }

    fn remove(&self, key: &K) -> Result<Option<V>, Infallible> {
        Ok(ConcurrentMap::remove(self, key))
    }

    fn remove_if(
        &self,
        key: &K,
        remove: impl FnOnce(&K, &V) -> bool,
    ) -> Result<Option<V>, Infallible> {
        Ok(ConcurrentMap::remove_if(self, key, remove))
    }

    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Result<V, Infallible>
    where
        V: Clone,
    {
        Ok(ConcurrentMap::get_or_insert_with(self, key, make))
    }

    fn try_get_or_insert_with<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Result<V, E>, Infallible>
    where
        V: Clone,
    {
        Ok(ConcurrentMap::try_get_or_insert_with(self, key, make))
    }

    fn update<R>(
        &self,
        key: &K,
        change: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, Infallible> {
        Ok(ConcurrentMap::update(self, key, change))
    }

    fn update_or_insert_with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> Result<R, Infallible> {
        Ok(ConcurrentMap::update_or_insert_with(
            self, key, make, change,
        ))
    }

    fn compute(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
    ) -> Result<Option<V>, Infallible> {
        Ok(ConcurrentMap::compute(self, key, update))
    }

    fn retain(&self, keep: impl FnMut(&K, &V) -> bool) -> Result<(), Infallible> {
        ConcurrentMap::retain(self, keep);
        Ok(())
    }

    fn clear(&self) -> Result<(), Infallible> {
        ConcurrentMap::clear(self);
        Ok(())
    }

    fn len(&self) -> Result<usize, Infallible> {
        Ok(ConcurrentMap::len(self))
    }

    fn for_each(&self, visit: impl FnMut(&K, &V)) -> Result<(), Infallible>
    where
        K: Clone,
        V: Clone,
    {
        ConcurrentMap::for_each(self, visit);
        Ok(())
    }

    fn iter(&self) -> impl Iterator<Item = Result<(K, V), Infallible>>
    where
        K: Clone,
        V: Clone,
    {
        ConcurrentMap::iter(self).map(Ok)
    }

    fn snapshot(&self) -> Result<M::Snapshot, Infallible>
    where
        K: Clone,
        V: Clone,
    {
        Ok(ConcurrentMap::snapshot(self))
    }
}
