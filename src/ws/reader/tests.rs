//! Unit tests for [`MessageReader`]: events, errors and their close codes,
//! and the same results however the input is split.

use super::*;
use crate::ws::close::close_payload;
use crate::ws::frame::{encode_frame, encode_masked_frame};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Masked client frames: (opcode, fin, payload).
pub(super) fn client(frames: &[(OpCode, bool, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (opcode, fin, payload)) in frames.iter().enumerate() {
        let key = [KEY[0], KEY[1], KEY[2], KEY[3].wrapping_add(i as u8)];
        encode_masked_frame(&mut out, *opcode, *fin, payload, key);
    }
    out
}

fn keep() -> ReaderConfig {
    ReaderConfig {
        keep_data: true,
        ..ReaderConfig::default()
    }
}

fn big(max: usize, keep_data: bool) -> ReaderConfig {
    ReaderConfig {
        max_frame_size: max,
        max_message_size: max,
        keep_data,
    }
}

/// Feeds `bytes` in pieces of `chunk` bytes; stops at the first error.
fn decode(config: ReaderConfig, bytes: &[u8], chunk: usize) -> (Vec<Event>, Option<ProtocolError>) {
    decode_from(&|| MessageReader::new(config), bytes, chunk)
}

/// [`decode`] with the reader `new` makes.
fn decode_from(
    new: &dyn Fn() -> MessageReader,
    bytes: &[u8],
    chunk: usize,
) -> (Vec<Event>, Option<ProtocolError>) {
    let mut reader = new();
    let mut input = bytes.to_vec();
    let mut events = Vec::new();
    for piece in input.chunks_mut(chunk) {
        let mut pos = 0;
        while pos < piece.len() {
            match reader.read(&mut piece[pos..]) {
                Ok((used, event)) => {
                    assert!(used > 0, "no progress");
                    pos += used;
                    events.extend(event);
                }
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

/// Decodes whole, byte at a time and in odd-sized pieces; all must agree.
fn decode_every_way(config: ReaderConfig, bytes: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
    decode_every_way_from(&|| MessageReader::new(config), bytes)
}

/// [`decode_every_way`] with the reader `new` makes.
pub(super) fn decode_every_way_from(
    new: &dyn Fn() -> MessageReader,
    bytes: &[u8],
) -> (Vec<Event>, Option<ProtocolError>) {
    let whole = decode_from(new, bytes, bytes.len().max(1));
    for chunk in [1, 2, 3, 5, 13, 127] {
        assert_eq!(decode_from(new, bytes, chunk), whole, "chunk {chunk}");
    }
    whole
}

fn text(s: &str) -> Event {
    Event::Text(Some(s.to_owned()))
}

fn binary(b: &[u8]) -> Event {
    Event::Binary(Some(b.to_vec()))
}

#[test]
fn event_table() {
    let euro = "€".as_bytes(); // e2 82 ac
    let long16 = vec![7u8; 300];
    let long64 = vec![9u8; 70_000];
    let cases: Vec<(&str, ReaderConfig, Vec<u8>, Vec<Event>)> = vec![
        (
            "single text",
            keep(),
            client(&[(OpCode::Text, true, b"Hello")]),
            vec![text("Hello")],
        ),
        (
            "single text, data dropped",
            ReaderConfig::default(),
            client(&[(OpCode::Text, true, b"Hello")]),
            vec![Event::Text(None)],
        ),
        (
            "empty text and binary",
            keep(),
            client(&[(OpCode::Text, true, b""), (OpCode::Binary, true, b"")]),
            vec![text(""), binary(b"")],
        ),
        (
            "binary kept and dropped",
            keep(),
            client(&[(OpCode::Binary, true, &[0, 1, 2, 255])]),
            vec![binary(&[0, 1, 2, 255])],
        ),
        (
            "binary dropped",
            ReaderConfig::default(),
            client(&[(OpCode::Binary, true, &[0, 1, 2, 255])]),
            vec![Event::Binary(None)],
        ),
        (
            "fragmented text, code point split across frames",
            keep(),
            client(&[
                (OpCode::Text, false, &[b'a', euro[0]]),
                (OpCode::Continuation, false, &euro[1..2]),
                (OpCode::Continuation, true, &[euro[2], b'b']),
            ]),
            vec![text("a€b")],
        ),
        (
            "fragmented text with a split code point, data dropped",
            ReaderConfig::default(),
            client(&[
                (OpCode::Text, false, &euro[..1]),
                (OpCode::Continuation, true, &euro[1..]),
            ]),
            vec![Event::Text(None)],
        ),
        (
            "ping and pong between fragments",
            keep(),
            client(&[
                (OpCode::Text, false, b"frag"),
                (OpCode::Ping, true, b"p1"),
                (OpCode::Continuation, false, b"men"),
                (OpCode::Pong, true, b"ignored"),
                (OpCode::Ping, true, b""),
                (OpCode::Continuation, true, b"ted"),
            ]),
            vec![
                Event::Ping(b"p1".to_vec()),
                Event::Pong,
                Event::Ping(Vec::new()),
                text("fragmented"),
            ],
        ),
        (
            "ping between binary fragments, data dropped",
            ReaderConfig::default(),
            client(&[
                (OpCode::Binary, false, b"ab"),
                (OpCode::Ping, true, b"x"),
                (OpCode::Continuation, true, b"cd"),
            ]),
            vec![Event::Ping(b"x".to_vec()), Event::Binary(None)],
        ),
        (
            "empty fragments",
            keep(),
            client(&[
                (OpCode::Binary, false, b""),
                (OpCode::Continuation, false, b""),
                (OpCode::Continuation, true, b"z"),
            ]),
            vec![binary(b"z")],
        ),
        (
            "125-byte ping",
            ReaderConfig::default(),
            client(&[(OpCode::Ping, true, &[1; 125])]),
            vec![Event::Ping(vec![1; 125])],
        ),
        (
            "16-bit length",
            keep(),
            client(&[(OpCode::Binary, true, &long16)]),
            vec![binary(&long16)],
        ),
        (
            "64-bit length",
            big(100_000, true),
            client(&[(OpCode::Binary, true, &long64)]),
            vec![binary(&long64)],
        ),
        (
            "64-bit length, data dropped",
            big(100_000, false),
            client(&[(OpCode::Binary, true, &long64)]),
            vec![Event::Binary(None)],
        ),
        (
            "close without payload",
            ReaderConfig::default(),
            client(&[(OpCode::Close, true, b"")]),
            vec![Event::Close(None)],
        ),
        (
            "close with code and reason",
            ReaderConfig::default(),
            client(&[(OpCode::Close, true, b"\x03\xe8bye")]),
            vec![Event::Close(Some(CloseFrame {
                code: 1000,
                reason: "bye".into(),
            }))],
        ),
        (
            "message exactly at the limits",
            big(4, true),
            client(&[
                (OpCode::Text, false, b"ab"),
                (OpCode::Continuation, true, b"cd"),
                (OpCode::Binary, true, b"wxyz"),
            ]),
            vec![text("abcd"), binary(b"wxyz")],
        ),
    ];
    for (name, config, bytes, expected) in cases {
        let (events, error) = decode_every_way(config, &bytes);
        assert_eq!(error, None, "{name}");
        assert_eq!(events, expected, "{name}");
    }
}

fn with_first_byte(mut frame: Vec<u8>, first: u8) -> Vec<u8> {
    frame[0] = first;
    frame
}

fn unmasked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, payload);
    out
}

/// Every variant, so adding one without a test case fails to compile here.
fn variant_name(e: &ProtocolError) -> &'static str {
    match e {
        ProtocolError::UnmaskedFrame => "UnmaskedFrame",
        ProtocolError::ReservedBits(_) => "ReservedBits",
        ProtocolError::ReservedOpCode(_) => "ReservedOpCode",
        ProtocolError::FragmentedControlFrame => "FragmentedControlFrame",
        ProtocolError::ControlFrameTooBig => "ControlFrameTooBig",
        ProtocolError::InvalidPayloadLength => "InvalidPayloadLength",
        ProtocolError::UnexpectedContinuation => "UnexpectedContinuation",
        ProtocolError::ExpectedContinuation => "ExpectedContinuation",
        ProtocolError::InvalidClosePayload => "InvalidClosePayload",
        ProtocolError::InvalidCloseCode(_) => "InvalidCloseCode",
        ProtocolError::InvalidCloseReason => "InvalidCloseReason",
        ProtocolError::InvalidUtf8 => "InvalidUtf8",
        ProtocolError::InvalidCompressedData => "InvalidCompressedData",
        ProtocolError::CompressedContextTakeover => "CompressedContextTakeover",
        ProtocolError::FrameTooBig { .. } => "FrameTooBig",
        ProtocolError::MessageTooBig { .. } => "MessageTooBig",
    }
}

const VARIANTS: usize = 16;

#[test]
fn error_table() {
    let small = big(100, false);
    let (close_1005, n) = close_payload(1005, "");
    let close_1005 = close_1005[..n].to_vec();
    let cases: Vec<(&str, ReaderConfig, Vec<u8>, ProtocolError, u16)> = vec![
        (
            "unmasked",
            keep(),
            unmasked(OpCode::Text, b"hi"),
            ProtocolError::UnmaskedFrame,
            1002,
        ),
        (
            "rsv1",
            keep(),
            with_first_byte(client(&[(OpCode::Text, true, b"hi")]), 0xC1),
            ProtocolError::ReservedBits(4),
            1002,
        ),
        (
            "reserved data opcode",
            keep(),
            with_first_byte(client(&[(OpCode::Text, true, b"hi")]), 0x83),
            ProtocolError::ReservedOpCode(3),
            1002,
        ),
        (
            "reserved control opcode",
            keep(),
            with_first_byte(client(&[(OpCode::Ping, true, b"")]), 0x8F),
            ProtocolError::ReservedOpCode(0xF),
            1002,
        ),
        (
            "fragmented ping",
            keep(),
            client(&[(OpCode::Ping, false, b"x")]),
            ProtocolError::FragmentedControlFrame,
            1002,
        ),
        (
            "126-byte ping",
            keep(),
            client(&[(OpCode::Ping, true, &[0; 126])]),
            ProtocolError::ControlFrameTooBig,
            1002,
        ),
        (
            "64-bit length with the top bit set",
            keep(),
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            ProtocolError::InvalidPayloadLength,
            1002,
        ),
        (
            "continuation first",
            keep(),
            client(&[(OpCode::Continuation, true, b"x")]),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            "continuation after a finished message",
            keep(),
            client(&[
                (OpCode::Text, true, b"x"),
                (OpCode::Continuation, true, b"y"),
            ]),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            "text while text is open",
            keep(),
            client(&[(OpCode::Text, false, b"x"), (OpCode::Text, true, b"y")]),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (
            "binary while text is open",
            ReaderConfig::default(),
            client(&[(OpCode::Text, false, b"x"), (OpCode::Binary, true, b"y")]),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (
            "one-byte close payload",
            keep(),
            client(&[(OpCode::Close, true, b"\x03")]),
            ProtocolError::InvalidClosePayload,
            1002,
        ),
        (
            "close code 1005",
            keep(),
            client(&[(OpCode::Close, true, &close_1005)]),
            ProtocolError::InvalidCloseCode(1005),
            1002,
        ),
        (
            "close reason not UTF-8",
            keep(),
            client(&[(OpCode::Close, true, b"\x03\xe8\xc0\xaf")]),
            ProtocolError::InvalidCloseReason,
            1007,
        ),
        (
            "invalid text",
            keep(),
            client(&[(OpCode::Text, true, b"ok \xff")]),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "text ends inside a code point",
            ReaderConfig::default(),
            client(&[
                (OpCode::Text, false, b"a\xe2"),
                (OpCode::Continuation, true, b"\x82"),
            ]),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            "frame too big",
            small,
            client(&[(OpCode::Binary, true, &[0; 101])]),
            ProtocolError::FrameTooBig { len: 101, max: 100 },
            1009,
        ),
        (
            "64-bit frame too big",
            ReaderConfig::default(),
            vec![0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
            ProtocolError::FrameTooBig {
                len: 1 << 32,
                max: 65536,
            },
            1009,
        ),
        (
            "message too big, data dropped",
            small,
            client(&[
                (OpCode::Text, false, &[b'a'; 60]),
                (OpCode::Continuation, true, &[b'a'; 41]),
            ]),
            ProtocolError::MessageTooBig { len: 101, max: 100 },
            1009,
        ),
        (
            "message too big, data kept",
            big(100, true),
            client(&[
                (OpCode::Binary, false, &[0; 100]),
                (OpCode::Continuation, true, &[0; 1]),
            ]),
            ProtocolError::MessageTooBig { len: 101, max: 100 },
            1009,
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, config, bytes, expected, code) in cases {
        let (_, error) = decode_every_way(config, &bytes);
        assert_eq!(error.as_ref(), Some(&expected), "{name}");
        assert_eq!(expected.close_code(), code, "{name}");
        seen.insert(variant_name(&expected));
    }
    // Reserved block type 11 (RFC 1951 §3.2.3), on a connection that
    // negotiated permessage-deflate.
    let corrupt = with_first_byte(client(&[(OpCode::Text, true, b"\xff\xff")]), 0xC1);
    let inflating = || MessageReader::new(ReaderConfig::default()).inflating();
    let (_, error) = decode_every_way_from(&inflating, &corrupt);
    assert_eq!(error, Some(ProtocolError::InvalidCompressedData));
    assert_eq!(ProtocolError::InvalidCompressedData.close_code(), 1007);
    seen.insert("InvalidCompressedData");
    // A distance past the message's start: a fixed-Huffman block with the
    // literal "a", then a match 5 bytes back (ws::inflate tests it from a
    // client compressor that kept its context).
    let back = with_first_byte(
        client(&[(OpCode::Text, true, &[0x4a, 0x04, 0x12, 0x00])]),
        0xC1,
    );
    let (_, error) = decode_every_way_from(&inflating, &back);
    assert_eq!(error, Some(ProtocolError::CompressedContextTakeover));
    assert_eq!(ProtocolError::CompressedContextTakeover.close_code(), 1007);
    seen.insert("CompressedContextTakeover");
    assert_eq!(seen.len(), VARIANTS, "untested variants: {seen:?}");
}

#[test]
fn invalid_utf8_fails_before_the_message_ends() {
    // A fragmented text message whose first fragment is already invalid: the
    // error must come without the final fragment (Autobahn 6.4.x).
    let bytes = client(&[(
        OpCode::Text,
        false,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
    )]);
    let (_, error) = decode_every_way(ReaderConfig::default(), &bytes);
    assert_eq!(error, Some(ProtocolError::InvalidUtf8));

    // Inside a single frame, before its payload has fully arrived.
    let bytes = client(&[(OpCode::Text, true, b"\xff and a lot more text after it")]);
    let (_, error) = decode(ReaderConfig::default(), &bytes[..8], 8);
    assert_eq!(error, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn limits_are_checked_from_the_header() {
    // Only the header of an oversized frame is needed to reject it.
    let bytes = client(&[(OpCode::Binary, true, &[0; 200])]);
    let (_, error) = decode(big(100, false), &bytes[..8], 8);
    assert_eq!(
        error,
        Some(ProtocolError::FrameTooBig { len: 200, max: 100 })
    );
}

#[test]
fn stops_after_each_event() {
    let mut input = client(&[
        (OpCode::Ping, true, b"a"),
        (OpCode::Text, true, b"b"),
        (OpCode::Ping, true, b"c"),
    ]);
    let total = input.len();
    let mut reader = MessageReader::new(keep());
    let (first, event) = reader.read(&mut input).unwrap();
    assert_eq!((first, event), (7, Some(Event::Ping(b"a".to_vec()))));
    let (second, event) = reader.read(&mut input[first..]).unwrap();
    assert_eq!((second, event), (7, Some(text("b"))));
    let (third, event) = reader.read(&mut input[first + second..]).unwrap();
    assert_eq!((third, event), (7, Some(Event::Ping(b"c".to_vec()))));
    assert_eq!(first + second + third, total);
    assert_eq!(reader.read(&mut []).unwrap(), (0, None));
}

#[test]
fn unmasks_in_place() {
    let mut input = client(&[(OpCode::Binary, true, b"payload")]);
    let mut reader = MessageReader::new(ReaderConfig::default());
    assert_eq!(
        reader.read(&mut input).unwrap(),
        (13, Some(Event::Binary(None)))
    );
    assert_eq!(&input[6..], b"payload");
}

#[test]
fn idle_only_between_messages() {
    let input = client(&[
        (OpCode::Text, false, b"ab"),
        (OpCode::Ping, true, b"p"),
        (OpCode::Continuation, true, b"cd"),
    ]);
    let mut reader = MessageReader::new(keep());
    let mut idle = Vec::new();
    for &b in &input {
        let mut byte = [b];
        reader.read(&mut byte).unwrap();
        idle.push(reader.is_idle());
    }
    // Idle only after the final byte.
    assert!(idle[..idle.len() - 1].iter().all(|i| !i));
    assert_eq!(idle.last(), Some(&true));
    assert_eq!(reader.buf.capacity(), 0);
}

#[test]
fn reader_is_small() {
    assert!(
        mem::size_of::<MessageReader>() <= 64,
        "{} bytes",
        mem::size_of::<MessageReader>()
    );
}

#[test]
fn huge_limits_are_clamped() {
    let config = big(usize::MAX, false);
    let mut reader = MessageReader::new(config);
    let mut input = vec![0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(
        reader.read(&mut input),
        Err(ProtocolError::FrameTooBig {
            len: 1 << 32,
            max: u64::from(u32::MAX)
        })
    );
}

/// A small deterministic PRNG (xorshift64*), so the test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_streams_never_panic_and_ignore_splitting() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let opcodes = [
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ];
    let texts: [&[u8]; 5] = [b"plain", "€uro".as_bytes(), b"\x03\xe8ok", b"\xff", b""];
    for _ in 0..3000 {
        let mut bytes = Vec::new();
        for _ in 0..rng.below(5) + 1 {
            let opcode = opcodes[rng.below(6) as usize];
            let fin = rng.below(3) != 0;
            let mut payload = texts[rng.below(5) as usize].to_vec();
            payload.truncate(rng.below(8) as usize);
            if rng.below(10) == 0 {
                payload.resize(rng.below(300) as usize, b'x');
            }
            let key = (rng.next() as u32).to_ne_bytes();
            encode_masked_frame(&mut bytes, opcode, fin, &payload, key);
        }
        // Corrupt a byte now and then (reserved bits, lengths, mask bit...).
        if rng.below(4) == 0 && !bytes.is_empty() {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
        }
        let config = ReaderConfig {
            max_frame_size: rng.below(400) as usize,
            max_message_size: rng.below(600) as usize,
            keep_data: rng.below(2) == 0,
        };
        decode_every_way(config, &bytes);
    }
}

/// An in-memory socket for tungstenite: reads from `input`, writes to `output`.
struct Pipe {
    input: std::io::Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl std::io::Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl std::io::Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn interoperates_with_tungstenite() {
    use tungstenite::protocol::{Role, WebSocket};
    use tungstenite::Message;

    let texts = [
        "",
        "hello",
        "€ and 𝄞",
        &"x".repeat(300),
        &"y".repeat(70_000),
    ];

    // tungstenite as the client: its masked frames decode here.
    let pipe = Pipe {
        input: std::io::Cursor::new(Vec::new()),
        output: Vec::new(),
    };
    let mut client = WebSocket::from_raw_socket(pipe, Role::Client, None);
    for text in texts {
        client.send(Message::Text(text.into())).unwrap();
    }
    client.send(Message::Ping(b"ping".to_vec().into())).unwrap();
    client.send(Message::Binary(vec![1, 2, 3].into())).unwrap();
    let sent = mem::take(&mut client.get_mut().output);
    let (events, error) = decode(big(100_000, true), &sent, 4096);
    assert_eq!(error, None);
    let mut expected: Vec<Event> = texts.iter().map(|t| text(t)).collect();
    expected.push(Event::Ping(b"ping".to_vec()));
    expected.push(binary(&[1, 2, 3]));
    assert_eq!(events, expected);

    // And the other way: server frames encoded here decode there.
    let mut bytes = Vec::new();
    for text in texts {
        encode_frame(&mut bytes, OpCode::Text, text.as_bytes());
    }
    crate::ws::close::encode_close(&mut bytes, 1001, "bye");
    let pipe = Pipe {
        input: std::io::Cursor::new(bytes),
        output: Vec::new(),
    };
    let mut client = WebSocket::from_raw_socket(pipe, Role::Client, None);
    for text in texts {
        assert_eq!(client.read().unwrap(), Message::Text(text.into()));
    }
    match client.read().unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason, "bye");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Regression (found by the `frames` fuzz target): after an error the reader
/// resumed inside the failed frame, so a text message whose invalid UTF-8 had
/// just been reported completed as `Event::Text(None)` on the next call, which
/// also consumed no byte. Now an error is final: the reader ignores the rest.
#[test]
fn an_error_is_final() {
    // Fuzzer input, without its 4 control bytes: "ok" + a UTF-16 surrogate.
    let failing = client(&[(OpCode::Text, true, b"ok\xed\xa0\x80")]);
    let valid = client(&[(OpCode::Ping, true, b"p"), (OpCode::Text, true, b"ok")]);
    for config in [ReaderConfig::default(), keep()] {
        for split in [1, 4, failing.len()] {
            let mut reader = MessageReader::new(config);
            let mut input = failing.clone();
            let mut pos = 0;
            let error = loop {
                let end = (pos + split).min(input.len());
                match reader.read(&mut input[pos..end]) {
                    Ok((used, event)) => {
                        assert!(used > 0 && event.is_none(), "split {split}");
                        pos += used;
                    }
                    Err(e) => break e,
                }
            };
            assert_eq!(error, ProtocolError::InvalidUtf8, "split {split}");
            assert_eq!(reader.buf.capacity(), 0);
            // The rest of the failed frame, and valid frames after it: all
            // consumed, nothing reported.
            let mut rest = input[pos..].to_vec();
            rest.extend_from_slice(&valid);
            assert_eq!(reader.read(&mut rest), Ok((rest.len(), None)));
            assert_eq!(reader.read(&mut []), Ok((0, None)));
            assert!(!reader.is_idle());
        }
    }
}
