//! Shared by the test files: a server per test, maps opened on it, raw connections, and child
//! client processes.
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
