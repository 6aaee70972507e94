//! The cores the strategies are made of.
//!
//! Lock-based, shared by `LockedMap` and `ShardedMap`: [`table`] is one lock over one hashbrown
//! table, [`shards`] routes keys over a power-of-two set of them, [`snapshot`] is their frozen
//! copy, and [`probe_hint`] lets an operation start loading a table's cache lines before it takes
//! the table's lock. Versioned, for `SnapshotMap`: [`trie`] is a persistent hash trie with flat
//! leaves, and [`published`] publishes one immutable version at a time to readers that pay one
//! atomic load.

pub(crate) mod left_right;
pub(crate) mod probe_hint;
pub(crate) mod published;
pub(crate) mod shards;
pub(crate) mod snapshot;
pub(crate) mod table;
pub(crate) mod thread_index;
pub(crate) mod trie;

/// Implements [`ConcurrentMap`](crate::ConcurrentMap), [`DeadlineMap`](crate::DeadlineMap) and the std traits (`Debug`, `Default`,
/// `FromIterator`, `Extend`) for a strategy that wraps a [`ShardSet`](shards::ShardSet) in a field
/// named `core` and has a `with_hasher` constructor. The strategy supplies its declared
/// consistency; everything else is the shared core.
macro_rules! lock_based_map {
    ($map:ident, $consistency:expr) => {
        impl<K, V, S> $crate::ConcurrentMap<K, V> for $map<K, V, S>
        where
            K: ::std::hash::Hash + Eq,
            S: ::std::hash::BuildHasher + Clone,
        {
            type Snapshot = $crate::TableSnapshot<K, V, S>;

            const CONSISTENCY: $crate::Consistency = $consistency;

            fn get<Q>(&self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
                V: Clone,
            {
                self.core.get_with(key, V::clone)
            }

            fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.core.get_with_user(key, read)
            }

            fn contains_key<Q>(&self, key: &Q) -> bool
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.core.get_with(key, |_| ()).is_some()
            }

            fn insert(&self, key: K, value: V) -> Option<V> {
                self.core.insert(key, value)
            }

            fn remove<Q>(&self, key: &Q) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.core.remove_if(key, |_, _| true)
            }

            fn remove_if<Q>(&self, key: &Q, remove: impl FnOnce(&K, &V) -> bool) -> Option<V>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.core.remove_if_user(key, remove)
            }

            fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
            where
                V: Clone,
            {
                self.core.get_or_insert_with(key, make)
            }

            fn compute(
                &self,
                key: K,
                update: impl FnOnce(Option<&V>) -> $crate::Action<V>,
            ) -> Option<V> {
                self.core.compute(key, update)
            }

            fn retain(&self, keep: impl FnMut(&K, &V) -> bool) {
                self.core.retain(keep)
            }

            fn clear(&self) {
                self.core.clear()
            }

            fn len(&self) -> usize {
                self.core.len()
            }

            fn shard_lengths(&self) -> Vec<usize> {
                self.core.shard_lengths()
            }

            fn for_each(&self, visit: impl FnMut(&K, &V))
            where
                K: Clone,
                V: Clone,
            {
                self.core.for_each(visit)
            }

            fn snapshot(&self) -> Self::Snapshot
            where
                K: Clone,
                V: Clone,
            {
                self.core.snapshot()
            }
        }

        impl<K, V, S> $crate::DeadlineMap<K, V> for $map<K, V, S>
        where
            K: ::std::hash::Hash + Eq,
            S: ::std::hash::BuildHasher + Clone,
        {
            fn try_get_until<Q>(
                &self,
                key: &Q,
                deadline: ::std::time::Instant,
            ) -> Result<Option<V>, $crate::TimedOut<()>>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
                V: Clone,
            {
                self.core.try_get_until(key, deadline)
            }

            fn try_insert_until(
                &self,
                key: K,
                value: V,
                deadline: ::std::time::Instant,
            ) -> Result<Option<V>, $crate::TimedOut<(K, V)>> {
                self.core.try_insert_until(key, value, deadline)
            }

            fn try_remove_until<Q>(
                &self,
                key: &Q,
                deadline: ::std::time::Instant,
            ) -> Result<Option<V>, $crate::TimedOut<()>>
            where
                K: ::std::borrow::Borrow<Q>,
                Q: ::std::hash::Hash + Eq + ?Sized,
            {
                self.core.try_remove_until(key, deadline)
            }

            fn try_compute_until(
                &self,
                key: K,
                update: impl FnOnce(Option<&V>) -> $crate::Action<V>,
                deadline: ::std::time::Instant,
            ) -> Result<Option<V>, $crate::TimedOut<K>> {
                self.core.try_compute_until(key, update, deadline)
            }
        }

        impl<K, V, S> ::std::fmt::Debug for $map<K, V, S>
        where
            K: ::std::hash::Hash + Eq + ::std::fmt::Debug,
            V: ::std::fmt::Debug,
            S: ::std::hash::BuildHasher,
        {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.core.debug_entries(f)
            }
        }

        impl<K, V, S: Default> Default for $map<K, V, S> {
            fn default() -> Self {
                Self::with_hasher(S::default())
            }
        }

        impl<K, V, S> Extend<(K, V)> for $map<K, V, S>
        where
            K: ::std::hash::Hash + Eq,
            S: ::std::hash::BuildHasher,
        {
            fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
                for (k, v) in entries {
                    self.core.insert(k, v);
                }
            }
        }

        impl<K, V, S> FromIterator<(K, V)> for $map<K, V, S>
        where
            K: ::std::hash::Hash + Eq,
            S: ::std::hash::BuildHasher + Default,
        {
            fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
                let mut map = Self::default();
                map.extend(entries);
                map
            }
        }
    };
}
pub(crate) use lock_based_map;

/// The lookups of [`ConcurrentMap`](crate::ConcurrentMap) (`get`, `get_with`, `contains_key`)
/// and `remove`, for a strategy whose reads go through a private
/// `fn read<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>` (which runs the
/// re-entrancy check) and whose `remove_if` is implemented. Expands inside the trait impl.
macro_rules! reads_through_read {
    () => {
        fn get<Q>(&self, key: &Q) -> Option<V>
        where
            K: ::std::borrow::Borrow<Q>,
            Q: ::std::hash::Hash + Eq + ?Sized,
            V: Clone,
        {
            self.read(key, V::clone)
        }

        fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
        where
            K: ::std::borrow::Borrow<Q>,
            Q: ::std::hash::Hash + Eq + ?Sized,
        {
            let id = self.id();
            self.read(key, |v| {
                $crate::reentry::run_inside(id, "get_with", || read(v))
            })
        }

        fn contains_key<Q>(&self, key: &Q) -> bool
        where
            K: ::std::borrow::Borrow<Q>,
            Q: ::std::hash::Hash + Eq + ?Sized,
        {
            self.read(key, |_| ()).is_some()
        }

        fn remove<Q>(&self, key: &Q) -> Option<V>
        where
            K: ::std::borrow::Borrow<Q>,
            Q: ::std::hash::Hash + Eq + ?Sized,
        {
            self.remove_if(key, |_, _| true)
        }
    };
}
pub(crate) use reads_through_read;
