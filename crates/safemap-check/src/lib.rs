//! Records concurrent histories against safemap strategies and checks them for linearizability.
//!
//! - [`history`]: operations, results and invoke/response stamps from one shared clock;
//! - [`spec`]: the sequential model, and how each operation is judged given the strategy's
//!   declared [`Consistency`](safemap::Consistency): atomic operations are one step over the whole
//!   map, weakly consistent ones one step per key;
//! - [`wgl`]: the Wing–Gong search with memoization, taking alone a step on one key that commutes
//!   with every step that could come before it;
//! - [`check`]: splits a history by key when it can (P-compositionality), and shrinks a failure to
//!   a minimal counterexample, printed as a per-thread timeline;
//! - [`run`]: random histories against every strategy;
//! - [`seeded`]: deliberately broken maps, which the checker must reject;
//! - `remote` (feature `redis`, on by default through `cli`): RedisMap's histories, in one
//!   process and across two, on a redis-server the checker starts.
//!
//! ```
//! use safemap_check::run::{Config, strategies};
//!
//! let config = Config { threads: 3, ops: 6, keys: 3, seed: 7 };
//! for strategy in strategies() {
//!     let report = (strategy.check)(&config, 20);
//!     assert_eq!(report.violations, 0, "{}", strategy.name);
//! }
//! ```
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod check;
pub mod history;
#[cfg(feature = "redis")]
pub mod remote;
pub mod run;
pub mod seeded;
pub mod spec;
pub mod wgl;
