//! The map contract on `RedisMap`, in both layouts: the steps of `safemap`'s
//! `tests/common/contract_steps.rs`, included by path. `safemap`'s `tests/conformance.rs` runs the
//! same text on every in-memory strategy, so code written against `TryConcurrentMap` is held to
//! one contract whether the map is local or remote. Each test has a server of its own.

#[path = "../../safemap/tests/common/contract_steps.rs"]
mod contract_steps;
mod support;

use safemap_redis::server::LocalServer;
use safemap_redis::{Layout, RedisMap};

fn open(layout: Layout) -> (LocalServer, RedisMap<u32, String>) {
    let server = support::server();
    let map = support::open(&server, layout, "contract");
    (server, map)
}

mod one_hash {
    crate::contract_tests!(crate::contract_steps, || crate::open(safemap_redis::Layout::OneHash), remote: true);
}

mod key_per_entry {
    crate::contract_tests!(crate::contract_steps, || crate::open(safemap_redis::Layout::KeyPerEntry), remote: true);
}
