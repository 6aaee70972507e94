//! Turns a closure's call back into the map that runs it from a deadlock into a clear panic.
//!
//! A map runs some user closures (`compute`, `update`, `retain`, ...) while it holds a
//! lock. If such a closure calls the same map again, that call would wait for a lock its own
//! thread holds, forever. So while a closure runs, the thread records which map it is inside, and
//! every operation on a map first checks that its thread is not inside that same map. The check is
//! deterministic: it fires whether or not the lock happens to be free, so the bug shows up in the
//! first test that exercises it, not under production load.
//!
//! The record is the innermost map in a thread-local `Cell`, plus a stack of enclosing ones for
//! closures that nest across different maps (which is fine), fronted by a per-thread depth
//! counter. On the fast path, when no closure runs on this thread, the check is one thread-local
//! load of that counter; entering and leaving a closure that does not nest is a few stores. None
//! of these thread-locals but the nesting stack has a destructor, so they need no lazy
//! registration.

use std::cell::{Cell, RefCell};

use crate::sync::thread_local;

/// Identifies one map instance for the duration of a call: its address, which cannot change or be
/// reused while the map is borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MapId(usize);

impl MapId {
    pub(crate) fn of<T>(map: &T) -> Self {
        MapId(std::ptr::from_ref(map) as usize)
    }
}

thread_local! {
    /// How many closures this thread is running inside maps.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The innermost map this thread is inside and the operation whose closure runs. Valid while
    /// `DEPTH >= 1`. A `Cell` without a destructor, so entering and leaving cost two stores.
    static INNERMOST: Cell<(MapId, &'static str)> = const { Cell::new((MapId(0), "")) };
    /// The enclosing ones, outermost first, when closures nest across maps. Invariant: its length
    /// is `DEPTH - 1` (or 0 when `DEPTH` is 0).
    static OUTER: RefCell<Vec<(MapId, &'static str)>> = const { RefCell::new(Vec::new()) };
}

/// Panics if this thread is running a closure for `map`.
#[inline]
pub(crate) fn check(map: MapId) {
    if DEPTH.with(Cell::get) != 0 {
        check_inside(map);
    }
}

#[cold]
fn check_inside(map: MapId) {
    let (innermost, op) = INNERMOST.with(Cell::get);
    let running = if innermost == map {
        Some(op)
    } else {
        OUTER
            .try_with(|outer| {
                let outer = outer.borrow();
                outer
                    .iter()
                    .rev()
                    .find(|(id, _)| *id == map)
                    .map(|(_, op)| *op)
            })
            // During thread teardown the record is gone, and so is every closure that could be
            // in it.
            .unwrap_or(None)
    };
    if let Some(op) = running {
        panic!(
            "safemap: re-entrant call: the closure passed to `{op}` called back into the same map, \
             which holds a lock for it and would deadlock; return from the closure first, then \
             call the map"
        );
    }
}

/// Runs `user` (a closure of operation `op`) while recording that this thread is inside `map`.
/// The record is removed even if `user` panics.
#[inline]
pub(crate) fn run_inside<R>(map: MapId, op: &'static str, user: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let depth = DEPTH.with(Cell::get) - 1;
            DEPTH.with(|cell| cell.set(depth));
            if depth > 0 {
                let enclosing = OUTER.try_with(|outer| outer.borrow_mut().pop());
                if let Ok(Some(enclosing)) = enclosing {
                    INNERMOST.with(|cell| cell.set(enclosing));
                }
            }
        }
    }
    let depth = DEPTH.with(Cell::get);
    if depth > 0 {
        let enclosing = INNERMOST.with(Cell::get);
        OUTER.with(|outer| outer.borrow_mut().push(enclosing));
    }
    INNERMOST.with(|cell| cell.set((map, op)));
    DEPTH.with(|cell| cell.set(depth + 1));
    let _leave = Leave;
    user()
}
