//! [`ConcurrentMap`] for anything that points to a map: `&M`, `Arc<M>`, `Box<M>`. Generic code
//! that takes `impl ConcurrentMap` then accepts a map shared through an `Arc` as it is, without
//! a wrapper. Every method forwards to the map pointed to, with its guarantees. (Being blanket
//! over `Deref`, it leaves no room for a `ConcurrentMap` impl of one's own on a type that derefs
//! to a map; wrap such a type in a struct without `Deref` instead.)

use equivalent::Equivalent;
use std::hash::Hash;
use std::ops::Deref;

use crate::map::{Action, ConcurrentMap, Consistency};

/// ```
/// use std::sync::Arc;
/// use safemap::{ConcurrentMap, ShardedMap};
///
/// fn count(map: impl ConcurrentMap<&'static str, u32>, word: &'static str) {
///     map.compute(word, |n| safemap::Action::Set(n.map_or(1, |n| n + 1)));
/// }
/// let words = Arc::new(ShardedMap::new());
/// count(Arc::clone(&words), "hello");
/// count(&*words, "hello");
/// assert_eq!(words.get("hello"), Some(2));
/// ```
impl<P, K, V> ConcurrentMap<K, V> for P
where
    P: Deref,
    P::Target: ConcurrentMap<K, V>,
{
    type Snapshot = <P::Target as ConcurrentMap<K, V>>::Snapshot;

    const CONSISTENCY: Consistency = <P::Target as ConcurrentMap<K, V>>::CONSISTENCY;

    fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: Clone,
    {
        (**self).get(key)
    }

    fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        (**self).get_with(key, read)
    }

    fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        (**self).contains_key(key)
    }

    fn insert(&self, key: K, value: V) -> Option<V> {
        (**self).insert(key, value)
    }

    fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        (**self).remove(key)
    }

    fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        (**self).remove_if(key, remove)
    }

    fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        (**self).get_or_insert_with(key, make)
    }

    fn try_get_or_insert_with<E>(&self, key: K, make: impl FnOnce() -> Result<V, E>) -> Result<V, E>
    where
        V: Clone,
    {
        (**self).try_get_or_insert_with(key, make)
    }

    fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        (**self).update(key, change)
    }

    fn update_or_insert_with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> R {
        (**self).update_or_insert_with(key, make, change)
    }

    fn compute(&self, key: K, update: impl FnOnce(Option<&V>) -> Action<V>) -> Option<V> {
        (**self).compute(key, update)
    }

    fn retain(&self, keep: impl FnMut(&K, &V) -> bool) {
        (**self).retain(keep)
    }

    fn clear(&self) {
        (**self).clear()
    }

    fn len(&self) -> usize {
        (**self).len()
    }

    fn shard_lengths(&self) -> Vec<usize> {
        (**self).shard_lengths()
    }

    fn capacity(&self) -> usize {
        (**self).capacity()
    }

    fn reserve(&self, additional: usize) {
        (**self).reserve(additional)
    }

    fn shrink_to_fit(&self) {
        (**self).shrink_to_fit()
    }

    fn for_each(&self, visit: impl FnMut(&K, &V))
    where
        K: Clone,
        V: Clone,
    {
        (**self).for_each(visit)
    }

    fn iter(&self) -> impl Iterator<Item = (K, V)> + '_
    where
        K: Clone,
        V: Clone,
    {
        (**self).iter()
    }

    fn snapshot(&self) -> Self::Snapshot
    where
        K: Clone,
        V: Clone,
    {
        (**self).snapshot()
    }
}
