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
//!   its key as it is now, so it can be moved first without changing its result or breaking
//!   real-time order; it conflicts with a step that changes its key or the whole map, with a
//!   read of its key or of every entry if it changes its key, and with a count of the map's
//!   size if it adds or removes its key ([`Spanning`]). That history is then decided, and so are
//!   the ones where counts and atomic reads of the whole map sit among weakly consistent steps
//!   (`tests/histories/read-mostly-len-retain.json`). Taking a step alone only prunes the
//!   search, and a linearization it finds is checked step by step, so a wrong rule could make the
//!   checker reject a correct history, never accept a wrong one; a test holds this search to the
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

    /// Whether key step `i` conflicts, from `state`, with no pending step invoked before it
    /// returned: none that changes the whole map, none that changes its key, none that reads its
    /// key if `i` changes it, and no count of the map's size if `i` adds or removes its key.
    /// Whatever comes before `i` in a linearization from here leaves its key as it is in
    /// `state`, so `i` does there what it does here.
    fn commutes_ahead(&self, done: &Done, state: &State, i: usize) -> bool {
        let step = self.steps[i];
        let Scope::Key(key) = step.scope else {
            return false;
        };
        let returned = self.events[step.event].response;
        // A step that cannot apply here cannot later either, and taking it alone ends the
        // search of this branch, whatever it conflicts with.
        let after = spec::apply(state, &self.events[step.event], step.scope)
            .map_or(state[key as usize], |next| next[key as usize]);
        let before = state[key as usize];
        !(0..self.steps.len()).any(|j| {
            let other = self.steps[j];
            j != i
                && !done.contains(j)
                && self.events[other.event].invoke < returned
                && match other.scope {
                    // A read of the key sees the same if `i`, moved ahead of it, leaves the
                    // key as it was.
                    Scope::Key(_) => {
                        other.scope == step.scope
                            && !(spec::reads_only(&self.events[other.event].op) && after == before)
                    }
                    spanning => match Spanning::of(&self.events[other.event], spanning) {
                        Spanning::Size => after.is_some() != before.is_some(),
                        Spanning::Entries => after != before,
                        Spanning::Changes => true,
                    },
                }
        })
    }
}
