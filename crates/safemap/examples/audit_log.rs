//! An access audit log through the `Observer` hook, emitted as `tracing` events: every operation
//! on the map is logged with its kind, the key's audit hash (never the key) and the outcome.
//!
//! `cargo run -p safemap --example audit_log`

use safemap::{Access, Action, ConcurrentMap, Observed, Observer, ShardedMap};

/// Sends each access to `tracing`, under the `safemap::audit` target.
struct TracingAudit {
    map: &'static str,
}

impl Observer for TracingAudit {
    fn on_access(&self, access: Access) {
        tracing::info!(
            target: "safemap::audit",
            map = self.map,
            operation = ?access.operation,
            key_hash = access.key_hash.map(|h| format!("{h:016x}")),
            outcome = ?access.outcome,
        );
    }
}

fn main() {
    tracing_subscriber::fmt().with_target(true).init();
    let sessions = Observed::new(
        ShardedMap::<String, u32>::new(),
        TracingAudit { map: "sessions" },
    );
    sessions.insert("alice".into(), 1);
    sessions.compute("alice".into(), |n| Action::Set(n.copied().unwrap_or(0) + 1));
    sessions.get_or_insert_with("bob".into(), || 1);
    let _ = sessions.get("mallory");
    sessions.remove("bob");
    println!(
        "{} sessions; the audit log above has one line per operation",
        sessions.len()
    );
}
