//! Oversubscribed stress: many more threads than cores, checked against a final state that is
//! known in advance, and closure-run counts asserted exactly.
//!
//! Bounded by default so CI runs it; set `SAFEMAP_STRESS_SCALE` (e.g. 50) for a long soak.

mod common;

use std::sync::Arc;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use common::for_every_strategy_on_plain_data;
use safemap::{Action, ConcurrentMap, MapSnapshot};

/// Threads per test: well above the 2 cores CI has, so threads are preempted mid-operation.
const THREADS: usize = 16;

fn scale() -> usize {
    std::env::var("SAFEMAP_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Runs `work(thread_index)` on THREADS threads released together.
///
/// Each thread counts itself finished on an atomic that the caller reads after the scope: the
/// scope's own join goes through std, which TSAN does not see, so without this a map dropped
/// after the scope would look to TSAN as if freed while a thread that only read it (taking no
/// lock the dropping thread takes later) still used it.
fn on_all_threads(work: impl Fn(usize) + Sync) {
    let start = Barrier::new(THREADS);
    let finished = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (start, work, finished) = (&start, &work, &finished);
            s.spawn(move || {
                start.wait();
                work(t);
                // Release: everything this thread did to the map comes before the caller's
                // Acquire load below.
                finished.fetch_add(1, Ordering::Release);
            });
        }
    });
    assert_eq!(finished.load(Ordering::Acquire), THREADS);
}

for_every_strategy_on_plain_data! {
    /// Each thread owns a key range and runs a fixed script on it, while reading everyone's
    /// keys. The final map is known exactly.
    #[test]
    fn owned_ranges_end_in_the_known_state() {
        let per_thread = 500 * scale();
        let map: Map<usize, usize> = Map::new();
        on_all_threads(|t| {
            let keys = t * per_thread..(t + 1) * per_thread;
            for k in keys.clone() {
                assert_eq!(map.insert(k, k), None);
                let _ = map.get(&((k * 7919) % (THREADS * per_thread)));
            }
            for k in keys.clone().filter(|k| k % 2 == 0) {
                assert_eq!(map.remove(&k), Some(k));
            }
            for k in keys.clone().filter(|k| k % 3 == 0) {
                map.compute(k, |v| match v {
                    Some(v) => Action::Set(v * 10),
                    None => Action::Keep,
                });
            }
            for k in keys {
                assert_eq!(map.get_or_insert_with(k, || k + 1), map.get(&k).unwrap());
            }
        });
        let total = THREADS * per_thread;
        assert_eq!(map.len(), total);
        for k in 0..total {
            let expected = match (k % 2 == 0, k % 3 == 0) {
                (true, _) => k + 1,    // removed, then re-created by get_or_insert_with
                (false, true) => k * 10,
                (false, false) => k,
            };
            assert_eq!(map.get(&k), Some(expected), "key {k}");
        }
    }

    /// Concurrent `compute` increments on a few shared keys sum exactly, and each closure runs
    /// exactly once per call.
    #[test]
    fn compute_increments_sum_exactly() {
        let per_thread = 2_000 * scale();
        let runs = AtomicUsize::new(0);
        let map: Map<u8, u64> = Map::new();
        on_all_threads(|t| {
            for i in 0..per_thread {
                let key = ((t + i) % 8) as u8;
                map.compute(key, |v| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    Action::Set(v.copied().unwrap_or(0) + 1)
                });
            }
        });
        let calls = THREADS * per_thread;
        assert_eq!(runs.load(Ordering::Relaxed), calls);
        let mut sum = 0;
        map.for_each(|_, v| sum += v);
        assert_eq!(sum, calls as u64);
        assert_eq!(map.len(), 8);
    }

    /// Every thread races `get_or_insert_with` on the same absent keys: each key's closure runs
    /// exactly once, and every thread gets the winner's value.
    #[test]
    fn get_or_insert_with_runs_once_per_absent_key() {
        let keys = 200 * scale();
        let runs: Vec<AtomicUsize> = (0..keys).map(|_| AtomicUsize::new(0)).collect();
        let seen: Mutex<Vec<Vec<usize>>> = Mutex::new(Vec::new());
        let map: Map<usize, usize> = Map::new();
        on_all_threads(|t| {
            // Every thread walks the keys in the same order, so they collide on each key.
            let got: Vec<usize> = (0..keys)
                .map(|k| {
                    (k, map.get_or_insert_with(k, || {
                        runs[k].fetch_add(1, Ordering::Relaxed);
                        // A slow closure widens the window in which racers arrive.
                        std::thread::sleep(std::time::Duration::from_micros(20));
                        t * keys + k
                    }))
                })
                .fold(vec![0; keys], |mut got, (k, v)| { got[k] = v; got });
            seen.lock().push(got);
        });
        for (k, r) in runs.iter().enumerate() {
            assert_eq!(r.load(Ordering::Relaxed), 1, "closure runs for key {k}");
        }
        for got in seen.lock().iter() {
            for (k, v) in got.iter().enumerate() {
                assert_eq!(Some(*v), map.get(&k), "a thread saw a value that did not win");
            }
        }
    }

    /// One writer inserts keys in increasing order; every snapshot and every `len` taken
    /// meanwhile must be a prefix of that order, which only an atomic view guarantees.
    #[test]
    fn snapshots_and_len_are_atomic_under_writes() {
        let keys = 5_000 * scale();
        let map: Arc<Map<usize, usize>> = Arc::new(Map::new());
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for k in 0..keys {
                    map.insert(k, k);
                }
                done.store(true, Ordering::Release);
            });
            for _ in 0..THREADS - 1 {
                s.spawn(|| {
                    let mut last_len = 0;
                    while !done.load(Ordering::Acquire) {
                        let view = map.snapshot();
                        let n = view.len();
                        assert!((0..n).all(|k| view.get(&k) == Some(&k)), "snapshot of {n} is not a prefix");
                        let len = map.len();
                        assert!(len >= last_len.max(n), "len went back: {len} after {last_len}/{n}");
                        last_len = len;
                    }
                });
            }
        });
        assert_eq!(map.len(), keys);
    }

    /// Keys present throughout are found by every read, and seen exactly once by every
    /// iteration, while other threads grow the map many times over, empty it again and shrink
    /// it: resizes (ScalableMap moves its chains a few per write) never hide a key.
    #[test]
    fn keys_present_throughout_stay_visible_while_the_map_grows_and_shrinks() {
        const STABLE: usize = 1000;
        let per_writer = 1_000 * scale();
        let map: Map<usize, usize> = (0..STABLE).map(|k| (k, k)).collect();
        let writers_left = AtomicUsize::new(THREADS / 2);
        on_all_threads(|t| {
            if t < THREADS / 2 {
                let fresh = STABLE + t * per_writer..STABLE + (t + 1) * per_writer;
                fresh.clone().for_each(|k| assert_eq!(map.insert(k, k), None));
                fresh.for_each(|k| assert_eq!(map.remove(&k), Some(k)));
                if t == 0 {
                    map.shrink_to_fit();
                }
                writers_left.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            let mut passes = 0;
            while writers_left.load(Ordering::SeqCst) > 0 || passes == 0 {
                for k in (0..STABLE).step_by(7) {
                    assert_eq!(map.get(&k), Some(k), "stable key {k} missed");
                }
                if passes % 64 == 0 {
                    let mut seen = vec![0u8; STABLE];
                    map.keys().filter(|&k| k < STABLE).for_each(|k| seen[k] += 1);
                    assert!(seen.iter().all(|&n| n == 1), "an iteration saw a stable key other than once");
                }
                passes += 1;
            }
        });
        assert_eq!(map.len(), STABLE);
    }
}
