//! Where a map's entries and leases live on the server, and the contract each layout can keep.
//!
//! Keys and values are encoded with postcard. A map named `users`:
//! - [`Layout::OneHash`]: every entry is a field of the hash `safemap:{users}:data`, the field
//!   being the encoded key; leases are fields of `safemap:{users}:lease-tokens` with expiries in
//!   the sorted set `safemap:{users}:lease-expiry`. The shared hash tag `{users}` keeps the three
//!   on one node, so a script sees the whole map at once.
//! - [`Layout::KeyPerEntry`]: an entry is the string `safemap:users:{<hex of the encoded key>}`,
//!   its lease `safemap:users:{<hex>}:lease`. The hash tag is the entry's own, so entries spread
//!   over a cluster's nodes, and no script ever sees more than one entry.
//!
//! This version connects to one server (or a proxy in front of a cluster). The key-per-entry
//! layout is the one a cluster client will need, since every script stays within one hash slot,
//! and it is checked here on a single server; a cluster client is not built yet.

use safemap::{Blocks, Consistency, Cost, Once, WholeMap};

/// How a [`RedisMap`](crate::RedisMap) lays its entries out on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One Redis hash holds the whole map: `len`, `clear`, `for_each` and `snapshot` are atomic,
    /// and the whole map lives on one node.
    OneHash,
    /// One Redis key per entry, laid out so that it can spread over a Redis Cluster (this version
    /// still talks to one server), and whole-map operations
    /// go key by key (`SCAN`), so they are weakly consistent and `len` is an estimate.
    KeyPerEntry,
}

impl Layout {
    /// What a map in this layout guarantees, operation by operation.
    pub const fn consistency(self) -> Consistency {
        let (whole, len) = match self {
            Layout::OneHash => (WholeMap::Atomic, WholeMap::Atomic),
            Layout::KeyPerEntry => (WholeMap::WeaklyConsistent, WholeMap::Estimate),
        };
        Consistency {
            len,
            for_each: whole,
            // Both go through the entries in batches (`HSCAN` or `SCAN`), holding nothing.
            iter: WholeMap::WeaklyConsistent,
            retain: WholeMap::WeaklyConsistent,
            clear: whole,
            snapshot: whole,
            snapshot_cost: Cost::Linear,
            // Readers ignore leases: a closure's result takes effect when it commits.
            closure_blocks_readers: Blocks::Nothing,
            closure_blocks_writers: Blocks::Key,
            // A value is changed on the client and written back.
            update_in_place: false,
            reserves: false,
            maintenance: &[],
            once: Once::WithinLease,
            // Keys are encoded, never hashed by the map.
            rehashes_keys: false,
            // The server frees what a command removes.
            frees_after_readers: false,
        }
    }
}

/// The Redis names of one map.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    layout: Layout,
    name: String,
}

/// Where one entry is: the keys a script is given, and its `ARGV[1]`.
pub(crate) struct Place {
    pub keys: Vec<Vec<u8>>,
    pub field: Vec<u8>,
}

impl Names {
    /// The names of map `name`, which must be non-empty and made of ASCII letters, digits, `_`,
    /// `-` and `.` (so that it needs no escaping in a key pattern and cannot close a hash tag).
    pub fn new(layout: Layout, name: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
        if name.is_empty() || !name.chars().all(allowed) {
            return Err(format!(
                "map name {name:?}: use one or more ASCII letters, digits, '_', '-' or '.'"
            ));
        }
        Ok(Names {
            layout,
            name: name.to_string(),
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The one-hash layout's hash of entries.
    pub fn data(&self) -> String {
        format!("safemap:{{{}}}:data", self.name)
    }

    /// The one-hash layout's three keys.
    pub fn hash_keys(&self) -> Vec<Vec<u8>> {
        ["data", "lease-tokens", "lease-expiry"]
            .map(|part| format!("safemap:{{{}}}:{part}", self.name).into_bytes())
            .into()
    }

    /// The key-per-entry layout's prefix of entry keys, up to the hash tag's `{`.
    fn entry_prefix(&self) -> String {
        format!("safemap:{}:{{", self.name)
    }

    /// The key-per-entry layout's `SCAN` pattern for entries (leases end in `:lease`, not `}`).
    pub fn entry_pattern(&self) -> String {
        format!("{}*}}", self.entry_prefix())
    }

    /// The encoded key inside a key-per-entry key, or `None` if `redis_key` is not one.
    pub fn entry_key(&self, redis_key: &[u8]) -> Option<Vec<u8>> {
        let hex = redis_key
            .strip_prefix(self.entry_prefix().as_bytes())?
            .strip_suffix(b"}")?;
        hex::decode(hex).ok()
    }

    /// Where the entry of the encoded key `key` lives.
    pub fn place(&self, key: &[u8]) -> Place {
        match self.layout {
            Layout::OneHash => Place {
                keys: self.hash_keys(),
                field: key.to_vec(),
            },
            Layout::KeyPerEntry => {
                let entry = format!("{}{}}}", self.entry_prefix(), hex::encode(key));
                let lease = format!("{entry}:lease");
                Place {
                    keys: vec![entry.into_bytes(), lease.into_bytes()],
                    field: Vec::new(),
                }
            }
        }
    }

    /// How an error names the entry of encoded key `key`.
    pub fn describe(&self, key: &[u8]) -> String {
        match self.layout {
            Layout::OneHash => format!("field {} of hash {}", hex::encode(key), self.data()),
            Layout::KeyPerEntry => String::from_utf8_lossy(&self.place(key).keys[0]).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_need_escaping_are_refused() {
        for bad in ["", "a{b", "a}b", "a*", "a:b", "a b", "é"] {
            assert!(Names::new(Layout::OneHash, bad).is_err(), "{bad:?}");
        }
        assert!(Names::new(Layout::KeyPerEntry, "users-v2.eu_1").is_ok());
    }

    #[test]
    fn an_entry_key_round_trips_and_its_lease_does_not_match_the_pattern() {
        let names = Names::new(Layout::KeyPerEntry, "users").unwrap();
        let place = names.place(&[0x7b, 0x00, 0x7d]);
        assert_eq!(place.keys[0], b"safemap:users:{7b007d}");
        assert_eq!(
            names.entry_key(&place.keys[0]),
            Some(vec![0x7b, 0x00, 0x7d])
        );
        assert_eq!(names.entry_key(&place.keys[1]), None);
        assert_eq!(names.entry_pattern(), "safemap:users:{*}");
    }
}
