//! Shared by the test files: a server per test, maps opened on it, and the expansion of the
//! local strategy list, so that each body written against `TryConcurrentMap` runs on every
//! in-memory strategy and on `RedisMap` in both layouts.
#![allow(dead_code, unused_macros, unused_imports)]

use std::time::Duration;

use safemap_redis::server::{self, LocalServer};
use safemap_redis::{Layout, RedisMap};

/// A fresh server for one test, installed first if the machine has none (as on a fresh CI
/// machine); stopped when dropped.
pub fn server() -> LocalServer {
    server::install_if_missing().expect("installing redis-server");
    LocalServer::start().expect("starting redis-server")
}

/// The map `name` on `server`, with a short wait limit so a test that would hang fails instead.
pub fn open<K, V>(server: &LocalServer, layout: Layout, name: &str) -> RedisMap<K, V> {
    RedisMap::builder(&server.url(), name)
        .layout(layout)
        .wait(Duration::from_secs(20))
        .build()
        .expect("opening the map")
}

/// A raw connection, to look at or spoil what the map stored.
pub fn raw(server: &LocalServer) -> redis::Connection {
    redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("connecting")
}

/// The test binary again, running only the ignored test `test`, as a client in a process of its
/// own against `server`'s map in `layout` (which [`child_setting`] reads back).
pub fn child_process(test: &str, server: &LocalServer, layout: Layout) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", test, "--ignored", "--nocapture", "--quiet"])
        .env("SAFEMAP_REDIS_CHILD_URL", server.url())
        .env("SAFEMAP_REDIS_CHILD_LAYOUT", format!("{layout:?}"));
    command
}

/// In a process [`child_process`] started, the server's URL and the layout; `None` otherwise
/// (the ignored test was run by hand and should do nothing).
pub fn child_setting() -> Option<(String, Layout)> {
    let url = std::env::var("SAFEMAP_REDIS_CHILD_URL").ok()?;
    let layout = match std::env::var("SAFEMAP_REDIS_CHILD_LAYOUT").ok()?.as_str() {
        "OneHash" => Layout::OneHash,
        _ => Layout::KeyPerEntry,
    };
    Some((url, layout))
}

/// Expands `$body` (items using `open_map::<K, V>()`) once per local strategy and once per
/// Redis layout, each in a module of its own.
macro_rules! for_every_map {
    ($($body:tt)*) => {
        safemap::strategies!(crate::support::local_maps!({ $($body)* }));
        mod redis_one_hash {
            #[allow(unused_imports)]
            use super::*;
            fn open_map<K, V>() -> (Option<safemap_redis::server::LocalServer>, safemap_redis::RedisMap<K, V>) {
                let server = crate::support::server();
                let map = crate::support::open(&server, safemap_redis::Layout::OneHash, "test");
                (Some(server), map)
            }
            $($body)*
        }
        mod redis_key_per_entry {
            #[allow(unused_imports)]
            use super::*;
            fn open_map<K, V>() -> (Option<safemap_redis::server::LocalServer>, safemap_redis::RedisMap<K, V>) {
                let server = crate::support::server();
                let map = crate::support::open(&server, safemap_redis::Layout::KeyPerEntry, "test");
                (Some(server), map)
            }
            $($body)*
        }
    };
}
pub(crate) use for_every_map;

/// One module per `(module, Strategy, [capabilities])` entry of `safemap::strategies!`.
macro_rules! local_maps {
    ([] $body:tt) => {};
    ([($name:ident, $map:ident, [$($cap:ident),*]) $(, $($rest:tt)*)?] { $($body:tt)* }) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn open_map<K: std::hash::Hash + Eq + Clone, V: Clone>()
                -> (Option<safemap_redis::server::LocalServer>, safemap::$map<K, V>) {
                (None, safemap::$map::new())
            }
            $($body)*
        }
        crate::support::local_maps!([$($($rest)*)?] { $($body)* });
    };
}
pub(crate) use local_maps;
