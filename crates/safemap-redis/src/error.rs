//! Why a [`RedisMap`](crate::RedisMap) operation failed.

use std::fmt;
use std::time::Duration;

/// Why a [`RedisMap`](crate::RedisMap) operation failed. Nothing is ever half-applied: each write
/// is one server-side script. Where the connection broke after a request was sent, the caller
/// cannot know whether that one write took effect: [`Error::may_have_applied`] says when.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The map name is not usable (see [`RedisMap::builder`](crate::RedisMap::builder)).
    InvalidName(String),
    /// No connection could be had within the timeout: the server is down, unreachable, or every
    /// pooled connection is busy.
    Unavailable(String),
    /// The connection failed or timed out during the call.
    Connection(redis::RedisError),
    /// The server answered with an error (a key of the wrong type, out of memory, ...).
    Server(redis::RedisError),
    /// A key or value could not be encoded.
    Encode(postcard::Error),
    /// An entry on the server does not decode as this map's key or value type: written by
    /// something else, or by another version of the program.
    Decode {
        /// Where the bad data is.
        entry: String,
        /// What the decoder found.
        source: postcard::Error,
        /// Whether the call's write took effect: `true` when the bad data was the value an
        /// `insert` or `remove` displaced (it is gone now), `false` for a read, or a closure's
        /// call, which stops before its closure runs.
        applied: bool,
    },
    /// The call's closure ran longer than its lease, so its result was refused; nothing
    /// changed, and another client may have taken the key since.
    LeaseExpired {
        /// The entry.
        entry: String,
    },
    /// A closure called back into its map for its own key, whose lease its own call holds:
    /// waiting could only end at the wait limit. Nothing changed.
    Reentrant {
        /// The entry.
        entry: String,
    },
    /// Other calls' leases held the key for longer than the map's wait limit.
    Busy {
        /// The entry.
        entry: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// The server replied in a shape this crate does not expect.
    Protocol(String),
}

impl Error {
    /// Whether the failed call may have changed the map: a connection lost after the request
    /// was written leaves that open, and a write whose displaced value did not decode did
    /// change it.
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self,
            Error::Connection(_) | Error::Decode { applied: true, .. }
        )
    }
}

impl From<redis::RedisError> for Error {
    fn from(error: redis::RedisError) -> Self {
        if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() {
            Error::Connection(error)
        } else {
            Error::Server(error)
        }
    }
}

impl From<r2d2::Error> for Error {
    fn from(error: r2d2::Error) -> Self {
        Error::Unavailable(error.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName(why) => write!(f, "safemap-redis: invalid map name: {why}"),
            Error::Unavailable(why) => {
                write!(f, "safemap-redis: no connection to the server: {why}")
            }
            Error::Connection(e) => write!(
                f,
                "safemap-redis: the connection failed during the call (a write may or may not have \
                 taken effect): {e}"
            ),
            Error::Server(e) => write!(f, "safemap-redis: the server refused the call: {e}"),
            Error::Encode(e) => write!(f, "safemap-redis: cannot encode a key or value: {e}"),
            Error::Decode {
                entry,
                source,
                applied,
            } => {
                write!(
                    f,
                    "safemap-redis: {entry} does not decode as this map's type: {source}"
                )?;
                if *applied {
                    f.write_str(" (it was the value this write replaced; the write took effect)")?;
                }
                Ok(())
            }
            Error::LeaseExpired { entry } => write!(
                f,
                "safemap-redis: the closure for {entry} outlived its lease; its result was \
                 refused and nothing changed"
            ),
            Error::Busy { entry, waited } => write!(
                f,
                "safemap-redis: {entry} stayed leased by other calls for {waited:?}; nothing changed"
            ),
            Error::Reentrant { entry } => write!(
                f,
                "safemap-redis: a closure called back into its map for {entry}, which its own \
                 call holds leased; nothing changed"
            ),
            Error::Protocol(what) => write!(f, "safemap-redis: unexpected reply: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connection(e) | Error::Server(e) => Some(e),
            Error::Encode(e) | Error::Decode { source: e, .. } => Some(e),
            _ => None,
        }
    }
}
