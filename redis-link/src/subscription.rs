//! [`Subscription`]: a pub/sub connection that proves itself alive.
//!
//! A subscribed connection carries nothing while nobody publishes, so
//! silence proves nothing, and a link that is open but passes nothing on (a
//! hung proxy, a NAT that forgot the flow, a frozen server) would leave its
//! reader deaf for good: no error ever comes. So after `liveness / 3`
//! without a byte the subscription sends `PING` (allowed in subscribed mode;
//! RESP2 answers `["pong", ""]`), and when another `liveness / 3` passes
//! without a byte it fails with an I/O `TimedOut` error: the caller drops it
//! and subscribes again.
//!
//! In a Redis Cluster ([`RedisUrl::subscribe_to_slot`]) the subscription is
//! sharded: `SSUBSCRIBE` on the master serving the channels' slot, messages
//! arriving as `smessage`; when the slot moves to another master (a
//! failover, resharding) Redis ends the subscription with a `sunsubscribe`
//! push, reported as an error so that the caller subscribes again where the
//! slot is now.
//!
//! Commands are encoded by `redis::cmd` and replies parsed by
//! `redis::Parser`, which keeps a partly read reply across read timeouts.
//! The `redis` crate's own sync `PubSub` is not used: it can only `PING` by
//! blocking until the answer, and after a read timeout it skips the next
//! reply, which in subscribed mode is a message.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use redis::{Cmd, ErrorKind, Msg, Parser, PushKind, RedisError, RedisResult, Value};

use crate::address::RedisUrl;
use crate::connect::Primary;
use crate::stream::Stream;

/// A subscribed connection (see the module docs).
pub struct Subscription {
    stream: Stream,
    parser: Parser,
    probe_after: Duration,
    last_heard: Instant,
    ping_sent: Option<Instant>,
}

impl RedisUrl {
    /// Subscribes to `channels` on the primary: connects (resolving it as
    /// [`connect`](RedisUrl::connect) does), authenticates, subscribes and
    /// waits for every confirmation, each step bounded by `timeout`.
    /// [`Subscription::next_message`] then returns within `poll` and
    /// proves the link alive within `liveness`.
    ///
    /// # Errors
    /// Connect, TLS, AUTH or SUBSCRIBE failures.
    pub fn subscribe(
        &self,
        channels: &[&str],
        timeout: Duration,
        poll: Duration,
        liveness: Duration,
    ) -> RedisResult<Subscription> {
        let stream = self.connect_stream(timeout)?;
        Subscription::open(stream, "SUBSCRIBE", channels, poll, liveness)
    }

    /// [`subscribe`](Self::subscribe) to channels that all hash to `slot`:
    /// in a Redis Cluster a sharded subscription (`SSUBSCRIBE`) on the
    /// master serving the slot now (see the module docs); anywhere else the
    /// same as `subscribe`.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe); no master for the slot; a `MOVED`
    /// reply when the slot moved meanwhile.
    pub fn subscribe_to_slot(
        &self,
        slot: u16,
        channels: &[&str],
        timeout: Duration,
        poll: Duration,
        liveness: Duration,
    ) -> RedisResult<Subscription> {
        if !self.is_cluster() {
            return self.subscribe(channels, timeout, poll, liveness);
        }
        let stream = self.connect_stream_to_slot(slot, timeout)?;
        Subscription::open(stream, "SSUBSCRIBE", channels, poll, liveness)
    }

    /// The same on `sentinel` (with the sentinels
    /// credentials), for its announcements such as `+switch-master`.
    pub(crate) fn subscribe_sentinel(
        &self,
        sentinel: (String, u16),
        channels: &[&str],
        timeout: Duration,
        poll: Duration,
        liveness: Duration,
    ) -> RedisResult<Subscription> {
        let sentinel = Primary::Tcp(sentinel.0, sentinel.1);
        let stream = self.stream_to(sentinel, &self.sentinel_auth, timeout)?;
        Subscription::open(stream, "SUBSCRIBE", channels, poll, liveness)
    }
}

impl Subscription {
    /// Subscribes on an authenticated stream with `subscribe` (`SUBSCRIBE`
    /// or `SSUBSCRIBE`).
    fn open(
        stream: Stream,
        subscribe: &str,
        channels: &[&str],
        poll: Duration,
        liveness: Duration,
    ) -> RedisResult<Subscription> {
        let probe_after = liveness / 3;
        let mut link = Subscription {
            stream,
            parser: Parser::new(),
            probe_after,
            last_heard: Instant::now(),
            ping_sent: None,
        };
        let mut command = redis::cmd(subscribe);
        for channel in channels {
            command.arg(*channel);
        }
        link.send(&command)?;
        let confirmation = subscribe.to_ascii_lowercase();
        for _ in channels {
            match link.reply()? {
                Value::Array(items) if kind_of(&items) == Some(confirmation.as_bytes()) => {}
                other => {
                    return Err(RedisError::from((
                        ErrorKind::Client,
                        "unexpected answer to a subscription",
                        format!("{subscribe}: {other:?}"),
                    )))
                }
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
    /// The connection failed, Redis answered with an error, or the link is
    /// dead: no byte for `liveness / 3` after a `PING` (an I/O `TimedOut`
    /// error, see [`is_liveness_failure`](Subscription::is_liveness_failure)).
    pub fn next_message(&mut self) -> RedisResult<Option<Msg>> {
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
        match value {
            Value::ServerError(err) => Err(err.into()),
            Value::Array(mut items) if kind_of(&items) == Some(b"smessage") => {
                Ok(Msg::from_owned_value(Value::Push {
                    kind: PushKind::SMessage,
                    data: items.split_off(1),
                }))
            }
            Value::Array(items) if kind_of(&items) == Some(b"sunsubscribe") => {
                Err(RedisError::from((
                    ErrorKind::Client,
                    "Redis ended the sharded subscription: the slot moved",
                )))
            }
            value => Ok(Msg::from_owned_value(value)),
        }
    }

    /// Whether `error` from [`next_message`](Subscription::next_message)
    /// means the link went silent (rather than closed or refused).
    pub fn is_liveness_failure(error: &RedisError) -> bool {
        error.is_timeout()
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

    /// The next reply, an error reply turned into an error.
    fn reply(&mut self) -> RedisResult<Value> {
        match self.parser.parse_value(&mut self.stream)? {
            Value::ServerError(err) => Err(err.into()),
            value => Ok(value),
        }
    }
}

/// The kind of a pub/sub reply's items (`subscribe`, `smessage`, `pong`, …):
/// the first one.
fn kind_of(items: &[Value]) -> Option<&[u8]> {
    match items.first() {
        Some(Value::BulkString(kind)) => Some(kind),
        _ => None,
    }
}
