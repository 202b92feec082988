//! `freeim-server` runs that must fail: the exit code and the one line on
//! stderr.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `freeim-server` with `args`, expecting it to exit within `timeout`.
/// Returns the exit code (`None` if it was still running and had to be killed,
/// or died by a signal) and its stderr.
pub fn run_node_to_exit(args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_freeim-server"))
        .args(args)
        .env("FREEIM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start freeim-server");
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (code, stderr)
}

/// Asserts a failed start: non-zero exit and exactly one line on stderr
/// containing `needle`.
pub fn assert_refuses_to_start(args: &[&str], needle: &str) {
    let (code, stderr) = run_node_to_exit(args, Duration::from_secs(10));
    assert!(
        matches!(code, Some(c) if c != 0),
        "{args:?}: expected a non-zero exit, got {code:?} (stderr {stderr:?})"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected a one-line message, got {stderr:?}"
    );
    assert!(
        lines[0].contains(needle),
        "{args:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
}
