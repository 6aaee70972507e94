//! [`ReadMostlyMap`]: Go's `sync.Map` method set, on shards of two-copy hash tables.
//!
//! Readers use one copy of their key's shard with no lock and no write to any shared cache line;
//! the shard's writer changes the other copy, switches readers over, waits for the last reader of
//! the old copy, and repeats the change there ([`raw::left_right`](crate::raw::left_right)).
//! Writes cost two hash-table operations and a short wait, never a copy of the map: there is no
//! promotion step, so no O(n) cliff when new keys arrive, a resize rehashes one shard only, and
//! values are stored inline, not boxed.

use equivalent::Equivalent;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash};

use crate::front::SafeMap;
use crate::map::{ConcurrentMap, DefaultHashBuilder};
use crate::raw::left_right::LeftRight;
use crate::reentry;

/// A map for read-mostly data with Go's `sync.Map` API: reads never take a lock and never
/// write a shared cache line, so they scale with cores; writes are serialized per shard (as in
/// [`ShardedMap`](crate::ShardedMap)) and cost about two ordinary hash-map writes.
///
/// It keeps two copies of every entry (twice the memory of [`ShardedMap`](crate::ShardedMap)),
/// which is how readers avoid locks: a writer changes the copy no one reads, then switches.
/// Each shard is made by its first write; an empty map holds a pointer per shard and a cache
/// line per reader slot.
/// A writer waits for readers still in the old copy, so a [`get_with`](ConcurrentMap::get_with)
/// closure that blocks holds writers up like a read lock would.
///
/// # Coming from `sync.Map`
///
/// | Go | `ReadMostlyMap` |
/// |---|---|
/// | `Load(k)` | [`get`](ConcurrentMap::get), or [`get_with`](ConcurrentMap::get_with) without a clone |
/// | `Store(k, v)` | [`insert`](ConcurrentMap::insert) |
/// | `LoadOrStore(k, v)` | [`get_or_insert`](Self::get_or_insert), or [`get_or_insert_with`](ConcurrentMap::get_or_insert_with) to build the value only when needed |
/// | `LoadAndDelete(k)` | [`remove`](ConcurrentMap::remove) |
/// | `Delete(k)` | [`remove`](ConcurrentMap::remove) |
/// | `Swap(k, v)` | [`insert`](ConcurrentMap::insert), which returns the previous value |
/// | `CompareAndSwap(k, old, new)` | [`compare_and_swap`](Self::compare_and_swap) |
/// | `CompareAndDelete(k, old)` | [`compare_and_remove`](Self::compare_and_remove) |
/// | `Range(f)` | [`for_each`](ConcurrentMap::for_each), over a consistent copy |
/// | `Clear()` | [`clear`](ConcurrentMap::clear) |
/// | (none) | [`len`](ConcurrentMap::len), exact |
///
/// Unlike `sync.Map`, values keep their type (no `interface{}` boxing), `len` exists, and a new
/// key never triggers an O(n) promotion.
///
/// ```
/// use safemap::{ConcurrentMap, ReadMostlyMap};
///
/// let sessions: ReadMostlyMap<u64, String> = ReadMostlyMap::new();
/// assert_eq!(sessions.get_or_insert(7, "alice".to_string()), ("alice".to_string(), false));
/// assert_eq!(sessions.get_or_insert(7, "bob".to_string()), ("alice".to_string(), true));
/// assert!(sessions.compare_and_swap(&7, &"alice".to_string(), "carol".to_string()));
/// assert!(!sessions.compare_and_remove(&7, &"alice".to_string()));
/// assert_eq!(sessions.get(&7).as_deref(), Some("carol"));
/// assert_eq!(sessions.len(), 1);
/// ```
pub type ReadMostlyMap<K, V, S = DefaultHashBuilder> = SafeMap<LeftRight<K, V>, S>;

impl<K, V, S> ReadMostlyMap<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher + Clone,
{
    /// Go's `LoadOrStore`: the value for `key` and `true` if it was present, else stores `value`
    /// and returns it with `false`.
    pub fn get_or_insert(&self, key: K, value: V) -> (V, bool) {
        let made = self.get_or_make("get_or_insert", key, || Ok::<_, Infallible>(value));
        let Ok((stored, inserted)) = made;
        (stored, !inserted)
    }

    /// Go's `CompareAndSwap`: stores `new` for `key` if its value equals `current`; returns
    /// whether it did. Calling back into the same map from `PartialEq` panics.
    pub fn compare_and_swap<Q>(&self, key: &Q, current: &V, new: V) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: PartialEq,
    {
        let id = self.enter();
        let matches = |v: &V| reentry::run_inside(id, "compare_and_swap", || v == current);
        self.core().replace_if(self.probe(key), matches, new)
    }

    /// Go's `CompareAndDelete`: removes `key` if its value equals `current`; returns whether it
    /// did.
    pub fn compare_and_remove<Q>(&self, key: &Q, current: &V) -> bool
    where
        Q: Hash + Equivalent<K> + ?Sized,
        V: PartialEq,
    {
        self.remove_if(key, |_, v| v == current).is_some()
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::map::Action;
    use crate::observe::{Access, Observed, Observer, Operation};

    /// A writer that must wait for a reader to leave the copy it changes reports that wait to
    /// the access hook, as a lock wait.
    #[test]
    fn a_writer_waiting_for_readers_reports_the_wait() {
        #[derive(Default)]
        struct Waits(parking_lot::Mutex<Vec<(Operation, Duration)>>);
        impl Observer for Waits {
            fn on_access(&self, _: Access) {}
            fn on_lock_wait(&self, operation: Operation, waited: Duration) {
                self.0.lock().push((operation, waited));
            }
        }
        let hold = Duration::from_millis(60);
        let map = Observed::new(ReadMostlyMap::<u32, u32>::new(), Waits::default());
        map.insert(1, 1);
        let (reading_tx, reading_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let map = &map;
            s.spawn(move || {
                map.inner().get_with(&1, |_| {
                    reading_tx.send(()).unwrap();
                    std::thread::sleep(hold);
                });
            });
            reading_rx.recv().unwrap();
            map.insert(1, 2);
        });
        let waits = map.observer().0.lock();
        assert_eq!(waits.len(), 1, "{waits:?}");
        assert_eq!(waits[0].0, Operation::Insert);
        assert!(waits[0].1 >= hold / 2, "waited only {:?}", waits[0].1);
    }

    type AddKey = fn(&ReadMostlyMap<u64, u64>, u64);

    #[test]
    fn every_way_of_adding_a_key_keeps_both_copies_probe_hints_current() {
        let adders: [AddKey; 3] = [
            |map, key| assert_eq!(map.insert(key, key), None),
            |map, key| assert_eq!(map.get_or_insert_with(key, || key), key),
            |map, key| assert_eq!(map.compute(key, |_| Action::Set(key)), None),
        ];
        for add in adders {
            let map = ReadMostlyMap::new();
            for key in 0..5000 {
                add(&map, key);
            }
            assert!(map.core().hints_current());
            assert!(map.clone().core().hints_current(), "a clone's hints");
        }
    }
}
