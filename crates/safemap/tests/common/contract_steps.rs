//! The map contract, written once against `TryConcurrentMap`: each step takes a fresh, empty
//! `u32 → V` map, `V` a [`Text`] (`String`, or text as plain old data for maps that take only
//! that), and fails on the first broken promise. `tests/conformance.rs` runs every
//! step on every strategy, and `safemap-redis`'s `tests/contract.rs` includes this file by path
//! and runs them on `RedisMap` in both layouts, so a local map and a remote one answer to one
//! text. (What only an in-memory map offers, such as borrowed-key lookups, `into_iter` by value
//! and the std traits, stays in `conformance.rs`.)

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use safemap::fallible::TryConcurrentMap;
use safemap::{Action, Blocks, MapSnapshot, Once, WholeMap};

/// The map type every step runs on.
pub trait ContractMap<V>: TryConcurrentMap<u32, V, Error: Debug> + Send + Sync + 'static {}
impl<V, M: TryConcurrentMap<u32, V, Error: Debug> + Send + Sync + 'static> ContractMap<V> for M {}

/// The values the steps store: short texts.
pub trait Text: Clone + Debug + PartialEq + Send + Sync + 'static {
    fn of(text: &str) -> Self;
    fn as_str(&self) -> &str;
    fn push(&mut self, c: char);
}

impl Text for String {
    fn of(text: &str) -> Self {
        text.to_string()
    }

    fn as_str(&self) -> &str {
        self
    }

    fn push(&mut self, c: char) {
        String::push(self, c);
    }
}

type Entries<V> = BTreeMap<u32, V>;

fn s<V: Text>(text: &str) -> V {
    V::of(text)
}

fn entries<V: Text>(map: &impl ContractMap<V>) -> Entries<V> {
    let mut all = Entries::new();
    for entry in map.iter() {
        let (k, v) = entry.unwrap();
        assert!(all.insert(k, v).is_none(), "iter yielded key {k} twice");
    }
    all
}

/// Runs `work` on `threads` threads at once and waits for them. Each is joined by hand: the
/// scope's own wait is uninstrumented std, which TSAN cannot see order the threads' accesses
/// before the caller's next ones; `pthread_join` it sees.
fn on_threads(threads: usize, work: impl Fn() + Sync) {
    std::thread::scope(|scope| {
        let running: Vec<_> = (0..threads).map(|_| scope.spawn(&work)).collect();
        running
            .into_iter()
            .for_each(|thread| thread.join().unwrap());
    });
}

/// Runs `work` on a thread of its own and fails if it has not finished within `seconds` (a
/// deadlock then fails the test instead of hanging it; the stuck thread is left behind).
fn finishes_within<T: Send + 'static>(
    seconds: u64,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || done_tx.send(work()).unwrap());
    done_rx
        .recv_timeout(Duration::from_secs(seconds))
        .unwrap_or_else(|_| panic!("did not finish within {seconds}s: likely a deadlock"))
}

/// Point operations: their results, and the change (or none) each leaves behind.
pub fn point_operations<V: Text>(map: &impl ContractMap<V>) {
    assert!(map.is_empty().unwrap());
    assert_eq!(map.get(&1).unwrap(), None);
    assert_eq!(map.insert(1, s("a")).unwrap(), None);
    assert_eq!(map.insert(2, s("two")).unwrap(), None);
    assert_eq!(map.insert(1, s("b")).unwrap(), Some(s("a")));
    assert_eq!(map.get(&1).unwrap(), Some(s("b")));
    assert!(map.contains_key(&1).unwrap());
    assert!(!map.contains_key(&3).unwrap());
    assert_eq!(map.len().unwrap(), 2);
    assert_eq!(map.remove(&2).unwrap(), Some(s("two")));
    assert_eq!(map.remove(&2).unwrap(), None);
    assert_eq!(map.len().unwrap(), 1);

    // `remove_if` removes only what its predicate accepts, and sees the key and the value.
    assert_eq!(map.remove_if(&1, |_, v| v.as_str() == "a").unwrap(), None);
    assert_eq!(map.get(&1).unwrap(), Some(s("b")));
    assert_eq!(
        map.remove_if(&1, |k, v| *k == 1 && v.as_str() == "b")
            .unwrap(),
        Some(s("b"))
    );
    assert_eq!(map.remove_if(&1, |_, _| true).unwrap(), None);
    assert!(map.is_empty().unwrap());

    // `get_or_insert_with` keeps what is there; `make` runs only for an absent key.
    let runs = AtomicUsize::new(0);
    let make = |text: &str| {
        runs.fetch_add(1, Ordering::Relaxed);
        s(text)
    };
    assert_eq!(
        map.get_or_insert_with(3, || make("first")).unwrap(),
        s("first")
    );
    assert_eq!(
        map.get_or_insert_with(3, || make("second")).unwrap(),
        s("first")
    );
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    let failed = map.try_get_or_insert_with(4, || Err::<V, _>("no")).unwrap();
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
        map.try_get_or_insert_with(4, || Err::<V, _>("unused"))
            .unwrap(),
        Ok(s("four"))
    );

    // `compute`: Keep and Remove on an absent key change nothing; Set inserts, then replaces
    // and returns the old value; Keep on a present key returns nothing.
    assert_eq!(
        map.compute(5, |old| {
            assert_eq!(old, None);
            Action::Keep
        })
        .unwrap(),
        None
    );
    assert!(!map.contains_key(&5).unwrap());
    assert_eq!(map.compute(5, |_| Action::Remove).unwrap(), None);
    assert_eq!(
        map.compute(5, |old| Action::Set(s(&format!("{old:?}"))))
            .unwrap(),
        None
    );
    assert_eq!(map.get(&5).unwrap(), Some(s("None")));
    assert_eq!(
        map.compute(5, |old| Action::Set(s(&format!("{old:?}"))))
            .unwrap(),
        Some(s("None"))
    );
    assert_eq!(
        map.compute(5, |old| {
            assert_eq!(old.map(Text::as_str), Some("Some(\"None\")"));
            Action::Keep
        })
        .unwrap(),
        None
    );
    assert_eq!(
        map.compute(5, |_| Action::Remove).unwrap(),
        Some(s("Some(\"None\")"))
    );
    assert_eq!(map.compute(5, |_| Action::Remove).unwrap(), None);
    assert!(!map.contains_key(&5).unwrap());

    // `update` changes a present value only; `update_or_insert_with` runs `f` once, on the
    // value present or on the one `make` built.
    assert_eq!(map.update(&6, |v| v.as_str().len()).unwrap(), None);
    assert!(!map.contains_key(&6).unwrap(), "update does not insert");
    let pushed = map.update_or_insert_with(
        6,
        || s("ab"),
        |v| {
            v.push('c');
            v.as_str().len()
        },
    );
    assert_eq!(pushed.unwrap(), 3);
    assert_eq!(
        map.update(&6, |v| {
            v.push('d');
            v.as_str().len()
        })
        .unwrap(),
        Some(4)
    );
    let pushed = map.update_or_insert_with(
        6,
        || unreachable!("6 is present"),
        |v| {
            v.push('e');
            v.as_str().len()
        },
    );
    assert_eq!(pushed.unwrap(), 5);
    assert_eq!(map.get(&6).unwrap(), Some(s("abcde")));
    assert_eq!(map.len().unwrap(), 3);
}

/// Whole-map operations over more entries than one batch of a remote map's scans: every entry
/// seen once by `iter` and `for_each`, a snapshot frozen at its instant, `retain` and `clear`.
pub fn whole_map_operations<V: Text>(map: &impl ContractMap<V>) {
    assert!(map.is_empty().unwrap());
    assert_eq!(map.iter().count(), 0);
    let want: Entries<V> = (0..1500).map(|i| (i, s(&format!("v{i}")))).collect();
    for (k, v) in &want {
        map.insert(*k, v.clone()).unwrap();
    }
    assert_eq!(map.len().unwrap(), 1500);
    assert_eq!(entries(map), want);
    assert_eq!(map.iter().take(3).count(), 3, "an iterator may stop early");
    let mut visited = Entries::new();
    map.for_each(|k, v| {
        assert!(
            visited.insert(*k, v.clone()).is_none(),
            "for_each visited {k} twice"
        )
    })
    .unwrap();
    assert_eq!(visited, want);

    let view = map.snapshot().unwrap();
    map.insert(5000, s("later")).unwrap();
    map.remove(&0).unwrap();
    map.insert(1, s("changed")).unwrap();
    assert_eq!(view.len(), 1500);
    assert_eq!(view.get(&0).map(Text::as_str), Some("v0"));
    assert_eq!(view.get(&1).map(Text::as_str), Some("v1"));
    assert!(!view.contains_key(&5000));
    let frozen: Entries<V> = view.iter().map(|(k, v)| (*k, v.clone())).collect();
    assert_eq!(frozen, want);

    map.retain(|k, v| k % 3 == 0 && v.as_str() != "later")
        .unwrap();
    let kept = entries(map);
    let expected: Entries<V> = want
        .into_iter()
        .filter(|(k, _)| k % 3 == 0 && *k != 0)
        .collect();
    assert_eq!(
        kept, expected,
        "multiples of 3 from 3 to 1497; 0 was removed, 5000 is refused"
    );
    assert_eq!(map.len().unwrap(), 499);
    map.clear().unwrap();
    assert!(map.is_empty().unwrap());
    assert_eq!(map.get(&3).unwrap(), None);
    assert!(entries(map).is_empty());
    map.insert(7, s("after")).unwrap();
    assert_eq!(map.len().unwrap(), 1);
}

/// With no write under way, `len` is exact whatever a map declares: an atomic count is the size
/// at an instant of the call, and a weak one or an estimate lies between the smallest and largest
/// size during it, which are then equal. (Under concurrent writes the checker judges `len`.)
pub fn a_quiescent_len_is_exact<V: Text>(map: &impl ContractMap<V>) {
    let mut present = std::collections::BTreeSet::new();
    for i in 0..1200u32 {
        map.insert(i, s(&i.to_string())).unwrap();
        present.insert(i);
        if i % 3 == 0 {
            map.remove(&(i / 2)).unwrap();
            present.remove(&(i / 2));
        }
        if i % 397 == 0 {
            assert_eq!(map.len().unwrap(), present.len(), "after {i}");
        }
    }
    assert_eq!(
        entries(map)
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        present
    );
    map.retain(|k, _| k % 2 == 0).unwrap();
    assert_eq!(map.len().unwrap(), map.snapshot().unwrap().len());
    assert_eq!(
        map.len().unwrap(),
        present.iter().filter(|k| *k % 2 == 0).count()
    );
    map.clear().unwrap();
    assert_eq!(map.len().unwrap(), 0);
}

/// Many threads incrementing one counter: every increment lands (a read-then-write map loses
/// some), and each closure ran once per committed increment.
pub fn compute_is_atomic_across_threads<V: Text>(map: &impl ContractMap<V>) {
    const THREADS: usize = 8;
    const EACH: usize = 60;
    let runs = AtomicUsize::new(0);
    on_threads(THREADS, || {
        for _ in 0..EACH {
            map.compute(0, |n| {
                runs.fetch_add(1, Ordering::Relaxed);
                let n: usize = n.map_or(0, |n| n.as_str().parse().unwrap());
                Action::Set(s(&(n + 1).to_string()))
            })
            .unwrap();
        }
    });
    assert_eq!(map.get(&0).unwrap(), Some(s(&(THREADS * EACH).to_string())));
    assert_eq!(runs.load(Ordering::Relaxed), THREADS * EACH);
}

/// Threads racing to initialize the same absent keys: one `make` per key, and every thread gets
/// the value that one made.
pub fn init_runs_once_per_key<V: Text>(map: &impl ContractMap<V>) {
    const KEYS: u32 = 50;
    let makes = AtomicUsize::new(0);
    on_threads(6, || {
        for key in 0..KEYS {
            let value = map
                .get_or_insert_with(key, || {
                    makes.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                    s(&format!("made-{key}"))
                })
                .unwrap();
            assert_eq!(value, s(&format!("made-{key}")));
        }
    });
    assert_eq!(makes.load(Ordering::Relaxed), KEYS as usize);
}

/// The iterator holds nothing between calls to `next`: another thread's writes finish while it
/// is paused, the loop itself may write to the map, and keys present throughout are each seen
/// once, whatever the declared consistency.
pub fn iteration_blocks_no_writer_between_steps<V: Text, M: ContractMap<V>>(map: Arc<M>) {
    for k in 0..256 {
        map.insert(k, s(&k.to_string())).unwrap();
    }
    let mut entries = map.iter();
    let (first, _) = entries
        .next()
        .expect("a full map has a first entry")
        .unwrap();
    let writer = Arc::clone(&map);
    finishes_within(10, move || {
        for k in 0..256 {
            writer.insert(k, s("rewritten")).unwrap();
        }
        writer.insert(1000, s("new")).unwrap();
    });
    let mut seen = vec![0u8; 256];
    seen[first as usize] += 1;
    for entry in entries {
        let (k, _) = entry.unwrap();
        map.insert(k + 2000, s("from the loop")).unwrap();
        if k < 256 {
            seen[k as usize] += 1;
        }
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "times each key present throughout was seen: {seen:?}"
    );
}

/// `for_each` holds nothing while its closure runs: a writer on another thread, to the key being
/// visited or a new one, finishes while the closure waits for it.
pub fn for_each_does_not_block_writers<V: Text, M: ContractMap<V>>(map: Arc<M>) {
    for k in 0..256 {
        map.insert(k, s(&k.to_string())).unwrap();
    }
    let mut visited = 0;
    map.for_each(|k, _| {
        // Keys added during the call may or may not be seen; those present throughout are seen
        // exactly once.
        visited += usize::from(*k < 256);
        if *k % 64 == 0 {
            let (writer, key) = (Arc::clone(&map), *k);
            finishes_within(10, move || {
                writer.insert(key, s("rewritten")).unwrap();
                writer.insert(key + 1000, s("new")).unwrap();
            });
        }
    })
    .unwrap();
    assert_eq!(visited, 256);
    assert_eq!(map.len().unwrap(), 260);
}

/// No guard leaves a call: after each operation returns, another thread's writes to the same
/// keys, and a `clear`, complete at once, while the results are still held.
pub fn no_guard_escapes_a_call<V: Text, M: ContractMap<V>>(map: Arc<M>) {
    map.insert(1, s("x")).unwrap();
    let held = (
        map.get(&1).unwrap(),
        map.get_or_insert_with(1, || s("")).unwrap(),
        map.compute(2, |_| Action::Set(s("y"))).unwrap(),
        map.update(&1, |v| v.as_str().len()).unwrap(),
        map.snapshot().unwrap(),
        map.iter().next(),
    );
    let writer = Arc::clone(&map);
    finishes_within(10, move || {
        writer.insert(1, s("z")).unwrap();
        writer.insert(2, s("w")).unwrap();
        writer.compute(1, |_| Action::Remove).unwrap();
        writer.clear().unwrap();
    });
    assert_eq!(held.0.as_ref().map(Text::as_str), Some("x"));
    assert_eq!(held.1.as_str(), "x");
    assert_eq!((held.2, held.3), (None, Some(1)));
    assert_eq!(
        held.4.len(),
        2,
        "the snapshot kept its entries through the clear"
    );
    assert!(held.5.is_some());
    assert!(map.is_empty().unwrap());
}

/// What the map declares is what the steps above and the checker rely on: in-memory maps run a
/// closure once and read whole-map snapshots atomically; a remote map says its closures run
/// once within a lease, and its `for_each` is as consistent as its snapshot.
pub fn declares_its_contract<V: Text>(map: &impl ContractMap<V>, remote: bool) {
    let declared = map.consistency();
    assert_eq!(declared.once == Once::WithinLease, remote);
    assert_ne!(
        declared.closure_blocks_writers,
        Blocks::Nothing,
        "compute runs once, so it holds up writers of its key"
    );
    if remote {
        assert_eq!(declared.for_each, declared.snapshot);
    } else {
        assert_eq!(declared.snapshot, WholeMap::Atomic);
    }
}

/// Expands one `#[test]` per step into the enclosing module. `$open()` gives a fresh map as
/// `(keep, map)`, where `keep` (a server, or `()`) lives until the test ends; `$remote` says
/// whether the map is remote.
#[macro_export]
macro_rules! contract_tests {
    ($($steps:ident)::+, $open:expr, remote: $remote:expr) => {
        use $($steps)::+ as steps_under_test;
        $crate::contract_tests!(@each $open, map, (&map):
            point_operations, whole_map_operations, a_quiescent_len_is_exact,
            compute_is_atomic_across_threads, init_runs_once_per_key);
        $crate::contract_tests!(@each $open, map, (std::sync::Arc::new(map)):
            iteration_blocks_no_writer_between_steps, for_each_does_not_block_writers,
            no_guard_escapes_a_call);
        $crate::contract_tests!(@each $open, map, (&map, $remote): declares_its_contract);
    };
    (@each $open:expr, $map:ident, $args:tt: $($step:ident),+) => {
        $(
            #[test]
            fn $step() {
                let (_keep, $map) = $open();
                steps_under_test::$step $args;
            }
        )+
    };
}
