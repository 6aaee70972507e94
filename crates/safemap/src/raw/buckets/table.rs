//! A power-of-two array of bucket chains, and the link to the table it is moving into. Lines that
//! keep their slots apart (`line::Blocks`) have them in a second array after the first, on a cache
//! line, so that the lines stay dense.
//!
//! A key's chain is picked by the bits just below the hash's tag (`raw/routing.rs`), read from the
//! top: the key's *position* is its hash shifted left past the tag, and a table of `2^bits` chains
//! gives chain `i` the positions `[i, i + 1) << (64 - bits)`. So a table twice the size splits
//! chain `i` into chains `2i` and `2i + 1`, and an iteration that walks positions in order visits
//! every key once whatever tables it meets on the way.
//!
//! Chains are moved to the next table a few at a time (`mod.rs`): `claimed` hands out the next
//! ones to move and `moved` counts those done.

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::line::{Blocks, Chain, Entry, Head, Line, Unit};
use super::spares::Spares;
use crate::raw::release;
use crate::raw::routing::TAG_BITS;
use crate::sync::{AtomicPtr, AtomicUsize, BookkeepingMutex};

/// Where a hash sorts in position order: the hash without its tag bits, as a number below 2^64.
#[inline(always)]
pub(crate) fn position(hash: u64) -> u128 {
    u128::from(hash << TAG_BITS)
}

/// Every position.
pub(crate) const ALL: Range<u128> = 0..1 << 64;

/// Where a table's blocks start: a cache line, so that a block of 128 bytes spans two.
const BLOCK_ALIGN: usize = 64;

pub(crate) struct Table<K, V, L: Blocks> {
    /// The allocation, the first head line in it (at the first multiple of the line alignment),
    /// and the first block, after the lines (dangling if blocks take no room).
    memory: NonNull<u8>,
    buckets: NonNull<L>,
    blocks: NonNull<L::Block>,
    bits: u32,
    /// The table this one's chains are moving into; null unless a resize is under way.
    pub(crate) next: AtomicPtr<Table<K, V, L>>,
    /// How many chains, from the first, have been handed to a mover.
    pub(crate) claimed: AtomicUsize,
    /// How many chains have been moved.
    pub(crate) moved: AtomicUsize,
    /// Chains handed to a mover whose move a key's panicking `Hash` cut short, to be handed out
    /// again once `claimed` has passed the last chain.
    pub(crate) unmoved: BookkeepingMutex<Vec<usize>>,
    /// Overflow buckets, freed with the table, so that freeing a table never walks its chains (a
    /// walk of a 4M-entry table's chains took 80 ms).
    spares: BookkeepingMutex<Spares<Unit<L>>>,
    /// The release thread faulting the pages of the lines, and of the blocks, in; stopped before
    /// they are freed. Two jobs, so that a mover that catches up with them maps lines and blocks
    /// as its chains reach them, not every line first.
    prefaulting: [Option<release::Prefaulting>; 2],
    /// Set when the table is handed to the reclamation, which under shuttle never frees it: a
    /// write that uses it after that breaks the protocol of `mod.rs` (`Leaving`), and panics.
    #[cfg(shuttle)]
    retired: crate::sync::AtomicBool,
    holds: PhantomData<Entry<K, V>>,
}

// SAFETY: a table owns its buckets and the entries they point to, like a `Box<[Bucket]>`; moving
// or sharing it across threads moves or shares `K`s and `V`s, which the bounds require.
unsafe impl<K: Send, V: Send, L: Blocks> Send for Table<K, V, L> {}
// SAFETY: shared access reads entries from several threads and drops displaced ones on whichever
// thread reclaims them.
unsafe impl<K: Send + Sync, V: Send + Sync, L: Blocks> Sync for Table<K, V, L> {}

impl<K, V, L: Line<K, V>> Table<K, V, L> {
    /// A table of `2^bits` empty chains, its memory made here. Zeroed memory where that is a
    /// fresh bucket, from the allocator's zeroing path (`calloc`), so that the pages of fresh
    /// memory are mapped by the moves that fill them, not all at once here: asking for the
    /// buckets' alignment (64 or 128 bytes) instead would make the allocator write every byte,
    /// 44 ms for a 4M-entry table. Memory the allocator recycles it clears anyway (up to 7.7 ms
    /// for 16 MiB), so a table to grow into is made by [`Table::for_growth`] instead.
    pub(crate) fn new(bits: u32) -> Box<Self> {
        let zeroed = Self::zeroed();
        let memory = Self::allocate(bits, zeroed);
        // SAFETY: just allocated with `layout(bits)`, zeroed if `zeroed`; every chain is fresh
        // once `in_memory` returns.
        unsafe { Self::in_memory(bits, memory, !zeroed) }
    }

    /// A table of `2^bits` chains for a table of fewer to grow into. Its memory is made here and
    /// not written, so making it stalls no write however large it is; the mover of each chain of
    /// the smaller table makes fresh the chains it splits into ([`Table::make_fresh`]) before it
    /// marks its chain moved, which is the only way anyone reaches them.
    pub(crate) fn for_growth(bits: u32) -> Box<Self> {
        let memory = Self::allocate(bits, false);
        // Debug builds and schedule explorers fill it with a pattern that reads as neither a
        // fresh line nor a moved one (its bytes lack the top bit), so that a chain reached
        // before it is made fresh shows up in tests rather than passing for fresh on zeroed pages.
        #[cfg(any(debug_assertions, shuttle))]
        // SAFETY: the whole allocation, just made and owned here.
        unsafe {
            memory.write_bytes(0x5A, Self::layout(bits).size())
        };
        // SAFETY: just allocated with `layout(bits)`; its chains are not read until made fresh,
        // as above.
        unsafe { Self::in_memory(bits, memory, false) }
    }

    /// Memory for `2^bits` chains, zeroed if `zeroed`.
    fn allocate(bits: u32, zeroed: bool) -> NonNull<u8> {
        let layout = Self::layout(bits);
        // SAFETY: the layout is non-zero in size (at least one bucket).
        let memory = unsafe {
            if zeroed {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        NonNull::new(memory).unwrap_or_else(|| alloc::handle_alloc_error(layout))
    }

    /// Whether a table's memory is made zeroed, which is then a table of fresh buckets.
    fn zeroed() -> bool {
        #[cfg(not(shuttle))]
        return L::zero_is_fresh();
        #[cfg(shuttle)]
        return false;
    }

    /// Makes chains `chains` fresh, whatever their memory held.
    ///
    /// # Safety
    /// No one else reaches these chains until the caller publishes them (a moved mark with
    /// Release ordering, or handing the table over), and they hold nothing that needs dropping:
    /// they were never made, are empty, or hold copies that a move a panic cut short placed.
    pub(crate) unsafe fn make_fresh(&self, chains: Range<usize>) {
        assert!(chains.end <= self.chains());
        for index in chains {
            // SAFETY: inside the allocation, aligned for lines and blocks; written by the caller
            // alone.
            unsafe {
                self.buckets.add(index).write(L::new());
                self.blocks.add(index).write(L::fresh_block());
            }
        }
    }

    /// # Safety
    /// `memory` came from the global allocator with `layout(bits)` and is owned by the caller;
    /// if `write_fresh` is false, its chains are fresh (zeroed, which `zeroed()` allows) or are
    /// made fresh before anyone reaches them ([`Table::for_growth`]).
    unsafe fn in_memory(bits: u32, memory: NonNull<u8>, write_fresh: bool) -> Box<Self> {
        let skip = memory.align_offset(align_of::<L>());
        // SAFETY: the layout has room for the lines after up to one alignment's worth of bytes.
        let buckets = unsafe { memory.add(skip) }.cast::<L>();
        let blocks = Self::blocks_after(buckets, bits);
        let table = Box::new(Table {
            memory,
            buckets,
            blocks,
            bits,
            next: AtomicPtr::new(std::ptr::null_mut()),
            claimed: AtomicUsize::new(0),
            moved: AtomicUsize::new(0),
            unmoved: BookkeepingMutex::new(Vec::new()),
            spares: BookkeepingMutex::new(Spares::new()),
            // Unwritten pages get mapped now, off the writes' path; pages already written (by
            // `calloc` clearing recycled memory, or the debug pattern) cost it nothing more.
            prefaulting: Self::prefault(memory, blocks, bits),
            #[cfg(shuttle)]
            retired: crate::sync::AtomicBool::new(false),
            holds: PhantomData,
        });
        if write_fresh {
            // SAFETY: the table is not shared yet, and its memory holds nothing.
            unsafe { table.make_fresh(0..table.chains()) };
        }
        table
    }
}

impl<K, V, L: Blocks> Table<K, V, L> {
    /// The chains' memory, lines then blocks, with room to align each: at the allocator's own
    /// alignment, which `calloc` serves.
    pub(super) fn layout(bits: u32) -> Layout {
        let lines = size_of::<L>() << bits;
        let blocks = size_of::<L::Block>() << bits;
        let room = lines + align_of::<L>() + blocks + BLOCK_ALIGN;
        Layout::from_size_align(room, align_of::<usize>() * 2).expect("a table fits in memory")
    }

    /// Where the blocks of a table of `2^bits` lines from `lines` start: past the last line, at
    /// the start of a cache line (dangling if blocks take no room).
    fn blocks_after(lines: NonNull<L>, bits: u32) -> NonNull<L::Block> {
        const { assert!(align_of::<L::Block>() <= BLOCK_ALIGN) };
        if size_of::<L::Block>() == 0 {
            return NonNull::dangling();
        }
        // SAFETY: the layout has room for the lines, then the blocks after up to
        // `BLOCK_ALIGN` bytes.
        let end = unsafe { lines.add(1 << bits) }.cast::<u8>();
        let skip = end.align_offset(BLOCK_ALIGN);
        // SAFETY: as above.
        unsafe { end.add(skip) }.cast()
    }

    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    /// The number of chains.
    pub(crate) fn chains(&self) -> usize {
        1 << self.bits
    }

    /// The chain holding positions at `position`.
    #[inline(always)]
    pub(crate) fn chain_at(&self, position: u128) -> usize {
        // Two shifts, so that a one-chain table (bits = 0) shifts by less than 64.
        ((position as u64 >> 1) >> (63 - self.bits)) as usize
    }

    /// The positions chain `index` holds.
    pub(crate) fn span(&self, index: usize) -> Range<u128> {
        let width = 1u128 << (64 - self.bits);
        index as u128 * width..(index as u128 + 1) * width
    }

    /// The chains holding the positions `span`.
    pub(crate) fn chains_within(&self, span: Range<u128>) -> Range<usize> {
        self.chain_at(span.start)..self.chain_at(span.end - 1) + 1
    }

    /// Has the pages of chains up to `chains.end` faulted in now if the release thread has not
    /// (`release::Prefaulting::catch_up`): for the mover about to fill `chains`.
    pub(crate) fn catch_up_faults(&self, chains: &Range<usize>) {
        let ends = [
            self.buckets.as_ptr().wrapping_add(chains.end) as usize,
            self.blocks.as_ptr().wrapping_add(chains.end) as usize,
        ];
        for (prefaulting, end) in self.prefaulting.iter().zip(ends) {
            if let Some(prefaulting) = prefaulting {
                prefaulting.catch_up(end);
            }
        }
    }

    /// The release thread's jobs for a table's memory: the lines (with the alignment before
    /// them), and the blocks (with the alignment before them; none if blocks take no room).
    fn prefault(
        memory: NonNull<u8>,
        blocks: NonNull<L::Block>,
        bits: u32,
    ) -> [Option<release::Prefaulting>; 2] {
        let start = memory.as_ptr() as usize;
        let end = start + Self::layout(bits).size();
        if size_of::<L::Block>() == 0 {
            return [release::prefault(memory, end - start), None];
        }
        let split = blocks.as_ptr() as usize;
        // SAFETY: `split` lies inside the allocation (the blocks start in it).
        let second = unsafe { memory.add(split - start) };
        [
            release::prefault(memory, split - start),
            release::prefault(second, end - split),
        ]
    }

    /// The head of chain `index`.
    #[inline(always)]
    pub(crate) fn head(&self, index: usize) -> Head<'_, L> {
        debug_assert!(index < self.chains());
        // SAFETY: `index` is below the chain count, and the lines and blocks live as long as the
        // table.
        unsafe {
            Head::new(
                self.buckets.add(index).as_ref(),
                self.blocks.add(index).as_ref(),
            )
        }
    }

    /// The head of the chain for `hash`.
    #[inline(always)]
    pub(crate) fn head_for(&self, hash: u64) -> Head<'_, L> {
        self.head(self.chain_at(position(hash)))
    }

    /// The table this one is moving into, if a resize is under way.
    #[inline]
    pub(crate) fn next<'t>(&self) -> Option<&'t Table<K, V, L>> {
        // Acquire: the next table was built before the Release store that linked it.
        // SAFETY: a next table outlives this one: it is freed only as a root, after this table
        // has been retired, and every caller holds a guard or a pass from while this table was
        // reachable (`mod.rs`).
        unsafe { self.next.load(Acquire).as_ref() }
    }

    /// The next table, for a caller that found a moved chain here: its mover linked the next
    /// table before it marked the chain. The panic is out of line, so that a lookup's loop
    /// keeps no message at hand (which cost a read nine instructions).
    #[inline(always)]
    pub(crate) fn after_moved<'t>(&self) -> &'t Table<K, V, L> {
        #[cold]
        #[inline(never)]
        fn unlinked() -> ! {
            panic!("a moved chain has a next table")
        }
        self.next().unwrap_or_else(|| unlinked())
    }

    /// Records that the table is handed to the reclamation (under shuttle, which keeps it).
    #[cfg(shuttle)]
    pub(crate) fn mark_retired(&self) {
        self.retired.store(true, Relaxed);
    }

    /// Under shuttle, panics if the table was handed to the reclamation: a write still using it
    /// would read freed memory in a real run.
    #[inline(always)]
    pub(crate) fn assert_kept(&self) {
        #[cfg(shuttle)]
        assert!(
            !self.retired.load(Relaxed),
            "an operation used a table after it was retired"
        );
    }
}

impl<K, V, L: Line<K, V>> Table<K, V, L> {
    /// A fresh line for a chain that has outgrown its slots, living as long as the table.
    pub(crate) fn spare(&self) -> &Unit<L> {
        let (unit, behind) = self.spares.lock().reserve(self.chains());
        if let Some(behind) = behind {
            behind.run();
        }
        // SAFETY: the unit is reserved for this call alone, written once, here, before it is
        // returned, and stays where it is until the table drops.
        unsafe {
            unit.write(Unit::fresh(L::new()));
            unit.as_ref()
        }
    }

    /// Every entry of the chains that have not moved, emptied out of them, then those of the next
    /// table, if any; for the owner of the whole structure. A next table to grow into has its
    /// chains made fresh where their source has not moved, so that it drains and drops whole.
    pub(crate) fn drain(mut self) -> Vec<(K, V)> {
        let next = self.take_next();
        let mut entries = Vec::new();
        for index in 0..self.chains() {
            // SAFETY: owning the table excludes every other holder of the chain's lock.
            let chain = unsafe { Chain::locked(self.head(index)) };
            if L::is_moved(chain) {
                continue;
            }
            entries.extend(L::drain(chain));
            if let Some(next) = next.as_ref().filter(|next| next.bits > self.bits) {
                // SAFETY: the chains this one splits into were never reached: it has not moved.
                unsafe { next.make_fresh(next.chains_within(self.span(index))) };
            }
        }
        if let Some(next) = next {
            entries.extend(next.drain());
        }
        entries
    }
}

impl<K, V, L: Blocks> Table<K, V, L> {
    /// The table this one is moving into, unlinked, for the owner of both.
    fn take_next(&mut self) -> Option<Box<Self>> {
        let next = self.next.swap(std::ptr::null_mut(), Relaxed);
        // SAFETY: a linked next table is boxed and owned by the table moving into it until
        // the move finishes and it becomes a root (and is unlinked from this one).
        (!next.is_null()).then(|| unsafe { Box::from_raw(next) })
    }
}

impl<K, V, L: Blocks> Drop for Table<K, V, L> {
    /// Frees the chains and the spare buckets, not the entries, which may have moved on, nor the
    /// next table.
    fn drop(&mut self) {
        drop(self.prefaulting.each_mut().map(Option::take));
        if std::mem::needs_drop::<L>() || std::mem::needs_drop::<L::Block>() {
            for index in 0..self.chains() {
                // SAFETY: `index` is below the chain count, the line and block were initialized
                // in `new`, and they are dropped once, here.
                unsafe {
                    self.buckets.add(index).drop_in_place();
                    self.blocks.add(index).drop_in_place();
                }
            }
        }
        let mut allocations = self.spares.get_mut().release();
        allocations.push(release::Allocation {
            memory: self.memory,
            layout: Self::layout(self.bits),
        });
        // SAFETY: the table's memory was allocated in `new` with this layout, and the spare
        // blocks' as `release` gives them; the table goes with them.
        unsafe { release::free(&allocations) };
    }
}

/// A root table taken out of a map, with whatever it is moving into: freeing it frees every
/// entry still in it.
pub(crate) struct Detached<K, V, L: Line<K, V>>(pub(crate) Option<Box<Table<K, V, L>>>);

impl<K, V, L: Line<K, V>> Drop for Detached<K, V, L> {
    /// Drains the entries where they need dropping; where neither they nor the lines do (copies
    /// of plain old data), frees the tables alone, without a walk of every chain.
    fn drop(&mut self) {
        let Some(mut table) = self.0.take() else {
            return;
        };
        if std::mem::needs_drop::<L::Item>() || std::mem::needs_drop::<L>() {
            drop((*table).drain());
        } else {
            drop(table.take_next());
        }
    }
}
