//! The `rayon` feature, for every strategy: a parallel iteration yields every entry once and
//! really runs on several threads, even alongside a writer; parallel extend and collect store
//! every entry; the bulk operations agree with their sequential forms on both sides of the
//! threshold; and a call back into the map is refused or served as in a sequential call.

mod common;

use common::for_every_strategy_on_plain_data;

for_every_strategy_on_plain_data! {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::thread::{self, ThreadId};
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;
    use rayon::prelude::*;
    use safemap::ConcurrentMap;

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap()
    }

    fn filled(n: u64) -> Map<u64, u64> {
        (0..n).map(|i| (i, i * 3)).collect()
    }

    /// Every key `entries` holds, failing on a key seen twice.
    fn each_once(entries: impl IntoIterator<Item = (u64, u64)>) -> BTreeMap<u64, u64> {
        let mut seen = BTreeMap::new();
        for (k, v) in entries {
            assert!(seen.insert(k, v).is_none(), "key {k} seen twice");
        }
        seen
    }

    #[test]
    fn par_iter_yields_every_entry_once_at_every_size() {
        pool().install(|| {
            for n in [0, 1, 3, 100, 20_000] {
                let map = filled(n);
                let seen = each_once(map.par_iter().collect::<Vec<_>>());
                assert_eq!(seen, each_once(map.iter()), "{n} entries");
                assert_eq!(seen.len() as u64, n);
                // `&map` is an `IntoParallelIterator` with the same items.
                assert_eq!((&map).into_par_iter().count() as u64, n);
            }
        });
    }

    /// Records the calling thread in `threads`, then, if `company` is set, waits (up to a few
    /// seconds, once) for a second thread to arrive: an optimized build visits 50,000 entries
    /// faster than an idle worker wakes to steal, so without the wait one thread could do all of
    /// the work that was split. Work that was not split never gets company, and the caller sees one
    /// thread.
    fn arrive(threads: &Mutex<HashSet<ThreadId>>, company: bool, deadline: Instant) {
        threads.lock().insert(thread::current().id());
        while company && threads.lock().len() < 2 && Instant::now() < deadline {
            thread::yield_now();
        }
    }

    #[test]
    fn par_iter_shares_the_work_between_threads() {
        let map = filled(50_000);
        let threads = Mutex::new(HashSet::<ThreadId>::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        pool().install(|| {
            map.par_iter().for_each(|_| arrive(&threads, true, deadline));
        });
        assert!(threads.lock().len() >= 2, "ran on {:?}", threads.lock());
    }

    #[test]
    fn par_iter_alongside_a_writer_sees_every_lasting_key_once() {
        let map = Arc::new(filled(20_000));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (map, stop) = (Arc::clone(&map), Arc::clone(&stop));
            thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let churn = 20_000 + k % 5_000;
                    map.insert(churn, churn);
                    map.remove(&churn);
                    k += 1;
                }
            })
        };
        pool().install(|| {
            for _ in 0..5 {
                let seen = each_once(map.par_iter().collect::<Vec<_>>());
                for k in 0..20_000 {
                    assert_eq!(seen.get(&k), Some(&(k * 3)), "lasting key {k}");
                }
                assert!(seen.keys().all(|&k| k < 20_000 || k == seen[&k]));
            }
        });
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[test]
    fn par_extend_and_collect_store_every_entry() {
        pool().install(|| {
            let collected: Map<u64, u64> = (0..30_000u64).into_par_iter().map(|i| (i, i)).collect();
            assert_eq!(collected.len(), 30_000);
            assert_eq!(each_once(collected.iter()), (0..30_000).map(|i| (i, i)).collect());

            // A map shared through an Arc extends through `&map`, keeping what it held.
            let shared = Arc::new(filled(10));
            (&*shared).par_extend((10..5_000u64).into_par_iter().map(|i| (i, i * 3)));
            assert_eq!(each_once(shared.iter()), each_once(filled(5_000).iter()));

            let mut owned = Map::new();
            owned.par_extend(vec![(1u64, 1u64), (2, 2)]);
            assert_eq!(owned.len(), 2);
        });
    }

    #[test]
    fn bulk_operations_agree_with_their_sequential_forms_on_both_sides_of_the_threshold() {
        let map = filled(10_000);
        let expected_sum: u64 = (0..10_000).map(|i| i * 3).sum();
        pool().install(|| {
            for threshold in [1, 10_000, 10_001, usize::MAX] {
                let sum = AtomicU64::new(0);
                map.par_for_each(threshold, |_, v| {
                    sum.fetch_add(*v, Ordering::Relaxed);
                });
                assert_eq!(sum.into_inner(), expected_sum, "threshold {threshold}");
                let reduced = map.par_reduce(threshold, |_, v| *v, |a, b| a + b);
                assert_eq!(reduced, Some(expected_sum), "threshold {threshold}");
                let found = map.par_search(threshold, |k, v| (*v == 2_997).then_some(*k));
                assert_eq!(found, Some(999), "threshold {threshold}");
                assert_eq!(map.par_search(threshold, |_, v| (*v == 1).then_some(())), None);
            }
            assert_eq!(Map::<u64, u64>::new().par_reduce(1, |_, v| *v, |a, b| a + b), None);
        });
    }

    #[test]
    fn the_threshold_decides_where_the_work_runs() {
        let map = filled(50_000);
        let threads_at = |threshold, company| {
            let threads = Mutex::new(HashSet::<ThreadId>::new());
            let deadline = Instant::now() + Duration::from_secs(5);
            pool().install(|| {
                map.par_for_each(threshold, |_, _| arrive(&threads, company, deadline));
            });
            threads.into_inner()
        };
        assert_eq!(threads_at(usize::MAX, false).len(), 1);
        assert_eq!(threads_at(50_001, false).len(), 1);
        assert!(threads_at(50_000, true).len() >= 2);
    }

    #[test]
    fn a_bulk_closure_may_call_back_into_the_map() {
        let map = filled(1_000);
        pool().install(|| {
            map.par_for_each(1, |k, v| {
                // The iteration may see the copies it adds (it is weakly consistent); they add
                // nothing more.
                if *k < 1_000 {
                    map.insert(k + 1_000, *v);
                }
            });
        });
        assert_eq!(map.len(), 2_000);
    }

    #[test]
    fn a_parallel_iteration_from_inside_a_closure_of_the_map_panics() {
        let outcome = common::within(30, || {
            let map = filled(100);
            map.compute(1, |_| {
                let _ = map.par_iter().count();
                safemap::Action::Keep
            });
        });
        let message = outcome.expect_err("the call back returned");
        assert!(message.contains("re-entrant call"), "{message}");
    }
}
