//! The map contract, written once against `TryConcurrentMap` and run on every in-memory strategy
//! (through the blanket impl) and on `RedisMap` in both layouts, each against a server of its
//! own.

mod support;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};

use safemap::fallible::TryConcurrentMap;
use safemap::{Action, MapSnapshot, Once, WholeMap};

type Entries = BTreeMap<u32, String>;

fn entries<M: TryConcurrentMap<u32, String>>(map: &M) -> Entries
where
    M::Error: Debug,
{
    map.iter().map(|entry| entry.unwrap()).collect()
}

fn point_operations<M: TryConcurrentMap<u32, String>>(map: &M)
where
    M::Error: Debug,
{
    let s = |x: &str| x.to_string();
    assert_eq!(map.get(&1).unwrap(), None);
    assert_eq!(map.insert(1, s("a")).unwrap(), None);
    assert_eq!(map.insert(1, s("b")).unwrap(), Some(s("a")));
    assert_eq!(map.get(&1).unwrap(), Some(s("b")));
    assert!(map.contains_key(&1).unwrap());
    assert!(!map.contains_key(&2).unwrap());
    assert_eq!(map.remove(&2).unwrap(), None);
    assert_eq!(map.remove_if(&1, |_, v| v == "a").unwrap(), None);
    assert_eq!(
        map.remove_if(&1, |k, v| *k == 1 && v == "b").unwrap(),
        Some(s("b"))
    );
    assert_eq!(map.get(&1).unwrap(), None);

    assert_eq!(map.get_or_insert_with(3, || s("made")).unwrap(), "made");
    assert_eq!(
        map.get_or_insert_with(3, || unreachable!()).unwrap(),
        "made"
    );
    let failed = map
        .try_get_or_insert_with(4, || Err::<String, _>("no"))
        .unwrap();
    assert_eq!(failed, Err("no"));
    assert!(
        !map.contains_key(&4).unwrap(),
        "a failed init stores nothing"
    );
    assert_eq!(
        map.try_get_or_insert_with(4, || Ok::<_, ()>(s("four")))
            .unwrap(),
        Ok(s("four"))
    );

    assert_eq!(
        map.compute(5, |old| Action::Set(format!("{old:?}")))
            .unwrap(),
        None
    );
    assert_eq!(map.get(&5).unwrap(), Some(s("None")));
    assert_eq!(map.compute(5, |_| Action::Keep).unwrap(), None);
    assert_eq!(
        map.compute(5, |_| Action::Set(s("x"))).unwrap(),
        Some(s("None"))
    );
    assert_eq!(map.compute(5, |_| Action::Remove).unwrap(), Some(s("x")));
    assert_eq!(map.compute(5, |_| Action::Remove).unwrap(), None);
    assert!(!map.contains_key(&5).unwrap());

    assert_eq!(map.update(&6, |v| v.len()).unwrap(), None);
    assert!(!map.contains_key(&6).unwrap(), "update does not insert");
    assert_eq!(
        map.update_or_insert_with(
            6,
            || s("ab"),
            |v| {
                v.push('c');
                v.len()
            }
        )
        .unwrap(),
        3
    );
    assert_eq!(
        map.update(&6, |v| {
            v.push('d');
            v.len()
        })
        .unwrap(),
        Some(4)
    );
    assert_eq!(map.get(&6).unwrap(), Some(s("abcd")));
}

fn whole_map_operations<M: TryConcurrentMap<u32, String>>(map: &M)
where
    M::Error: Debug,
{
    assert!(map.is_empty().unwrap());
    // More than one batch of the server's scans.
    let want: Entries = (0..1500).map(|i| (i, format!("v{i}"))).collect();
    for (k, v) in &want {
        map.insert(*k, v.clone()).unwrap();
    }
    assert_eq!(map.len().unwrap(), 1500);
    assert_eq!(entries(map), want);
    let mut visited = Entries::new();
    map.for_each(|k, v| assert!(visited.insert(*k, v.clone()).is_none()))
        .unwrap();
    assert_eq!(visited, want);

    let view = map.snapshot().unwrap();
    map.insert(5000, "later".into()).unwrap();
    map.remove(&0).unwrap();
    assert_eq!(view.len(), 1500);
    assert_eq!(view.get(&0).map(String::as_str), Some("v0"));
    assert!(view.get(&5000).is_none());

    map.retain(|k, _| k % 3 == 0).unwrap();
    let kept = entries(map);
    assert!(kept.keys().all(|k| k % 3 == 0));
    assert_eq!(
        kept.len(),
        499,
        "multiples of 3 from 3 to 1497; 5000 is not one"
    );
    map.clear().unwrap();
    assert_eq!(map.len().unwrap(), 0);
    assert!(entries(map).is_empty());
}

/// Many threads incrementing one counter: every increment lands (a read-then-write map loses
/// some), and each closure ran once per committed increment.
fn compute_is_atomic_across_threads<M: TryConcurrentMap<u32, String> + Sync>(map: &M)
where
    M::Error: Debug,
{
    const THREADS: usize = 8;
    const EACH: usize = 60;
    let runs = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..EACH {
                    map.compute(0, |n| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        let n: usize = n.map_or(0, |n| n.parse().unwrap());
                        Action::Set((n + 1).to_string())
                    })
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(map.get(&0).unwrap(), Some((THREADS * EACH).to_string()));
    assert_eq!(runs.load(Ordering::Relaxed), THREADS * EACH);
}

/// Threads racing to initialize the same absent keys: one `make` per key.
fn init_runs_once_per_key<M: TryConcurrentMap<u32, String> + Sync>(map: &M)
where
    M::Error: Debug,
{
    const KEYS: u32 = 50;
    let makes = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                for key in 0..KEYS {
                    let value = map
                        .get_or_insert_with(key, || {
                            makes.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            format!("made-{key}")
                        })
                        .unwrap();
                    assert_eq!(value, format!("made-{key}"));
                }
            });
        }
    });
    assert_eq!(makes.load(Ordering::Relaxed), KEYS as usize);
}

fn declares_its_contract<M: TryConcurrentMap<u32, String>>(map: &M, remote: bool) {
    let declared = map.consistency();
    assert_eq!(declared.once == Once::WithinLease, remote);
    assert_ne!(declared.closure_blocks_writers, safemap::Blocks::Nothing);
    if remote {
        // `for_each` visits a snapshot, so it is as consistent as one.
        assert_eq!(declared.for_each, declared.snapshot);
    } else {
        assert_eq!(declared.snapshot, WholeMap::Atomic);
    }
}

support::for_every_map! {
    #[test]
    fn point_operations() {
        let (_server, map) = open_map();
        crate::point_operations(&map);
    }

    #[test]
    fn whole_map_operations() {
        let (_server, map) = open_map();
        crate::whole_map_operations(&map);
    }

    #[test]
    fn compute_is_atomic_across_threads() {
        let (_server, map) = open_map();
        crate::compute_is_atomic_across_threads(&map);
    }

    #[test]
    fn init_runs_once_per_key() {
        let (_server, map) = open_map();
        crate::init_runs_once_per_key(&map);
    }

    #[test]
    fn declares_its_contract() {
        let (server, map) = open_map();
        crate::declares_its_contract(&map, server.is_some());
    }
}
