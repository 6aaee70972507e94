//! Shared by every test file: the per-strategy expansion of `safemap::strategies!` and the
//! instrumented key and value types.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod alloc;
pub mod contract_steps;
pub mod model_steps;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

// parking_lot rather than std: it is compiled with the tests, so TSAN sees its synchronization.
use parking_lot::Mutex;

/// Expands the test items it is given once per strategy in `safemap::strategies!` that takes any
/// key and value types (not those with the `pod` capability), in a module named after it where
/// `Map<K, V>` (and `Map<K, V, S>`) is that strategy.
macro_rules! for_every_strategy {
    ($($body:tt)*) => {
        safemap::strategies!(crate::common::for_generic_strategies!({ $($body)* }));
    };
}
pub(crate) use for_every_strategy;

/// Expands the test items once per strategy with the `pod` capability: for items that run on
/// every other strategy with types these cannot hold.
macro_rules! for_every_pod_strategy {
    ($($body:tt)*) => {
        safemap::strategies!(crate::common::for_pod_strategies!({ $($body)* }));
    };
}
pub(crate) use for_every_pod_strategy;

/// [`for_every_strategy`] with the `pod` strategies too: for test items whose keys and values are
/// plain old data.
macro_rules! for_every_strategy_on_plain_data {
    ($($body:tt)*) => {
        safemap::strategies!(crate::common::for_strategies!({ $($body)* }));
    };
}
pub(crate) use for_every_strategy_on_plain_data;

/// [`for_every_strategy_on_plain_data`] for the strategies with the `deadline` capability: those
/// that implement `DeadlineMap`.
macro_rules! for_every_deadline_strategy_on_plain_data {
    ($($body:tt)*) => {
        safemap::strategies!(crate::common::for_deadline_strategies!({ $($body)* }));
    };
}
pub(crate) use for_every_deadline_strategy_on_plain_data;

/// Expands the test items once per `(module, Strategy, [capabilities])` entry.
macro_rules! for_strategies {
    ([] $body:tt) => {};
    ([($name:ident, $map:ident, [$($cap:ident),*]) $(, $($rest:tt)*)?] { $($body:tt)* }) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            pub type Map<K, V, S = safemap::DefaultHashBuilder> = safemap::$map<K, V, S>;
            $($body)*
        }
        crate::common::for_strategies!([$($($rest)*)?] { $($body)* });
    };
}
pub(crate) use for_strategies;

/// [`for_strategies`] for the entries without the `pod` capability.
macro_rules! for_generic_strategies {
    ([] $body:tt) => {};
    ([($name:ident, $map:ident, [$($cap:ident),*]) $(, $($rest:tt)*)?] $body:tt) => {
        crate::common::unless_pod!([$($cap),*] {
            crate::common::for_strategies!([($name, $map, [$($cap),*])] $body);
        });
        crate::common::for_generic_strategies!([$($($rest)*)?] $body);
    };
}
pub(crate) use for_generic_strategies;

/// [`for_strategies`] for the entries with the `pod` capability.
macro_rules! for_pod_strategies {
    ([] $body:tt) => {};
    ([($name:ident, $map:ident, [$($cap:ident),*]) $(, $($rest:tt)*)?] $body:tt) => {
        crate::common::unless_pod!([$($cap),*] {} else {
            crate::common::for_strategies!([($name, $map, [$($cap),*])] $body);
        });
        crate::common::for_pod_strategies!([$($($rest)*)?] $body);
    };
}
pub(crate) use for_pod_strategies;

/// Expands its items unless the capabilities name `pod`; with `else`, the other items if they do.
macro_rules! unless_pod {
    ([] { $($items:tt)* } $(else $other:tt)?) => { $($items)* };
    ([deadline] { $($items:tt)* } $(else $other:tt)?) => { $($items)* };
    ([$($cap:ident),*] $items:tt) => {};
    ([$($cap:ident),*] $items:tt else { $($other:tt)* }) => { $($other)* };
}
pub(crate) use unless_pod;

/// [`for_strategies`] for the entries whose capabilities start with `deadline`.
macro_rules! for_deadline_strategies {
    ([] $body:tt) => {};
    ([($name:ident, $map:ident, [deadline $(, $cap:ident)*]) $(, $($rest:tt)*)?] $body:tt) => {
        crate::common::for_strategies!([($name, $map, [deadline])] $body);
        crate::common::for_deadline_strategies!([$($($rest)*)?] $body);
    };
    ([($name:ident, $map:ident, [$($cap:ident),*]) $(, $($rest:tt)*)?] $body:tt) => {
        crate::common::for_deadline_strategies!([$($($rest)*)?] $body);
    };
}
pub(crate) use for_deadline_strategies;

/// Runs `work` on its own thread and fails the test if it has not finished within `seconds`:
/// a hang becomes a failure instead of a stuck suite. Returns what the thread returned, or the
/// panic message if it panicked.
pub fn within<T: Send + 'static>(
    seconds: u64,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(outcome.map_err(|p| panic_message(&*p)));
    });
    rx.recv_timeout(std::time::Duration::from_secs(seconds))
        .unwrap_or_else(|_| panic!("did not finish within {seconds}s: likely a deadlock"))
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Hands out values that record their own drops, to prove each is dropped exactly once.
#[derive(Default)]
pub struct DropLedger {
    next: AtomicUsize,
    dropped: Mutex<HashSet<usize>>,
    double_drops: AtomicUsize,
}

impl DropLedger {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn value(self: &Arc<Self>) -> Tracked {
        Tracked {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            ledger: Arc::clone(self),
        }
    }

    /// Values made so far, including clones.
    pub fn made(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.lock().len()
    }

    pub fn live(&self) -> usize {
        self.made() - self.dropped()
    }

    pub fn double_drops(&self) -> usize {
        self.double_drops.load(Ordering::Relaxed)
    }
}

/// A value whose every instance (clones included) is dropped exactly once, or the ledger says so.
pub struct Tracked {
    pub id: usize,
    ledger: Arc<DropLedger>,
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        self.ledger.value()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ledger.dropped.lock().insert(self.id) {
            self.ledger.double_drops.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A key whose `Hash` and `Eq` panic while its id is the one `trigger` names: set the trigger to a
/// key already in a map, and the next resize or probe that touches it panics under the lock.
#[derive(Clone, Debug)]
pub struct Touchy {
    pub id: u64,
    pub trigger: Arc<AtomicU64>,
}

pub const NO_TRIGGER: u64 = u64::MAX;

impl Touchy {
    pub fn new(id: u64, trigger: &Arc<AtomicU64>) -> Self {
        Touchy {
            id,
            trigger: Arc::clone(trigger),
        }
    }

    fn explode_if_triggered(&self, what: &str) {
        if self.trigger.load(Ordering::Relaxed) == self.id {
            panic!("Touchy::{what} triggered on {}", self.id);
        }
    }
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.explode_if_triggered("hash");
        self.id.hash(state);
    }
}

impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        self.explode_if_triggered("eq");
        other.explode_if_triggered("eq");
        self.id == other.id
    }
}

impl Eq for Touchy {}

/// Text of up to 31 bytes as plain old data: the contract steps' value type for the strategies
/// that hold only plain old data.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct PodText {
    len: u8,
    bytes: [u8; 31],
}

// SAFETY: two fields of `u8`s, `repr(C)` with alignment 1, so no padding; every bit pattern is a
// valid value (the text's validity is checked where it is read), all zeros too.
unsafe impl bytemuck::Zeroable for PodText {}
// SAFETY: as above; the type is `Copy` and `'static`.
unsafe impl bytemuck::Pod for PodText {}

impl std::fmt::Debug for PodText {
    /// As the text's own `Debug`, so that steps that format a value see what `String` gives.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(contract_steps::Text::as_str(self), f)
    }
}

impl contract_steps::Text for PodText {
    fn of(text: &str) -> Self {
        let mut bytes = [0; 31];
        bytes
            .get_mut(..text.len())
            .unwrap_or_else(|| panic!("{text:?} is longer than a PodText holds"))
            .copy_from_slice(text.as_bytes());
        PodText {
            len: text.len() as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("stored as text")
    }

    fn push(&mut self, c: char) {
        *self = Self::of(&format!("{}{c}", self.as_str()));
    }
}
