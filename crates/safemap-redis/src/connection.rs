//! The connection pool: r2d2 over connections that time out, so a server that stops answering
//! fails a call instead of hanging it.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use r2d2::{ManageConnection, Pool};
use redis::{Client, Connection, ConnectionLike, RedisError};
use scheduled_thread_pool::ScheduledThreadPool;

/// Opens connections to one server, each with the same timeout for connecting, reading and
/// writing.
#[derive(Debug)]
pub(crate) struct Connector {
    client: Client,
    timeout: Duration,
}

impl ManageConnection for Connector {
    type Connection = Connection;
    type Error = RedisError;

    fn connect(&self) -> Result<Connection, RedisError> {
        let connection = self.client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    fn is_valid(&self, connection: &mut Connection) -> Result<(), RedisError> {
        redis::cmd("PING").query(connection)
    }

    fn has_broken(&self, connection: &mut Connection) -> bool {
        !connection.is_open()
    }
}

/// The thread that opens connections in the background and retires old ones, for every pool of
/// the process. r2d2 otherwise starts three threads per pool, which a process holding many maps
/// (one per tenant, say) pays over and over.
static HELPER: LazyLock<Arc<ScheduledThreadPool>> = LazyLock::new(|| {
    let helper = ScheduledThreadPool::builder()
        .num_threads(1)
        .thread_name_pattern("safemap-redis-pool-{}")
        .build();
    Arc::new(helper)
});

/// A pool of up to `connections` connections to the server at `url`, each failing a call after
/// `timeout`. Connects once now, so a wrong address or a server that is down fails here.
pub(crate) fn pool(
    url: &str,
    timeout: Duration,
    connections: u32,
) -> Result<Pool<Connector>, crate::Error> {
    let client = Client::open(url)?;
    Ok(Pool::builder()
        .max_size(connections)
        .min_idle(Some(1))
        .connection_timeout(timeout)
        // A broken connection shows as `has_broken` after its failed call, and that call
        // reports the failure; a PING before every call would double the round trips.
        .test_on_check_out(false)
        .thread_pool(Arc::clone(&HELPER))
        .build(Connector { client, timeout })?)
}
