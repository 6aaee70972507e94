//! Going through a map's entries in batches (`HSCAN` over the one hash, `SCAN` over the entry
//! keys), holding nothing on the server between batches.
//!
//! Redis's scans return every entry present throughout at least once, and may return one more
//! than once (when the server's table is resized mid-scan); the encoded keys already seen are
//! remembered so each key is yielded once. An entry added or removed during the scan may or may
//! not be seen. In the key-per-entry layout a key's value is read just after its batch is listed,
//! so a key listed but removed by then is skipped.

use std::collections::{HashSet, VecDeque};

use redis::Value;

use crate::error::Error;
use crate::layout::Layout;
use crate::map::RedisMap;

/// An encoded key and its encoded value.
pub(crate) type RawEntry = (Vec<u8>, Vec<u8>);

/// Entries asked for per round trip.
const BATCH: usize = 512;

/// Encoded entries of one map, batch by batch.
pub(crate) struct Scan<'a, K, V> {
    map: &'a RedisMap<K, V>,
    /// The server's cursor; `None` once the scan came back to 0.
    cursor: Option<u64>,
    seen: HashSet<Vec<u8>>,
    batch: VecDeque<RawEntry>,
}

impl<'a, K, V> Scan<'a, K, V> {
    pub fn new(map: &'a RedisMap<K, V>) -> Self {
        Scan {
            map,
            cursor: Some(0),
            seen: HashSet::new(),
            batch: VecDeque::new(),
        }
    }

    /// The next encoded key and value, or the error that ends the scan.
    pub fn next_raw(&mut self) -> Option<Result<RawEntry, Error>> {
        loop {
            if let Some(entry) = self.batch.pop_front() {
                return Some(Ok(entry));
            }
            let cursor = self.cursor?;
            if let Err(error) = self.fetch(cursor) {
                self.cursor = None;
                return Some(Err(error));
            }
        }
    }

    fn fetch(&mut self, cursor: u64) -> Result<(), Error> {
        let mut connection = self.map.connection()?;
        let names = &self.map.names;
        let next = match names.layout() {
            Layout::OneHash => {
                let (next, flat): (u64, Vec<Vec<u8>>) = redis::cmd("HSCAN")
                    .arg(names.data())
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(BATCH)
                    .query(&mut *connection)?;
                let mut flat = flat.into_iter();
                while let (Some(key), Some(value)) = (flat.next(), flat.next()) {
                    if self.seen.insert(key.clone()) {
                        self.batch.push_back((key, value));
                    }
                }
                next
            }
            Layout::KeyPerEntry => {
                let (next, listed): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(names.entry_pattern())
                    .arg("COUNT")
                    .arg(BATCH)
                    .query(&mut *connection)?;
                let fresh: Vec<(Vec<u8>, Vec<u8>)> = listed
                    .into_iter()
                    .filter_map(|redis_key| Some((names.entry_key(&redis_key)?, redis_key)))
                    .filter(|(key, _)| self.seen.insert(key.clone()))
                    .collect();
                let mut pipe = redis::pipe();
                for (_, redis_key) in &fresh {
                    pipe.cmd("GET").arg(redis_key);
                }
                let values: Vec<Value> = if fresh.is_empty() {
                    Vec::new()
                } else {
                    pipe.query(&mut *connection)?
                };
                for ((key, _), value) in fresh.into_iter().zip(values) {
                    match value {
                        Value::BulkString(value) => self.batch.push_back((key, value)),
                        Value::Nil => {}
                        other => {
                            return Err(Error::Protocol(format!("GET answered {other:?}")));
                        }
                    }
                }
                next
            }
        };
        self.cursor = (next != 0).then_some(next);
        Ok(())
    }
}
