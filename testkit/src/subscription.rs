//! [`Subscription`]: a raw RESP pub/sub connection (`SUBSCRIBE` or
//! `SSUBSCRIBE`) that hands over each message's channel and payload, without
//! the `redis` crate (whose blocking pub/sub has no sharded form).

use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::resp::{connect, read_reply, request, Reply};

/// How long [`Subscription::open`] waits for the connection and for each
/// confirmation.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// One pub/sub connection to `127.0.0.1:port`, subscribed to some channels.
pub struct Subscription {
    reader: BufReader<TcpStream>,
}

impl Subscription {
    /// Connects to `127.0.0.1:port` and sends `verb` (`SUBSCRIBE` or
    /// `SSUBSCRIBE`) with `channels`; returns once every channel is
    /// confirmed. All of an `SSUBSCRIBE`'s channels must hash to one slot
    /// served by that port (else Redis answers `CROSSSLOT` or `MOVED`,
    /// returned as an error).
    pub fn open(port: u16, verb: &str, channels: &[String]) -> io::Result<Subscription> {
        let stream = connect(port, OPEN_TIMEOUT)?;
        let mut args = vec![verb];
        args.extend(channels.iter().map(String::as_str));
        (&stream).write_all(&request(&args))?;
        let mut reader = BufReader::new(stream);
        for _ in channels {
            match read_reply(&mut reader)? {
                Reply::Array(Some(items)) if items.len() == 3 => {}
                other => return Err(io::Error::other(format!("{verb} answered {other:?}"))),
            }
        }
        Ok(Subscription { reader })
    }

    /// The next message's `(channel, payload)`, waiting at most `timeout`:
    /// `Ok(None)` when none came; an error when the connection broke or
    /// Redis pushed something else (a `sunsubscribe` when the slot moved).
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<(String, String)>> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        let reply = match read_reply(&mut self.reader) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            reply => reply?,
        };
        match reply.items() {
            [kind, channel, payload] if matches!(kind.text(), Some("message" | "smessage")) => {
                let text = |r: &Reply| r.text().unwrap_or_default().to_string();
                Ok(Some((text(channel), text(payload))))
            }
            _ => Err(io::Error::other(format!("unexpected push {reply:?}"))),
        }
    }
}
