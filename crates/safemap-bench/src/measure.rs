//! Runs one cell (workload × threads × contestant) and measures it.
//!
//! Per repetition: a fresh map, prefilled on one thread; then every thread runs its pre-generated
//! operation list, released together by a barrier. Throughput is all operations over the span
//! from the first thread's start to the last thread's end. Each thread times one operation in its
//! sampling interval (normally [`SAMPLE_EVERY`]) into a latency histogram, so timing does not
//! dominate what it measures.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::contestants::{Contender, MapOps};
use crate::workload::Op;

/// Time one operation in this many.
pub const SAMPLE_EVERY: usize = 32;

/// What to run.
pub struct Cell<'a> {
    /// Keys inserted before timing, by index.
    pub prefill: u64,
    /// Each thread's operations.
    pub plans: &'a [Vec<Op>],
    /// Each thread times one operation in this many; `None` times none.
    pub sample_every: &'a [Option<usize>],
    /// Repetitions.
    pub reps: usize,
    /// Each thread stops after this long even if its plan is not done.
    pub budget: Option<Duration>,
}

/// What one cell measured.
pub struct Measurement {
    /// Throughput of each repetition, in million operations per second.
    pub mops: Vec<f64>,
    /// Sampled per-operation latency over all repetitions, in nanoseconds.
    pub latency: Histogram<u64>,
}

/// 1 ns to 100 s at 3 significant figures, so no stall is clipped.
impl Measurement {
    /// Adds another measurement's repetitions and samples to this one.
    pub fn merge(&mut self, other: Measurement) {
        self.mops.extend(other.mops);
        self.latency.add(&other.latency).expect("same bounds");
    }
}

/// A histogram of latencies in nanoseconds, from 1 to 100 s (a longer one is recorded as 100 s).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds")
}

/// The median of `xs` (the upper one of an even count); `xs` is not empty.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Measures contestant `M` on `cell`.
pub fn measure<M: Contender>(cell: &Cell) -> Measurement {
    let mut latency = histogram();
    let mops = (0..cell.reps)
        .map(|_| {
            let mut map = M::create_filled(cell.prefill);
            // The last repetition's map (or the last contestant's) may still be being freed on
            // safemap's release thread: not this run's work.
            safemap::settle_memory();
            let handles = map.handles(cell.plans.len());
            let (mops, samples) = run(handles, cell.plans, cell.sample_every, cell.budget);
            for h in &samples {
                latency.add(h).expect("same precision");
            }
            mops
        })
        .collect();
    Measurement { mops, latency }
}

/// Runs each plan on its own thread through its handle.
fn run<H: MapOps>(
    handles: Vec<H>,
    plans: &[Vec<Op>],
    sample_every: &[Option<usize>],
    budget: Option<Duration>,
) -> (f64, Vec<Histogram<u64>>) {
    let start = Barrier::new(plans.len());
    let spans: Vec<(Instant, Instant, Histogram<u64>, usize)> = std::thread::scope(|s| {
        let threads: Vec<_> = handles
            .into_iter()
            .zip(plans)
            .zip(sample_every)
            .map(|((mut handle, ops), every)| {
                let (start, every) = (&start, *every);
                s.spawn(move || {
                    let mut samples = histogram();
                    start.wait();
                    let began = Instant::now();
                    let mut done = ops.len();
                    for (i, op) in ops.iter().enumerate() {
                        // The clock is read once per 4,096 operations only.
                        if i % 4096 == 4095 && budget.is_some_and(|b| began.elapsed() > b) {
                            done = i;
                            break;
                        }
                        if every.is_some_and(|n| i % n == 0) {
                            let t = Instant::now();
                            apply(&mut handle, *op);
                            samples.saturating_record(t.elapsed().as_nanos() as u64);
                        } else {
                            apply(&mut handle, *op);
                        }
                    }
                    (began, Instant::now(), samples, done)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let first = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let last = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    let ops: usize = spans.iter().map(|s| s.3).sum();
    let mops = ops as f64 / last.duration_since(first).as_secs_f64() / 1e6;
    (mops, spans.into_iter().map(|s| s.2).collect())
}

/// Runs `main` on this thread while another thread calls `step` over and over, each call timed
/// on its own, with `gap` of sleep between calls (none if zero), until `main` has returned; the
/// side thread makes at least one call. Returns how long `main` took and the calls' latencies
/// ([`histogram`]).
pub fn timed_beside(
    gap: Duration,
    mut step: impl FnMut() + Send,
    main: impl FnOnce(),
) -> (Duration, Histogram<u64>) {
    let stop = AtomicBool::new(false);
    let started = Barrier::new(2);
    std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            let mut calls = histogram();
            started.wait();
            // Relaxed: the flag only ends the loop; the scope's join orders everything else.
            loop {
                let start = Instant::now();
                step();
                calls.saturating_record(start.elapsed().as_nanos() as u64);
                if stop.load(Ordering::Relaxed) {
                    break calls;
                }
                if !gap.is_zero() {
                    std::thread::sleep(gap);
                }
            }
        });
        started.wait();
        let start = Instant::now();
        main();
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        (
            elapsed,
            side.join().expect("the side thread does not panic"),
        )
    })
}

#[inline(always)]
fn apply(handle: &mut impl MapOps, op: Op) {
    match op {
        Op::Read(k) => {
            black_box(handle.get(k));
        }
        Op::Insert(k) => handle.insert(k, k),
        Op::Remove(k) => handle.remove(k),
        Op::Update(k) => handle.update(k),
        Op::GetOrInsert(k) => {
            black_box(handle.get_or_insert(k, || k.rotate_left(7)));
        }
        Op::Snapshot => {
            black_box(handle.snapshot_len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the operations it is asked to do.
    struct Counting(usize);

    impl MapOps for &mut Counting {
        fn get(&mut self, _: u64) -> bool {
            self.0 += 1;
            false
        }
        fn insert(&mut self, _: u64, _: u64) {
            self.0 += 1;
        }
        fn remove(&mut self, _: u64) {
            self.0 += 1;
        }
        fn update(&mut self, _: u64) {
            self.0 += 1;
        }
        fn get_or_insert(&mut self, _: u64, make: impl FnOnce() -> u64) -> u64 {
            self.0 += 1;
            make()
        }
    }

    #[test]
    fn a_budget_stops_each_thread_at_a_check_and_counts_only_what_ran() {
        let plans = vec![vec![Op::Read(1); 100_000]];
        let mut counting = Counting(0);
        // A budget already spent: the thread stops at its first check, after 4,095 operations.
        run(vec![&mut counting], &plans, &[None], Some(Duration::ZERO));
        assert_eq!(counting.0, 4095);

        let mut unbounded = Counting(0);
        run(vec![&mut unbounded], &plans, &[None], None);
        assert_eq!(unbounded.0, 100_000);
    }
}
