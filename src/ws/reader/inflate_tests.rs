//! Unit tests for [`MessageReader`] with permessage-deflate negotiated
//! (RFC 7692 §6, §7.2.2): compressed messages inflated, whole and in
//! fragments, within the inflated size limit; RSV1 where it is not allowed.

use super::tests::{client, decode_every_way_from};
use super::*;
use crate::ws::deflate::deflate_message;
use crate::ws::frame::RSV1;

fn inflating(config: ReaderConfig) -> impl Fn() -> MessageReader {
    move || MessageReader::new(config).inflating()
}

fn kept() -> ReaderConfig {
    ReaderConfig {
        keep_data: true,
        ..ReaderConfig::default()
    }
}

/// `frames` as masked client frames, RSV1 set on the first.
fn compressed(frames: &[(OpCode, bool, &[u8])]) -> Vec<u8> {
    let mut bytes = client(frames);
    bytes[0] |= RSV1;
    bytes
}

const TEXT: &str = "{\"text\":\"hello hello hello hello hello hello\",\"from\":1}";

#[test]
fn a_compressed_text_is_inflated() {
    let data = deflate_message(TEXT.as_bytes()).unwrap();
    let bytes = compressed(&[(OpCode::Text, true, &data)]);
    let (events, error) = decode_every_way_from(&inflating(kept()), &bytes);
    assert_eq!(error, None);
    assert_eq!(events, [Event::Text(Some(TEXT.into()))]);
    let (events, error) = decode_every_way_from(&inflating(ReaderConfig::default()), &bytes);
    assert_eq!((events, error), (vec![Event::Text(None)], None));
}

#[test]
fn fragments_with_a_ping_between_them() {
    let data = deflate_message(TEXT.as_bytes()).unwrap();
    let (first, rest) = data.split_at(data.len() / 2);
    let bytes = compressed(&[
        (OpCode::Binary, false, first),
        (OpCode::Ping, true, b"p"),
        (OpCode::Continuation, true, rest),
        (OpCode::Text, true, b"plain"),
    ]);
    let (events, error) = decode_every_way_from(&inflating(kept()), &bytes);
    assert_eq!(error, None);
    assert_eq!(
        events,
        [
            Event::Ping(b"p".to_vec()),
            Event::Binary(Some(TEXT.as_bytes().to_vec())),
            Event::Text(Some("plain".into())),
        ]
    );
}

#[test]
fn rsv1_without_negotiation_is_a_protocol_error() {
    let data = deflate_message(TEXT.as_bytes()).unwrap();
    let bytes = compressed(&[(OpCode::Text, true, &data)]);
    let (_, error) = decode_every_way_from(&|| MessageReader::new(kept()), &bytes);
    assert_eq!(error, Some(ProtocolError::ReservedBits(4)));
    assert_eq!(error.unwrap().close_code(), 1002);
}

#[test]
fn rsv1_only_on_a_first_frame() {
    let mut continuation = client(&[
        (OpCode::Text, false, b"a"),
        (OpCode::Continuation, true, b"b"),
    ]);
    continuation[7] |= RSV1; // the second frame's first byte
    let mut ping = client(&[(OpCode::Ping, true, b"")]);
    ping[0] |= RSV1;
    for bytes in [continuation, ping] {
        let (_, error) = decode_every_way_from(&inflating(kept()), &bytes);
        assert_eq!(error, Some(ProtocolError::ReservedBits(4)));
    }
}

#[test]
fn a_deflate_bomb_is_closed_with_1009() {
    let bomb = deflate_message(&vec![b'a'; 1 << 20]).unwrap();
    assert!(bomb.len() < 16_384, "{} bytes", bomb.len());
    let bytes = compressed(&[(OpCode::Binary, true, &bomb)]);
    for config in [kept(), ReaderConfig::default()] {
        let (events, error) = decode_every_way_from(&inflating(config), &bytes);
        assert!(events.is_empty());
        let error = error.unwrap();
        assert!(
            matches!(error, ProtocolError::MessageTooBig { max: 65536, .. }),
            "{error:?}"
        );
        assert_eq!(error.close_code(), 1009);
    }
}

#[test]
fn compressed_bytes_are_limited_too() {
    let config = ReaderConfig {
        max_frame_size: 1 << 20,
        max_message_size: 1000,
        keep_data: false,
    };
    let limit = compressed_limit(1000) as usize;
    let bytes = compressed(&[(OpCode::Binary, true, &vec![0; limit + 1])]);
    let (_, error) = decode_every_way_from(&inflating(config), &bytes);
    assert!(
        matches!(error, Some(ProtocolError::MessageTooBig { .. })),
        "{error:?}"
    );
}

#[test]
fn incompressible_data_at_the_limit_passes() {
    // Stored blocks: 1000 bytes take 1005 compressed, over a 1000-byte frame
    // limit but within its compressed allowance.
    let config = ReaderConfig {
        max_frame_size: 1000,
        max_message_size: 1000,
        keep_data: true,
    };
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let mut stored = vec![0x00, 0xe8, 0x03, 0x17, 0xfc];
    stored.extend_from_slice(&data);
    let bytes = compressed(&[(OpCode::Binary, true, &stored)]);
    let (events, error) = decode_every_way_from(&inflating(config), &bytes);
    assert_eq!((events, error), (vec![Event::Binary(Some(data))], None));
}

#[test]
fn inflated_text_must_be_utf8() {
    let data = deflate_message(&[b'x', 0xff, b'y', b'y', b'y', b'y', b'y', b'y', b'y'])
        .unwrap_or_else(|| {
            // Too short to shrink: a stored block says the same thing.
            let mut stored = vec![0x00, 9, 0, !9, 0xff];
            stored.extend_from_slice(&[b'x', 0xff, b'y', b'y', b'y', b'y', b'y', b'y', b'y']);
            stored
        });
    let bytes = compressed(&[(OpCode::Text, true, &data)]);
    for config in [kept(), ReaderConfig::default()] {
        let (_, error) = decode_every_way_from(&inflating(config), &bytes);
        assert_eq!(error, Some(ProtocolError::InvalidUtf8));
    }
}

#[test]
fn the_first_error_is_the_same_whether_data_is_kept_or_not() {
    // Found by the `frames` fuzz target: more than one inflated piece of
    // invalid UTF-8 (a 20,000-byte stored block), then a block of the
    // reserved type 11. Invalid UTF-8 comes first either way.
    let mut data = vec![0x00, 0x20, 0x4e, 0xdf, 0xb1];
    data.extend_from_slice(&[0xff; 20_000]);
    data.push(0x07);
    let bytes = compressed(&[(OpCode::Text, true, &data)]);
    for config in [kept(), ReaderConfig::default()] {
        let (_, error) = decode_every_way_from(&inflating(config), &bytes);
        assert_eq!(error, Some(ProtocolError::InvalidUtf8));
    }
}

#[test]
fn a_message_half_read_survives_serialisation() {
    let data = deflate_message(TEXT.as_bytes()).unwrap();
    let (first, rest) = data.split_at(data.len() / 2);
    let mut head = compressed(&[(OpCode::Text, false, first)]);
    let mut reader = MessageReader::new(kept()).inflating();
    let (used, event) = reader.read(&mut head).unwrap();
    assert_eq!((used, event), (head.len(), None));
    let state = postcard::to_stdvec(&reader).unwrap();
    let mut moved: MessageReader = postcard::from_bytes(&state).unwrap();
    moved = moved.with_config(kept());
    let mut tail = client(&[(OpCode::Continuation, true, rest)]);
    let (_, event) = moved.read(&mut tail).unwrap();
    assert_eq!(event, Some(Event::Text(Some(TEXT.into()))));
    assert!(moved.is_idle());
}

#[test]
fn a_compressed_frame_header_alone_reserves_no_memory() {
    // Data is not kept: a compressed frame's bytes are held as they come,
    // so a client that announces 60,000 bytes and sends 10 costs the node
    // about 10 bytes, not 60,000 (per connection, for as long as it likes).
    let whole = compressed(&[(OpCode::Binary, true, &[0u8; 60_000])]);
    let mut start = whole[..8 + 10].to_vec();
    let mut reader = MessageReader::new(ReaderConfig::default()).inflating();
    let (used, event) = reader.read(&mut start).unwrap();
    assert_eq!((used, event), (start.len(), None));
    assert!(
        reader.buf.capacity() < 1024,
        "{} bytes reserved",
        reader.buf.capacity()
    );
}
