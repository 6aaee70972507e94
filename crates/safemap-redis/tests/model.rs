//! The differential model (`safemap`'s `tests/common/model_steps.rs`, included by path so both
//! crates run one body) on `RedisMap` in both layouts, a fresh map per case on one server.

#[path = "../../safemap/tests/common/model_steps.rs"]
mod model_steps;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::collection::vec;
use proptest::test_runner::{Config, TestRunner};
use safemap_redis::Layout;

fn matches_std_hashmap(layout: Layout) {
    let server = support::server();
    let case = AtomicUsize::new(0);
    // Each case is a few hundred round trips; 48 cases keep the test to seconds.
    let mut runner = TestRunner::new(Config::with_cases(48));
    runner
        .run(&vec(model_steps::op(), 1..150), |ops| {
            let name = format!("model-{}", case.fetch_add(1, Ordering::Relaxed));
            let map = support::open::<u8, u16>(&server, layout, &name);
            model_steps::matches_the_model(&map, &ops);
            Ok(())
        })
        .unwrap();
}

#[test]
fn one_hash_matches_std_hashmap() {
    matches_std_hashmap(Layout::OneHash);
}

#[test]
fn key_per_entry_matches_std_hashmap() {
    matches_std_hashmap(Layout::KeyPerEntry);
}
