//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs the payload with a 4-byte key, repeated. Unmasking is the same
//! operation. [`apply_mask_at`] takes the position of the slice within the
//! payload so that a payload arriving in pieces can be unmasked piece by piece.
//!
//! The fast path XORs whole 8-byte words read with `from_ne_bytes`, so it is
//! safe code and independent of the slice's alignment.

/// XORs `buf` with `key`, as if `buf` started at the beginning of a payload.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_at(buf, key, 0);
}

/// XORs `buf` with `key`, where `buf` starts `offset` bytes into the payload
/// (only `offset % 4` matters).
pub fn apply_mask_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that key[0] applies to buf[0].
    let mut k = key;
    k.rotate_left(offset % 4);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);

    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(bytes) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The tail is shorter than 8 bytes and starts at a multiple of 8, so the
    // rotated key still lines up with it.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(k.iter().cycle()) {
        *byte ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_naive_at_every_length_alignment_and_phase() {
        let key = [0x12, 0x9a, 0xf0, 0x3c];
        let mut storage = vec![0u8; 70 + 8];
        for align in 0..8 {
            for len in 0..=70 {
                for phase in 0..4 {
                    for (i, b) in storage.iter_mut().enumerate() {
                        *b = (i * 31 + 7) as u8;
                    }
                    let mut expected = storage.clone();
                    naive(&mut expected[align..align + len], key, phase);
                    apply_mask_at(&mut storage[align..align + len], key, phase);
                    assert_eq!(storage, expected, "align {align} len {len} phase {phase}");
                }
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_input() {
        let original: Vec<u8> = (0..=255).collect();
        let mut buf = original.clone();
        apply_mask(&mut buf, [1, 2, 3, 4]);
        assert_ne!(buf, original);
        apply_mask(&mut buf, [1, 2, 3, 4]);
        assert_eq!(buf, original);
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let original: Vec<u8> = (0..100u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key);
        for split in 0..=original.len() {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask_at(a, key, 0);
            apply_mask_at(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn rfc_example() {
        // RFC 6455 §5.7: masked "Hello".
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&payload, b"Hello");
    }
}
