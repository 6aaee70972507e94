//! The sequential specification: a map over at most [`MAX_KEYS`] keys, and how each recorded
//! operation becomes the atomic steps it is judged as.
//!
//! An operation a strategy declares atomic is one step over the whole map. A weakly consistent
//! whole-map operation (see [`safemap::WholeMap`]) promises only that each key is observed or
//! changed at some instant within the call, so it becomes one step per key, each free to take
//! effect at its own instant inside the call's interval. A weakly consistent `len` promises a
//! count between the smallest and the largest size the map had during the call: it becomes two
//! steps, each free to fall anywhere in the call, one at an instant where the size was at most
//! the count and one where it was at least the count. Single-key operations are one step on
//! their key. When no step spans several keys, the history splits by key
//! (P-compositionality) and each key is checked on its own.

use safemap::{Action, Consistency, WholeMap};

use crate::history::{Event, INIT_MARK, Key, MAX_KEYS, Op, Ret, Val, compute_rule};

/// The model's state: the value of each key.
pub type State = [Option<Val>; MAX_KEYS];

/// What part of the map a step reads or changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One key.
    Key(Key),
    /// Every key at one instant.
    Whole,
    /// The map's size at one instant, at most the recorded count.
    SizeAtMost,
    /// The map's size at one instant, at least the recorded count.
    SizeAtLeast,
}

impl Scope {
    /// Whether the step reads or changes more than one key.
    pub fn spans_keys(self) -> bool {
        !matches!(self, Scope::Key(_))
    }
}

/// Whether `op` only reads the map, whatever it returns.
pub fn reads_only(op: &Op) -> bool {
    matches!(
        op,
        Op::Get(_) | Op::Len | Op::Snapshot | Op::ForEach | Op::Iter
    )
}

/// What a step that spans keys depends on, and so which key steps it commutes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spanning {
    /// The map's size alone (a `len`, atomic or one of a weak one's bounds): a key step that
    /// leaves its key present, or absent, commutes with it.
    Size,
    /// Every entry, changing none (an atomic snapshot, `for_each` or `iter`): a key step that
    /// leaves its key's entry as it was commutes with it.
    Entries,
    /// It changes the map (an atomic `retain` or `clear`): a key step commutes with one such step
    /// if it does the same on either side of it, and with no two.
    Changes,
}

impl Spanning {
    /// What `event`'s step over `scope`, which spans keys, depends on.
    pub fn of(event: &Event, scope: Scope) -> Spanning {
        match (&event.op, scope) {
            (_, Scope::SizeAtMost | Scope::SizeAtLeast) | (Op::Len, _) => Spanning::Size,
            (op, _) if reads_only(op) => Spanning::Entries,
            _ => Spanning::Changes,
        }
    }
}

/// One atomic step of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the event in its history.
    pub event: usize,
    /// What it touches.
    pub scope: Scope,
}

/// The steps `event` (at index `index`) is judged as, given the strategy's declared consistency
/// and the history's key count.
///
/// With `per_key`, whole-map steps are projected onto each key as well. That is sound: an atomic
/// step's effect on one key is its projection at the same instant, so a history whose projection
/// onto some key has no linearization has none itself. It judges less (an atomic `len` is dropped,
/// a snapshot's keys may come from different instants), so it finds failures sooner and smaller,
/// and the full check catches the rest.
pub fn steps(
    index: usize,
    event: &Event,
    declared: &Consistency,
    keys: Key,
    per_key: bool,
) -> Vec<Step> {
    let whole = |guarantee: WholeMap| match (guarantee, per_key) {
        (WholeMap::Atomic, false) => vec![Scope::Whole],
        _ => (0..keys).map(Scope::Key).collect(),
    };
    let scopes = match event.op {
        Op::Get(k)
        | Op::Insert(k, _)
        | Op::Remove(k)
        | Op::RemoveIf(k, _)
        | Op::GetOrInsert(k, _)
        | Op::TryGetOrInsert(k, _)
        | Op::Compute(k, _)
        | Op::Update(k, _)
        | Op::Upsert(k, _) => vec![Scope::Key(k)],
        Op::Snapshot => whole(declared.snapshot),
        Op::ForEach => whole(declared.for_each),
        Op::Iter => whole(declared.iter),
        Op::RetainEven => whole(declared.retain),
        Op::Clear => whole(declared.clear),
        // A count says nothing about any one key, so projections onto a key drop it.
        Op::Len => match (declared.len, per_key) {
            (_, true) => vec![],
            (WholeMap::Atomic, false) => vec![Scope::Whole],
            (WholeMap::WeaklyConsistent, false) => vec![Scope::SizeAtMost, Scope::SizeAtLeast],
            (WholeMap::Estimate, false) => {
                panic!(
                    "the checker cannot judge an estimated `len`; check such a map without `len`"
                )
            }
        },
    };
    scopes
        .into_iter()
        .map(|scope| Step {
            event: index,
            scope,
        })
        .collect()
}

/// A `get_or_insert_with` that takes effect where its key holds `present`: it returns
/// `present` and changes nothing. Its closure may have run only if a plain write stored
/// `present` while the closure ran (the write wins over the init); a closure that ran while
/// another init's value was stored broke the rule that a closure runs at most once per stored
/// value.
fn found_present(state: &State, event: &Event, present: Val) -> Option<State> {
    let ran_for_nothing = present & INIT_MARK == 0;
    match event.ret {
        Ret::Inserted { value, ran } if value == present && (!ran || ran_for_nothing) => {
            Some(*state)
        }
        _ => None,
    }
}

/// Applies `event` over `scope` to `state`: the next state if the event's recorded result is
/// what the specification returns from `state`, `None` if it cannot be.
pub fn apply(state: &State, event: &Event, scope: Scope) -> Option<State> {
    let mut next = *state;
    let expect = |ok: bool| ok.then_some(());
    match (&event.op, scope) {
        (Op::Get(k), _) => expect(event.ret == Ret::Value(next[*k as usize]))?,
        (Op::Insert(k, v), _) => {
            let old = next[*k as usize].replace(*v);
            expect(event.ret == Ret::Value(old))?;
        }
        (Op::Remove(k), _) => {
            let old = next[*k as usize].take();
            expect(event.ret == Ret::Value(old))?;
        }
        (Op::RemoveIf(k, want), _) => {
            let slot = &mut next[*k as usize];
            let removed = if *slot == Some(*want) {
                slot.take()
            } else {
                None
            };
            expect(event.ret == Ret::Value(removed))?;
        }
        (Op::GetOrInsert(k, v), _) => {
            let slot = &mut next[*k as usize];
            let expected = match *slot {
                Some(present) => return found_present(state, event, present),
                None => {
                    *slot = Some(*v);
                    Ret::Inserted {
                        value: *v,
                        ran: true,
                    }
                }
            };
            expect(event.ret == expected)?;
        }
        (Op::TryGetOrInsert(k, v), _) => {
            let slot = &mut next[*k as usize];
            let expected = match *slot {
                Some(present) => return found_present(state, event, present),
                None if *v % 2 == 1 => Ret::Failed,
                None => {
                    *slot = Some(*v);
                    Ret::Inserted {
                        value: *v,
                        ran: true,
                    }
                }
            };
            expect(event.ret == expected)?;
        }
        (Op::Update(k, v), _) => {
            let slot = &mut next[*k as usize];
            let replaced = slot.as_mut().map(|cur| std::mem::replace(cur, *v));
            expect(event.ret == Ret::Value(replaced))?;
        }
        (Op::Upsert(k, v), _) => {
            let replaced = next[*k as usize].replace(*v).unwrap_or(*v);
            expect(event.ret == Ret::Value(Some(replaced)))?;
        }
        (Op::Compute(k, new), _) => {
            let slot = &mut next[*k as usize];
            let displaced = match compute_rule(*slot, *new) {
                Action::Keep => None,
                Action::Set(v) => slot.replace(v),
                Action::Remove => slot.take(),
            };
            expect(event.ret == Ret::Value(displaced))?;
        }
        (Op::Len, scope) => {
            let Ret::Len(count) = event.ret else {
                return None;
            };
            let size = next.iter().flatten().count();
            expect(match scope {
                Scope::SizeAtMost => size <= count,
                Scope::SizeAtLeast => size >= count,
                _ => size == count,
            })?;
        }
        (Op::Snapshot | Op::ForEach | Op::Iter, Scope::Whole) => {
            let entries: Vec<(Key, Val)> = (0..MAX_KEYS as Key)
                .filter_map(|k| next[k as usize].map(|v| (k, v)))
                .collect();
            expect(event.ret == Ret::Entries(entries))?;
        }
        (Op::Snapshot | Op::ForEach | Op::Iter, Scope::Key(k)) => {
            let Ret::Entries(entries) = &event.ret else {
                return None;
            };
            let seen = entries.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
            expect(seen == next[k as usize])?;
        }
        (Op::RetainEven, Scope::Whole) => {
            for slot in &mut next {
                slot.take_if(|v| *v % 2 == 1);
            }
        }
        (Op::RetainEven, Scope::Key(k)) => {
            next[k as usize].take_if(|v| *v % 2 == 1);
        }
        (Op::Clear, Scope::Whole) => next = [None; MAX_KEYS],
        (Op::Clear, Scope::Key(k)) => next[k as usize] = None,
        // Only a count is judged by its bounds.
        (_, Scope::SizeAtMost | Scope::SizeAtLeast) => return None,
    }
    Some(next)
}
