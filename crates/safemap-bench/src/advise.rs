//! `safemap-bench advise`: measures every contestant on the user's profile and recommends the
//! fastest safemap strategy, with its figures against the other strategies and the best peer.
//!
//! By default it measures two key counts, one whose map fits in the last-level cache and one
//! whose map does not, and recommends for each: in cache, what a read writes to shared memory
//! (a lock word, a reference count) decides its cost; out of it, the wait for DRAM does, and
//! hides the rest. When the two recommendations differ it says so, and why.

use clap::Args;
use safemap::WholeMap;

use crate::contestants::{Family, contestants};
use crate::report::{Row, table};
use crate::session::{Plan, pick_contestants, progress_bar};
use crate::workload::{CACHE_RESIDENT, Dist, Mix, Shape, Workload};

/// The user's profile.
#[derive(Args, Debug)]
pub struct AdviseArgs {
    /// Percent of operations that read.
    #[arg(long)]
    read_pct: f64,
    /// Percent that insert.
    #[arg(long)]
    insert_pct: f64,
    /// Percent that remove. The rest, up to 100, update in place.
    #[arg(long)]
    remove_pct: f64,
    /// Key counts, comma-separated; three quarters of the keys are present when timing starts
    /// (default: 65,536, whose map fits in cache, and 1,000,000, whose map does not).
    #[arg(long, value_delimiter = ',', default_values_t = [CACHE_RESIDENT, 1_000_000])]
    keys: Vec<usize>,
    /// Threads.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, usize::from))]
    threads: usize,
    /// Key distribution.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    dist: Dist,
    /// Repetitions per contestant.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Operations per repetition.
    #[arg(long, default_value_t = 2_000_000)]
    ops: usize,
}

fn profile(args: &AdviseArgs) -> Result<Mix, String> {
    let given = [args.read_pct, args.insert_pct, args.remove_pct];
    if given.iter().any(|p| !(0.0..=100.0).contains(p)) || given.iter().sum::<f64>() > 100.0 {
        return Err(format!(
            "percentages must each be within 0-100 and sum to at most 100; got read {}, insert {}, remove {}",
            args.read_pct, args.insert_pct, args.remove_pct
        ));
    }
    if args.keys.contains(&0) || args.threads == 0 || args.reps == 0 || args.ops == 0 {
        return Err("--keys, --threads, --reps and --ops must be at least 1".into());
    }
    Ok(Mix {
        read: args.read_pct,
        insert: args.insert_pct,
        remove: args.remove_pct,
        update: 100.0 - given.iter().sum::<f64>(),
        get_or_insert: 0.0,
        prefill: 0.75,
    })
}

/// The recommended strategy for measured `rows` of one cell, and the sentence saying why.
pub fn recommend<'a>(rows: &[&'a Row], mix: &Mix) -> Result<(&'a str, String), String> {
    let mut ours: Vec<&Row> = (rows.iter().copied())
        .filter(|r| r.family == Family::Safemap)
        .collect();
    ours.sort_by(|a, b| b.mops.total_cmp(&a.mops));
    let best = ours.first().ok_or("no safemap strategy was measured")?;
    let mut reason = format!(
        "{}: {:.2} Mops/s, p99 {} ns at {:.0}% reads on {} thread(s), {} keys",
        best.contestant, best.mops, best.p99_ns, mix.read, best.threads, best.keys
    );
    if let Some(next) = ours.get(1) {
        reason += &format!("; {:.2}x {}", best.mops / next.mops, next.contestant);
    }
    let peer = rows
        .iter()
        .filter(|r| r.family == Family::Peer)
        .max_by(|a, b| a.mops.total_cmp(&b.mops));
    if let Some(peer) = peer {
        reason += &format!(
            "; {:.2}x the best peer ({})",
            best.mops / peer.mops,
            peer.contestant
        );
    }
    let declared = contestants()
        .into_iter()
        .find(|c| c.name == best.contestant);
    if let Some(c) = declared.and_then(|c| c.consistency) {
        let word = |w: WholeMap| match w {
            WholeMap::Atomic => "atomic",
            WholeMap::WeaklyConsistent => "weakly consistent",
            WholeMap::Estimate => "an estimate",
        };
        reason += &format!(
            "; for_each {}, len {}, snapshot {:?}",
            word(c.for_each),
            word(c.len),
            c.snapshot_cost
        );
    }
    Ok((&best.contestant, format!("recommendation: {reason}")))
}

/// The largest CPU cache of this machine, in bytes, from sysfs.
fn last_level_cache() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    (dir.flatten())
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("size")).ok())
        .filter_map(|size| {
            let size = size.trim();
            let (digits, scale) = match size.strip_suffix('K') {
                Some(kib) => (kib, 1 << 10),
                None => (size.strip_suffix('M').unwrap_or(size), 1 << 20),
            };
            digits.parse::<u64>().ok().map(|n| n * scale)
        })
        .max()
}

/// Why the recommendations at two key counts differ: where each map lies against the cache.
fn why_they_differ(small: (&Row, &str), large: (&Row, &str)) -> String {
    let cache = last_level_cache();
    let place = |(row, best): (&Row, &str)| {
        let bytes = row.bytes_per_entry * row.keys as f64;
        let fits = cache.is_some_and(|c| bytes <= c as f64);
        let why = if fits {
            "so what a read writes to shared memory (a lock word, a reference count) shows in its cost"
        } else {
            "so reads wait on DRAM, which hides what they write"
        };
        format!(
            "at {} keys the map ({:.1} MiB) {} the last-level cache, {why}, and {best} comes out ahead",
            row.keys,
            bytes / (1 << 20) as f64,
            if fits { "fits in" } else { "does not fit in" },
        )
    };
    let cache = cache.map_or("unknown".into(), |c| format!("{} MiB", c >> 20));
    format!(
        "the two differ (last-level cache: {cache}): {}; {}",
        place(small),
        place(large)
    )
}

/// `safemap-bench advise`.
pub fn advise(args: &AdviseArgs) -> Result<(), String> {
    let mix = profile(args)?;
    let profile = Workload {
        name: "Profile",
        mix,
        default_keys: args.keys[0],
        both_regimes: false,
        shape: Shape::Mixed,
    };
    let mut sizes = args.keys.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let plan = Plan {
        workloads: sizes.iter().map(|&keys| (profile, keys)).collect(),
        threads: vec![args.threads],
        dist: args.dist,
        contestants: pick_contestants(&[])?,
        reps: args.reps,
        ops: args.ops,
        budget: None,
        with_go: false,
    };
    let progress = progress_bar();
    let rows = plan.measure(&progress);
    progress.finish_and_clear();
    print!("{}", table(&rows));
    println!();
    let mut picks: Vec<(&Row, &str)> = Vec::new();
    for keys in &sizes {
        let of_size: Vec<&Row> = rows.iter().filter(|r| r.keys == *keys).collect();
        let (best, line) = recommend(&of_size, &mix)?;
        println!("{line}");
        let best_row = of_size
            .iter()
            .find(|r| r.contestant == best)
            .expect("measured");
        picks.push((best_row, best));
    }
    if let (Some(&small), Some(&large)) = (picks.first(), picks.last())
        && small.1 != large.1
    {
        println!("{}", why_they_differ(small, large));
    }
    Ok(())
}
