//! A RESP2 reply parser for the subscriber's connection, without I/O: bytes
//! in, replies out, borrowing from the buffer. It reads only what a
//! subscribed connection receives: arrays of bulk strings and integers
//! (`message`, `subscribe` pushes), simple strings and errors.

/// Longest bulk string accepted (Redis's own `proto-max-bulk-len` default).
const MAX_BULK: usize = 512 * 1024 * 1024;
/// Most elements in one array (a push has three).
const MAX_ARRAY: usize = 16;

/// One reply, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+OK`.
    Simple(&'a [u8]),
    /// `-ERR …`.
    Error(&'a [u8]),
    /// `:1`.
    Integer(i64),
    /// `$3 foo`, or `$-1` (`None`).
    Bulk(Option<&'a [u8]>),
    /// `*3 …`, or `*-1` (`None`).
    Array(Option<Vec<Reply<'a>>>),
}

/// The input is not RESP2 (the connection must be dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply from Redis: {0}")]
pub struct RespError(&'static str);

/// Parses the reply at the start of `input`: `Ok(None)` when it is not
/// complete yet, else the reply and the number of bytes it used.
pub fn parse_reply(input: &[u8]) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    parse_at(input, 0, true)
}

fn parse_at(input: &[u8], at: usize, nest: bool) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    let Some((kind, line, after_line)) = line(input, at)? else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((Reply::Simple(line), after_line))),
        b'-' => Ok(Some((Reply::Error(line), after_line))),
        b':' => Ok(Some((Reply::Integer(integer(line)?), after_line))),
        b'$' => {
            let len = integer(line)?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), after_line)));
            }
            let len = usize::try_from(len).map_err(|_| RespError("bulk length"))?;
            if len > MAX_BULK {
                return Err(RespError("bulk string too long"));
            }
            let end = after_line + len;
            if input.len() < end + 2 {
                return Ok(None);
            }
            if &input[end..end + 2] != b"\r\n" {
                return Err(RespError("bulk string not followed by CRLF"));
            }
            Ok(Some((Reply::Bulk(Some(&input[after_line..end])), end + 2)))
        }
        b'*' => {
            let count = integer(line)?;
            if count < 0 {
                return Ok(Some((Reply::Array(None), after_line)));
            }
            if !nest || count as u64 > MAX_ARRAY as u64 {
                return Err(RespError("unexpected array"));
            }
            let mut items = Vec::with_capacity(count as usize);
            let mut at = after_line;
            for _ in 0..count {
                let Some((item, next)) = parse_at(input, at, false)? else {
                    return Ok(None);
                };
                items.push(item);
                at = next;
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        _ => Err(RespError("unknown reply type")),
    }
}

/// One line of a reply: its type byte, the rest of it, and where the next line starts.
type Line<'a> = (u8, &'a [u8], usize);

/// The line at `at`, if it is complete.
fn line(input: &[u8], at: usize) -> Result<Option<Line<'_>>, RespError> {
    let Some(rest) = input.get(at..) else {
        return Ok(None);
    };
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        return if rest.len() > 64 * 1024 {
            Err(RespError("line too long"))
        } else {
            Ok(None)
        };
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') if cr > 0 => Ok(Some((rest[0], &rest[1..cr], at + cr + 2))),
        Some(_) => Err(RespError("bad line ending")),
    }
}

fn integer(digits: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(RespError("bad integer"))
}

/// A pub/sub push: a `message` (or sharded `smessage`) on `channel`, a
/// sharded channel's slot moved away, or a subscription confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push<'a> {
    /// A published message.
    Message {
        /// The channel it was published on.
        channel: &'a [u8],
        /// The payload.
        payload: &'a [u8],
    },
    /// `sunsubscribe` arriving unasked: the Redis Cluster moved the sharded
    /// channel's slot to another master (subscribe there).
    SlotMoved,
    /// A (un)subscribe confirmation, or any other push the node ignores.
    Other,
}

impl<'a> Reply<'a> {
    /// Reads this reply as a pub/sub push.
    pub fn as_push(&self) -> Push<'a> {
        match self {
            Reply::Array(Some(items)) => match items.as_slice() {
                [Reply::Bulk(Some(b"message" | b"smessage")), Reply::Bulk(Some(channel)), Reply::Bulk(Some(payload))] => {
                    Push::Message { channel, payload }
                }
                [Reply::Bulk(Some(b"sunsubscribe")), ..] => Push::SlotMoved,
                _ => Push::Other,
            },
            _ => Push::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhe\r\nl\r\n";

    #[test]
    fn parses_a_message_push_with_crlf_inside_the_payload() {
        let (reply, used) = parse_reply(MESSAGE).unwrap().unwrap();
        assert_eq!(used, MESSAGE.len());
        assert_eq!(
            reply.as_push(),
            Push::Message {
                channel: b"ch",
                payload: b"he\r\nl"
            }
        );
    }

    #[test]
    fn every_prefix_is_incomplete_and_never_an_error() {
        for end in 0..MESSAGE.len() {
            assert_eq!(
                parse_reply(&MESSAGE[..end]),
                Ok(None),
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn parses_confirmations_simple_strings_errors_and_nils() {
        let subscribed = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        let (reply, _) = parse_reply(subscribed).unwrap().unwrap();
        assert_eq!(reply.as_push(), Push::Other);
        assert_eq!(
            parse_reply(b"+OK\r\n").unwrap().unwrap().0,
            Reply::Simple(b"OK")
        );
        assert_eq!(
            parse_reply(b"-ERR no\r\n").unwrap().unwrap().0,
            Reply::Error(b"ERR no")
        );
        assert_eq!(
            parse_reply(b"$-1\r\n").unwrap().unwrap().0,
            Reply::Bulk(None)
        );
        assert_eq!(
            parse_reply(b"*-1\r\n").unwrap().unwrap().0,
            Reply::Array(None)
        );
    }

    #[test]
    fn two_replies_in_one_buffer_are_read_one_after_the_other() {
        let twice = [MESSAGE, MESSAGE].concat();
        let (_, used) = parse_reply(&twice).unwrap().unwrap();
        let (second, rest) = parse_reply(&twice[used..]).unwrap().unwrap();
        assert!(matches!(second.as_push(), Push::Message { .. }));
        assert_eq!(used + rest, twice.len());
    }

    #[test]
    fn garbage_is_an_error() {
        for input in [
            &b"?\r\n"[..],
            b"\r\n",
            b":x\r\n",
            b"$3\r\nabcd\r\n",
            b"*1\r\n*1\r\n:1\r\n",
            b"*99\r\n",
            b"$-5x\r\n",
            b"+OK\rX",
        ] {
            assert!(parse_reply(input).is_err(), "{input:?}");
        }
    }
}
