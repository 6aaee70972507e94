//! The command line: exit codes, one line per strategy, and counterexamples for seeded bugs.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_safemap-check"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn strategies_pass_and_exit_zero() {
    let (code, out, _) = run(&["--strategy", "all", "--histories", "200"]);
    assert_eq!(code, 0, "{out}");
    macro_rules! names {
        ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
            [$(stringify!($map)),*]
        };
    }
    for name in safemap::strategies!(names!()) {
        assert!(
            out.contains(&format!("{name}: 200 histories, 0 violations")),
            "{out}"
        );
    }
}

#[test]
fn seeded_bugs_are_reported_and_exit_non_zero() {
    let (code, out, _) = run(&["--strategy", "seeded-bugs", "--histories", "1000"]);
    assert_eq!(code, 1, "{out}");
    for bug in [
        "check-then-act",
        "stale-read",
        "lost-update",
        "overcounting-len",
        "unclaimed-init",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("seeded:{bug}:")))
            .unwrap_or_else(|| panic!("no line for {bug}: {out}"));
        assert!(!line.contains(" 0 violations"), "{line}");
    }
    assert_eq!(out.matches("first counterexample").count(), 5, "{out}");
}

#[test]
fn redis_map_is_linearizable_in_one_process_and_across_two() {
    let (code, out, _) = run(&["--strategy", "redis", "--histories", "100"]);
    assert_eq!(code, 0, "{out}");
    for name in [
        "redis:one-hash",
        "redis:key-per-entry",
        "redis:one-hash:two-processes",
        "redis:key-per-entry:two-processes",
    ] {
        assert!(
            out.contains(&format!("{name}: 100 histories, 0 violations")),
            "{out}"
        );
    }
}

#[test]
fn the_redis_seeded_bug_is_reported_and_exits_non_zero() {
    let (code, out, _) = run(&[
        "--strategy",
        "seeded:redis-get-then-set",
        "--histories",
        "500",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("seeded:redis-get-then-set: 500 histories, "),
        "{out}"
    );
    assert!(!out.contains(" 0 violations"), "{out}");
    assert!(out.contains("first counterexample"), "{out}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let (code, _, err) = run(&["--keys", "9"]);
    assert_eq!(code, 2);
    assert!(err.contains("keys must be between 1 and 8"), "{err}");
    let (code, _, err) = run(&["--strategy", "nosuchmap"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown strategy"), "{err}");
}
