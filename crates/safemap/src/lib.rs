//! Concurrency-safe hash maps that never hand out a lock guard, each with a declared consistency
//! contract.
//!
//! Every strategy implements one trait, [`ConcurrentMap`]. Its methods take `&self`, return owned
//! data, and never return a guard, so a caller cannot deadlock the map by holding a guard across
//! another call or across an `.await`. Each strategy states in
//! [`ConcurrentMap::CONSISTENCY`] what it guarantees for the operations that touch the whole map.
//!
//! ```
//! use safemap::{Action, ConcurrentMap, ShardedMap};
//!
//! let registry: ShardedMap<u64, String> = ShardedMap::new();
//! std::thread::scope(|s| {
//!     for t in 0..4u64 {
//!         let registry = &registry;
//!         s.spawn(move || {
//!             for id in 0..100 {
//!                 // Computed once per device, however many threads ask for it.
//!                 registry.get_or_insert_with(id, || format!("fp-{id:08x}"));
//!             }
//!             registry.compute(1_000 + t, |_| Action::Set(format!("thread-{t}")));
//!         });
//!     }
//! });
//! assert_eq!(registry.len(), 104);
//! assert_eq!(registry.get(&7).as_deref(), Some("fp-00000007"));
//! ```
//!
//! Coming from another map? [`switching`] maps each API you know to safemap's.
//!
//! # Choosing a strategy
//!
//! | strategy | reads | writes | `for_each` / `retain` | snapshot | use when |
//! |---|---|---|---|---|---|
//! | [`LockedMap`] | one shared lock | one exclusive lock | atomic | O(n) copy | small maps, low contention, the reference |
//! | [`ShardedMap`] | shard shared lock | shard exclusive lock | one shard at a time | O(n) copy, all shards locked | general purpose, write-heavy |
//! | [`SnapshotMap`] | no lock, no shared write: a guard in the thread's own slot, then a trie of branches and small leaves | one branch locked, the key's leaf copied with the change; [`SnapshotMap::write_batch`] | atomic, on a snapshot | O(1) in the map's size | configuration, routing tables and registries that need consistent views |
//! | [`ReadMostlyMap`] | no lock, no shared write: one of two table copies | per-shard lock, applied to both copies | `for_each` atomic, on a copy; `retain` shard by shard | O(n) copy | `sync.Map` users: read-mostly caches |
//! | [`ScalableMap`] | no lock, no shared write: a guard in the thread's own slot, then a cache-line bucket of pointers to immutable entries | one bucket chain locked; growth moves a chain per write | chain by chain | O(n) copy, writers held back | hot maps read from many cores; keys and values `Clone` |
//! | [`ScalablePodMap`] | no lock, no shared write: an announcement in the thread's own line (no locked instruction), then the key's 16-byte line of tags (a dense array that stays cached) and the one slot whose tag matches, copied and validated by the line's version | as `ScalableMap`, storing words in place: no allocation | chain by chain | O(n) copy, writers held back | `ScalableMap` for plain-old-data keys and values (`u64 -> u64`) |
//!
//! Each strategy declares its [`Consistency`].
//!
//! Which is fastest depends on the machine, the load and the map's size. A lock-based read writes
//! its lock's word. Where the map fits in the caches, that word moving between the cores is a
//! large part of a read on two threads: [`LockedMap`], with one lock, does fewer operations on two
//! threads than on one, and [`ShardedMap`] gains less from the second core than the maps whose
//! reads write only their own thread's line. Where every lookup misses the caches, the miss hides
//! it. The README's ReadHeavy figures (98% lookups; median Mops/s of three runs at 4549c0e on a
//! 2-core machine, at one / two threads; the README has the command, every workload and the
//! ranges):
//!
//! | map | 64k keys (cache-resident) | 1M keys (past the caches) | a read writes |
//! |---|---|---|---|
//! | [`LockedMap`] | 63.1 / 26.2 | 33.7 / 25.3 | the map's lock word |
//! | [`ShardedMap`] | 62.3 / 85.7 | 27.8 / 57.3 | its shard's lock word |
//! | [`ReadMostlyMap`] | 61.6 / 105.8 | 25.9 / 47.6 | its thread's own slot (an `xchg`) |
//! | [`SnapshotMap`] | 37.4 / 64.7 | 9.0 / 20.5 | its thread's own slot (seize's guard) |
//! | [`ScalableMap`] | 44.8 / 96.7 | 10.6 / 21.2 | its thread's own slot (seize's guard) |
//! | [`ScalablePodMap`] | 62.3 / 117.5 | 26.5 / 47.1 | its thread's own line (plain stores) |
//! | best peer crate, cell by cell | 64.9 / 110.7 | 28.7 / 50.7 | |
//!
//! So [`ShardedMap`] is the default to reach for, and where a small map is read from many cores,
//! [`ScalablePodMap`] gains the most from each added core. [`SnapshotMap`]'s reads scale as
//! well, and so do its writes, which lock one branch of its trie each; its lookup walks a root,
//! a branch or two and a leaf, which costs it on one thread and past the caches. On one
//! thread a Scalable map's lookup costs 30 to 40 instructions more than `ShardedMap`'s
//! (callgrind at ebcc345, ReadHeavy at 64k keys: `ScalablePodMap` 205.6 and `ScalableMap` 216.6
//! against 176.6 an operation, the benchmark's own work included). `safemap-bench advise`
//! measures the candidates on a given machine, workload and size, and recommends one.
//!
//! # Deadlines
//!
//! [`LockedMap`] and [`ShardedMap`] also implement [`DeadlineMap`]: `try_get_until`, `try_insert_until`,
//! `try_remove_until` and `try_compute_until` wait for a lock no later than a deadline (Go's
//! context-bound access), then return [`TimedOut`] with the map unchanged and the inputs handed back.
//! [`SnapshotMap`] implements it too: its reads never wait, and its writes give up at the deadline
//! while they wait for their branch's lock or for a snapshot or batch under way. So do [`ScalableMap`] and [`ScalablePodMap`]: their reads take no lock,
//! and their writes wait only for their chain's lock (and for a `len`, `clear` or `snapshot` under
//! way); a write with a deadline leaves moving chains of a resize to the others. [`ReadMostlyMap`]
//! does not: after a write becomes visible it must wait for the readers of the old copy, and that
//! wait cannot be abandoned half-way.
//!
//! # Coming from Go
//!
//! | Go pattern | safemap |
//! |---|---|
//! | `sync.RWMutex` + `map[K]V` | [`LockedMap`] |
//! | power-of-two sharded, padded `RWMutex` maps | [`ShardedMap`] (shards locked in ascending order for whole-map operations, so they cannot deadlock) |
//! | `sync.Map` | [`ReadMostlyMap`], whose docs map every `sync.Map` method to its name here |
//! | `atomic.Value` holding an immutable map, copied on write | [`SnapshotMap`]: the same O(1) snapshots and lock-free reads, with writers that lock one branch each (no load-copy-store race loses an update) and copy one small leaf, not the map |
//! | `mu.Lock(); v := m[k]; m[k] = f(v); mu.Unlock()` | [`compute`](ConcurrentMap::compute), whose closure runs exactly once |
//!
//! Go's `LoadOrStore` takes a ready value; [`get_or_insert_with`](ConcurrentMap::get_or_insert_with)
//! takes a closure and runs it at most once per value stored, with no lock held, so an expensive
//! value is built once and its build stalls no other key.
//!
//! # Waiting, and async code
//!
//! No method returns a guard, so no lock is ever held across an `.await`. What can wait, and for
//! what:
//! - single-key methods wait only for their shard's lock (the whole map's in `LockedMap`), held
//!   by another call for one operation, or for a closure of `compute`, `update`, `remove_if` or
//!   `get_with` on that shard ([`Consistency::closure_blocks_readers`] and
//!   [`Consistency::closure_blocks_writers`] say who waits for those in each strategy);
//!   `ReadMostlyMap`'s writers also wait for readers to leave the copy they change, and
//!   `SnapshotMap`'s for their branch's lock, or a snapshot or batch under way; `ScalableMap`'s
//!   reads never wait
//!   (`ScalablePodMap`'s retry while a writer is storing into their bucket: a few word stores,
//!   never a closure), and the writes of both wait for their chain's lock, or for a `len`,
//!   `clear` or `snapshot` under way;
//! - `len`, `clear`, `snapshot` and `Clone` wait for every shard's lock in turn (in
//!   the ScalableMaps, for the writes under way, holding new ones back; their `len` does so only
//!   when writes keep it from finding a moment between them); `iter` and `for_each`
//!   for one shard's at a time (the ScalableMaps' for none);
//! - [`get_or_insert_with`](ConcurrentMap::get_or_insert_with) and
//!   [`try_get_or_insert_with`](ConcurrentMap::try_get_or_insert_with) run their closure with no
//!   lock held; a caller for a key whose closure is running parks until it is done (and nobody
//!   else waits for it);
//! - [`SafeMap::get_or_insert_with_async`] and [`SafeMap::try_get_or_insert_with_async`] take a
//!   closure returning a future: a caller for a key being made awaits a notification instead of
//!   parking, so it never blocks an executor thread, and dropping an init's future half-way
//!   releases its key to the next caller. They depend on no runtime.
//!
//! The blocking methods are safe to call from async code: nothing they lock outlives the call,
//! so nothing is held across an `.await`, and their waits last as long as other calls'
//! operations or closures on the same shard. So in a tokio worker keep closures that run under a
//! lock short, as any blocking code; a slow init belongs in `get_or_insert_with_async`
//! (`cargo run -p safemap --example async_cache`).
//!
//! ```
//! use std::sync::Arc;
//! use safemap::{ConcurrentMap, ShardedMap};
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let profiles: Arc<ShardedMap<u64, String>> = Arc::new(ShardedMap::new());
//! let tasks: Vec<_> = (0..4).map(|_| {
//!     let profiles = Arc::clone(&profiles);
//!     tokio::spawn(async move {
//!         // One task fetches (here, pretends to); the others await its value.
//!         profiles.get_or_insert_with_async(42, || async {
//!             tokio::task::yield_now().await;
//!             "profile 42".to_string()
//!         }).await
//!     })
//! }).collect();
//! for task in tasks {
//!     assert_eq!(task.await.unwrap(), "profile 42");
//! }
//! # });
//! ```
//!
//! # Observing a map in production
//!
//! [`Observed`] wraps any strategy and reports each call to an [`Observer`]: the [`Operation`],
//! the key's [`audit_hash`] and the [`Outcome`]; when the call waited for a contended lock, how
//! long; the [`Maintenance`] it triggered (table resizes, `SnapshotMap` publishes) and its
//! duration; and, after resizes and every [`CENSUS_INTERVAL`] calls, the [`ShardBalance`]. With
//! the `metrics` feature, `MetricsObserver` turns these into `safemap_operations_total`,
//! `safemap_lock_wait_seconds`, `safemap_maintenance_{total,seconds}`, `safemap_entries` and
//! `safemap_shard_imbalance` through the `metrics` facade; the README says what to watch. With
//! the `probes` feature, `ProbeObserver` fires SystemTap SDT probes for bpftrace or perf instead.
//! A map that is not wrapped carries no hook: its tables' allocator notices resizes, so inserts
//! run the same code either way.
//!
//! # Closures
//!
//! Closures passed to `remove_if`, `compute`, `update`, `retain` (and
//! [`SnapshotMap::write_batch`]) run while the map holds a lock for them; who waits meanwhile is
//! declared in [`Consistency::closure_blocks_readers`] and
//! [`Consistency::closure_blocks_writers`]. A `get_or_insert_with` closure runs with no lock of
//! the map held: only callers for its own key wait for it (single-flight), so a slow init stalls
//! no other key, and it may use the map for other keys. A `get_with` closure runs under a read lock, or, in
//! [`ReadMostlyMap`], as a read that writers wait for; in [`SnapshotMap`] it holds up no one. If a
//! closure calls back into the same map, that call panics with a message naming the operation,
//! instead of deadlocking. A closure that panics leaves the map consistent and usable: locks are
//! not poisoned and no value is leaked or dropped twice. [`for_each`](ConcurrentMap::for_each)
//! visits copies (or an immutable version) with no lock held, so its closure may call the map
//! freely.
//!
//! # Features
//!
//! - `serde`: `Serialize` for every map, taken from one point-in-time snapshot (O(1) to take in
//!   a `SnapshotMap`, an O(n) copy in the others), and for every snapshot; `Deserialize` for
//!   every map, which builds nothing on bad input and publishes a `SnapshotMap` once.
//! - `rayon`: `par_iter` (the parts `iter` copies, shared out among rayon's threads, with the
//!   consistency `iter` declares), `ParallelExtend` for `&map` and `map`, `FromParallelIterator`,
//!   and `par_for_each`/`par_reduce`/`par_search`, which go parallel from a threshold number of
//!   entries, as Java's `ConcurrentHashMap` does.
//! - `metrics` and `probes`: the observers below.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use safemap::{ConcurrentMap, ShardedMap};
//! let routes: ShardedMap<String, u16> = ShardedMap::from([("api".to_string(), 8080)]);
//! let json = serde_json::to_string(&routes).unwrap();
//! assert_eq!(json, r#"{"api":8080}"#);
//! let back: ShardedMap<String, u16> = serde_json::from_str(&json).unwrap();
//! assert_eq!(back.get("api"), Some(8080));
//! # }
//! ```
//!
//! # How the crate is built
//!
//! Every strategy is one generic front, [`SafeMap`], over a core: the front hashes each key once,
//! runs the re-entrancy check, wraps user closures and implements the traits; the core (in
//! `src/raw/`) owns the storage and the synchronization protocol and declares its
//! [`Consistency`]. A strategy's own file is a type alias naming its core, its docs, its
//! constructors and the methods only it has. [`strategies!`] is the one list of strategies that
//! the tests, the checker, the schedule explorer, the benchmark and the docs check read; its docs
//! give the recipe for adding one.
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

mod async_init;
mod claims;
pub mod fallible;
mod front;
/// Porting code from std, dashmap, papaya, scc, moka and Go's `sync.Map`, with every snippet
/// compiled and run as a test.
pub mod switching {
    #![doc = include_str!("../docs/switching.md")]
}
mod locked;
mod map;
#[cfg(feature = "metrics")]
mod metrics;
mod observe;
#[cfg(feature = "probes")]
mod probes;
mod raw;
#[cfg(feature = "rayon")]
mod rayon_impls;
mod read_mostly;
mod reentry;
mod scalable;
#[cfg(feature = "serde")]
mod serde_impls;
mod sharded;
mod shared;
mod snapshot;
mod sync;
mod tally;

pub use equivalent::Equivalent;
pub use front::{IntoIter, Iter, SafeMap};
pub use locked::LockedMap;
pub use map::{
    Action, Blocks, ConcurrentMap, Consistency, Cost, DeadlineMap, DefaultHashBuilder, Maintenance,
    MapSnapshot, Once, TimedOut, WholeMap,
};
#[cfg(feature = "metrics")]
pub use metrics::MetricsObserver;
pub use observe::{
    Access, CENSUS_INTERVAL, NoObserver, Observed, Observer, Operation, Outcome, ShardBalance,
    audit_hash,
};
#[cfg(feature = "probes")]
pub use probes::ProbeObserver;
pub use raw::frozen::{TableSnapshot, TableSnapshotIter};
pub use raw::live_trie::Iter as TrieSnapshotIter;
pub use raw::release::settle_memory;
pub use raw::routing::default_shard_count;
pub use raw::versioned::TrieSnapshot;
#[cfg(feature = "rayon")]
pub use rayon_impls::ParIter;
pub use read_mostly::ReadMostlyMap;
pub use scalable::{ScalableMap, ScalablePodMap};
pub use sharded::ShardedMap;
pub use snapshot::{Batch, SnapshotMap};

/// The strategy list, written once: expands `callback! { [entries] rest }`, where each entry is
/// `(module, Strategy, [capabilities])`. The conformance suites, the checker, the shuttle
/// schedules, the benchmark's contestants and the docs test all read it, so a strategy added here
/// is tested, checked, explored, measured and required in the docs.
///
/// Capabilities: `deadline`, the strategy implements [`DeadlineMap`]; `pod`, its keys and values
/// must be plain old data (`bytemuck::Pod`), so suites whose types are not run without it.
///
/// ```
/// macro_rules! names {
///     ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
///         [$(stringify!($map)),*]
///     };
/// }
/// let names = safemap::strategies!(names!());
/// assert!(names.contains(&"ShardedMap"));
/// ```
///
/// # Adding a strategy
/// 1. Its core: a file (or a folder, once it has more than one file) in `src/raw/`, declared in
///    `src/raw/mod.rs`, with a type that implements `raw::core::Core` (its consistency declared
///    there), `Default`, and `raw::core::BoundedWait` if every wait it makes is for a lock. Of
///    the single-key operations a core writes only `get` and `write`, which locks the key and
///    hands its entry (a `raw::entry::KeyEntry` of the core's own) to the operation; `insert`,
///    `remove_if`, `compute`, `update` and `update_or_insert_with` are written once over it.
///    Its walk (iteration, `Debug`, the move out) is `raw::parts::Parts`, which a core of shards
///    gets by implementing `raw::parts::ShardTables`; both rest on `raw::parts::Entries`, where
///    the core names its key and value types.
/// 2. Its front file `src/<strategy>.rs`: `pub type NameMap<K, V, S = DefaultHashBuilder> =
///    SafeMap<TheCore<K, V>, S>;` with its docs, constructors and the methods only it has; in
///    `src/lib.rs`, `mod <strategy>;` and `pub use <strategy>::NameMap;`.
/// 3. One line in this list, with `deadline` if the core is `BoundedWait`. The conformance,
///    checker, schedule and benchmark runs then include it, and the docs tests require a row for
///    it in the strategy tables of this crate's docs (above, in `src/lib.rs`) and of the README.
#[macro_export]
macro_rules! strategies {
    ($($callback:ident)::+ ! ( $($rest:tt)* )) => {
        $($callback)::+! {
            [
                (locked, LockedMap, [deadline]),
                (sharded, ShardedMap, [deadline]),
                (snapshot, SnapshotMap, [deadline]),
                (read_mostly, ReadMostlyMap, []),
                (scalable, ScalableMap, [deadline]),
                (scalable_pod, ScalablePodMap, [deadline, pod]),
            ]
            $($rest)*
        }
    };
}

/// Compiles and runs the README's Rust examples as doc tests, so the quickstart cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
