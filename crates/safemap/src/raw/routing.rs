//! How a key's hash is split between the parts of a map: which shard holds it, which bits a
//! trie's branches use, and which bits are left to the hashbrown table that finally holds it.
//!
//! # Bit layout
//! hashbrown tags each entry's control byte with the hash's top 7 bits (57..64) and probes with
//! its low bits. So the parts above a table take their bits just below the tag and leave both
//! ends alone:
//! - a shard index takes `log2(shards)` bits below the tag, bits `57 - log2(shards)..57`;
//! - a trie branch at depth `d` takes the 4 bits `57 - 4 (d + 1)..57 - 4 d` (`raw::trie`).
//!
//! At most [`MAX_SHARDS`] shards, so a shard index uses bits 41..57 at most and a table keeps 41
//! low bits to probe with, more than any table in memory has buckets.

/// Most shards a map may have: 16 bits of shard index, leaving a table the low 41 bits.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

/// The hash's top bits that hashbrown keeps for its control bytes.
pub(crate) const TAG_BITS: u32 = 7;

/// Picks a shard from a hash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Routing {
    shift: u32,
    // Invariant: mask + 1 is the shard count, a power of two no larger than MAX_SHARDS.
    mask: usize,
}

impl Routing {
    /// # Panics
    /// If `shards` is zero, not a power of two, or above [`MAX_SHARDS`].
    pub(crate) fn new(shards: usize) -> Self {
        assert!(
            shards.is_power_of_two() && shards <= MAX_SHARDS,
            "safemap: shard count must be a power of two between 1 and {MAX_SHARDS}, got {shards}"
        );
        Routing {
            shift: 64 - TAG_BITS - shards.trailing_zeros(),
            mask: shards - 1,
        }
    }

    /// The shard count.
    pub(crate) fn shards(self) -> usize {
        self.mask + 1
    }

    /// The shard holding `hash`: always below the shard count.
    #[inline]
    pub(crate) fn shard(self, hash: u64) -> usize {
        (hash >> self.shift) as usize & self.mask
    }
}

/// The default shard count: the next power of two at or above sixteen times the available
/// parallelism, so that threads rarely meet on a shard.
///
/// Sixteen rather than dashmap's four, by measurement: every read takes its shard's lock word
/// exclusively in cache, so two threads touching one shard in turn bounce that line between
/// cores. With 32 shards instead of 8 on 2 cores, ShardedMap at 2 threads went from 0.95-1.12x
/// dashmap to 1.08-1.50x on ReadHeavy, Exchange and RapidGrow
/// (`safemap-bench --quick --reps 7 --contestants ShardedMap,dashmap`, two runs each). A shard
/// costs 256 bytes once a write makes it (its lock and table header on one cache-padded line, its
/// probe hint on another), and a pointer before.
pub fn default_shard_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (16 * cores).next_power_of_two().min(MAX_SHARDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_bits_stay_clear_of_the_tag_and_the_low_bits() {
        for shards in [1, 2, 64, MAX_SHARDS] {
            let routing = Routing::new(shards);
            let used = (0..64)
                .map(|bit| 1u64 << bit)
                .filter(|&bit| routing.shard(bit) != 0)
                .fold(0u64, |all, bit| all | bit);
            let bits = shards.trailing_zeros();
            assert_eq!(used.count_ones(), bits, "{shards} shards");
            if bits > 0 {
                assert_eq!(
                    used.leading_zeros(),
                    TAG_BITS,
                    "{shards} shards touch the tag"
                );
                assert!(used.trailing_zeros() >= 41, "{shards} shards take low bits");
            }
        }
    }

    /// Sequential integer keys, under the default hasher's algorithm with 5,000 random seeds:
    /// no seed puts more than twice its share in a shard. (foldhash's `fast` variant, the
    /// default before, put over twice the share in one shard for 46 of 20,000 seeds, and once
    /// every key in one.)
    #[test]
    fn sequential_keys_spread_over_the_shards_for_every_seed() {
        use std::hash::{Hash, Hasher};
        // The seeded form of the default hasher; this line fails to compile if the default
        // changes, so that the test is redone for the new one.
        let _: foldhash::quality::RandomState = crate::map::DefaultHashBuilder::default();
        let routing = Routing::new(32);
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let (shared, per_hasher) = (foldhash::SharedSeed::from_u64(random()), random());
            let hash = |key: u64| {
                let mut hasher = foldhash::quality::FoldHasher::with_seed(per_hasher, &shared);
                key.hash(&mut hasher);
                hasher.finish()
            };
            let mut counts = [0u32; 32];
            for key in 0..4096u64 {
                counts[routing.shard(hash(key))] += 1;
            }
            let fullest = counts.iter().max().copied().unwrap_or(0);
            assert!(
                fullest <= 2 * 4096 / 32,
                "a shard holds {fullest} of 4096: {counts:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn a_shard_count_past_the_layout_is_refused() {
        Routing::new(MAX_SHARDS * 2);
    }
}
