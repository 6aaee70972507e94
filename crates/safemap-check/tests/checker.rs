//! The checker accepts what is linearizable, rejects what is not, judges each strategy by what it
//! declares, and catches every seeded bug with a counterexample that is itself a failure.

use safemap::{Blocks, ConcurrentMap, Consistency, Cost, Once, WholeMap};
use safemap_check::check::{Judged, check};
use safemap_check::history::{Event, History, INIT_MARK, Key, MAX_KEYS, Op, Ret, Val};
use safemap_check::run::{Config, strategies};
use safemap_check::seeded::seeded_bugs;
use safemap_check::spec;
use safemap_check::wgl::{linearizable, linearizable_exhaustive, linearizable_within};

/// An event of `thread` spanning `[invoke, response]`.
fn ev(thread: usize, invoke: u64, response: u64, op: Op, ret: Ret) -> Event {
    Event {
        thread,
        op,
        ret,
        invoke,
        response,
    }
}

fn history(events: Vec<Event>) -> History {
    History { events }
}

fn declared(whole: WholeMap) -> Consistency {
    Consistency {
        len: whole,
        for_each: whole,
        iter: whole,
        retain: whole,
        clear: whole,
        snapshot: WholeMap::Atomic,
        snapshot_cost: Cost::Linear,
        update_in_place: true,
        reserves: true,
        maintenance: &[],
        closure_blocks_readers: Blocks::Map,
        closure_blocks_writers: Blocks::Map,
        once: Once::Always,
        rehashes_keys: true,
        frees_after_readers: false,
    }
}

const ATOMIC: WholeMap = WholeMap::Atomic;
const WEAK: WholeMap = WholeMap::WeaklyConsistent;

#[test]
fn overlapping_operations_may_take_effect_in_either_order() {
    // The get overlaps the insert, so it may see either the old or the new value.
    for seen in [None, Some(7)] {
        let h = history(vec![
            ev(0, 0, 3, Op::Insert(0, 7), Ret::Value(None)),
            ev(1, 1, 2, Op::Get(0), Ret::Value(seen)),
        ]);
        assert_eq!(
            check(&h, &declared(ATOMIC), 2).ok(),
            Some(Judged::Linearizable),
            "saw {seen:?}"
        );
    }
}

/// A search that runs out of its budget says so (`None`) rather than guess; with room, the same
/// histories are decided both ways. (The checker reports such a history as undecided: a whole-map
/// search of a ScalableMap history once grew past 11 GB.)
#[test]
fn search_past_its_budget_is_undecided() {
    let steps_of = |events: &[Event]| -> Vec<spec::Step> {
        (events.iter().enumerate())
            .flat_map(|(i, e)| spec::steps(i, e, &declared(ATOMIC), 2, false))
            .collect()
    };
    let empty = [None; MAX_KEYS];
    // Two overlapping inserts and a `len` during both that returned `len`.
    let with_len = |len| {
        vec![
            ev(0, 0, 9, Op::Insert(0, 7), Ret::Value(None)),
            ev(1, 1, 8, Op::Insert(1, 8), Ret::Value(None)),
            ev(2, 2, 7, Op::Len, Ret::Len(len)),
        ]
    };
    let good = with_len(1);
    assert_eq!(linearizable(&good, &steps_of(&good), empty), Some(true));
    assert_eq!(linearizable_within(&good, &steps_of(&good), empty, 1), None);
    let bad = with_len(3);
    assert_eq!(linearizable(&bad, &steps_of(&bad), empty), Some(false));
    assert_eq!(linearizable_within(&bad, &steps_of(&bad), empty, 1), None);
}

/// The search that takes commuting steps alone decides every history as the exhaustive one does:
/// histories of three seeded bugs (many not linearizable) and of two real strategies, searched
/// whole and key by key, as the checker declares them.
#[test]
fn search_taking_commuting_steps_alone_changes_no_verdict() {
    use safemap::fallible::Local;
    use safemap_check::run::record;
    use safemap_check::seeded::{Seeded, bug};

    fn compare<M>(map_of: impl Fn() -> M, histories: u64) -> (usize, usize)
    where
        M: safemap::fallible::TryConcurrentMap<Key, Val> + Sync,
    {
        let config = Config {
            threads: 3,
            ops: 8,
            keys: 3,
            seed: 5,
        };
        let (mut linearizable_parts, mut failing_parts) = (0, 0);
        for seed in 0..histories {
            let map = map_of();
            let history = record(&map, &config, seed);
            let declared = map.consistency();
            let events = &history.events;
            let parts = (0..config.keys).map(Some).chain([None]).map(|key| {
                (events.iter().enumerate())
                    .flat_map(|(i, e)| spec::steps(i, e, &declared, config.keys, key.is_some()))
                    .filter(|s| key.is_none_or(|k| s.scope == spec::Scope::Key(k)))
                    .collect::<Vec<_>>()
            });
            for steps in parts {
                let fast = linearizable(events, &steps, [None; MAX_KEYS]);
                assert_eq!(
                    fast,
                    linearizable_exhaustive(events, &steps, [None; MAX_KEYS]),
                    "seed {seed}: {events:?}"
                );
                match fast {
                    Some(true) => linearizable_parts += 1,
                    Some(false) => failing_parts += 1,
                    None => {}
                }
            }
        }
        (linearizable_parts, failing_parts)
    }
    let (_, lost) = compare(Local::<Seeded<{ bug::LOST_UPDATE }>>::default, 300);
    let (_, stale) = compare(Local::<Seeded<{ bug::STALE_READ }>>::default, 300);
    let (_, overcounted) = compare(Local::<Seeded<{ bug::OVERCOUNTING_LEN }>>::default, 300);
    assert!(
        lost > 0 && stale > 0 && overcounted > 0,
        "{lost} {stale} {overcounted}"
    );
    let (passed, failed) = compare(safemap::ScalableMap::<Key, Val>::default, 300);
    assert!(passed > 0 && failed == 0, "{passed} {failed}");
    let (passed, failed) = compare(safemap::ShardedMap::<Key, Val>::default, 300);
    assert!(passed > 0 && failed == 0, "{passed} {failed}");
}

/// A ScalableMap history from the stress-cfg run in CI: one thread's weakly consistent `retain`
/// (one step per key) spans most of the others' operations, two atomic `len`s among them. The
/// search without the commuting-step rule passed its budget of states undecided (and, before the
/// budget, held 11 GB); with it the history is decided.
#[test]
fn search_decides_a_long_weakly_consistent_retain() {
    let events: Vec<Event> =
        serde_json::from_str(include_str!("histories/long-retain.json")).expect("valid events");
    let declared = <safemap::ScalableMap<Key, Val> as ConcurrentMap<Key, Val>>::CONSISTENCY;
    assert_eq!(
        check(&history(events), &declared, 8).ok(),
        Some(Judged::Linearizable)
    );
}

/// Histories from a stress-cfg soak whose whole-map search passed its budget undecided: one
/// thread's weakly consistent `retain` (one step per key) spans most of the others' operations,
/// with atomic `len`s beside it, and atomic `for_each`es (ReadMostlyMap's) or an atomic `clear`
/// (ScalablePodMap's); every key step conflicted with those. Now a key step commutes with a
/// count if it leaves its key present (or absent), with reads of every entry or of its key if it
/// leaves the key as it was, and with one change of the whole map if it does the same on either
/// side of it; both are decided.
#[test]
fn search_decides_a_retain_beside_counts_reads_and_a_clear() {
    let cases = [
        (
            include_str!("histories/read-mostly-len-retain.json"),
            <safemap::ReadMostlyMap<Key, Val> as ConcurrentMap<Key, Val>>::CONSISTENCY,
        ),
        (
            include_str!("histories/clear-among-retains.json"),
            <safemap::ScalablePodMap<Key, Val> as ConcurrentMap<Key, Val>>::CONSISTENCY,
        ),
    ];
    for (json, declared) in cases {
        let events: Vec<Event> = serde_json::from_str(json).expect("valid events");
        assert_eq!(
            check(&history(events), &declared, 8).ok(),
            Some(Judged::Linearizable)
        );
    }
}

/// A `compute` that keeps 6 but stores 8 where a `clear` left nothing, beside that `clear` and an
/// atomic `retain` (which keeps 6 and 8): only an order with the `compute` after the `clear`
/// explains the read of 8 after them. The `compute` commutes with the `retain` but not with the
/// `clear`, so the search must not take it alone: one that judged it against the `retain` only
/// would put it first and reject the history.
#[test]
fn a_step_two_whole_map_changes_could_precede_is_not_taken_alone() {
    let h = history(vec![
        ev(0, 0, 1, Op::Insert(0, 6), Ret::Value(None)),
        ev(1, 2, 9, Op::Clear, Ret::Unit),
        ev(2, 3, 9, Op::RetainEven, Ret::Unit),
        ev(0, 4, 8, Op::Compute(0, 8), Ret::Value(None)),
        ev(0, 10, 11, Op::Get(0), Ret::Value(Some(8))),
    ]);
    assert_eq!(
        check(&h, &declared(ATOMIC), 1).ok(),
        Some(Judged::Linearizable)
    );
}

#[test]
fn a_read_after_a_completed_write_must_see_it() {
    let h = history(vec![
        ev(0, 0, 1, Op::Insert(0, 7), Ret::Value(None)),
        ev(1, 2, 3, Op::Get(0), Ret::Value(None)),
    ]);
    let violation = check(&h, &declared(ATOMIC), 2).unwrap_err();
    assert_eq!(violation.key, Some(0));
    assert_eq!(violation.events.len(), 2);
}

#[test]
fn a_value_from_nowhere_is_rejected() {
    let h = history(vec![ev(0, 0, 1, Op::Get(1), Ret::Value(Some(5)))]);
    assert!(check(&h, &declared(ATOMIC), 2).is_err());
}

#[test]
fn two_closures_winning_one_absent_key_is_rejected() {
    let h = history(vec![
        ev(
            0,
            0,
            3,
            Op::GetOrInsert(0, 1),
            Ret::Inserted {
                value: 1,
                ran: true,
            },
        ),
        ev(
            1,
            1,
            2,
            Op::GetOrInsert(0, 2),
            Ret::Inserted {
                value: 2,
                ran: true,
            },
        ),
    ]);
    assert!(check(&h, &declared(ATOMIC), 1).is_err());
    // One winner, one loser that returns the winner's value, is fine in either order.
    let h = history(vec![
        ev(
            0,
            0,
            3,
            Op::GetOrInsert(0, 1),
            Ret::Inserted {
                value: 2,
                ran: false,
            },
        ),
        ev(
            1,
            1,
            2,
            Op::GetOrInsert(0, 2),
            Ret::Inserted {
                value: 2,
                ran: true,
            },
        ),
    ]);
    assert_eq!(
        check(&h, &declared(ATOMIC), 1).ok(),
        Some(Judged::Linearizable)
    );
}

#[test]
fn a_lost_compute_update_is_rejected() {
    // Both computes displaced the same even value: one of them missed the other's write.
    let h = history(vec![
        ev(0, 0, 1, Op::Insert(0, 2), Ret::Value(None)),
        ev(1, 2, 5, Op::Compute(0, 4), Ret::Value(Some(2))),
        ev(2, 3, 6, Op::Compute(0, 8), Ret::Value(Some(2))),
    ]);
    assert!(check(&h, &declared(ATOMIC), 1).is_err());
}

/// `for_each` sees k1's later insert but not k0's earlier one. No single instant explains that,
/// but each key seen at its own instant does: an atomic claim fails, a weak one passes.
#[test]
fn whole_map_operations_are_judged_by_the_declared_consistency() {
    let torn = history(vec![
        ev(0, 0, 10, Op::ForEach, Ret::Entries(vec![(1, 9)])),
        ev(1, 1, 2, Op::Insert(0, 8), Ret::Value(None)),
        ev(1, 3, 4, Op::Insert(1, 9), Ret::Value(None)),
    ]);
    let violation = check(&torn, &declared(ATOMIC), 2).unwrap_err();
    assert_eq!(violation.key, None, "only the whole-map model can see this");
    assert_eq!(
        check(&torn, &declared(WEAK), 2).ok(),
        Some(Judged::Linearizable)
    );

    // A len above every size the map had during the call fails whether exact or weak.
    let miscounted = history(vec![
        ev(0, 0, 1, Op::Insert(0, 8), Ret::Value(None)),
        ev(0, 2, 3, Op::Len, Ret::Len(2)),
    ]);
    assert!(check(&miscounted, &declared(ATOMIC), 2).is_err());
    assert_eq!(
        check(&miscounted, &declared(WEAK), 2).unwrap_err().key,
        None
    );
    // So does one below them.
    let undercounted = history(vec![
        ev(0, 0, 1, Op::Insert(0, 8), Ret::Value(None)),
        ev(0, 2, 3, Op::Len, Ret::Len(0)),
    ]);
    assert!(check(&undercounted, &declared(WEAK), 2).is_err());

    // A len during a clear of two keys that counts one: no instant had one entry, so an exact
    // len fails, but 1 lies between the sizes before (2) and after (0), so a weak one passes.
    let mid_clear = history(vec![
        ev(0, 0, 1, Op::Insert(0, 8), Ret::Value(None)),
        ev(0, 2, 3, Op::Insert(1, 9), Ret::Value(None)),
        ev(0, 4, 10, Op::Clear, Ret::Unit),
        ev(1, 5, 9, Op::Len, Ret::Len(1)),
    ]);
    assert!(check(&mid_clear, &declared(ATOMIC), 2).is_err());
    assert_eq!(
        check(&mid_clear, &declared(WEAK), 2).ok(),
        Some(Judged::Linearizable)
    );
    // Its bounds come from the call's own interval: after the clear has returned, 1 is too many.
    let after_clear = history(vec![
        ev(0, 0, 1, Op::Insert(0, 8), Ret::Value(None)),
        ev(0, 2, 3, Op::Insert(1, 9), Ret::Value(None)),
        ev(0, 4, 5, Op::Clear, Ret::Unit),
        ev(1, 6, 7, Op::Len, Ret::Len(1)),
    ]);
    assert!(check(&after_clear, &declared(WEAK), 2).is_err());

    // Snapshots are point-in-time whatever else a strategy declares.
    let torn_snapshot = history(vec![
        ev(0, 0, 10, Op::Snapshot, Ret::Entries(vec![(1, 9)])),
        ev(1, 1, 2, Op::Insert(0, 8), Ret::Value(None)),
        ev(1, 3, 4, Op::Insert(1, 9), Ret::Value(None)),
    ]);
    assert!(check(&torn_snapshot, &declared(WEAK), 2).is_err());
}

#[test]
fn in_place_updates_and_fallible_inits_are_judged() {
    // Two overlapping updates that both replaced the same value lost one of the two writes.
    let lost = history(vec![
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Value(None)),
        ev(1, 2, 5, Op::Update(0, 2), Ret::Value(Some(1))),
        ev(2, 3, 6, Op::Update(0, 3), Ret::Value(Some(1))),
    ]);
    assert!(check(&lost, &declared(ATOMIC), 1).is_err());
    let ordered = history(vec![
        ev(0, 0, 1, Op::Insert(0, 1), Ret::Value(None)),
        ev(1, 2, 5, Op::Update(0, 2), Ret::Value(Some(3))),
        ev(2, 3, 6, Op::Update(0, 3), Ret::Value(Some(1))),
    ]);
    assert_eq!(
        check(&ordered, &declared(ATOMIC), 1).ok(),
        Some(Judged::Linearizable)
    );
    // An update of an absent key inserts nothing; an upsert does.
    let phantom = history(vec![
        ev(0, 0, 1, Op::Update(0, 2), Ret::Value(None)),
        ev(0, 2, 3, Op::Get(0), Ret::Value(Some(2))),
    ]);
    assert!(check(&phantom, &declared(ATOMIC), 1).is_err());
    let upserted = history(vec![
        ev(0, 0, 1, Op::Upsert(0, 2), Ret::Value(Some(2))),
        ev(0, 2, 3, Op::Get(0), Ret::Value(Some(2))),
    ]);
    assert_eq!(
        check(&upserted, &declared(ATOMIC), 1).ok(),
        Some(Judged::Linearizable)
    );
    // A failed init stores nothing, so a later read of its value is impossible.
    let failed = history(vec![
        ev(0, 0, 1, Op::TryGetOrInsert(0, 3), Ret::Failed),
        ev(0, 2, 3, Op::Get(0), Ret::Value(Some(3))),
    ]);
    assert!(check(&failed, &declared(ATOMIC), 1).is_err());
    // And an even value cannot fail.
    let wrongly_failed = history(vec![ev(0, 0, 1, Op::TryGetOrInsert(0, 4), Ret::Failed)]);
    assert!(check(&wrongly_failed, &declared(ATOMIC), 1).is_err());
}

/// An init whose closure ran but whose value was not stored is judged by who stored the value
/// it returned: a plain write that landed while the closure ran may win, another init may not
/// (its closure and this one both ran for one stored value).
#[test]
fn an_init_that_ran_for_nothing_is_judged_by_who_stored_the_value() {
    let (init_a, init_b) = (2 | INIT_MARK, 4 | INIT_MARK);
    let lost_to_a_write = history(vec![
        ev(
            0,
            0,
            5,
            Op::GetOrInsert(0, init_a),
            Ret::Inserted {
                value: 9,
                ran: true,
            },
        ),
        ev(1, 1, 2, Op::Insert(0, 9), Ret::Value(None)),
    ]);
    assert_eq!(
        check(&lost_to_a_write, &declared(ATOMIC), 1).ok(),
        Some(Judged::Linearizable)
    );
    let lost_to_an_init = history(vec![
        ev(
            0,
            0,
            5,
            Op::GetOrInsert(0, init_a),
            Ret::Inserted {
                value: init_b,
                ran: true,
            },
        ),
        ev(
            1,
            1,
            2,
            Op::GetOrInsert(0, init_b),
            Ret::Inserted {
                value: init_b,
                ran: true,
            },
        ),
    ]);
    assert!(check(&lost_to_an_init, &declared(ATOMIC), 1).is_err());
    // Waiting for the other init and taking its value, without running, is right.
    let waited = history(vec![
        ev(
            0,
            0,
            5,
            Op::GetOrInsert(0, init_a),
            Ret::Inserted {
                value: init_b,
                ran: false,
            },
        ),
        ev(
            1,
            1,
            2,
            Op::GetOrInsert(0, init_b),
            Ret::Inserted {
                value: init_b,
                ran: true,
            },
        ),
    ]);
    assert_eq!(
        check(&waited, &declared(ATOMIC), 1).ok(),
        Some(Judged::Linearizable)
    );
}

#[test]
fn every_strategy_passes() {
    let config = Config {
        threads: 3,
        ops: 8,
        keys: 4,
        seed: 11,
    };
    for strategy in strategies() {
        let report = (strategy.check)(&config, 300);
        assert_eq!(report.histories, 300);
        assert_eq!(
            report.violations, 0,
            "{}: {:?}",
            strategy.name, report.first
        );
        assert!(
            report.overlapping > 0,
            "{}: no operation overlapped",
            strategy.name
        );
    }
}

#[test]
fn every_seeded_bug_is_caught_with_a_sound_counterexample() {
    let config = Config {
        threads: 3,
        ops: 8,
        keys: 4,
        seed: 5,
    };
    let bugs = seeded_bugs();
    assert_eq!(bugs.len(), 5);
    for bug in bugs {
        let report = (bug.check)(&config, 2_000);
        assert!(report.violations > 0, "{} was not caught", bug.name);
        let (_, violation) = report.first.expect("a counterexample");
        let shown = violation.to_string();
        assert!(shown.contains("not linearizable"), "{shown}");
        assert!(shown.lines().count() > violation.events.len(), "{shown}");
        // The shrunk counterexample fails on its own: it is evidence, not a fragment.
        let alone = History {
            events: violation.events.clone(),
        };
        let declared = <safemap::LockedMap<u8, u64> as ConcurrentMap<u8, u64>>::CONSISTENCY;
        assert!(
            check(&alone, &declared, config.keys).is_err(),
            "{}: {shown}",
            bug.name
        );
    }
}

#[test]
fn bad_shapes_are_refused() {
    let bad = [
        Config {
            keys: 9,
            ..Config::default()
        },
        Config {
            keys: 0,
            ..Config::default()
        },
        Config {
            threads: 0,
            ..Config::default()
        },
    ];
    for config in bad {
        assert!(config.validate().is_err(), "{config:?}");
    }
    assert!(Config::default().validate().is_ok());
}

/// The in-process halves; `cli.rs` runs the two-process ones and the seeded bug, which start
/// the `safemap-check` binary as their second process.
#[cfg(feature = "redis")]
#[test]
fn redis_map_passes_in_both_layouts() {
    let config = Config::default();
    let in_process = safemap_check::remote::redis_contestants()
        .into_iter()
        .filter(|c| !c.name.ends_with("two-processes"));
    for contestant in in_process {
        let report = (contestant.check)(&config, 200);
        assert_eq!(
            report.violations, 0,
            "{}: {:?}",
            contestant.name, report.first
        );
        assert!(
            report.overlap_share() > 0.5,
            "{}: histories did not overlap",
            contestant.name
        );
    }
}
