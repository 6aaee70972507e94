//! The server-side scripts. Each runs atomically on the server (Redis runs one script at a time),
//! so a check and the write it guards cannot be separated by another client's command.
//!
//! Every script is a layout's prelude, which defines how to read and write one entry and its
//! lease, followed by a body shared by both layouts. `KEYS` and `ARGV[1]` locate the entry (see
//! `layout.rs`); the body's own arguments start at `ARGV[2]`. Replies are arrays whose first
//! element says what happened: `0` means a live lease of another call holds the key, and the
//! client waits and asks again.
//!
//! Leases: a call that runs a closure first takes the key's lease (a token unique to the call,
//! with an expiry), runs the closure locally, then commits only if the lease is still its own.
//! Every write of the key (plain ones included) waits while a live lease is held, so what the
//! closure saw is still the value when it commits, and the commit is the call's one instant.

use redis::Script;

use crate::layout::Layout;

/// One entry in a hash shared by the whole map (`KEYS[1]`), its field `ARGV[1]`; leases as
/// fields of a hash of tokens (`KEYS[2]`) with expiries in a sorted set (`KEYS[3]`), on the
/// server's clock, so that a whole-map operation can tell whether any lease is live.
const ONE_HASH: &str = r#"
local field = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function value_get() return redis.call('HGET', KEYS[1], field) end
local function value_set(v) redis.call('HSET', KEYS[1], field, v) end
local function value_del() redis.call('HDEL', KEYS[1], field) end
local function lease_del()
  redis.call('HDEL', KEYS[2], field)
  redis.call('ZREM', KEYS[3], field)
end
local function lease_get()
  local expiry = redis.call('ZSCORE', KEYS[3], field)
  if not expiry then return false end
  if tonumber(expiry) <= now_ms() then
    lease_del()
    return false
  end
  return redis.call('HGET', KEYS[2], field)
end
local function lease_set(token, ttl)
  redis.call('HSET', KEYS[2], field, token)
  redis.call('ZADD', KEYS[3], now_ms() + ttl, field)
end
local function any_lease_live()
  local now = now_ms()
  for _, f in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
    redis.call('HDEL', KEYS[2], f)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  return redis.call('ZCARD', KEYS[3]) > 0
end
"#;

/// One entry per Redis key (`KEYS[1]`), its lease in a key of its own (`KEYS[2]`) that expires
/// by itself; both keys share a hash tag, so they sit on one cluster node.
const KEY_PER_ENTRY: &str = r#"
local function value_get() return redis.call('GET', KEYS[1]) end
local function value_set(v) redis.call('SET', KEYS[1], v) end
local function value_del() redis.call('DEL', KEYS[1]) end
local function lease_get() return redis.call('GET', KEYS[2]) end
local function lease_set(token, ttl) redis.call('SET', KEYS[2], token, 'PX', ttl) end
local function lease_del() redis.call('DEL', KEYS[2]) end
"#;

/// A plain write. `ARGV[2]` is `set` (with the value in `ARGV[3]`) or `del`. Reply: `{1, old}`.
const WRITE: &str = r#"
if lease_get() then return {0} end
local old = value_get()
if ARGV[2] == 'set' then value_set(ARGV[3]) else value_del() end
return {1, old}
"#;

/// Takes the key's lease for token `ARGV[2]` for `ARGV[3]` ms. With `ARGV[4] == 'absent'` (an
/// init) a present value is returned instead, without a lease: `{2, value}`. Reply otherwise:
/// `{1, value or nil}`, the value the closure is to see.
const CLAIM: &str = r#"
local v = value_get()
if ARGV[4] == 'absent' and v then return {2, v} end
if lease_get() then return {0} end
lease_set(ARGV[2], tonumber(ARGV[3]))
return {1, v}
"#;

/// Applies a closure's result if token `ARGV[2]` still holds the lease, and releases it.
/// `ARGV[3]` is `set` (value in `ARGV[4]`), `del` or `keep`. Reply: `{1}`, or `{3}` when the
/// lease expired (nothing changed).
const COMMIT: &str = r#"
if lease_get() ~= ARGV[2] then return {3} end
if ARGV[3] == 'set' then value_set(ARGV[4]) elseif ARGV[3] == 'del' then value_del() end
lease_del()
return {1}
"#;

/// Gives up token `ARGV[2]`'s lease, if it still holds it (a closure failed or panicked).
const RELEASE: &str = r#"
if lease_get() == ARGV[2] then lease_del() end
return {1}
"#;

/// Removes the entry if it still holds the encoded value `ARGV[2]` (what `retain` judged).
/// Reply: `{1}` when removed, `{2, value or nil}` when the value changed since.
const REMOVE_IF_UNCHANGED: &str = r#"
if lease_get() then return {0} end
local v = value_get()
if v == ARGV[2] then
  value_del()
  return {1}
end
return {2, v}
"#;

/// Deletes the map's hash, once no lease is live: the one-hash layout's atomic `clear`.
const CLEAR: &str = r#"
if any_lease_live() then return {0} end
redis.call('DEL', KEYS[1])
return {1}
"#;

/// The scripts of one layout.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub write: Script,
    pub claim: Script,
    pub commit: Script,
    pub release: Script,
    pub remove_if_unchanged: Script,
    /// Only the one-hash layout clears in one script.
    pub clear: Option<Script>,
}

impl Scripts {
    /// The scripts for `layout`.
    pub fn new(layout: Layout) -> Self {
        let prelude = match layout {
            Layout::OneHash => ONE_HASH,
            Layout::KeyPerEntry => KEY_PER_ENTRY,
        };
        let script = |body: &str| Script::new(&format!("{prelude}{body}"));
        Scripts {
            write: script(WRITE),
            claim: script(CLAIM),
            commit: script(COMMIT),
            release: script(RELEASE),
            remove_if_unchanged: script(REMOVE_IF_UNCHANGED),
            clear: (layout == Layout::OneHash).then(|| script(CLEAR)),
        }
    }
}
