//! A table's overflow buckets: handed out one at a time to chains that outgrow their head bucket,
//! from blocks that live as long as the table, so that freeing a table never walks its chains.
//!
//! A block is allocated unwritten, in proportion to its table, and each bucket is made fresh as
//! it is handed out; the release thread faults a large block's pages in ahead of the chains that
//! will take its buckets, or, when it falls behind, the write that takes one does a step of that
//! work after letting go of the block's lock (`raw/release.rs`). Blocks used to be 64 buckets,
//! made and written whole by the write that needed one: that write paid for the allocation, the
//! page faults and the writing, and such writes were the slowest 0.1% of inserts while a map grew
//! (README).

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::raw::release::{self, Allocation, CatchUp, Prefaulting};

/// The fewest buckets in a block: 4 KiB of 64-byte buckets, 8 KiB of 128-byte ones.
const MIN_BLOCK: usize = 64;

/// A table of `chains` chains takes blocks of `chains / BLOCKS_PER_TABLE` buckets (at least
/// [`MIN_BLOCK`]). A table grows when its chains average one line's worth of entries, by which
/// time about four chains in ten have an overflow bucket, so a table takes about a dozen blocks,
/// and leaves at most one partly used: 3% of its chains' memory.
const BLOCKS_PER_TABLE: usize = 32;

/// Blocks of overflow buckets of kind `L`, and how many of the last block's are handed out.
pub(super) struct Spares<L> {
    blocks: Vec<Block<L>>,
    taken: usize,
}

/// Memory for `len` buckets, the first ones made as they are handed out.
struct Block<L> {
    buckets: NonNull<L>,
    len: usize,
    /// The release thread faulting the block's pages in; stopped before the block is freed.
    prefaulting: Option<Prefaulting>,
}

// SAFETY: the blocks are owned memory holding `L`s, like a `Vec<Box<[L]>>`.
unsafe impl<L: Send> Send for Spares<L> {}
// SAFETY: as above; `&Spares` hands out nothing.
unsafe impl<L: Sync> Sync for Spares<L> {}

impl<L> Spares<L> {
    pub(super) fn new() -> Self {
        Spares {
            blocks: Vec::new(),
            taken: 0,
        }
    }

    /// The next bucket, for a table of `chains` chains, reserved for the caller, who must write
    /// a bucket in it before [`Self::release`] and before anyone else reaches it; it stays where
    /// it is until then. With it, the catching up on faults to do first, if the release thread
    /// has not mapped its page: the caller runs it after letting go of the lock it took `self`
    /// under, so that other writes do not wait through a step (`release::Prefaulting`).
    pub(super) fn reserve(&mut self, chains: usize) -> (NonNull<L>, Option<CatchUp>) {
        if self
            .blocks
            .last()
            .is_none_or(|block| self.taken == block.len)
        {
            self.blocks
                .push(Block::new((chains / BLOCKS_PER_TABLE).max(MIN_BLOCK)));
            self.taken = 0;
        }
        let block = self.blocks.last().expect("a block was just made");
        // SAFETY: `taken` is below the block's length, so the bucket lies in its allocation.
        let bucket = unsafe { block.buckets.add(self.taken) };
        self.taken += 1;
        let behind = block
            .prefaulting
            .as_ref()
            .and_then(|prefaulting| prefaulting.behind(bucket.as_ptr().wrapping_add(1) as usize));
        (bucket, behind)
    }

    /// Drops the buckets handed out and gives the blocks' allocations to free, leaving none.
    pub(super) fn release(&mut self) -> Vec<Allocation> {
        let taken = std::mem::take(&mut self.taken);
        let blocks = std::mem::take(&mut self.blocks);
        let last = blocks.len().saturating_sub(1);
        blocks
            .into_iter()
            .enumerate()
            .map(|(index, mut block)| {
                drop(block.prefaulting.take());
                let made = if index == last { taken } else { block.len };
                if std::mem::needs_drop::<L>() {
                    for at in 0..made {
                        // SAFETY: the first `made` buckets were reserved, so written (`reserve`'s
                        // contract), and are dropped once, here, before the memory is freed.
                        unsafe { block.buckets.add(at).drop_in_place() };
                    }
                }
                Allocation {
                    memory: block.buckets.cast(),
                    layout: Block::<L>::layout(block.len),
                }
            })
            .collect()
    }
}

impl<L> Block<L> {
    fn layout(len: usize) -> Layout {
        Layout::array::<L>(len).expect("a block fits in memory")
    }

    /// An unwritten block of `len` buckets.
    fn new(len: usize) -> Self {
        let layout = Self::layout(len);
        // SAFETY: the layout is non-zero in size (`len` is at least `MIN_BLOCK`, and a bucket
        // holds a lock).
        let memory = unsafe { alloc::alloc(layout) };
        let memory = NonNull::new(memory).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Block {
            buckets: memory.cast(),
            len,
            prefaulting: release::prefault(memory, layout.size()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::ptr::NonNull;

    use super::{MIN_BLOCK, Spares};

    thread_local! {
        static DROPPED: Cell<usize> = const { Cell::new(0) };
    }

    /// A bucket that counts its drops and knows its place.
    struct Counted(usize);

    impl Drop for Counted {
        fn drop(&mut self) {
            DROPPED.with(|dropped| dropped.set(dropped.get() + 1));
        }
    }

    /// A reserved bucket, written as `reserve`'s contract asks.
    fn take(spares: &mut Spares<Counted>, chains: usize, index: usize) -> NonNull<Counted> {
        let (bucket, behind) = spares.reserve(chains);
        if let Some(catch_up) = behind {
            catch_up.run();
        }
        // SAFETY: reserved for this call alone, written once.
        unsafe { bucket.write(Counted(index)) };
        bucket
    }

    #[test]
    fn buckets_stay_put_and_each_made_one_is_dropped_once() {
        let mut spares = Spares::new();
        let taken: Vec<_> = (0..MIN_BLOCK * 2 + 5)
            .map(|index| take(&mut spares, 16, index))
            .collect();
        for (index, bucket) in taken.iter().enumerate() {
            // SAFETY: made by `take`, in place until `release`.
            assert_eq!(unsafe { bucket.as_ref() }.0, index);
        }
        let allocations = spares.release();
        assert_eq!(
            allocations.len(),
            3,
            "blocks of MIN_BLOCK for a small table"
        );
        assert_eq!(DROPPED.with(Cell::get), MIN_BLOCK * 2 + 5);
        // SAFETY: `release` hands over allocations of the global allocator with their layouts.
        unsafe { crate::raw::release::free(&allocations) };
        assert!(spares.release().is_empty());
    }

    #[test]
    fn blocks_grow_with_the_table() {
        let mut spares = Spares::new();
        take(&mut spares, 1 << 20, 0);
        let allocations = spares.release();
        assert_eq!(
            allocations[0].layout.size(),
            (1 << 20) / super::BLOCKS_PER_TABLE * size_of::<Counted>()
        );
        // SAFETY: as above.
        unsafe { crate::raw::release::free(&allocations) };
    }
}
