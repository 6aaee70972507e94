//! [`RedisMap`] and its builder: encoding, one round trip per plain operation, and the waits for
//! other calls' leases.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use r2d2::{Pool, PooledConnection};
use redis::{Script, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::{Connector, pool};
use crate::error::Error;
use crate::layout::{Layout, Names, Place};
use crate::scripts::Scripts;

/// A concurrent map kept on a Redis (7 or later) or Valkey server, shared by every process that
/// opens the same name on the same server, with safemap's contract as fallible calls: it
/// implements [`TryConcurrentMap`](safemap::fallible::TryConcurrentMap), whose consistency
/// depends on the [`Layout`].
///
/// Plain reads and writes are one round trip each. A closure (`compute`, `update`, `remove_if`,
/// `get_or_insert_with`'s `make`) runs on this client under a lease on its key: see the crate
/// docs.
///
/// ```no_run
/// use safemap::Action;
/// use safemap::fallible::TryConcurrentMap;
/// use safemap_redis::{Layout, RedisMap};
///
/// let hits: RedisMap<String, u64> = RedisMap::builder("redis://127.0.0.1:6379/", "hits")
///     .layout(Layout::OneHash)
///     .build()?;
/// hits.compute("home".to_string(), |n| Action::Set(n.map_or(1, |n| n + 1)))?;
/// assert!(hits.get(&"home".to_string())?.is_some());
/// # Ok::<(), safemap_redis::Error>(())
/// ```
pub struct RedisMap<K, V> {
    pub(crate) pool: Pool<Connector>,
    pub(crate) names: Names,
    /// The server and map this handle reaches, to recognise a closure calling back into it.
    identity: Arc<str>,
    pub(crate) scripts: Scripts,
    lease: Duration,
    wait: Duration,
    tokens: Tokens,
    types: Types<K, V>,
}

/// The key and value types a map encodes, owned by neither the map nor its builder (so both are
/// `Send` and `Sync` whatever `K` and `V` are).
type Types<K, V> = PhantomData<fn(K, V) -> (K, V)>;

/// How to open a [`RedisMap`]; from [`RedisMap::builder`].
#[derive(Clone, Debug)]
pub struct Builder<K, V> {
    url: String,
    name: String,
    layout: Layout,
    lease: Duration,
    timeout: Duration,
    wait: Duration,
    connections: u32,
    types: Types<K, V>,
}

impl<K, V> Builder<K, V> {
    /// How entries are laid out on the server (default [`Layout::OneHash`]). Every client of
    /// one map must use the same.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// How long a closure may run before its lease lapses and other clients may take its key
    /// (default 10 s). A closure that outlives it has its result refused with
    /// [`Error::LeaseExpired`]; a client that dies holding a lease holds its key up this long.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long connecting, and each request's reply, may take before the call fails
    /// (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a call waits for other calls' leases on its key before it fails with
    /// [`Error::Busy`] (default 30 s).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The most connections this client opens at once (default 16).
    pub fn connections(mut self, connections: u32) -> Self {
        self.connections = connections.max(1);
        self
    }

    /// Connects, failing if the name is unusable or the server cannot be reached in time.
    pub fn build(self) -> Result<RedisMap<K, V>, Error> {
        let names = Names::new(self.layout, &self.name).map_err(Error::InvalidName)?;
        let lease_ms = self.lease.as_millis();
        if lease_ms == 0 || lease_ms > i64::MAX as u128 {
            return Err(Error::InvalidName(format!(
                "lease of {:?}: give at least a millisecond",
                self.lease
            )));
        }
        Ok(RedisMap {
            pool: pool(&self.url, self.timeout, self.connections)?,
            scripts: Scripts::new(self.layout),
            identity: format!("{}|{:?}|{}", self.url, self.layout, self.name).into(),
            names,
            lease: self.lease,
            wait: self.wait,
            tokens: Tokens::new(),
            types: PhantomData,
        })
    }
}

impl<K, V> RedisMap<K, V> {
    /// A builder for the map `name` (ASCII letters, digits, `_`, `-` and `.`) on the server at
    /// `url` (`redis://host:port/db`).
    pub fn builder(url: &str, name: &str) -> Builder<K, V> {
        Builder {
            url: url.to_string(),
            name: name.to_string(),
            layout: Layout::OneHash,
            lease: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            wait: Duration::from_secs(30),
            connections: 16,
            types: PhantomData,
        }
    }

    /// The layout this map was opened with.
    pub fn layout(&self) -> Layout {
        self.names.layout()
    }

    /// A pooled connection, waiting at most the timeout for one.
    pub(crate) fn connection(&self) -> Result<PooledConnection<Connector>, Error> {
        Ok(self.pool.get()?)
    }
}

/// Another handle on the same map, sharing this one's connection pool (as cheap as an `Arc`
/// clone, plus its own lease tokens).
impl<K, V> Clone for RedisMap<K, V> {
    fn clone(&self) -> Self {
        RedisMap {
            pool: self.pool.clone(),
            names: self.names.clone(),
            identity: Arc::clone(&self.identity),
            scripts: Scripts::new(self.names.layout()),
            lease: self.lease,
            wait: self.wait,
            tokens: Tokens::new(),
            types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for RedisMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMap")
            .field("names", &self.names)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Encodes a key or value.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value).map_err(Error::Encode)
}

/// What a script's reply said, once a lease of another call no longer stood in the way.
pub(crate) struct Reply {
    /// The script's status code (see `scripts.rs`), never 0.
    pub code: i64,
    /// The encoded value it returned, if any.
    pub value: Option<Vec<u8>>,
}

impl<K: DeserializeOwned, V: DeserializeOwned> RedisMap<K, V> {
    /// Decodes `bytes`, found in the entry of encoded key `key`, naming the entry on failure.
    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T, Error> {
        postcard::from_bytes(bytes).map_err(|source| Error::Decode {
            entry: self.names.describe(key),
            source,
            applied: false,
        })
    }

    /// Decodes the value stored for encoded key `key`.
    pub(crate) fn decode_value(&self, key: &[u8], bytes: &[u8]) -> Result<V, Error> {
        self.decode(key, bytes)
    }

    /// Decodes an encoded key.
    pub(crate) fn decode_key(&self, key: &[u8]) -> Result<K, Error> {
        self.decode(key, key)
    }

    /// Runs `script` on the entry of encoded key `key` with the extra arguments `args`, asking
    /// again (backing off) while another call's lease holds the key, up to the wait limit.
    pub(crate) fn run(&self, script: &Script, key: &[u8], args: &[&[u8]]) -> Result<Reply, Error> {
        let Place { keys, field } = self.names.place(key);
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            let mut invocation = script.prepare_invoke();
            for name in &keys {
                invocation.key(name.as_slice());
            }
            invocation.arg(field.as_slice());
            for arg in args {
                invocation.arg(*arg);
            }
            let reply: Value = invocation.invoke(&mut *self.connection()?)?;
            let reply = parse(reply)?;
            if reply.code != 0 {
                return Ok(reply);
            }
            if started.elapsed() > self.wait {
                return Err(Error::Busy {
                    entry: self.names.describe(key),
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// A plain write: stores `value` (or removes the key, for `None`) once no lease holds it;
    /// returns the value it displaced.
    pub(crate) fn write(&self, key: &[u8], value: Option<&[u8]>) -> Result<Option<V>, Error> {
        self.refuse_reentry(key)?;
        let reply = match value {
            Some(value) => self.run(&self.scripts.write, key, &[b"set", value])?,
            None => self.run(&self.scripts.write, key, &[b"del"])?,
        };
        let displaced = reply.value.map(|old| self.decode_value(key, &old));
        // The write happened whether or not what it displaced decodes.
        displaced.transpose().map_err(|error| match error {
            Error::Decode { entry, source, .. } => Error::Decode {
                entry,
                source,
                applied: true,
            },
            other => other,
        })
    }

    /// Fails with [`Error::Reentrant`] if this thread holds the lease on encoded key `key` (a
    /// closure calling back for its own key), which waiting would never see released.
    pub(crate) fn refuse_reentry(&self, key: &[u8]) -> Result<(), Error> {
        let held = HELD.with_borrow(|held| {
            held.iter()
                .any(|(map, k)| **map == *self.identity && k.as_slice() == key)
        });
        if held {
            return Err(Error::Reentrant {
                entry: self.names.describe(key),
            });
        }
        Ok(())
    }

    /// Takes the lease on encoded key `key`, waiting for other calls' leases. With `init`, a
    /// present value is returned instead (no lease taken).
    pub(crate) fn claim(&self, key: &[u8], init: bool) -> Result<Claimed<'_, K, V>, Error> {
        self.refuse_reentry(key)?;
        let token = self.tokens.next();
        let lease_ms = self.lease.as_millis().to_string();
        let mode: &[u8] = if init { b"absent" } else { b"any" };
        let reply = self.run(
            &self.scripts.claim,
            key,
            &[&token, lease_ms.as_bytes(), mode],
        )?;
        let seen = reply.value.map(|v| self.decode_value(key, &v));
        HELD.with_borrow_mut(|held| held.push((Arc::clone(&self.identity), key.to_vec())));
        let lease = Lease {
            map: self,
            key: key.to_vec(),
            token,
            open: true,
        };
        match (reply.code, seen) {
            (2, Some(present)) => {
                // No lease was taken: the guard must not release one.
                let mut lease = lease;
                lease.open = false;
                Ok(Claimed::Present(present?))
            }
            (1, seen) => Ok(Claimed::Leased(lease, seen.transpose()?)),
            (code, _) => Err(Error::Protocol(format!("claim answered {code}"))),
        }
    }
}

/// What [`RedisMap::claim`] got.
pub(crate) enum Claimed<'a, K: DeserializeOwned, V: DeserializeOwned> {
    /// The key held this value (an init's claim only).
    Present(V),
    /// The lease, and the value the closure is to see.
    Leased(Lease<'a, K, V>, Option<V>),
}

/// A lease on one key, released when dropped unless committed (so a closure that fails or
/// panics frees its key at once rather than when the lease lapses).
pub(crate) struct Lease<'a, K: DeserializeOwned, V: DeserializeOwned> {
    map: &'a RedisMap<K, V>,
    key: Vec<u8>,
    token: Vec<u8>,
    open: bool,
}

impl<K: DeserializeOwned, V: DeserializeOwned> Lease<'_, K, V> {
    /// Stores `value` (removes the key, for `None`) if the lease is still this call's, and
    /// releases it.
    pub fn commit(mut self, value: Option<&[u8]>) -> Result<(), Error> {
        self.open = false;
        let map = self.map;
        let reply = match value {
            Some(value) => map.run(
                &map.scripts.commit,
                &self.key,
                &[&self.token, b"set", value],
            ),
            None => map.run(&map.scripts.commit, &self.key, &[&self.token, b"del"]),
        }?;
        match reply.code {
            1 => Ok(()),
            3 => Err(Error::LeaseExpired {
                entry: map.names.describe(&self.key),
            }),
            code => Err(Error::Protocol(format!("commit answered {code}"))),
        }
    }
}

impl<K: DeserializeOwned, V: DeserializeOwned> Drop for Lease<'_, K, V> {
    fn drop(&mut self) {
        if self.open {
            // Best effort: if the server cannot be told, the lease lapses by itself.
            let _ = self
                .map
                .run(&self.map.scripts.release, &self.key, &[&self.token]);
        }
        // Leases nest (a closure may take another key's), so this one is the last pushed.
        HELD.with_borrow_mut(|held| held.pop());
    }
}

thread_local! {
    /// The leases this thread holds, by map identity and encoded key, innermost last.
    static HELD: RefCell<Vec<(Arc<str>, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Reads a script's reply: `{code}` or `{code, value or nil}`.
pub(crate) fn parse(reply: Value) -> Result<Reply, Error> {
    let Value::Array(parts) = reply else {
        return Err(Error::Protocol(format!("expected an array, got {reply:?}")));
    };
    let mut parts = parts.into_iter();
    let code = match parts.next() {
        Some(Value::Int(code)) => code,
        other => {
            return Err(Error::Protocol(format!(
                "expected a status code, got {other:?}"
            )));
        }
    };
    let value = match parts.next() {
        None | Some(Value::Nil) => None,
        Some(Value::BulkString(bytes)) => Some(bytes),
        Some(other) => return Err(Error::Protocol(format!("expected a value, got {other:?}"))),
    };
    Ok(Reply { code, value })
}

/// Lease tokens unique across clients: a random 64-bit prefix per map handle, then a counter.
/// Uniqueness is all a token needs: the entry and its lease live on the same server and each
/// commit checks the token and writes in one script, so a holder whose lease lapsed is refused
/// by the check itself (a monotonic fencing token is needed only when the guarded resource is
/// elsewhere and must compare tokens on its own).
struct Tokens {
    prefix: u64,
    next: AtomicU64,
}

impl Tokens {
    fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        // `RandomState` is seeded from the OS's randomness.
        let prefix =
            RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
        Tokens {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> Vec<u8> {
        // Relaxed: only uniqueness matters, which the atomic increment gives in any order.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:016x}", self.prefix).into_bytes()
    }
}
