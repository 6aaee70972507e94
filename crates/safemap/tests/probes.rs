//! With the `probes` feature, a binary that observes a map through `ProbeObserver` carries the
//! `safemap:access`, `lock_wait`, `maintenance` and `balance` SDT notes that tracers attach to
//! (`readelf -n`).

use std::process::Command;

use safemap::{ConcurrentMap, Observed, ProbeObserver, ShardedMap};

#[test]
fn the_sdt_notes_are_in_the_binary() {
    // Use the observer, so the probes are compiled into this test binary.
    let map = Observed::new(ShardedMap::<u32, u32>::new(), ProbeObserver::new(1));
    map.insert(1, 1);
    assert_eq!(map.get(&1), Some(1));

    let exe = std::env::current_exe().unwrap();
    let out = Command::new("readelf")
        .arg("-n")
        .arg(&exe)
        .output()
        .expect("readelf (binutils) must be installed to check the probe notes");
    assert!(out.status.success(), "readelf failed on {}", exe.display());
    let notes = String::from_utf8_lossy(&out.stdout);
    for name in ["access", "lock_wait", "maintenance", "balance"] {
        let found = notes.split("stapsdt").any(|note| {
            note.contains("Provider: safemap") && note.contains(&format!("Name: {name}\n"))
        });
        assert!(
            found,
            "no safemap:{name} SDT note in {}:\n{notes}",
            exe.display()
        );
    }
}
