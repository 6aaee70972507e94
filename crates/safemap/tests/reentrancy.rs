//! A closure that calls back into its own map panics with a message naming the problem, and
//! never hangs (each case runs under a deadline). Calls into other maps, calls from `for_each`,
//! and calls from `get_or_insert_with`'s closure for other keys, work.

mod common;

use std::sync::Arc;

use common::{for_every_strategy_on_plain_data, within};
use safemap::{Action, ConcurrentMap, MapSnapshot};

/// Runs `call` against a filled map under a deadline and asserts it panicked with the
/// re-entrancy message naming `op`; then asserts the map still works.
fn assert_reentry_panics<M>(op: &str, call: impl FnOnce(&M) + Send + 'static)
where
    M: ConcurrentMap<u32, u32> + FromIterator<(u32, u32)> + Send + Sync + 'static,
{
    let map: Arc<M> = Arc::new((0..16).map(|i| (i, i)).collect());
    let inner = Arc::clone(&map);
    let outcome = within(10, move || call(&inner));
    let message = outcome.expect_err("a re-entrant call must panic");
    assert!(
        message.contains("re-entrant") && message.contains(&format!("`{op}`")),
        "unexpected message: {message}"
    );
    // The panic released every lock and the record of being inside the map.
    let map = Arc::clone(&map);
    within(10, move || {
        map.insert(1, 100);
        map.compute(2, |_| Action::Remove);
        assert_eq!(map.len(), 15);
    })
    .unwrap();
}

for_every_strategy_on_plain_data! {
    type M = Map<u32, u32>;

    #[test]
    fn compute_calling_back_panics() {
        assert_reentry_panics::<M>("compute", |m| {
            m.compute(1, |_| Action::Set(m.get(&1).unwrap_or(0)));
        });
        // A different key in a different shard is refused too: it could deadlock against
        // another thread doing the same in the opposite order.
        assert_reentry_panics::<M>("compute", |m| {
            m.compute(1, |_| { m.insert(9, 9); Action::Keep });
        });
    }

    /// `get_or_insert_with` runs its closure with no lock of the map held, so the closure may
    /// use the map; asking for the key it is making panics instead of waiting for itself.
    #[test]
    fn an_init_may_use_the_map_but_not_ask_for_its_own_key() {
        let m: M = (0..16).map(|i| (i, i)).collect();
        let made = m.get_or_insert_with(99, || {
            m.insert(98, 7);
            m.len() as u32 + m.get(&98).unwrap()
        });
        assert_eq!((made, m.get(&99)), (24, Some(24)));
        let fallible = m.try_get_or_insert_with(97, || Ok::<_, ()>(m.len() as u32));
        assert_eq!(fallible, Ok(18));

        let m = Arc::new(m);
        let inner = Arc::clone(&m);
        let outcome = within(10, move || {
            inner.get_or_insert_with(50, || inner.get_or_insert_with(50, || 1));
        });
        let message = outcome.expect_err("asking for its own key must panic");
        assert!(message.contains("its own key"), "{message}");
        // The claim was withdrawn on unwind: the key is absent and can be made.
        assert_eq!(m.get(&50), None);
        let inner = Arc::clone(&m);
        assert_eq!(within(10, move || inner.get_or_insert_with(50, || 5)), Ok(5));
    }

    #[test]
    fn update_calling_back_panics() {
        assert_reentry_panics::<M>("update", |m| {
            m.update(&1, |v| *v = m.len() as u32);
        });
        assert_reentry_panics::<M>("update_or_insert_with", |m| {
            m.update_or_insert_with(99, || m.len() as u32, |_| ());
        });
        assert_reentry_panics::<M>("update_or_insert_with", |m| {
            m.update_or_insert_with(1, || 0, |v| *v = m.get(&2).unwrap_or(0));
        });
    }

    /// A paused iterator advanced from inside a closure would take a lock the closure's map
    /// holds: it panics instead.
    #[test]
    fn an_iterator_advanced_inside_a_closure_panics() {
        assert_reentry_panics::<M>("compute", |m| {
            let mut entries = m.iter();
            m.compute(1, |_| {
                let _ = entries.next();
                Action::Keep
            });
        });
    }

    #[test]
    fn get_with_calling_back_panics() {
        assert_reentry_panics::<M>("get_with", |m| {
            m.get_with(&1, |_| m.remove(&1));
        });
        assert_reentry_panics::<M>("get_with", |m| {
            m.get_with(&1, |_| m.get(&1));
        });
    }

    #[test]
    fn remove_if_and_retain_calling_back_panic() {
        assert_reentry_panics::<M>("remove_if", |m| {
            m.remove_if(&1, |_, _| m.contains_key(&2));
        });
        assert_reentry_panics::<M>("retain", |m| {
            m.retain(|_, _| m.snapshot().len() > 0);
        });
    }

    #[test]
    fn for_each_may_call_back() {
        let map: Arc<M> = Arc::new((0..16).map(|i| (i, i)).collect());
        let inner = Arc::clone(&map);
        within(10, move || {
            inner.for_each(|k, v| {
                inner.compute(*k, |_| Action::Set(v + 1));
                inner.insert(k + 100, *v);
            });
        })
        .unwrap();
        assert!((0..16).all(|k| map.get(&k) == Some(k + 1)));
        assert!(map.len() >= 32);
    }

    /// A calls B from a closure, and B's closure calls A: still caught, through B's record.
    #[test]
    fn calls_back_through_another_map_panic() {
        let a: Arc<M> = Arc::new((0..4).map(|i| (i, i)).collect());
        let b: M = (0..4).map(|i| (i, i)).collect();
        let inner = Arc::clone(&a);
        let message = within(10, move || {
            inner.compute(1, |_| {
                b.compute(2, |_| Action::Set(inner.get(&3).unwrap_or(0)));
                Action::Keep
            });
        })
        .expect_err("the call back into A must panic");
        assert!(message.contains("re-entrant") && message.contains("`compute`"), "{message}");
        assert_eq!(a.get(&1), Some(1));
    }

    #[test]
    fn closures_may_use_another_map() {
        let a: M = (0..4).map(|i| (i, i)).collect();
        let b: M = (0..4).map(|i| (i, i * 10)).collect();
        let out = within(10, move || {
            a.compute(1, |v| Action::Set(v.unwrap() + b.get_or_insert_with(1, || 0)));
            b.compute(2, |_| Action::Set(a.get(&1).unwrap()));
            (a.get(&1), b.get(&2))
        })
        .unwrap();
        assert_eq!(out, (Some(11), Some(11)));
    }
}
