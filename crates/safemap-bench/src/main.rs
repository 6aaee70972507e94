//! `safemap-bench`: measures safemap's strategies against peer maps on the same workloads, in one
//! run, and recommends one for a given profile.
//!
//! ```text
//! cargo run --release -p safemap-bench -- --quick --json out.json
//! cargo run --release -p safemap-bench -- advise --read-pct 99 --insert-pct 1 --remove-pct 0 --threads 2
//! cargo run --release -p safemap-bench -- iterate --keys 1000000
//! cargo run --release -p safemap-bench -- memory --from 10000 --to 2000000
//! cargo run --release -p safemap-bench -- neighbour --keys 4194304
//! ```

mod advise;
mod alloc;
mod contestants;
mod go;
mod html;
mod iterate;
mod measure;
mod memory;
mod neighbour;
mod report;
mod session;
mod steal;
mod workload;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::workload::Dist;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Benchmark safemap's strategies against dashmap, papaya, scc, std and an unsynchronized floor.
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the workloads for every contestant and print a table (the default).
    Run(RunArgs),
    /// Measure the candidates on one profile and recommend a strategy.
    Advise(advise::AdviseArgs),
    /// Measure a whole-map iteration: its time, its peak memory, and a concurrent writer's
    /// longest operation while it runs.
    Iterate(iterate::IterateArgs),
    /// Measure bytes per entry over a sweep of map sizes, against hashbrown's at the same sizes.
    Memory(memory::MemoryArgs),
    /// Measure what growing each map costs another thread of the process that maps and unmaps
    /// memory.
    Neighbour(neighbour::NeighbourArgs),
}

/// Options of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The README default: conc-map-bench's three mixes at 1 and 2 threads, in both regimes
    /// (65,536 and 1M keys), 3 repetitions;
    /// under 2 minutes on 2 cores.
    #[arg(long)]
    quick: bool,
    /// Workloads to run, comma-separated (default: all; with --quick, the three mixes).
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// Thread counts, comma-separated (default: 1, cores and 4x cores; with --quick, 1 and 2).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Key counts, comma-separated (default: each workload's own, and for the four mixes also
    /// 65,536, where the map fits in cache).
    #[arg(long, value_delimiter = ',')]
    keys: Vec<usize>,
    /// Key distribution.
    #[arg(long, value_enum, default_value_t = Dist::Uniform)]
    dist: Dist,
    /// Contestants, comma-separated (default: all); `go` selects the Go baseline.
    #[arg(long, value_delimiter = ',')]
    contestants: Vec<String>,
    /// Repetitions per cell; the median is reported (default 5; with --quick, 3).
    #[arg(long)]
    reps: Option<usize>,
    /// Operations per repetition, over all threads (default 8,000,000; with --quick, 600,000).
    #[arg(long)]
    ops: Option<usize>,
    /// Stop each thread of a mixed workload's repetition after this many seconds even if its
    /// operations are not done; throughput counts the operations done (default: no limit; with
    /// --quick, 0.3; Go's maps get the same budget). Slow contestants then finish in bounded
    /// time on fewer operations.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write a self-contained HTML report with SVG plots here.
    #[arg(long)]
    html: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Advise(args)) => advise::advise(&args),
        Some(Command::Iterate(args)) => iterate::iterate(&args),
        Some(Command::Memory(args)) => memory::memory(&args),
        Some(Command::Neighbour(args)) => neighbour::neighbour(&args),
        Some(Command::Run(args)) => session::run(&args),
        None => session::run(&cli.run),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("safemap-bench: {message}");
            ExitCode::from(2)
        }
    }
}
