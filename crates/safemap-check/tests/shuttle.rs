//! Schedule exploration with shuttle: every strategy's histories stay linearizable under 1,000
//! random and 1,000 PCT schedules per plan (10,000 each for a slot reused under readers),
//! including the claim, hand-over and install of `get_or_insert_with`, and shuttle finds the
//! seeded check-then-act and unclaimed-init bugs.
//!
//! Built only with `--cfg shuttle`, which also routes safemap's locks through shuttle
//! (`crates/safemap/src/sync.rs`):
//! `RUSTFLAGS="--cfg shuttle" cargo test --release -p safemap-check --no-default-features --test shuttle`
//! (without the default features, the binary and RedisMap's client, which `--cfg shuttle` would
//! rebuild for nothing).
#![cfg(shuttle)]

use std::sync::Arc;

use safemap::fallible::{Local, TryConcurrentMap};
use safemap_check::check::check;
use safemap_check::history::{Clock, History, INIT_MARK, Key, Op, Val};
use safemap_check::run::{Config, plan, play};
use safemap_check::seeded::{Seeded, bug};

const SCHEDULES: usize = 1_000;
/// PCT's bug depth: how many forced preemptions a schedule may take.
const PCT_DEPTH: usize = 3;

/// Runs `plans` on a fresh `M` on shuttle threads and checks the history.
fn linearizable_run<M>(plans: Vec<Vec<Op>>, keys: Key)
where
    M: TryConcurrentMap<Key, Val> + Default + Send + Sync + 'static,
{
    let map = Arc::new(M::default());
    let declared = map.consistency();
    let clock = Arc::new(Clock::default());
    let handles: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(thread, ops)| {
            let (map, clock) = (Arc::clone(&map), Arc::clone(&clock));
            shuttle::thread::spawn(move || play(&*map, &*clock, thread, ops))
        })
        .collect();
    let events = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    if let Err(violation) = check(&History { events }, &declared, keys) {
        panic!("{violation}");
    }
}

fn random_plans(seed: u64) -> (Vec<Vec<Op>>, Key) {
    let config = Config {
        threads: 3,
        ops: 5,
        keys: 3,
        seed,
    };
    let plans = (0..config.threads)
        .map(|t| plan(&config, seed, t))
        .collect();
    (plans, config.keys)
}

/// Two readers that read repeatedly and one writer: among the schedules is one where a reader
/// sees the new value and the other reader then returns the old one, which a map that shows a
/// write to some readers before it is published to all would allow. (Readers take few steps and
/// a writer many, so they read several times to still be reading when the writer is half-way.)
fn publication_race() -> (Vec<Vec<Op>>, Key) {
    let plans = vec![
        vec![Op::Get(0); 4],
        vec![Op::Insert(0, 1)],
        vec![Op::Get(0); 2],
    ];
    (plans, 1)
}

/// A writer that frees a slot and fills it with another key, again and again, while readers look
/// the keys up: among the schedules are those where a reader is half-way through copying the
/// slot when it is refilled, which a map whose readers keep a copy without validating it turns
/// into a value from nowhere (`ScalablePodMap` reuses slots in place). Three keys on a fresh
/// map's two chains, so two of them share one whatever the hasher's seed, and each is refilled
/// twice, with a value no other key has.
fn slot_reuse_race() -> (Vec<Vec<Op>>, Key) {
    let refills = (0..6u8).flat_map(|round| {
        let key = round % 3;
        [Op::Insert(key, u64::from(round) + 1), Op::Remove(key)]
    });
    let plans = vec![
        refills.collect(),
        vec![
            Op::Get(1),
            Op::Get(2),
            Op::Get(0),
            Op::Get(1),
            Op::Get(2),
            Op::Get(0),
        ],
        vec![
            Op::Get(2),
            Op::Get(0),
            Op::Get(1),
            Op::Get(2),
            Op::Get(0),
            Op::Get(1),
        ],
    ];
    (plans, 3)
}

/// Writes racing whole-map operations that close the writers' gate (`len`, `snapshot`,
/// `clear`): among the schedules are those where a write has stored its entry but not yet counted
/// it when a closer arrives, which a gate that lets the closer go on before the writes under way
/// have left turns into a `len` or a snapshot that misses an entry a reader has already seen.
fn gate_race() -> (Vec<Vec<Op>>, Key) {
    let plans = vec![
        vec![
            Op::Insert(0, 1),
            Op::Insert(1, 2),
            Op::Remove(0),
            Op::Insert(2, 3),
        ],
        vec![Op::Get(0), Op::Len, Op::Get(1), Op::Len, Op::Snapshot],
        vec![Op::Snapshot, Op::Len, Op::Clear, Op::Len],
    ];
    (plans, 3)
}

/// Writes racing snapshots on a trie that changes in place (`SnapshotMap`, whose trie is binary
/// with two-entry leaves under shuttle, so three keys make branches): among the schedules are
/// those where two writes meet a branch older than the last snapshot and both go to copy it, or
/// a write splits a leaf a reader is in, or a snapshot is taken between a write's copy and its
/// store. A trie that changed an older branch in place, or lost a copy, would show a snapshot an
/// entry written after it, or a later read a value a copy dropped.
fn generation_race() -> (Vec<Vec<Op>>, Key) {
    let plans = vec![
        vec![
            Op::Insert(0, 1),
            Op::Insert(1, 2),
            Op::Insert(2, 3),
            Op::Remove(0),
            Op::Insert(0, 4),
        ],
        vec![Op::Snapshot, Op::Insert(1, 5), Op::Snapshot, Op::Get(2)],
        vec![Op::Get(0), Op::Insert(2, 6), Op::Snapshot, Op::Get(1)],
    ];
    (plans, 3)
}

/// Two writers handing keys over (one inserts, the other removes) while a third thread, whose
/// own key stays, asks `len` again and again: among the schedules are those where an insert and
/// the remove of its key land while `len` is between reading the two writers' counts, which a
/// `len` that read each count once, with no second look, would sum to a size the map never had.
fn len_race() -> (Vec<Vec<Op>>, Key) {
    let plans = vec![
        vec![Op::Insert(0, 1), Op::Len, Op::Len, Op::Len],
        vec![Op::Insert(1, 2), Op::Insert(2, 3)],
        vec![Op::Remove(1), Op::Remove(2)],
    ];
    (plans, 3)
}

/// An init that fails, racing another init and a plain write of its key: among the schedules
/// are those where the second init waits for the first's claim and takes over after the
/// failure, and those where the write lands while an init's closure runs and wins over it.
fn init_handover() -> (Vec<Vec<Op>>, Key) {
    let plans = vec![
        vec![Op::TryGetOrInsert(0, 1 | INIT_MARK)],
        vec![Op::GetOrInsert(0, 2 | INIT_MARK), Op::Get(0)],
        vec![Op::Insert(0, 4), Op::Get(0)],
    ];
    (plans, 1)
}

/// Inits racing on one key, one of them failing first: among the schedules are those where an
/// init's claim makes the others wait, and those where a waiter takes over after the failure;
/// a map that let two closures run for one stored value fails them.
fn init_race() -> (Vec<Vec<Op>>, Key) {
    let plans = vec![
        vec![
            Op::TryGetOrInsert(0, 1 | INIT_MARK),
            Op::GetOrInsert(0, 6 | INIT_MARK),
        ],
        vec![Op::GetOrInsert(0, 2 | INIT_MARK)],
        vec![Op::GetOrInsert(0, 4 | INIT_MARK), Op::Get(0)],
    ];
    (plans, 1)
}

fn explore<M>()
where
    M: TryConcurrentMap<Key, Val> + Default + Send + Sync + 'static,
{
    // The torn copy needs a reader preempted between two particular loads of one slot, which
    // few schedules do: that plan gets ten times as many.
    for ((plans, keys), schedules) in [
        (random_plans(1), SCHEDULES),
        (random_plans(2), SCHEDULES),
        (publication_race(), SCHEDULES),
        (slot_reuse_race(), 10 * SCHEDULES),
        (gate_race(), SCHEDULES),
        (generation_race(), SCHEDULES),
        (len_race(), 10 * SCHEDULES),
        (init_handover(), SCHEDULES),
        (init_race(), SCHEDULES),
    ] {
        let random = plans.clone();
        shuttle::check_random(
            move || linearizable_run::<M>(random.clone(), keys),
            schedules,
        );
        shuttle::check_pct(
            move || linearizable_run::<M>(plans.clone(), keys),
            schedules,
            PCT_DEPTH,
        );
    }
}

/// One schedule test per entry of `safemap::strategies!`, in a module named after it.
macro_rules! schedules {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
        $(
            mod $module {
                #[test]
                fn schedules() {
                    super::explore::<safemap::$map<super::Key, super::Val>>();
                }
            }
        )*
    };
}

safemap::strategies!(schedules!());

/// Two threads race `get_or_insert_with` on one absent key of a map `M` with a seeded init bug,
/// then read it: shuttle must find a schedule where the history is not linearizable because a
/// closure ran where it must not have (`bug` names the bug for the failure message).
fn assert_shuttle_finds_a_double_init<M>(bug: &str)
where
    M: TryConcurrentMap<Key, Val> + Default + Send + Sync + 'static,
{
    let racer = |v| vec![Op::GetOrInsert(0, v | INIT_MARK), Op::Get(0)];
    let plans = vec![racer(2), racer(4)];
    let found = std::panic::catch_unwind(|| {
        shuttle::check_random(move || linearizable_run::<M>(plans.clone(), 1), SCHEDULES)
    });
    let payload = found.expect_err(&format!("shuttle did not find the {bug}"));
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("not linearizable") && message.contains("closure ran"),
        "shuttle failed for another reason: {message:?}"
    );
}

/// The check-then-act map runs both closures and stores both values.
#[test]
fn shuttle_catches_check_then_act() {
    assert_shuttle_finds_a_double_init::<Local<Seeded<{ bug::CHECK_THEN_ACT }>>>(
        "check-then-act race",
    );
}

/// The unclaimed init makes values outside the lock without claiming the key: both closures
/// run and one value is thrown away.
#[test]
fn shuttle_catches_an_unclaimed_init() {
    assert_shuttle_finds_a_double_init::<Local<Seeded<{ bug::UNCLAIMED_INIT }>>>("unclaimed init");
}
