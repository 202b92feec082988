//! Close frames (RFC 6455 §5.5.1, §7.4): status codes, validation of a
//! received close payload, and encoding of the server's close frame.

use super::error::ProtocolError;
use super::frame::{encode_frame, OpCode, MAX_CONTROL_PAYLOAD};

/// Close status codes the server sends (RFC 6455 §7.4.1).
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED: u16 = 1003;
    /// Data inconsistent with the message type (e.g. invalid UTF-8 text).
    pub const INVALID_DATA: u16 = 1007;
    /// A message that violates the endpoint's policy.
    pub const POLICY: u16 = 1008;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
    /// An unexpected condition on the server.
    pub const INTERNAL: u16 = 1011;
    /// This node's close for ImHelper's force-offline (a kick: a client
    /// should not reconnect by itself). An application code (RFC 6455
    /// §7.4.2: 4000–4999 are for private use), so a client tells it from a
    /// drain (1001) or an error; FreeIM's .NET ImServer sends 1001
    /// "disconnect" instead.
    pub const FORCED_OFFLINE: u16 = 4001;
}

/// A close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: u16,
    /// The UTF-8 reason, possibly empty.
    pub reason: String,
}

/// Whether `code` may appear in a close frame received from a peer:
/// 1000–1003, 1007–1014 and 3000–4999. The codes 1004–1006 and 1015 are
/// reserved for local use, the rest of 1000–2999 for future standards.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Validates a received close payload (already unmasked).
///
/// An empty payload gives `Ok(None)`. Otherwise the payload must hold a valid
/// code ([`is_valid_code`]) followed by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// Builds a close payload: the code, then `reason` cut at a character boundary
/// to fit the 125-byte control frame limit. Useful for masked client frames.
pub fn close_payload(code: u16, reason: &str) -> ([u8; MAX_CONTROL_PAYLOAD], usize) {
    let mut out = [0u8; MAX_CONTROL_PAYLOAD];
    out[..2].copy_from_slice(&code.to_be_bytes());
    let reason = truncate(reason, MAX_CONTROL_PAYLOAD - 2);
    out[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    (out, 2 + reason.len())
}

/// Appends an unmasked close frame with `code` and `reason`. The reason is cut
/// at a character boundary to at most 123 bytes.
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let (payload, len) = close_payload(code, reason);
    encode_frame(out, OpCode::Close, &payload[..len]);
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_validity() {
        let valid = [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in valid {
            assert!(is_valid_code(c), "{c}");
        }
        for c in invalid {
            assert!(!is_valid_code(c), "{c}");
        }
    }

    type Expected = Result<Option<(u16, &'static str)>, ProtocolError>;

    #[test]
    fn parse_payloads() {
        let cases: &[(&[u8], Expected)] = &[
            (b"", Ok(None)),
            (b"\x03", Err(ProtocolError::InvalidClosePayload)),
            (b"\x03\xe8", Ok(Some((1000, "")))),
            (b"\x03\xe8bye", Ok(Some((1000, "bye")))),
            (b"\x0f\xa0\xce\xba", Ok(Some((4000, "κ")))),
            (b"\x03\xed", Err(ProtocolError::InvalidCloseCode(1005))),
            (b"\x13\x88", Err(ProtocolError::InvalidCloseCode(5000))),
            (b"\x03\xe8\xff", Err(ProtocolError::InvalidCloseReason)),
            (b"\x03\xe8\xce", Err(ProtocolError::InvalidCloseReason)),
        ];
        for (payload, expected) in cases {
            let got = parse_close_payload(payload);
            let expected = expected.clone().map(|o| {
                o.map(|(code, reason)| CloseFrame {
                    code,
                    reason: reason.to_owned(),
                })
            });
            assert_eq!(got, expected, "{payload:x?}");
        }
    }

    #[test]
    fn encode_close_frames() {
        let mut out = Vec::new();
        encode_close(&mut out, code::NORMAL, "bye");
        assert_eq!(out, b"\x88\x05\x03\xe8bye");

        // A long multi-byte reason is cut to 123 bytes on a char boundary.
        let long = "€".repeat(60); // 180 bytes
        let mut out = Vec::new();
        encode_close(&mut out, code::GOING_AWAY, &long);
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= MAX_CONTROL_PAYLOAD);
        let parsed = parse_close_payload(&out[2..]).unwrap().unwrap();
        assert_eq!(parsed.code, 1001);
        assert_eq!(parsed.reason, "€".repeat(41));
    }
}
