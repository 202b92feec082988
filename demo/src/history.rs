//! The recent history the demo keeps in Redis, so a page that opens (or
//! joins a channel) can show what was said before it came.
//!
//! Each [`Conversation`] (a channel, or a pair of clients talking directly)
//! is one Redis list under [`KEY_PREFIX`], holding the last [`KEEP`]
//! messages, oldest first, each the exact JSON text pushed to the clients
//! (the `chan` and `direct` objects of [`messages`](crate::messages)). A
//! list expires [`TTL`] after its last message. Appending, trimming and
//! setting the expiry are one `MULTI` transaction.
//!
//! `imhelper` keeps its Redis connections to itself, so the store opens its
//! own through [`redis_link`] (every URL form the nodes take), with the
//! same I/O timeout, and keeps a few idle ones for reuse.

use std::time::Duration;

use parking_lot::Mutex;
use redis::{Connection, RedisResult};
use redis_link::RedisUrl;
use serde_json::Value;

/// Prefix of every history key.
pub const KEY_PREFIX: &str = "freeim_demo:history:";
/// Messages kept per conversation.
pub const KEEP: usize = 100;
/// How long a conversation's history lives after its last message.
pub const TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whose history: a channel, or the direct messages between two clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conversation {
    /// A channel, by its (validated) name.
    Chan(String),
    /// Two clients, lower id first (see [`Conversation::direct`]).
    Direct(i64, i64),
}

impl Conversation {
    /// The direct conversation of `a` and `b`, the same either way round.
    pub fn direct(a: i64, b: i64) -> Conversation {
        Conversation::Direct(a.min(b), a.max(b))
    }

    /// The Redis key of the conversation's list.
    ///
    /// # Example
    ///
    /// ```
    /// use freeim_demo::history::Conversation;
    ///
    /// assert_eq!(Conversation::Chan("lobby".into()).key(), "freeim_demo:history:chan:lobby");
    /// assert_eq!(Conversation::direct(9, 4).key(), "freeim_demo:history:direct:4:9");
    /// ```
    pub fn key(&self) -> String {
        match self {
            Conversation::Chan(chan) => format!("{KEY_PREFIX}chan:{chan}"),
            Conversation::Direct(lo, hi) => format!("{KEY_PREFIX}direct:{lo}:{hi}"),
        }
    }
}

/// The history store: blocking calls, bounded in time by the I/O timeout.
pub struct History {
    url: RedisUrl,
    io_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl History {
    /// A store on `url`; each connect, read and write is bounded by
    /// `io_timeout`, and at most `max_idle` connections wait for reuse.
    pub fn new(url: RedisUrl, io_timeout: Duration, max_idle: usize) -> History {
        History {
            url,
            io_timeout,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Appends `message` to the conversation, keeps the last [`KEEP`] and
    /// renews the expiry, in one transaction.
    ///
    /// # Errors
    /// Redis unreachable or refusing the commands.
    pub fn record(&self, conversation: &Conversation, message: &Value) -> RedisResult<()> {
        let key = conversation.key();
        let text = message.to_string();
        self.run(|connection| {
            redis::pipe()
                .atomic()
                .rpush(&key, &text)
                .ignore()
                .ltrim(&key, -(KEEP as isize), -1)
                .ignore()
                .expire(&key, TTL.as_secs() as i64)
                .ignore()
                .query::<()>(connection)
        })
    }

    /// The conversation's messages, oldest first (empty when it has none).
    ///
    /// # Errors
    /// Redis unreachable or refusing the command.
    pub fn recent(&self, conversation: &Conversation) -> RedisResult<Vec<Value>> {
        let key = conversation.key();
        let texts: Vec<String> = self.run(|connection| {
            redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query(connection)
        })?;
        Ok(texts
            .iter()
            .filter_map(|text| match serde_json::from_str(text) {
                Ok(message) => Some(message),
                Err(e) => {
                    log::warn!("skipping a history entry of {key} that is not JSON: {e}");
                    None
                }
            })
            .collect())
    }

    /// Runs `op` on an idle connection or a new one. A reused connection
    /// that fails with an I/O error (Redis restarted, the link dropped
    /// while idle) is replaced and `op` runs once more on a fresh one.
    fn run<T>(&self, op: impl Fn(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        let reused = self.idle.lock().pop();
        let result = match reused {
            Some(mut connection) => match op(&mut connection) {
                Err(e) if e.is_io_error() => {
                    log::debug!("history: replacing a dropped Redis connection: {e}");
                    self.fresh(&op)
                }
                other => other.map(|value| (value, connection)),
            },
            None => self.fresh(&op),
        };
        result.map(|(value, connection)| {
            let mut idle = self.idle.lock();
            if idle.len() < self.max_idle {
                idle.push(connection);
            }
            value
        })
    }

    fn fresh<T>(
        &self,
        op: &impl Fn(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<(T, Connection)> {
        let mut connection = self.url.connect(self.io_timeout)?;
        op(&mut connection).map(|value| (value, connection))
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("url", &self.url)
            .field("idle", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_and_direct_ones_unordered() {
        assert_eq!(
            Conversation::Chan("général".into()).key(),
            "freeim_demo:history:chan:général"
        );
        assert_eq!(Conversation::direct(7, 3), Conversation::direct(3, 7));
        assert_eq!(
            Conversation::direct(7, 3).key(),
            "freeim_demo:history:direct:3:7"
        );
    }
}
