//! permessage-deflate for test clients, written from RFC 7692 §7.2 with
//! `flate2` directly (not the node's code): a message's data compressed
//! without context takeover, and inflated.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The offer every browser sends.
pub const BROWSER_OFFER: &str =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// What the node answers to it.
pub const NODE_ANSWER: &str = "Sec-WebSocket-Extensions: permessage-deflate; \
                               server_no_context_takeover; client_no_context_takeover\r\n";

/// Text of chat words (a xorshift over eight of them, from `seed`, not 0)
/// appended to `text` until it is at least `len` bytes: it compresses about
/// as chat does, not as a run of one letter.
pub fn chat_words(mut text: String, len: usize, seed: &mut u64) -> String {
    const WORDS: [&str; 8] = [
        "see ", "you ", "at ", "the ", "station ", "nine ", "ok ", "ten ",
    ];
    while text.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        text.push_str(WORDS[(*seed % 8) as usize]);
    }
    text
}

/// `payload` compressed as one message's data: raw DEFLATE, sync flush,
/// its trailing `00 00 ff ff` removed (§7.2.1).
pub fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 1024);
    compress
        .compress_vec(payload, &mut out, FlushCompress::Sync)
        .unwrap();
    assert_eq!(compress.total_in() as usize, payload.len(), "output room");
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A message's data inflated: `00 00 ff ff` appended (§7.2.2).
pub fn inflate(data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(data.len() * 20 + 1024);
    loop {
        let read = decompress.total_in() as usize;
        decompress
            .decompress_vec(&input[read..], &mut out, FlushDecompress::Sync)
            .expect("valid DEFLATE data");
        if decompress.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}
