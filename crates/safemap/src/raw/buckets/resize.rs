//! Growing and shrinking a bucketed table a chain at a time.
//!
//! # Protocol
//! A resize links a new table as the root's `next`. From then on every write that passes, after
//! its own change, moves the next [`CHUNK`] chains: it claims them from `claimed`, and for each one
//! takes the chain's lock, places the chain's entries (pointers, or copies of inline entries) in
//! the new table's chains, marks the chain `MOVED` and lets go. The mover that brings `moved` to
//! the chain count makes the new table the root and parks the old one until the writes under way
//! have left, then retires it (`mod.rs`).
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
//! - A table to grow into is made unwritten (`Table::for_growth`), so the write that links it
//!   pays for no clearing, however large: each chain of it is reached only through the one old
//!   chain it splits from, whose mover makes it fresh before placing entries in it and before the
//!   mark. The release thread maps its pages ahead of the moves, and a move that finds its
//!   chains' page not reached maps the next few itself (`raw::release`).
//!
//! An entry may be reachable from a moved (frozen) chain and from its new chain at once. When a
//! writer retires it from the new chain, a reader may still be reading the frozen chain, but only
//! one that entered its guard before the chain was marked, hence before the retire: the guard
//! keeps the entry. A reader entering later sees the mark and never reads the frozen chain.
//! (Inline lines move copies, so a frozen chain keeps its own, freed with its table.)

use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release, SeqCst};

use super::line::{self, Chain, Line};
use super::table::Table;
use super::{Buckets, Keeps};
use crate::sync::Spin;

/// Under `--cfg safemap_stress` (`SAFEMAP_STRESS=1`, `build.rs`) and shuttle, tables grow past
/// one entry per chain and every new key considers growing, so that a history of a few keys goes
/// through several resizes, each spread over several writes.
pub(super) const STRESS: bool = cfg!(any(safemap_stress, shuttle));

/// Chains a write moves when it finds a resize under way: two. A resize then ends as many writes
/// after it starts as half the old table's chains, and both tables are held meanwhile: with one,
/// growing from 131,072 chains began at 917,505 entries and ended at 1,048,576, so that a map
/// filled to anywhere in between held both tables and its lookups met moved chains (two misses).
/// Against one, three runs alternated with the two builds: `safemap-bench memory`'s mean bytes
/// per entry over hashbrown's 1.34 / 1.44 (40.3 / 67.6 bytes at 994,987 entries); RapidGrow at
/// 1M keys (a map grown from empty), `ScalablePodMap` over `ShardedMap`, 0.76-0.93 / 0.71-0.88
/// on two threads and 0.65-0.87 / 0.60-0.65 on one. The price is the writes that move: growing
/// to 4M entries on one thread (`run --workload Growth --threads 1 --reps 3`), p99.9 1.34-1.45
/// us / 1.07-1.34 us. Four chains gave 1.9-2.9 us, over the bar of 2.
const CHUNK: usize = 2;

/// The smallest table: two chains.
pub(crate) const MIN_BITS: u32 = 1;

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
    pub(super) fn consider_growing(&self, keeps: &impl Keeps, table: &Table<K, V, L>) {
        let full = table.chains() * Self::GROW_PAST;
        if self.gate.approximate_count() <= full || !std::ptr::eq(self.root(keeps), table) {
            return;
        }
        if let Some(_starting) = self.resizing.try_lock()
            && table.next().is_none()
        {
            Self::link(table, Table::for_growth(table.bits() + 1));
        }
    }

    /// Links a next table of `2^bits` chains to `table` unless it has one: for `reserve` and
    /// `shrink_to_fit`, whose callers asked for the work. A smaller table is made fresh here: its
    /// chains each gather several of `table`'s, so no one mover could make them fresh.
    pub(super) fn link_next_once(&self, table: &Table<K, V, L>, bits: u32) {
        let _starting = self.resizing.lock();
        if table.next().is_none() {
            let next = if bits > table.bits() {
                Table::for_growth(bits)
            } else {
                Table::new(bits)
            };
            Self::link(table, next);
        }
    }

    /// With `resizing` held and no next table linked yet.
    fn link(table: &Table<K, V, L>, next: Box<Table<K, V, L>>) {
        // Release: movers and readers that follow the link see the new table as built.
        table.next.store(Box::into_raw(next), Release);
    }

    /// Moves the next few chains of a resize under way, if there is one; once every chain has
    /// been handed out, one whose move a panic cut short.
    #[inline(always)]
    pub(super) fn help_resize<S: BuildHasher>(&self, keeps: &impl Keeps, hasher: &S)
    where
        K: Hash,
    {
        // Checked inline: most writes find no resize under way, and the mover's frame is large.
        if let Some(root) = self.root_table(keeps)
            && let Some(next) = root.next()
        {
            self.move_chunk(root, next, hasher);
        }
    }

    /// Moves the next few chains of `root` into `next` (see [`Self::help_resize`]).
    fn move_chunk<S: BuildHasher>(&self, root: &Table<K, V, L>, next: &Table<K, V, L>, hasher: &S)
    where
        K: Hash,
    {
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

    /// Moves chain `index` of `table` into `next`, placing each entry by its hash.
    ///
    /// Growing, the chains placed into are this mover's alone until the mark: no one reaches
    /// them but through this chain. So they are made fresh here and filled without their locks,
    /// and a key's `Hash` that panics midway leaves this chain unmoved and them unreachable, to be
    /// made fresh again by the move's retry (only lines that do not keep hashes run `Hash`, and
    /// they hold copies, which need no drop). Shrinking, a chain gathers several, whose movers
    /// take turns by its lock; there, where a line does not keep hashes, every one is computed
    /// before anything is placed, so a panic leaves the chain as it was. (A `Hash` that panics on
    /// the second call for a key but not on the first breaks `Hash`'s contract; such lines hold
    /// copies, so the worst it can do is leave a key in both tables, never free anything twice.)
    fn move_chain<S: BuildHasher>(
        table: &Table<K, V, L>,
        index: usize,
        next: &Table<K, V, L>,
        hasher: &S,
    ) where
        K: Hash,
    {
        let growing = next.bits() > table.bits();
        let fresh = growing.then(|| next.chains_within(table.span(index)));
        if let Some(fresh) = &fresh {
            // Before the lock, so that the chain's writers do not wait through it.
            next.catch_up_faults(fresh);
        }
        let head = table.head(index);
        let _lock = line::lock(head.line());
        // SAFETY: the lock is held until the end of this function, and `head` heads its chain.
        let chain = unsafe { Chain::locked(head) };
        if let Some(fresh) = fresh {
            // A table to grow into is reached only through the chains that moved into it
            // (`Table::for_growth`); this chain's held lock keeps it unmarked until the mark
            // below, whose Release publishes the fresh chains.
            // SAFETY: so no one else reaches them; they hold nothing to drop (never made, or
            // copies a panicking move left).
            unsafe { next.make_fresh(fresh) };
        } else if !L::KEEPS_HASH {
            for (_, entry) in L::occupied(chain) {
                let _may_panic = L::hash_of(&entry, hasher);
            }
        }
        // `for_each`, not `for`: a flattened iterator's fold runs each line's slots in a loop of
        // their own, where `next` goes through its whole state machine per entry.
        L::occupied(chain).for_each(|(_, entry)| {
            let hash = L::hash_of(&entry, hasher);
            let to = next.head_for(hash);
            let _to_lock = (!growing).then(|| line::lock_fresh(to.line()));
            // SAFETY: the new chain's lock is held, or, growing, no one else reaches it (above).
            let to_chain = unsafe { Chain::locked(to) };
            L::carry(to_chain, &entry, hash, || next.spare());
        });
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
        // SeqCst: releases every chain placed in `next` to the readers that load the new root,
        // and is the heavy side's store of the handshake that parks `root` (`mod.rs`). Only the
        // mover that counted the last chain gets here, so `root` is parked once; nothing but the
        // root pointed to it.
        self.root.store(std::ptr::from_ref(next).cast_mut(), SeqCst);
        self.park(std::ptr::from_ref(root).cast_mut(), false);
    }

    /// Moves chains until no resize is under way, waiting for other movers to finish theirs.
    pub(super) fn finish_resize<S: BuildHasher>(&self, keeps: &impl Keeps, hasher: &S)
    where
        K: Hash,
    {
        let spin = Spin::new();
        while let Some(root) = self.root_table(keeps)
            && root.next().is_some()
        {
            if root.claimed.load(Relaxed) >= root.chains() {
                spin.wait();
            }
            self.help_resize(keeps, hasher);
        }
    }
}

#[cfg(all(test, not(shuttle)))]
mod tests {
    use std::hash::BuildHasher;

    use super::CHUNK;
    use crate::map::DefaultHashBuilder;
    use crate::raw::buckets::line::Line;
    use crate::raw::buckets::{Bucket, Buckets, Inline};
    use crate::raw::core::{Core, Wait};
    use crate::raw::entry::Lookup;
    use crate::raw::gate::{Gate, Pass, ReadPass};
    use crate::raw::parts::Parts;

    type Pod = Buckets<u64, u64, Inline<u64, u64>>;
    type Pointers = Buckets<u64, u64, Bucket<u64, u64>>;

    /// The root's size and whether a resize of it is under way.
    fn root_state<L: Line<u64, u64>>(core: &Buckets<u64, u64, L>) -> (usize, bool) {
        let guard = core.collector().enter();
        let root = core.root_table(&guard).expect("a written map has a table");
        (root.chains(), root.next().is_some())
    }

    /// Inserts the keys from `*next` on, counting `*next` up, until `stop` holds for the root's
    /// state.
    fn insert_until<L: Line<u64, u64>>(
        core: &Buckets<u64, u64, L>,
        hasher: &DefaultHashBuilder,
        next: &mut u64,
        stop: impl Fn((usize, bool)) -> bool,
    ) {
        loop {
            let key = *next;
            let _ = core.insert(Wait::Forever, hasher.hash_one(key), key, key, hasher);
            *next += 1;
            if stop(root_state(core)) {
                return;
            }
            assert!(*next < 1 << 17, "the map stopped at {:?}", root_state(core));
        }
    }

    /// A full table links the next one on the write that finds it full, however large the new
    /// one (1 MiB here): making it writes none of its memory, so there is nothing to wait for.
    #[test]
    fn a_full_table_starts_growing_at_once() {
        let (core, hasher, mut next) = (Pod::default(), DefaultHashBuilder::default(), 0);
        insert_until(&core, &hasher, &mut next, |state| state == (4096, false));
        let filled = next;
        insert_until(&core, &hasher, &mut next, |state| state != (4096, false));
        let full = 4096 * Pod::GROW_PAST as u64;
        assert!(
            (full..full + 64).contains(&next),
            "grown at {next} entries; full at {full} (filled to 4096 chains at {filled})"
        );
    }

    /// Every write moves its share of a resize under way: a table of 4,096 chains, whose next
    /// table was linked by the write that found it full, hands over the root 4,096 / [`CHUNK`]
    /// writes later.
    #[test]
    fn each_write_moves_its_share_of_a_resize() {
        fn check<L: Line<u64, u64>>(core: Buckets<u64, u64, L>) {
            let (hasher, mut next) = (DefaultHashBuilder::default(), 0);
            insert_until(&core, &hasher, &mut next, |state| state == (4096, true));
            let linked = next;
            insert_until(&core, &hasher, &mut next, |state| state == (8192, false));
            let writes = (next - linked) as usize;
            let share = 4096 / CHUNK;
            assert!(
                (share - 1..=share + 1).contains(&writes),
                "the resize took {writes} writes after the one that linked it, not {share}"
            );
        }
        check(Pod::default());
        check(Pointers::default());
    }

    /// A map taken apart in the middle of a resize gives back every entry once: those of the
    /// chains not moved yet, and those of the next table's chains, of which only the moved ones
    /// were ever made.
    #[test]
    fn a_map_taken_apart_mid_resize_gives_every_entry_once() {
        fn check<L: Line<u64, u64>>(core: Buckets<u64, u64, L>) {
            let (hasher, mut inserted) = (DefaultHashBuilder::default(), 0);
            insert_until(&core, &hasher, &mut inserted, |state| {
                matches!(state, (4096.., true))
            });
            let mut keys: Vec<u64> = core.into_entries().map(|(k, _)| k).collect();
            keys.sort_unstable();
            assert!(
                keys.iter().copied().eq(0..inserted),
                "{} entries back of {inserted}",
                keys.len()
            );
        }
        check(Pod::default());
        check(Pointers::default());
    }

    /// Writes move a resize along; `reserve(0)` finishes one that the writes left under way, so a
    /// map whose writes stopped does not keep two tables (the docs of `ScalableMap` say so).
    #[test]
    fn reserve_finishes_a_resize_that_writes_left_under_way() {
        let (core, hasher, mut inserted) = (Pod::default(), DefaultHashBuilder::default(), 0);
        insert_until(&core, &hasher, &mut inserted, |state| {
            matches!(state, (4096.., true))
        });
        let (before, _) = root_state(&core);
        core.reserve(0, &hasher);
        // At least the table the resize was making (more if the entries want more: under
        // `--cfg safemap_stress` (`SAFEMAP_STRESS=1`, `build.rs`) tables grow past one entry per chain, before `reserve` sizes
        // them).
        let (after, resizing) = root_state(&core);
        assert!(
            !resizing && after >= 2 * before,
            "{before} -> {after}, {resizing}"
        );
        for k in 0..inserted {
            let probe = Lookup {
                hash: hasher.hash_one(k),
                key: &k,
            };
            assert_eq!(core.get(probe, |v| *v), Some(k));
        }
    }

    /// Inserts into `core` until a resize is under way, lets `hold` take the passes that play
    /// writes under way, then inserts on until the resize is done, which parks the old table
    /// behind them (`mod.rs`, `Leaving`). The inserts pass through the shared slot while this
    /// thread's own slot is held, since a thread's own slot holds one write at a time.
    fn resize_beside<'c, L: Line<u64, u64>, H>(
        core: &'c Buckets<u64, u64, L>,
        hasher: &DefaultHashBuilder,
        next: &mut u64,
        hold: impl FnOnce(&'c Gate) -> H,
    ) -> H {
        insert_until(core, hasher, next, |state| state == (4096, true));
        let held = hold(&core.gate);
        insert_until(core, hasher, next, |state| state == (8192, false));
        held
    }

    fn pass(gate: &Gate) -> Pass<'_> {
        gate.pass(None).expect("an open gate lets a write through")
    }

    /// A table a finished resize leaves behind waits, parked, while a write that was under way
    /// then may still hold it, and is retired as that write leaves.
    #[test]
    fn a_table_left_behind_waits_for_the_writes_under_way() {
        fn check<L: Line<u64, u64>>(core: Buckets<u64, u64, L>) {
            let (hasher, mut next) = (DefaultHashBuilder::default(), 0);
            let under_way = resize_beside(&core, &hasher, &mut next, pass);
            assert_eq!(core.leaving.lock().len(), 1, "the old table, parked");
            insert_until(&core, &hasher, &mut next, |_| true);
            assert_eq!(
                core.leaving.lock().len(),
                1,
                "parked while a write may hold it"
            );
            core.leave(under_way);
            assert!(core.leaving.lock().is_empty(), "retired as the write left");
        }
        check(Pod::default());
        check(Pointers::default());
    }

    /// `shrink_to_fit` promises the memory back on return, so it retires a parked table whose
    /// writes have left without a leaving write noticing (here the pass is dropped bare).
    #[test]
    fn shrink_to_fit_retires_a_table_left_behind() {
        let (core, hasher, mut next) = (Pod::default(), DefaultHashBuilder::default(), 0);
        drop(resize_beside(&core, &hasher, &mut next, pass));
        assert_eq!(
            core.leaving.lock().len(),
            1,
            "parked, and no write has left since"
        );
        core.shrink_to_fit(&hasher);
        assert!(core.leaving.lock().is_empty(), "retired by shrink_to_fit");
    }

    /// Where readers announce themselves, a table a finished resize leaves behind waits, parked,
    /// while a read (`read` announces it) that was under way then may still hold it (whatever
    /// `meanwhile` does), and is freed at the first write to leave after the read has.
    fn parked_while_a_read_is_under_way(
        read: impl Fn(&Gate) -> ReadPass<'_>,
        meanwhile: impl FnOnce(&Gate),
    ) {
        let (core, hasher, mut next) = (Pod::default(), DefaultHashBuilder::default(), 0);
        // A read before: each announcement leaves its lane idle behind it.
        drop(read(&core.gate));
        let read = resize_beside(&core, &hasher, &mut next, &read);
        meanwhile(&core.gate);
        insert_until(&core, &hasher, &mut next, |_| true);
        assert_eq!(
            core.leaving.lock().len(),
            1,
            "parked while a read may hold it"
        );
        drop(read);
        insert_until(&core, &hasher, &mut next, |_| true);
        assert!(
            core.leaving.lock().is_empty(),
            "freed by a write leaving after the read"
        );
    }

    #[test]
    fn a_table_left_behind_waits_for_an_announced_read() {
        parked_while_a_read_is_under_way(Gate::read, |_| {});
    }

    /// A read nested in another of the same thread (a callback) is covered by the outer one's
    /// announcement: its leaving must not count as the outer read's.
    #[test]
    fn a_nested_read_does_not_end_the_outer_ones_wait() {
        parked_while_a_read_is_under_way(Gate::read, |gate| drop(gate.read()));
    }

    /// A read of a thread without a slot of its own, announced in the shared slot (which many
    /// threads' reads enter at once), holds a table left behind too, and lets it go on leaving.
    #[test]
    fn a_table_left_behind_waits_for_a_read_through_the_shared_slot() {
        parked_while_a_read_is_under_way(Gate::read_shared, |_| {});
    }

    /// A write through the shared slot (here a pass taken while this thread's own slot is busy)
    /// holds a table left behind too, though the shared slot's writes are counted together: the
    /// slot must be seen idle (`gate.rs`).
    #[test]
    fn a_table_left_behind_waits_for_a_write_through_the_shared_slot() {
        let (core, hasher, mut next) = (Pod::default(), DefaultHashBuilder::default(), 0);
        let shared = resize_beside(&core, &hasher, &mut next, |gate| {
            let own = pass(gate);
            let shared = pass(gate);
            drop(own);
            shared
        });
        assert_eq!(
            core.leaving.lock().len(),
            1,
            "parked while the shared write may hold it"
        );
        core.leave(shared);
        assert!(
            core.leaving.lock().is_empty(),
            "retired as the shared write left"
        );
    }
}
