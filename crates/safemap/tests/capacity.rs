//! Capacity, for every strategy: `with_capacity` and `reserve` make room ahead where the strategy
//! declares `reserves` (inserting that many entries then allocates nothing), and `shrink_to_fit`
//! really gives memory back, and an empty or tiny map stays small (a counting allocator measures
//! the map's live bytes).

mod common;

use common::alloc::{Counting, allocated_by, live};
use common::for_every_strategy_on_plain_data;
use safemap::ConcurrentMap;

#[global_allocator]
static COUNTING: Counting = Counting;

/// A hasher with a fixed seed, so that keys spread over shards the same way every run.
type Fixed = foldhash::fast::FixedState;

fn fixed() -> Fixed {
    foldhash::fast::FixedState::with_seed(0x5eed)
}

const ENTRIES: u64 = 20_000;

/// Hashes a `u64` key to one of 16 values, so that keys pile up in a few chains (or probe runs)
/// of over a hundred entries each.
#[derive(Clone, Default)]
struct Piling;

struct PilingHasher(u64);

impl std::hash::BuildHasher for Piling {
    type Hasher = PilingHasher;
    fn build_hasher(&self) -> PilingHasher {
        PilingHasher(0)
    }
}

impl std::hash::Hasher for PilingHasher {
    fn finish(&self) -> u64 {
        (self.0 % 16).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(byte));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The live bytes `make` leaves behind, with the std calls a map's first construction makes
/// (reading the core count) done beforehand, so that only the map is counted.
fn live_bytes_of<T>(make: impl FnOnce() -> T) -> (T, isize) {
    let _ = safemap::default_shard_count();
    let before = live();
    let made = make();
    (made, live() - before)
}

/// What an empty map may hold: a pointer per shard, a cache line per reader slot (at most 4 per
/// core), and 1 KiB for the rest. Each shard itself (256 bytes or more) is made by its first
/// write.
fn empty_budget() -> isize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (8 * safemap::default_shard_count() + 128 * (4 * cores).max(8) + 1024) as isize
}

for_every_strategy_on_plain_data! {
    fn declared() -> safemap::Consistency {
        <Map<u64, u64> as ConcurrentMap<u64, u64>>::CONSISTENCY
    }

    /// What a map's first write may add to an empty map: one shard or a table of a few slots
    /// (or, for a map with O(1) snapshots, its trie's root of 256 slots and one leaf). The first
    /// write of a map that frees after its readers also makes its collector's per-thread slots
    /// (seize's, 16 KiB on every machine), as `Consistency::frees_after_readers` says.
    fn one_entry_budget() -> isize {
        let root = if declared().snapshot_cost == safemap::Cost::Constant { 2048 + 64 } else { 0 };
        root + if declared().frees_after_readers { 2048 + 16 * 1024 } else { 2048 }
    }

    /// Inserting `ENTRIES` keys into `m` allocates nothing where room was made ahead.
    fn fills_without_allocating(m: &Map<u64, u64, Fixed>) {
        let ((), allocated) = allocated_by(|| {
            for k in 0..ENTRIES {
                m.insert(k, k);
            }
        });
        if declared().reserves {
            assert_eq!(allocated, 0, "inserts into reserved room allocated");
        } else {
            assert!(allocated > 0);
        }
        assert!(m.capacity() >= m.len());
    }

    #[test]
    fn reserve_makes_room_ahead_where_declared() {
        let m: Map<u64, u64, Fixed> = Map::with_hasher(fixed());
        m.reserve(ENTRIES as usize);
        if declared().reserves {
            assert!(m.capacity() >= ENTRIES as usize, "capacity {}", m.capacity());
        } else {
            // SnapshotMap's capacity is its length; ScalableMap's table has room, but each entry
            // is an allocation of its own.
            assert!(m.capacity() == 0 || m.capacity() >= ENTRIES as usize, "capacity {}", m.capacity());
        }
        fills_without_allocating(&m);
    }

    /// On a map that holds entries, `reserve` makes room for that many more beside them, where
    /// the map's capacity is more than its length.
    #[test]
    fn reserve_on_a_filled_map_makes_room_beside_its_entries() {
        let m: Map<u64, u64, Fixed> = Map::with_hasher(fixed());
        for k in ENTRIES..ENTRIES + 1000 {
            m.insert(k, k);
        }
        m.reserve(ENTRIES as usize);
        let (len, capacity) = (m.len(), m.capacity());
        assert!(
            capacity >= len + ENTRIES as usize || !declared().reserves && capacity == len,
            "{len} entries, capacity {capacity} after reserving {ENTRIES} more"
        );
        fills_without_allocating(&m);
    }

    #[test]
    fn with_capacity_makes_room_ahead_where_declared() {
        let m: Map<u64, u64, Fixed> = Map::with_capacity_and_hasher(ENTRIES as usize, fixed());
        fills_without_allocating(&m);
        assert!(Map::<u64, u64>::with_capacity(10).is_empty());
    }

    #[test]
    fn shrink_to_fit_gives_the_memory_back() {
        let start = live();
        // Made at its full size, so that no table was retired on the way: a large one is freed
        // on a background thread, which this thread's count does not see (`tests/release.rs`
        // measures that).
        let m: Map<u64, u64, Fixed> = Map::with_capacity_and_hasher(100_000, fixed());
        for k in 0..100_000 {
            m.insert(k, k);
        }
        let full = live() - start;
        m.retain(|k, _| *k < 10);
        let shrunk_before = live() - start;
        m.shrink_to_fit();
        // A read between the shrink and the count, as readers do (a SnapshotMap's reader must
        // not keep the old leaves alive once it has left them).
        assert_eq!(m.get(&3), Some(3));
        let after = live() - start;
        // What a map made with those ten entries holds (its collector, its root): no shrink
        // gives that back.
        let (fresh, least) = live_bytes_of(|| {
            let fresh: Map<u64, u64, Fixed> = Map::with_hasher(fixed());
            (0..10).for_each(|k| { fresh.insert(k, k); });
            fresh
        });
        // Most of the memory is gone, and the shrink gave back most of what `retain` left beyond
        // that (all of it where `retain` keeps the table; ScalableMap's `retain` frees each entry
        // at once, and a SnapshotMap's the leaves it empties).
        assert!(
            after <= full / 5 && shrunk_before - after >= (shrunk_before - least) * 8 / 10,
            "live bytes: {full} full, {shrunk_before} after retain, {after} after shrink_to_fit, \
             {least} for a map made with the ten entries left"
        );
        drop(fresh);
        assert_eq!(m.len(), 10);
        assert!((0..10).all(|k| m.get(&k) == Some(k)));
        assert!(m.capacity() >= 10);
    }

    /// The live bytes a map made with room for `entries`, filled, emptied entry by entry (not by
    /// `clear`) and shrunk holds.
    fn emptied_and_shrunk(entries: u64) -> isize {
        let start = live();
        let m: Map<u64, u64, Fixed> = Map::with_capacity_and_hasher(entries as usize, fixed());
        for k in 0..entries {
            m.insert(k, k);
        }
        m.retain(|_, _| false);
        m.shrink_to_fit();
        assert!(m.is_empty());
        let held = live() - start;
        m.insert(1, 1);
        assert_eq!(m.get(&1), Some(1));
        held
    }

    /// `shrink_to_fit` of a map emptied by removals gives back all its tables, trie nodes
    /// included: what stays (the shards `with_capacity` made, reader slots) does not grow with
    /// the entries the map held. 20,000 entries grow a `SnapshotMap` trie a level deeper than
    /// 2,000 do.
    #[test]
    fn shrink_to_fit_of_an_emptied_map_gives_back_its_tables() {
        let few = emptied_and_shrunk(2_000);
        let many = emptied_and_shrunk(ENTRIES);
        assert!(
            many <= few + 1024,
            "emptied and shrunk: {many} bytes left after {ENTRIES} entries, {few} after 2,000"
        );
    }

    #[test]
    fn an_empty_map_and_a_one_entry_map_stay_small() {
        let (map, empty) = live_bytes_of(Map::<u64, u64>::new);
        assert!(empty <= empty_budget(), "an empty map holds {empty} bytes");
        let ((), one) = live_bytes_of(|| {
            map.insert(1, 1);
        });
        assert!(one <= one_entry_budget(), "the first entry took {one} bytes");
        let (map, hundred) = live_bytes_of(|| {
            let m = Map::<u64, u64>::new();
            (0..100).for_each(|k| { m.insert(k, k); });
            m
        });
        eprintln!("{}: empty {empty} B, first entry {one} B, 100 entries {hundred} B", module_path!());
        // A read of a shard that was never made finds nothing, and makes nothing.
        let ((), read) = live_bytes_of(|| assert_eq!(Map::<u64, u64>::new().get(&7), None));
        assert!(read <= 0, "{read}");
        drop(map);
    }

    /// A map made roomy ahead iterates every entry once, its keys spread or piled into a few long
    /// chains: in the ScalableMaps, a table of `2^16` chains or more, where an iteration
    /// prefetches what the head line of a chain ahead links to (entries, overflow lines).
    #[test]
    fn a_roomy_map_iterates_every_entry_once() {
        fn check<S: std::hash::BuildHasher + Clone>(hasher: S, entries: u64) {
            let m: Map<u64, u64, S> = Map::with_capacity_and_hasher(400_000, hasher);
            (0..entries).for_each(|k| { m.insert(k, 2 * k); });
            let mut keys: Vec<u64> = m.iter().map(|(k, v)| { assert_eq!(v, 2 * k); k }).collect();
            keys.sort_unstable();
            assert_eq!(keys, (0..entries).collect::<Vec<_>>());
        }
        check(fixed(), ENTRIES);
        check(Piling, 2_000);
    }

    /// An iteration copies one part at a time into one buffer it keeps: all of it allocates
    /// a few times what the largest part holds (the buffer doubles as it meets larger parts), not
    /// what the map holds, so a copy taken under a lock seldom allocates there. (Where the map is
    /// one part, the two are the same.)
    #[test]
    fn iteration_reuses_one_buffer_for_every_part() {
        let m: Map<u64, u64, Fixed> = Map::with_hasher(fixed());
        (0..ENTRIES).for_each(|k| { m.insert(k, k); });
        let largest = m.shard_lengths().into_iter().max().unwrap() * size_of::<(u64, u64)>();
        // A `for_each` stronger than `iter` visits a snapshot instead, whose copy is its
        // declared cost.
        let passes: &[&str] = if declared().for_each == declared().iter { &["iter", "for_each"] } else { &["iter"] };
        for &pass in passes {
            let (seen, allocated) = allocated_by(|| match pass {
                "iter" => m.iter().count(),
                _ => { let mut n = 0; m.for_each(|_, _| n += 1); n }
            });
            assert_eq!(seen, ENTRIES as usize);
            assert!(allocated <= 4 * largest + 4096, "{pass} allocated {allocated} bytes; the largest part holds {largest}");
        }
    }
}
