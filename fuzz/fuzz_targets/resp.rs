//! Fuzzes the RESP2 reply reader of the subscriber's connection
//! (`store::resp`).
//!
//! Input layout: 2 control bytes, then the bytes Redis sent. The control
//! bytes (little-endian, modulo the stream's length + 1) pick where the
//! stream is cut in two.
//!
//! The stream is read as the subscriber reads it (`store/pubsub.rs`): bytes
//! appended to a buffer, then every complete reply taken from its front,
//! until one is incomplete or the input is an error. Beyond "no panic":
//! - fed in two pieces it gives the same replies, and the same error, as fed
//!   at once. (A line without CR is refused as soon as it passes 64 KiB,
//!   CR or no CR later; a first piece is under 64 KiB, so that refusal
//!   cannot depend on the cut here. It can for the bytes of a reply cut
//!   short, below.)
//! - every reply uses at least one byte and no more than it was given; the
//!   bytes it used, cut short, are incomplete (not a reply, and not an
//!   error unless `line too long`);
//! - a reply written back in canonical RESP2 (the module has no encoder, so
//!   [`encode`] is here) parses back to the same reply, using all of it and
//!   no more bytes than the original;
//! - [`Reply::as_push`] finds a message exactly in a 3-array of bulk strings
//!   starting with `message`, and hands back its channel and payload.
#![no_main]

use freeim_server::store::resp::{parse_reply, Push, Reply};
use libfuzzer_sys::fuzz_target;

/// What reading a stream gave: each reply (canonically encoded, so owned and
/// comparable) and the error that ended it, if one did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    replies: Vec<Vec<u8>>,
    error: Option<String>,
}

/// A subscriber's buffer (what has arrived and not been read yet) and what
/// was read from it.
#[derive(Default)]
struct Reader {
    buf: Vec<u8>,
    read: Outcome,
}

impl Reader {
    /// Appends `bytes` and takes every complete reply; nothing more after an
    /// error (the node drops the connection).
    fn feed(&mut self, bytes: &[u8]) {
        if self.read.error.is_some() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            match parse_reply(&self.buf[at..]) {
                Ok(Some((reply, used))) => {
                    check(&reply, &self.buf[at..], used);
                    self.read.replies.push(encode(&reply));
                    at += used;
                }
                Ok(None) => break,
                Err(e) => {
                    self.read.error = Some(e.to_string());
                    break;
                }
            }
        }
        self.buf.drain(..at);
    }
}

/// Whether `error` is the refusal of a line without CR past 64 KiB, the one
/// verdict that depends on where the input ends (see the module docs).
fn line_too_long(error: &str) -> bool {
    error.ends_with("line too long")
}

/// The checks on one reply that used `used` bytes of `input`.
fn check(reply: &Reply<'_>, input: &[u8], used: usize) {
    assert!(
        used >= 1 && used <= input.len(),
        "used {used} of {}",
        input.len()
    );
    let bytes = &input[..used];
    for end in [0, 1, used / 2, used - 1] {
        match parse_reply(&bytes[..end]) {
            _ if end == used => {}
            Ok(None) => {}
            Err(e) if line_too_long(&e.to_string()) => {}
            cut => panic!("{end} of the {used} bytes of {reply:?}: {cut:?}"),
        }
    }
    let encoded = encode(reply);
    assert_eq!(
        parse_reply(&encoded),
        Ok(Some((reply.clone(), encoded.len()))),
        "{reply:?} written back as {encoded:?}"
    );
    assert!(
        encoded.len() <= used,
        "{reply:?}: {encoded:?} longer than {bytes:?}"
    );
    match (reply.as_push(), reply) {
        (Push::Message { channel, payload }, Reply::Array(Some(items))) => assert_eq!(
            items.as_slice(),
            [
                Reply::Bulk(Some(b"message")),
                Reply::Bulk(Some(channel)),
                Reply::Bulk(Some(payload))
            ]
        ),
        (Push::Message { .. }, _) => panic!("a message from {reply:?}"),
        (Push::Other, Reply::Array(Some(items))) => assert!(
            !matches!(
                items.as_slice(),
                [
                    Reply::Bulk(Some(b"message")),
                    Reply::Bulk(Some(_)),
                    Reply::Bulk(Some(_))
                ]
            ),
            "a message missed in {reply:?}"
        ),
        (Push::Other, _) => {}
    }
}

/// `reply` in canonical RESP2: shortest numbers, `-1` for nil.
fn encode(reply: &Reply<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write(reply, &mut out);
    out
}

fn write(reply: &Reply<'_>, out: &mut Vec<u8>) {
    let line = |out: &mut Vec<u8>, kind: u8, text: &[u8]| {
        out.push(kind);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    };
    match reply {
        Reply::Simple(text) => line(out, b'+', text),
        Reply::Error(text) => line(out, b'-', text),
        Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
        Reply::Bulk(None) => line(out, b'$', b"-1"),
        Reply::Bulk(Some(data)) => {
            line(out, b'$', data.len().to_string().as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => line(out, b'*', b"-1"),
        Reply::Array(Some(items)) => {
            line(out, b'*', items.len().to_string().as_bytes());
            for item in items {
                write(item, out);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((ctl, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cut = usize::from(u16::from_le_bytes(*ctl)) % (stream.len() + 1);

    let mut whole = Reader::default();
    whole.feed(stream);
    let whole = whole.read;

    let mut pieces = Reader::default();
    pieces.feed(&stream[..cut]);
    pieces.feed(&stream[cut..]);
    let pieces = pieces.read;

    assert_eq!(whole, pieces, "cut at {cut}");
});
