//! Async single-flight init: `get_or_insert_with_async` and its fallible form, for every
//! strategy, on any executor.
//!
//! The protocol is the blocking one (`claims`): claim the key's hash, look again, make, store if
//! still absent, withdraw. The differences: a caller that finds the hash claimed awaits the
//! claims shard's event (from `event-listener`) instead of parking its thread, so it never blocks
//! an executor thread; and the claim lives in the future, so dropping the future half-way
//! (cancelling it) withdraws the claim and wakes the waiters, one of which takes over. While the
//! `make` future is polled, the thread records the claim, so that the future asking for its own
//! key, blocking or async, panics instead of waiting for itself.

use std::future::{Future, poll_fn};
use std::hash::BuildHasher;
use std::pin::pin;

use crate::claims::Asked;
use crate::front::SafeMap;
use crate::raw::core::Core;

impl<C: Core, S: BuildHasher> SafeMap<C, S> {
    /// [`get_or_insert_with`](crate::ConcurrentMap::get_or_insert_with) with an async `make`:
    /// returns the value for `key`, first storing what `make()` resolves to if the key is absent.
    ///
    /// `make` runs at most once per value stored, with no lock of the map held. Other callers
    /// for the same key, blocking or async, wait for it (an async one awaits a notification, so
    /// no executor thread blocks); nobody else waits. If this future is dropped before it
    /// finishes, its claim on the key is released and one waiting caller runs its own `make`.
    /// The future is `Send` when the key, the value, `make` and its future are. Any executor will
    /// do: the crate depends on none.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ShardedMap};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let users: ShardedMap<u64, String> = ShardedMap::new();
    /// let name = users.get_or_insert_with_async(7, || async { "ada".to_string() }).await;
    /// assert_eq!(name, "ada");
    /// assert_eq!(users.get(&7).as_deref(), Some("ada"));
    /// # });
    /// ```
    pub async fn get_or_insert_with_async<F, Fut>(&self, key: C::Key, make: F) -> C::Value
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = C::Value>,
        C::Value: Clone,
    {
        let made = self.try_get_or_insert_with_async(key, || async {
            Ok::<_, std::convert::Infallible>(make().await)
        });
        match made.await {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// [`get_or_insert_with_async`](Self::get_or_insert_with_async) for a `make` that can fail:
    /// on `Err` nothing is stored, the error is returned, and one waiting caller runs its own
    /// `make`.
    ///
    /// ```
    /// use safemap::{ConcurrentMap, ReadMostlyMap};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ports: ReadMostlyMap<&str, u16> = ReadMostlyMap::new();
    /// let failed = ports.try_get_or_insert_with_async("web", || async { "x".parse::<u16>() });
    /// assert!(failed.await.is_err());
    /// assert!(!ports.contains_key("web"));
    /// let parsed = ports.try_get_or_insert_with_async("web", || async { "80".parse::<u16>() });
    /// assert_eq!(parsed.await, Ok(80));
    /// # });
    /// ```
    pub async fn try_get_or_insert_with_async<E, F, Fut>(
        &self,
        key: C::Key,
        make: F,
    ) -> Result<C::Value, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C::Value, E>>,
        C::Value: Clone,
    {
        const OP: &str = "get_or_insert_with_async";
        self.enter();
        let hash = self.hasher().hash_one(&key);
        loop {
            if let Some(present) = self.look(hash, &key) {
                return Ok(present);
            }
            match self.claims().claim_async(hash, OP) {
                Asked::Mine(claim) => {
                    // A value may have been stored between the look and the claim.
                    if let Some(present) = self.look(hash, &key) {
                        return Ok(present);
                    }
                    let mut making = pin!(make());
                    let made = poll_fn(|cx| {
                        let _held = self.claims().hold_while_running(hash);
                        making.as_mut().poll(cx)
                    })
                    .await?;
                    let (value, _) = self.store_if_absent(hash, key, made);
                    // Withdrawn after the value is stored; on failure, unwind or cancellation,
                    // when the claim is dropped.
                    drop(claim);
                    return Ok(value);
                }
                Asked::Wait(withdrawn) => withdrawn.await,
            }
        }
    }
}
