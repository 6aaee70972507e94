//! Single-flight `get_or_insert_with`, for every strategy: its closure runs with no lock of the
//! map held, so a slow init stalls no other key (even in a one-lock `LockedMap`); callers for the
//! same key wait for it and get its value, the closure running once; a closure that panics or
//! fails hands over to exactly one waiter; a plain write during an init wins over it. Every case
//! that could hang runs under a deadline.

mod common;

use common::{for_every_strategy_on_plain_data, within};

for_every_strategy_on_plain_data! {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use safemap::{Action, ConcurrentMap};

    type M = Map<u32, u32>;

    /// Starts `get_or_insert_with(key)` on another thread with a closure that signals once it
    /// runs and returns `value` once released; returns the started signal, the release and the
    /// call's thread.
    fn slow_init(
        map: &Arc<M>,
        key: u32,
        value: u32,
    ) -> (mpsc::Receiver<()>, mpsc::Sender<()>, std::thread::JoinHandle<u32>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let map = Arc::clone(map);
        let call = std::thread::spawn(move || {
            map.get_or_insert_with(key, || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                value
            })
        });
        (started, release, call)
    }

    #[test]
    fn a_slow_init_stalls_no_other_key_and_its_own_key_reads_absent() {
        within(30, || {
            let map: Arc<M> = Arc::new((0..64).map(|i| (i, i)).collect());
            let (started, release, call) = slow_init(&map, 1000, 7);
            started.recv().unwrap();
            // The closure is running and cannot finish until released: were any lock of the
            // map held, these would wait forever.
            assert_eq!(map.get(&3), Some(3));
            assert_eq!(map.insert(2000, 1), None);
            map.compute(5, |v| Action::Set(v.unwrap() + 1));
            assert_eq!(map.get_or_insert_with(2001, || 9), 9);
            assert_eq!(map.len(), 66);
            // The pending key reads as absent, without waiting.
            assert_eq!(map.get(&1000), None);
            release.send(()).unwrap();
            assert_eq!(call.join().unwrap(), 7);
            assert_eq!(map.get(&1000), Some(7));
        })
        .unwrap();
    }

    #[test]
    fn callers_for_one_key_wait_for_one_init_and_share_its_value() {
        within(30, || {
            let map: Arc<M> = Arc::new(M::default());
            let runs = Arc::new(AtomicUsize::new(0));
            let start = Arc::new(Barrier::new(4));
            let callers: Vec<_> = (0..4)
                .map(|t| {
                    let (map, runs, start) = (Arc::clone(&map), Arc::clone(&runs), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        map.get_or_insert_with(7, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            100 + t
                        })
                    })
                })
                .collect();
            let values: Vec<u32> = callers.into_iter().map(|c| c.join().unwrap()).collect();
            assert_eq!(runs.load(Ordering::SeqCst), 1, "the closure ran more than once");
            assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
            assert_eq!(map.get(&7), Some(values[0]));
        })
        .unwrap();
    }

    #[test]
    fn a_panicking_or_failing_init_hands_over_to_one_waiter() {
        within(30, || {
            for fail in ["panic", "error"] {
                let map: Arc<M> = Arc::new(M::default());
                let runs = Arc::new(AtomicUsize::new(0));
                let (started_tx, started) = mpsc::channel();
                let first = {
                    let (map, runs) = (Arc::clone(&map), Arc::clone(&runs));
                    std::thread::spawn(move || {
                        map.try_get_or_insert_with(7, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            started_tx.send(()).unwrap();
                            std::thread::sleep(Duration::from_millis(100));
                            if fail == "panic" {
                                panic!("the init failed");
                            }
                            Err("the init failed")
                        })
                    })
                };
                started.recv().unwrap();
                let waiters: Vec<_> = (0..3)
                    .map(|t| {
                        let (map, runs) = (Arc::clone(&map), Arc::clone(&runs));
                        std::thread::spawn(move || {
                            map.get_or_insert_with(7, || {
                                runs.fetch_add(1, Ordering::SeqCst);
                                200 + t
                            })
                        })
                    })
                    .collect();
                let outcome = first.join();
                match fail {
                    "panic" => assert!(outcome.is_err()),
                    _ => assert_eq!(outcome.unwrap(), Err("the init failed")),
                }
                let values: Vec<u32> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
                assert_eq!(runs.load(Ordering::SeqCst), 2, "{fail}: one waiter takes over");
                assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
                assert_eq!(map.get(&7), Some(values[0]));
            }
        })
        .unwrap();
    }

    #[test]
    fn a_plain_write_during_an_init_wins() {
        within(30, || {
            let map: Arc<M> = Arc::new(M::default());
            let (started, release, call) = slow_init(&map, 1, 7);
            started.recv().unwrap();
            assert_eq!(map.insert(1, 100), None);
            release.send(()).unwrap();
            assert_eq!(call.join().unwrap(), 100);
            assert_eq!(map.get(&1), Some(100));
        })
        .unwrap();
    }
}

/// `ReadMostlyMap::get_or_insert` (Go's `LoadOrStore`) reports the value as loaded when a plain
/// write stored one while its init was claimed: its own value was not the one stored.
#[test]
fn load_or_store_reports_a_value_stored_meanwhile_as_loaded() {
    use std::sync::{Arc, mpsc};

    use safemap::{ConcurrentMap, ReadMostlyMap};

    within(30, || {
        let map: Arc<ReadMostlyMap<u32, u32>> = Arc::new(ReadMostlyMap::new());
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let slow = {
            let map = Arc::clone(&map);
            std::thread::spawn(move || {
                map.get_or_insert_with(1, || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    5
                })
            })
        };
        started.recv().unwrap();
        let racer = {
            let map = Arc::clone(&map);
            std::thread::spawn(move || map.get_or_insert(1, 7))
        };
        // The racer waits for the claim; a plain write lands meanwhile and wins over both.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(map.insert(1, 9), None);
        release.send(()).unwrap();
        assert_eq!(slow.join().unwrap(), 9);
        assert_eq!(racer.join().unwrap(), (9, true));
        assert_eq!(map.get_or_insert(2, 3), (3, false));
        assert_eq!(map.get_or_insert(2, 4), (3, true));
    })
    .unwrap();
}

/// The bar for blocking init, which a lock held across `make` would miss by two orders
/// of magnitude. Timed checks allow two retries, since this shared host can stall any thread for
/// milliseconds; a real stall (300 ms) would fail all three.
mod bar {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::within;

    /// A value that counts its instances made (clones too) and dropped, to show that every value
    /// is dropped exactly once.
    struct Counted(Arc<AtomicUsize>, Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            Counted::new(&self.0, &self.1)
        }
    }

    impl Counted {
        fn new(made: &Arc<AtomicUsize>, dropped: &Arc<AtomicUsize>) -> Self {
            made.fetch_add(1, Ordering::SeqCst);
            Counted(Arc::clone(made), Arc::clone(dropped))
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// On every strategy, `pod` ones included: the keys and values are plain old data.
    mod stall {
        use std::sync::{Arc, mpsc};
        use std::time::{Duration, Instant};

        use crate::within;

        crate::common::for_every_strategy_on_plain_data! {
            use safemap::ConcurrentMap;

            #[test]
            fn other_keys_stay_fast_while_a_300_ms_init_runs() {
                within(60, || {
                    let mut failures = Vec::new();
                    for _ in 0..3 {
                        let map: Arc<Map<u32, u32>> = Arc::new((0..1000).map(|i| (i, i)).collect());
                        let (started_tx, started) = mpsc::channel();
                        let (release, released) = mpsc::channel::<()>();
                        let slow = {
                            let map = Arc::clone(&map);
                            std::thread::spawn(move || {
                                map.get_or_insert_with(5000, || {
                                    started_tx.send(()).unwrap();
                                    // 300 ms at least, and until the other keys' calls are done,
                                    // however slowly a sanitizer makes them run.
                                    std::thread::sleep(Duration::from_millis(300));
                                    released.recv().unwrap();
                                    1
                                })
                            })
                        };
                        started.recv().unwrap();
                        let mut slowest = Duration::ZERO;
                        for i in 0..1000 {
                            let start = Instant::now();
                            std::hint::black_box(map.get(&i));
                            map.insert(10_000 + i, i);
                            slowest = slowest.max(start.elapsed());
                        }
                        release.send(()).unwrap();
                        assert_eq!(slow.join().unwrap(), 1);
                        if slowest <= Duration::from_millis(5) {
                            return;
                        }
                        failures.push(slowest);
                    }
                    panic!("a get and insert took up to {failures:?} while the init ran");
                })
                .unwrap();
            }
        }
    }

    crate::common::for_every_strategy! {
        use safemap::ConcurrentMap;

        #[test]
        fn failing_inits_under_contention_never_make_two_values() {
            within(120, || {
                let (made, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
                for trial in 0..1000 {
                    let map: Arc<Map<u32, Counted>> = Arc::new(Map::default());
                    let successes = Arc::new(AtomicUsize::new(0));
                    let start = Arc::new(Barrier::new(4));
                    let racers: Vec<_> = (0..4)
                        .map(|racer| {
                            let (map, successes, start) = (Arc::clone(&map), Arc::clone(&successes), Arc::clone(&start));
                            let (made, dropped) = (Arc::clone(&made), Arc::clone(&dropped));
                            std::thread::spawn(move || {
                                start.wait();
                                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    map.try_get_or_insert_with(1, || {
                                        // Racer 0 fails, by panic or by error in turn.
                                        if racer == 0 {
                                            if trial % 2 == 0 {
                                                panic!("the init failed");
                                            }
                                            return Err(());
                                        }
                                        successes.fetch_add(1, Ordering::SeqCst);
                                        // Long enough for the others to arrive meanwhile.
                                        std::thread::sleep(Duration::from_micros(200));
                                        Ok(Counted::new(&made, &dropped))
                                    })
                                }));
                                drop(outcome);
                            })
                        })
                        .collect();
                    for racer in racers {
                        racer.join().unwrap();
                    }
                    assert!(successes.load(Ordering::SeqCst) <= 1, "trial {trial}: two makes succeeded");
                }
                // Every map of every trial is gone: each value made was dropped once.
                assert_eq!(made.load(Ordering::SeqCst), dropped.load(Ordering::SeqCst));
                assert!(made.load(Ordering::SeqCst) >= 1000, "each trial stored a value");
            })
            .unwrap();
        }
    }
}
