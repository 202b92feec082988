//! Runs every example of `README.md` and of `imhelper`'s docs (the
//! `doc-examples` binary) against what `scripts/run.sh` starts, rebuilt on
//! free ports: a real `redis-server` and one node *named* `127.0.0.1:6001`
//! (listening elsewhere, so a running `run.sh` is not disturbed). Each must
//! exit successfully within 20 s; every failure is reported with where the
//! example is written.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, Node, RedisServer};

const EXAMPLES: &str = env!("CARGO_BIN_EXE_doc-examples");
const TIMEOUT: Duration = Duration::from_secs(20);

/// `(name, origin)` of every example.
fn list() -> Vec<(String, String)> {
    let out = Command::new(EXAMPLES)
        .arg("--list")
        .output()
        .expect("run doc-examples --list");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, origin) = line.split_once(' ').expect("name origin");
            (name.to_string(), origin.to_string())
        })
        .collect()
}

/// Runs one example; `Err` says how it failed, with its output.
fn run(name: &str, redis_url: &str) -> Result<(), String> {
    let mut child = Command::new(EXAMPLES)
        .arg(name)
        .env("FREEIM_REDIS", redis_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{status}\n{output}")),
        None => Err(format!("still running after {TIMEOUT:?}\n{output}")),
    }
}

#[test]
fn every_example_runs_against_what_run_sh_starts() {
    let redis = RedisServer::start();
    let servers = ["127.0.0.1:6001".to_string()];
    let listen = format!("127.0.0.1:{}", free_port());
    let _node = Node::start(&redis, &servers[0], &servers, &listen);

    let examples = list();
    assert!(
        examples
            .iter()
            .any(|(_, origin)| origin.starts_with("README.md:")),
        "README.md's examples were found"
    );
    assert!(
        examples
            .iter()
            .any(|(_, origin)| origin.starts_with("imhelper/src/")),
        "imhelper's doc examples were found"
    );
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|(name, origin)| {
            run(name, &redis.url())
                .err()
                .map(|why| format!("{origin} ({name}): {why}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n\n")
    );
}
