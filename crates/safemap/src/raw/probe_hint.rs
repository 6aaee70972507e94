//! Where a table's probe for a hash will start, readable without the table's lock, so that a
//! single-key operation can start loading those cache lines before it takes the lock.
//!
//! # Why
//! A lookup in a table larger than the cache waits mostly for two cache lines: the control bytes
//! at the hash's home position and the bucket there. Behind a lock, that wait begins only once the
//! lock is held, and on x86 the lock's atomic instruction first waits for every earlier load and
//! store to finish, so consecutive operations cannot overlap their misses. A prefetch is not
//! ordered with atomic instructions: issued before the lock, its lines arrive while the lock is
//! being taken.
//!
//! # Algorithm
//! hashbrown lays a table out as one allocation around a point `end`: bucket `i` lies at
//! `end - (i + 1) * size_of::<T>()` and control byte `i` at `end + i`, and a probe for `hash`
//! starts at index `hash & (buckets - 1)`, its home. Only the home bucket's line is prefetched: for
//! 16-byte entries at the loads these tables run at (37% to 76% of buckets full), that line holds
//! the key for 79% to 94% of the hits, and the next line down holds most of the rest.
//!
//! The hint holds `end` and `buckets - 1` and is set after every insertion of a new key, which is
//! where these tables grow. Other changes of allocation (`clear` through `mem::take`, a growth on
//! the way to an existing key) leave it stale until the next insertion; a stale hint costs a
//! wasted prefetch and nothing else. The layout is hashbrown's, not a promise of its API, so this
//! module's tests check it against the bucket addresses hashbrown hands out.
//!
//! # Orderings
//! Relaxed throughout. The hint only chooses which addresses to prefetch, and a prefetch does not
//! change what the program computes. Any address will do, including a freed one or a mix of one
//! table's `end` and another's mask, which merely prefetches useless lines.

use std::mem::size_of;
use std::sync::atomic::Ordering::Relaxed;

use allocator_api2::alloc::Allocator;
use hashbrown::hash_table::OccupiedEntry;

use super::prefetch;
use crate::sync::HintCell;

/// The last known `end` and bucket mask of one table.
#[derive(Debug, Default)]
pub(crate) struct ProbeHint {
    // Invariant: none that safety relies on. Both 0 until the table's first insertion.
    end: HintCell,
    mask: HintCell,
}

impl ProbeHint {
    /// Starts loading the control bytes and the bucket at `hash`'s home position in a table of
    /// `T`s, if the hint is current; otherwise touches nothing the program can see.
    #[inline(always)]
    pub(crate) fn prefetch<T>(&self, hash: u64) {
        let end = self.end.load(Relaxed);
        let home = hash as usize & self.mask.load(Relaxed);
        prefetch(end.wrapping_add(home));
        prefetch(end.wrapping_sub(home.wrapping_add(1).wrapping_mul(size_of::<T>())));
    }

    /// Records the layout of the table that `filled`, the entry just inserted, belongs to.
    #[inline]
    pub(crate) fn follow<T, A: Allocator>(&self, filled: OccupiedEntry<'_, T, A>) {
        let index = filled.bucket_index();
        let bucket = (filled.get() as *const T).addr();
        let buckets = filled.into_table().num_buckets();
        self.end
            .store(bucket + (index + 1) * size_of::<T>(), Relaxed);
        self.mask.store(buckets - 1, Relaxed);
    }
}

impl ProbeHint {
    /// Records the layout of `table`, which was built some other way than by insertion (a
    /// copy): from its first full bucket. An empty table leaves the hint as it was.
    pub(crate) fn learn<T, A: Allocator>(&self, table: &hashbrown::HashTable<T, A>) {
        let first =
            (0..table.num_buckets()).find_map(|index| Some((index, table.get_bucket(index)?)));
        if let Some((index, bucket)) = first {
            let end = (bucket as *const T).addr() + (index + 1) * size_of::<T>();
            self.end.store(end, Relaxed);
            self.mask.store(table.num_buckets() - 1, Relaxed);
        }
    }
}

#[cfg(test)]
impl ProbeHint {
    /// The recorded `end` and mask.
    pub(crate) fn current(&self) -> (usize, usize) {
        (self.end.load(Relaxed), self.mask.load(Relaxed))
    }

    /// The `end` and mask of `table`, from the addresses of its full buckets, or `None` if the
    /// bucket addresses do not follow the layout this module assumes.
    pub(crate) fn layout_of<T, A: Allocator>(
        table: &hashbrown::HashTable<T, A>,
    ) -> Option<(usize, usize)> {
        let mut ends = (0..table.num_buckets()).filter_map(|index| {
            let bucket = table.get_bucket(index)?;
            Some((bucket as *const T).addr() + (index + 1) * size_of::<T>())
        });
        let end = ends.next()?;
        ends.all(|other| other == end)
            .then_some((end, table.num_buckets() - 1))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use hashbrown::HashTable;

    use super::*;
    use crate::map::DefaultHashBuilder;

    /// Inserts `keys` into `table` through `entry`, as the maps do, following each new key.
    fn fill(
        table: &mut HashTable<(u64, u64)>,
        keys: std::ops::Range<u64>,
        hasher: &DefaultHashBuilder,
        hint: &ProbeHint,
    ) {
        for key in keys {
            let hash = hasher.hash_one(key);
            if let hashbrown::hash_table::Entry::Vacant(slot) =
                table.entry(hash, |e| e.0 == key, |e| hasher.hash_one(e.0))
            {
                hint.follow(slot.insert((key, key)));
            }
        }
    }

    #[test]
    fn the_hint_follows_a_growing_table() {
        let (hint, mut table) = (ProbeHint::default(), HashTable::new());
        let hasher = DefaultHashBuilder::default();
        assert_eq!(hint.current(), (0, 0));
        for round in 0..12u64 {
            fill(&mut table, round * 1000..(round + 1) * 1000, &hasher, &hint);
            assert_eq!(Some(hint.current()), ProbeHint::layout_of(&table));
        }
    }

    #[test]
    fn buckets_lie_below_end_and_are_found_from_their_home_position() {
        // hashbrown probes from `hash & mask` in groups of at most 16 control bytes; at half load
        // almost every key sits in its first group. A different layout or probe start fails here.
        let (hint, mut table) = (ProbeHint::default(), HashTable::with_capacity(4096));
        let hasher = DefaultHashBuilder::default();
        fill(&mut table, 0..2048, &hasher, &hint);
        let (end, mask) = hint.current();
        assert_eq!(Some((end, mask)), ProbeHint::layout_of(&table));
        let near_home = (0..2048u64)
            .filter(|&key| {
                let hash = hasher.hash_one(key);
                let index = table.find_bucket_index(hash, |e| e.0 == key).unwrap();
                let bucket = table.get_bucket(index).unwrap();
                assert_eq!((bucket as *const (u64, u64)).addr(), end - (index + 1) * 16);
                index.wrapping_sub(hash as usize & mask) & mask < 16
            })
            .count();
        assert!(
            near_home > 2000,
            "{near_home} of 2048 keys in their home group"
        );
    }

    /// Fails by crashing: were `prefetch` a load, the empty hint's addresses (just above 0 and
    /// just below 2^64) would fault. Only where `prefetch` issues one: elsewhere it is a no-op
    /// and the test would check nothing.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_prefetch_from_a_stale_or_empty_hint_is_harmless() {
        let hint = ProbeHint::default();
        hint.prefetch::<(u64, u64)>(u64::MAX);
        let mut table = HashTable::new();
        fill(&mut table, 0..100, &DefaultHashBuilder::default(), &hint);
        drop(table);
        for hash in [0, 1, u64::MAX] {
            hint.prefetch::<(u64, u64)>(hash);
            hint.prefetch::<[u8; 4096]>(hash);
        }
    }
}
