//! The cores the strategies are made of, behind one interface ([`core::Core`]), and their parts.
//!
//! - [`core`]: the trait a core implements, with the [`core::Wait`] mode every lock-taking
//!   operation accepts; [`entry`]: the single-key writes, written once over the entry a core
//!   locates for a pre-hashed [`entry::Probe`] or owned key; [`parts`]: how a core is walked part
//!   by part (iteration, `Debug`), written once for the cores made of shards.
//! - [`routing`]: which shard a hash goes to, and the hash bit layout shards, trie branches and
//!   hashbrown tables share; [`lazy_shards`] holds a sharded core's shards, each made by the first
//!   write that needs it.
//! - Tables: [`table`] is one hashbrown table and the operations on it, [`probe_hint`] lets an
//!   operation start loading a table's cache lines before it takes the table's lock, and
//!   [`frozen`] is a frozen copy of a map's tables (its snapshot).
//! - Lock-based, the core of `LockedMap` and `ShardedMap`: [`locked_table`] is one lock over one
//!   table, [`tables`] a routed set of them.
//! - Versioned, the core of `SnapshotMap`: [`trie`] is a persistent hash trie with flat leaves,
//!   [`published`] publishes one immutable version at a time to readers that pay one atomic load,
//!   and [`versioned`] writes and publishes versions of the trie.
//! - Left-right, the core of `ReadMostlyMap`: [`left_right`] keeps two copies of each shard's
//!   table and per-thread reader slots, so reads take no lock; [`thread_index`] gives each live
//!   thread its slot.
//! - Lock-free, the core of `ScalableMap` and `ScalablePodMap`: [`buckets`] holds chains of
//!   cache-line buckets that readers copy or follow with no lock, [`reclaim`] frees what writers
//!   unlink once no reader can hold it, and [`barrier`] lets the writers' gate announce a write
//!   without a locked instruction.
//! - [`release`] gives a large table's memory back off the caller's thread, a step at a time, so
//!   that freeing it stalls no operation.
//!
//! - [`prefetch`] starts loading a cache line, for the tables' probe hints and the iterations that
//!   load a chain's entries ahead.
//!
//! Nothing here imports the strategy files or the crate root: they build on this.

pub(crate) mod barrier;
pub(crate) mod buckets;
pub(crate) mod core;
pub(crate) mod entry;
pub(crate) mod frozen;
pub(crate) mod gate;
pub(crate) mod lazy_shards;
pub(crate) mod left_right;
pub(crate) mod live_trie;
pub(crate) mod locked_table;
pub(crate) mod parts;
pub(crate) mod probe_hint;
pub(crate) mod reclaim;
pub(crate) mod release;
pub(crate) mod routing;
pub(crate) mod table;
pub(crate) mod tables;
pub(crate) mod thread_index;
pub(crate) mod versioned;

/// Hints the processor to bring the cache line holding `address` closer.
/// Stores `fresh` in `slot` if the slot is still null and returns it; if another thread stored
/// first, hands `fresh` to `discard` and returns the other's.
pub(crate) fn install_once<T>(
    slot: &crate::sync::AtomicPtr<T>,
    fresh: *mut T,
    discard: impl FnOnce(*mut T),
) -> *mut T {
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    // AcqRel: publishes ours as built (Release), or sees the other's as built (Acquire).
    match slot.compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire) {
        Ok(_) => fresh,
        Err(other) => {
            discard(fresh);
            other
        }
    }
}

#[inline(always)]
pub(crate) fn prefetch(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` has no precondition on its address: a prefetch does not read or write
    // memory as the program sees it and never faults, so an unmapped or freed address is allowed.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(address));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
