//! The streaming frame decoder: bytes from a client in, [`Event`]s out.
//!
//! [`MessageReader`] holds only what must survive between two reads: an
//! incomplete header (at most 14 bytes, in a fixed array), the current frame's
//! remaining payload length, mask key and offset, the UTF-8 state of an open
//! text message, and — only while needed — a `Vec` with a control frame's
//! payload or, with [`ReaderConfig::keep_data`], the message being assembled.
//! Payload bytes are unmasked and validated in the caller's buffer, so the
//! caller can read into a scratch buffer shared by all connections.
//!
//! It enforces the server-side rules of RFC 6455 §5: client frames must be
//! masked, control frames may interleave with the fragments of a message, and
//! text must be UTF-8 (checked as it arrives, so an invalid sequence fails the
//! connection at once even inside a fragmented message).
//!
//! With permessage-deflate negotiated ([`MessageReader::inflating`]), a
//! message whose first frame has RSV1 set is compressed (RFC 7692 §6.1): its
//! payload is collected as it arrives (within [`compressed_limit`] of
//! `max_message_size`) and inflated when its last frame is complete, within
//! `max_message_size` of *inflated* bytes ([`inflate_message`]); its text is
//! checked for UTF-8 then. RSV1 anywhere else (a continuation, a control
//! frame, a connection that did not negotiate the extension) is a protocol
//! error.

use std::mem;

use serde::{Deserialize, Serialize};

use super::close::{parse_close_payload, CloseFrame};
use super::error::ProtocolError;
use super::frame::{header_len, parse_frame_header, FrameHeader, OpCode, MAX_HEADER_LEN};
use super::inflate::inflate_message;
use super::mask::apply_mask_at;
use super::utf8::Utf8Validator;

/// Limits and options for a [`MessageReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// The largest payload one frame may announce; larger frames fail with
    /// [`ProtocolError::FrameTooBig`] as soon as the header is read.
    pub max_frame_size: usize,
    /// The largest total payload of a (possibly fragmented) data message;
    /// enforced even when the data is not kept, and on a compressed
    /// message's inflated size.
    pub max_message_size: usize,
    /// Whether data messages are assembled and returned. The push node only
    /// validates what clients send, so it leaves this off.
    pub keep_data: bool,
}

impl Default for ReaderConfig {
    /// 64 KiB per frame and per message, data not kept.
    fn default() -> Self {
        Self {
            max_frame_size: 64 * 1024,
            max_message_size: 64 * 1024,
            keep_data: false,
        }
    }
}

/// What the decoder produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete, valid text message. The text is `None` unless
    /// [`ReaderConfig::keep_data`] is set.
    Text(Option<String>),
    /// A complete binary message. The data is `None` unless
    /// [`ReaderConfig::keep_data`] is set.
    Binary(Option<Vec<u8>>),
    /// A ping; its payload is to be echoed in a pong.
    Ping(Vec<u8>),
    /// A pong (its payload is ignored).
    Pong,
    /// The peer's close frame; `None` when its payload was empty. The caller
    /// should answer with a close frame and stop feeding the reader.
    Close(Option<CloseFrame>),
}

/// Where the reader is within the byte stream.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum State {
    /// Between frames: `len` bytes of the next header collected so far.
    Header { buf: [u8; MAX_HEADER_LEN], len: u8 },
    /// Inside a frame's payload.
    Payload {
        /// Payload bytes not yet seen.
        remaining: u32,
        /// The frame's masking key.
        mask: [u8; 4],
        /// Payload bytes already seen, modulo 4 (the mask phase).
        phase: u8,
        /// The frame's opcode.
        opcode: OpCode,
        /// The frame's FIN bit.
        fin: bool,
    },
    /// A protocol error was returned: the rest of the stream is ignored.
    Failed,
}

impl State {
    const fn between_frames() -> Self {
        Self::Header {
            buf: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }
}

/// The data message currently open (its first frame seen, its last not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Open {
    None,
    Text,
    Binary,
}

/// Streaming, server-side WebSocket decoder; see the [module docs](self).
///
/// Feed it everything read from the socket with [`read`](Self::read). After
/// an error the connection must be failed; the reader then ignores whatever
/// it is fed (it consumes all input and yields no event) and holds no heap
/// memory.
///
/// It serialises (serde) to what it holds between two reads, for a
/// connection handed to another process; its limits are not part of that
/// state, [`with_config`](Self::with_config) gives them back.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageReader {
    /// Control frame payload being collected and, with `keep_data`, the data
    /// message being assembled in front of it. Empty (no allocation) when no
    /// such payload is in flight.
    #[serde(with = "serde_bytes")]
    buf: Vec<u8>,
    state: State,
    /// Bytes of the open data message announced so far (frame headers read).
    message_len: u32,
    #[serde(skip)]
    max_frame_size: u32,
    #[serde(skip)]
    max_message_size: u32,
    utf8: Utf8Validator,
    open: Open,
    #[serde(skip)]
    keep_data: bool,
    /// permessage-deflate was negotiated: RSV1 may mark a compressed message.
    inflate: bool,
    /// The open data message is compressed: its payload is collected in
    /// `buf` and inflated when it is complete.
    deflated: bool,
}

/// Clamps a configured limit to the `u32` the reader stores.
fn limit(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl MessageReader {
    /// A reader at the start of a connection. Limits above `u32::MAX` are
    /// clamped to it.
    pub fn new(config: ReaderConfig) -> Self {
        Self {
            buf: Vec::new(),
            state: State::between_frames(),
            message_len: 0,
            max_frame_size: limit(config.max_frame_size),
            max_message_size: limit(config.max_message_size),
            utf8: Utf8Validator::new(),
            open: Open::None,
            keep_data: config.keep_data,
            inflate: false,
            deflated: false,
        }
    }

    /// This reader, taking messages compressed with permessage-deflate
    /// without client context takeover (RFC 7692 §7.2.2): for a connection
    /// that negotiated the extension.
    pub fn inflating(mut self) -> Self {
        self.inflate = true;
        self
    }

    /// This reader (deserialised state) with `config`'s limits and options.
    pub fn with_config(mut self, config: ReaderConfig) -> Self {
        self.max_frame_size = limit(config.max_frame_size);
        self.max_message_size = limit(config.max_message_size);
        self.keep_data = config.keep_data;
        self
    }

    /// Streams through `input` (unmasking payload bytes in place), returning
    /// how many bytes it consumed and the event completed, if any.
    ///
    /// Call repeatedly until all input is consumed: a call stops right after
    /// the frame that completes an event, and consumes everything otherwise.
    /// Partial frames are consumed too, and remembered. A call with non-empty
    /// input always consumes at least one byte.
    ///
    /// An error is returned once; the reader then fails for good (see the
    /// [type docs](Self)).
    pub fn read(&mut self, input: &mut [u8]) -> Result<(usize, Option<Event>), ProtocolError> {
        if matches!(self.state, State::Failed) {
            return Ok((input.len(), None));
        }
        self.decode(input).inspect_err(|_| {
            // Without this, the next call could resume inside the frame that
            // failed: a text message whose invalid UTF-8 was just reported
            // would then complete as a valid `Event::Text`, consuming nothing.
            self.state = State::Failed;
            self.open = Open::None;
            self.deflated = false;
            self.buf = Vec::new();
        })
    }

    /// [`read`](Self::read) before the failure check.
    fn decode(&mut self, input: &mut [u8]) -> Result<(usize, Option<Event>), ProtocolError> {
        let mut pos = 0;
        loop {
            match &mut self.state {
                State::Header { buf, len } => {
                    let rest = input.get(pos..).unwrap_or_default();
                    let (used, header) = fill_header(buf, len, rest)?;
                    pos += used;
                    match header {
                        Some(header) => self.start_frame(header)?,
                        None => return Ok((pos, None)),
                    }
                }
                State::Payload {
                    remaining,
                    mask,
                    phase,
                    opcode,
                    fin,
                } => {
                    let (opcode, fin) = (*opcode, *fin);
                    if *remaining > 0 {
                        let rest = input.get_mut(pos..).unwrap_or_default();
                        let n = rest.len().min(*remaining as usize);
                        let Some(chunk) = rest.get_mut(..n).filter(|c| !c.is_empty()) else {
                            return Ok((pos, None));
                        };
                        apply_mask_at(chunk, *mask, usize::from(*phase));
                        // `n <= remaining`, a u32.
                        *remaining -= n as u32;
                        *phase = ((usize::from(*phase) + n) % 4) as u8;
                        let done = *remaining == 0;
                        pos += n;
                        self.take_payload(opcode, chunk)?;
                        if !done {
                            return Ok((pos, None));
                        }
                    }
                    self.state = State::between_frames();
                    if let Some(event) = self.finish_frame(opcode, fin)? {
                        return Ok((pos, Some(event)));
                    }
                }
                State::Failed => return Ok((input.len(), None)),
            }
        }
    }

    /// Whether the reader is between messages: no partial header, no open
    /// data message, no payload held. When idle the reader holds no heap
    /// memory.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { len: 0, .. }) && self.open == Open::None
    }

    /// Checks a complete header against the connection's state and enters
    /// its payload.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        let mask = header.mask.ok_or(ProtocolError::UnmaskedFrame)?;
        let opens_message = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.compressed && !(self.inflate && opens_message) {
            return Err(ProtocolError::ReservedBits(0b100));
        }
        let compressed =
            header.compressed || (header.opcode == OpCode::Continuation && self.deflated);
        let max_frame = match compressed {
            true => compressed_limit(self.max_frame_size),
            false => self.max_frame_size,
        };
        let len = u32::try_from(header.payload_len)
            .ok()
            .filter(|&len| len <= max_frame)
            .ok_or(ProtocolError::FrameTooBig {
                len: header.payload_len,
                max: u64::from(max_frame),
            })?;
        if header.opcode.is_control() {
            if header.opcode != OpCode::Pong {
                self.buf.reserve_exact(len as usize);
            }
        } else {
            match (header.opcode, self.open) {
                (OpCode::Continuation, Open::None) => {
                    return Err(ProtocolError::UnexpectedContinuation)
                }
                (OpCode::Continuation, _) => {}
                (_, Open::Text | Open::Binary) => return Err(ProtocolError::ExpectedContinuation),
                (opcode, Open::None) => {
                    self.open = if opcode == OpCode::Text {
                        Open::Text
                    } else {
                        Open::Binary
                    };
                    self.message_len = 0;
                    self.deflated = header.compressed;
                    self.utf8.reset();
                }
            }
            let max = match self.deflated {
                true => compressed_limit(self.max_message_size),
                false => self.max_message_size,
            };
            let total = u64::from(self.message_len) + u64::from(len);
            self.message_len = u32::try_from(total)
                .ok()
                .filter(|&total| total <= max)
                .ok_or(ProtocolError::MessageTooBig {
                    len: total,
                    max: u64::from(max),
                })?;
            // Kept data is reserved for at once; compressed bytes the node
            // only inflates grow as they arrive, so announcing a frame costs
            // a client the bytes it sends, not the length it announces.
            if self.keep_data && self.holds_message() {
                self.buf.reserve(len as usize);
            }
        }
        self.state = State::Payload {
            remaining: len,
            mask,
            phase: 0,
            opcode: header.opcode,
            fin: header.fin,
        };
        Ok(())
    }

    /// Handles a piece of unmasked payload of the current frame.
    fn take_payload(&mut self, opcode: OpCode, chunk: &[u8]) -> Result<(), ProtocolError> {
        match opcode {
            OpCode::Pong => {}
            OpCode::Ping | OpCode::Close => self.buf.extend_from_slice(chunk),
            OpCode::Continuation | OpCode::Text | OpCode::Binary if self.deflated => {
                self.buf.extend_from_slice(chunk);
            }
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                if self.open == Open::Text {
                    self.utf8
                        .feed(chunk)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                if self.keep_data {
                    self.buf.extend_from_slice(chunk);
                }
            }
        }
        Ok(())
    }

    /// Called when a frame's payload is complete: yields the event, if any.
    fn finish_frame(&mut self, opcode: OpCode, fin: bool) -> Result<Option<Event>, ProtocolError> {
        let event = match opcode {
            OpCode::Ping => Event::Ping(self.take_control()),
            OpCode::Pong => Event::Pong,
            OpCode::Close => Event::Close(parse_close_payload(&self.take_control())?),
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                if !fin {
                    return Ok(None);
                }
                let open = mem::replace(&mut self.open, Open::None);
                self.message_len = 0;
                if mem::take(&mut self.deflated) {
                    return self.inflate_message(open).map(Some);
                }
                match open {
                    Open::Text => {
                        self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                        let text = if self.keep_data {
                            let bytes = mem::take(&mut self.buf);
                            Some(String::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8)?)
                        } else {
                            None
                        };
                        Event::Text(text)
                    }
                    Open::Binary => Event::Binary(self.keep_data.then(|| mem::take(&mut self.buf))),
                    // `start_frame` opens a message before any data frame.
                    Open::None => return Ok(None),
                }
            }
        };
        Ok(Some(event))
    }

    /// Whether the open message's payload is collected in `buf`: kept, or
    /// compressed.
    fn holds_message(&self) -> bool {
        self.open != Open::None && (self.keep_data || self.deflated)
    }

    /// The event of a complete compressed message (`open` says its type),
    /// its payload in `buf`: inflated within the message limit, text
    /// checked for UTF-8 piece by piece as it inflates (so the first error
    /// is the same whether the data is kept or not), the data kept only
    /// with `keep_data`.
    fn inflate_message(&mut self, open: Open) -> Result<Event, ProtocolError> {
        let compressed = mem::take(&mut self.buf);
        let (keep, text) = (self.keep_data, open == Open::Text);
        let utf8 = &mut self.utf8;
        utf8.reset();
        let mut data = Vec::new();
        inflate_message(&compressed, self.max_message_size, &mut |piece| {
            if text {
                utf8.feed(piece).map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            if keep {
                data.extend_from_slice(piece);
            }
            Ok(())
        })?;
        if text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(match (text, keep) {
            (true, true) => Event::Text(Some(
                String::from_utf8(data).map_err(|_| ProtocolError::InvalidUtf8)?,
            )),
            (true, false) => Event::Text(None),
            (false, _) => Event::Binary(keep.then_some(data)),
        })
    }

    /// Removes the control frame payload from the end of `buf`.
    fn take_control(&mut self) -> Vec<u8> {
        // An open message's collected bytes come first in `buf`.
        let start = if self.holds_message() {
            (self.message_len as usize).min(self.buf.len())
        } else {
            0
        };
        if start == 0 {
            mem::take(&mut self.buf)
        } else {
            self.buf.split_off(start)
        }
    }
}

/// The most compressed bytes a message (or frame) whose inflated size is
/// limited to `max` may take: `max` plus 1/1024 and 64 bytes, room for DEFLATE's
/// overhead on data that does not compress (5 bytes per stored block of up
/// to 65,535 bytes, RFC 1951 §3.2.4).
pub fn compressed_limit(max: u32) -> u32 {
    max.saturating_add(max / 1024).saturating_add(64)
}

/// Collects header bytes from `input` into `buf`/`len`, copying no byte past
/// the header. Returns the bytes used and the header once complete.
fn fill_header(
    buf: &mut [u8; MAX_HEADER_LEN],
    len: &mut u8,
    input: &[u8],
) -> Result<(usize, Option<FrameHeader>), ProtocolError> {
    if *len == 0 {
        // Fast path: the whole header is in `input`.
        if let Some((header, used)) = parse_frame_header(input)? {
            return Ok((used, Some(header)));
        }
    }
    let mut used = 0;
    loop {
        let have = usize::from(*len);
        let collected = buf.get(..have).unwrap_or_default();
        if have >= 2 {
            if let Some((header, _)) = parse_frame_header(collected)? {
                *len = 0;
                return Ok((used, Some(header)));
            }
        }
        let need = match collected {
            [_, second, ..] => header_len(*second),
            _ => 2,
        };
        let avail = input.get(used..).unwrap_or_default();
        let take = need.saturating_sub(have).min(avail.len());
        let (Some(dst), Some(src)) = (buf.get_mut(have..have + take), avail.get(..take)) else {
            return Ok((used, None));
        };
        if take == 0 {
            return Ok((used, None));
        }
        dst.copy_from_slice(src);
        // `have + take <= need <= MAX_HEADER_LEN`.
        *len = (have + take) as u8;
        used += take;
    }
}

#[cfg(test)]
mod inflate_tests;
#[cfg(test)]
mod tests;
