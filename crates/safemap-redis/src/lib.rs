//! safemap's map contract over a Redis (7 or later) or Valkey server: [`RedisMap`], for state
//! that several processes or replicas share (session tables, device registries, rate-limit
//! counters, caches of expensive lookups).
//!
//! It implements [`TryConcurrentMap`](safemap::fallible::TryConcurrentMap), the fallible twin of
//! [`ConcurrentMap`](safemap::ConcurrentMap) that every in-memory safemap strategy also
//! implements, so code written against that trait runs unchanged on a local map or on Redis.
//! Every call returns `Result<_, Error>`: a network map can fail, and says how
//! ([`Error::may_have_applied`] tells whether a failed write might have happened).
//!
//! # When to move from an in-memory map
//! When one process's memory no longer holds the truth: several replicas serve the same users,
//! or the state must outlive a restart. Each call then costs a network round trip (tens of
//! microseconds on loopback, against tens of nanoseconds in memory); a local map in front of it
//! (below) wins back reads where a bounded staleness is acceptable.
//!
//! # What holds across processes
//! - Single-key operations are linearizable: each is one command or one server-side script, and
//!   Redis runs one at a time.
//! - `get_or_insert_with`'s `make` runs **at most once per absent key across every client**, and
//!   the closures of `compute`, `update` and `remove_if` **exactly once per call**, through a
//!   lease: the call first takes its key's lease (a token unique to the call, with an expiry),
//!   runs the closure here, then commits in a script that checks the lease is still its own.
//!   Every write of the key, plain `insert`s included, waits while another call's live lease
//!   holds it, so the closure's view is still current when it commits. Readers never wait.
//! - A closure that outlives its lease (default 10 s, [`Builder::lease`]) has its result refused
//!   with [`Error::LeaseExpired`]: nothing changes, and another client may have taken the key
//!   since. A client that dies holding a lease holds its key up until the lease lapses; then the
//!   next writer proceeds. Nothing is ever half-applied. This is declared as
//!   [`Once::WithinLease`](safemap::Once::WithinLease) in the map's
//!   [`consistency`](safemap::fallible::TryConcurrentMap::consistency).
//! - A closure may use the map for other keys; one that calls back for its own key (which its
//!   own call holds leased) gets [`Error::Reentrant`] at once rather than waiting for itself.
//! - Values are changed on this client and written back, so `update` copies.
//!
//! # Two layouts
//! | | [`Layout::OneHash`] | [`Layout::KeyPerEntry`] |
//! |---|---|---|
//! | on the server | one hash per map | one key per entry |
//! | `len` | atomic (`HLEN`) | an estimate (`SCAN`) |
//! | `clear` | atomic, once no lease is live | key by key |
//! | `for_each`, `snapshot` | atomic (`HGETALL`) | key by key |
//! | `iter`, `retain` | batch by batch (`HSCAN`), weakly consistent | batch by batch (`SCAN`) |
//! | scales | one node holds the map | laid out for a Redis Cluster (each entry and its lease share a hash tag); this version talks to one server |
//!
//! Every client of one map must open it with the same name and layout.
//!
//! # A local map in front (near cache)
//! Reads that may be stale by a bounded time can go to a local safemap map first: keep
//! `(value, fetched_at)` in a [`ShardedMap`](safemap::ShardedMap), and go to Redis when the copy
//! is older than your bound. What that gives: reads are at most that old, and not linearizable
//! with other clients' writes; writes still go to Redis, and should also update or drop the local
//! copy so that a client reads its own writes.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use safemap::fallible::TryConcurrentMap;
//! use safemap::{ConcurrentMap, ShardedMap};
//! use safemap_redis::RedisMap;
//!
//! struct NearCache {
//!     remote: RedisMap<String, String>,
//!     local: ShardedMap<String, (String, Instant)>,
//!     max_age: Duration,
//! }
//!
//! impl NearCache {
//!     fn get(&self, key: &String) -> Result<Option<String>, safemap_redis::Error> {
//!         if let Some((value, at)) = ConcurrentMap::get(&self.local, key) {
//!             if at.elapsed() < self.max_age {
//!                 return Ok(Some(value));
//!             }
//!         }
//!         let fresh = TryConcurrentMap::get(&self.remote, key)?;
//!         match &fresh {
//!             Some(value) => {
//!                 ConcurrentMap::insert(&self.local, key.clone(), (value.clone(), Instant::now()));
//!             }
//!             None => {
//!                 ConcurrentMap::remove(&self.local, key);
//!             }
//!         }
//!         Ok(fresh)
//!     }
//! }
//! ```
//!
//! # Coming from Java or Go
//! Redisson's `RMap` and Hazelcast's `IMap` give Java a distributed `ConcurrentMap`;
//! `RedisMap` is the same idea with safemap's declared contract and checker. Go services usually
//! hand-write GET-then-SET read-modify-writes against Redis, which lose updates under
//! concurrency; `compute` is the lease-protected form.

#![deny(missing_docs)]

mod connection;
mod error;
mod layout;
mod map;
mod ops;
mod scan;
mod scripts;
pub mod server;

pub use error::Error;
pub use layout::Layout;
pub use map::{Builder, RedisMap};
pub use ops::RedisSnapshot;
