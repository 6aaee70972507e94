//! Growing and shrinking a bucketed table a few chains at a time.
//!
//! # Protocol
//! A resize links a new table as the root's `next`. From then on every write that passes, after
//! its own change, moves the next [`CHUNK`] chains: it claims them from `claimed`, and for each one
//! takes the chain's lock, places the chain's entries (pointers, or copies of inline entries) in
//! the new table's chains, marks the chain `MOVED` and lets go. The mover that brings `moved` to
//! the chain count makes the new table the root and retires the old one.
//!
//! - A reader that finds a chain `MOVED` looks in the next table, where the chain's entries were
//!   placed before the mark; one that read the chain before the mark read it whole, since a
//!   mover only adds to the new table and writers of the chain wait for its lock.
//! - A writer that takes a chain's lock and finds it `MOVED` lets go and writes in the next table;
//!   until the mark, it writes in the old chain, which the mover then carries over.
//! - Locks are taken old chain first, then new chain, by movers only; writers hold one lock at a
//!   time, so no cycle of waits can form. A new table's chain may have several old chains as
//!   sources when the table shrinks, so movers lock it too.
//! - Only a root table can start a resize, so at most two tables are live.
//!
//! An entry may be reachable from a moved (frozen) chain and from its new chain at once. When a
//! writer retires it from the new chain, a reader may still be reading the frozen chain, but only
//! one that entered its guard before the chain was marked, hence before the retire: the guard
//! keeps the entry. A reader entering later sees the mark and never reads the frozen chain.
//! (Inline lines move copies, so a frozen chain keeps its own, freed with its table.)

use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};

use super::Buckets;
use super::line::{self, Chain, Line};
use super::table::Table;
use crate::raw::reclaim::Guard;
use crate::raw::release::Order;
use crate::sync::Spin;

/// Under `--cfg safemap_stress` and shuttle, tables grow past one entry per chain, every new key
/// considers growing, and writes move one chain at a time, so that a history of a few keys goes
/// through several resizes, each spread over several writes.
pub(super) const STRESS: bool = cfg!(any(safemap_stress, shuttle));

/// Chains a write moves when it finds a resize under way: few enough that moving them stays in
/// the microseconds, so no write stalls the way a table-wide rehash does.
const CHUNK: usize = if STRESS { 1 } else { 4 };

/// The smallest table: two chains.
pub(crate) const MIN_BITS: u32 = 1;

/// Tables of this many bytes or more that a write's resize needs are ordered from the release
/// thread: growing a map to 4M entries, making them here took 70 us at 256 KiB and up to 7.7 ms
/// at 16 MiB (`calloc` clearing memory its allocator recycled), and under 50 us below 256 KiB.
const ORDER_FROM: usize = 128 << 10;

impl<K, V, L: Line<K, V>> Buckets<K, V, L> {
    /// Entries per chain past which a table grows: one line's worth.
    const GROW_PAST: usize = if STRESS { 1 } else { L::SLOTS };

    /// How many chains `entries` fill to one entry per slot, rounded up to a power of two.
    pub(super) fn bits_for(entries: usize) -> u32 {
        let chains = entries.div_ceil(L::SLOTS).max(1);
        chains.next_power_of_two().trailing_zeros().max(MIN_BITS)
    }

    /// Starts growing `table`, which just had to link an overflow bucket, if it is the root, no
    /// resize is under way, and its entries outnumber its slots. Never waits: if another writer is
    /// starting one, that is enough.
    pub(super) fn consider_growing(&self, guard: &Guard<'_>, table: &Table<K, V, L>) {
        let full = table.chains() * Self::GROW_PAST;
        let count = self.gate.approximate_count();
        if count <= full || !std::ptr::eq(self.root(guard), table) {
            return;
        }
        if let Some(mut order) = self.resizing.try_lock()
            && table.next().is_none()
            && let Some(next) = Self::next_table(&mut order, table.bits() + 1, count > 2 * full)
        {
            Self::link(table, next);
        }
    }

    /// A table of `2^bits` chains for a resize that a write starts: made here if small; if it
    /// takes [`ORDER_FROM`] bytes or more, ordered from the release thread (`order` keeps the
    /// order), and `None` until the order is filled. The writes go on in the full table meanwhile,
    /// and a later one links the new table; but once the table is `overfull` (twice the entries
    /// it grows at) the table is made here, order or not: a release thread kept off the cores
    /// (a busy host) must not leave chains to lengthen without bound, and every read with them.
    fn next_table(
        order: &mut Option<(u32, Order)>,
        bits: u32,
        overfull: bool,
    ) -> Option<Box<Table<K, V, L>>> {
        if size_of::<L>() << bits < ORDER_FROM {
            return Some(Table::new(bits));
        }
        if order.as_ref().is_none_or(|(ordered, _)| *ordered != bits) {
            let Some(placed) = Table::<K, V, L>::order(bits) else {
                return Some(Table::new(bits));
            };
            *order = Some((bits, placed));
        }
        let table = match Table::ordered(bits, &order.as_ref()?.1) {
            Some(table) => table,
            // The order's memory, if it is made later, is freed with the order.
            None if overfull => Table::new(bits),
            None => return None,
        };
        *order = None;
        Some(table)
    }

    /// Links a next table of `2^bits` chains, made here, to `table` unless it has one: for
    /// `reserve` and `shrink_to_fit`, whose callers asked for the work.
    pub(super) fn link_next_once(&self, table: &Table<K, V, L>, bits: u32) {
        let _starting = self.resizing.lock();
        if table.next().is_none() {
            Self::link(table, Table::new(bits));
        }
    }

    /// With `resizing` held and no next table linked yet.
    fn link(table: &Table<K, V, L>, next: Box<Table<K, V, L>>) {
        // Release: movers and readers that follow the link see the new table as built.
        table.next.store(Box::into_raw(next), Release);
    }

    /// Moves the next few chains of a resize under way, if there is one; once every chain has
    /// been handed out, one whose move a panic cut short.
    pub(super) fn help_resize<S: BuildHasher>(&self, guard: &Guard<'_>, hasher: &S)
    where
        K: Hash,
    {
        let Some(root) = self.root_table(guard) else {
            return;
        };
        let Some(next) = root.next() else {
            return;
        };
        let start = root.claimed.fetch_add(CHUNK, Relaxed);
        let chains = if start < root.chains() {
            start..(start + CHUNK).min(root.chains())
        } else {
            match root.unmoved.lock().pop() {
                Some(index) => index..index + 1,
                None => return,
            }
        };
        let mut moved = chains.start;
        let moving = panic::catch_unwind(AssertUnwindSafe(|| {
            for index in chains.clone() {
                Self::move_chain(root, index, next, hasher);
                moved = index + 1;
            }
        }));
        if moved > chains.start {
            self.count_moved(root, next, moved - chains.start);
        }
        if let Err(panic) = moving {
            // A key's `Hash` panicked before its chain changed: the chains not moved go back to
            // be handed out again, and the panic goes on to the caller, whose own change is done.
            root.unmoved.lock().extend(moved..chains.end);
            panic::resume_unwind(panic);
        }
    }

    /// Moves chain `index` of `table` into `next`, placing each entry by its hash. Where a line
    /// does not keep hashes, every one is computed before anything is placed, so a key's `Hash`
    /// that panics leaves the chain as it was, unmoved. (A `Hash` that panics on the second call
    /// for a key but not on the first breaks `Hash`'s contract; such lines hold copies, so the
    /// worst it can do is leave a key in both tables, never free anything twice.)
    fn move_chain<S: BuildHasher>(
        table: &Table<K, V, L>,
        index: usize,
        next: &Table<K, V, L>,
        hasher: &S,
    ) where
        K: Hash,
    {
        let head = table.head(index);
        let _lock = line::lock(head);
        // SAFETY: the lock is held until the end of this function, and `head` heads its chain.
        let chain = unsafe { Chain::locked(head) };
        if !L::KEEPS_HASH {
            for (_, entry) in L::occupied(chain) {
                let _may_panic = L::hash_of(&entry, hasher);
            }
        }
        for (_, entry) in L::occupied(chain) {
            let to = next.head_for(L::hash_of(&entry, hasher));
            let _to_lock = line::lock_fresh(to);
            // SAFETY: as above, for the new chain.
            let to_chain = unsafe { Chain::locked(to) };
            L::carry(to_chain, &entry, || next.spare());
        }
        L::mark_moved(chain);
    }

    /// Records `chains` more moved chains of `root`; the mover of the last one makes `next` the
    /// root and retires `root`.
    fn count_moved(&self, root: &Table<K, V, L>, next: &Table<K, V, L>, chains: usize) {
        // AcqRel: the last mover sees every other mover's chains placed in `next`, and publishes
        // them all with the root.
        let moved = root.moved.fetch_add(chains, AcqRel) + chains;
        if moved < root.chains() {
            return;
        }
        let old = std::ptr::from_ref(root).cast_mut();
        // Release: a reader that loads the new root sees every chain placed in it.
        self.root
            .store(std::ptr::from_ref(next).cast_mut(), Release);
        // SAFETY: `old` came from `Box::into_raw`, is retired once (by the one mover that counted
        // the last chain), and is unreachable from now on: the root no longer points to it and
        // nothing else does. Dropping it frees its chains, not the entries, which live in `next`.
        unsafe { self.collector().retire(old) };
        self.collector().flush();
    }

    /// Moves chains until no resize is under way, waiting for other movers to finish theirs.
    pub(super) fn finish_resize<S: BuildHasher>(&self, guard: &Guard<'_>, hasher: &S)
    where
        K: Hash,
    {
        let spin = Spin::new();
        while let Some(root) = self.root_table(guard)
            && root.next().is_some()
        {
            if root.claimed.load(Relaxed) >= root.chains() {
                spin.wait();
            }
            self.help_resize(guard, hasher);
        }
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use std::hash::BuildHasher;

    use crate::map::DefaultHashBuilder;
    use crate::raw::buckets::table::Table;
    use crate::raw::buckets::{Buckets, Inline};
    use crate::raw::core::{Core, Lookup, Wait};
    use crate::raw::release::Order;

    type Pod = Buckets<u64, u64, Inline<u64, u64>>;

    /// The root's size and whether a resize of it is under way.
    fn root_state(core: &Pod) -> (usize, bool) {
        let guard = core.collector().enter();
        let root = core.root_table(&guard).expect("a written map has a table");
        (root.chains(), root.next().is_some())
    }

    /// A write makes the next table itself once the table holds twice the entries it grows at,
    /// if the release thread has not filled the order by then: chains stay a line or two long
    /// however late that thread runs.
    #[test]
    fn a_late_order_does_not_let_chains_lengthen() {
        let (core, hasher) = (Pod::default(), DefaultHashBuilder::default());
        let insert = |key: u64| {
            let _ = core.insert(Wait::Forever, hasher.hash_one(key), key, key, &hasher);
        };
        let mut key = 0u64;
        loop {
            insert(key);
            key += 1;
            if root_state(&core) == (4096, false) {
                break;
            }
            assert!(key < 1 << 16, "the map stopped at {:?}", root_state(&core));
        }
        let bits = 13;
        assert!(size_of::<Inline<u64, u64>>() << bits >= super::ORDER_FROM);
        *core.resizing.lock() = Some((
            bits,
            Order::unfilled(Table::<u64, u64, Inline<u64, u64>>::layout(bits)),
        ));
        let overfull = 2 * 4096 * Pod::GROW_PAST as u64;
        while root_state(&core) == (4096, false) {
            insert(key);
            key += 1;
            assert!(
                key <= overfull + 64,
                "{key} entries in 4096 chains, and no larger table"
            );
        }
        assert!(
            key > 4096 * Pod::GROW_PAST as u64,
            "grew before the table was full"
        );
    }

    /// Writes move a resize along; `reserve(0)` finishes one that the writes left under way, so a
    /// map whose writes stopped does not keep two tables (the docs of `ScalableMap` say so). The
    /// tables past 128 KiB on the way (`ORDER_FROM`) are ordered from the release thread.
    #[test]
    fn reserve_finishes_a_resize_that_writes_left_under_way() {
        let (core, hasher) = (Pod::default(), DefaultHashBuilder::default());
        let mut key = 0u64;
        loop {
            let hash = hasher.hash_one(key);
            let _ = core.insert(Wait::Forever, hash, key, key, &hasher);
            key += 1;
            assert!(
                key < 1 << 16,
                "the map stopped growing at {:?}",
                root_state(&core)
            );
            if let (4096.., true) = root_state(&core) {
                break;
            }
        }
        let (before, _) = root_state(&core);
        core.reserve(0, &hasher);
        // At least the table the resize was making (more if the entries want more: under
        // `--cfg safemap_stress` tables grow past one entry per chain, before `reserve` sizes
        // them).
        let (after, resizing) = root_state(&core);
        assert!(
            !resizing && after >= 2 * before,
            "{before} -> {after}, {resizing}"
        );
        for k in 0..key {
            let probe = Lookup {
                hash: hasher.hash_one(k),
                key: &k,
            };
            assert_eq!(core.get(Wait::Forever, probe, |v| *v), Ok(Some(k)));
        }
    }
}
