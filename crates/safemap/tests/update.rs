//! In-place updates and fallible init, for every strategy: `update` and `update_or_insert_with`
//! run their closure exactly once and change the value in place where the strategy declares
//! `update_in_place` (appending to a 1 MiB `Vec` with room to spare allocates nothing), or a
//! clone otherwise; `try_get_or_insert_with` stores nothing on `Err`. The tests whose values are
//! plain old data run on the `pod` strategies too.

mod common;

use common::alloc::{Counting, allocated_by};
use common::for_every_strategy;
use safemap::ConcurrentMap;

#[global_allocator]
static COUNTING: Counting = Counting;

const MIB: usize = 1 << 20;

for_every_strategy! {
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn declared() -> safemap::Consistency {
        <Map<u32, Vec<u8>> as ConcurrentMap<u32, Vec<u8>>>::CONSISTENCY
    }

    #[test]
    fn update_changes_a_present_value_once_and_nothing_else() {
        let m: Map<u32, Vec<u8>> = Map::new();
        m.insert(1, vec![1]);
        let runs = AtomicUsize::new(0);
        let len = m.update(&1, |v| {
            runs.fetch_add(1, Ordering::Relaxed);
            v.push(2);
            v.len()
        });
        assert_eq!((len, runs.load(Ordering::Relaxed)), (Some(2), 1));
        assert_eq!(m.get(&1), Some(vec![1, 2]));
        assert_eq!(m.update(&7, |_| unreachable!("absent")), None::<()>);
        assert!(!m.contains_key(&7));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn appending_to_a_large_value_copies_it_only_where_declared() {
        let m: Map<u32, Vec<u8>> = Map::new();
        let mut big = Vec::with_capacity(MIB + 64);
        big.resize(MIB, 7u8);
        m.insert(1, big);
        let (_, bytes) = allocated_by(|| m.update(&1, |v| v.push(1)));
        if declared().update_in_place {
            assert_eq!(bytes, 0, "an in-place update allocated");
        } else {
            assert!(bytes >= MIB, "a copying update allocated only {bytes} bytes");
        }
        let (_, bytes) = allocated_by(|| m.update_or_insert_with(1, Vec::new, |v| v.push(2)));
        assert_eq!(bytes == 0, declared().update_in_place, "{bytes} bytes");
        assert_eq!(m.get_with(&1, |v| (v.len(), v[MIB], v[MIB + 1])), Some((MIB + 2, 1, 2)));
    }

    #[test]
    fn update_or_insert_with_makes_only_when_absent() {
        let m: Map<&str, Vec<u32>> = Map::new();
        let (makes, changes) = (AtomicUsize::new(0), AtomicUsize::new(0));
        for (group, member) in [("a", 1), ("b", 2), ("a", 3)] {
            let len = m.update_or_insert_with(
                group,
                || { makes.fetch_add(1, Ordering::Relaxed); Vec::new() },
                |members| { changes.fetch_add(1, Ordering::Relaxed); members.push(member); members.len() },
            );
            assert_eq!(len, if member == 3 { 2 } else { 1 });
        }
        assert_eq!((makes.into_inner(), changes.into_inner()), (2, 3));
        assert_eq!(m.get("a"), Some(vec![1, 3]));
        assert_eq!(m.get("b"), Some(vec![2]));
    }
}

/// What holds with plain-old-data values too, on every strategy, `pod` ones included.
mod plain_values {
    crate::common::for_every_strategy_on_plain_data! {
        use safemap::ConcurrentMap;

        fn declared() -> safemap::Consistency {
            <Map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY
        }

        #[test]
        fn a_panic_in_update_or_insert_with_stores_nothing_for_an_absent_key() {
            let m: Map<u32, u32> = Map::new();
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                m.update_or_insert_with(1, || 10, |_| panic!("change fails"))
            }));
            assert!(panicked.is_err());
            assert!(!m.contains_key(&1));
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                m.update_or_insert_with(1, || panic!("make fails"), |v: &mut u32| *v)
            }));
            assert!(panicked.is_err());
            assert!(m.is_empty());
            // A panic in `update` leaves a copying strategy's value as it was, and an in-place one's
            // as far as the closure got.
            m.insert(2, 20);
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                m.update(&2, |v| { *v += 1; panic!("half-way") })
            }));
            assert!(panicked.is_err());
            let expected = if declared().update_in_place { 21 } else { 20 };
            assert_eq!(m.get(&2), Some(expected));
            assert_eq!(m.update(&2, |v| { *v += 1; *v }), Some(expected + 1));
        }

        #[test]
        fn try_get_or_insert_with_stores_nothing_on_err() {
            let m: Map<u32, u32> = Map::new();
            assert_eq!(m.try_get_or_insert_with(1, || Err::<u32, _>("offline")), Err("offline"));
            assert!(m.is_empty());
            assert_eq!(m.try_get_or_insert_with(1, || Ok::<_, &str>(42)), Ok(42));
            let again = m.try_get_or_insert_with(1, || -> Result<u32, &str> { unreachable!() });
            assert_eq!(again, Ok(42));
            assert_eq!(m.len(), 1);
        }
    }
}
