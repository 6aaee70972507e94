//! [`ProbeObserver`]: an [`Observer`] that fires SystemTap SDT probes, so bpftrace, perf or
//! SystemTap can attach to a running binary's map accesses without recompiling. Behind the
//! `probes` feature. An unattached probe is a single `nop`.
//!
//! Probes, provider `safemap`:
//! - `access(map_id, operation, key_hash, outcome)`: `operation` and `outcome` are the indices of
//!   [`Operation::ALL`] and [`Outcome::ALL`]; `key_hash` is the [`audit_hash`](crate::audit_hash),
//!   or 0 for whole-map operations;
//! - `lock_wait(map_id, operation, nanoseconds)`: a call waited for a contended lock;
//! - `maintenance(map_id, operation, kind, count, nanoseconds)`: a call resized tables or
//!   published a version (`kind` indexes [`Maintenance::ALL`]);
//! - `balance(map_id, shards, entries, largest)`: a shard census ([`ShardBalance`]).
//!
//! For example: `bpftrace -e 'usdt:./server:safemap:access { @[arg1, arg3] = count(); }'`.

use std::time::Duration;

use crate::map::Maintenance;
use crate::observe::{Access, Observer, Operation, ShardBalance};

/// Fires the `safemap` SDT probes listed in the module docs, tagged with a map id of the caller's
/// choosing.
#[derive(Clone, Copy, Debug)]
pub struct ProbeObserver {
    map_id: u64,
}

impl ProbeObserver {
    /// Probes tagged with `map_id`, so a tracer can tell maps apart.
    pub fn new(map_id: u64) -> Self {
        ProbeObserver { map_id }
    }
}

impl Observer for ProbeObserver {
    fn on_access(&self, access: Access) {
        let operation = access.operation as u64;
        let key_hash = access.key_hash.unwrap_or(0);
        let outcome = access.outcome as u64;
        probe::probe!(safemap, access, self.map_id, operation, key_hash, outcome);
    }

    fn on_lock_wait(&self, operation: Operation, waited: Duration) {
        let operation = operation as u64;
        let nanoseconds = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        probe::probe!(safemap, lock_wait, self.map_id, operation, nanoseconds);
    }

    fn on_maintenance(&self, operation: Operation, kind: Maintenance, count: u32, took: Duration) {
        let (operation, kind, count) = (operation as u64, kind as u64, u64::from(count));
        let nanoseconds = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        probe::probe!(
            safemap,
            maintenance,
            self.map_id,
            operation,
            kind,
            count,
            nanoseconds
        );
    }

    fn on_balance(&self, balance: ShardBalance) {
        let (shards, entries, largest) = (
            balance.shards as u64,
            balance.entries as u64,
            balance.largest as u64,
        );
        probe::probe!(safemap, balance, self.map_id, shards, entries, largest);
    }
}
