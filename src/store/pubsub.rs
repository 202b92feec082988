//! The subscriber's pub/sub connection: a raw stream to Redis (TCP, TLS or
//! Unix, from `redis-link`) that reads as much as the kernel has, then hands
//! every complete message in it to the caller at once. One `read` can thus
//! carry hundreds of commands, which the subscriber posts to the event loops
//! with one wake-up per loop.
//!
//! Liveness: a subscribed connection carries nothing while nobody publishes,
//! so silence alone proves nothing. After a third of the liveness bound
//! without a byte, the connection sends `PING` (allowed in subscribed mode).
//! An answer within the grace period ([`grace`]) keeps the link confirmed; later than that,
//! [`PubSubConnection::read`] reports [`Liveness::Unconfirmed`] (the node's
//! `/healthz` turns 503) until a byte arrives; and when another third of
//! the bound passes without one, the link is declared dead with
//! [`io::ErrorKind::TimedOut`], and the caller reconnects.

use std::io::{self, Read, Write};
use std::time::Duration;

use redis_link::{RedisUrl, Shutdown, Stream};

use super::resp::{parse_reply, Push, Reply};

/// Bytes read per `read` call at first; grows for larger messages.
const READ_CHUNK: usize = 64 * 1024;

/// How long a `PING` may go unanswered before the link counts as
/// unconfirmed: a fifth of the probe interval, at least 100 ms and at most
/// 1 s (a round trip, with room for a busy Redis or a fork).
fn grace(probe_after: Duration) -> Duration {
    (probe_after / 5).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// What a [`PubSubConnection::read`] knows of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Bytes came, or a `PING` was answered in time.
    Confirmed,
    /// A `PING` has gone unanswered for longer than the grace period ([`grace`]).
    Unconfirmed,
}

/// Where the liveness probe stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// Subscribing: a timeout is a failure.
    Opening,
    /// Waiting for traffic; a timeout sends `PING`.
    Idle,
    /// `PING` sent, within the grace period.
    Pinged,
    /// `PING` unanswered past the grace period; a timeout is a dead link.
    Overdue,
}

/// A subscribed connection.
pub struct PubSubConnection {
    stream: Stream,
    buf: Vec<u8>,
    filled: usize,
    probe: Probe,
    /// A third of the liveness bound.
    probe_after: Duration,
}

impl PubSubConnection {
    /// Connects (`redis-link` authenticates the stream; in a Redis Cluster,
    /// to the master serving `slot`, which every one of `channels` hashes
    /// to), subscribes to `channels` with `subscribe` (`SUBSCRIBE`, or
    /// `SSUBSCRIBE` for sharded channels), waiting at most `timeout` for each
    /// step, and then proves the link alive within `liveness` (see the
    /// module docs).
    pub fn open(
        url: &RedisUrl,
        (slot, subscribe): (u16, &str),
        channels: &[String],
        timeout: Duration,
        liveness: Duration,
    ) -> io::Result<Self> {
        let mut conn = PubSubConnection {
            stream: url.connect_stream_to_slot(slot, timeout)?,
            buf: vec![0; READ_CHUNK],
            filled: 0,
            probe: Probe::Opening,
            probe_after: liveness / 3,
        };
        let mut subscribe: Vec<&[u8]> = vec![subscribe.as_bytes()];
        subscribe.extend(channels.iter().map(|c| c.as_bytes()));
        conn.write_command(&subscribe)?;
        conn.expect_replies(channels.len())?;
        conn.stream.set_timeout(Some(conn.probe_after))?;
        conn.probe = Probe::Idle;
        Ok(conn)
    }

    /// A handle that ends a blocked [`read`](Self::read) from another
    /// thread (it then fails with EOF), e.g. when Sentinel announces a new
    /// primary.
    pub fn shutdown_handle(&self) -> io::Result<Shutdown> {
        self.stream.shutdown_handle()
    }

    /// Blocks until data arrives, then calls `on_message(channel, payload)`
    /// for every complete message received; returns early, without data,
    /// when the link turns [`Liveness::Unconfirmed`]. Fails when the
    /// connection does or is declared dead.
    pub fn read(&mut self, mut on_message: impl FnMut(&[u8], &[u8])) -> io::Result<Liveness> {
        if !self.fill()? {
            return Ok(Liveness::Unconfirmed);
        }
        let mut at = 0;
        while let Some((reply, used)) = parse_reply(&self.buf[at..self.filled]).map_err(invalid)? {
            if let Reply::Error(text) = reply {
                return Err(invalid(String::from_utf8_lossy(text)));
            }
            match reply.as_push() {
                Push::Message { channel, payload } => on_message(channel, payload),
                Push::SlotMoved => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the cluster moved this node's slot to another master: subscribing there",
                    ))
                }
                Push::Other => {}
            }
            at += used;
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        Ok(Liveness::Confirmed)
    }

    /// Reads replies until `count` have arrived; an error reply fails.
    fn expect_replies(&mut self, mut count: usize) -> io::Result<()> {
        while count > 0 {
            self.fill()?;
            let mut at = 0;
            while count > 0 {
                let Some((reply, used)) =
                    parse_reply(&self.buf[at..self.filled]).map_err(invalid)?
                else {
                    break;
                };
                if let Reply::Error(text) = reply {
                    return Err(invalid(String::from_utf8_lossy(text)));
                }
                at += used;
                count -= 1;
            }
            self.buf.copy_within(at..self.filled, 0);
            self.filled -= at;
        }
        Ok(())
    }

    /// One `read` into the free end of the buffer (grown when full), moving
    /// the liveness probe on at each timeout (see the module docs). `false`
    /// when the link just turned unconfirmed and nothing was read.
    fn fill(&mut self) -> io::Result<bool> {
        if self.filled == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        let n = loop {
            let error = match self.stream.read(&mut self.buf[self.filled..]) {
                Ok(n) => break n,
                Err(e) if is_timeout(&e) => e,
                Err(e) => return Err(e),
            };
            match self.probe {
                Probe::Opening => return Err(error),
                Probe::Idle => {
                    self.write_command(&[b"PING"])?;
                    self.stream.set_timeout(Some(grace(self.probe_after)))?;
                    self.probe = Probe::Pinged;
                }
                Probe::Pinged => {
                    let grace = grace(self.probe_after);
                    let rest = self.probe_after.saturating_sub(grace).max(grace);
                    self.stream.set_timeout(Some(rest))?;
                    self.probe = Probe::Overdue;
                    return Ok(false);
                }
                Probe::Overdue => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no answer to PING: the link to Redis is dead",
                    ))
                }
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        if matches!(self.probe, Probe::Pinged | Probe::Overdue) {
            self.stream.set_timeout(Some(self.probe_after))?;
            self.probe = Probe::Idle;
        }
        self.filled += n;
        Ok(true)
    }

    fn write_command(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let mut command = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            command.extend_from_slice(arg);
            command.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&command)?;
        self.stream.flush()
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn invalid(error: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}
