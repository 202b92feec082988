//! Fuzzes the upgrade request parser and the responses built from its result.
//!
//! Beyond "no panic", checks that:
//! - an accepted request used at most the bytes given and at most the cap, is
//!   for `/ws`, and gives the same request when only its head is parsed (the
//!   bytes after it belong to the WebSocket codec);
//! - the `101` response and every rejection response parse as HTTP/1.1
//!   responses with the right status, and a rejection's `Content-Length`
//!   matches its body;
//! - "incomplete" is only answered below the size cap.
#![no_main]

use freeim_server::http::{
    accept_response, parse_upgrade, rejection_response, HEARTBEAT_SUBPROTOCOL,
};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/ws";
const MAX_HEADER_BYTES: usize = 8192;

/// Parses an HTTP response; returns its status, `Content-Length` (if any) and
/// body length.
fn parse_response(bytes: &[u8]) -> (u16, Option<usize>, usize) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let used = match response.parse(bytes) {
        Ok(httparse::Status::Complete(used)) => used,
        other => panic!("response does not parse: {other:?}: {bytes:?}"),
    };
    assert_eq!(response.version, Some(1), "not HTTP/1.1");
    let content_length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse().ok())
                .expect("numeric Content-Length")
        });
    let code = response.code.expect("a status code");
    (code, content_length, bytes.len() - used)
}

fuzz_target!(|data: &[u8]| {
    match parse_upgrade(data, PATH, MAX_HEADER_BYTES) {
        Ok(None) => assert!(data.len() < MAX_HEADER_BYTES, "incomplete past the cap"),
        Ok(Some((request, used))) => {
            assert!(
                used <= data.len() && used <= MAX_HEADER_BYTES,
                "used {used}"
            );
            assert_eq!(request.path, PATH);
            assert_eq!(
                request.accept_key.len(),
                28,
                "accept key is base64 of 20 bytes"
            );
            assert!(request.token.as_deref() != Some(""), "empty token not None");
            let again = parse_upgrade(&data[..used], PATH, MAX_HEADER_BYTES);
            assert_eq!(
                again,
                Ok(Some((request.clone(), used))),
                "head alone differs"
            );
            let subprotocol = request.offers_heartbeat.then_some(HEARTBEAT_SUBPROTOCOL);
            let response =
                accept_response(&request.accept_key, subprotocol, request.deflate.as_ref());
            let (code, length, body) = parse_response(&response);
            assert_eq!((code, length, body), (101, None, 0));
        }
        Err(rejection) => {
            let response = rejection_response(&rejection);
            let (code, length, body) = parse_response(&response);
            assert_eq!(code, rejection.status());
            assert_eq!(length, Some(body), "Content-Length does not match the body");
        }
    }
});
