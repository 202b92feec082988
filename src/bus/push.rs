//! A message on its way to sockets: the [`Frame`] encoded once and shared,
//! who it is for on one loop ([`Audience`], [`Members`]), and the [`Push`].

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::ws::deflate::encode_deflated_frame;
use crate::ws::{encode_frame, OpCode};

/// A channel's members held by this node, split by owning event loop.
pub type Members = Arc<Vec<Vec<i64>>>;

/// A message frame encoded once and shared by every socket it goes to,
/// with its permessage-deflate variant (RFC 7692 §7.2.1, RSV1 set),
/// compressed at most once, by the first loop that has a receiver for it.
///
/// Each loop works on its own copy of the frame (see `on_push`), but the
/// copies share the compressed variant: a message to 10,000 sockets on any
/// number of loops is compressed once.
#[derive(Debug, Clone)]
pub struct Frame {
    bytes: Vec<u8>,
    header_len: usize,
    received: Instant,
    /// The compressed frame once made; `None` inside when compressing did
    /// not make it shorter.
    deflated: Arc<OnceLock<Option<Vec<u8>>>>,
}

impl Frame {
    /// Encodes `text` as one unmasked WebSocket text frame.
    pub fn text(text: &str) -> Frame {
        let mut bytes = Vec::with_capacity(text.len() + 10);
        encode_frame(&mut bytes, OpCode::Text, text.as_bytes());
        let header_len = bytes.len() - text.len();
        Frame {
            bytes,
            header_len,
            received: Instant::now(),
            deflated: Arc::default(),
        }
    }

    /// The frame compressed, made now if no copy of it was compressed yet
    /// (`on_compress` is then called, once for all copies); `None` when the
    /// message is shorter than `min_bytes` or does not get shorter
    /// compressed. Another loop compressing it meanwhile is waited for.
    pub fn deflated(&self, min_bytes: usize, on_compress: impl FnOnce()) -> Option<&[u8]> {
        if self.payload_len() < min_bytes {
            return None;
        }
        let made = self.deflated.get_or_init(|| {
            on_compress();
            encode_deflated_frame(OpCode::Text, self.payload().as_bytes())
        });
        made.as_deref()
    }

    /// The bytes a socket gets: the compressed frame when `deflated` and it
    /// was made ([`deflated`](Self::deflated)), the plain one otherwise.
    pub fn bytes_as(&self, deflated: bool) -> &[u8] {
        match self.deflated.get() {
            Some(Some(compressed)) if deflated => compressed,
            _ => &self.bytes,
        }
    }

    /// When the command carrying this message arrived from Redis.
    pub fn received(&self) -> Instant {
        self.received
    }

    /// The whole frame, header included.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The length in bytes of the message text the frame carries.
    pub fn payload_len(&self) -> usize {
        self.bytes.len() - self.header_len
    }

    /// The message text the frame carries.
    pub fn payload(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.header_len..]).expect("frames are built from text")
    }
}

/// Who a push is for, on one loop.
#[derive(Debug)]
pub enum Audience {
    /// Every socket of these clients.
    Clients(Vec<i64>),
    /// Every socket of the clients in this loop's share of a channel.
    Members(Members),
    /// Every open socket (broadcast).
    Everyone,
}

/// One message to deliver on one loop.
#[derive(Debug)]
pub struct Push {
    /// The sender (0 = system); a sender's single socket is not echoed to.
    pub sender: i64,
    /// Receivers on this loop.
    pub audience: Audience,
    /// The encoded frame.
    pub frame: Arc<Frame>,
    /// Whether the sender asked for receipts (direct messages only).
    pub receipt: bool,
}
