//! Concurrent histories: the operations threads ran on a map, their results, and when each was
//! invoked and returned.
//!
//! # Orderings
//! Timestamps come from one shared counter, stamped with `AcqRel` read-modify-writes: the stamp
//! after an operation releases its effects, and any stamp that reads a later counter value
//! acquires them. So if operation A's return stamp is below B's invoke stamp, A happens-before B,
//! which is exactly the real-time order linearizability needs. All read-modify-writes of one
//! atomic are totally ordered, so stamps are unique. Histories run by several processes take their
//! stamps from a counter on the server instead (see `remote.rs`), which orders them the same way.

use std::fmt;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys are drawn from a small space so that operations keep meeting.
pub type Key = u8;
/// Every written value is unique within a history, so a read names the write it saw.
pub type Val = u64;

/// Marks the values `get_or_insert_with` makes (bit 31, clear of the thread and the counter
/// below it, and of the parity `RetainEven` and failing inits go by): a stored value with it
/// was stored by an init, one without by a plain write.
pub const INIT_MARK: Val = 1 << 31;

/// Most keys a history may use: the full-state model keeps one slot per key.
pub const MAX_KEYS: usize = 8;

/// One operation, with its arguments. The closures of `remove_if`, `compute` and `retain` are
/// fixed rules, so the model can replay them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `get(k)`.
    Get(Key),
    /// `insert(k, v)`.
    Insert(Key, Val),
    /// `remove(k)`.
    Remove(Key),
    /// `remove_if(k, |_, cur| cur == v)`.
    RemoveIf(Key, Val),
    /// `get_or_insert_with(k, || v)`, recording whether the closure ran.
    GetOrInsert(Key, Val),
    /// `try_get_or_insert_with(k, || v)`, whose closure fails (storing nothing) when `v` is odd.
    TryGetOrInsert(Key, Val),
    /// `compute(k, rule)` with the rule of [`compute_rule`], writing `v` when it sets.
    Compute(Key, Val),
    /// `update(k, |cur| replace(cur, v))`: the value it replaced, if the key was present.
    Update(Key, Val),
    /// `update_or_insert_with(k, || v, |cur| replace(cur, v))`: the value it replaced, which is
    /// `v` itself when the key was absent.
    Upsert(Key, Val),
    /// `len()`.
    Len,
    /// `snapshot()`, read out in full.
    Snapshot,
    /// `for_each`, collecting every entry.
    ForEach,
    /// `iter()`, collected.
    Iter,
    /// `retain(|_, v| v % 2 == 0)`.
    RetainEven,
    /// `clear()`.
    Clear,
}

/// What a compute closure does when it sees `old`, writing `new` when it sets: insert when absent,
/// keep multiples of three, replace other even values, remove odd ones.
pub fn compute_rule(old: Option<Val>, new: Val) -> safemap::Action<Val> {
    use safemap::Action;
    match old {
        None => Action::Set(new),
        Some(v) if v % 3 == 0 => Action::Keep,
        Some(v) if v % 2 == 0 => Action::Set(new),
        Some(_) => Action::Remove,
    }
}

/// The result an operation returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// The value returned by get, insert, remove, remove_if, or displaced by compute.
    Value(Option<Val>),
    /// What get_or_insert_with returned, and whether its closure ran.
    Inserted {
        /// The value returned.
        value: Val,
        /// Whether this call's closure ran.
        ran: bool,
    },
    /// `try_get_or_insert_with`'s closure failed.
    Failed,
    /// A length.
    Len(usize),
    /// Every entry seen, sorted by key.
    Entries(Vec<(Key, Val)>),
    /// No result.
    Unit,
}

/// One completed operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The thread that ran it.
    pub thread: usize,
    /// The operation.
    pub op: Op,
    /// Its result.
    pub ret: Ret,
    /// Stamp taken just before the call.
    pub invoke: u64,
    /// Stamp taken just after the call returned. Invariant: `invoke < response`.
    pub response: u64,
}

impl Event {
    /// Whether the two intervals intersect, i.e. neither returned before the other was invoked.
    pub fn overlaps(&self, other: &Event) -> bool {
        self.invoke < other.response && other.invoke < self.response
    }
}

/// A complete history: every thread's events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Events from every thread, in no particular order.
    pub events: Vec<Event>,
}

impl History {
    /// How many events overlap an event of another thread.
    pub fn overlapping(&self) -> usize {
        self.events
            .iter()
            .filter(|e| {
                self.events
                    .iter()
                    .any(|o| o.thread != e.thread && e.overlaps(o))
            })
            .count()
    }
}

/// Where a history's stamps come from: a counter every thread of the history shares, read and
/// advanced in one step, so that a stamp taken after one call returned is above every stamp taken
/// before it.
pub trait Stamps {
    /// The next stamp.
    fn stamp(&self) -> u64;

    /// Runs `call` and records it on `log` with invoke and response stamps.
    fn record(&self, log: &mut Vec<Event>, thread: usize, op: Op, call: impl FnOnce() -> Ret) {
        let invoke = self.stamp();
        let ret = call();
        let response = self.stamp();
        log.push(Event {
            thread,
            op,
            ret,
            invoke,
            response,
        });
    }
}

/// The shared clock for one history run by the threads of one process.
#[derive(Debug, Default)]
pub struct Clock(AtomicU64);

impl Stamps for Clock {
    fn stamp(&self) -> u64 {
        // AcqRel: see the module's Orderings section.
        self.0.fetch_add(1, Ordering::AcqRel)
    }
}

/// Shows a written value as the thread and sequence number that wrote it.
struct Shown(Val);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 >> 32 {
            0 => write!(f, "{}", self.0),
            writer => write!(f, "t{}.{}", writer - 1, self.0 & 0xffff_ffff),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get(k) => write!(f, "get(k{k})"),
            Op::Insert(k, v) => write!(f, "insert(k{k}, {})", Shown(*v)),
            Op::Remove(k) => write!(f, "remove(k{k})"),
            Op::RemoveIf(k, v) => write!(f, "remove_if(k{k}, == {})", Shown(*v)),
            Op::GetOrInsert(k, v) => write!(f, "get_or_insert_with(k{k}, || {})", Shown(*v)),
            Op::TryGetOrInsert(k, v) => {
                write!(f, "try_get_or_insert_with(k{k}, || {})", Shown(*v))
            }
            Op::Compute(k, v) => write!(f, "compute(k{k}, rule writing {})", Shown(*v)),
            Op::Update(k, v) => write!(f, "update(k{k}, = {})", Shown(*v)),
            Op::Upsert(k, v) => write!(f, "update_or_insert_with(k{k}, = {})", Shown(*v)),
            Op::Len => write!(f, "len()"),
            Op::Snapshot => write!(f, "snapshot()"),
            Op::ForEach => write!(f, "for_each()"),
            Op::Iter => write!(f, "iter()"),
            Op::RetainEven => write!(f, "retain(even values)"),
            Op::Clear => write!(f, "clear()"),
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Value(None) => write!(f, "None"),
            Ret::Value(Some(v)) => write!(f, "Some({})", Shown(*v)),
            Ret::Inserted { value, ran } => {
                let closure = if *ran { "ran" } else { "skipped" };
                write!(f, "{} (closure {closure})", Shown(*value))
            }
            Ret::Failed => write!(f, "Err (closure failed)"),
            Ret::Len(n) => write!(f, "{n}"),
            Ret::Entries(entries) => {
                let shown: Vec<_> = entries
                    .iter()
                    .map(|(k, v)| format!("k{k}:{}", Shown(*v)))
                    .collect();
                write!(f, "{{{}}}", shown.join(", "))
            }
            Ret::Unit => write!(f, "()"),
        }
    }
}
