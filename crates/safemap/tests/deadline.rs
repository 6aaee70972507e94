//! Deadline-bounded operations, for every strategy that implements `DeadlineMap`: with a writer
//! holding the key's lock (inside a closure), each `try_*_until` that waits for it returns by its
//! deadline (plus scheduling slack), reports `TimedOut`, runs no closure, hands back what it was
//! given, and leaves the map unchanged; a read in a strategy that declares its readers never wait
//! for closures answers at once instead. Once the lock is free, they all succeed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::for_every_deadline_strategy_on_plain_data;
use safemap::{Action, Blocks, ConcurrentMap, DeadlineMap, TimedOut};

const WAIT: Duration = Duration::from_millis(50);
/// What a loaded 2-core machine may add to a timed wait before the call returns.
const SLACK: Duration = Duration::from_millis(250);

/// Runs `call` while another thread holds key 1's shard (inside a `compute` closure), and asserts
/// it returned no earlier than the deadline and not much later. A call that ignored its deadline
/// would wait for a release that only comes after it returns: `within` turns that into a failure.
fn while_held<M, R>(map: &Arc<M>, call: impl FnOnce(&M, Instant) -> R + Send + 'static) -> R
where
    M: ConcurrentMap<u32, u32> + Send + Sync + 'static,
    R: Send + 'static,
{
    let release = hold_key_1(map);
    let caller = Arc::clone(map);
    let started = Instant::now();
    let result = common::within(10, move || call(&caller, started + WAIT))
        .expect("the timed call did not panic");
    let took = started.elapsed();
    release();
    assert!(took >= WAIT, "gave up early, after {took:?}");
    assert!(took < WAIT + SLACK, "blocked past the deadline: {took:?}");
    result
}

/// Has another thread hold key 1's lock (inside a `compute` closure) until the returned
/// function is called.
fn hold_key_1<M>(map: &Arc<M>) -> impl FnOnce()
where
    M: ConcurrentMap<u32, u32> + Send + Sync + 'static,
{
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let map = Arc::clone(map);
        std::thread::spawn(move || {
            map.compute(1, |_| {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Action::Keep
            });
        })
    };
    held_rx.recv().unwrap();
    move || {
        release_tx.send(()).unwrap();
        holder.join().unwrap();
    }
}

for_every_deadline_strategy_on_plain_data! {
    type M = Map<u32, u32>;

    fn filled() -> Arc<M> {
        Arc::new((0..8).map(|i| (i, i * 10)).collect())
    }

    #[test]
    fn timed_out_calls_return_on_time_and_change_nothing() {
        let map = filled();
        let ran = Arc::new(AtomicBool::new(false));
        let ran_inside = Arc::clone(&ran);

        if <M as ConcurrentMap<u32, u32>>::CONSISTENCY.closure_blocks_readers == Blocks::Nothing {
            // Reads never wait: one answers at once, with the current value, during the hold.
            let release = hold_key_1(&map);
            let started = Instant::now();
            assert_eq!(map.try_get_until(&1, started + WAIT), Ok(Some(10)));
            assert!(started.elapsed() < WAIT, "a read waited for the writer");
            release();
        } else {
            assert_eq!(while_held(&map, |m, d| m.try_get_until(&1, d)), Err(TimedOut(())));
        }
        assert_eq!(while_held(&map, |m, d| m.try_insert_until(1, 99, d)), Err(TimedOut((1, 99))));
        assert_eq!(while_held(&map, |m, d| m.try_remove_until(&1, d)), Err(TimedOut(())));
        let computed = while_held(&map, move |m, d| {
            m.try_compute_until(1, |_| { ran_inside.store(true, Ordering::Relaxed); Action::Remove }, d)
        });
        assert_eq!(computed, Err(TimedOut(1)));
        assert!(!ran.load(Ordering::Relaxed), "the closure ran despite the timeout");

        let mut entries = Vec::new();
        map.for_each(|k, v| entries.push((*k, *v)));
        entries.sort();
        assert_eq!(entries, (0..8).map(|i| (i, i * 10)).collect::<Vec<_>>());
    }

    #[test]
    fn free_shards_serve_timed_calls() {
        let map = filled();
        let d = Instant::now() + WAIT;
        assert_eq!(map.try_get_until(&2, d), Ok(Some(20)));
        assert_eq!(map.try_insert_until(2, 21, d), Ok(Some(20)));
        assert_eq!(map.try_compute_until(2, |v| Action::Set(v.unwrap() + 1), d), Ok(Some(21)));
        assert_eq!(map.try_remove_until(&2, d), Ok(Some(22)));
        assert_eq!(map.try_remove_until(&2, d), Ok(None));
        // A deadline already past still succeeds when the lock is free: only waiting is bounded.
        assert_eq!(map.try_get_until(&3, Instant::now() - WAIT), Ok(Some(30)));
    }

    #[test]
    fn timed_calls_inside_a_closure_still_report_reentry() {
        let map = filled();
        let inner = Arc::clone(&map);
        let message = common::within(10, move || {
            inner.compute(1, |_| {
                let _ = inner.try_get_until(&1, Instant::now() + WAIT);
                Action::Keep
            });
        })
        .expect_err("re-entry must panic even with a deadline");
        assert!(message.contains("re-entrant"), "{message}");
    }
}
