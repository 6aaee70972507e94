//! The API contract, run for every strategy: the steps in `common/contract_steps.rs` (written
//! against `TryConcurrentMap`, so `safemap-redis` runs the same text on `RedisMap`), then what
//! only an in-memory map offers: borrowed-key lookups, iteration by value, the std traits, shared
//! use through `&`, `Arc` and `Box`, hashers, and how a running closure blocks others.

mod common;

use std::hash::BuildHasherDefault;

use common::{for_every_pod_strategy, for_every_strategy, within};
use safemap::{Action, Blocks, ConcurrentMap, MapSnapshot};

fn sorted<K: Ord + Clone, V: Clone>(snapshot: &impl MapSnapshot<K, V>) -> Vec<(K, V)> {
    let mut entries: Vec<_> = snapshot
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

// The same steps on the strategies that hold only plain old data, with text as plain old data.
for_every_pod_strategy! {
    crate::contract_tests!(crate::common::contract_steps, || ((), Map::<u32, crate::common::PodText>::new()), remote: false);
}

for_every_strategy! {
    use std::sync::Arc;

    crate::contract_tests!(crate::common::contract_steps, || ((), Map::<u32, String>::new()), remote: false);

    #[test]
    fn lookups_accept_borrowed_keys() {
        let m: Map<String, Vec<u8>> = Map::new();
        m.insert("alpha".to_string(), vec![1, 2]);
        assert_eq!(m.get("alpha"), Some(vec![1, 2]));
        assert_eq!(m.get_with("alpha", Vec::len), Some(2));
        assert!(m.contains_key("alpha"));
        assert_eq!(m.remove_if("alpha", |k, _| k.len() == 99), None);
        assert_eq!(m.remove("alpha"), Some(vec![1, 2]));
    }

    /// A form of the key of the caller's own, equivalent to it and hashing as it does, finds and
    /// changes the entry, in the map and in its snapshot; an absent one finds nothing.
    #[test]
    fn lookups_accept_equivalent_forms() {
        #[derive(Hash)]
        struct Pair<'a>(&'a str, &'a str);
        impl safemap::Equivalent<(String, String)> for Pair<'_> {
            fn equivalent(&self, key: &(String, String)) -> bool {
                self.0 == key.0 && self.1 == key.1
            }
        }
        let m: Map<(String, String), u32> = Map::new();
        m.insert(("ana".to_string(), "phone".to_string()), 7);
        assert_eq!(m.get(&Pair("ana", "phone")), Some(7));
        assert_eq!(m.get(&Pair("ana", "laptop")), None);
        assert_eq!(m.update(&Pair("ana", "phone"), |v| { *v += 1; *v }), Some(8));
        assert_eq!(m.snapshot().get(&Pair("ana", "phone")), Some(&8));
        assert!(!m.snapshot().contains_key(&Pair("bo", "phone")));
        assert_eq!(m.remove_if(&Pair("ana", "phone"), |_, v| *v == 0), None);
        assert_eq!(m.remove(&Pair("ana", "phone")), Some(8));
        assert!(!m.contains_key(&Pair("ana", "phone")));
    }

    /// Replacing a present key's value keeps the stored key, as std's `insert` does: a key equal
    /// by `Eq` but spelled differently shows which one stays.
    #[test]
    fn replacing_a_value_keeps_the_stored_key() {
        #[derive(Clone, Debug)]
        struct Spelled(&'static str);
        impl PartialEq for Spelled {
            fn eq(&self, other: &Self) -> bool {
                self.0.eq_ignore_ascii_case(other.0)
            }
        }
        impl Eq for Spelled {}
        impl std::hash::Hash for Spelled {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.to_ascii_lowercase().hash(state);
            }
        }
        let m: Map<Spelled, u32> = Map::new();
        m.insert(Spelled("Alpha"), 1);
        assert_eq!(m.insert(Spelled("ALPHA"), 2), Some(1));
        m.compute(Spelled("alpha"), |_| Action::Set(3));
        let entries: Vec<(Spelled, u32)> = m.iter().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].0.0, entries[0].1), ("Alpha", 3));
    }

    /// `&map` iterates like `map.iter()`, and `keys`/`values` yield their halves.
    #[test]
    fn maps_iterate_by_reference_by_key_and_by_value() {
        let m: Map<u32, String> = (0..1000).map(|i| (i, i.to_string())).collect();
        let mut seen = vec![0u8; 1000];
        for (k, v) in &m {
            assert_eq!(v, k.to_string());
            seen[k as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n == 1));
        let mut keys: Vec<u32> = m.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..1000).collect::<Vec<_>>());
        assert_eq!(m.values().map(|v| v.len()).sum::<usize>(), (0..1000).map(|i: u32| i.to_string().len()).sum());
    }

    /// By value, the entries move out: no value is cloned, each comes out once, and each is
    /// dropped once.
    #[test]
    fn into_iter_moves_the_entries_out() {
        let ledger = common::DropLedger::new();
        let m: Map<u32, common::Tracked> = (0..500).map(|i| (i, ledger.value())).collect();
        m.insert(7, ledger.value());
        m.remove(&8);
        let made = ledger.made();
        let mut keys: Vec<u32> = m.into_iter().map(|(k, _value)| k).collect();
        assert_eq!(ledger.made(), made, "into_iter cloned a value");
        keys.sort_unstable();
        assert_eq!(keys, (0..500).filter(|k| *k != 8).collect::<Vec<_>>());
        assert_eq!((ledger.live(), ledger.double_drops()), (0, 0));
    }

    /// Snapshots clone, and iterate by reference, by key and by value.
    #[test]
    fn snapshots_clone_and_iterate_like_collections() {
        let m: Map<u32, u32> = (0..50).map(|i| (i, i)).collect();
        let view = m.snapshot();
        m.insert(1, 999);
        let copy = view.clone();
        drop(view);
        assert_eq!(sorted(&copy), (0..50).map(|i| (i, i)).collect::<Vec<_>>());
        assert_eq!((&copy).into_iter().count(), 50);
        assert_eq!(copy.keys().copied().max(), Some(49));
        assert_eq!(copy.values().sum::<u32>(), (0..50).sum());
        let mut visited = 0;
        for (k, v) in &copy {
            assert_eq!(k, v);
            visited += 1;
        }
        assert_eq!(visited, 50);
    }

    #[test]
    fn std_traits() {
        let mut m: Map<u32, u32> = [(1, 10), (2, 20)].into_iter().collect();
        m.extend([(3, 30), (1, 11)]);
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&1), Some(11));
        let shown = format!("{m:?}");
        assert!(shown.contains("1: 11") && shown.contains("3: 30"), "{shown}");
        let empty: Map<u32, u32> = Default::default();
        assert_eq!(format!("{empty:?}"), "{}");
        assert!(format!("{:?}", m.snapshot()).contains("2: 20"));
    }

    #[test]
    fn clones_compare_and_convert_like_std_maps() {
        let m: Map<u32, String> = Map::from([(1, "a".to_string()), (2, "b".to_string())]);
        let copy = m.clone();
        assert_eq!(copy, m);
        assert_eq!(copy.shard_lengths().len(), m.shard_lengths().len());
        m.insert(3, "c".into());
        copy.update(&1, |v| v.push('!'));
        assert_ne!(copy, m, "a clone shares nothing mutable with its source");
        assert_eq!(copy.get(&1).as_deref(), Some("a!"));
        assert_eq!((m.get(&1).as_deref(), m.len(), copy.len()), (Some("a"), 3, 2));
        // Equal entries make equal maps, whatever order or history built them.
        let rebuilt: Map<u32, String> = [(2, "b"), (1, "a!")].map(|(k, v)| (k, v.to_string())).into();
        assert_eq!(copy, rebuilt);
        rebuilt.insert(9, "z".into());
        assert_ne!(copy, rebuilt);
        // A clone is a working map of its own.
        copy.insert(5, "e".into());
        assert_eq!(copy.get(&5).as_deref(), Some("e"));
        assert!(!m.contains_key(&5));
    }

    #[test]
    fn a_shared_map_extends_and_serves_generic_code() {
        fn bump(map: impl ConcurrentMap<u32, u32>, key: u32) -> Option<u32> {
            map.compute(key, |n| Action::Set(n.map_or(1, |n| n + 1)))
        }
        let shared: Arc<Map<u32, u32>> = Arc::new(Map::new());
        (&*shared).extend([(1, 10), (2, 20)]);
        assert_eq!(bump(Arc::clone(&shared), 1), Some(10));
        assert_eq!(bump(&*shared, 1), Some(11));
        assert_eq!(bump(Box::new(Arc::clone(&shared)), 3), None);
        assert_eq!(shared.get(&1), Some(12));
        assert_eq!(shared.len(), 3);
        let declared = <Arc<Map<u32, u32>> as ConcurrentMap<u32, u32>>::CONSISTENCY;
        assert_eq!(declared, <Map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY);
    }

    /// A map is `RefUnwindSafe`, so `catch_unwind` takes a closure that uses it, and after the
    /// panic the map is whole.
    #[test]
    fn a_map_is_usable_after_catch_unwind() {
        fn unwind_safe<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe>(_: &T) {}
        let m: Map<u32, u32> = (0..10).map(|i| (i, i)).collect();
        unwind_safe(&m);
        let caught = std::panic::catch_unwind(|| {
            m.compute(3, |_| panic!("the closure failed"));
        });
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(|| m.insert(11, 11));
        assert_eq!(caught.ok(), Some(None));
        assert_eq!((m.get(&3), m.len()), (Some(3), 11));
    }

    #[test]
    fn custom_hasher_is_used() {
        // A constant hasher puts every key in one bucket chain: lookups must still be exact.
        #[derive(Default)]
        struct Constant;
        impl std::hash::Hasher for Constant {
            fn finish(&self) -> u64 { 42 }
            fn write(&mut self, _: &[u8]) {}
        }
        let m: Map<u32, u32, BuildHasherDefault<Constant>> = Map::with_hasher(Default::default());
        for i in 0..64 {
            m.insert(i, i + 1);
        }
        assert!((0..64).all(|i| m.get(&i) == Some(i + 1)));
        assert_eq!(m.snapshot().get(&63), Some(&64));
    }

    #[test]
    fn default_hasher_is_randomly_seeded() {
        use std::hash::BuildHasher;
        let a: Map<u32, u32> = Map::new();
        let b: Map<u32, u32> = Map::new();
        let differs = (0..16u64).any(|k| a.hasher().hash_one(k) != b.hasher().hash_one(k));
        assert!(differs, "two maps hashed 16 keys identically");
    }

    /// A closure running on key 1 holds up readers and writers exactly as `CONSISTENCY` declares,
    /// both of key 1 and of a key in another shard (where the map has more than one).
    #[test]
    fn a_running_closure_blocks_what_it_declares() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::mpsc;
        use std::time::{Duration, Instant};

        let declared = <Map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY;
        let m: Arc<Map<u32, u32>> = Arc::new((0..64).map(|i| (i, i)).collect());
        let shard_of = |key: u32| {
            let before = m.shard_lengths();
            m.remove(&key);
            let after = m.shard_lengths();
            m.insert(key, key);
            (0..before.len()).find(|&i| before[i] != after[i]).unwrap()
        };
        let home = shard_of(1);
        let other = (2..64).find(|&k| shard_of(k) != home).unwrap_or(2);
        let same_shard = shard_of(other) == home;
        for key in [1, other] {
            for (blocks, write) in [(declared.closure_blocks_readers, false), (declared.closure_blocks_writers, true)] {
                let blocked = match blocks {
                    Blocks::Nothing => false,
                    Blocks::Key => key == 1,
                    Blocks::Shard => key == 1 || same_shard,
                    Blocks::Map => true,
                };
                let (held_tx, held_rx) = mpsc::channel();
                let (release_tx, release_rx) = mpsc::channel::<()>();
                let holder = {
                    let m = Arc::clone(&m);
                    std::thread::spawn(move || {
                        m.compute(1, |v| {
                            held_tx.send(()).unwrap();
                            release_rx.recv().unwrap();
                            Action::Set(*v.unwrap())
                        });
                    })
                };
                held_rx.recv().unwrap();
                let done = Arc::new(AtomicBool::new(false));
                let caller = {
                    let (m, done) = (Arc::clone(&m), Arc::clone(&done));
                    std::thread::spawn(move || {
                        if write {
                            m.insert(key, key);
                        } else {
                            assert_eq!(m.get(&key), Some(key));
                        }
                        done.store(true, Ordering::SeqCst);
                    })
                };
                let what = format!("{} of key {key} (shard {home} holds key 1)", if write { "a write" } else { "a read" });
                if blocked {
                    std::thread::sleep(Duration::from_millis(100));
                    assert!(!done.load(Ordering::SeqCst), "{what} did not wait, though declared {blocks:?}");
                } else {
                    let until = Instant::now() + Duration::from_secs(10);
                    while !done.load(Ordering::SeqCst) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    assert!(done.load(Ordering::SeqCst), "{what} waited, though declared {blocks:?}");
                }
                release_tx.send(()).unwrap();
                holder.join().unwrap();
                caller.join().unwrap();
            }
        }
    }

    /// What `get_with` returns holds nothing of the map, and a future holding a result across
    /// an `.await` is `Send` (the shared steps show the other operations hold nothing either).
    #[test]
    fn results_hold_nothing_across_an_await() {
        fn assert_send<T: Send>(_: &T) {}
        let m: Arc<Map<u32, String>> = Arc::new(Map::new());
        m.insert(1, "x".into());
        let length = m.get_with(&1, |v| v.len());
        let future = {
            let m = Arc::clone(&m);
            async move {
                let v = m.get(&1);
                std::future::ready(()).await;
                v
            }
        };
        assert_send(&future);
        let writer = Arc::clone(&m);
        within(10, move || writer.insert(1, "z".into())).unwrap();
        assert_eq!(length, Some(1));
        assert_eq!(m.get(&1).as_deref(), Some("z"));
    }
}

/// Iteration while the map's layout changes, on every strategy, `pod` ones included.
mod iteration_across_layouts {
    crate::common::for_every_strategy_on_plain_data! {
        use safemap::ConcurrentMap;

        /// A key present throughout an iteration comes out exactly once, even when the map
        /// gives back most of its room between two steps: the iterator then stands inside a
        /// part of the smaller layout, whose entries before that point it has handed out.
        #[test]
        fn each_lasting_key_comes_out_once_across_a_shrink() {
            const ENTRIES: u64 = 20_000;
            let lasting = |k: &u64| k % 16 == 0;
            let m: Map<u64, u64> = (0..ENTRIES).map(|i| (i, i)).collect();
            let mut seen = vec![0u32; ENTRIES as usize];
            let mut iter = m.iter();
            for (k, _) in iter.by_ref().take(ENTRIES as usize / 4) {
                seen[k as usize] += 1;
            }
            m.retain(|k, _| lasting(k));
            m.shrink_to_fit();
            for (k, _) in iter {
                seen[k as usize] += 1;
            }
            for k in (0..ENTRIES).filter(lasting) {
                assert_eq!(seen[k as usize], 1, "key {k} came out {} times", seen[k as usize]);
            }
            assert!(seen.iter().all(|&n| n <= 1), "a key came out twice");
        }
    }
}
