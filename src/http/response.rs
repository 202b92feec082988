//! Response bytes for the upgrade: `101 Switching Protocols` on success (with
//! `Sec-WebSocket-Protocol` when a subprotocol is selected and
//! `Sec-WebSocket-Extensions` when permessage-deflate is), a short
//! `text/plain` error response with `Connection: close` otherwise.

use std::fmt::Write as _;

use super::permessage_deflate::PerMessageDeflate;
use super::upgrade::Rejection;

/// The `101 Switching Protocols` response completing the handshake;
/// `accept_key` is [`UpgradeRequest::accept_key`](super::UpgradeRequest::accept_key),
/// `subprotocol` the one selected from the client's offer (RFC 6455 §4.2.2),
/// if any, and `deflate` the permessage-deflate offer accepted (RFC 7692
/// §7.1), if any.
pub fn accept_response(
    accept_key: &str,
    subprotocol: Option<&str>,
    deflate: Option<&PerMessageDeflate>,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept_key}\r\n"
    );
    if let Some(subprotocol) = subprotocol {
        // Writing to a String cannot fail.
        let _ = write!(head, "Sec-WebSocket-Protocol: {subprotocol}\r\n");
    }
    if let Some(deflate) = deflate {
        let _ = write!(head, "Sec-WebSocket-Extensions: {}\r\n", deflate.response());
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// An error response for `rejection`: status line, `Content-Type`,
/// `Content-Length`, `Connection: close`, the headers the status calls for
/// (`Allow` for 405; `Upgrade` and `Sec-WebSocket-Version: 13` for 426), and
/// the one-line reason as the body. Close the connection after writing it.
pub fn rejection_response(rejection: &Rejection) -> Vec<u8> {
    let body = rejection.reason();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n",
        rejection.status(),
        rejection.status_text(),
        body.len() + 1,
    );
    match rejection {
        Rejection::MethodNotAllowed => head.push_str("Allow: GET\r\n"),
        Rejection::UpgradeRequired => {
            head.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
        }
        _ => {}
    }
    // Writing to a String cannot fail.
    let _ = write!(head, "\r\n{body}\n");
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept() {
        assert_eq!(
            accept_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, None),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert_eq!(
            accept_response(
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                Some("freeim.heartbeat.v1"),
                None
            ),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: freeim.heartbeat.v1\r\n\r\n"
        );
        let deflate = PerMessageDeflate {
            server_max_window_bits: 9,
            echo_window_bits: true,
        };
        assert_eq!(
            accept_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, Some(&deflate)),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
              client_no_context_takeover; server_max_window_bits=9\r\n\r\n"
        );
    }

    fn parse(response: &[u8]) -> (u16, Vec<(String, String)>, String) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(n) = parsed.parse(response).unwrap() else {
            panic!("incomplete response");
        };
        let headers = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let body = String::from_utf8(response[n..].to_vec()).unwrap();
        (parsed.code.unwrap(), headers, body)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn rejections() {
        let cases = [
            (Rejection::BadRequest("missing Host header"), 400),
            (Rejection::NotFound, 404),
            (Rejection::MethodNotAllowed, 405),
            (Rejection::UpgradeRequired, 426),
            (Rejection::HeadersTooLarge, 431),
            (Rejection::Unauthorized("invalid token"), 401),
            (Rejection::Forbidden("origin not allowed"), 403),
            (Rejection::ServiceUnavailable("server full"), 503),
        ];
        for (rejection, status) in cases {
            let (code, headers, body) = parse(&rejection_response(&rejection));
            assert_eq!(code, status);
            assert_eq!(rejection.status(), status);
            assert_eq!(body, format!("{}\n", rejection.reason()));
            assert_eq!(
                header(&headers, "content-length"),
                Some(body.len().to_string().as_str())
            );
            assert_eq!(header(&headers, "connection"), Some("close"));
            assert_eq!(
                header(&headers, "content-type"),
                Some("text/plain; charset=utf-8")
            );
            let version = header(&headers, "sec-websocket-version");
            assert_eq!(version, (status == 426).then_some("13"), "{status}");
            let allow = header(&headers, "allow");
            assert_eq!(allow, (status == 405).then_some("GET"), "{status}");
        }
    }
}
