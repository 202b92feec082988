//! The client side of the WebSocket protocol, sans-io: the upgrade request,
//! the server's response head, server frames (unmasked) in, masked frames
//! out, and the probe payload that carries a send timestamp.
//!
//! It is written independently of the node's own codec, so that the load
//! generator checks the node rather than agreeing with it by construction.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The GUID appended to the client's key for `Sec-WebSocket-Accept`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest response head accepted before the upgrade is called malformed.
pub const MAX_HEAD_BYTES: usize = 8192;

/// Largest frame payload accepted from the server.
pub const MAX_FRAME_BYTES: u64 = 16 << 20;

/// Where a client connects, parsed from `ws://host:port/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `host:port` as written in the URL (also the `Host` header).
    pub authority: String,
    /// Path and query, e.g. `/ws?token=…`.
    pub target: String,
}

/// Why a URL, a response or a frame was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The URL is not `ws://host:port/…`.
    #[error("not a ws:// URL: {0}")]
    BadUrl(String),
    /// The response head is not HTTP or is too large.
    #[error("malformed upgrade response")]
    BadResponse,
    /// 101 without the right `Sec-WebSocket-Accept`.
    #[error("wrong Sec-WebSocket-Accept")]
    BadAccept,
    /// The server sent a masked frame, a reserved opcode or bits, or an
    /// oversized frame.
    #[error("protocol violation by the server: {0}")]
    Protocol(&'static str),
}

impl WsUrl {
    /// Parses `ws://host:port/path?query` (the form `prev_connect_server` returns).
    pub fn parse(url: &str) -> Result<WsUrl, WireError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| WireError::BadUrl(url.to_string()))?;
        let slash = rest
            .find('/')
            .ok_or_else(|| WireError::BadUrl(url.to_string()))?;
        let (authority, target) = rest.split_at(slash);
        if authority.is_empty() {
            return Err(WireError::BadUrl(url.to_string()));
        }
        Ok(WsUrl {
            authority: authority.to_string(),
            target: target.to_string(),
        })
    }
}

/// A random `Sec-WebSocket-Key` (base64 of 16 bytes).
pub fn new_key(random: [u8; 16]) -> String {
    STANDARD.encode(random)
}

/// The `Sec-WebSocket-Accept` value the server must answer `key` with.
pub fn accept_for(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.digest().bytes())
}

/// The permessage-deflate offer browsers send (RFC 7692 §7.1).
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The upgrade request for `url` with `key`, offering [`DEFLATE_OFFER`]
/// when `deflate`.
pub fn upgrade_request(url: &WsUrl, key: &str, deflate: bool) -> Vec<u8> {
    let extensions = match deflate {
        true => format!("Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n"),
        false => String::new(),
    };
    format!(
        "GET {} HTTP/1.1\r\n\
         Host: {}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\
         {extensions}\
         \r\n",
        url.target, url.authority
    )
    .into_bytes()
}

/// A complete response head: its status, and how many bytes it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The HTTP status code.
    pub status: u16,
    /// Bytes of the head, including the blank line; what follows is frames.
    pub len: usize,
    /// The `Sec-WebSocket-Accept` header, if present.
    pub accept: Option<String>,
    /// `Sec-WebSocket-Extensions` accepts permessage-deflate.
    pub deflate: bool,
}

/// Parses the server's response head from `buf`: `Ok(None)` while
/// incomplete.
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.ok_or(WireError::BadResponse)?;
            let accept = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(|v| v.trim().to_string());
            let deflate = response.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("sec-websocket-extensions")
                    && h.value.starts_with(b"permessage-deflate")
            });
            Ok(Some(ResponseHead {
                status,
                len,
                accept,
                deflate,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Err(WireError::BadResponse),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(WireError::BadResponse),
    }
}

/// Frame opcodes the client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0
    Continuation,
    /// 0x1
    Text,
    /// 0x2
    Binary,
    /// 0x8
    Close,
    /// 0x9
    Ping,
    /// 0xA
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }
}

/// One complete server frame, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// FIN bit.
    pub fin: bool,
    /// RSV1: the first frame of a compressed message (permessage-deflate).
    pub compressed: bool,
    /// The opcode.
    pub opcode: Opcode,
    /// The (unmasked) payload.
    pub payload: &'a [u8],
}

/// Parses one complete server frame at the start of `buf`: `Ok(None)` when
/// `buf` does not yet hold all of it, otherwise the frame and its length.
/// RSV1 is allowed only when `deflate` (permessage-deflate negotiated).
pub fn parse_frame(buf: &[u8], deflate: bool) -> Result<Option<(Frame<'_>, usize)>, WireError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    let reserved = if deflate { 0x30 } else { 0x70 };
    if first & reserved != 0 {
        return Err(WireError::Protocol("reserved bits set"));
    }
    if second & 0x80 != 0 {
        return Err(WireError::Protocol("masked server frame"));
    }
    let opcode = Opcode::from_bits(first & 0x0F).ok_or(WireError::Protocol("reserved opcode"))?;
    let (len, header) = match second & 0x7F {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(ext);
            (u64::from_be_bytes(bytes), 10)
        }
        short => (u64::from(short), 2),
    };
    if len > MAX_FRAME_BYTES {
        return Err(WireError::Protocol("frame too large"));
    }
    let total = header + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            fin: first & 0x80 != 0,
            compressed: first & 0x40 != 0,
            opcode,
            payload: &buf[header..total],
        },
        total,
    )))
}

/// Appends one final, masked client frame to `out`.
pub fn encode_masked(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode.bits());
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// Appends a masked close frame with `code` to `out`.
pub fn encode_close(out: &mut Vec<u8>, code: u16, mask: [u8; 4]) {
    encode_masked(out, Opcode::Close, &code.to_be_bytes(), mask);
}

/// What a load-test message carries: when it was sent (monotonic clock, ns)
/// and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Probe {
    /// `CLOCK_MONOTONIC` at the send, in nanoseconds.
    pub t: u64,
    /// Sequence id of the message.
    pub s: u64,
}

/// Reads a probe from a delivered message's JSON text: the first `"t":` and
/// `"s":` integers. Quick and allocation-free; `None` for other messages.
pub fn parse_probe(text: &[u8]) -> Option<Probe> {
    Some(Probe {
        t: number_after(text, b"\"t\":")?,
        s: number_after(text, b"\"s\":")?,
    })
}

fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&text[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_target() {
        let url = WsUrl::parse("ws://127.0.0.1:6001/ws?token=ab").unwrap();
        assert_eq!(url.authority, "127.0.0.1:6001");
        assert_eq!(url.target, "/ws?token=ab");
        assert!(WsUrl::parse("http://x/").is_err());
        assert!(WsUrl::parse("ws://x").is_err());
        assert!(WsUrl::parse("ws:///ws").is_err());
    }

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn request_has_the_upgrade_headers() {
        let url = WsUrl::parse("ws://h:1/ws?token=t").unwrap();
        let text = String::from_utf8(upgrade_request(&url, "k", false)).unwrap();
        assert!(text.starts_with("GET /ws?token=t HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(text.contains("Sec-WebSocket-Key: k\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("Extensions"));
        let text = String::from_utf8(upgrade_request(&url, "k", true)).unwrap();
        assert!(text.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ));
    }

    #[test]
    fn response_head_partial_then_complete() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Accept: abc=\r\n\r\n\x81\x02hi";
        for cut in 0..head.len() - 4 {
            if cut < head.len() - 4 && !head[..cut].ends_with(b"\r\n\r\n") {
                assert_eq!(parse_response(&head[..cut]).unwrap(), None, "cut {cut}");
            }
        }
        let parsed = parse_response(head).unwrap().unwrap();
        assert_eq!(parsed.status, 101);
        assert_eq!(parsed.accept.as_deref(), Some("abc="));
        assert_eq!(&head[parsed.len..], b"\x81\x02hi");
        let refused = parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(refused.status, 503);
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn frames_of_every_length_form() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload = vec![b'x'; len];
            let mut wire = Vec::new();
            wire.push(0x81);
            if len < 126 {
                wire.push(len as u8);
            } else if len <= 65535 {
                wire.push(126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                wire.push(127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
            wire.extend_from_slice(&payload);
            for cut in [0, 1, wire.len() / 2, wire.len() - 1] {
                if cut < wire.len() {
                    assert_eq!(parse_frame(&wire[..cut], false).unwrap(), None);
                }
            }
            let (frame, used) = parse_frame(&wire, false).unwrap().unwrap();
            assert_eq!(used, wire.len());
            assert!(frame.fin);
            assert_eq!(frame.opcode, Opcode::Text);
            assert_eq!(frame.payload.len(), len);
        }
    }

    #[test]
    fn bad_server_frames_are_refused() {
        assert!(parse_frame(&[0x81, 0x81, 0, 0, 0, 0, 0], false).is_err()); // masked
        assert!(parse_frame(&[0xC1, 0x00], false).is_err()); // rsv1
        assert!(
            parse_frame(&[0xC1, 0x00], true)
                .unwrap()
                .unwrap()
                .0
                .compressed
        );
        assert!(parse_frame(&[0xA1, 0x00], true).is_err()); // rsv2
        assert!(parse_frame(&[0x83, 0x00], false).is_err()); // opcode 3
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(parse_frame(&huge, false).is_err());
    }

    #[test]
    fn masked_frames_unmask_to_the_payload() {
        for len in [0usize, 5, 125, 126, 300, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mask = [1, 2, 3, 4];
            let mut out = Vec::new();
            encode_masked(&mut out, Opcode::Pong, &payload, mask);
            assert_eq!(out[0], 0x8A);
            assert_ne!(out[1] & 0x80, 0);
            let header = out.len() - len;
            let unmasked: Vec<u8> = out[header..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
        let mut close = Vec::new();
        encode_close(&mut close, 1000, [0; 4]);
        assert_eq!(close, [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]);
    }

    #[test]
    fn probes_round_trip_through_json() {
        let probe = Probe {
            t: 123_456_789,
            s: 42,
        };
        let json = serde_json::to_string(&probe).unwrap();
        assert_eq!(parse_probe(json.as_bytes()), Some(probe));
        assert_eq!(
            parse_probe(br#"{"s":7,"t":9,"p":"xx"}"#),
            Some(Probe { t: 9, s: 7 })
        );
        assert_eq!(parse_probe(br#""hello""#), None);
        assert_eq!(parse_probe(br#"{"t":"x","s":1}"#), None);
    }
}
