//! Tests that run on both kinds of line (`bucket.rs`, `inline.rs`) through the [`Line`] trait.

use std::sync::atomic::Ordering::Relaxed;

use super::Reads;
use super::bucket::Bucket;
use super::inline::Inline;
use super::line::{BEYOND, Chain, Entry, Found, Head, Line, Stored, Unit, beyond, tag_of};
use crate::raw::entry::Lookup;
use crate::raw::gate::Gate;
use crate::raw::reclaim::{Collector, ENTRY_BATCH};

/// A hash for test key `key`, its top bits (the tag's) spread.
fn spread(key: u64) -> u64 {
    key.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A probe for test key `key`.
fn probe(key: &u64) -> Lookup<'_, u64> {
    Lookup {
        hash: spread(*key),
        key,
    }
}

/// An empty chain of `L` lines, locked by the test, with a gate and a collector to read it by.
struct OnChain<'a, L: Line<u64, u64>> {
    line: &'a L,
    head: Head<'a, L>,
    chain: Chain<'a, L>,
    gate: &'a Gate,
    collector: &'a Collector,
}

impl<L: Line<u64, u64>> OnChain<'_, L> {
    /// A reader of the chain, entered now.
    fn reader(&self) -> L::Reader<'_> {
        <L::Reader<'_> as Reads>::enter(|| Some(self.collector), self.gate).unwrap()
    }
}

/// Runs `test` on an empty chain of `L` lines with `spares` overflow lines to link, and a way to
/// add test key `key` with the value `key * 10`, which says whether it linked a spare.
fn on_a_chain<L: Line<u64, u64>>(
    spares: u64,
    test: impl FnOnce(&OnChain<'_, L>, &mut dyn FnMut(u64) -> bool),
) {
    let (line, block) = (L::new(), L::fresh_block());
    let head = Head::new(&line, &block);
    // SAFETY: this test alone reaches the chain.
    let chain = unsafe { Chain::locked(head) };
    let units: Vec<Unit<L>> = (0..spares).map(|_| Unit::fresh(L::new())).collect();
    let mut spares = units.iter();
    let mut add = |key: u64| {
        let entry = Entry {
            hash: spread(key),
            key,
            value: key * 10,
        };
        L::add(chain, L::item(entry), || spares.next().expect("a spare"))
    };
    let (gate, collector) = (Gate::new(), Collector::with_batch(ENTRY_BATCH));
    let on = OnChain {
        line: &line,
        head,
        chain,
        gate: &gate,
        collector: &collector,
    };
    test(&on, &mut add);
}

/// The summary bits that the entries in the chain's overflow lines stand for, as its lock
/// holder lists them.
fn overflow_tags<L: Line<u64, u64>>(chain: Chain<'_, L>) -> u64 {
    L::occupied(chain)
        .filter(|(slot, _)| !slot.in_head())
        .fold(0, |bits, (_, entry)| {
            bits | beyond(tag_of(spread(*entry.key())))
        })
}

/// A chain of `L` lines longer than one line links overflow lines, and every entry stays
/// findable, by readers and by the lock holder, and is listed once; drained, the chain is empty
/// and its summary clear.
fn a_chain_links_overflow_lines_and_finds_every_entry<L: Line<u64, u64>>() {
    let entries = 20u64;
    on_a_chain::<L>(entries, |on, add| {
        let (head, chain) = (on.head, on.chain);
        let linked = (0..entries).filter(|&key| add(key)).count();
        assert_eq!(
            linked,
            20usize.div_ceil(L::SLOTS) - 1,
            "20 entries take as many lines as their slots need"
        );
        let reader = on.reader();
        for key in 0..entries {
            let Found::Entry(found) = L::find(head, &reader, probe(&key)) else {
                panic!("{key} not found by a reader");
            };
            assert_eq!(*found.value(), key * 10);
            let (_, located) = L::locate(chain, probe(&key)).expect("located");
            assert_eq!(*located.value(), key * 10);
        }
        assert!(matches!(L::find(head, &reader, probe(&99)), Found::Absent));
        let mut listed = Vec::new();
        L::read_all(head, &reader, |entry| listed.push(*entry.key())).expect("not moved");
        listed.sort_unstable();
        assert_eq!(listed, (0..entries).collect::<Vec<_>>());
        let mut drained: Vec<u64> = L::drain(chain).into_iter().map(|(k, _)| k).collect();
        drained.sort_unstable();
        assert_eq!(drained, (0..entries).collect::<Vec<_>>());
        let mut after = 0;
        L::read_all(head, &reader, |_| after += 1).expect("not moved");
        assert_eq!(after, 0, "drained lines are empty");
        assert_eq!(
            on.line.meta().load(Relaxed) & BEYOND,
            0,
            "nothing left to summarize"
        );
    });
}

#[test]
fn inline_chains_link_overflow_lines() {
    a_chain_links_overflow_lines_and_finds_every_entry::<Inline<u64, u64>>();
}

#[test]
fn bucket_chains_link_overflow_lines() {
    a_chain_links_overflow_lines_and_finds_every_entry::<Bucket<u64, u64>>();
}

/// A chain of `L` lines in which keys `0..30` come and go: after each change, the head's
/// summary is exactly its overflow lines' tags (a bit missing would hide an entry from
/// lookups, one left over would send lookups on in vain), and readers and the lock holder
/// find exactly the keys present. Then, with the summary cleared behind the lines' backs,
/// an overflow entry is out of both's sight: lookups trust it.
fn summaries_track_the_overflow_lines<L: Line<u64, u64>>() {
    let entries = 30u64;
    on_a_chain::<L>(entries, |on, add| {
        let (head, chain) = (on.head, on.chain);
        let summary = || on.line.meta().load(Relaxed) & BEYOND;
        for key in 0..entries {
            add(key);
            assert_eq!(summary(), overflow_tags(chain), "after adding {key}");
        }
        assert_ne!(summary(), 0, "30 entries overflow the head");
        // Removed from the last key back, so that the overflow lines empty first.
        for removed in (0..entries).rev() {
            let (slot, _) = L::locate(chain, probe(&removed)).expect("present");
            let unlinked = L::remove(slot);
            // SAFETY: taken out by this test's write, once.
            unsafe { L::retire(|| on.collector, unlinked) };
            assert_eq!(summary(), overflow_tags(chain), "after removing {removed}");
            let reader = on.reader();
            for key in 0..entries {
                let found = L::find(head, &reader, probe(&key));
                assert_eq!(
                    matches!(found, Found::Entry(_)),
                    key < removed,
                    "read {key}"
                );
                let located = L::locate(chain, probe(&key));
                assert_eq!(located.is_some(), key < removed, "locate {key}");
            }
        }
        assert_eq!(summary(), 0);
        for key in 0..10 {
            add(key);
        }
        let last = 9;
        assert!(L::locate(chain, probe(&last)).is_some());
        on.line.meta().fetch_and(!BEYOND, Relaxed);
        let reader = on.reader();
        let found = L::find(head, &reader, probe(&last));
        assert!(
            matches!(found, Found::Absent),
            "a reader went past the summary"
        );
        assert!(
            L::locate(chain, probe(&last)).is_none(),
            "locate went past it"
        );
        assert_eq!(L::drain(chain).len(), 10);
    });
}

#[test]
fn inline_summaries_track_the_overflow_lines() {
    summaries_track_the_overflow_lines::<Inline<u64, u64>>();
}

#[test]
fn bucket_summaries_track_the_overflow_lines() {
    summaries_track_the_overflow_lines::<Bucket<u64, u64>>();
}

/// Each of the 128 tag values stands for one of the six summary bits, and each bit for 21 or
/// 22 of them, so a summary filters as much for every tag.
#[test]
fn the_summary_bits_share_the_tags_evenly() {
    let mut per_bit = [0; 64];
    for tag in 0x80..=0xffu8 {
        let bit = beyond(tag);
        assert_eq!(bit.count_ones(), 1);
        assert_eq!(bit & !BEYOND, 0, "{tag:#x}");
        per_bit[bit.trailing_zeros() as usize] += 1;
    }
    assert!(
        per_bit[56..62].iter().all(|n| (21..=22).contains(n)),
        "{per_bit:?}"
    );
}
