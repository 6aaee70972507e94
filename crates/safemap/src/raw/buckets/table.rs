//! A power-of-two array of bucket chains, and the link to the table it is moving into.
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
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::bucket::{Bucket, Entry};
use crate::raw::routing::TAG_BITS;
use crate::sync::{AtomicPtr, AtomicUsize};

/// Where a hash sorts in position order: the hash without its tag bits, as a number below 2^64.
#[inline(always)]
pub(crate) fn position(hash: u64) -> u128 {
    u128::from(hash << TAG_BITS)
}

/// Every position.
pub(crate) const ALL: Range<u128> = 0..1 << 64;

pub(crate) struct Table<K, V> {
    buckets: NonNull<Bucket<K, V>>,
    bits: u32,
    /// The table this one's chains are moving into; null unless a resize is under way.
    pub(crate) next: AtomicPtr<Table<K, V>>,
    /// How many chains, from the first, have been handed to a mover.
    pub(crate) claimed: AtomicUsize,
    /// How many chains have been moved.
    pub(crate) moved: AtomicUsize,
}

// SAFETY: a table owns its buckets and the entries they point to, like a `Box<[Bucket]>`; moving
// or sharing it across threads moves or shares `K`s and `V`s, which the bounds require.
unsafe impl<K: Send, V: Send> Send for Table<K, V> {}
// SAFETY: shared access reads entries from several threads and drops displaced ones on whichever
// thread reclaims them.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Table<K, V> {}

impl<K, V> Table<K, V> {
    /// A table of `2^bits` empty chains. Zeroed memory where that is a fresh bucket, so the pages
    /// are touched by the moves that fill them rather than all at once here.
    pub(crate) fn new(bits: u32) -> Box<Self> {
        let layout = Self::layout(bits);
        #[cfg(not(shuttle))]
        let zeroed = Bucket::<K, V>::zero_is_fresh();
        #[cfg(shuttle)]
        let zeroed = false;
        // SAFETY: the layout is non-zero in size (at least one 64-byte bucket).
        let memory = unsafe {
            if zeroed {
                alloc::alloc_zeroed(layout)
            } else {
                alloc::alloc(layout)
            }
        };
        let Some(buckets) = NonNull::new(memory.cast::<Bucket<K, V>>()) else {
            alloc::handle_alloc_error(layout)
        };
        if !zeroed {
            for index in 0..1 << bits {
                // SAFETY: `index` is inside the allocation, which is aligned for buckets.
                unsafe { buckets.add(index).write(Bucket::new()) };
            }
        }
        Box::new(Table {
            buckets,
            bits,
            next: AtomicPtr::new(std::ptr::null_mut()),
            claimed: AtomicUsize::new(0),
            moved: AtomicUsize::new(0),
        })
    }

    fn layout(bits: u32) -> Layout {
        Layout::array::<Bucket<K, V>>(1 << bits).expect("a table fits in memory")
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

    /// The head of chain `index`.
    #[inline(always)]
    pub(crate) fn head(&self, index: usize) -> &Bucket<K, V> {
        debug_assert!(index < self.chains());
        // SAFETY: `index` is below the chain count, and the buckets live as long as the table.
        unsafe { self.buckets.add(index).as_ref() }
    }

    /// The head of the chain for `hash`.
    #[inline(always)]
    pub(crate) fn head_for(&self, hash: u64) -> &Bucket<K, V> {
        self.head(self.chain_at(position(hash)))
    }

    /// The table this one is moving into, if a resize is under way.
    #[inline]
    pub(crate) fn next<'t>(&self) -> Option<&'t Table<K, V>> {
        // Acquire: the next table was built before the Release store that linked it.
        // SAFETY: a next table outlives this one: it is freed only as a root, after this table
        // has been retired, and every caller holds a guard entered while this table was reachable.
        unsafe { self.next.load(Acquire).as_ref() }
    }

    /// Every entry of the chains that have not moved, emptied out of them, then those of the next
    /// table, if any; for the owner of the whole structure.
    pub(crate) fn drain(self) -> Vec<Box<Entry<K, V>>> {
        let mut entries = Vec::new();
        for index in 0..self.chains() {
            // SAFETY: `index` is below the chain count, and `self` is owned.
            let head = unsafe { self.buckets.add(index).as_mut() };
            entries.extend(head.drain());
        }
        let next = self.next.swap(std::ptr::null_mut(), Relaxed);
        if !next.is_null() {
            // SAFETY: a linked next table is boxed and owned by the table moving into it until
            // the move finishes and it becomes a root (and is unlinked from this one).
            entries.extend(unsafe { *Box::from_raw(next) }.drain());
        }
        entries
    }
}

impl<K, V> Drop for Table<K, V> {
    /// Frees the chains, not the entries (which may have moved on) nor the next table.
    fn drop(&mut self) {
        for index in 0..self.chains() {
            // SAFETY: `index` is below the chain count, the bucket was initialized in `new`, and
            // it is dropped once, here.
            unsafe {
                let head = self.buckets.add(index);
                (*head.as_ptr()).free_overflow();
                head.drop_in_place();
            }
        }
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.buckets.as_ptr().cast(), Self::layout(self.bits)) };
    }
}

/// A root table taken out of a map, with whatever it is moving into: freeing it frees every
/// entry still in it.
pub(crate) struct Detached<K, V>(pub(crate) Option<Box<Table<K, V>>>);

impl<K, V> Drop for Detached<K, V> {
    fn drop(&mut self) {
        if let Some(table) = self.0.take() {
            drop((*table).drain());
        }
    }
}
