//! permessage-deflate's receiving side (RFC 7692 §7.2.2): a client's
//! compressed message inflated within the message size limit.
//!
//! The node answers every offer with `client_no_context_takeover`, so each
//! message inflates on its own: one inflater per thread (per event loop,
//! made on first use and reset before every message), never one per
//! connection. A message whose inflated size passes the limit stops being
//! inflated at once (a "deflate bomb" costs at most the limit plus one
//! [`CHUNK`] of work).

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

use super::deflate::TAIL;
use super::error::ProtocolError;

/// Bytes inflated per step, on the stack.
pub const CHUNK: usize = 16 * 1024;

thread_local! {
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Inflates one message's compressed data (the frames' payloads joined,
/// without [`TAIL`], which is appended here as §7.2.2 says), handing the
/// output to `sink` piece by piece, in order.
///
/// # Errors
/// - [`ProtocolError::MessageTooBig`] once more than `limit` bytes came out
///   (close 1009);
/// - [`ProtocolError::CompressedContextTakeover`] when the data refers back
///   past the message's start, as a client keeping its compressor's
///   context would although `client_no_context_takeover` was agreed
///   (close 1007);
/// - [`ProtocolError::InvalidCompressedData`] when the data is not DEFLATE
///   otherwise (close 1007);
/// - whatever `sink` returns.
pub fn inflate_message(
    compressed: &[u8],
    limit: u32,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    INFLATER.with_borrow_mut(|slot| {
        let inflater = slot.get_or_insert_with(|| Decompress::new(false));
        inflater.reset(false);
        let mut chunk = [0u8; CHUNK];
        let mut total: u64 = 0;
        for input in [compressed, &TAIL[..]] {
            let mut pos = 0;
            loop {
                let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
                let rest = input.get(pos..).unwrap_or_default();
                let status = inflater
                    .decompress(rest, &mut chunk, FlushDecompress::Sync)
                    .map_err(|error| match error.message() {
                        Some(message) if message.contains("too far back") => {
                            ProtocolError::CompressedContextTakeover
                        }
                        _ => ProtocolError::InvalidCompressedData,
                    })?;
                let read = (inflater.total_in() - before_in) as usize;
                let wrote = (inflater.total_out() - before_out) as usize;
                pos += read;
                total += wrote as u64;
                if total > u64::from(limit) {
                    return Err(ProtocolError::MessageTooBig {
                        len: total,
                        max: u64::from(limit),
                    });
                }
                sink(chunk.get(..wrote).unwrap_or_default())?;
                if status == Status::StreamEnd {
                    // A final block (BFINAL) ends the message's data.
                    return Ok(());
                }
                let drained = wrote < chunk.len();
                if (pos >= input.len() && drained) || (read == 0 && wrote == 0) {
                    break;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::deflate_message;

    fn inflate(data: &[u8], limit: u32) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        inflate_message(data, limit, &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = deflate_message(&vec![0u8; 10 << 20]).unwrap();
        assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
        let err = inflate(&bomb, 64 * 1024).unwrap_err();
        assert!(
            matches!(err, ProtocolError::MessageTooBig { max: 65536, len } if len <= 65536 + CHUNK as u64)
        );
        assert_eq!(err.close_code(), 1009);
    }

    #[test]
    fn exactly_the_limit_passes() {
        let data = deflate_message(&[b'x'; 4096]).unwrap();
        assert_eq!(inflate(&data, 4096).unwrap().len(), 4096);
        assert!(inflate(&data, 4095).is_err());
    }

    #[test]
    fn garbage_is_invalid_data() {
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        let err = inflate(&[0xff, 0xff, 0xff], 1024).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCompressedData);
        assert_eq!(err.close_code(), 1007);
    }

    #[test]
    fn context_takeover_is_told_apart() {
        // A client compressor kept between messages: the second refers back
        // into the first, which this message does not have.
        let mut compress = flate2::Compress::new(flate2::Compression::default(), false);
        let text = b"a sentence long enough to be found again in the next message";
        let mut next = || {
            let mut out = Vec::with_capacity(256);
            compress
                .compress_vec(text, &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - TAIL.len());
            out
        };
        let (first, second) = (next(), next());
        assert_eq!(inflate(&first, 1000).unwrap(), text);
        let err = inflate(&second, 1000).unwrap_err();
        assert_eq!(err, ProtocolError::CompressedContextTakeover);
        assert_eq!(err.close_code(), 1007);
        assert!(err.to_string().contains("client_no_context_takeover"));
    }

    #[test]
    fn a_final_block_ends_the_message() {
        // "Hello" with BFINAL set (RFC 7692 §7.2.3.3 allows it).
        assert_eq!(
            inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn empty_message() {
        // RFC 7692 §7.2.3.6: an empty message compressed is one 0x00 byte.
        assert_eq!(inflate(&[0x00], 100).unwrap(), b"");
        assert_eq!(inflate(&[], 100).unwrap(), b"");
    }

    #[test]
    fn the_inflater_is_reset_between_messages() {
        let first = deflate_message(&[b'a'; 1000]).unwrap();
        // Cut mid-block: it may inflate to a part or fail; either way the
        // next message starts afresh.
        let _ = inflate(&first[..first.len() / 2], 10_000);
        assert_eq!(inflate(&first, 10_000).unwrap(), vec![b'a'; 1000]);
    }
}
