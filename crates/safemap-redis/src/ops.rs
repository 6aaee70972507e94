//! [`RedisMap`]'s [`TryConcurrentMap`] operations, each one script or command on the server, or a
//! lease around a closure run here.

use std::collections::HashMap;
use std::hash::{Hash, RandomState};

use safemap::Equivalent;

use safemap::fallible::TryConcurrentMap;
use safemap::{Action, Consistency, MapSnapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::layout::Layout;
use crate::map::{Claimed, RedisMap, encode};
use crate::scan::Scan;

/// A copy of a [`RedisMap`]'s entries, taken by
/// [`snapshot`](TryConcurrentMap::snapshot): of one instant in the one-hash layout, key by key
/// in the key-per-entry layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSnapshot<K: Hash + Eq, V>(Entries<K, V>);

/// A snapshot's entries: hashbrown's map, which finds a key by any [`Equivalent`] form of it.
type Entries<K, V> = hashbrown::HashMap<K, V, RandomState>;

impl<K: Hash + Eq, V> RedisSnapshot<K, V> {
    /// The entries, by value.
    pub fn into_inner(self) -> HashMap<K, V> {
        self.0.into_iter().collect()
    }
}

impl<K: Hash + Eq, V> MapSnapshot<K, V> for RedisSnapshot<K, V> {
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.0.get(key)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a,
    {
        self.0.iter()
    }
}

impl<K, V> RedisMap<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq,
    V: Serialize + DeserializeOwned,
{
    /// Runs `decide` on the key's current value under the key's lease and applies what it
    /// returns: `Some(Some(v))` stores `v`, `Some(None)` removes the key, `None` keeps it.
    fn leased<R>(
        &self,
        key: &[u8],
        decide: impl FnOnce(Option<V>) -> (Option<Option<V>>, R),
    ) -> Result<R, Error> {
        let Claimed::Leased(lease, seen) = self.claim(key, false)? else {
            unreachable!("only an init's claim returns a present value");
        };
        match decide(seen) {
            (None, result) => {
                drop(lease);
                Ok(result)
            }
            (Some(value), result) => {
                let encoded = value.as_ref().map(encode).transpose()?;
                lease.commit(encoded.as_deref())?;
                Ok(result)
            }
        }
    }

    /// One read of the entry of encoded key `key`: `in_hash` on the one hash's field, or
    /// `on_key` on the entry's own key.
    fn ask_entry<T: redis::FromRedisValue>(
        &self,
        key: &[u8],
        in_hash: &str,
        on_key: &str,
    ) -> Result<T, Error> {
        let command = match self.layout() {
            Layout::OneHash => {
                let mut command = redis::cmd(in_hash);
                command.arg(self.names.data()).arg(key);
                command
            }
            Layout::KeyPerEntry => {
                let mut command = redis::cmd(on_key);
                command.arg(&self.names.place(key).keys[0]);
                command
            }
        };
        Ok(command.query(&mut *self.connection()?)?)
    }

    /// The entries, decoded, batch by batch.
    fn entries(&self) -> impl Iterator<Item = Result<(K, V), Error>> + '_ {
        let mut scan = Scan::new(self);
        std::iter::from_fn(move || scan.next_raw()).map(|entry| {
            let (key, value) = entry?;
            Ok((self.decode_key(&key)?, self.decode_value(&key, &value)?))
        })
    }

    /// Stores every entry, as [`insert`](TryConcurrentMap::insert) would one by one, but a
    /// batch of writes per round trip (each still its own script, so each waits for its key's
    /// lease and none is half-applied): the way to load a map. On an error, the entries of the
    /// batches before it are stored, and those of its batch may be.
    ///
    /// ```no_run
    /// use safemap_redis::RedisMap;
    /// let map: RedisMap<u64, u64> = RedisMap::builder("redis://127.0.0.1:6379/", "ids").build()?;
    /// map.try_extend((0..100_000).map(|i| (i, i * 2)))?;
    /// # Ok::<(), safemap_redis::Error>(())
    /// ```
    pub fn try_extend(&self, entries: impl IntoIterator<Item = (K, V)>) -> Result<(), Error> {
        const BATCH: usize = 1024;
        let mut entries = entries.into_iter().peekable();
        let mut connection = self.connection()?;
        let sha = self.scripts.write.load(&mut *connection)?;
        while entries.peek().is_some() {
            let mut batch = Vec::with_capacity(BATCH);
            let mut pipe = redis::pipe();
            for (key, value) in entries.by_ref().take(BATCH) {
                let (key, value) = (encode(&key)?, encode(&value)?);
                let place = self.names.place(&key);
                pipe.cmd("EVALSHA")
                    .arg(&sha)
                    .arg(place.keys.len())
                    .arg(&place.keys);
                pipe.arg(&place.field).arg("set").arg(&value);
                batch.push((key, value));
            }
            let replies: Vec<redis::Value> = pipe.query(&mut *connection)?;
            for ((key, value), reply) in batch.iter().zip(replies) {
                // A key another call holds leased is written once that lease is gone.
                if crate::map::parse(reply)?.code == 0 {
                    self.write(key, Some(value))?;
                }
            }
        }
        Ok(())
    }

    /// Every entry of the one hash at one instant (`HGETALL`).
    fn whole_hash(&self) -> Result<Entries<K, V>, Error> {
        let flat: Vec<Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.names.data())
            .query(&mut *self.connection()?)?;
        let mut entries = Entries::with_capacity_and_hasher(flat.len() / 2, RandomState::new());
        for pair in flat.chunks_exact(2) {
            entries.insert(
                self.decode_key(&pair[0])?,
                self.decode_value(&pair[0], &pair[1])?,
            );
        }
        Ok(entries)
    }
}

impl<K, V> TryConcurrentMap<K, V> for RedisMap<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq,
    V: Serialize + DeserializeOwned,
{
    type Error = Error;
    type Snapshot = RedisSnapshot<K, V>;

    fn consistency(&self) -> Consistency {
        self.layout().consistency()
    }

    fn get(&self, key: &K) -> Result<Option<V>, Error>
    where
        V: Clone,
    {
        let key = encode(key)?;
        let stored: Option<Vec<u8>> = self.ask_entry(&key, "HGET", "GET")?;
        stored.map(|v| self.decode_value(&key, &v)).transpose()
    }

    fn contains_key(&self, key: &K) -> Result<bool, Error> {
        self.ask_entry(&encode(key)?, "HEXISTS", "EXISTS")
    }

    fn insert(&self, key: K, value: V) -> Result<Option<V>, Error> {
        self.write(&encode(&key)?, Some(&encode(&value)?))
    }

    fn remove(&self, key: &K) -> Result<Option<V>, Error> {
        self.write(&encode(key)?, None)
    }

    fn remove_if(&self, key: &K, remove: impl FnOnce(&K, &V) -> bool) -> Result<Option<V>, Error> {
        self.leased(&encode(key)?, |seen| match seen {
            Some(value) if remove(key, &value) => (Some(None), Some(value)),
            _ => (None, None),
        })
    }

    fn try_get_or_insert_with<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Result<V, E>, Error>
    where
        V: Clone,
    {
        let key = encode(&key)?;
        match self.claim(&key, true)? {
            Claimed::Present(value) => Ok(Ok(value)),
            // The lease is released when `make` fails (or panics) and the guard drops.
            Claimed::Leased(lease, _) => match make() {
                Ok(value) => {
                    lease.commit(Some(&encode(&value)?))?;
                    Ok(Ok(value))
                }
                Err(error) => Ok(Err(error)),
            },
        }
    }

    fn update<R>(&self, key: &K, change: impl FnOnce(&mut V) -> R) -> Result<Option<R>, Error> {
        self.leased(&encode(key)?, |seen| match seen {
            Some(mut value) => {
                let result = change(&mut value);
                (Some(Some(value)), Some(result))
            }
            None => (None, None),
        })
    }

    fn update_or_insert_with<R>(
        &self,
        key: K,
        make: impl FnOnce() -> V,
        change: impl FnOnce(&mut V) -> R,
    ) -> Result<R, Error> {
        self.leased(&encode(&key)?, |seen| {
            let mut value = seen.unwrap_or_else(make);
            let result = change(&mut value);
            (Some(Some(value)), result)
        })
    }

    fn compute(
        &self,
        key: K,
        update: impl FnOnce(Option<&V>) -> Action<V>,
    ) -> Result<Option<V>, Error> {
        self.leased(&encode(&key)?, |seen| match update(seen.as_ref()) {
            Action::Keep => (None, None),
            Action::Set(value) => (Some(Some(value)), seen),
            Action::Remove => (seen.is_some().then_some(None), seen),
        })
    }

    fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> Result<(), Error> {
        let mut scan = Scan::new(self);
        while let Some(entry) = scan.next_raw() {
            let (key, mut stored) = entry?;
            let decoded = self.decode_key(&key)?;
            // Removed only if it still holds what `keep` judged; a value changed since is
            // judged again.
            loop {
                if keep(&decoded, &self.decode_value(&key, &stored)?) {
                    break;
                }
                self.refuse_reentry(&key)?;
                let reply = self.run(&self.scripts.remove_if_unchanged, &key, &[&stored])?;
                match (reply.code, reply.value) {
                    (2, Some(changed)) => stored = changed,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    fn clear(&self) -> Result<(), Error> {
        match &self.scripts.clear {
            // Any key's name will do: the script works on the whole hash.
            Some(clear) => self.run(clear, &[], &[]).map(drop),
            None => {
                let mut scan = Scan::new(self);
                while let Some(entry) = scan.next_raw() {
                    self.write(&entry?.0, None)?;
                }
                Ok(())
            }
        }
    }

    fn len(&self) -> Result<usize, Error> {
        match self.layout() {
            Layout::OneHash => Ok(redis::cmd("HLEN")
                .arg(self.names.data())
                .query(&mut *self.connection()?)?),
            Layout::KeyPerEntry => {
                let mut scan = Scan::new(self);
                let mut count = 0;
                while let Some(entry) = scan.next_raw() {
                    entry?;
                    count += 1;
                }
                Ok(count)
            }
        }
    }

    fn for_each(&self, mut visit: impl FnMut(&K, &V)) -> Result<(), Error>
    where
        K: Clone,
        V: Clone,
    {
        match self.layout() {
            Layout::OneHash => self.whole_hash()?.iter().for_each(|(k, v)| visit(k, v)),
            Layout::KeyPerEntry => {
                for entry in self.entries() {
                    let (key, value) = entry?;
                    visit(&key, &value);
                }
            }
        }
        Ok(())
    }

    fn iter(&self) -> impl Iterator<Item = Result<(K, V), Error>>
    where
        K: Clone,
        V: Clone,
    {
        self.entries()
    }

    fn snapshot(&self) -> Result<RedisSnapshot<K, V>, Error>
    where
        K: Clone,
        V: Clone,
    {
        Ok(RedisSnapshot(match self.layout() {
            Layout::OneHash => self.whole_hash()?,
            Layout::KeyPerEntry => self.entries().collect::<Result<_, _>>()?,
        }))
    }
}
