//! `RedisMap` under the checker: histories recorded against a real `redis-server` this module
//! starts on loopback (installing Debian's package first if the machine has none), one fresh map
//! name per history, in both layouts; and a seeded bug that a lease exists to prevent.
//!
//! Each layout is checked twice: with every thread of a history in this process, and with the
//! history's threads split between this process and a second one (this binary again, started
//! with [`CHILD_FLAG`]). Threads of two processes share no memory, so their stamps come from a
//! counter on the server (`INCR`): a call whose response stamp is below another's invoke stamp
//! had its reply before the other was sent, so the order of stamps is a real-time order, as the
//! in-process clock's is. Both processes' threads wait for each other on the server before they
//! start, so their calls overlap.

use std::cell::RefCell;
use std::process::{Command, Stdio};
use std::time::Duration;

use safemap::Action;
use safemap::fallible::TryConcurrentMap;
use safemap_redis::server::{self, LocalServer};
use safemap_redis::{Error, Layout, RedisMap, RedisSnapshot};

use crate::history::{Event, History, Key, Op, Stamps, Val};
use crate::run::{Config, Contestant, Report, check_each, check_recorded, plans, play};

/// The first argument that makes `safemap-check` run the second process's half of a history.
pub const CHILD_FLAG: &str = "--redis-history-child";

/// Names the `safemap-check` binary that runs a history's second process (default: the running
/// executable, which is that binary unless a test calls this module).
pub const EXE_VAR: &str = "SAFEMAP_CHECK_EXE";

/// Both layouts, each in one process and split over two, by the names `--strategy` takes
/// (`redis` picks all four).
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
        Contestant {
            name: "redis:one-hash:two-processes",
            check: check_two_processes::<false>,
        },
        Contestant {
            name: "redis:key-per-entry:two-processes",
            check: check_two_processes::<true>,
        },
    ]
}

/// The seeded bug: `compute` as GET, then the closure, then SET, with no lease; its histories
/// split over two processes, so that catching it shows the two-process check can fail.
pub fn redis_seeded_bug() -> Contestant {
    Contestant {
        name: "seeded:redis-get-then-set",
        check: check_split::<false, true>,
    }
}

fn start() -> LocalServer {
    server::install_if_missing().expect("safemap-check: installing redis-server");
    LocalServer::start().expect("safemap-check: starting redis-server")
}

fn open(server: &LocalServer, layout: Layout, history: usize) -> RedisMap<Key, Val> {
    open_at(&server.url(), layout, history)
}

fn open_at(url: &str, layout: Layout, history: usize) -> RedisMap<Key, Val> {
    RedisMap::builder(url, &format!("history-{history}"))
        .layout(layout)
        .wait(Duration::from_secs(60))
        .build()
        .expect("safemap-check: opening a RedisMap")
}

const fn layout(key_per_entry: bool) -> Layout {
    if key_per_entry {
        Layout::KeyPerEntry
    } else {
        Layout::OneHash
    }
}

fn check_layout<const KEY_PER_ENTRY: bool>(config: &Config, histories: usize) -> Report {
    let server = start();
    check_each(config, histories, |i| {
        open(&server, layout(KEY_PER_ENTRY), i)
    })
}

/// Each history's first half of threads here, the rest in a second process.
fn check_two_processes<const KEY_PER_ENTRY: bool>(config: &Config, histories: usize) -> Report {
    check_split::<KEY_PER_ENTRY, false>(config, histories)
}

/// [`check_two_processes`], on the seeded bug if `SEEDED`.
fn check_split<const KEY_PER_ENTRY: bool, const SEEDED: bool>(
    config: &Config,
    histories: usize,
) -> Report {
    assert!(
        config.threads >= 2,
        "a history split over two processes needs two threads"
    );
    let server = start();
    let url = server.url();
    let exe = std::env::var_os(EXE_VAR)
        .map(Into::into)
        .unwrap_or_else(|| std::env::current_exe().expect("safemap-check: its own path"));
    let split = config.threads / 2;
    check_recorded(config, histories, |i, seed| {
        let map = open(&server, layout(KEY_PER_ENTRY), i);
        let declared = map.consistency();
        let args = [
            &url,
            &(KEY_PER_ENTRY as u8).to_string(),
            &(SEEDED as u8).to_string(),
            &i.to_string(),
            &seed.to_string(),
            &config.threads.to_string(),
            &config.ops.to_string(),
            &config.keys.to_string(),
            &split.to_string(),
        ];
        let child = Command::new(&exe)
            .arg(CHILD_FLAG)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("safemap-check: starting the second process");
        let mine: Vec<_> = plans(config, seed, &declared)
            .into_iter()
            .enumerate()
            .take(split)
            .collect();
        let mut events = play_seeded(SEEDED, &url, map, i, config.threads, mine);
        let output = child
            .wait_with_output()
            .expect("safemap-check: the second process");
        assert!(
            output.status.success(),
            "safemap-check: the second process failed"
        );
        let theirs: Vec<Event> = serde_json::from_slice(&output.stdout)
            .expect("safemap-check: the second process's events");
        events.extend(theirs);
        (History { events }, declared)
    })
}

/// The second process: plays threads `from..threads` of the history the arguments name (as the
/// two-process check passes them) and prints their events as JSON.
pub fn child_main(args: &[String]) -> Result<(), String> {
    let [
        url,
        key_per_entry,
        seeded,
        history,
        seed,
        threads,
        ops,
        keys,
        from,
    ] = args
    else {
        return Err(format!(
            "{CHILD_FLAG} takes 9 arguments, got {}",
            args.len()
        ));
    };
    let number = |s: &String| s.parse::<u64>().map_err(|e| format!("{s:?}: {e}"));
    let config = Config {
        threads: number(threads)? as usize,
        ops: number(ops)? as usize,
        keys: number(keys)? as Key,
        seed: number(seed)?,
    };
    let history = number(history)? as usize;
    let map = open_at(url, layout(number(key_per_entry)? == 1), history);
    let from = number(from)? as usize;
    let theirs = plans(&config, config.seed, &map.consistency())
        .into_iter()
        .enumerate()
        .skip(from)
        .collect();
    let events = play_seeded(
        number(seeded)? == 1,
        url,
        map,
        history,
        config.threads,
        theirs,
    );
    println!(
        "{}",
        serde_json::to_string(&events).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// [`play_together`] on `map`, or, if `seeded`, on it as a [`GetThenSet`].
fn play_seeded(
    seeded: bool,
    url: &str,
    map: RedisMap<Key, Val>,
    history: usize,
    total: usize,
    threads: Vec<(usize, Vec<Op>)>,
) -> Vec<Event> {
    if seeded {
        play_together(url, &GetThenSet(map), history, total, threads)
    } else {
        play_together(url, &map, history, total, threads)
    }
}

/// Plays `threads` (index and operations each) on `map`, each thread stamping on the server and
/// starting once all `total` threads of history `history`, in either process, are ready.
fn play_together<M: TryConcurrentMap<Key, Val> + Sync>(
    url: &str,
    map: &M,
    history: usize,
    total: usize,
    threads: Vec<(usize, Vec<Op>)>,
) -> Vec<Event> {
    std::thread::scope(|s| {
        let handles: Vec<_> = threads
            .into_iter()
            .map(|(thread, ops)| {
                s.spawn(move || {
                    let clock = ServerClock::new(url, history);
                    clock.wait_for(total);
                    play(map, &clock, thread, ops)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("history thread panicked"))
            .collect()
    })
}

/// A history's stamps, from a counter on the server; one per thread (it owns a connection).
struct ServerClock {
    connection: RefCell<redis::Connection>,
    history: usize,
}

impl ServerClock {
    fn new(url: &str, history: usize) -> Self {
        let connection = redis::Client::open(url)
            .and_then(|client| client.get_connection())
            .expect("safemap-check: connecting for stamps");
        ServerClock {
            connection: RefCell::new(connection),
            history,
        }
    }

    /// Counts this thread ready, then waits until `total` threads are.
    ///
    /// # Panics
    /// After 30 s without them: the other process is gone (a second process whose parent died
    /// must not spin on the server for ever).
    fn wait_for(&self, total: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let key = format!("history-{}:ready", self.history);
        let mut connection = self.connection.borrow_mut();
        let mut ready: usize = redis::cmd("INCR")
            .arg(&key)
            .query(&mut *connection)
            .expect("safemap-check: counting ready threads");
        while ready < total {
            assert!(
                std::time::Instant::now() < deadline,
                "safemap-check: the other process's threads never came ({ready} of {total} ready)"
            );
            std::thread::yield_now();
            ready = redis::cmd("GET")
                .arg(&key)
                .query(&mut *connection)
                .expect("safemap-check: reading ready threads");
        }
    }
}

impl Stamps for ServerClock {
    fn stamp(&self) -> u64 {
        redis::cmd("INCR")
            .arg(format!("history-{}:clock", self.history))
            .query(&mut *self.connection.borrow_mut())
            .expect("safemap-check: stamping on the server")
    }
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
