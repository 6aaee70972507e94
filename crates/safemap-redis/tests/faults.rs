//! What a `RedisMap` does when things go wrong: bad names, bad data on the server, closures that
//! outlive or abandon their lease, a client killed while holding one, and a server killed
//! mid-run.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Commands;
use safemap::Action;
use safemap::fallible::TryConcurrentMap;
use safemap_redis::server::LocalServer;
use safemap_redis::{Error, Layout, RedisMap};

const LAYOUTS: [Layout; 2] = [Layout::OneHash, Layout::KeyPerEntry];

fn with_lease(server: &LocalServer, layout: Layout, lease: Duration) -> RedisMap<u32, String> {
    RedisMap::builder(&server.url(), "faults")
        .layout(layout)
        .lease(lease)
        .wait(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[test]
fn a_name_that_needs_escaping_is_refused_before_connecting() {
    let built = RedisMap::<u32, u32>::builder("redis://127.0.0.1:1/", "a{b}").build();
    assert!(matches!(built, Err(Error::InvalidName(_))), "{built:?}");
}

#[test]
fn an_unreachable_server_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let built = RedisMap::<u32, u32>::builder(&format!("redis://127.0.0.1:{port}/"), "m")
        .timeout(Duration::from_millis(300))
        .build();
    assert!(matches!(built, Err(Error::Unavailable(_))), "{built:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn data_that_does_not_decode_is_an_error_naming_the_entry() {
    let server = support::server();
    let mut raw = support::raw(&server);
    for layout in LAYOUTS {
        let map = support::open::<u32, String>(&server, layout, "spoiled");
        map.insert(7, "fine".into()).unwrap();
        // A string whose length prefix promises more bytes than follow.
        let garbage: &[u8] = &[0xff, 0x01];
        let key = postcard::to_allocvec(&7u32).unwrap();
        match layout {
            Layout::OneHash => raw.hset::<_, _, _, ()>("safemap:{spoiled}:data", &key, garbage),
            Layout::KeyPerEntry => raw.set::<_, _, ()>("safemap:spoiled:{07}", garbage),
        }
        .unwrap();
        let read = map.get(&7);
        let Err(Error::Decode { entry, .. }) = &read else {
            panic!("{layout:?}: {read:?}");
        };
        assert!(entry.contains("07") && entry.contains("spoiled"), "{entry}");
        let listed: Vec<_> = map.iter().collect();
        assert!(
            listed
                .iter()
                .any(|e| matches!(e, Err(Error::Decode { .. }))),
            "{listed:?}"
        );
        // A closure's call stops before its closure runs, and leaves its key free.
        let computed = map.compute(7, |_| unreachable!("saw undecodable data"));
        assert!(
            matches!(&computed, Err(e) if !e.may_have_applied()),
            "{computed:?}"
        );
        // Overwriting repairs the entry, and says the write happened.
        let repaired = map.insert(7, "again".into());
        assert!(
            matches!(&repaired, Err(e @ Error::Decode { applied: true, .. }) if e.may_have_applied()),
            "{repaired:?}"
        );
        assert_eq!(map.remove(&7).unwrap().as_deref(), Some("again"));
    }
}

#[test]
fn a_closure_that_outlives_its_lease_changes_nothing() {
    let server = support::server();
    for layout in LAYOUTS {
        let map = with_lease(&server, layout, Duration::from_millis(100));
        map.insert(1, "before".into()).unwrap();
        let late = map.compute(1, |_| {
            std::thread::sleep(Duration::from_millis(400));
            Action::Set("late".into())
        });
        assert!(
            matches!(late, Err(Error::LeaseExpired { .. })),
            "{layout:?}: {late:?}"
        );
        assert_eq!(map.get(&1).unwrap().as_deref(), Some("before"));
    }
}

#[test]
fn a_panicking_closure_frees_its_key_at_once() {
    let server = support::server();
    for layout in LAYOUTS {
        let map = with_lease(&server, layout, Duration::from_secs(60));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = map.compute(1, |_| panic!("closure failed"));
        }));
        assert!(panicked.is_err());
        let started = Instant::now();
        map.insert(1, "next".into()).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{layout:?}: waited for the lease"
        );
        let failed = map
            .try_get_or_insert_with(2, || Err::<String, _>("no"))
            .unwrap();
        assert_eq!(failed, Err("no"));
        let started = Instant::now();
        map.insert(2, "next".into()).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{layout:?}: waited for the lease"
        );
    }
}

/// Run by `a_client_killed_holding_a_lease_holds_its_key_until_the_lease_lapses` in a child
/// process: takes the lease on key 1 and never lets go.
#[test]
#[ignore = "run as a child process by the test below"]
fn child_holds_a_lease_forever() {
    let Some((url, layout)) = support::child_setting() else {
        return;
    };
    let map: RedisMap<u32, String> = RedisMap::builder(&url, "faults")
        .layout(layout)
        .lease(Duration::from_millis(1500))
        .build()
        .unwrap();
    let _ = map.compute(1, |_| {
        println!("leased");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

#[test]
fn a_client_killed_holding_a_lease_holds_its_key_until_the_lease_lapses() {
    let server = support::server();
    for layout in LAYOUTS {
        let map = with_lease(&server, layout, Duration::from_millis(1500));
        map.insert(1, "before".into()).unwrap();
        let mut child = support::child_process("child_holds_a_lease_forever", &server, layout)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|line| line.unwrap().contains("leased")),
            "the child took no lease"
        );
        let leased_at = Instant::now();
        child.kill().unwrap(); // SIGKILL: no chance to release.
        child.wait().unwrap();

        assert_eq!(
            map.insert(1, "after".into()).unwrap().as_deref(),
            Some("before")
        );
        let waited = leased_at.elapsed();
        assert!(
            waited >= Duration::from_millis(1000),
            "{layout:?}: the write ignored the lease ({waited:?})"
        );
        assert!(
            waited < Duration::from_secs(10),
            "{layout:?}: waited {waited:?}"
        );
        assert_eq!(map.get(&1).unwrap().as_deref(), Some("after"));
    }
}

/// Kills the server under a writer, restarts it, and counts what held: with
/// `appendfsync always`, no write the server acknowledged is lost, and every failure during the
/// outage came back as an error.
#[test]
fn a_server_killed_mid_run_loses_no_acknowledged_write() {
    support::server(); // installs the server if needed
    let mut server = LocalServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ])
    .unwrap();
    for layout in LAYOUTS {
        let map: RedisMap<u32, u32> = RedisMap::builder(&server.url(), "durable")
            .layout(layout)
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        map.clear().unwrap();
        let stop = AtomicBool::new(false);
        let (acknowledged, errors) = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let (mut acknowledged, mut errors) = (Vec::new(), 0);
                let mut key = 0;
                while !stop.load(Ordering::Relaxed) {
                    match map.insert(key, key) {
                        Ok(_) => acknowledged.push(key),
                        Err(error) => {
                            assert!(
                                matches!(error, Error::Connection(_) | Error::Unavailable(_)),
                                "{error:?}"
                            );
                            errors += 1;
                        }
                    }
                    key += 1;
                }
                (acknowledged, errors)
            });
            std::thread::sleep(Duration::from_millis(300));
            server.kill().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            server.restart().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
            writer.join().unwrap()
        });
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|&&key| map.get(&key).unwrap() != Some(key))
            .collect();
        println!(
            "{layout:?}: {} writes tried, {} acknowledged, {errors} errors, {} acknowledged writes lost",
            acknowledged.len() + errors,
            acknowledged.len(),
            lost.len()
        );
        assert!(errors > 0, "the outage surfaced no error");
        assert!(lost.is_empty(), "{layout:?}: lost {lost:?}");
        assert!(
            acknowledged.len() > 10,
            "the writer made no progress around the outage"
        );
    }
}

#[test]
fn a_bulk_load_stores_every_entry_and_waits_for_a_leased_key() {
    let server = support::server();
    for layout in LAYOUTS {
        let map = with_lease(&server, layout, Duration::from_secs(10));
        let (leased_tx, leased_rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                map.compute(5, |_| {
                    leased_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                    Action::Set("from compute".into())
                })
                .unwrap();
            });
            leased_rx.recv().unwrap();
            // Key 5 is leased: its write must land after the compute commits, not before.
            map.try_extend((0..3000).map(|i| (i, format!("loaded {i}"))))
                .unwrap();
        });
        assert_eq!(map.len().unwrap(), 3000, "{layout:?}");
        assert_eq!(
            map.get(&5).unwrap().as_deref(),
            Some("loaded 5"),
            "{layout:?}"
        );
        assert_eq!(map.get(&2999).unwrap().as_deref(), Some("loaded 2999"));
    }
}

/// A process that opens a map per task must not pile up connections or threads.
#[test]
fn a_dropped_map_closes_its_connections() {
    let server = support::server();
    let mut raw = support::raw(&server);
    let clients = |raw: &mut redis::Connection| -> usize {
        let info: String = redis::cmd("INFO").arg("clients").query(raw).unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    };
    let threads = || -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    };
    // The first map starts the process's one pool helper thread.
    drop(support::open::<u32, u32>(&server, Layout::OneHash, "first"));
    let (before, threads_before) = (clients(&mut raw), threads());
    for i in 0..50 {
        let map = support::open::<u32, u32>(&server, Layout::OneHash, &format!("m{i}"));
        std::thread::scope(|s| {
            for t in 0..4 {
                let map = &map;
                s.spawn(move || map.insert(t, t).unwrap());
            }
        });
    }
    // The server notices closed sockets at once, but give it a moment on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients(&mut raw) > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let open = clients(&mut raw);
    assert!(
        open <= before,
        "{open} connections open, {before} before: dropped maps left some"
    );
    // Other tests of this binary run threads meanwhile, so allow some; the three helper threads
    // per pool that r2d2 starts by default would add 150.
    let now = threads();
    assert!(
        now <= threads_before + 8,
        "{now} threads, {threads_before} before"
    );
}

/// A server that stops answering fails calls at the timeout; a write that timed out may still
/// happen once the server goes on, which the error says; the connection then serves later calls
/// with their own replies, not the late ones.
#[test]
fn a_frozen_server_times_calls_out_and_says_a_write_may_have_happened() {
    let server = support::server();
    for layout in LAYOUTS {
        let map: RedisMap<u32, String> = RedisMap::builder(&server.url(), "frozen")
            .layout(layout)
            .timeout(Duration::from_millis(300))
            .connections(1)
            .build()
            .unwrap();
        map.insert(1, "before".into()).unwrap();
        server.pause().unwrap();
        let started = Instant::now();
        let read = map.get(&1);
        let write = map.insert(2, "sent while frozen".into());
        let waited = started.elapsed();
        server.resume().unwrap();
        assert!(
            matches!(read, Err(Error::Connection(_))),
            "{layout:?}: {read:?}"
        );
        let Err(write) = write else {
            panic!("{layout:?}: a write to a frozen server succeeded");
        };
        assert!(write.may_have_applied(), "{layout:?}: {write:?}");
        assert!(
            waited < Duration::from_secs(3),
            "{layout:?}: two calls took {waited:?}"
        );
        // The write was sent, so it runs once the server goes on.
        let deadline = Instant::now() + Duration::from_secs(5);
        while map.get(&2).unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(map.get(&2).unwrap().as_deref(), Some("sent while frozen"));
        assert_eq!(map.get(&1).unwrap().as_deref(), Some("before"));
        assert_eq!(map.get(&3).unwrap(), None);
    }
}

#[test]
fn a_closure_calling_back_for_its_own_key_fails_at_once() {
    let server = support::server();
    for layout in LAYOUTS {
        let map = with_lease(&server, layout, Duration::from_secs(10));
        let other = map.clone();
        let started = Instant::now();
        let outcome = map.compute(1, |_| {
            let write = map.insert(1, "inner".into());
            assert!(matches!(write, Err(Error::Reentrant { .. })), "{write:?}");
            let nested = other.compute(1, |_| unreachable!("the key is this call's"));
            assert!(matches!(nested, Err(Error::Reentrant { .. })), "{nested:?}");
            let init = map.get_or_insert_with(1, || unreachable!("the key is this call's"));
            assert!(matches!(init, Err(Error::Reentrant { .. })), "{init:?}");
            // Other keys and plain reads work from inside the closure.
            map.insert(2, "fine".into()).unwrap();
            assert_eq!(map.get(&1).unwrap(), None);
            Action::Set("outer".into())
        });
        assert!(outcome.is_ok(), "{layout:?}: {outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{layout:?}: waited for itself"
        );
        assert_eq!(map.get(&1).unwrap().as_deref(), Some("outer"));
        assert_eq!(map.get(&2).unwrap().as_deref(), Some("fine"));
        // Released: the key can be written again from this thread.
        map.insert(1, "after".into()).unwrap();
    }
}
