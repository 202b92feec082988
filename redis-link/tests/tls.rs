//! `rediss://` URLs against a real TLS-only, password-protected
//! `redis-server`: commands, AUTH failures, certificate checks, and a raw
//! [`redis_link::Stream`] speaking RESP by hand.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use redis::ErrorKind;
use redis_link::{RedisUrl, Stream};
use testkit::TlsRedis;

const TIMEOUT: Duration = Duration::from_secs(2);
const PASSWORD: &str = "s3cret+Tls/pw";

fn parse(url: &str) -> RedisUrl {
    url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// The server's URL with `password` (written into the URL as it is)
/// instead of the server's.
fn with_password(server: &TlsRedis, password: &str) -> RedisUrl {
    parse(&format!(
        "rediss://:{password}@127.0.0.1:{}/?ssl_ca_certs={}",
        server.port(),
        server.ca_path().display()
    ))
}

#[test]
fn connect_runs_commands_over_tls() {
    let server = TlsRedis::start(PASSWORD);
    let url = parse(&server.url());
    assert!(url.is_tls());
    assert_eq!(url.auth(), Some((None, PASSWORD)));

    let mut connection = url.connect(TIMEOUT).expect("connect over TLS");
    redis::cmd("SET")
        .arg("k")
        .arg("over tls")
        .exec(&mut connection)
        .unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
    assert_eq!(v, "over tls");
    assert_eq!(server.cli(&["GET", "k"]), "over tls");

    // The password never shows.
    for shown in [url.to_string(), format!("{url:?}")] {
        assert!(
            !shown.contains(PASSWORD) && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("rediss://:***@127.0.0.1:"), "{shown}");
    }
}

#[test]
fn a_wrong_or_missing_password_fails() {
    let server = TlsRedis::start(PASSWORD);

    let error = with_password(&server, "wrong")
        .connect(TIMEOUT)
        .err()
        .expect("a wrong password must fail");
    assert_eq!(error.kind(), ErrorKind::AuthenticationFailed, "{error}");
    assert!(!error.to_string().contains("wrong"), "{error}");
    // The raw stream authenticates too, and says so without the password.
    let error = with_password(&server, "wrong")
        .connect_stream(TIMEOUT)
        .err()
        .expect("a wrong password must fail the stream too");
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::PermissionDenied,
        "{error}"
    );
    assert!(!error.to_string().contains("wrong"), "{error}");

    // Without a password the handshake works but commands are refused.
    let url = parse(&format!(
        "rediss://127.0.0.1:{}/?ssl_ca_certs={}",
        server.port(),
        server.ca_path().display()
    ));
    let mut connection = url.connect(TIMEOUT).expect("TLS without AUTH");
    let error = redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut connection)
        .unwrap_err();
    assert!(error.to_string().contains("NOAUTH"), "{error}");
}

#[test]
fn a_plus_in_the_password_is_a_plus() {
    // In a URL's user info `+` is a plus (only query strings are
    // form-encoded, where it means a space); `%2F` is a `/`.
    let server = TlsRedis::start("a+b/c");
    for written in ["a+b%2Fc", "a%2Bb%2Fc"] {
        let url = with_password(&server, written);
        assert_eq!(url.auth(), Some((None, "a+b/c")), "{written}");
        let mut connection = url
            .connect(TIMEOUT)
            .unwrap_or_else(|e| panic!("{written}: {e}"));
        redis::cmd("PING").exec(&mut connection).unwrap();
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let server = TlsRedis::start(PASSWORD);
    let other = TlsRedis::start(PASSWORD);
    let url = parse(&format!(
        "rediss://:pw@127.0.0.1:{}/?ssl_ca_certs={}",
        server.port(),
        other.ca_path().display()
    ));
    let started = Instant::now();
    assert!(url.connect(TIMEOUT).is_err(), "trusted a foreign CA");
    let error = url
        .connect_stream(TIMEOUT)
        .err()
        .expect("trusted a foreign CA");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    assert!(started.elapsed() < TIMEOUT * 2);
}

#[test]
fn connect_stream_handshakes_and_speaks_resp() {
    let server = TlsRedis::start(PASSWORD);
    let url = parse(&server.url());
    let mut stream = url.connect_stream(TIMEOUT).expect("TLS stream");
    let Stream::Tls(tls) = &stream else {
        panic!("a rediss:// URL gave a non-TLS stream");
    };
    assert!(!tls.conn.is_handshaking(), "handshake done on return");

    // Authenticated already: a PING gets PONG, not NOAUTH.
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    stream.flush().unwrap();
    let expected = b"+PONG\r\n";
    let mut reply = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while reply.len() < expected.len() && Instant::now() < deadline {
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).expect("read the replies");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(expected)
    );
}
