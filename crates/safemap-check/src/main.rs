//! `safemap-check`: generates random concurrent histories against each strategy, checks them for
//! linearizability, and exits non-zero if any history has none.

use std::process::ExitCode;

use clap::Parser;
use safemap_check::remote::{CHILD_FLAG, child_main, redis_contestants, redis_seeded_bug};
use safemap_check::run::{Config, Contestant, strategies};
use safemap_check::seeded::seeded_bugs;

/// Check safemap strategies for linearizability on random concurrent histories.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// A strategy name, `all` (every in-memory strategy), `seeded-bugs` (the deliberately broken
    /// in-memory maps) or `redis` (RedisMap in both layouts, on a redis-server started for the
    /// run; its seeded bug is `seeded:redis-get-then-set`).
    #[arg(long, default_value = "all")]
    strategy: String,
    /// Histories per strategy.
    #[arg(long, default_value_t = 1000)]
    histories: usize,
    /// Threads per history.
    #[arg(long, default_value_t = 3)]
    threads: usize,
    /// Operations per thread.
    #[arg(long, default_value_t = 8)]
    ops: usize,
    /// Number of keys (at most 8), small so that operations overlap on them.
    #[arg(long, default_value_t = 4)]
    keys: u8,
    /// Seed of the first history.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD_FLAG) {
        return match child_main(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("safemap-check: {message}");
                ExitCode::from(2)
            }
        };
    }
    let cli = Cli::parse();
    let config = Config {
        threads: cli.threads,
        ops: cli.ops,
        keys: cli.keys,
        seed: cli.seed,
    };
    if let Err(message) = config.validate() {
        eprintln!("safemap-check: {message}");
        return ExitCode::from(2);
    }
    let chosen: Vec<Contestant> = match cli.strategy.as_str() {
        "all" => strategies(),
        "seeded-bugs" => seeded_bugs(),
        "redis" => redis_contestants(),
        name => {
            let found: Vec<_> = strategies()
                .into_iter()
                .chain(redis_contestants())
                .chain(seeded_bugs())
                .chain([redis_seeded_bug()])
                .filter(|c| c.name.eq_ignore_ascii_case(name))
                .collect();
            if found.is_empty() {
                let known: Vec<_> = strategies().iter().map(|c| c.name).collect();
                eprintln!(
                    "safemap-check: unknown strategy {name:?}; expected all, seeded-bugs, redis or one of {}",
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
            found
        }
    };
    let mut any_violation = false;
    for contestant in chosen {
        let report = (contestant.check)(&config, cli.histories);
        println!(
            "{}: {} histories, {} violations ({:.0}% of operations overlapped another thread's)",
            contestant.name,
            report.histories,
            report.violations,
            100.0 * report.overlap_share()
        );
        if report.len_unjudged {
            println!(
                "  len not judged: the map declares it an estimate, so its histories ask get instead"
            );
        }
        if let Some((index, history)) = &report.first_undecided {
            println!(
                "  {} undecided: a search gave up after {} states; the first, history {index} \
                 (seed {}), as JSON events:\n  {}",
                report.undecided,
                safemap_check::wgl::STATES,
                config.seed.wrapping_add(*index as u64),
                serde_json::to_string(&history.events).expect("events serialize")
            );
        }
        if let Some((index, violation)) = &report.first {
            any_violation = true;
            println!(
                "  first counterexample, from history {index} (seed {}):\n{violation}",
                config.seed.wrapping_add(*index as u64)
            );
        }
    }
    if any_violation {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
