//! How much CPU time the host took from this virtual machine while a run measured: its *steal
//! time*, which Linux counts in `/proc/stat`. On a shared VM a thread can lose milliseconds at a
//! time to the hypervisor, which lands in throughput and in the latency tail of whatever was
//! running; a run that reports its steal says how far to trust its figures.

use serde::Serialize;

/// Clock ticks per second of `/proc/stat`'s counters: Linux's `USER_HZ`, 100 on every
/// architecture Rust targets there.
const TICKS_PER_SECOND: u64 = 100;

/// The steal counter (in ticks, all CPUs together) in the text of `/proc/stat`: the eighth
/// number of the line that starts with `cpu ` (user, nice, system, idle, iowait, irq, softirq,
/// steal, ...). `None` if there is no such line or field, as on kernels before 2.6.11.
fn steal_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// A reading of the steal counter and the clock, to subtract a later one from.
pub struct Mark {
    ticks: Option<u64>,
    at: std::time::Instant,
}

/// What the host took between two marks.
#[derive(Debug, Serialize)]
pub struct Stolen {
    /// CPU time taken from all of this machine's CPUs together, in milliseconds.
    pub steal_ms: u64,
    /// Wall time between the marks, in seconds.
    pub seconds: f64,
}

impl Mark {
    /// Reads the counter now.
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        Mark {
            ticks: steal_ticks(&stat),
            at: std::time::Instant::now(),
        }
    }

    /// What the host took since this mark; `None` where the system does not count it.
    pub fn stolen(&self) -> Option<Stolen> {
        let later = Mark::now();
        let ticks = later.ticks?.checked_sub(self.ticks?)?;
        Some(Stolen {
            steal_ms: ticks * 1000 / TICKS_PER_SECOND,
            seconds: later.at.duration_since(self.at).as_secs_f64(),
        })
    }
}

impl Stolen {
    /// One line for the end of a report, the share of the CPUs' time taken included.
    pub fn line(&self, cores: usize) -> String {
        let share = self.steal_ms as f64 / 1e3 / (self.seconds * cores.max(1) as f64);
        format!(
            "host: steal time {} ms of {cores} cores' {:.1} s ({:.2}%, /proc/stat): CPU time the \
             hypervisor took; the more, the less sure the figures, above all latency tails\n",
            self.steal_ms,
            self.seconds,
            share * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_count_of_the_cpu_line() {
        let stat = "cpu  4705 356 584 3699176 23 0 27 918 0 0\n\
                    cpu0 2352 178 292 1849588 11 0 13 459 0 0\n\
                    intr 114930548 113199788 3\n";
        assert_eq!(steal_ticks(stat), Some(918));
    }

    #[test]
    fn a_stat_without_steal_gives_none() {
        assert_eq!(steal_ticks("cpu  4705 356 584 3699176 23 0 27\n"), None);
        assert_eq!(steal_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn the_line_gives_the_share_of_all_cores_time() {
        let stolen = Stolen {
            steal_ms: 100,
            seconds: 10.0,
        };
        let line = stolen.line(2);
        assert!(line.contains("100 ms"), "{line}");
        assert!(line.contains("10.0 s"), "{line}");
        assert!(line.contains("(0.50%,"), "{line}");
    }
}
