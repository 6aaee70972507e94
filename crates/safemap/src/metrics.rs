//! [`MetricsObserver`]: an [`Observer`] that records through the `metrics` facade, so any
//! `metrics` exporter (Prometheus, StatsD, ...) serves a map's figures. Behind the `metrics`
//! feature; without it, none of this is compiled.
//!
//! Series, each labelled `map` (the name given to [`MetricsObserver::new`]):
//! - `safemap_operations_total{operation, outcome}`, a counter: calls by method and by what they
//!   found or did (`get` with `hit` or `miss`, `insert` with `inserted` or `replaced`, ...);
//! - `safemap_lock_wait_seconds{operation}`, a histogram: time spent waiting for a contended lock,
//!   recorded only when the call had to wait;
//! - `safemap_maintenance_total{kind}`, a counter: table resizes (`resize`) and `SnapshotMap`
//!   version publishes (`publish`);
//! - `safemap_maintenance_seconds{kind}`, a histogram: the time a call spent on them;
//! - `safemap_entries`, a gauge: entries at the last shard census;
//! - `safemap_shard_imbalance`, a gauge: the largest shard's length over the mean at the last
//!   census ([`ShardBalance::imbalance`]).

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use crate::map::Maintenance;
use crate::observe::{Access, Observer, Operation, Outcome, ShardBalance};

/// Records a map's accesses as `metrics` series under the map's name. Wrap a map with it through
/// [`Observed`](crate::Observed).
///
/// ```
/// use safemap::{ConcurrentMap, MetricsObserver, Observed, ShardedMap};
///
/// let sessions = Observed::new(ShardedMap::<u64, String>::new(), MetricsObserver::new("sessions"));
/// sessions.insert(7, "alice".into());
/// assert_eq!(sessions.get(&7).as_deref(), Some("alice"));
/// ```
pub struct MetricsObserver {
    /// Indexed by `operation * Outcome::ALL.len() + outcome`.
    operations: Vec<Counter>,
    /// Indexed by operation.
    lock_waits: Vec<Histogram>,
    /// Indexed by `Maintenance` kind.
    maintenance: Vec<(Counter, Histogram)>,
    entries: Gauge,
    shard_imbalance: Gauge,
}

impl MetricsObserver {
    /// Registers this map's series, labelled `map = name`, with the installed recorder. Handles
    /// are registered once, here, so recording is one atomic add.
    pub fn new(name: impl Into<String>) -> Self {
        let name: String = name.into();
        let operations = Operation::ALL
            .iter()
            .flat_map(|op| Outcome::ALL.iter().map(move |outcome| (op, outcome)))
            .map(|(op, outcome)| {
                metrics::counter!(
                    "safemap_operations_total",
                    "map" => name.clone(),
                    "operation" => op.name(),
                    "outcome" => outcome.name(),
                )
            })
            .collect();
        let lock_waits = Operation::ALL
            .iter()
            .map(|op| {
                metrics::histogram!(
                    "safemap_lock_wait_seconds",
                    "map" => name.clone(),
                    "operation" => op.name(),
                )
            })
            .collect();
        let maintenance = Maintenance::ALL
            .iter()
            .map(|kind| {
                let labels = [("map", name.clone()), ("kind", kind.name().to_string())];
                (
                    metrics::counter!("safemap_maintenance_total", &labels),
                    metrics::histogram!("safemap_maintenance_seconds", &labels),
                )
            })
            .collect();
        MetricsObserver {
            operations,
            lock_waits,
            maintenance,
            entries: metrics::gauge!("safemap_entries", "map" => name.clone()),
            shard_imbalance: metrics::gauge!("safemap_shard_imbalance", "map" => name),
        }
    }
}

impl Observer for MetricsObserver {
    fn on_access(&self, access: Access) {
        let index = access.operation as usize * Outcome::ALL.len() + access.outcome as usize;
        self.operations[index].increment(1);
    }

    fn on_lock_wait(&self, operation: Operation, waited: Duration) {
        self.lock_waits[operation as usize].record(waited.as_secs_f64());
    }

    fn on_maintenance(&self, _: Operation, kind: Maintenance, count: u32, took: Duration) {
        let (total, seconds) = &self.maintenance[kind as usize];
        total.increment(u64::from(count));
        seconds.record(took.as_secs_f64());
    }

    fn on_balance(&self, balance: ShardBalance) {
        self.entries.set(balance.entries as f64);
        self.shard_imbalance.set(balance.imbalance());
    }
}
