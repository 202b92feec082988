//! A connection's unsent bytes, in the order its peer must see them.
//!
//! A push is queued as a reference to its [`Frame`], which is encoded once and
//! shared by every socket it goes to: a queued delivery costs one 16-byte
//! [`Chunk`], not a copy of the frame; a socket that negotiated
//! permessage-deflate references the frame's compressed variant instead. Bytes of this connection alone (the
//! upgrade response, pings and pongs, close frames, echoes) go to one FIFO
//! buffer. Pings and pongs overtake queued pushes not started yet (RFC 6455
//! §5.4 lets a control frame go between any two frames), so a peer working
//! through a backlog still sees heartbeats at once; they never overtake a
//! frame partly written or the connection's own bytes.
//!
//! The front chunk is the message *in flight*; [`lag`](SendQueue::lag)
//! counts what is queued behind it, which is what the send-buffer cap bounds.
//! An empty queue owns no memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use crate::bus::Frame;

/// Most slices one vectored write gathers (Linux takes up to 1024).
const SLICES_PER_WRITE: usize = 1024;

/// What a connection has yet to send; nothing allocated while empty.
#[derive(Default)]
pub struct SendQueue(Option<Box<Backlog>>);

struct Backlog {
    /// Messages and runs of owned bytes, in order; the front one may be
    /// partly written.
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_sent: usize,
    /// The bytes of every [`Chunk::Owned`], in chunk order, from `owned_start`.
    owned: Vec<u8>,
    /// Where the front `Owned` chunk's bytes start in `owned`.
    owned_start: usize,
    /// How many chunks are [`Chunk::Owned`].
    owned_chunks: usize,
    /// Bytes of the chunks behind the front one (kept, so that checking the
    /// cap never reads a shared frame).
    behind: usize,
}

/// One entry of the queue.
enum Chunk {
    /// A frame shared with the other sockets it goes to.
    Shared(Arc<Frame>),
    /// The same, as its compressed variant ([`Frame::deflated`], made).
    Deflated(Arc<Frame>),
    /// This many bytes of the queue's own buffer.
    Owned(usize),
}

const _: () = assert!(std::mem::size_of::<Chunk>() == 16);

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Owned(len) => *len,
            _ => self.bytes(&[]).len(),
        }
    }

    /// Its bytes; an owned chunk's are in `owned`, where it starts.
    fn bytes<'a>(&'a self, owned: &'a [u8]) -> &'a [u8] {
        match self {
            Chunk::Shared(frame) => frame.bytes(),
            Chunk::Deflated(frame) => frame.bytes_as(true),
            Chunk::Owned(len) => owned.get(..*len).unwrap_or_default(),
        }
    }
}

impl SendQueue {
    /// Whether everything has been written.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Unsent bytes: the rest of the message in flight and all behind it.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |backlog| {
            let front = backlog.chunks.front().map_or(0, Chunk::len);
            front - backlog.front_sent + backlog.behind
        })
    }

    /// Unsent bytes queued behind the message in flight (the front chunk).
    pub fn lag(&self) -> usize {
        self.0.as_ref().map_or(0, |backlog| backlog.behind)
    }

    /// The lag once `extra` more bytes are queued: none when the queue is
    /// empty, since they would be the message in flight.
    pub fn lag_with(&self, extra: usize) -> usize {
        if self.is_empty() {
            0
        } else {
            self.lag() + extra
        }
    }

    /// Queues a shared frame behind everything else: its compressed variant
    /// when `deflated` (which must have been made).
    pub fn push_frame(&mut self, frame: Arc<Frame>, deflated: bool) {
        let chunk = match deflated {
            true => Chunk::Deflated(frame),
            false => Chunk::Shared(frame),
        };
        let backlog = self.backlog();
        if !backlog.chunks.is_empty() {
            backlog.behind += chunk.len();
        }
        backlog.chunks.push_back(chunk);
    }

    /// Queues the bytes `write` appends, behind everything else.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let at = self.backlog().chunks.len();
        self.insert_owned(at, write);
    }

    /// Queues the control frame `write` appends ahead of the queued pushes
    /// not started yet, behind everything else (the message in flight, the
    /// connection's own bytes, earlier control frames). When owned bytes
    /// already wait behind a push (a close frame), it goes last, as they do.
    pub fn push_control(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let backlog = self.backlog();
        let mut at = 0;
        let mut owned_before = 0;
        for (index, chunk) in backlog.chunks.iter().enumerate() {
            let started = index == 0 && backlog.front_sent > 0;
            match chunk {
                Chunk::Owned(_) => owned_before += 1,
                _ if !started => break,
                _ => {}
            }
            at = index + 1;
        }
        if owned_before < backlog.owned_chunks {
            at = backlog.chunks.len();
        }
        self.insert_owned(at, write);
    }

    /// Drops every queued message no byte of which has been written yet,
    /// keeping only the one in flight; frees the memory of a reader about to
    /// be closed.
    pub fn discard_unstarted(&mut self) {
        let Some(backlog) = self.0.as_mut() else {
            return;
        };
        let keep = usize::from(backlog.front_sent > 0);
        backlog.chunks.truncate(keep);
        let front = backlog.chunks.front();
        let kept_owned = front.map_or(0, owned_len);
        backlog.owned.truncate(backlog.owned_start + kept_owned);
        backlog.owned_chunks = usize::from(kept_owned > 0);
        backlog.behind = 0;
        self.drop_if_empty();
    }

    /// Writes as much as one vectored write takes; the count of bytes written.
    pub fn write_to(&mut self, out: &mut impl Write) -> io::Result<usize> {
        let Some(backlog) = self.0.as_mut() else {
            return Ok(0);
        };
        let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
        let count = backlog.gather(&mut slices);
        let written = out.write_vectored(&slices[..count])?;
        backlog.consume(written);
        self.drop_if_empty();
        Ok(written)
    }

    /// Inserts the bytes `write` appends as an owned chunk at index `at`,
    /// which no owned chunk may follow (so the owned bytes stay in chunk
    /// order); merged into an owned chunk just before it.
    fn insert_owned(&mut self, at: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let backlog = self.backlog();
        let before = backlog.owned.len();
        write(&mut backlog.owned);
        let added = backlog.owned.len() - before;
        let previous = at.checked_sub(1).and_then(|i| backlog.chunks.get_mut(i));
        match previous {
            _ if added == 0 => {}
            Some(Chunk::Owned(len)) => {
                *len += added;
                if at > 1 {
                    backlog.behind += added;
                }
            }
            _ => {
                // A new front chunk puts the old one (not started) behind it.
                backlog.behind += match at {
                    0 => backlog.chunks.front().map_or(0, Chunk::len),
                    _ => added,
                };
                backlog.chunks.insert(at, Chunk::Owned(added));
                backlog.owned_chunks += 1;
            }
        }
        self.drop_if_empty();
    }

    fn backlog(&mut self) -> &mut Backlog {
        self.0.get_or_insert_with(|| {
            Box::new(Backlog {
                chunks: VecDeque::new(),
                front_sent: 0,
                owned: Vec::new(),
                owned_start: 0,
                owned_chunks: 0,
                behind: 0,
            })
        })
    }

    /// Frees the backlog once no chunk is left (no chunk is ever empty).
    fn drop_if_empty(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|backlog| backlog.chunks.is_empty())
        {
            self.0 = None;
        }
    }
}

impl Backlog {
    /// Fills `slices` with the unsent bytes, in order.
    fn gather<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut owned_at = self.owned_start;
        let mut skip = self.front_sent;
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            let bytes = chunk.bytes(&self.owned[owned_at..]);
            owned_at += owned_len(chunk);
            *slot = IoSlice::new(&bytes[std::mem::take(&mut skip)..]);
            count += 1;
        }
        count
    }

    /// Marks `written` bytes, in [`gather`](Self::gather)'s order, as sent.
    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let rest = self.chunks[0].len() - self.front_sent;
            if written < rest {
                self.front_sent += written;
                return;
            }
            written -= rest;
            self.front_sent = 0;
            if let Some(Chunk::Owned(len)) = self.chunks.pop_front() {
                self.owned_chunks -= 1;
                self.owned_start += len;
                if self.owned_start == self.owned.len() {
                    self.owned.clear();
                    self.owned_start = 0;
                }
            }
            self.behind -= self.chunks.front().map_or(0, Chunk::len);
        }
    }
}

fn owned_len(chunk: &Chunk) -> usize {
    match chunk {
        Chunk::Owned(len) => *len,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
