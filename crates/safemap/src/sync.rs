//! The one place that names synchronization primitives.
//!
//! Every strategy takes its locks from here, so that a schedule explorer (shuttle, loom) can be
//! swapped in behind a `--cfg` without touching strategy code. `parking_lot` locks do not poison:
//! a panicking closure releases its lock on unwind and leaves the map usable.

pub(crate) use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
