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

use std::collections::HashSet;

use crate::history::Event;
use crate::spec::{self, State, Step};

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

/// Whether `steps` of `events` have a linearization from `initial`.
pub fn linearizable(events: &[Event], steps: &[Step], initial: State) -> bool {
    let mut search = Search {
        events,
        steps,
        seen: HashSet::new(),
    };
    search.from(&Done::new(steps.len()), 0, &initial)
}

struct Search<'a> {
    events: &'a [Event],
    steps: &'a [Step],
    seen: HashSet<(Done, State)>,
}

impl Search<'_> {
    fn from(&mut self, done: &Done, done_count: usize, state: &State) -> bool {
        if done_count == self.steps.len() {
            return true;
        }
        if !self.seen.insert((done.clone(), *state)) {
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
        candidates.into_iter().any(|i| {
            let step = self.steps[i];
            spec::apply(state, &self.events[step.event], step.scope)
                .is_some_and(|next| self.from(&done.with(i), done_count + 1, &next))
        })
    }
}
