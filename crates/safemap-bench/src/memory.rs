//! `safemap-bench memory`: bytes per entry over a sweep of map sizes.
//!
//! Every table here grows by doubling, so a map's bytes per entry swing by up to 2x between just
//! before and just after a growth, and each map grows at its own sizes. A figure taken at one size
//! (the `run` tables take theirs at the cell's key count) catches each map at one point of its
//! cycle, and a ratio between two maps at one size can land anywhere between their best and their
//! worst. This sweeps sizes spaced evenly on a log scale and reports, per contestant, the mean,
//! lowest and highest bytes per entry, and how it compares with `hashbrown-floor` at the same
//! sizes: the ratio of the two means (the cost averaged over whole growth cycles, since the sizes
//! spread evenly over each doubling) and the highest ratio at any one size. (A median of the
//! per-size ratios is no summary: where two maps' cycles are out of phase the ratios split into
//! two clusters, and the median jumps between them when either map's growth point moves.)

use clap::Args;
use serde::Serialize;

use crate::contestants::{Contestant, Family};
use crate::session::{pick_contestants, write_json};

/// Options of `memory`.
#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    /// The smallest entry count.
    #[arg(long, default_value_t = 10_000)]
    from: usize,
    /// The largest entry count.
    #[arg(long, default_value_t = 2_000_000)]
    to: usize,
    /// How many sizes, spaced evenly on a log scale from `--from` to `--to`. The default's step
    /// (about a fifth of a doubling) is no simple fraction of a doubling, so the sizes fall at
    /// many points of each map's growth cycle (24 steps of a third of a doubling hit three).
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// Contestants, comma-separated (default: every in-process one); `hashbrown-floor` is always
    /// measured, as the reference.
    #[arg(long, value_delimiter = ',')]
    contestants: Vec<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One contestant over the sweep.
#[derive(Debug, Serialize)]
pub struct Footprints {
    name: &'static str,
    /// Bytes per entry at each size of the sweep.
    bytes_per_entry: Vec<f64>,
    /// Each of those over `hashbrown-floor`'s at the same size.
    ratio_to_floor: Vec<f64>,
}

/// The sweep and what each contestant took.
#[derive(Debug, Serialize)]
struct Sweep {
    sizes: Vec<usize>,
    contestants: Vec<Footprints>,
}

/// `steps` sizes from `from` to `to`, evenly spaced on a log scale, without repeats.
pub fn sizes(from: usize, to: usize, steps: usize) -> Vec<usize> {
    let (low, high) = ((from as f64).ln(), (to as f64).ln());
    let mut sizes: Vec<usize> = (0..steps)
        .map(|i| {
            let at = if steps == 1 {
                0.0
            } else {
                i as f64 / (steps - 1) as f64
            };
            (low + (high - low) * at).exp().round() as usize
        })
        .collect();
    sizes.dedup();
    sizes
}

pub fn memory(args: &MemoryArgs) -> Result<(), String> {
    if args.from == 0 || args.to < args.from || args.steps == 0 {
        return Err("memory: need 1 <= --from <= --to and --steps >= 1".into());
    }
    let mut chosen = pick_contestants(&args.contestants)?;
    if let Some(remote) = chosen.iter().find(|c| c.family == Family::Remote) {
        return Err(format!(
            "memory: {} keeps its entries in another process",
            remote.name
        ));
    }
    chosen.retain(|c| c.family != Family::Floor);
    let floor = pick_contestants(&["hashbrown-floor".to_string()])?;
    let sizes = sizes(args.from, args.to, args.steps);
    let measure =
        |c: &Contestant| -> Vec<f64> { sizes.iter().map(|&n| (c.footprint)(n)).collect() };
    let reference = measure(&floor[0]);
    let footprints: Vec<Footprints> = floor
        .iter()
        .chain(&chosen)
        .map(|c| {
            let bytes_per_entry = measure(c);
            let ratio_to_floor = bytes_per_entry
                .iter()
                .zip(&reference)
                .map(|(b, r)| b / r)
                .collect();
            Footprints {
                name: c.name,
                bytes_per_entry,
                ratio_to_floor,
            }
        })
        .collect();
    println!(
        "bytes per u64 -> u64 entry at {} sizes from {} to {} entries\n",
        sizes.len(),
        args.from,
        args.to
    );
    print!("{}", table(&footprints));
    if let Some(path) = &args.json {
        let sweep = Sweep {
            sizes,
            contestants: footprints,
        };
        write_json(path, &sweep)?;
    }
    Ok(())
}

/// The lowest, mean and highest of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (low, values.iter().sum::<f64>() / values.len() as f64, high)
}

/// The table; the first row is the reference whose mean the ratios divide by.
fn table(footprints: &[Footprints]) -> String {
    let mut out = String::from(
        "| contestant | mean B/entry | lowest | highest | x floor, means | x floor, highest |\n\
         |---|---|---|---|---|---|\n",
    );
    let (_, reference, _) = spread(&footprints[0].bytes_per_entry);
    for f in footprints {
        let (low, mean, high) = spread(&f.bytes_per_entry);
        let (_, _, ratio_high) = spread(&f.ratio_to_floor);
        out += &format!(
            "| {} | {mean:.1} | {low:.1} | {high:.1} | {:.2} | {ratio_high:.2} |\n",
            f.name,
            mean / reference
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_span_the_range_on_a_log_scale() {
        assert_eq!(sizes(10, 1000, 3), vec![10, 100, 1000]);
        assert_eq!(sizes(5, 5, 4), vec![5]);
        assert_eq!(sizes(1000, 2000, 1), vec![1000]);
    }

    #[test]
    fn spread_finds_the_lowest_mean_and_highest() {
        assert_eq!(spread(&[3.0, 1.0, 5.0]), (1.0, 3.0, 5.0));
    }

    #[test]
    fn the_table_divides_the_means_and_reports_the_worst_size() {
        let footprints = [
            Footprints {
                name: "floor",
                bytes_per_entry: vec![20.0, 40.0, 30.0],
                ratio_to_floor: vec![1.0, 1.0, 1.0],
            },
            Footprints {
                name: "m",
                bytes_per_entry: vec![30.0, 40.0, 65.0],
                ratio_to_floor: vec![1.5, 1.0, 2.5],
            },
        ];
        let row = table(&footprints).lines().last().unwrap().to_string();
        assert_eq!(row, "| m | 45.0 | 30.0 | 65.0 | 1.50 | 2.50 |");
    }
}
