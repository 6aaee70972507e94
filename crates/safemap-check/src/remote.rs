//! `RedisMap` under the checker: histories recorded against a real `redis-server` this module
//! starts on loopback (installing Debian's package first if the machine has none), one fresh map
//! name per history, in both layouts; and a seeded bug that a lease exists to prevent.

use std::time::Duration;

use safemap::Action;
use safemap::fallible::TryConcurrentMap;
use safemap_redis::server::{self, LocalServer};
use safemap_redis::{Error, Layout, RedisMap, RedisSnapshot};

use crate::history::{Key, Val};
use crate::run::{Config, Contestant, Report, check_each};

/// The layouts, by the name `--strategy` takes (`redis` picks both).
pub fn redis_contestants() -> Vec<Contestant> {
    vec![
        Contestant {
            name: "redis:one-hash",
            check: check_layout::<false>,
        },
        Contestant {
            name: "redis:key-per-entry",
            check: check_layout::<true>,
        },
    ]
}

/// The seeded bug: `compute` as GET, then the closure, then SET, with no lease.
pub fn redis_seeded_bug() -> Contestant {
    Contestant {
        name: "seeded:redis-get-then-set",
        check: |config, histories| {
            let server = start();
            check_each(config, histories, |i| {
                GetThenSet(open(&server, Layout::OneHash, i))
            })
        },
    }
}

fn start() -> LocalServer {
    server::install_if_missing().expect("safemap-check: installing redis-server");
    LocalServer::start().expect("safemap-check: starting redis-server")
}

fn open(server: &LocalServer, layout: Layout, history: usize) -> RedisMap<Key, Val> {
    RedisMap::builder(&server.url(), &format!("history-{history}"))
        .layout(layout)
        .wait(Duration::from_secs(60))
        .build()
        .expect("safemap-check: opening a RedisMap")
}

fn check_layout<const KEY_PER_ENTRY: bool>(config: &Config, histories: usize) -> Report {
    let layout = if KEY_PER_ENTRY {
        Layout::KeyPerEntry
    } else {
        Layout::OneHash
    };
    let server = start();
    check_each(config, histories, |i| open(&server, layout, i))
}

/// A `RedisMap` whose `compute` reads, runs its closure here, then writes what it returned,
/// the way hand-written Redis read-modify-writes usually go: a write between the read and the
/// write is lost. Every other operation is the real map's.
struct GetThenSet(RedisMap<Key, Val>);

impl TryConcurrentMap<Key, Val> for GetThenSet {
    type Error = Error;
    type Snapshot = RedisSnapshot<Key, Val>;

    fn consistency(&self) -> safemap::Consistency {
        self.0.consistency()
    }
    fn get(&self, key: &Key) -> Result<Option<Val>, Error> {
        self.0.get(key)
    }
    fn contains_key(&self, key: &Key) -> Result<bool, Error> {
        self.0.contains_key(key)
    }
    fn insert(&self, key: Key, value: Val) -> Result<Option<Val>, Error> {
        self.0.insert(key, value)
    }
    fn remove(&self, key: &Key) -> Result<Option<Val>, Error> {
        self.0.remove(key)
    }
    fn remove_if(
        &self,
        key: &Key,
        remove: impl FnOnce(&Key, &Val) -> bool,
    ) -> Result<Option<Val>, Error> {
        self.0.remove_if(key, remove)
    }
    fn get_or_insert_with(&self, key: Key, make: impl FnOnce() -> Val) -> Result<Val, Error> {
        self.0.get_or_insert_with(key, make)
    }
    fn try_get_or_insert_with<E>(
        &self,
        key: Key,
        make: impl FnOnce() -> Result<Val, E>,
    ) -> Result<Result<Val, E>, Error> {
        self.0.try_get_or_insert_with(key, make)
    }
    fn update<R>(&self, key: &Key, change: impl FnOnce(&mut Val) -> R) -> Result<Option<R>, Error> {
        self.0.update(key, change)
    }
    fn update_or_insert_with<R>(
        &self,
        key: Key,
        make: impl FnOnce() -> Val,
        change: impl FnOnce(&mut Val) -> R,
    ) -> Result<R, Error> {
        self.0.update_or_insert_with(key, make, change)
    }
    fn compute(
        &self,
        key: Key,
        update: impl FnOnce(Option<&Val>) -> Action<Val>,
    ) -> Result<Option<Val>, Error> {
        let seen = self.0.get(&key)?;
        // Widen the race window, as the in-memory seeded bugs do.
        std::thread::yield_now();
        match update(seen.as_ref()) {
            Action::Keep => Ok(None),
            Action::Set(value) => self.0.insert(key, value).map(|_| seen),
            Action::Remove => self.0.remove(&key).map(|_| seen),
        }
    }
    fn retain(&self, keep: impl FnMut(&Key, &Val) -> bool) -> Result<(), Error> {
        self.0.retain(keep)
    }
    fn clear(&self) -> Result<(), Error> {
        self.0.clear()
    }
    fn len(&self) -> Result<usize, Error> {
        self.0.len()
    }
    fn for_each(&self, visit: impl FnMut(&Key, &Val)) -> Result<(), Error> {
        self.0.for_each(visit)
    }
    fn iter(&self) -> impl Iterator<Item = Result<(Key, Val), Error>> {
        self.0.iter()
    }
    fn snapshot(&self) -> Result<RedisSnapshot<Key, Val>, Error> {
        self.0.snapshot()
    }
}
