//! `safemap-bench advise`: measures every contestant on the user's profile and recommends the
//! fastest safemap strategy, with its figures against the other strategies and the best peer.

use clap::Args;
use safemap::WholeMap;

use crate::contestants::{Family, contestants};
use crate::report::{Row, table};
use crate::session::{Plan, pick_contestants, progress_bar};
use crate::workload::{Dist, Mix, Shape, Workload};

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
    /// Key space; three quarters of it is present when timing starts.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
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
    if args.keys == 0 || args.threads == 0 || args.reps == 0 || args.ops == 0 {
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

/// The recommendation for measured `rows` of one cell.
pub fn recommend(rows: &[Row], mix: &Mix) -> Result<String, String> {
    let mut ours: Vec<&Row> = rows
        .iter()
        .filter(|r| r.family == Family::Safemap)
        .collect();
    ours.sort_by(|a, b| b.mops.total_cmp(&a.mops));
    let best = ours.first().ok_or("no safemap strategy was measured")?;
    let mut reason = format!(
        "{}: {:.2} Mops/s, p99 {} ns at {:.0}% reads on {} thread(s)",
        best.contestant, best.mops, best.p99_ns, mix.read, best.threads
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
        };
        reason += &format!(
            "; for_each {}, len {}, snapshot {:?}",
            word(c.for_each),
            word(c.len),
            c.snapshot_cost
        );
    }
    Ok(format!("recommendation: {reason}"))
}

/// `safemap-bench advise`.
pub fn advise(args: &AdviseArgs) -> Result<(), String> {
    let mix = profile(args)?;
    let plan = Plan {
        workloads: vec![(
            Workload {
                name: "Profile",
                mix,
                default_keys: args.keys,
                shape: Shape::Mixed,
            },
            args.keys,
        )],
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
    println!("\n{}", recommend(&rows, &mix)?);
    Ok(())
}
