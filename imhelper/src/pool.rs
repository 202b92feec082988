//! Redis connections: opened with timeouts, kept in a small idle pool,
//! dropped after I/O errors so the next call reconnects.
//!
//! A call takes an idle connection (or opens one), runs its commands, and
//! gives the connection back. Opening and every command are bounded by the
//! I/O timeout, so while Redis is down calls fail fast with `Error::Redis`,
//! and they work again as soon as Redis is back.
//!
//! One retry: after Redis restarts, every idle connection is dead, and the
//! first command on one fails with a dropped-connection error (EOF, reset,
//! broken pipe) without the new server ever seeing it. Such a failure on a
//! *reused* connection empties the pool and runs the call once more on a fresh
//! connection. Any other error (a timeout, a refused connect, a Redis error
//! reply) is returned as is: a timed-out command may have run, so it is never
//! repeated.

use std::time::Duration;

use parking_lot::Mutex;
use redis::{Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};
use redis_link::RedisUrl;

use crate::error::{Error, Result};

/// Idle connections kept for reuse; calls beyond this many at once open
/// extra connections that are closed after use.
const MAX_IDLE: usize = 8;

/// Opens connections with the connect/read/write timeout applied.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    url: RedisUrl,
    io_timeout: Duration,
}

impl Connector {
    pub(crate) fn new(url: RedisUrl, io_timeout: Duration) -> Connector {
        Connector { url, io_timeout }
    }

    pub(crate) fn io_timeout(&self) -> Duration {
        self.io_timeout
    }

    /// A fresh connection to the primary (resolved anew: DNS, Sentinel).
    /// Connecting is bounded by the timeout; so is every later read and write.
    pub(crate) fn connect(&self) -> RedisResult<Connection> {
        self.url.connect(self.io_timeout)
    }
}

/// A connector plus the idle connections it opened.
pub(crate) struct Pool {
    connector: Connector,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    pub(crate) fn new(connector: Connector) -> Pool {
        Pool {
            connector,
            idle: Mutex::new(Vec::with_capacity(MAX_IDLE)),
        }
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Runs `op` on a pooled connection (see the module docs for the one
    /// retry). `op` must be safe to run twice when the first run's commands
    /// never reached Redis.
    pub(crate) fn run<T>(
        &self,
        mut op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let pooled = self.idle.lock().pop();
        let reused = pooled.is_some();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.connector.connect()?,
        };
        match op(&mut connection) {
            Err(err) if reused && err.is_connection_dropped() => {
                drop(connection);
                let stale = std::mem::take(&mut *self.idle.lock());
                drop(stale);
                let mut fresh = self.connector.connect()?;
                let outcome = op(&mut fresh);
                self.finish(fresh, outcome)
            }
            outcome => self.finish(connection, outcome),
        }
    }

    /// Gives the connection back unless the outcome says it is broken.
    fn finish<T>(&self, connection: Connection, outcome: RedisResult<T>) -> Result<T> {
        let keep = match &outcome {
            Ok(_) => true,
            Err(err) => still_in_sync(err),
        };
        if keep && connection.is_open() {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
        outcome.map_err(Error::from)
    }

    /// Idle connections right now (for tests).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

/// Whether a connection that produced `err` can serve the next call: only
/// when Redis answered (an error reply, or a reply of an unexpected type).
/// I/O errors and timeouts may leave a reply in flight, so the connection is
/// dropped.
fn still_in_sync(err: &RedisError) -> bool {
    !matches!(
        err.kind(),
        ErrorKind::Io | ErrorKind::Parse | ErrorKind::Client
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_drop_the_connection() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!still_in_sync(&io));
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::WouldBlock));
        assert!(!still_in_sync(&timeout));
    }

    #[test]
    fn error_replies_keep_the_connection() {
        let reply = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(still_in_sync(&reply));
        let conversion = RedisError::from((ErrorKind::UnexpectedReturnType, "not an int"));
        assert!(still_in_sync(&conversion));
    }

    #[test]
    fn refused_connect_leaves_nothing_idle() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("redis://127.0.0.1:{port}/").parse().unwrap();
        let pool = Pool::new(Connector::new(url, Duration::from_millis(200)));
        let result = pool.run(|c| redis::cmd("PING").query::<String>(c));
        assert!(matches!(result, Err(crate::Error::Redis(_))));
        assert_eq!(pool.idle_count(), 0);
    }
}
