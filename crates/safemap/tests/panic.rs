//! Panics in user code (closures, `Hash`, `Eq`) leave every strategy consistent and usable, with
//! nothing poisoned, and every value dropped exactly once (counted by a drop ledger).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{DropLedger, NO_TRIGGER, Touchy, Tracked, for_every_strategy, within};
use safemap::{Action, ConcurrentMap};

fn must_panic<R>(work: impl FnOnce() -> R) {
    assert!(
        catch_unwind(AssertUnwindSafe(work)).is_err(),
        "expected a panic"
    );
}

/// The map's contents through every read path agree with each other.
fn assert_consistent<K: Clone, V: Clone>(map: &impl ConcurrentMap<K, V>) -> usize {
    let mut visited = 0;
    map.for_each(|_, _| visited += 1);
    assert_eq!(map.len(), visited);
    assert_eq!(safemap::MapSnapshot::len(&map.snapshot()), visited);
    visited
}

for_every_strategy! {
    fn filled(ledger: &Arc<DropLedger>, n: u64) -> Map<u64, Tracked> {
        let map = Map::new();
        for k in 0..n {
            map.insert(k, ledger.value());
        }
        map
    }

    /// A map of keys `0..n` that panic when hashed or compared once `trigger` holds their id,
    /// with values from `ledger`.
    fn touchy(n: u64) -> (Arc<DropLedger>, Arc<AtomicU64>, Map<Touchy, Tracked>) {
        let ledger = DropLedger::new();
        let trigger = Arc::new(AtomicU64::new(NO_TRIGGER));
        let map = Map::new();
        for id in 0..n {
            map.insert(Touchy::new(id, &trigger), ledger.value());
        }
        (ledger, trigger, map)
    }

    #[test]
    fn panicking_closures_change_nothing() {
        let ledger = DropLedger::new();
        let map = filled(&ledger, 64);

        must_panic(|| map.compute(1, |_| panic!("compute on a present key")));
        must_panic(|| map.compute(100, |_| -> Action<Tracked> { panic!("compute on an absent key") }));
        must_panic(|| map.get_or_insert_with(101, || panic!("make")));
        must_panic(|| map.get_with(&2, |_| panic!("read")));
        must_panic(|| map.remove_if(&3, |_, _| panic!("predicate")));
        let mut calls = 0;
        must_panic(|| map.retain(|_, _| { calls += 1; if calls == 10 { panic!("retain") } true }));

        assert_eq!(assert_consistent(&map), 64);
        assert!((0..64).all(|k| map.contains_key(&k)));
        assert!(!map.contains_key(&100) && !map.contains_key(&101));
        // Nothing is poisoned: every kind of lock is free again, checked under a deadline.
        let fresh = ledger.value();
        let map = within(10, move || {
            map.insert(1, map.get_or_insert_with(101, || fresh));
            map.compute(2, |_| Action::Remove);
            map.clear();
            map
        })
        .unwrap();
        drop(map);
        assert_eq!(ledger.double_drops(), 0);
        assert_eq!(ledger.live(), 0, "every value dropped exactly once");
    }

    #[test]
    fn panicking_retain_drops_each_removed_value_once() {
        let ledger = DropLedger::new();
        let map = filled(&ledger, 200);
        let mut calls = 0;
        must_panic(|| map.retain(|k, _| {
            calls += 1;
            if calls == 150 { panic!("retain") }
            k % 2 == 0
        }));
        let left = assert_consistent(&map);
        // Odd keys seen before the panic are gone, or none are where retain publishes at once.
        assert!((100..=200).contains(&left), "kept {left}");
        drop(map);
        assert_eq!(ledger.double_drops(), 0);
        assert_eq!(ledger.live(), 0);
    }

    #[test]
    fn panicking_hash_during_growth_leaves_map_usable() {
        let (ledger, trigger, map) = touchy(8);
        // Key 3 is inside; from now on hashing it panics, which only growth does.
        trigger.store(3, Ordering::Relaxed);
        let mut next = 8;
        // Every growth moves or splits the part holding key 3: with ordinary tables the first
        // comes within hundreds of inserts, and with the smallest leaves (`--cfg safemap_stress`,
        // `SAFEMAP_STRESS=1`, `build.rs`) key 3's leaf splits again within about a hundred. A
        // map that never rehashes grows about ten times over the whole bound. (It was 200,000:
        // 5.8 s of this suite for `ScalableMap` alone, 200,000 inserts that found nothing more.)
        let panicked = (0..20_000).any(|_| {
            next += 1;
            let key = Touchy::new(next, &trigger);
            let value = ledger.value();
            catch_unwind(AssertUnwindSafe(|| map.insert(key, value))).is_err()
        });
        // A map whose entries keep their hashes moves them without hashing them again.
        if <Map<Touchy, Tracked> as ConcurrentMap<_, _>>::CONSISTENCY.rehashes_keys {
            assert!(panicked, "no growth rehashed key 3");
        } else {
            assert!(!panicked, "growth hashed a stored key");
        }
        trigger.store(NO_TRIGGER, Ordering::Relaxed);

        let left = assert_consistent(&map);
        map.insert(Touchy::new(1_000_000, &trigger), ledger.value());
        assert_eq!(map.len(), left + 1);
        assert!(map.contains_key(&Touchy::new(1_000_000, &trigger)));
        drop(map);
        assert_eq!(ledger.double_drops(), 0);
        assert_eq!(ledger.live(), 0);
    }

    /// `shrink_to_fit` hashes the keys it keeps where it rebuilds a table (or, in `SnapshotMap`,
    /// folds thinned-out trie nodes into one leaf); a `Hash` that panics there leaves the map
    /// as it was, every value still dropped once.
    #[test]
    fn panicking_hash_during_shrink_leaves_map_whole() {
        // Enough keys that a SnapshotMap's trie has branches to fold.
        let (ledger, trigger, map) = touchy(2_000);
        map.retain(|key, _| key.id < 10);
        trigger.store(5, Ordering::Relaxed);
        let _ = catch_unwind(AssertUnwindSafe(|| map.shrink_to_fit()));
        trigger.store(NO_TRIGGER, Ordering::Relaxed);
        assert_eq!(assert_consistent(&map), 10);
        assert!((0..10).all(|id| map.contains_key(&Touchy::new(id, &trigger))));
        map.shrink_to_fit();
        assert_eq!(assert_consistent(&map), 10);
        drop(map);
        assert_eq!(ledger.double_drops(), 0);
        assert_eq!(ledger.live(), 0);
    }

    #[test]
    fn panicking_eq_during_lookup_leaves_map_usable() {
        let (ledger, trigger, map) = touchy(32);
        trigger.store(5, Ordering::Relaxed);
        let probe = Touchy { id: 5, trigger: Arc::new(AtomicU64::new(NO_TRIGGER)) };
        must_panic(|| map.get(&probe));
        must_panic(|| map.compute(probe.clone(), |_| Action::Remove));
        must_panic(|| map.insert(probe.clone(), ledger.value()));
        trigger.store(NO_TRIGGER, Ordering::Relaxed);
        assert_eq!(assert_consistent(&map), 32);
        assert!(map.remove(&probe).is_some());
        drop(map);
        assert_eq!(ledger.double_drops(), 0);
        assert_eq!(ledger.live(), 0);
    }

    #[test]
    fn every_value_dropped_exactly_once_across_operations() {
        let ledger = DropLedger::new();
        let map: Map<u64, Tracked> = Map::new();
        for k in 0..500 {
            map.insert(k % 97, ledger.value());
            map.get_or_insert_with(k % 89, || ledger.value());
            map.compute(k % 83, |v| match v {
                Some(_) if k % 3 == 0 => Action::Remove,
                Some(_) => Action::Set(ledger.value()),
                None => Action::Keep,
            });
            map.remove_if(&(k % 79), |_, v| v.id % 2 == 0);
            let _ = map.get(&(k % 71));
            if k % 50 == 0 {
                let _ = map.snapshot();
                map.for_each(|_, _| {});
                map.retain(|key, _| key % 5 != 0);
            }
            if k == 250 {
                map.clear();
            }
        }
        assert!(ledger.made() > 1000);
        drop(map);
        assert_eq!(ledger.double_drops(), 0);
        assert_eq!(ledger.live(), 0);
    }
}

thread_local! {
    /// Whether the first [`TouchyPod::FIRST`] keys' odd ones panic when hashed on this thread.
    static TOUCHY_POD_TRIGGERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A plain-old-data key whose `Hash` panics, on the thread that set the trigger, for every odd
/// id below [`TouchyPod::FIRST`]: [`Touchy`] for the strategies that hold only plain old data.
/// Many keys, so that a chain being moved holds a key that hashes before one that panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
struct TouchyPod(u64);

impl TouchyPod {
    const FIRST: u64 = 64;
}

// SAFETY: one `u64`, so every bit pattern is a value and there is no padding.
unsafe impl bytemuck::Zeroable for TouchyPod {}
// SAFETY: as above; `Copy` and `'static`.
unsafe impl bytemuck::Pod for TouchyPod {}

impl std::hash::Hash for TouchyPod {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if TOUCHY_POD_TRIGGERED.get() && self.0 < Self::FIRST && self.0 % 2 == 1 {
            panic!("TouchyPod::hash triggered on {}", self.0);
        }
        self.0.hash(state);
    }
}

/// The same property on every strategy, `pod` ones included, with keys that are plain old data.
mod plain_keys {
    crate::common::for_every_strategy_on_plain_data! {
        use std::panic::{AssertUnwindSafe, catch_unwind};

        use safemap::ConcurrentMap;

        use super::super::{TOUCHY_POD_TRIGGERED, TouchyPod, assert_consistent};
        use crate::common::within;

        /// Stored keys whose `Hash` panics while the map grows: every call that returned left
        /// its entry, a call that panicked left its entry or none, the map stays consistent, and
        /// once the keys hash again growth goes on and nothing is lost or doubled.
        #[test]
        fn panicking_hash_during_growth_loses_nothing() {
            within(60, || {
                let map: Map<TouchyPod, u64> = Map::new();
                let mut stored: Vec<u64> = (0..TouchyPod::FIRST).collect();
                for &id in &stored {
                    map.insert(TouchyPod(id), id);
                }
                TOUCHY_POD_TRIGGERED.set(true);
                let mut panics = 0;
                for id in TouchyPod::FIRST..200_000 {
                    let inserted = catch_unwind(AssertUnwindSafe(|| map.insert(TouchyPod(id), id)));
                    if inserted.is_ok() || map.contains_key(&TouchyPod(id)) {
                        stored.push(id);
                    }
                    if inserted.is_err() {
                        panics += 1;
                        if panics == 20 {
                            break;
                        }
                    }
                }
                let rehashes = <Map<TouchyPod, u64> as ConcurrentMap<_, _>>::CONSISTENCY.rehashes_keys;
                assert_eq!(panics > 0, rehashes, "{panics} inserts panicked");
                TOUCHY_POD_TRIGGERED.set(false);

                assert_eq!(assert_consistent(&map), stored.len());
                for &id in &stored {
                    assert_eq!(map.get(&TouchyPod(id)), Some(id), "key {id}");
                }
                map.reserve(10_000);
                for id in 1_000_000..1_010_000 {
                    map.insert(TouchyPod(id), id);
                }
                assert_eq!(assert_consistent(&map), stored.len() + 10_000);
                assert!(stored.iter().all(|&id| map.get(&TouchyPod(id)) == Some(id)));
            })
            .unwrap();
        }
    }
}
