//! Async single-flight init, for every strategy, on tokio (the library depends on no runtime):
//! one `make` for many racing tasks; waiting never blocks an executor thread (shown on a
//! one-thread runtime, where it would deadlock); a cancelled init hands over to a waiter; a
//! failed one too; blocking and async callers share one claim; the futures are `Send`; and a
//! `make` future that asks for its own key panics instead of hanging.

mod common;

use common::{for_every_strategy_on_plain_data, within};

/// A tokio runtime with timers: on the calling thread for `threads == 1`, else on that many
/// workers.
fn runtime(threads: usize) -> tokio::runtime::Runtime {
    match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    }
    .enable_time()
    .build()
    .unwrap()
}

/// Everything that runs on tokio, in one module that the ThreadSanitizer run skips by name
/// (`ci/sanitizers.sh`): tokio's scheduler queues sit behind std's `Mutex`, which TSAN cannot see
/// in the prebuilt std, so it reports races inside tokio that are not there. The claims these
/// tests drive are the blocking ones, which TSAN does check (`tests/single_flight.rs`), and
/// ASAN runs these too.
mod on_tokio {
    use super::*;

    for_every_strategy_on_plain_data! {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::time::Duration;

        use safemap::ConcurrentMap;

        type M = Map<u32, u32>;


        fn assert_send<T: Send>(_: &T) {}

        #[test]
        fn racing_tasks_share_one_init_on_one_thread_and_on_four() {
            for threads in [1, 4] {
                within(30, move || {
                    runtime(threads).block_on(async {
                        let map = Arc::new(M::default());
                        let runs = Arc::new(AtomicUsize::new(0));
                        let tasks: Vec<_> = (0..16)
                            .map(|t| {
                                let (map, runs) = (Arc::clone(&map), Arc::clone(&runs));
                                tokio::spawn(async move {
                                    map.get_or_insert_with_async(7, || async move {
                                        runs.fetch_add(1, Ordering::SeqCst);
                                        // Let the other tasks run and find the key claimed.
                                        for _ in 0..20 {
                                            tokio::task::yield_now().await;
                                        }
                                        100 + t
                                    })
                                    .await
                                })
                            })
                            .collect();
                        let mut values = Vec::new();
                        for task in tasks {
                            values.push(task.await.unwrap());
                        }
                        assert_eq!(runs.load(Ordering::SeqCst), 1, "{threads} thread(s)");
                        assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
                        assert_eq!(map.get(&7), Some(values[0]));
                    });
                })
                .unwrap();
            }
        }

        /// Polls `future` once, with a waker that does nothing.
        fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
            future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        }

        #[test]
        fn a_cancelled_or_failed_init_hands_over_to_a_waiter() {
            within(30, || {
                // One thread, so that the waiter has surely started waiting when the init is dropped.
                runtime(1).block_on(async {
                    let map = Arc::new(M::default());
                    let mut stalled = Box::pin(map.get_or_insert_with_async(7, || async {
                        std::future::pending::<u32>().await
                    }));
                    // Polled once: the key is claimed and the init's future is stuck in `make`.
                    assert!(poll_once(stalled.as_mut()).is_pending());
                    let waiter = {
                        let map = Arc::clone(&map);
                        tokio::spawn(async move { map.get_or_insert_with_async(7, || async { 5 }).await })
                    };
                    // The waiter runs until it waits for the claim.
                    tokio::task::yield_now().await;
                    assert!(!waiter.is_finished());
                    drop(stalled);
                    assert_eq!(waiter.await.unwrap(), 5);
                    assert_eq!(map.get(&7), Some(5));

                    let failed = map.try_get_or_insert_with_async(8, || async { Err::<u32, _>("no") });
                    assert_eq!(failed.await, Err("no"));
                    assert_eq!(map.get(&8), None);
                    let made = map.try_get_or_insert_with_async(8, || async { Ok::<_, &str>(6) });
                    assert_eq!(made.await, Ok(6));
                });
            })
            .unwrap();
        }

        #[test]
        fn a_blocking_caller_waits_for_an_async_init_of_its_key() {
            within(30, || {
                runtime(2).block_on(async {
                    let map = Arc::new(M::default());
                    let (started, go) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
                    let init = {
                        let (map, started, go) = (Arc::clone(&map), Arc::clone(&started), Arc::clone(&go));
                        tokio::spawn(async move {
                            map.get_or_insert_with_async(3, || async move {
                                started.store(true, Ordering::SeqCst);
                                while !go.load(Ordering::SeqCst) {
                                    tokio::task::yield_now().await;
                                }
                                30
                            })
                            .await
                        })
                    };
                    while !started.load(Ordering::SeqCst) {
                        tokio::task::yield_now().await;
                    }
                    let blocking = {
                        let map = Arc::clone(&map);
                        std::thread::spawn(move || map.get_or_insert_with(3, || unreachable!()))
                    };
                    // The blocking caller has had time to find the key claimed and park.
                    std::thread::sleep(Duration::from_millis(50));
                    go.store(true, Ordering::SeqCst);
                    assert_eq!(init.await.unwrap(), 30);
                    assert_eq!(blocking.join().unwrap(), 30);
                });
            })
            .unwrap();
        }

        #[test]
        fn the_futures_are_send() {
            let map = M::default();
            let plain = map.get_or_insert_with_async(1, || async { 1 });
            assert_send(&plain);
            let fallible = map.try_get_or_insert_with_async(2, || async { Ok::<u32, String>(2) });
            assert_send(&fallible);
        }

        #[test]
        fn a_make_future_asking_for_its_own_key_panics() {
            within(30, || {
                runtime(2).block_on(async {
                    let map = Arc::new(M::default());
                    let asking = {
                        let map = Arc::clone(&map);
                        tokio::spawn(async move {
                            let inner = Arc::clone(&map);
                            map.get_or_insert_with_async(9, || async move {
                                inner.get_or_insert_with_async(9, || async { 1 }).await
                            })
                            .await
                        })
                    };
                    let panic = asking.await.expect_err("asking for its own key must panic");
                    let message = common::panic_message(&*panic.into_panic());
                    assert!(message.contains("its own key"), "{message}");
                    // The claim was withdrawn with the dropped future.
                    assert_eq!(map.get(&9), None);
                    assert_eq!(map.get_or_insert_with_async(9, || async { 2 }).await, 2);
                });
            })
            .unwrap();
        }
    }
}

/// The bar for async init, on tokio's timers (skipped under TSAN with the rest of
/// `on_tokio`): figures that a lock held across an init, or a waiter that blocks its thread,
/// would miss by orders of magnitude. Timed checks allow two retries, since this shared host can
/// stall any thread for milliseconds; a real stall would fail all three.
mod on_tokio_bar {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use safemap::ShardedMap;

    use super::{runtime, within};

    /// Runs `trial` up to three times; passes on the first success.
    fn within_three_tries(trial: impl Fn() -> Result<(), String>) {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match trial() {
                Ok(()) => return,
                Err(why) => failures.push(why),
            }
        }
        panic!("three tries failed: {failures:?}");
    }

    #[test]
    fn a_thousand_tasks_on_ten_keys_run_ten_makes() {
        within(60, || {
            runtime(4).block_on(async {
                let map: Arc<ShardedMap<u32, u32>> = Arc::new(ShardedMap::new());
                let makes = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..1000u32)
                    .map(|t| {
                        let (map, makes) = (Arc::clone(&map), Arc::clone(&makes));
                        tokio::spawn(async move {
                            let key = t % 10;
                            let value = map
                                .get_or_insert_with_async(key, || async move {
                                    makes.fetch_add(1, Ordering::SeqCst);
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    key * 100
                                })
                                .await;
                            (key, value)
                        })
                    })
                    .collect();
                for task in tasks {
                    let (key, value) = task.await.unwrap();
                    assert_eq!(value, key * 100);
                }
                assert_eq!(makes.load(Ordering::SeqCst), 10);
            });
        })
        .unwrap();
    }

    #[test]
    fn after_a_cancelled_init_one_make_serves_every_waiter_promptly() {
        within(60, || {
            within_three_tries(|| {
                runtime(2).block_on(async {
                    let map: Arc<ShardedMap<u32, u32>> = Arc::new(ShardedMap::new());
                    let makes = Arc::new(AtomicUsize::new(0));
                    let first = {
                        let (map, makes) = (Arc::clone(&map), Arc::clone(&makes));
                        tokio::spawn(async move {
                            let slow = map.get_or_insert_with_async(1, || async move {
                                makes.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_secs(10)).await;
                                0
                            });
                            tokio::time::timeout(Duration::from_millis(100), slow).await
                        })
                    };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let waiters: Vec<_> = (0..20)
                        .map(|_| {
                            let (map, makes) = (Arc::clone(&map), Arc::clone(&makes));
                            tokio::spawn(async move {
                                let value = map
                                    .get_or_insert_with_async(1, || async move {
                                        makes.fetch_add(1, Ordering::SeqCst);
                                        tokio::time::sleep(Duration::from_millis(20)).await;
                                        7
                                    })
                                    .await;
                                (value, Instant::now())
                            })
                        })
                        .collect();
                    assert!(first.await.unwrap().is_err(), "the first init timed out");
                    let cancelled = Instant::now();
                    let mut latest = Duration::ZERO;
                    for waiter in waiters {
                        let (value, done) = waiter.await.unwrap();
                        assert_eq!(value, 7);
                        latest = latest.max(done.saturating_duration_since(cancelled));
                    }
                    assert_eq!(
                        makes.load(Ordering::SeqCst),
                        2,
                        "one more make after the cancel"
                    );
                    // The second make's 20 ms, plus 50 ms.
                    if latest > Duration::from_millis(70) {
                        return Err(format!(
                            "the last waiter finished {latest:?} after the cancel"
                        ));
                    }
                    Ok(())
                })
            });
        })
        .unwrap();
    }

    #[test]
    fn a_heartbeat_keeps_time_while_a_hundred_tasks_await_one_init() {
        within(60, || {
            within_three_tries(|| {
                runtime(1).block_on(async {
                    let map: Arc<ShardedMap<u32, u32>> = Arc::new(ShardedMap::new());
                    let heartbeat = tokio::spawn(async {
                        let mut worst = Duration::ZERO;
                        for _ in 0..150 {
                            let start = Instant::now();
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            worst =
                                worst.max(start.elapsed().saturating_sub(Duration::from_millis(1)));
                        }
                        worst
                    });
                    let tasks: Vec<_> = (0..100)
                        .map(|_| {
                            let map = Arc::clone(&map);
                            tokio::spawn(async move {
                                map.get_or_insert_with_async(5, || async {
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    50
                                })
                                .await
                            })
                        })
                        .collect();
                    for task in tasks {
                        assert_eq!(task.await.unwrap(), 50);
                    }
                    let worst = heartbeat.await.unwrap();
                    if worst >= Duration::from_millis(10) {
                        return Err(format!("the heartbeat was {worst:?} late"));
                    }
                    Ok(())
                })
            });
        })
        .unwrap();
    }
}
