//! permessage-deflate's sending side (RFC 7692 §7.2.1): a message compressed
//! on its own, without context takeover, so that the same bytes serve every
//! receiver that negotiated the extension.
//!
//! The compressor is this thread's (one per event loop, made on first use
//! and reset before every message): no connection holds compressor state.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress};

use super::frame::{frame_header, OpCode, RSV1};

/// The zlib compression level (1 fastest to 9 smallest): see
/// PERFORMANCE.md, "permessage-deflate", for the measurement behind it.
pub const LEVEL: u32 = 1;

/// Base-2 logarithm of the LZ77 window the compressor uses: 2^15 bytes, the
/// largest RFC 7692 allows (§7.1.2.1). A peer that limited the server's
/// window to 2^n bytes can still take a message of at most 2^n bytes
/// compressed with it: with no context takeover, no back-reference reaches
/// past the message's own start (see [`fits_window`]).
pub const WINDOW_BITS: u8 = 15;

/// The four bytes RFC 7692 removes from the end of a compressed message
/// (§7.2.1) and the receiver appends again before inflating (§7.2.2): the
/// LEN and NLEN of the empty stored block a sync flush ends with.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    static COMPRESSOR: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// Whether a message of `payload_len` bytes compressed here may go to a peer
/// that allows the server a window of 2^`window_bits` bytes: without
/// context takeover no distance exceeds the message's length.
pub fn fits_window(payload_len: usize, window_bits: u8) -> bool {
    window_bits >= WINDOW_BITS || payload_len <= 1 << window_bits
}

/// `payload` compressed as one message's data (RFC 7692 §7.2.1: DEFLATE
/// ending in a sync flush, whose last four bytes, [`TAIL`], are removed).
/// `None` when that is not shorter than `payload`: the message is then
/// better sent uncompressed.
pub fn deflate_message(payload: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = slot.get_or_insert_with(|| Compress::new(Compression::new(LEVEL), false));
        compressor.reset();
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        loop {
            let consumed = compressor.total_in() as usize;
            let rest = payload.get(consumed..).unwrap_or_default();
            compressor
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .expect("a raw deflate stream takes any input");
            // The flush is complete once it left room in the output.
            if compressor.total_in() as usize == payload.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        debug_assert!(
            out.ends_with(&TAIL),
            "a sync flush ends with an empty stored block"
        );
        out.truncate(out.len().saturating_sub(TAIL.len()));
        (out.len() < payload.len()).then_some(out)
    })
}

/// One unmasked server frame (FIN and RSV1 set) carrying `payload`
/// compressed as a message of `opcode`; `None` when compressing does not
/// make the payload shorter (see [`deflate_message`]).
pub fn encode_deflated_frame(opcode: OpCode, payload: &[u8]) -> Option<Vec<u8>> {
    let data = deflate_message(payload)?;
    let (mut header, len) = frame_header(opcode, true, data.len());
    header[0] |= RSV1;
    let mut frame = Vec::with_capacity(len + data.len());
    frame.extend_from_slice(&header[..len]);
    frame.extend_from_slice(&data);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::inflate::inflate_message;

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        inflate_message(data, u32::MAX, &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn round_trips_and_is_the_same_for_every_call() {
        let json = br#"{"text":"hello hello hello hello hello","from":1001,"to":[1002,1003]}"#;
        let once = deflate_message(json).unwrap();
        assert!(once.len() < json.len());
        assert!(!once.ends_with(&TAIL));
        assert_eq!(
            deflate_message(json).unwrap(),
            once,
            "no context carried over"
        );
        assert_eq!(inflate(&once), json);
    }

    #[test]
    fn rfc_7692_example_hello() {
        // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
        assert_eq!(
            inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
            b"Hello"
        );
        assert_eq!(deflate_message(b"Hello"), None, "not shorter");
    }

    #[test]
    fn large_messages_grow_the_output() {
        let text: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let data = deflate_message(&text).unwrap();
        assert_eq!(inflate(&data), text);
    }

    #[test]
    fn frames_carry_rsv1() {
        let payload = vec![b'a'; 300];
        let frame = encode_deflated_frame(OpCode::Text, &payload).unwrap();
        assert_eq!(frame[0], 0x80 | RSV1 | 0x01);
        assert_eq!(usize::from(frame[1]), frame.len() - 2);
        assert_eq!(inflate(&frame[2..]), payload);
    }

    #[test]
    fn window_limits() {
        assert!(fits_window(1 << 20, 15));
        assert!(fits_window(256, 8));
        assert!(!fits_window(257, 8));
        assert!(fits_window(1024, 10));
    }
}
