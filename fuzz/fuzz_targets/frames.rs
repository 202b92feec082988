//! Fuzzes the streaming frame decoder and the frame encoders.
//!
//! Input layout: 4 control bytes, then the client's byte stream.
//! - `ctl[0] & 7` picks the largest piece the stream is cut into (1, 2, 3, 5,
//!   8, 16, 64 bytes or whole); `ctl[1..4]` seed the piece sizes.
//! - `ctl[1] & 0x80` picks tiny limits (frame limit `ctl[2]`, message limit
//!   `2 * ctl[3]`) instead of 4 KiB per frame / 16 KiB per message, so the
//!   limit checks are reached with small inputs.
//! - `ctl[0] & 0x08` makes the readers inflating (permessage-deflate
//!   negotiated): RSV1 marks a compressed message, inflated within the
//!   message limit.
//!
//! The stream is decoded whole and in pieces, with `keep_data` off and on.
//! All four runs must give the same events (data aside) and the same error;
//! every call must make progress; after an error the rest of the stream is
//! fed anyway and must not panic. Each event is then checked against the
//! limits, encoded again (masked, and as a server frame) and decoded back.
#![no_main]

use freeim_server::ws::close::{is_valid_code, parse_close_payload};
use freeim_server::ws::frame::parse_frame_header;
use freeim_server::ws::{
    encode_close, encode_frame, encode_masked_frame, Event, MessageReader, OpCode, ProtocolError,
    ReaderConfig,
};
use libfuzzer_sys::fuzz_target;

/// What decoding a stream gave.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
}

/// Piece sizes for cutting the stream.
struct Pieces {
    state: u32,
    max: usize,
}

impl Pieces {
    fn new(ctl: [u8; 4]) -> Self {
        const MAX: [usize; 8] = [1, 2, 3, 5, 8, 16, 64, usize::MAX];
        Self {
            state: u32::from_le_bytes([ctl[1], ctl[2], ctl[3], 0x9e]) | 1,
            max: MAX[usize::from(ctl[0] & 7)],
        }
    }

    fn next(&mut self) -> usize {
        // xorshift32
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        if self.max == usize::MAX {
            usize::MAX
        } else {
            1 + self.state as usize % self.max
        }
    }
}

/// How the readers are made: their limits, and whether they inflate.
#[derive(Clone, Copy)]
struct Setup {
    config: ReaderConfig,
    inflate: bool,
}

impl Setup {
    fn reader(self) -> MessageReader {
        let reader = MessageReader::new(self.config);
        if self.inflate {
            reader.inflating()
        } else {
            reader
        }
    }
}

/// Decodes `stream` cut into pieces from `pieces` (`None`: whole).
fn decode(setup: Setup, stream: &[u8], mut pieces: Option<Pieces>) -> Outcome {
    let mut reader = setup.reader();
    let mut input = stream.to_vec();
    let mut events = Vec::new();
    let mut start = 0;
    let mut error = None;
    while start < input.len() {
        let size = pieces.as_mut().map_or(usize::MAX, Pieces::next);
        let end = start.saturating_add(size).min(input.len());
        let piece = &mut input[start..end];
        let mut pos = 0;
        while pos < piece.len() {
            if error.is_some() {
                // After an error the state is unspecified, but calls must
                // neither panic nor stall.
                match reader.read(&mut piece[pos..]) {
                    Ok((used, _)) => {
                        assert!(used > 0 && used <= piece.len() - pos, "used {used}");
                        pos += used;
                    }
                    Err(_) => pos += 1,
                }
                continue;
            }
            match reader.read(&mut piece[pos..]) {
                Ok((used, event)) => {
                    assert!(used > 0, "no progress");
                    assert!(
                        used <= piece.len() - pos,
                        "used {used} of {}",
                        piece.len() - pos
                    );
                    pos += used;
                    events.extend(event);
                }
                Err(e) => error = Some(e),
            }
        }
        start = end;
    }
    Outcome { events, error }
}

/// The event without its data, as a reader without `keep_data` reports it.
fn without_data(event: &Event) -> Event {
    match event {
        Event::Text(_) => Event::Text(None),
        Event::Binary(_) => Event::Binary(None),
        other => other.clone(),
    }
}

/// Checks an event from a `keep_data` reader against the limits, and that it
/// survives being encoded again and decoded back.
fn check_event(setup: Setup, event: &Event, key: [u8; 4]) {
    let config = setup.config;
    let (opcode, payload): (OpCode, Vec<u8>) = match event {
        Event::Text(Some(text)) => (OpCode::Text, text.as_bytes().to_vec()),
        Event::Binary(Some(data)) => (OpCode::Binary, data.clone()),
        Event::Text(None) | Event::Binary(None) => panic!("keep_data reader dropped data"),
        Event::Ping(payload) => (OpCode::Ping, payload.clone()),
        Event::Pong => return,
        Event::Close(None) => (OpCode::Close, Vec::new()),
        Event::Close(Some(frame)) => {
            assert!(is_valid_code(frame.code), "close code {}", frame.code);
            let mut payload = frame.code.to_be_bytes().to_vec();
            payload.extend_from_slice(frame.reason.as_bytes());
            // The server's own close frame round-trips through the parser.
            let mut out = Vec::new();
            encode_close(&mut out, frame.code, &frame.reason);
            let (header, used) = parse_frame_header(&out).unwrap().unwrap();
            assert_eq!(header.opcode, OpCode::Close);
            let parsed = parse_close_payload(&out[used..]).unwrap();
            assert_eq!(parsed.as_ref(), Some(frame));
            (OpCode::Close, payload)
        }
    };
    if opcode.is_control() {
        assert!(payload.len() <= 125, "control payload {}", payload.len());
    } else {
        assert!(
            payload.len() <= config.max_message_size,
            "message {}",
            payload.len()
        );
    }

    // As a server frame: header parses back to the same opcode and length.
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, &payload);
    let (header, used) = parse_frame_header(&out).unwrap().unwrap();
    assert_eq!(
        (header.opcode, header.fin, header.mask, header.payload_len),
        (opcode, true, None, payload.len() as u64)
    );
    assert_eq!(&out[used..], &payload[..]);

    // As masked client frames (data cut to the frame limit): decodes to the
    // same event. With a frame limit of 0 only a compressed frame (which may
    // take DEFLATE's overhead past the limit) can carry data, and its data
    // cannot be sent again uncompressed.
    if config.max_frame_size == 0 && !payload.is_empty() {
        return;
    }
    let mut out = Vec::new();
    if opcode.is_control() || payload.is_empty() {
        encode_masked_frame(&mut out, opcode, true, &payload, key);
    } else {
        let pieces: Vec<&[u8]> = payload.chunks(config.max_frame_size.max(1)).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            encode_masked_frame(&mut out, op, i + 1 == pieces.len(), piece, key);
        }
    }
    let again = decode(setup, &out, None);
    assert_eq!(again.error, None);
    assert_eq!(again.events, std::slice::from_ref(event));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (ctl, stream) = data.split_at(4);
    let ctl = [ctl[0], ctl[1], ctl[2], ctl[3]];
    let (max_frame_size, max_message_size) = if ctl[1] & 0x80 != 0 {
        (usize::from(ctl[2]), 2 * usize::from(ctl[3]))
    } else {
        (4 * 1024, 16 * 1024)
    };
    let config = |keep_data| Setup {
        config: ReaderConfig {
            max_frame_size,
            max_message_size,
            keep_data,
        },
        inflate: ctl[0] & 0x08 != 0,
    };

    let kept = decode(config(true), stream, None);
    let kept_pieces = decode(config(true), stream, Some(Pieces::new(ctl)));
    assert_eq!(kept_pieces, kept, "keep_data: pieces differ from whole");
    let dropped = decode(config(false), stream, None);
    let dropped_pieces = decode(config(false), stream, Some(Pieces::new(ctl)));
    assert_eq!(
        dropped_pieces, dropped,
        "no keep_data: pieces differ from whole"
    );

    assert_eq!(dropped.error, kept.error, "keep_data changes the error");
    let kept_shape: Vec<Event> = kept.events.iter().map(without_data).collect();
    assert_eq!(dropped.events, kept_shape, "keep_data changes the events");

    for event in &kept.events {
        check_event(config(true), event, [ctl[3], ctl[2], ctl[1], ctl[0]]);
    }
});
