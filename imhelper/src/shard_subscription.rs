//! [`ShardSubscription`]: a Redis Cluster's sharded pub/sub link
//! (`SSUBSCRIBE`) to the master serving one node's presence channels, which
//! proves itself alive with `PING` as `redis_link::Subscription` does for
//! plain `SUBSCRIBE` (see its docs: silence proves nothing, so after
//! `liveness / 3` without a byte it sends `PING`, and fails when another
//! `liveness / 3` passes without one).
//!
//! Messages arrive as `["smessage", channel, payload]`. When the slot moves
//! to another master (a failover, resharding), Redis ends the subscription
//! with a `["sunsubscribe", channel, count]` push: that is reported as a
//! failure, so the caller subscribes again, on the master serving the slot
//! now.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use freeim_protocol::key_slot;
use redis::{Cmd, ErrorKind, Msg, Parser, PushKind, RedisError, RedisResult, Value};
use redis_link::{RedisUrl, Stream};

/// A sharded subscription (see the module docs).
pub(crate) struct ShardSubscription {
    stream: Stream,
    parser: Parser,
    probe_after: Duration,
    last_heard: Instant,
    ping_sent: Option<Instant>,
}

impl ShardSubscription {
    /// Subscribes to `channels` (all in one hash slot) on the master serving
    /// their slot now: connects (asking the cluster which master that is),
    /// authenticates, subscribes and waits for every confirmation, each step
    /// bounded by `timeout`. [`next_message`](Self::next_message) then
    /// returns within `poll` and proves the link alive within `liveness`.
    ///
    /// # Errors
    /// Connect, TLS, AUTH or SSUBSCRIBE failures (a `MOVED` reply when the
    /// cluster's slot map changed meanwhile).
    pub(crate) fn open(
        url: &RedisUrl,
        channels: &[&str],
        timeout: Duration,
        poll: Duration,
        liveness: Duration,
    ) -> RedisResult<ShardSubscription> {
        let slot = channels.first().map_or(0, |channel| key_slot(channel));
        let stream = url.connect_stream_to_slot(slot, timeout)?;
        let probe_after = liveness / 3;
        let mut link = ShardSubscription {
            stream,
            parser: Parser::new(),
            probe_after,
            last_heard: Instant::now(),
            ping_sent: None,
        };
        let mut subscribe = redis::cmd("SSUBSCRIBE");
        for channel in channels {
            subscribe.arg(*channel);
        }
        link.send(&subscribe)?;
        for _ in channels {
            let reply = match link.parser.parse_value(&mut link.stream)? {
                Value::ServerError(err) => return Err(err.into()),
                reply => reply,
            };
            let confirmed = match &reply {
                Value::Array(items) => kind_of(items) == Some(b"ssubscribe".as_slice()),
                _ => false,
            };
            if !confirmed {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "unexpected answer to SSUBSCRIBE",
                    format!("{reply:?}"),
                )));
            }
        }
        link.stream.set_timeout(Some(poll.min(probe_after)))?;
        link.last_heard = Instant::now();
        Ok(link)
    }

    /// The next published message; `Ok(None)` when none came within the
    /// poll interval (check what you need to, then call again).
    ///
    /// # Errors
    /// The connection failed, Redis answered with an error, the slot moved
    /// (Redis ended the subscription), or the link is dead: no byte for
    /// `liveness / 3` after a `PING` (an I/O `TimedOut` error).
    pub(crate) fn next_message(&mut self) -> RedisResult<Option<Msg>> {
        let value = match self.parser.parse_value(&mut self.stream) {
            Ok(value) => value,
            Err(err) if err.is_timeout() => {
                self.probe()?;
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        // Any reply proves the link alive: a message, the PING's `pong`.
        self.last_heard = Instant::now();
        self.ping_sent = None;
        let mut items = match value {
            Value::ServerError(err) => return Err(err.into()),
            Value::Array(items) => items,
            _ => return Ok(None),
        };
        match kind_of(&items) {
            Some(b"smessage") => Ok(Msg::from_owned_value(Value::Push {
                kind: PushKind::SMessage,
                data: items.split_off(1),
            })),
            Some(b"sunsubscribe") => Err(RedisError::from((
                ErrorKind::Client,
                "Redis ended the shard subscription: the slot moved",
            ))),
            // The PING's `pong`.
            _ => Ok(None),
        }
    }

    /// After a quiet poll: `PING` once the link has been silent for
    /// `liveness / 3`, fail once the `PING` has gone unanswered as long.
    fn probe(&mut self) -> RedisResult<()> {
        match self.ping_sent {
            None if self.last_heard.elapsed() >= self.probe_after => {
                self.send(&redis::cmd("PING"))?;
                self.ping_sent = Some(Instant::now());
            }
            Some(sent) if sent.elapsed() >= self.probe_after => {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer to PING within {:?}: the link is dead",
                        self.probe_after
                    ),
                )));
            }
            _ => {}
        }
        Ok(())
    }

    fn send(&mut self, command: &Cmd) -> RedisResult<()> {
        self.stream.write_all(&command.get_packed_command())?;
        self.stream.flush()?;
        Ok(())
    }
}

/// The kind of a pub/sub reply's items (`ssubscribe`, `smessage`, `pong`,
/// …): the first one.
fn kind_of(items: &[Value]) -> Option<&[u8]> {
    match items.first() {
        Some(Value::BulkString(kind)) => Some(kind),
        _ => None,
    }
}
