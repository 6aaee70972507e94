//! `serde` support, behind the `serde` feature: every map and every snapshot serializes as a
//! map of its entries, and every map deserializes from one.
//!
//! A map serializes from a [`snapshot`](ConcurrentMap::snapshot), so the output is one instant
//! of the map in every strategy, whatever writers do meanwhile: O(1) to take for a
//! `SnapshotMap`, an O(n) copy for the others (which is the price of a consistent view there).
//! Deserializing builds a new map and returns it only once every entry has been read, so bad
//! input yields the format's error and no map; a key that appears twice keeps its last value, as
//! std's `HashMap` does. A `SnapshotMap` publishes the whole input as one version.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::front::SafeMap;
use crate::map::{ConcurrentMap, MapSnapshot};
use crate::raw::core::Core;
use crate::raw::frozen::TableSnapshot;
use crate::raw::versioned::TrieSnapshot;

/// Most entries a map reserves room for up front from an input's own size hint, so that a short
/// malicious input claiming billions of entries cannot make it allocate them.
const TRUSTED_HINT: usize = 4096;

impl<C, S> Serialize for SafeMap<C, S>
where
    C: Core,
    C::Key: Serialize + Clone,
    C::Value: Serialize + Clone,
    S: BuildHasher + Clone,
{
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        entries_of(&self.snapshot(), serializer)
    }
}

impl<K: Hash + Eq + Serialize, V: Serialize, S: BuildHasher> Serialize for TableSnapshot<K, V, S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        entries_of(self, serializer)
    }
}

impl<K: Hash + Eq + Serialize, V: Serialize, S: BuildHasher> Serialize for TrieSnapshot<K, V, S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        entries_of(self, serializer)
    }
}

/// A snapshot's entries as a map, with its length up front (binary formats need it).
fn entries_of<K, V, Z>(view: &impl MapSnapshot<K, V>, serializer: Z) -> Result<Z::Ok, Z::Error>
where
    K: Serialize,
    V: Serialize,
    Z: Serializer,
{
    let mut out = serializer.serialize_map(Some(view.len()))?;
    for (key, value) in view.iter() {
        out.serialize_entry(key, value)?;
    }
    out.end()
}

impl<'de, C: Core, S> Deserialize<'de> for SafeMap<C, S>
where
    Entries<C, S>: Visitor<'de, Value = Self>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// Reads a map's entries, then builds the map from all of them at once.
struct Entries<C, S>(PhantomData<fn() -> (C, S)>);

impl<'de, C, S> Visitor<'de> for Entries<C, S>
where
    C: Core,
    C::Key: Deserialize<'de>,
    C::Value: Deserialize<'de>,
    S: BuildHasher + Default,
{
    type Value = SafeMap<C, S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let hint = access.size_hint().unwrap_or(0).min(TRUSTED_HINT);
        let mut entries = Vec::with_capacity(hint);
        while let Some(entry) = access.next_entry()? {
            entries.push(entry);
        }
        let mut map = SafeMap::with_capacity_and_hasher(entries.len(), S::default());
        map.extend(entries);
        Ok(map)
    }
}
