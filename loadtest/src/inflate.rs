//! permessage-deflate on the client side (RFC 7692 §7.2.2), written from
//! the RFC with `flate2`, not from the node's code: a compressed message's
//! data inflated, assuming no server context takeover (the node always
//! answers `server_no_context_takeover`), so one inflater per worker serves
//! every connection.

use flate2::{Decompress, FlushDecompress};

use crate::wire::WireError;

/// One worker's inflater, reset before every message.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(false))
    }
}

impl Inflater {
    /// `data` (a message's payloads joined) inflated into `out` (cleared
    /// first), with the `00 00 ff ff` tail appended as §7.2.2 says.
    pub fn inflate(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
        let bad = |_| WireError::Protocol("compressed data does not inflate");
        self.0.reset(false);
        out.clear();
        out.reserve(data.len() * 4 + 64);
        for input in [data, &TAIL[..]] {
            let start = self.0.total_in();
            loop {
                let read = (self.0.total_in() - start) as usize;
                let status = self
                    .0
                    .decompress_vec(&input[read..], out, FlushDecompress::Sync)
                    .map_err(bad)?;
                let done = (self.0.total_in() - start) as usize == input.len();
                if status == flate2::Status::StreamEnd || (done && out.len() < out.capacity()) {
                    break;
                }
                out.reserve(out.capacity().max(64));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7692_hello() {
        // §7.2.3.1: "Hello" compressed, then the same bytes again (§7.2.3.2
        // without context takeover).
        let mut inflater = Inflater::default();
        let mut out = Vec::new();
        for _ in 0..2 {
            inflater
                .inflate(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out)
                .unwrap();
            assert_eq!(out, b"Hello");
        }
        assert!(inflater.inflate(&[0xff, 0xff], &mut out).is_err());
    }
}
