//! A message on its way to sockets: the [`Frame`] encoded once and shared,
//! who it is for on one loop ([`Audience`], [`Members`]), and the [`Push`].

use std::sync::Arc;
use std::time::Instant;

use crate::ws::{encode_frame, OpCode};

/// A channel's members held by this node, split by owning event loop.
pub type Members = Arc<Vec<Vec<i64>>>;

/// A message frame encoded once and shared by every socket it goes to.
#[derive(Debug, Clone)]
pub struct Frame {
    bytes: Vec<u8>,
    header_len: usize,
    received: Instant,
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
