//! Negotiating permessage-deflate (RFC 7692 §5, §7.1) in the upgrade: the
//! client's `Sec-WebSocket-Extensions` offers in, the one accepted (if any)
//! and the response's extension line out.
//!
//! The node accepts the first valid `permessage-deflate` offer, in the
//! client's order across every `Sec-WebSocket-Extensions` field, and always
//! answers with both `server_no_context_takeover` and
//! `client_no_context_takeover` (§7.1.1.1 and §7.1.1.2 let a server include
//! each whether offered or not): every message is compressed and inflated
//! on its own, so a connection holds no compressor or inflater between
//! messages, and a message compressed once serves every receiver.
//!
//! An offer is declined (skipped) when it holds a parameter RFC 7692 does not
//! define for offers, a parameter twice, or a value out of range (§7.1:
//! window bits are a decimal 8–15 without leading zeros, possibly quoted;
//! `server_max_window_bits` needs one, the no-context-takeover parameters
//! take none). `server_max_window_bits=N` is accepted and echoed
//! (§7.1.2.1): what the node may send such a peer compressed is the
//! compressor's business (`ws::deflate::fits_window`); a
//! `client_max_window_bits` offer needs no answer, as the inflater takes any
//! window (§7.1.2.2).

use serde::{Deserialize, Serialize};

/// The largest LZ77 window RFC 7692 allows, as a base-2 logarithm
/// (§7.1.2.1): what a client that sets no `server_max_window_bits` allows.
pub const MAX_WINDOW_BITS: u8 = 15;

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION: &str = "permessage-deflate";

/// The permessage-deflate a connection agreed on: no context takeover
/// either way, and the largest LZ77 window the client allows the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerMessageDeflate {
    /// `server_max_window_bits` (8–15): the server's messages may refer back
    /// at most 2^n bytes; 15 when the client set no limit.
    pub server_max_window_bits: u8,
    /// The offer named `server_max_window_bits`, so the response does too.
    pub echo_window_bits: bool,
}

impl PerMessageDeflate {
    /// The `Sec-WebSocket-Extensions` value accepting the offer.
    pub fn response(&self) -> String {
        let mut line =
            format!("{EXTENSION}; server_no_context_takeover; client_no_context_takeover");
        if self.echo_window_bits {
            line.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        line
    }
}

/// The first valid permessage-deflate offer in one `Sec-WebSocket-Extensions`
/// field value (an extension list, RFC 6455 §9.1), as accepted.
pub fn select(value: &[u8]) -> Option<PerMessageDeflate> {
    split_outside_quotes(value, b',').find_map(|extension| {
        let mut parts = split_outside_quotes(extension, b';');
        let name = parts.next()?;
        if !name.eq_ignore_ascii_case(EXTENSION.as_bytes()) {
            return None;
        }
        accept(parts)
    })
}

/// The offer made of these `name[=value]` parameters, accepted, or `None`
/// when it must be declined (RFC 7692 §7.1).
fn accept<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<PerMessageDeflate> {
    let mut seen = [false; 4];
    let mut server_bits = None;
    for param in params {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(at) => (param[..at].trim_ascii(), Some(param[at + 1..].trim_ascii())),
            None => (param, None),
        };
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        let index = match name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_some() => {
                return None
            }
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => {
                server_bits = Some(window_bits(value?)?);
                2
            }
            "client_max_window_bits" => {
                if let Some(value) = value {
                    window_bits(value)?;
                }
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
    }
    Some(PerMessageDeflate {
        server_max_window_bits: server_bits.unwrap_or(MAX_WINDOW_BITS),
        echo_window_bits: server_bits.is_some(),
    })
}

/// A window-bits value: a decimal 8–15 without leading zeros, bare or as a
/// quoted string (RFC 7692 §7.1.2; RFC 6455 §9.1 allows either).
fn window_bits(value: &[u8]) -> Option<u8> {
    // A quoted string may escape any character (a quoted-pair); a bare
    // token holds no backslash.
    let digits: Vec<u8> = match value {
        [b'"', inner @ .., b'"'] => unquote(inner)?,
        bare => bare.to_vec(),
    };
    match digits.as_slice() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// The text of a quoted string between its quotes: each quoted-pair
/// (`\\` and one character) stands for that character; `None` when a
/// backslash ends it or an unescaped quote is inside.
fn unquote(inner: &[u8]) -> Option<Vec<u8>> {
    let mut text = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => text.push(*bytes.next()?),
            b'"' => return None,
            _ => text.push(b),
        }
    }
    Some(text)
}

/// The pieces of `value` between `separator`s that are not inside a quoted
/// string, trimmed.
fn split_outside_quotes(value: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        let end = text.iter().position(|&b| {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ if b == separator && !quoted => return true,
                _ => {}
            }
            false
        });
        let (piece, next) = match end {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        rest = next;
        Some(piece.trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(value: &str) -> Option<u8> {
        select(value.as_bytes()).map(|deal| deal.server_max_window_bits)
    }

    #[test]
    fn browsers_offers_are_accepted() {
        // Chrome, Firefox and Safari send this.
        let deal = select(b"permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(deal.server_max_window_bits, 15);
        assert_eq!(
            deal.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(select(b"PerMessage-Deflate").is_some(), "names in any case");
    }

    #[test]
    fn server_window_is_echoed() {
        let deal = select(b"permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(deal.server_max_window_bits, 10);
        assert_eq!(
            deal.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
        assert_eq!(
            bits("permessage-deflate; server_max_window_bits=\"8\""),
            Some(8)
        );
        assert_eq!(
            bits("permessage-deflate; server_max_window_bits = 15"),
            Some(15)
        );
    }

    #[test]
    fn every_parameter_once_is_valid() {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=12; client_max_window_bits=9";
        assert_eq!(bits(offer), Some(12));
        assert_eq!(
            bits("permessage-deflate; client_max_window_bits=\"15\""),
            Some(15)
        );
    }

    #[test]
    fn invalid_offers_are_declined() {
        for offer in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover=\"\"",
            "permessage-deflate; mux",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(select(offer.as_bytes()), None, "{offer}");
        }
    }

    #[test]
    fn the_first_valid_offer_wins() {
        let value = "foo; a=\"x,y\", permessage-deflate; server_max_window_bits=99, \
                     permessage-deflate; server_max_window_bits=9, permessage-deflate";
        assert_eq!(bits(value), Some(9));
        assert_eq!(
            bits("permessage-deflate; bogus, permessage-deflate"),
            Some(15)
        );
    }

    #[test]
    fn separators_in_quotes_do_not_split() {
        let pieces: Vec<&[u8]> = split_outside_quotes(b"a; b=\"1;2\"; c", b';').collect();
        assert_eq!(pieces, [&b"a"[..], b"b=\"1;2\"", b"c"]);
        let pieces: Vec<&[u8]> = split_outside_quotes(br#"x="a\",b", y"#, b',').collect();
        assert_eq!(pieces, [&br#"x="a\",b""#[..], b"y"]);
    }

    #[test]
    fn quoted_pairs_only_in_quoted_strings_and_other_edge_cases() {
        // RFC 6455 §9.1: a bare value is a token, which holds no backslash;
        // only a quoted string has quoted-pairs.
        assert_eq!(
            bits("permessage-deflate; server_max_window_bits=1\\5"),
            None
        );
        assert_eq!(
            bits("permessage-deflate; server_max_window_bits=\"1\\5\""),
            Some(15)
        );
        assert_eq!(
            bits("permessage-deflate; server_max_window_bits=\"\""),
            None
        );
        assert_eq!(
            bits("permessage-deflate; server_max_window_bits=\" 9\""),
            None
        );
        assert_eq!(bits("permessage-deflate; server_max_window_bits=\"9"), None);
        assert_eq!(
            bits("permessage-deflate;\tserver_max_window_bits\t=\t8\t"),
            Some(8)
        );
        assert_eq!(
            bits("PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=11"),
            Some(11)
        );
        assert_eq!(bits("permessage-deflate;"), None);
        assert_eq!(
            bits("permessage-deflate; client_max_window_bits=15; client_max_window_bits"),
            None
        );
        assert_eq!(bits("permessage-deflate; server_max_window_bits=+9"), None);
        assert_eq!(bits("permessage-deflate; server_max_window_bits=9 9"), None);
        assert_eq!(bits(", , permessage-deflate ,"), Some(15));
        assert_eq!(
            bits("x; q=\"a;permessage-deflate\", permessage-deflate; server_max_window_bits=13"),
            Some(13)
        );
    }
}
