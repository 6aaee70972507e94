//! The differential model, written once against `TryConcurrentMap`: random operation sequences
//! against `std::collections::HashMap`, every result and the final contents compared. Run on every
//! strategy by `tests/model.rs`, and on `RedisMap` by `safemap-redis`'s `tests/model.rs`, which
//! includes this file by path.

use std::collections::HashMap;
use std::fmt::Debug;

use proptest::prelude::*;
use safemap::fallible::TryConcurrentMap;
use safemap::{Action, MapSnapshot};

/// One operation of a sequence.
#[derive(Clone, Debug)]
pub enum Op {
    Insert(u8, u16),
    Get(u8),
    Contains(u8),
    Remove(u8),
    RemoveIfEven(u8),
    GetOrInsert(u8, u16),
    ComputeAdd(u8, u16),
    ComputeRemoveOdd(u8),
    UpdateAdd(u8, u16),
    UpsertAdd(u8, u16),
    TryGetOrInsertEven(u8, u16),
    RetainBelow(u16),
    Clear,
    Len,
    Snapshot,
    ForEach,
}

/// A random operation.
pub fn op() -> impl Strategy<Value = Op> {
    // A small key space so that operations keep meeting the same keys.
    let key = 0u8..24;
    prop_oneof![
        8 => (key.clone(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k, v)),
        4 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::Contains),
        4 => key.clone().prop_map(Op::Remove),
        2 => key.clone().prop_map(Op::RemoveIfEven),
        4 => (key.clone(), any::<u16>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        4 => (key.clone(), 0u16..100).prop_map(|(k, d)| Op::ComputeAdd(k, d)),
        2 => key.clone().prop_map(Op::ComputeRemoveOdd),
        3 => (key.clone(), 0u16..100).prop_map(|(k, d)| Op::UpdateAdd(k, d)),
        3 => (key.clone(), 0u16..100).prop_map(|(k, d)| Op::UpsertAdd(k, d)),
        3 => (key, any::<u16>()).prop_map(|(k, v)| Op::TryGetOrInsertEven(k, v)),
        1 => any::<u16>().prop_map(Op::RetainBelow),
        1 => Just(Op::Clear),
        2 => Just(Op::Len),
        1 => Just(Op::Snapshot),
        1 => Just(Op::ForEach),
    ]
}

fn sorted(entries: impl IntoIterator<Item = (u8, u16)>) -> Vec<(u8, u16)> {
    let mut v: Vec<_> = entries.into_iter().collect();
    v.sort_unstable();
    v
}

/// Applies `op` to both and asserts the results agree.
fn step<M>(map: &M, model: &mut HashMap<u8, u16>, op: &Op)
where
    M: TryConcurrentMap<u8, u16>,
    M::Error: Debug,
{
    match *op {
        Op::Insert(k, v) => assert_eq!(map.insert(k, v).unwrap(), model.insert(k, v)),
        Op::Get(k) => assert_eq!(map.get(&k).unwrap(), model.get(&k).copied()),
        Op::Contains(k) => assert_eq!(map.contains_key(&k).unwrap(), model.contains_key(&k)),
        Op::Remove(k) => assert_eq!(map.remove(&k).unwrap(), model.remove(&k)),
        Op::RemoveIfEven(k) => {
            let expected = match model.get(&k) {
                Some(v) if v % 2 == 0 => model.remove(&k),
                _ => None,
            };
            assert_eq!(map.remove_if(&k, |_, v| v % 2 == 0).unwrap(), expected);
        }
        Op::GetOrInsert(k, v) => {
            assert_eq!(
                map.get_or_insert_with(k, || v).unwrap(),
                *model.entry(k).or_insert(v)
            );
        }
        Op::ComputeAdd(k, d) => {
            let old = model.get(&k).copied();
            model.insert(k, old.unwrap_or(0).wrapping_add(d));
            let displaced = map
                .compute(k, |v| Action::Set(v.copied().unwrap_or(0).wrapping_add(d)))
                .unwrap();
            assert_eq!(displaced, old);
        }
        Op::ComputeRemoveOdd(k) => {
            let expected = match model.get(&k) {
                Some(v) if v % 2 == 1 => model.remove(&k),
                _ => None,
            };
            let displaced = map
                .compute(k, |v| match v {
                    Some(v) if v % 2 == 1 => Action::Remove,
                    _ => Action::Keep,
                })
                .unwrap();
            assert_eq!(displaced, expected);
        }
        Op::UpdateAdd(k, d) => {
            let expected = model.get_mut(&k).map(|v| {
                *v = v.wrapping_add(d);
                *v
            });
            let changed = map
                .update(&k, |v| {
                    *v = v.wrapping_add(d);
                    *v
                })
                .unwrap();
            assert_eq!(changed, expected);
        }
        Op::UpsertAdd(k, d) => {
            let slot = model.entry(k).or_insert(d);
            *slot = slot.wrapping_add(1);
            let result = map
                .update_or_insert_with(
                    k,
                    || d,
                    |v| {
                        *v = v.wrapping_add(1);
                        *v
                    },
                )
                .unwrap();
            assert_eq!(result, *slot);
        }
        Op::TryGetOrInsertEven(k, v) => {
            // An odd value is a failed initializer: nothing is stored.
            let expected = match model.get(&k) {
                Some(present) => Ok(*present),
                None if v % 2 == 0 => Ok(*model.entry(k).or_insert(v)),
                None => Err(v),
            };
            let made = map
                .try_get_or_insert_with(k, || if v % 2 == 0 { Ok(v) } else { Err(v) })
                .unwrap();
            assert_eq!(made, expected);
        }
        Op::RetainBelow(limit) => {
            model.retain(|_, v| *v < limit);
            map.retain(|_, v| *v < limit).unwrap();
        }
        Op::Clear => {
            model.clear();
            map.clear().unwrap();
        }
        Op::Len => assert_eq!(map.len().unwrap(), model.len()),
        Op::Snapshot => {
            let view = map.snapshot().unwrap();
            assert_eq!(view.len(), model.len());
            assert_eq!(
                sorted(view.iter().map(|(k, v)| (*k, *v))),
                sorted(model.iter().map(|(k, v)| (*k, *v)))
            );
        }
        Op::ForEach => {
            let mut seen = Vec::new();
            map.for_each(|k, v| seen.push((*k, *v))).unwrap();
            assert_eq!(sorted(seen), sorted(model.iter().map(|(k, v)| (*k, *v))));
        }
    }
}

/// Runs `ops` on `map` (empty) and on a `HashMap`, asserting that every result and the final
/// contents agree.
pub fn matches_the_model<M>(map: &M, ops: &[Op])
where
    M: TryConcurrentMap<u8, u16>,
    M::Error: Debug,
{
    let mut model = HashMap::new();
    for op in ops {
        step(map, &mut model, op);
    }
    assert_eq!(map.len().unwrap(), model.len());
    for (k, v) in &model {
        assert_eq!(map.get(k).unwrap(), Some(*v));
    }
}
