//! The Wing–Gong search for a linearization, with Lowe's memoization.
//!
//! # Algorithm
//! A set of steps is linearizable if they can be ordered so that (1) a step that returned before
//! another was invoked comes first, and (2) replaying them in that order on the sequential model
//! reproduces every recorded result. The search builds the order one step at a time. The next step
//! may be any pending step invoked before the earliest response among pending steps (any later
//! step would violate (1) against the step with that response). It is applied to the model; if
//! the recorded result matches, the search goes deeper, else it tries the next candidate.
//!
//! Two paths that have linearized the same set of steps and reached the same model state have the
//! same future, so each (set, state) pair is explored once. That memo turns the search from
//! factorial into, in practice, a few times the number of consistent cuts of the history.
//!
//! Some histories still have too many: a weakly consistent whole-map operation is one step per
//! key, all concurrent with each other, and a thread preempted in the middle of one leaves every
//! subset of them to combine with every cut of the other threads (one history of ScalableMap's,
//! `tests/histories/long-retain.json`, held 11 GB of memo before it was stopped). Two things
//! keep the search bounded:
//! - a key step that conflicts with no pending step invoked before it returned is taken alone,
//!   without trying the others first. Every step a linearization could put ahead of it leaves
//!   its key as it is now, but for at most one change of the whole map, so it can be moved first
//!   without changing its result or breaking real-time order if each of those steps sees and
//!   does the same with it moved (`Search::commutes_ahead`, [`Spanning`]): a read of its key or
//!   of every entry, if it leaves its key as it was; a count of the map's size, if it keeps its
//!   key present or absent; a change of the whole map, if it does the same on either side of it.
//!   That history is then decided, and so are ones where counts, atomic reads and an atomic
//!   `clear` sit among weakly consistent steps (`tests/histories/read-mostly-len-retain.json`,
//!   `clear-among-retains.json`). Taking a step alone only prunes the search, and a
//!   linearization it finds is checked step by step, so a wrong rule could make the checker
//!   reject a correct history, never accept a wrong one; a test holds this search to the
//!   exhaustive one on recorded histories, correct and seeded-buggy;
//! - past [`STATES`] pairs the search gives up and says the history is undecided, which the
//!   checker reports as neither passed nor failed, rather than run out of memory.

use std::collections::HashSet;

use crate::history::Event;
use crate::spec::{self, Scope, Spanning, State, Step};

/// A set of step indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Done(Vec<u64>);

impl Done {
    fn new(len: usize) -> Self {
        Done(vec![0; len.div_ceil(64)])
    }
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn with(&self, i: usize) -> Self {
        let mut next = self.clone();
        next.0[i / 64] |= 1 << (i % 64);
        next
    }
}

/// The (set, state) pairs a search may explore before it gives up: about 200 MB of memo, and a
/// second or two. Every history of nine stress-cfg runs of 10,000 was decided within it.
pub const STATES: usize = 1 << 20;

/// Whether `steps` of `events` have a linearization from `initial`: `None` if the search
/// explored [`STATES`] pairs without an answer.
pub fn linearizable(events: &[Event], steps: &[Step], initial: State) -> Option<bool> {
    linearizable_within(events, steps, initial, STATES)
}

/// As [`linearizable`], giving up after `budget` pairs.
pub fn linearizable_within(
    events: &[Event],
    steps: &[Step],
    initial: State,
    budget: usize,
) -> Option<bool> {
    search(events, steps, initial, budget, true)
}

/// As [`linearizable`], without taking commuting steps alone: every candidate is tried. The
/// reference the tests hold the faster search to.
pub fn linearizable_exhaustive(events: &[Event], steps: &[Step], initial: State) -> Option<bool> {
    search(events, steps, initial, STATES, false)
}

fn search(
    events: &[Event],
    steps: &[Step],
    initial: State,
    budget: usize,
    take_commuting: bool,
) -> Option<bool> {
    let mut search = Search {
        events,
        steps,
        seen: HashSet::new(),
        budget,
        take_commuting,
    };
    let found = search.from(&Done::new(steps.len()), 0, &initial);
    (found || search.seen.len() < budget).then_some(found)
}

struct Search<'a> {
    events: &'a [Event],
    steps: &'a [Step],
    seen: HashSet<(Done, State)>,
    budget: usize,
    /// Whether a candidate that commutes with every step that could come before it is taken
    /// alone (`Search::from`).
    take_commuting: bool,
}

impl Search<'_> {
    /// Whether a linearization extends this one; `false` too once the budget is spent, which
    /// [`linearizable_within`] then tells apart.
    fn from(&mut self, done: &Done, done_count: usize, state: &State) -> bool {
        if done_count == self.steps.len() {
            return true;
        }
        if self.seen.len() >= self.budget || !self.seen.insert((done.clone(), *state)) {
            return false;
        }
        let pending = || (0..self.steps.len()).filter(|&i| !done.contains(i));
        let earliest_response = pending()
            .map(|i| self.events[self.steps[i].event].response)
            .min()
            .expect("some step is pending");
        let candidates: Vec<usize> = pending()
            .filter(|&i| self.events[self.steps[i].event].invoke < earliest_response)
            .collect();
        // A candidate that conflicts with no step that could still come before it is taken
        // alone (module docs): moving it first changes no result, nor breaks real-time order,
        // since it is a candidate. Without this, the key steps of one long weakly consistent
        // operation combine with every cut of the other threads.
        let free = || {
            candidates
                .iter()
                .find(|&&i| self.commutes_ahead(done, state, i))
        };
        if let Some(&free) = self.take_commuting.then(free).flatten() {
            let step = self.steps[free];
            return spec::apply(state, &self.events[step.event], step.scope)
                .is_some_and(|next| self.from(&done.with(free), done_count + 1, &next));
        }
        candidates.into_iter().any(|i| {
            let step = self.steps[i];
            spec::apply(state, &self.events[step.event], step.scope)
                .is_some_and(|next| self.from(&done.with(i), done_count + 1, &next))
        })
    }

    /// Whether key step `i` may go first from `state`: whether each pending step invoked before
    /// it returned (each that a linearization from here may put ahead of it) sees and does the
    /// same with `i` moved ahead of it. Those steps leave `i`'s key as it is in `state`, but for
    /// at most one that changes the whole map (an atomic `retain` or `clear`), so `i` meets its
    /// key as it is now, or as that step leaves it. A step that conflicts:
    /// - one that writes `i`'s key, or reads it while `i` changes it;
    /// - a count of the map's size, if `i` adds or removes its key;
    /// - a read of every entry, if `i` changes its key;
    /// - a second step that changes the whole map, or one with which `i` does not commute on
    ///   its key: `i` must do the same before it as after it, and leave the key as it would.
    fn commutes_ahead(&self, done: &Done, state: &State, i: usize) -> bool {
        let step = self.steps[i];
        let Scope::Key(key) = step.scope else {
            return false;
        };
        let k = key as usize;
        let event = &self.events[step.event];
        let applied = spec::apply(state, event, step.scope);
        // A step that cannot apply here cannot later either, unless a change of the whole map
        // comes first; taking it alone then ends the search of this branch.
        let (before, after) = (state[k], applied.map_or(state[k], |next| next[k]));
        let mut whole_change = None;
        for j in 0..self.steps.len() {
            let other = self.steps[j];
            let other_event = &self.events[other.event];
            if j == i || done.contains(j) || other_event.invoke >= event.response {
                continue;
            }
            let conflicts = match other.scope {
                Scope::Key(_) => {
                    other.scope == step.scope
                        && !(spec::reads_only(&other_event.op) && after == before)
                }
                spanning => match Spanning::of(other_event, spanning) {
                    Spanning::Size => after.is_some() != before.is_some(),
                    Spanning::Entries => after != before,
                    Spanning::Changes => whole_change.replace(other_event).is_some(),
                },
            };
            if conflicts {
                return false;
            }
        }
        let Some(change) = whole_change else {
            return true;
        };
        // With the change ahead of it, `i` meets `changed`; it must apply there with the same
        // result and leave it as it is, and the change must leave `after` as it leaves `before`.
        // (For today's operations and changes, `clear` and `retain`, the second follows from
        // the first; it is checked so that one added later cannot slip through.)
        let on_key = |from: &State| spec::apply(from, change, step.scope).map(|to| to[k]);
        let (Some(next), Some(changed)) = (applied, on_key(state)) else {
            return false;
        };
        let mut meets = *state;
        meets[k] = changed;
        spec::apply(&meets, event, step.scope).is_some_and(|then| then[k] == changed)
            && on_key(&next) == Some(changed)
    }
}
