//! Judging a history: split it by key where the steps allow, search each part for a
//! linearization, and shrink a failing part to a minimal counterexample.

use std::fmt;

use safemap::Consistency;

use crate::history::{Event, History, Key, MAX_KEYS, Op, Ret};
use crate::spec::{self, Scope, Step};
use crate::wgl::linearizable;

/// A history that no linearization explains, shrunk to a minimal set of its operations.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The key whose sub-history failed, or `None` when the whole-map history failed.
    pub key: Option<Key>,
    /// The operations of the counterexample, sorted by invocation.
    pub events: Vec<Event>,
}

/// What checking a history found, short of a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// Every part has a linearization.
    Linearizable,
    /// No part failed, but the search of at least one gave up ([`crate::wgl::STATES`]): the
    /// history is neither passed nor failed.
    Undecided,
}

/// Checks `history`, run on a map with `keys` keys, against the `declared` contract.
///
/// # Panics
/// If `keys` exceeds [`MAX_KEYS`].
pub fn check(history: &History, declared: &Consistency, keys: Key) -> Result<Judged, Violation> {
    assert!(keys as usize <= MAX_KEYS, "at most {MAX_KEYS} keys");
    let judge = Judge {
        events: &history.events,
        declared,
        keys,
    };
    let all: Vec<usize> = (0..history.events.len()).collect();
    let (key, failing) = match judge.failure(&all) {
        Ok(judged) => return Ok(judged),
        Err(failing) => failing,
    };
    let minimal = judge.shrink(key, failing);
    let mut events: Vec<Event> = minimal.iter().map(|&i| history.events[i].clone()).collect();
    events.sort_by_key(|e| e.invoke);
    Err(Violation { key, events })
}

struct Judge<'a> {
    events: &'a [Event],
    declared: &'a Consistency,
    keys: Key,
}

impl Judge<'_> {
    /// The first part of the events at `subset` that has no linearization (`Err`): its key, or
    /// `None` for the whole map, and its event indices; else whether every part was decided.
    /// Each key's projection is tried first (see [`spec::steps`]); the whole history is searched
    /// only if no projection fails and some operation is atomic over the whole map.
    fn failure(&self, subset: &[usize]) -> Result<Judged, (Option<Key>, Vec<usize>)> {
        let mut judged = Judged::Linearizable;
        for key in 0..self.keys {
            let part = self.steps(subset, Some(key));
            match linearizable(self.events, &part, [None; MAX_KEYS]) {
                Some(true) => {}
                Some(false) => {
                    let mut events: Vec<usize> = part.iter().map(|s| s.event).collect();
                    events.dedup();
                    return Err((Some(key), events));
                }
                None => judged = Judged::Undecided,
            }
        }
        let whole = self.steps(subset, None);
        if whole.iter().any(|s| s.scope.spans_keys()) {
            match linearizable(self.events, &whole, [None; MAX_KEYS]) {
                Some(true) => {}
                Some(false) => return Err((None, subset.to_vec())),
                None => judged = Judged::Undecided,
            }
        }
        Ok(judged)
    }

    /// The steps of `subset` on `key` (whole-map operations projected onto it), or all of them,
    /// as declared, for `None`.
    fn steps(&self, subset: &[usize], key: Option<Key>) -> Vec<Step> {
        subset
            .iter()
            .flat_map(|&i| spec::steps(i, &self.events[i], self.declared, self.keys, key.is_some()))
            .filter(|s| key.is_none_or(|k| s.scope == Scope::Key(k)))
            .collect()
    }

    /// Whether the part is known to fail (an undecided search is not a failure, so shrinking
    /// keeps only cuts that are known to fail).
    fn fails(&self, key: Option<Key>, subset: &[usize]) -> bool {
        linearizable(self.events, &self.steps(subset, key), [None; MAX_KEYS]) == Some(false)
    }

    /// Shrinks a part that fails on `key` in two sound moves, so the counterexample still proves
    /// the full history wrong: (1) cut it to its shortest failing prefix that ends at a quiescent
    /// point, where no operation is in flight (every linearization orders the prefix first);
    /// (2) drop operations that could not have changed the map (reads, and removals that found
    /// nothing), one at a time, while the rest still fails. Dropping a write is never sound: the
    /// write may be what explained a later read.
    fn shrink(&self, key: Option<Key>, mut failing: Vec<usize>) -> Vec<usize> {
        let mut cuts: Vec<u64> = failing.iter().map(|&i| self.events[i].response).collect();
        cuts.sort_unstable();
        for cut in cuts {
            let quiescent = failing.iter().all(|&i| {
                let e = &self.events[i];
                e.response <= cut || e.invoke > cut
            });
            let prefix: Vec<usize> = failing
                .iter()
                .copied()
                .filter(|&i| self.events[i].response <= cut)
                .collect();
            if quiescent && self.fails(key, &prefix) {
                failing = prefix;
                break;
            }
        }
        let mut i = 0;
        while i < failing.len() {
            let rest: Vec<usize> = failing
                .iter()
                .copied()
                .filter(|&j| j != failing[i])
                .collect();
            if effect_free(&self.events[failing[i]]) && self.fails(key, &rest) {
                failing = rest;
            } else {
                i += 1;
            }
        }
        failing
    }
}

/// Whether the sequential specification says `event` left the map as it was. Removing such an
/// operation from a linearizable history leaves it linearizable, so removing it from a failing
/// one keeps the failure a real one.
fn effect_free(event: &Event) -> bool {
    spec::reads_only(&event.op)
        || matches!(
            (&event.op, &event.ret),
            (Op::Remove(_) | Op::RemoveIf(..), Ret::Value(None))
                | (Op::GetOrInsert(..), Ret::Inserted { ran: false, .. })
                | (
                    Op::TryGetOrInsert(..),
                    Ret::Inserted { ran: false, .. } | Ret::Failed
                )
                | (Op::Update(..), Ret::Value(None))
        )
}

impl fmt::Display for Violation {
    /// A per-thread timeline: one line per operation, its bar spanning from invocation to
    /// response on a shared, rank-compressed time axis.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = self
            .key
            .map_or("the whole map".to_string(), |k| format!("key k{k}"));
        writeln!(
            f,
            "not linearizable on {part}: no order of these {} operations respecting real time \
             reproduces their results",
            self.events.len()
        )?;
        let mut stamps: Vec<u64> = self
            .events
            .iter()
            .flat_map(|e| [e.invoke, e.response])
            .collect();
        stamps.sort_unstable();
        let column = |stamp: u64| 3 * stamps.binary_search(&stamp).expect("stamp is listed");
        let width = column(*stamps.last().unwrap_or(&0)) + 1;
        let mut threads: Vec<usize> = self.events.iter().map(|e| e.thread).collect();
        threads.sort_unstable();
        threads.dedup();
        for thread in threads {
            for e in self.events.iter().filter(|e| e.thread == thread) {
                let (from, to) = (column(e.invoke), column(e.response));
                let bar: String = (0..width)
                    .map(|c| match c {
                        c if c == from => '[',
                        c if c == to => ']',
                        c if c > from && c < to => '=',
                        _ => ' ',
                    })
                    .collect();
                writeln!(f, "  thread {thread:<2} {bar}  {} -> {}", e.op, e.ret)?;
            }
        }
        Ok(())
    }
}
