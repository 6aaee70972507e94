//! At most one `make` per absent key across processes: 4 processes of 8 threads each race on
//! the same 1,000 absent keys, and every `make` counts itself on the server.

mod support;

use std::time::Duration;

use redis::Commands;
use safemap::fallible::TryConcurrentMap;
use safemap_redis::{Layout, RedisMap};

const PROCESSES: usize = 4;
const THREADS: usize = 8;
const KEYS: u32 = 1000;

/// Run by the test below in each child process.
#[test]
#[ignore = "run as a child process by the test below"]
fn child_races_on_every_key() {
    let Some((url, layout)) = support::child_setting() else {
        return;
    };
    let map: RedisMap<u32, String> = RedisMap::builder(&url, "race")
        .layout(layout)
        .wait(Duration::from_secs(60))
        .build()
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (map, client) = (&map, &client);
            s.spawn(move || {
                let mut counter = client.get_connection().unwrap();
                // Each thread goes through the keys from its own starting point, so threads
                // meet on keys from the first call on.
                for i in 0..KEYS {
                    let key = (i + thread as u32 * 97) % KEYS;
                    let value = map
                        .get_or_insert_with(key, || {
                            let n: u64 = counter.incr("race:makes", 1).unwrap();
                            format!("{key}:{n}")
                        })
                        .unwrap();
                    assert!(value.starts_with(&format!("{key}:")), "{value}");
                }
            });
        }
    });
}

#[test]
fn four_processes_of_eight_threads_run_one_make_per_key() {
    let server = support::server();
    let mut raw = support::raw(&server);
    for layout in [Layout::OneHash, Layout::KeyPerEntry] {
        raw.del::<_, ()>("race:makes").unwrap();
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                support::child_process("child_races_on_every_key", &server, layout)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(
                child.wait().unwrap().success(),
                "{layout:?}: a child failed"
            );
        }
        let makes: u64 = raw.get("race:makes").unwrap();
        assert_eq!(
            makes, KEYS as u64,
            "{layout:?}: makes counted on the server"
        );
        let map = support::open::<u32, String>(&server, layout, "race");
        assert_eq!(map.len().unwrap(), KEYS as usize);
        // Every stored value was made by exactly one `make`: the counts 1..=KEYS, once each.
        let mut counts: Vec<u64> = map
            .iter()
            .map(|entry| entry.unwrap().1.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=KEYS as u64).collect::<Vec<_>>(), "{layout:?}");
    }
}
