//! Every strategy gives back the memory of the tables it grows out of and of a dropped map, some
//! of it on a background thread (`safemap::settle_memory`). Measured process-wide, so this file
//! holds one test, which visits the strategies one after another with nothing else running.

mod common;

use common::alloc::{Counting, largest_freed_by, process_live};
use common::for_every_strategy_on_plain_data;
use safemap::{ConcurrentMap, Maintenance};

#[global_allocator]
static COUNTING: Counting = Counting;

type Fixed = foldhash::fast::FixedState;

/// Entries enough that the bucketed maps retire tables of 1 MiB and more on the way, and away
/// from any size where growing and reserving would pick different table sizes.
const ENTRIES: u64 = 150_000;

/// Entries for a map whose every write publishes a new version (`Maintenance::Publish`): it has
/// no table to grow out of, and each insert retires the version it replaces, so a few thousand
/// show whether replaced versions are given back as well as 150,000 would, at a twentieth of the
/// time (150,000 took 8.6 s of this suite's 12 s unoptimized, 50 s under TSAN).
const PUBLISHED_ENTRIES: u64 = 8_000;

/// How many entries to fill a map of this strategy with.
fn entries_for<M: ConcurrentMap<u64, u64>>() -> u64 {
    if M::CONSISTENCY.maintenance.contains(&Maintenance::Publish) {
        PUBLISHED_ENTRIES
    } else {
        ENTRIES
    }
}

/// The bytes the process holds once the memory being released has been freed.
fn settled_live() -> isize {
    safemap::settle_memory();
    process_live()
}

for_every_strategy_on_plain_data! {
    /// Bytes a map of `ENTRIES` holds, grown from empty or made with room for them all.
    fn bytes_of_a_filled_map(presized: bool) -> isize {
        let before = settled_live();
        let hasher = Fixed::with_seed(7);
        let entries = entries_for::<Map<u64, u64, Fixed>>();
        let map: Map<u64, u64, Fixed> = if presized {
            Map::with_capacity_and_hasher(entries as usize, hasher)
        } else {
            Map::with_hasher(hasher)
        };
        let ((), largest) = largest_freed_by(|| {
            for k in 0..entries {
                map.insert(k, k);
            }
        });
        // Unmapping a megabyte or more takes long enough to stall the insert that grew out of
        // it and every thread of the process that maps memory meanwhile: the release thread
        // frees such blocks.
        assert!(
            largest < 1 << 20,
            "an insert freed a block of {largest} bytes on the inserting thread"
        );
        let held = settled_live() - before;
        drop(map);
        let left = settled_live() - before;
        assert!(
            left <= 4096,
            "{left} bytes still live after the map of {held} bytes was dropped"
        );
        held
    }

    /// A grown map holds no more than one made at its final size: the tables it grew out of
    /// are gone.
    pub fn gives_back_the_tables_it_grew_out_of() {
        let grown = bytes_of_a_filled_map(false);
        let presized = bytes_of_a_filled_map(true);
        assert!(
            grown <= presized + presized / 10,
            "grown to {} entries: {grown} bytes live; made with room for them: {presized}",
            entries_for::<Map<u64, u64, Fixed>>()
        );
    }
}

macro_rules! in_turn {
    ([$(($module:ident, $map:ident, [$($cap:ident),*])),* $(,)?]) => {
        #[test]
        fn every_strategy_gives_back_the_memory_of_old_tables_and_dropped_maps() {
            $($module::gives_back_the_tables_it_grew_out_of();)*
        }
    };
}
safemap::strategies!(in_turn!());
