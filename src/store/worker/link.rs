//! The worker's connection: opened with the scripts loaded on it, and a
//! pipeline exchange that stops at the first failure.
//!
//! `redis`'s own `req_packed_commands` keeps reading after a failed read,
//! one read per remaining reply, each waiting the full read timeout: on a
//! silent link a batch of 2,000 jobs would block the worker for hours. Here
//! the first failed read ends the exchange, and the replies that did arrive
//! are kept: those jobs have a known outcome.

use std::time::{Duration, Instant};

use redis::{RedisError, RedisResult, Value};

use freeim_protocol::scripts::presence::PresenceScripts;

/// A live Redis connection with the script hashes loaded on it.
pub(super) struct Link {
    pub(super) conn: redis::Connection,
    pub(super) socket_opened: String,
    pub(super) socket_closed: String,
    pub(super) reap_node: String,
    pub(super) restore_presence: String,
    pub(super) rename_sockets: String,
    /// The server's `run_id` (new on every start of a Redis process): tells
    /// a reconnect to the same server from one to a restarted or promoted
    /// one. `None` when `INFO` is not allowed here.
    pub(super) run_id: Option<String>,
    /// When an exchange last completed on it.
    last_used: Instant,
}

/// A link unused for this long is probed with `PING` before the next
/// exchange (see [`Link::probe_if_idle`]).
const IDLE_PROBE_AFTER: Duration = Duration::from_millis(5);

/// What came back for a pipeline.
pub(super) struct Exchange {
    /// The replies that arrived, in order: one per command from the first.
    pub(super) replies: Vec<Value>,
    /// Why the others did not (none when every reply arrived).
    pub(super) error: Option<RedisError>,
}

/// The `run_id` field of an `INFO server` reply.
fn run_id(info: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

impl Link {
    /// Connects to the master serving `slot` (any server but a cluster's:
    /// the one the URL names; timeouts of `timeout`) and loads the scripts.
    pub(super) fn open(
        url: &redis_link::RedisUrl,
        slot: u16,
        scripts: &PresenceScripts,
        timeout: Duration,
    ) -> RedisResult<Link> {
        let mut conn = url.connect_to_slot(slot, timeout)?;
        let mut load = |source: &str| -> RedisResult<String> {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(source)
                .query(&mut conn)
        };
        let socket_opened = load(&scripts.socket_opened)?;
        let socket_closed = load(&scripts.socket_closed)?;
        let reap_node = load(&scripts.reap_node)?;
        let restore_presence = load(&scripts.restore_presence)?;
        let rename_sockets = load(&scripts.rename_sockets)?;
        let info: RedisResult<String> = redis::cmd("INFO").arg("server").query(&mut conn);
        let run_id = match info {
            Ok(info) => run_id(&info),
            Err(e) if e.kind() == redis::ErrorKind::Io => return Err(e),
            Err(_) => None, // INFO renamed or denied: unknown
        };
        Ok(Link {
            conn,
            socket_opened,
            socket_closed,
            reap_node,
            restore_presence,
            rename_sockets,
            run_id,
            last_used: Instant::now(),
        })
    }

    /// When the link has been idle for [`IDLE_PROBE_AFTER`], checks it
    /// with `PING` before anything is written: a connection that died
    /// while idle (`CLIENT KILL`, a proxy's idle timeout, a restart) fails
    /// here, where nothing of the next pipeline has reached Redis yet, so
    /// the caller can send it all on a fresh connection. Costs one round
    /// trip, only after a quiet spell.
    pub(super) fn probe_if_idle(&mut self) -> RedisResult<()> {
        if self.last_used.elapsed() < IDLE_PROBE_AFTER {
            return Ok(());
        }
        redis::cmd("PING").query::<String>(&mut self.conn)?;
        self.last_used = Instant::now();
        Ok(())
    }

    /// Writes `packed` (`count` commands) and reads replies until all came
    /// or one read fails. Error replies are replies (`Value::ServerError`).
    pub(super) fn exchange(&mut self, packed: &[u8], count: usize) -> Exchange {
        let mut replies = Vec::with_capacity(count);
        if let Err(error) = self.conn.send_packed_command(packed) {
            return Exchange {
                replies,
                error: Some(error),
            };
        }
        while replies.len() < count {
            match self.conn.recv_response() {
                Ok(reply) => replies.push(reply),
                Err(error) => {
                    return Exchange {
                        replies,
                        error: Some(error),
                    }
                }
            }
        }
        self.last_used = Instant::now();
        Exchange {
            replies,
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_run_id_in_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c9e\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info).as_deref(), Some("4f1c9e"));
        assert_eq!(run_id("# Server\r\nredis_version:7.0.15\r\n"), None);
    }
}
