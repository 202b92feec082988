//! Parsing and validating the client's opening handshake (RFC 6455 §4.2.1).
//!
//! [`parse_upgrade`] takes the bytes received so far and either asks for more
//! (`Ok(None)`), accepts the request, or rejects it with the status to send.
//! Checks, in order: a well-formed head within the size cap (else 400 / 431),
//! the path (404), the method (405), the HTTP version (400), then the headers:
//! `Host` (400), `Upgrade: websocket` (426 if absent, 400 if something else),
//! `Connection: upgrade` (400), `Sec-WebSocket-Version: 13` (426),
//! `Sec-WebSocket-Key` (400), and finally the `token` query parameter and
//! `Origin` (400 if not decodable). Checking the token itself (401) and the
//! origin (403) is the caller's job.
//!
//! It also notes whether `Sec-WebSocket-Protocol` offers
//! [`HEARTBEAT_SUBPROTOCOL`] (RFC 6455 §4.2.1 item 8, §11.3.4), and which
//! permessage-deflate offer of `Sec-WebSocket-Extensions` it would accept
//! ([`permessage_deflate::select`](super::permessage_deflate::select));
//! whether to use either is the caller's choice, and nothing else offered is
//! ever selected or refused.
//!
//! The size cap is the only limit: a head may have as many header fields as
//! fit in it, and its path, query, token and values may be as long as fits.

use std::mem::MaybeUninit;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use httparse::{Header, Status};

use super::permessage_deflate::{self, PerMessageDeflate};

/// The fewest bytes a header field line takes: a one-letter name, the colon
/// and a line feed (`a:\n`). A head of `max_header_bytes` therefore holds
/// fewer than `max_header_bytes / MIN_FIELD_LINE_BYTES` fields; there is no
/// other cap on their number.
pub const MIN_FIELD_LINE_BYTES: usize = 3;

/// Header slots parsed on the stack; a head with more fields is parsed again
/// with one slot per line (a bound, not a cap).
const INLINE_FIELDS: usize = 64;

/// The subprotocol a client offers to see the node's heartbeats: the node
/// that selects it sends a binary frame holding the heartbeat interval in
/// milliseconds (ASCII decimal) after the `101` and with every ping, data
/// JavaScript can watch (pings are invisible to it).
pub const HEARTBEAT_SUBPROTOCOL: &str = "freeim.heartbeat.v1";

/// The GUID appended to the client's key to compute the accept value.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target's path (before any `?`).
    pub path: String,
    /// The percent-decoded `token` query parameter; `None` when it is missing
    /// or empty.
    pub token: Option<String>,
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub accept_key: String,
    /// The `Origin` header, if sent (browsers always send it).
    pub origin: Option<String>,
    /// `Sec-WebSocket-Protocol` lists [`HEARTBEAT_SUBPROTOCOL`] (names are
    /// compared exactly, as the client checks the one selected).
    pub offers_heartbeat: bool,
    /// The first valid permessage-deflate offer, as it would be accepted
    /// (RFC 7692 §7.1); `None` when the client offered none valid.
    pub deflate: Option<PerMessageDeflate>,
}

/// Why an upgrade request is refused; each maps to an HTTP status.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// 400: the request is malformed or misses a required header.
    #[error("400 Bad Request: {0}")]
    BadRequest(&'static str),
    /// 404: the path is not the WebSocket endpoint.
    #[error("404 Not Found")]
    NotFound,
    /// 405: the method is not GET.
    #[error("405 Method Not Allowed")]
    MethodNotAllowed,
    /// 426: not a WebSocket request, or not version 13; the response names
    /// the supported version.
    #[error("426 Upgrade Required")]
    UpgradeRequired,
    /// 431: the request head is larger than `--max-header-bytes`.
    #[error("431 Request Header Fields Too Large")]
    HeadersTooLarge,
    /// 401: the token is missing or not valid (decided by the caller).
    #[error("401 Unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 403: the client may not connect, e.g. its origin is not allowed.
    #[error("403 Forbidden: {0}")]
    Forbidden(&'static str),
    /// 503: the server cannot take the connection now (full, shutting down).
    #[error("503 Service Unavailable: {0}")]
    ServiceUnavailable(&'static str),
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::UpgradeRequired => 426,
            Self::HeadersTooLarge => 431,
            Self::ServiceUnavailable(_) => 503,
        }
    }

    /// The status line's reason phrase, e.g. `"Not Found"`.
    pub fn status_text(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "Bad Request",
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::UpgradeRequired => "Upgrade Required",
            Self::HeadersTooLarge => "Request Header Fields Too Large",
            Self::ServiceUnavailable(_) => "Service Unavailable",
        }
    }

    /// A one-line explanation, used as the response body.
    pub fn reason(&self) -> &str {
        match self {
            Self::BadRequest(reason)
            | Self::Unauthorized(reason)
            | Self::Forbidden(reason)
            | Self::ServiceUnavailable(reason) => reason,
            Self::NotFound => "no WebSocket endpoint at this path",
            Self::MethodNotAllowed => "a WebSocket handshake must use GET",
            Self::UpgradeRequired => "WebSocket version 13 upgrade required",
            Self::HeadersTooLarge => "request head too large",
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
pub fn accept_key(client_key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(client_key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.digest().bytes())
}

/// Parses the request head in `buf`.
///
/// `Ok(None)`: incomplete, read more (unless `buf.len() >= max_header_bytes`,
/// which is `Err(HeadersTooLarge)`). On success returns the request and how
/// many bytes the head used; bytes after it (a pipelined first frame) belong
/// to the WebSocket codec. `path` is the only path accepted. A head of at
/// most `max_header_bytes` is never refused for its number of fields.
pub fn parse_upgrade(
    buf: &[u8],
    path: &str,
    max_header_bytes: usize,
) -> Result<Option<(UpgradeRequest, usize)>, Rejection> {
    // Bytes past the cap never matter: a head not complete within it is refused.
    let head = &buf[..buf.len().min(max_header_bytes)];
    let mut inline = [const { MaybeUninit::<Header<'_>>::uninit() }; INLINE_FIELDS];
    if let Some(parsed) = parse_with(head, &mut inline, path, max_header_bytes) {
        return parsed;
    }
    // More fields than the inline slots. Every field line ends with a line
    // feed, so one slot per line feed is always enough.
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let mut slots: Vec<Header<'_>> = Vec::with_capacity(lines + 1);
    parse_with(head, slots.spare_capacity_mut(), path, max_header_bytes)
        .unwrap_or(Err(Rejection::HeadersTooLarge))
}

/// [`parse_upgrade`] with `slots` for the header fields; `None` when there
/// are more fields than slots.
fn parse_with<'b>(
    head: &'b [u8],
    slots: &mut [MaybeUninit<Header<'b>>],
    path: &str,
    max_header_bytes: usize,
) -> Option<Result<Option<(UpgradeRequest, usize)>, Rejection>> {
    let mut request = httparse::Request::new(&mut []);
    let used = match request.parse_with_uninit_headers(head, slots) {
        Ok(Status::Complete(used)) => used,
        Ok(Status::Partial) if head.len() >= max_header_bytes => {
            return Some(Err(Rejection::HeadersTooLarge))
        }
        Ok(Status::Partial) => return Some(Ok(None)),
        Err(httparse::Error::TooManyHeaders) => return None,
        Err(_) => return Some(Err(Rejection::BadRequest("malformed HTTP request"))),
    };
    Some(validate(&request, path).map(|upgrade| Some((upgrade, used))))
}

/// What the header fields say, gathered in one pass.
#[derive(Default)]
struct Fields<'a> {
    hosts: usize,
    upgrade_present: bool,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    version_13: bool,
    keys: usize,
    key: Option<&'a [u8]>,
    origins: usize,
    origin: Option<&'a [u8]>,
    offers_heartbeat: bool,
    deflate: Option<PerMessageDeflate>,
}

impl<'a> Fields<'a> {
    fn gather(headers: &[httparse::Header<'a>]) -> Self {
        let mut fields = Self::default();
        for header in headers {
            let name = header.name;
            let value = header.value;
            if name.eq_ignore_ascii_case("host") {
                fields.hosts += 1;
            } else if name.eq_ignore_ascii_case("upgrade") {
                fields.upgrade_present = true;
                fields.upgrade_websocket |= has_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                fields.connection_upgrade |= has_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                fields.version_13 |= has_token(value, "13");
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                fields.keys += 1;
                fields.key = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("origin") {
                fields.origins += 1;
                fields.origin = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                fields.offers_heartbeat |=
                    list_items(value).any(|item| item == HEARTBEAT_SUBPROTOCOL.as_bytes());
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                fields.deflate = fields.deflate.or_else(|| permessage_deflate::select(value));
            }
        }
        fields
    }
}

fn validate(request: &httparse::Request<'_, '_>, path: &str) -> Result<UpgradeRequest, Rejection> {
    let target = request.path.unwrap_or_default();
    let (target_path, query) = match target.split_once('?') {
        Some((target_path, query)) => (target_path, query),
        None => (target, ""),
    };
    if target_path != path {
        return Err(Rejection::NotFound);
    }
    if request.method != Some("GET") {
        return Err(Rejection::MethodNotAllowed);
    }
    if request.version != Some(1) {
        return Err(Rejection::BadRequest("HTTP/1.1 required"));
    }

    let fields = Fields::gather(request.headers);
    match fields.hosts {
        0 => return Err(Rejection::BadRequest("missing Host header")),
        1 => {}
        _ => return Err(Rejection::BadRequest("duplicate Host header")),
    }
    if !fields.upgrade_present {
        return Err(Rejection::UpgradeRequired);
    }
    if !fields.upgrade_websocket {
        return Err(Rejection::BadRequest(
            "Upgrade header does not name websocket",
        ));
    }
    if !fields.connection_upgrade {
        return Err(Rejection::BadRequest("Connection header lacks upgrade"));
    }
    if !fields.version_13 {
        return Err(Rejection::UpgradeRequired);
    }
    let key = match (fields.keys, fields.key) {
        (1, Some(key)) => key,
        (0, _) => return Err(Rejection::BadRequest("missing Sec-WebSocket-Key header")),
        _ => return Err(Rejection::BadRequest("duplicate Sec-WebSocket-Key header")),
    };
    let key = valid_key(key).ok_or(Rejection::BadRequest(
        "Sec-WebSocket-Key is not 16 bytes of base64",
    ))?;
    let token = match query_param(query, "token") {
        None | Some("") => None,
        Some(raw) => Some(percent_decode(raw).ok_or(Rejection::BadRequest(
            "token is not valid percent-encoded UTF-8",
        ))?),
    };
    let origin = match (fields.origins, fields.origin) {
        (0, _) | (_, None) => None,
        (1, Some(origin)) => Some(
            std::str::from_utf8(origin)
                .map_err(|_| Rejection::BadRequest("Origin header is not UTF-8"))?
                .to_owned(),
        ),
        _ => return Err(Rejection::BadRequest("duplicate Origin header")),
    };
    Ok(UpgradeRequest {
        path: target_path.to_owned(),
        token,
        accept_key: accept_key(key),
        origin,
        offers_heartbeat: fields.offers_heartbeat,
        deflate: fields.deflate,
    })
}

/// The items of a comma-separated header value, surrounding whitespace
/// trimmed.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a comma-separated header value contains `token` (ASCII
/// case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    list_items(value).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// The key as text if it is base64 for exactly 16 bytes.
fn valid_key(key: &[u8]) -> Option<&str> {
    let mut decoded = [0u8; 16];
    match STANDARD.decode_slice(key, &mut decoded) {
        Ok(16) => std::str::from_utf8(key).ok(),
        _ => None,
    }
}

/// The raw value of the first `name=value` pair in a query string. A name
/// without `=` has an empty value.
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// Decodes `%XX` escapes and `+` (as space); `None` if an escape is broken
/// or the result is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    fn hex(digit: u8) -> Option<u8> {
        char::from(digit).to_digit(16).map(|d| d as u8)
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(byte) = bytes.next() {
        out.push(match byte {
            b'+' => b' ',
            b'%' => {
                let high = hex(bytes.next()?)?;
                let low = hex(bytes.next()?)?;
                high << 4 | low
            }
            other => other,
        });
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
