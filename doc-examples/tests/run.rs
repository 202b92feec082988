//! Runs the examples of `README.md` and of `imhelper`'s docs (the
//! `doc-examples` binary) against what `scripts/run.sh` starts:
//!
//! - every example, against the same topology rebuilt by the harness: a real
//!   `redis-server` and one node *named* `127.0.0.1:6001` (listening
//!   elsewhere, so a running `run.sh` is not disturbed);
//! - the README's, against `scripts/run.sh` itself, run as a user runs it
//!   (on free ports), which must then stop everything it started on SIGINT.
//!
//! Each example must exit successfully within 20 s; every failure is
//! reported with where the example is written.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, wait_until, Node, RedisServer};

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

/// Runs `examples`; panics listing every failure.
fn run_all(examples: &[(String, String)], redis_url: &str) {
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|(name, origin)| {
            run(name, redis_url)
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
    run_all(&examples, &redis.url());
}

/// `GET /health` on the demo answers 200.
fn demo_is_up(demo: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(demo) else {
        return false;
    };
    let request = format!("GET /health HTTP/1.1\r\nHost: {demo}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// Waits up to `timeout` for `child` to exit.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn readme_examples_run_against_run_sh_which_stops_what_it_started() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let redis_port = free_port();
    let listen = format!("127.0.0.1:{}", free_port());
    let demo = format!("127.0.0.1:{}", free_port());
    let log_path = std::env::temp_dir().join(format!("run-sh-{redis_port}.log"));
    let log = File::create(&log_path).unwrap();
    // As the README runs it, on free ports; the node keeps the name the
    // examples use (127.0.0.1:6001) while listening elsewhere.
    let mut run_sh = Command::new("bash")
        .arg(workspace.join("scripts/run.sh"))
        .current_dir(workspace)
        .env_remove("FREEIM_REDIS")
        .env_remove("FREEIM_SERVERS")
        .env("REDIS_PORT", redis_port.to_string())
        .env("FREEIM_LISTEN", &listen)
        .env("FREEIM_SERVER", "127.0.0.1:6001")
        .env("FREEIM_DEMO_LISTEN", &demo)
        .env("FREEIM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group, as a terminal's foreground job.
        .process_group(0)
        .spawn()
        .expect("start scripts/run.sh");
    let output = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The first run builds the release binaries.
    let up = wait_until(Duration::from_secs(900), || {
        demo_is_up(&demo) || matches!(run_sh.try_wait(), Ok(Some(_)))
    });
    assert!(
        up && demo_is_up(&demo),
        "run.sh did not bring the demo up:\n{}",
        output()
    );

    let readme: Vec<(String, String)> = list()
        .into_iter()
        .filter(|(_, origin)| origin.starts_with("README.md:"))
        .collect();
    run_all(&readme, &format!("redis://127.0.0.1:{redis_port}/"));

    // Ctrl-C, as a terminal sends it (SIGINT to the whole foreground process
    // group): the demo, the node and the Redis it started all stop.
    let interrupted = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", run_sh.id())])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = wait_exit(&mut run_sh, Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "run.sh did not exit 130 on SIGINT within 30 s:\n{}",
        output()
    );
    for (what, addr) in [
        ("demo", demo.clone()),
        ("node", listen.clone()),
        ("redis-server", format!("127.0.0.1:{redis_port}")),
    ] {
        assert!(
            TcpStream::connect(&addr).is_err(),
            "the {what} run.sh started still listens on {addr}:\n{}",
            output()
        );
    }
    let _ = std::fs::remove_file(&log_path);
}
