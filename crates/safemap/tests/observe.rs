//! The access hook: an `Observed` map reports every operation, the key's audit hash and the
//! outcome, once per call, for every strategy, and behaves as the map it wraps.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::for_every_strategy_on_plain_data;
// parking_lot rather than std: it is compiled with the tests, so TSAN sees its synchronization.
use parking_lot::Mutex;
use safemap::{
    Access, Action, ConcurrentMap, Maintenance, Observed, Operation, Outcome, ShardBalance,
    audit_hash,
};

/// Collects what it is told.
#[derive(Default)]
struct Recorder(
    Mutex<Vec<Access>>,
    Mutex<Vec<(Operation, Duration)>>,
    Mutex<Vec<(Operation, Maintenance, u32)>>,
    Mutex<Vec<ShardBalance>>,
);

impl safemap::Observer for Recorder {
    fn on_access(&self, access: Access) {
        self.0.lock().push(access);
    }

    fn on_lock_wait(&self, operation: Operation, waited: Duration) {
        self.1.lock().push((operation, waited));
    }

    fn on_maintenance(&self, operation: Operation, kind: Maintenance, count: u32, _: Duration) {
        self.2.lock().push((operation, kind, count));
    }

    fn on_balance(&self, balance: ShardBalance) {
        self.3.lock().push(balance);
    }
}

/// A key whose every value hashes alike, so all of them land in one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
struct Clumped(u32);

// SAFETY: `Clumped` is a `u32` (`repr(transparent)`): every bit pattern is valid, all zeros too,
// and it has no padding, so it is plain old data as `u32` is.
unsafe impl bytemuck::Zeroable for Clumped {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Clumped {}

impl std::hash::Hash for Clumped {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(0);
    }
}

fn keyed(operation: Operation, key: u32, outcome: Outcome) -> Access {
    Access {
        operation,
        key_hash: Some(audit_hash(&key)),
        outcome,
    }
}

fn whole(operation: Operation) -> Access {
    Access {
        operation,
        key_hash: None,
        outcome: Outcome::WholeMap,
    }
}

for_every_strategy_on_plain_data! {
    #[test]
    fn every_operation_is_reported_once_with_its_outcome() {
        use Operation::*;
        use Outcome::*;
        let map = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        assert_eq!(map.insert(1, 10), None);
        assert_eq!(map.insert(1, 11), Some(10));
        assert_eq!(map.get(&1), Some(11));
        assert_eq!(map.get(&2), None);
        assert_eq!(map.get_with(&1, |v| v + 1), Some(12));
        assert!(!map.contains_key(&3));
        assert_eq!(map.get_or_insert_with(2, || 20), 20);
        assert_eq!(map.get_or_insert_with(2, || unreachable!()), 20);
        assert_eq!(map.compute(3, |_| Action::Set(30)), None);
        assert_eq!(map.compute(3, |v| Action::Set(v.unwrap() + 1)), Some(30));
        assert_eq!(map.compute(4, |_| Action::Keep), None);
        assert_eq!(map.compute(3, |_| Action::Remove), Some(31));
        assert_eq!(map.remove_if(&2, |_, v| *v > 100), None);
        assert_eq!(map.remove(&2), Some(20));
        assert_eq!(map.remove(&2), None);
        map.retain(|_, _| true);
        assert_eq!(map.len(), 1);
        map.for_each(|_, _| {});
        assert_eq!(map.iter().count(), 1);
        drop(map.snapshot());
        map.clear();
        assert_eq!(map.update(&5, |v| *v += 1), None);
        map.update_or_insert_with(5, || 1, |v| *v += 1);
        assert_eq!(map.update(&5, |v| *v + 1), Some(3));
        map.update_or_insert_with(5, || unreachable!(), |v| *v += 1);
        assert_eq!(map.try_get_or_insert_with(6, || Err(())), Err(()));
        assert_eq!(map.try_get_or_insert_with(6, || Ok::<_, ()>(60)), Ok(60));
        assert_eq!(map.try_get_or_insert_with(6, || Ok::<_, ()>(61)), Ok(60));

        let expected = vec![
            keyed(Insert, 1, Inserted),
            keyed(Insert, 1, Replaced),
            keyed(Get, 1, Hit),
            keyed(Get, 2, Miss),
            keyed(GetWith, 1, Hit),
            keyed(ContainsKey, 3, Miss),
            keyed(GetOrInsertWith, 2, Inserted),
            keyed(GetOrInsertWith, 2, Hit),
            keyed(Compute, 3, Inserted),
            keyed(Compute, 3, Replaced),
            keyed(Compute, 4, Unchanged),
            keyed(Compute, 3, Removed),
            keyed(RemoveIf, 2, Unchanged),
            keyed(Remove, 2, Removed),
            keyed(Remove, 2, Unchanged),
            whole(Retain),
            whole(Len),
            whole(ForEach),
            whole(Iter),
            whole(Snapshot),
            whole(Clear),
            keyed(Update, 5, Unchanged),
            keyed(UpdateOrInsertWith, 5, Inserted),
            keyed(Update, 5, Replaced),
            keyed(UpdateOrInsertWith, 5, Replaced),
            keyed(TryGetOrInsertWith, 6, Unchanged),
            keyed(TryGetOrInsertWith, 6, Inserted),
            keyed(TryGetOrInsertWith, 6, Hit),
        ];
        assert_eq!(*map.observer().0.lock(), expected);
        assert!(map.observer().1.lock().is_empty(), "no lock was contended");
        assert_eq!(map.inner().len(), 2);
    }

    /// A writer that finds the key's lock held reports how long it waited; the holder does not.
    /// (Every strategy declares that a running closure holds up writers of its key.)
    #[test]
    fn a_contended_lock_reports_its_wait() {
        let declared = <Map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY;
        assert_ne!(declared.closure_blocks_writers, safemap::Blocks::Nothing);
        let hold = Duration::from_millis(60);
        let map = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        let (held_tx, held_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let map = &map;
            s.spawn(move || {
                map.compute(1, |_| {
                    held_tx.send(()).unwrap();
                    std::thread::sleep(hold);
                    Action::Keep
                });
            });
            held_rx.recv().unwrap();
            map.insert(1, 5);
        });
        let waits = map.observer().1.lock();
        assert_eq!(waits.len(), 1, "{waits:?}");
        let (operation, waited) = waits[0];
        assert_eq!(operation, Operation::Insert);
        // The insert started just after the holder signalled, so it waited nearly all of `hold`.
        assert!(waited >= hold / 2, "waited only {waited:?}");
    }

    /// Each strategy reports the maintenance it declares and no other: a strategy that publishes
    /// versions reports one per whole-map write; one whose tables resize reports their resizes, each
    /// resizing call followed by a shard census. Reads and overwrites of a grown table report
    /// nothing.
    #[test]
    fn growth_and_publishes_are_reported_as_maintenance() {
        let map = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        for k in 0..2000 {
            map.insert(k, k);
        }
        // One pass of overwrites may still grow a table that the last insert filled exactly.
        for k in 0..2000 {
            map.insert(k, k + 1);
        }
        let resizes_so_far = |map: &Observed<Map<u32, u32>, Recorder>| {
            let events = map.observer().2.lock();
            events.iter().filter(|e| e.1 == Maintenance::Resize).count()
        };
        let grown = resizes_so_far(&map);
        for k in 0..2000 {
            map.get(&k);
            map.insert(k, k + 2);
        }
        assert_eq!(resizes_so_far(&map), grown, "an overwrite of a grown table resized it");
        // Copies of whole tables are not resizes.
        map.for_each(|_, _| {});
        drop(map.snapshot());
        assert_eq!(resizes_so_far(&map), grown, "a copy was taken for a resize");
        let events = map.observer().2.lock();
        assert!(events.iter().all(|(op, _, _)| *op == Operation::Insert), "a read: {events:?}");
        let total = |kind| -> u32 { events.iter().filter(|e| e.1 == kind).map(|e| e.2).sum() };
        let balances = map.observer().3.lock();
        let declared = <Map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY;
        let reports = |kind| declared.maintenance.contains(&kind);
        assert!(events.iter().all(|e| reports(e.1)), "an undeclared kind: {events:?}");
        if reports(Maintenance::Publish) {
            // A single-key write stores one leaf; only whole-map writes publish a version.
            assert_eq!(total(Maintenance::Publish), 0);
        }
        if reports(Maintenance::Resize) {
            // Every table that holds entries has grown at least once from its first allocation.
            let resizes = total(Maintenance::Resize);
            let shards = map.shard_lengths().len() as u32;
            assert!(resizes >= shards, "{resizes} resizes over {shards} shards");
            // One table per call, or a ReadMostlyMap shard's two copies.
            let tables = events[0].2;
            assert!(tables == 1 || tables == 2, "{events:?}");
            assert!(events.iter().all(|e| e.2 == tables), "{events:?}");
            assert_eq!(balances.len(), events.len(), "a census after each resizing call");
            assert!(balances.iter().all(|b| b.shards == shards as usize && b.entries <= 2000));
        } else {
            assert!(balances.is_empty(), "{balances:?}");
        }
        drop((events, balances));
        // Nor is releasing them.
        map.clear();
        assert_eq!(resizes_so_far(&map), grown, "a release was taken for a resize");
        // A whole-map write that changes something publishes one version.
        map.insert(1, 1);
        map.retain(|k, _| *k != 1);
        let events = map.observer().2.lock();
        let published = events.iter().filter(|e| e.1 == Maintenance::Publish).count();
        assert_eq!(published, usize::from(reports(Maintenance::Publish)), "{events:?}");
    }

    /// Copying whole tables (`for_each`, `snapshot`) allocates, and dropping copies frees, but
    /// neither is a resize, even when copies of small and large shards are alive at once.
    #[test]
    fn whole_table_copies_are_not_resizes() {
        let map = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        // Unobserved: one key in the first shard, 200 in the last, the others allocated but empty.
        // (A strategy that reports no resizes has nothing to confuse; its parts may be chains that
        // multiply as the map grows, so it gets a plain map.)
        let declared = <Map<u32, u32> as ConcurrentMap<u32, u32>>::CONSISTENCY;
        let resizes = declared.maintenance.contains(&Maintenance::Resize);
        for k in (0..201).filter(|_| !resizes) {
            map.inner().insert(k, k);
        }
        let (first, last) = (0, map.shard_lengths().len() - 1);
        let mut kept = [0, 0];
        for k in (0..).take_while(|_| resizes) {
            let before = map.shard_lengths();
            map.inner().insert(k, k);
            let after = map.shard_lengths();
            let shard = (0..after.len()).find(|&i| after[i] != before[i]).unwrap();
            if shard == first && kept[0] < 1 {
                kept[0] += 1;
            } else if shard == last && kept[1] < 200 {
                kept[1] += 1;
            } else {
                map.inner().remove(&k);
            }
            if kept == [1, 200] {
                break;
            }
        }
        map.for_each(|_, _| {});
        drop(map.snapshot());
        let events = map.observer().2.lock();
        assert!(!events.iter().any(|e| e.1 == Maintenance::Resize), "{events:?}");
    }

    /// The census counts every shard's entries; a hash that sends every key to one shard shows as
    /// an imbalance equal to the shard count.
    #[test]
    fn the_shard_census_shows_a_skewed_hash() {
        let even = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        let clumped = Observed::new(Map::<Clumped, u32>::new(), Recorder::default());
        for k in 0..300 {
            even.insert(k, k);
            clumped.insert(Clumped(k), k);
        }
        let lengths = even.shard_lengths();
        assert_eq!(lengths.iter().sum::<usize>(), 300);
        let balance = even.report_balance();
        assert_eq!(*even.observer().3.lock().last().unwrap(), balance);
        assert_eq!((balance.shards, balance.entries), (lengths.len(), 300));
        assert_eq!(balance.largest, *lengths.iter().max().unwrap());

        let skewed = clumped.report_balance();
        assert_eq!((skewed.entries, skewed.largest), (300, 300));
        assert_eq!(skewed.imbalance(), skewed.shards as f64);
        if skewed.shards > 1 {
            assert!(balance.imbalance() < skewed.imbalance(), "{balance:?} vs {skewed:?}");
        }
    }

    /// Without resizes, a thread takes a census every `CENSUS_INTERVAL` observed calls.
    #[test]
    fn a_thread_takes_a_census_every_interval() {
        let map = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        for k in 0..100 {
            map.inner().insert(k, k);
        }
        // A fresh thread, so no earlier calls count towards its interval. Joined explicitly: a
        // join is what TSAN sees order the thread's accesses before the map's drop.
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                for i in 0..2 * safemap::CENSUS_INTERVAL - 1 {
                    map.get(&(i % 200));
                }
            });
            reader.join().unwrap();
        });
        let balances = map.observer().3.lock().clone();
        assert_eq!(balances.len(), 1, "{balances:?}");
        assert_eq!(balances[0].entries, 100);
    }

    #[test]
    fn accesses_from_many_threads_are_all_reported() {
        let map = Observed::new(Map::<u32, u32>::new(), Recorder::default());
        std::thread::scope(|s| {
            for t in 0..4 {
                let map = &map;
                s.spawn(move || {
                    for k in 0..100 {
                        map.insert(t * 100 + k, k);
                        map.get(&(t * 100 + k));
                    }
                });
            }
        });
        let log = map.observer().0.lock();
        assert_eq!(log.len(), 800);
        let hits = log.iter().filter(|a| a.outcome == Outcome::Hit).count();
        assert_eq!(hits, 400, "every read of a key its thread had written hits");
    }
}

/// The audit hash is SipHash-2-4 with the all-zero key. The vectors were computed by an
/// independent implementation of the reference algorithm (which reproduces the SipHash paper's
/// own vector, 0xa129ca6149be45e5 for key 00..0f and message 00..0e), so a change of algorithm,
/// key or crate version fails here.
#[cfg(target_endian = "little")]
#[test]
fn the_audit_hash_is_pinned_to_siphash_2_4() {
    assert_eq!(audit_hash(&42u64), 0x0fc2_553f_0761_9dd3);
    assert_eq!(audit_hash("device-7"), 0x43ae_8b23_e411_dd2a);
    assert_eq!(audit_hash(&(3u32, "x")), 0x2ece_ea4e_184b_7385);
}
