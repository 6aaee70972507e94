//! Turns a closure's call back into the map that runs it from a deadlock into a clear panic.
//!
//! A map runs some user closures (`compute`, `get_or_insert_with`, `retain`, ...) while it holds a
//! lock. If such a closure calls the same map again, that call would wait for a lock its own
//! thread holds, forever. So while a closure runs, the thread records which map it is inside, and
//! every operation on a map first checks that its thread is not inside that same map. The check is
//! deterministic: it fires whether or not the lock happens to be free, so the bug shows up in the
//! first test that exercises it, not under production load.
//!
//! The record is a small per-thread stack (closures may nest across different maps, which is
//! fine), fronted by a per-thread depth counter. On the fast path, when no closure runs on this
//! thread, the check is one thread-local load of that counter: it has no destructor, so it needs
//! no lazy registration and compiles to a single load.

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
    /// How many closures this thread is running inside maps. Invariant: `INSIDE`'s length.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The maps this thread is inside, innermost last, with the operation whose closure runs.
    static INSIDE: RefCell<Vec<(MapId, &'static str)>> = const { RefCell::new(Vec::new()) };
}

/// Panics if this thread is running a closure for `map`.
#[inline]
pub(crate) fn check(map: MapId) {
    if DEPTH.with(Cell::get) != 0 {
        check_stack(map);
    }
}

#[cold]
fn check_stack(map: MapId) {
    let running = INSIDE
        .try_with(|inside| {
            inside
                .borrow()
                .iter()
                .rev()
                .find(|(id, _)| *id == map)
                .map(|(_, op)| *op)
        })
        // During thread teardown the record is gone, and so is every closure that could be in it.
        .unwrap_or(None);
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
pub(crate) fn run_inside<R>(map: MapId, op: &'static str, user: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = INSIDE.try_with(|inside| inside.borrow_mut().pop());
            DEPTH.with(|depth| depth.set(depth.get() - 1));
        }
    }
    INSIDE.with(|inside| inside.borrow_mut().push((map, op)));
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let _leave = Leave;
    user()
}
