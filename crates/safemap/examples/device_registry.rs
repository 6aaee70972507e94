//! A device registry: device IDs mapped to fingerprints, shared by many reader threads and a few
//! writers that register devices with `get_or_insert_with`, so each fingerprint is computed once.
//!
//! Prints throughput and sampled latency percentiles for each strategy.
//!
//! ```text
//! cargo run --release -p safemap --example device_registry -- [--devices N] [--ops N]
//!     --devices N   registry size (default 2000000)
//!     --ops N       lookups per reader thread (default 1000000)
//! ```

use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use safemap::{ConcurrentMap, LockedMap, ShardedMap};

const READERS: usize = 6;
const WRITERS: usize = 2;
/// The registry's observed mix: about 5,000 reads for every 300 registrations.
const WRITES_PER_5000_READS: usize = 300;
/// Time one operation in this many, so that timing does not dominate what it measures.
const SAMPLE_EVERY: usize = 16;

struct Args {
    devices: u64,
    ops: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        devices: 2_000_000,
        ops: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = value
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{flag} takes a positive whole number, got {value:?}"))?;
        match flag.as_str() {
            "--devices" => args.devices = number,
            "--ops" => args.ops = number as usize,
            _ => {
                return Err(format!(
                    "unknown option {flag}; expected --devices or --ops"
                ));
            }
        }
    }
    Ok(args)
}

/// The expensive per-device value: what the registry wants to compute only once.
fn fingerprint(device: u64) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(0x5eed).build_hasher();
    for round in 0..64 {
        h.write_u64(device ^ round);
    }
    h.finish()
}

/// A fast, seeded generator for device IDs, so each thread's operation list is reproducible.
fn device_ids(seed: u64, count: usize, devices: u64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % devices
        })
        .collect()
}

struct Outcome {
    mops: f64,
    latency: Histogram<u64>,
    fingerprints_computed: usize,
}

fn run<M: ConcurrentMap<u64, u64> + Sync>(map: M, args: &Args) -> Outcome {
    // Nine tenths of the devices are known before the readers start; the rest arrive meanwhile.
    let known = args.devices * 9 / 10;
    for device in 0..known {
        map.insert(device, fingerprint(device));
    }
    let writes = args.ops * WRITES_PER_5000_READS / 5000;
    let plans: Vec<(bool, Vec<u64>)> = (0..READERS + WRITERS)
        .map(|t| {
            let is_writer = t >= READERS;
            let count = if is_writer { writes } else { args.ops };
            (is_writer, device_ids(t as u64 + 1, count, args.devices))
        })
        .collect();
    let computed = AtomicUsize::new(0);
    let start = Barrier::new(plans.len() + 1);
    let (elapsed, histograms) = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|(is_writer, ids)| {
                let (map, start, computed) = (&map, &start, &computed);
                s.spawn(move || {
                    let mut latency = Histogram::<u64>::new(3).expect("valid precision");
                    start.wait();
                    for (i, &device) in ids.iter().enumerate() {
                        let timer = (i % SAMPLE_EVERY == 0).then(Instant::now);
                        if *is_writer {
                            map.get_or_insert_with(device, || {
                                computed.fetch_add(1, Ordering::Relaxed);
                                fingerprint(device)
                            });
                        } else {
                            std::hint::black_box(map.get(&device));
                        }
                        if let Some(timer) = timer {
                            latency.saturating_record(timer.elapsed().as_nanos() as u64);
                        }
                    }
                    latency
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let histograms: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (began.elapsed(), histograms)
    });
    let mut latency = Histogram::<u64>::new(3).expect("valid precision");
    for h in &histograms {
        latency.add(h).expect("same precision");
    }
    let total_ops = plans.iter().map(|(_, ids)| ids.len()).sum::<usize>();
    Outcome {
        mops: total_ops as f64 / elapsed.as_secs_f64() / 1e6,
        latency,
        fingerprints_computed: computed.into_inner(),
    }
}

fn report(name: &str, outcome: &Outcome) {
    let q = |p: f64| outcome.latency.value_at_quantile(p);
    println!(
        "{name:<12} {:>8.2} Mops/s   p50 {:>6} ns   p99 {:>7} ns   p99.9 {:>8} ns   fingerprints computed {}",
        outcome.mops,
        q(0.50),
        q(0.99),
        q(0.999),
        outcome.fingerprints_computed
    );
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("device_registry: {message}");
            return ExitCode::from(2);
        }
    };
    println!(
        "device registry: {} devices, {READERS} readers x {} lookups, {WRITERS} writers x {} registrations, {} cores",
        args.devices,
        args.ops,
        args.ops * WRITES_PER_5000_READS / 5000,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let capacity = args.devices as usize;
    report(
        "LockedMap",
        &run(LockedMap::<u64, u64>::with_capacity(capacity), &args),
    );
    report(
        "ShardedMap",
        &run(ShardedMap::<u64, u64>::with_capacity(capacity), &args),
    );
    ExitCode::SUCCESS
}
