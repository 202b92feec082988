//! The `freeim-demo` binary: one-line errors and exit codes, and a real
//! start-up on a free port.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, http, wait_until, RedisServer};

const BIN: &str = env!("CARGO_BIN_EXE_freeim-demo");

fn run(args: &[&str]) -> (i32, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("FREEIM_REDIS")
        .env_remove("FREEIM_SERVERS")
        .env_remove("FREEIM_PATH")
        .env_remove("FREEIM_DEMO_LISTEN")
        .output()
        .expect("run freeim-demo");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_are_one_line_errors_with_exit_2() {
    for (args, needle) in [
        (&["--path", "ws"][..], "--path"),
        (&["--servers", "nohost"][..], "host:port"),
        (&["--redis", "http://x"][..], "--redis"),
        (&["--listen", "nowhere"][..], "--listen"),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("freeim-demo: ") && stderr.contains(needle),
            "{stderr}"
        );
    }
}

#[test]
fn unreachable_redis_is_a_one_line_error_with_exit_1() {
    let port = free_port();
    let redis = format!("redis://127.0.0.1:{port}/");
    let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--redis", &redis]);
    assert_eq!(code, 1, "{stderr}");
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("freeim-demo: cannot reach Redis at"),
        "{stderr}"
    );
}

#[test]
fn a_taken_port_is_a_one_line_error() {
    let redis = RedisServer::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&["--listen", &addr, "--redis", &redis.url()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn serves_on_the_given_address() {
    let redis = RedisServer::start();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["--listen", &listen, "--redis", &redis.url()])
        .env("FREEIM_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = listen.parse().unwrap();
    let up = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let health = up.then(|| http(addr, "GET", "/health", ""));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health.map(|h| h.0), Some(200));
}
