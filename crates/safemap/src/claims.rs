//! Single-flight initialisation: the claims that let `get_or_insert_with` run its closure with
//! no lock of the map held, while other callers for the same key wait for it and nobody else
//! waits at all.
//!
//! # Protocol
//! A caller that finds its key absent claims the key's hash in its claims shard:
//! - **claimed**: no claim for the hash was there, and now this caller's is. It looks the key up
//!   again, since a value may have been stored since its first look: found, it withdraws the
//!   claim and returns the value. Otherwise it runs `make` holding nothing; on success it stores
//!   the value if the key is still absent (a value stored meanwhile by a plain write wins). In
//!   every case, also on failure or panic, it then withdraws its claim and wakes the shard's
//!   waiters;
//! - **busy**: another caller's claim for the hash is there. This caller waits on the shard's
//!   condition variable (it parks, holding nothing), or an async caller awaits the shard's
//!   event, until that claim is withdrawn, then looks the key up again and starts over: it finds
//!   the value, or, after a failed `make`, one of the waiters claims the hash and runs its own
//!   `make`. An async caller starts listening before it releases the shard's lock, and a
//!   withdrawal notifies after it removes the claim, so no withdrawal goes unnoticed.
//!
//! A claim is withdrawn when it is dropped, so an async init whose future is dropped half-way
//! (cancelled) withdraws its claim and wakes its waiters like a failed one.
//!
//! `make` runs at most once per value it stores: a caller runs `make` only while its claim is
//! the one registered for the hash, and withdraws the claim only after storing, so the next
//! caller to claim the hash finds the stored value when it looks again.
//!
//! Claims match by hash alone. Keys whose 64-bit hashes collide share claims: one waits for the
//! other's `make` and then starts over, which costs time, not correctness; and a `make` that asks
//! for a key colliding with its own is refused as if it asked for its own, a chance of 2^-64 per
//! pair of keys with a randomly seeded hasher.
//!
//! A claims shard's lock is a leaf: it is held only to add, find or remove a claim, and it is
//! released while waiting. So no cycle of waits can form through the claims, except through
//! `make`s that wait for each other's keys, as two threads taking two locks in opposite orders
//! would.

use std::cell::RefCell;

use crossbeam_utils::CachePadded;
use event_listener::{Event, EventListener};

use crate::raw::core::Wait;
use crate::raw::lazy_shards::LazyShards;
use crate::sync::{Condvar, Mutex, thread_local};

/// How many shards the claims of one map spread over: misses of different keys rarely meet on
/// one, and an empty map holds only a pointer per shard.
const SHARDS: usize = 8;

/// The claims of one map.
pub(crate) struct Claims {
    shards: LazyShards<CachePadded<Shard>>,
}

/// The hashes claimed in one shard, and the waiters for their withdrawal: threads on the
/// condition variable, async callers on the event.
struct Shard {
    claimed: Mutex<Vec<u64>>,
    withdrawn: Condvar,
    withdrawn_async: Event,
}

thread_local! {
    /// The claims whose `make` runs on this thread now, as (claims, hash), so that a `make` that
    /// asks for its own key is refused instead of waiting for itself: a blocking init's for its
    /// whole run, an async init's while its future is polled.
    static HELD: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            shards: LazyShards::from_fn(SHARDS, |_| None),
        }
    }
}

/// A claim on a hash, withdrawn when dropped (also on unwind), which wakes the callers waiting
/// for it.
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    hash: u64,
    /// The claim's record in this thread's [`HELD`], for a blocking init.
    _on_thread: Option<Held>,
}

/// A claim's record in this thread's [`HELD`], removed when dropped.
pub(crate) struct Held(usize, u64);

impl Drop for Held {
    fn drop(&mut self) {
        let id = (self.0, self.1);
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|h| *h == id) {
                held.remove(at);
            }
        });
    }
}

/// What [`Claims::claim_async`] found.
pub(crate) enum Asked<'a> {
    /// The caller's claim, registered: it runs `make`.
    Mine(Claim<'a>),
    /// Another caller's claim: await this, then look again.
    Wait(EventListener),
}

impl Claims {
    fn shard(&self, hash: u64) -> &Shard {
        let make = || {
            CachePadded::new(Shard {
                claimed: Mutex::new(Vec::new()),
                withdrawn: Condvar::new(),
                withdrawn_async: Event::new(),
            })
        };
        let index = (hash >> 32) as usize % SHARDS;
        (self.shards.get_or_make(index, Wait::Forever, make)).expect("waits forever")
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Claims `hash` for this caller, or, if another caller holds a claim on it, waits until
    /// that claim is withdrawn and returns `None`: the caller looks its key up and tries again.
    ///
    /// # Panics
    /// If this thread holds the claim on `hash`: the `make` of operation `op` asked for its own
    /// key.
    pub(crate) fn claim(&self, hash: u64, op: &str) -> Option<Claim<'_>> {
        let shard = self.shard(hash);
        let mut claimed = shard.claimed.lock();
        if !claimed.contains(&hash) {
            claimed.push(hash);
            drop(claimed);
            let on_thread = Some(self.hold_while_running(hash));
            return Some(Claim {
                claims: self,
                hash,
                _on_thread: on_thread,
            });
        }
        self.refuse_own_key(hash, op);
        while claimed.contains(&hash) {
            claimed = shard.withdrawn.wait(claimed);
        }
        None
    }

    /// [`Self::claim`] for an async caller, which does not block: its claim, or what to await
    /// before it looks again.
    pub(crate) fn claim_async(&self, hash: u64, op: &str) -> Asked<'_> {
        let shard = self.shard(hash);
        let mut claimed = shard.claimed.lock();
        if !claimed.contains(&hash) {
            claimed.push(hash);
            return Asked::Mine(Claim {
                claims: self,
                hash,
                _on_thread: None,
            });
        }
        self.refuse_own_key(hash, op);
        // Listening before the lock is released: the withdrawal cannot come in between.
        let listener = shard.withdrawn_async.listen();
        drop(claimed);
        Asked::Wait(listener)
    }

    /// Records in this thread's [`HELD`] that the `make` of the claim on `hash` runs here, until
    /// the record is dropped.
    pub(crate) fn hold_while_running(&self, hash: u64) -> Held {
        HELD.with(|held| held.borrow_mut().push((self.id(), hash)));
        Held(self.id(), hash)
    }

    /// Panics if the `make` of this thread's claim on `hash` is what asks.
    fn refuse_own_key(&self, hash: u64, op: &str) {
        let mine = HELD.with(|held| held.borrow().contains(&(self.id(), hash)));
        assert!(
            !mine,
            "safemap: the closure passed to `{op}` asked the map for its own key, which that \
             closure is still making; return the value instead"
        );
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let shard = self.claims.shard(self.hash);
        let mut claimed = shard.claimed.lock();
        if let Some(at) = claimed.iter().position(|h| *h == self.hash) {
            claimed.swap_remove(at);
        }
        drop(claimed);
        shard.withdrawn.notify_all();
        shard.withdrawn_async.notify(usize::MAX);
        // Then `_on_thread`, if any, leaves this thread's record.
    }
}
