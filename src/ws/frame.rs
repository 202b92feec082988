//! Frame headers (RFC 6455 §5.2): opcodes, header parsing and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Parsing here checks what a header alone can violate (RSV2, RSV3 and
//! reserved opcodes, control frame rules, the 64-bit length's top bit).
//! Rules that depend on the connection (masking, fragmentation, size limits,
//! whether RSV1 — permessage-deflate's "Per-Message Compressed" bit, RFC 7692
//! §6 — was negotiated) belong to [`MessageReader`](super::MessageReader).

use super::error::ProtocolError;
use super::mask::apply_mask;

/// The largest possible frame header: 2 bytes, 8 bytes of length, 4 of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// RSV1 in a header's first byte: with permessage-deflate negotiated, the
/// first frame of a compressed message carries it (RFC 7692 §6).
pub const RSV1: u8 = 0x40;

/// The largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode, without the reserved values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a UTF-8 text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping, to be answered with a pong.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Whether this is a control frame opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }

    /// The opcode for a 4-bit value, or `None` if the value is reserved.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// RSV1, permessage-deflate's "Per-Message Compressed" bit (RFC 7692 §6);
    /// whether it is allowed here is the reader's call.
    pub compressed: bool,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// The total header length announced by a header's second byte (the MASK
/// bit and the 7-bit length).
pub fn header_len(second: u8) -> usize {
    let ext = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// Parses a frame header from the start of `buf`.
///
/// Returns `Ok(None)` if `buf` is shorter than the header; the first two bytes
/// are validated as soon as they are present, so a bad frame fails before its
/// extended length arrives. On success returns the header and its length.
pub fn parse_frame_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let (first, second) = match buf {
        [first, second, ..] => (*first, *second),
        _ => return Ok(None),
    };
    let fin = first & 0x80 != 0;
    let rsv = (first >> 4) & 0x7;
    if rsv & 0b011 != 0 {
        return Err(ProtocolError::ReservedBits(rsv));
    }
    let raw_opcode = first & 0x0F;
    let opcode = OpCode::from_u8(raw_opcode).ok_or(ProtocolError::ReservedOpCode(raw_opcode))?;
    let len7 = second & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooBig);
        }
    }

    let total = header_len(second);
    let Some(header) = buf.get(..total) else {
        return Ok(None);
    };
    let (payload_len, rest) = match (len7, header.get(2..).unwrap_or_default()) {
        (126, [a, b, rest @ ..]) => (u64::from(u16::from_be_bytes([*a, *b])), rest),
        (127, [a, b, c, d, e, f, g, h, rest @ ..]) => {
            let len = u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
            if len >> 63 != 0 {
                return Err(ProtocolError::InvalidPayloadLength);
            }
            (len, rest)
        }
        (n, rest) => (u64::from(n), rest),
    };
    let mask = match rest {
        [a, b, c, d] => Some([*a, *b, *c, *d]),
        _ => None,
    };
    Ok(Some((
        FrameHeader {
            fin,
            opcode,
            compressed: first & RSV1 != 0,
            mask,
            payload_len,
        },
        total,
    )))
}

/// Builds an unmasked frame header. Returns the bytes and how many of them
/// are used (2, 4 or 10); write them, then the payload.
pub fn frame_header(opcode: OpCode, fin: bool, payload_len: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    out[0] = opcode.as_u8() | if fin { 0x80 } else { 0 };
    let used = if payload_len < 126 {
        // Fits in 7 bits.
        out[1] = payload_len as u8;
        2
    } else if let Ok(len) = u16::try_from(payload_len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    (out, used)
}

/// Appends one unmasked (server→client) frame with FIN set.
pub fn encode_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let (header, len) = frame_header(opcode, true, payload.len());
    out.reserve(len + payload.len());
    out.extend_from_slice(&header[..len]);
    out.extend_from_slice(payload);
}

/// Appends one masked (client→server) frame, for test clients and the load
/// tester.
pub fn encode_masked_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    fin: bool,
    payload: &[u8],
    key: [u8; 4],
) {
    let (mut header, len) = frame_header(opcode, fin, payload.len());
    header[1] |= 0x80;
    out.reserve(len + 4 + payload.len());
    out.extend_from_slice(&header[..len]);
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_round_trip() {
        for value in 0..16u8 {
            match OpCode::from_u8(value) {
                Some(op) => {
                    assert_eq!(op.as_u8(), value);
                    assert_eq!(op.is_control(), value >= 8);
                }
                None => assert!(matches!(value, 3..=7 | 0xB..=0xF)),
            }
        }
    }

    #[test]
    fn header_lengths() {
        // (payload length, header bytes, length field)
        let cases: &[(usize, usize, &[u8])] = &[
            (0, 2, &[0]),
            (125, 2, &[125]),
            (126, 4, &[126, 0, 126]),
            (65535, 4, &[126, 0xff, 0xff]),
            (65536, 10, &[127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for &(payload, used, field) in cases {
            let (bytes, n) = frame_header(OpCode::Binary, true, payload);
            assert_eq!(n, used, "payload {payload}");
            assert_eq!(bytes[0], 0x82);
            assert_eq!(&bytes[1..n], field, "payload {payload}");
            let (parsed, consumed) = parse_frame_header(&bytes[..n]).unwrap().unwrap();
            assert_eq!(consumed, n);
            assert_eq!(parsed.payload_len, payload as u64);
            assert_eq!(parsed.mask, None);
            assert!(parsed.fin);
        }
    }

    #[test]
    fn encode_frame_layout() {
        let mut out = Vec::new();
        encode_frame(&mut out, OpCode::Text, b"Hello");
        assert_eq!(out, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
        let (h, n) = frame_header(OpCode::Continuation, false, 3);
        assert_eq!(&h[..n], &[0x00, 0x03]);
    }

    #[test]
    fn masked_frame_matches_rfc_example() {
        let mut out = Vec::new();
        encode_masked_frame(
            &mut out,
            OpCode::Text,
            true,
            b"Hello",
            [0x37, 0xfa, 0x21, 0x3d],
        );
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let (h, n) = parse_frame_header(&out).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(h.opcode, OpCode::Text);
    }

    #[test]
    fn rsv1_is_read_not_refused() {
        let (header, _) = parse_frame_header(&[0xC1, 0x80, 1, 2, 3, 4])
            .unwrap()
            .unwrap();
        assert!(header.compressed);
        let (header, _) = parse_frame_header(&[0x81, 0x80, 1, 2, 3, 4])
            .unwrap()
            .unwrap();
        assert!(!header.compressed);
    }

    #[test]
    fn incomplete_headers() {
        let mut full = Vec::new();
        encode_masked_frame(&mut full, OpCode::Binary, true, &[0; 70000], [1, 2, 3, 4]);
        assert_eq!(parse_frame_header(&full[..14]).unwrap().unwrap().1, 14);
        for n in 0..14 {
            assert_eq!(parse_frame_header(&full[..n]), Ok(None), "{n} bytes");
        }
    }

    #[test]
    fn header_errors() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (&[0xE1, 0x80], ProtocolError::ReservedBits(6)),
            (&[0xA1, 0x80], ProtocolError::ReservedBits(2)),
            (&[0x91, 0x80], ProtocolError::ReservedBits(1)),
            (&[0x83, 0x80], ProtocolError::ReservedOpCode(3)),
            (&[0x8B, 0x80], ProtocolError::ReservedOpCode(0xB)),
            (&[0x09, 0x80], ProtocolError::FragmentedControlFrame),
            (&[0x89, 0xFE], ProtocolError::ControlFrameTooBig),
            (&[0x88, 0xFF], ProtocolError::ControlFrameTooBig),
            (
                &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                ProtocolError::InvalidPayloadLength,
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(parse_frame_header(bytes), Err(err.clone()), "{bytes:x?}");
        }
    }
}
