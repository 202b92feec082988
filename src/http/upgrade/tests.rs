//! Unit tests for [`parse_upgrade`]: accepted requests, every rejection it
//! produces, partial and pipelined input, token decoding.

use super::*;

const MAX: usize = 4096;

/// A request as Chrome sends it.
const BROWSER: &str = "GET /ws?token=abc%2Fdef%3D%3D&v=2 HTTP/1.1\r\n\
Host: push.example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://app.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

/// A minimal valid request with `target` and extra header lines.
fn request(method: &str, target: &str, version: &str, headers: &[&str]) -> String {
    let mut out = format!("{method} {target} HTTP/{version}\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

const HOST: &str = "Host: localhost";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const ALL: &[&str] = &[HOST, UPGRADE, CONNECTION, VERSION, KEY];

fn without(skip: &str) -> Vec<&'static str> {
    ALL.iter().copied().filter(|h| *h != skip).collect()
}

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    ALL.iter().chain(extra).copied().collect()
}

#[test]
fn rfc_accept_key() {
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn browser_request() {
    let (req, used) = parse_upgrade(BROWSER.as_bytes(), "/ws", MAX)
        .unwrap()
        .unwrap();
    assert_eq!(used, BROWSER.len());
    assert_eq!(
        req,
        UpgradeRequest {
            path: "/ws".into(),
            token: Some("abc/def==".into()),
            accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
            origin: Some("https://app.example.com".into()),
            offers_heartbeat: false,
            deflate: Some(PerMessageDeflate {
                server_max_window_bits: 15,
                echo_window_bits: false,
            }),
        }
    );
}

#[test]
fn deflate_offers_across_extension_fields() {
    let cases: &[(&str, &[&str], Option<u8>)] = &[
        ("none", &[], None),
        (
            "another extension",
            &["Sec-WebSocket-Extensions: x-foo; a=1"],
            None,
        ),
        (
            "the second field's offer",
            &[
                "Sec-WebSocket-Extensions: permessage-deflate; bogus",
                "sec-websocket-extensions: permessage-deflate; server_max_window_bits=11",
            ],
            Some(11),
        ),
        (
            "the first field's offer",
            &[
                "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12",
                "Sec-WebSocket-Extensions: permessage-deflate",
            ],
            Some(12),
        ),
    ];
    for (name, extra, bits) in cases {
        let raw = request("GET", "/ws", "1.1", &with(extra));
        let (req, _) = parse_upgrade(raw.as_bytes(), "/ws", MAX).unwrap().unwrap();
        assert_eq!(
            req.deflate.map(|d| d.server_max_window_bits),
            *bits,
            "{name}"
        );
    }
}

#[test]
fn accepted_variants() {
    let cases: &[(&str, Vec<&str>)] = &[
        ("minimal", ALL.to_vec()),
        (
            "token lists and odd case",
            vec![
                HOST,
                "upgrade: h2c, WebSocket",
                "CONNECTION: keep-alive, UPGRADE",
                "sec-websocket-version: 13",
                "SEC-WEBSOCKET-KEY:   AAAAAAAAAAAAAAAAAAAAAA==  ",
            ],
        ),
        (
            "connection spread over two headers",
            vec![
                HOST,
                UPGRADE,
                "Connection: keep-alive",
                "Connection: Upgrade",
                VERSION,
                KEY,
            ],
        ),
        (
            "empty host is present",
            vec!["Host:", UPGRADE, CONNECTION, VERSION, KEY],
        ),
    ];
    for (name, headers) in cases {
        let raw = request("GET", "/ws", "1.1", headers);
        let result = parse_upgrade(raw.as_bytes(), "/ws", MAX);
        assert!(matches!(result, Ok(Some(_))), "{name}: {result:?}");
    }
}

#[test]
fn every_rejection() {
    let cases: Vec<(&str, String, usize, Rejection)> = vec![
        (
            "garbage",
            "\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03".into(),
            MAX,
            Rejection::BadRequest("malformed HTTP request"),
        ),
        (
            "bad header line",
            "GET /ws HTTP/1.1\r\nHost localhost\r\n\r\n".into(),
            MAX,
            Rejection::BadRequest("malformed HTTP request"),
        ),
        (
            "wrong path",
            request("GET", "/other?token=x", "1.1", ALL),
            MAX,
            Rejection::NotFound,
        ),
        (
            "path prefix only",
            request("GET", "/wsx", "1.1", ALL),
            MAX,
            Rejection::NotFound,
        ),
        (
            "POST",
            request("POST", "/ws", "1.1", ALL),
            MAX,
            Rejection::MethodNotAllowed,
        ),
        (
            "HTTP/1.0",
            request("GET", "/ws", "1.0", ALL),
            MAX,
            Rejection::BadRequest("HTTP/1.1 required"),
        ),
        (
            "no host",
            request("GET", "/ws", "1.1", &without(HOST)),
            MAX,
            Rejection::BadRequest("missing Host header"),
        ),
        (
            "two hosts",
            request("GET", "/ws", "1.1", &with(&["Host: evil"])),
            MAX,
            Rejection::BadRequest("duplicate Host header"),
        ),
        (
            "plain HTTP request",
            request("GET", "/ws", "1.1", &[HOST]),
            MAX,
            Rejection::UpgradeRequired,
        ),
        (
            "no upgrade header",
            request("GET", "/ws", "1.1", &without(UPGRADE)),
            MAX,
            Rejection::UpgradeRequired,
        ),
        (
            "upgrade to something else",
            request(
                "GET",
                "/ws",
                "1.1",
                &[HOST, "Upgrade: h2c", CONNECTION, VERSION, KEY],
            ),
            MAX,
            Rejection::BadRequest("Upgrade header does not name websocket"),
        ),
        (
            "no connection header",
            request("GET", "/ws", "1.1", &without(CONNECTION)),
            MAX,
            Rejection::BadRequest("Connection header lacks upgrade"),
        ),
        (
            "connection without upgrade",
            request(
                "GET",
                "/ws",
                "1.1",
                &[
                    HOST,
                    UPGRADE,
                    "Connection: keep-alive, upgraded",
                    VERSION,
                    KEY,
                ],
            ),
            MAX,
            Rejection::BadRequest("Connection header lacks upgrade"),
        ),
        (
            "no version",
            request("GET", "/ws", "1.1", &without(VERSION)),
            MAX,
            Rejection::UpgradeRequired,
        ),
        (
            "version 8",
            request(
                "GET",
                "/ws",
                "1.1",
                &[HOST, UPGRADE, CONNECTION, "Sec-WebSocket-Version: 8", KEY],
            ),
            MAX,
            Rejection::UpgradeRequired,
        ),
        (
            "no key",
            request("GET", "/ws", "1.1", &without(KEY)),
            MAX,
            Rejection::BadRequest("missing Sec-WebSocket-Key header"),
        ),
        (
            "two keys",
            request(
                "GET",
                "/ws",
                "1.1",
                &with(&["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]),
            ),
            MAX,
            Rejection::BadRequest("duplicate Sec-WebSocket-Key header"),
        ),
        (
            "key of 15 bytes",
            request(
                "GET",
                "/ws",
                "1.1",
                &[
                    HOST,
                    UPGRADE,
                    CONNECTION,
                    VERSION,
                    "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
                ],
            ),
            MAX,
            Rejection::BadRequest("Sec-WebSocket-Key is not 16 bytes of base64"),
        ),
        (
            "key of 17 bytes",
            request(
                "GET",
                "/ws",
                "1.1",
                &[
                    HOST,
                    UPGRADE,
                    CONNECTION,
                    VERSION,
                    "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=",
                ],
            ),
            MAX,
            Rejection::BadRequest("Sec-WebSocket-Key is not 16 bytes of base64"),
        ),
        (
            "key not base64",
            request(
                "GET",
                "/ws",
                "1.1",
                &[
                    HOST,
                    UPGRADE,
                    CONNECTION,
                    VERSION,
                    "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==",
                ],
            ),
            MAX,
            Rejection::BadRequest("Sec-WebSocket-Key is not 16 bytes of base64"),
        ),
        (
            "broken token escape",
            request("GET", "/ws?token=%4", "1.1", ALL),
            MAX,
            Rejection::BadRequest("token is not valid percent-encoded UTF-8"),
        ),
        (
            "two origins",
            request("GET", "/ws", "1.1", &with(&["Origin: a", "Origin: b"])),
            MAX,
            Rejection::BadRequest("duplicate Origin header"),
        ),
        (
            "complete but over the cap",
            request("GET", "/ws", "1.1", ALL),
            40,
            Rejection::HeadersTooLarge,
        ),
        (
            "incomplete at the cap",
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".into(),
            40,
            Rejection::HeadersTooLarge,
        ),
    ];
    for (name, raw, max, expected) in cases {
        assert_eq!(
            parse_upgrade(raw.as_bytes(), "/ws", max),
            Err(expected),
            "{name}"
        );
    }
}

/// `n` filler fields after the required ones, each `X-<i>: <i>`.
fn with_fields(n: usize) -> String {
    let filler: Vec<String> = (0..n).map(|i| format!("X-{i}: {i}")).collect();
    let mut headers: Vec<&str> = ALL.to_vec();
    headers.extend(filler.iter().map(String::as_str));
    request("GET", "/ws", "1.1", &headers)
}

#[test]
fn the_number_of_fields_has_no_cap_of_its_own() {
    // 33 fields in under 500 bytes (refused with 431 when 32 was the cap),
    // and around the inline slots, where the parser switches storage.
    for n in [28, 58, 59, 60, 64, 65, 200] {
        let raw = with_fields(n);
        let result = parse_upgrade(raw.as_bytes(), "/ws", raw.len());
        assert!(
            matches!(result, Ok(Some(_))),
            "{} fields: {result:?}",
            n + 5
        );
    }
    // A head of exactly the cap made of shortest field lines (`a:` LF): as
    // many fields as fit, and one byte more is over the cap.
    let max = 8192;
    let mut raw = request("GET", "/ws", "1.1", ALL);
    raw.truncate(raw.len() - 2); // the blank line goes back at the end
    let fields = (max - raw.len() - 5) / MIN_FIELD_LINE_BYTES;
    raw.push_str(&"a:\n".repeat(fields));
    raw.push_str(&"b".repeat(max - raw.len() - 4)); // one more field, `b…:`
    raw.push_str(":\n\r\n");
    assert_eq!(raw.len(), max);
    assert!(fields > max / MIN_FIELD_LINE_BYTES - 100, "{fields}");
    let (_, used) = parse_upgrade(raw.as_bytes(), "/ws", max).unwrap().unwrap();
    assert_eq!(used, max);
    assert_eq!(
        parse_upgrade(raw.as_bytes(), "/ws", max - 1),
        Err(Rejection::HeadersTooLarge)
    );
    // Every prefix of it is incomplete, even with thousands of fields.
    for end in [100, 1000, 5000, max - 1] {
        assert_eq!(
            parse_upgrade(&raw.as_bytes()[..end], "/ws", max),
            Ok(None),
            "{end}"
        );
    }
}

#[test]
fn long_paths_queries_and_tokens_have_no_cap_of_their_own() {
    let token = "t".repeat(7000);
    let target = format!("/ws?pad={}&token={token}", "p".repeat(500));
    let raw = request("GET", &target, "1.1", ALL);
    let (req, _) = parse_upgrade(raw.as_bytes(), "/ws", raw.len())
        .unwrap()
        .unwrap();
    assert_eq!(req.token.as_deref(), Some(token.as_str()));
    assert_eq!(
        parse_upgrade(raw.as_bytes(), "/ws", raw.len() - 1),
        Err(Rejection::HeadersTooLarge)
    );
    let long_path = format!("/{}", "p".repeat(6000));
    let raw = request("GET", &long_path, "1.1", ALL);
    let (req, _) = parse_upgrade(raw.as_bytes(), &long_path, raw.len())
        .unwrap()
        .unwrap();
    assert_eq!(req.path, long_path);
}

#[test]
fn bytes_past_the_cap_are_not_parsed() {
    // A complete head followed by a large pipelined frame: the frame's bytes
    // are never looked at, so a LF-heavy payload costs nothing.
    let mut raw = BROWSER.as_bytes().to_vec();
    raw.extend(std::iter::repeat_n(b'\n', 100_000));
    let (_, used) = parse_upgrade(&raw, "/ws", MAX).unwrap().unwrap();
    assert_eq!(used, BROWSER.len());
}

#[test]
fn non_utf8_origin_is_rejected() {
    let mut raw = request("GET", "/ws", "1.1", ALL).into_bytes();
    let end = raw.len() - 2;
    raw.splice(end..end, b"Origin: \xff\xfe\r\n".iter().copied());
    assert_eq!(
        parse_upgrade(&raw, "/ws", MAX),
        Err(Rejection::BadRequest("Origin header is not UTF-8"))
    );
}

#[test]
fn heartbeat_subprotocol_offers() {
    let cases: &[(&str, &[&str], bool)] = &[
        ("not offered", &[], false),
        (
            "alone",
            &["Sec-WebSocket-Protocol: freeim.heartbeat.v1"],
            true,
        ),
        (
            "among others",
            &["Sec-WebSocket-Protocol: chat,  freeim.heartbeat.v1 ,x"],
            true,
        ),
        (
            "in a second header",
            &[
                "Sec-WebSocket-Protocol: chat",
                "sec-websocket-protocol: freeim.heartbeat.v1",
            ],
            true,
        ),
        (
            "other names only",
            &["Sec-WebSocket-Protocol: chat, superchat"],
            false,
        ),
        (
            "another case",
            &["Sec-WebSocket-Protocol: FreeIM.Heartbeat.v1"],
            false,
        ),
        (
            "a longer name",
            &["Sec-WebSocket-Protocol: freeim.heartbeat.v10"],
            false,
        ),
        (
            "in another header",
            &["X-Protocol: freeim.heartbeat.v1"],
            false,
        ),
    ];
    for (name, extra, offered) in cases {
        let raw = request("GET", "/ws", "1.1", &with(extra));
        let (req, _) = parse_upgrade(raw.as_bytes(), "/ws", MAX).unwrap().unwrap();
        assert_eq!(req.offers_heartbeat, *offered, "{name}");
    }
}

#[test]
fn every_prefix_is_incomplete() {
    let raw = BROWSER.as_bytes();
    for end in 0..raw.len() {
        assert_eq!(
            parse_upgrade(&raw[..end], "/ws", MAX),
            Ok(None),
            "{end} bytes"
        );
    }
}

#[test]
fn pipelined_bytes_are_left_over() {
    let mut raw = BROWSER.as_bytes().to_vec();
    raw.extend_from_slice(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
    let (_, used) = parse_upgrade(&raw, "/ws", MAX).unwrap().unwrap();
    assert_eq!(used, BROWSER.len());
    assert_eq!(raw.len() - used, 8);
}

#[test]
fn tokens() {
    let cases: &[(&str, Result<Option<&str>, Rejection>)] = &[
        ("/ws", Ok(None)),
        ("/ws?", Ok(None)),
        ("/ws?token=", Ok(None)),
        ("/ws?token", Ok(None)),
        ("/ws?tokens=x", Ok(None)),
        ("/ws?token=abc", Ok(Some("abc"))),
        ("/ws?a=1&token=abc&b=2", Ok(Some("abc"))),
        ("/ws?token=first&token=second", Ok(Some("first"))),
        ("/ws?token=a%20b+c", Ok(Some("a b c"))),
        ("/ws?token=%2B%2b%25", Ok(Some("++%"))),
        ("/ws?token=%E2%82%AC", Ok(Some("€"))),
        ("/ws?token=a=b", Ok(Some("a=b"))),
        (
            "/ws?token=%zz",
            Err(Rejection::BadRequest(
                "token is not valid percent-encoded UTF-8",
            )),
        ),
        (
            "/ws?token=%",
            Err(Rejection::BadRequest(
                "token is not valid percent-encoded UTF-8",
            )),
        ),
        (
            "/ws?token=%ff",
            Err(Rejection::BadRequest(
                "token is not valid percent-encoded UTF-8",
            )),
        ),
    ];
    for (target, expected) in cases {
        let raw = request("GET", target, "1.1", ALL);
        let got =
            parse_upgrade(raw.as_bytes(), "/ws", MAX).map(|r| r.and_then(|(req, _)| req.token));
        let expected = (*expected).map(|t| t.map(str::to_owned));
        assert_eq!(got, expected, "{target}");
    }
}
