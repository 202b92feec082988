//! A real `freeim-server` node process for the tests of other packages
//! (`CARGO_BIN_EXE_freeim-server` exists only in the server's own tests).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::{wait_until, RedisServer};

/// The `freeim-server` binary: `FREEIM_SERVER_BIN` when set, otherwise built
/// once per test process with `cargo build -p freeim-server` into the target
/// directory of the running test (found from the test executable's path).
pub fn node_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("FREEIM_SERVER_BIN") {
            return PathBuf::from(path);
        }
        // <target>/<profile>/deps/<test-exe>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = profile_dir.file_name().unwrap().to_string_lossy();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace)
            .args([
                "build",
                "-q",
                "-p",
                "freeim-server",
                "--bin",
                "freeim-server",
            ])
            .env("CARGO_TARGET_DIR", target_dir);
        if profile != "debug" {
            build.args(["--profile", &profile]);
        }
        let status = build.status().expect("run cargo build for freeim-server");
        assert!(status.success(), "cargo build -p freeim-server failed");
        let binary = profile_dir.join("freeim-server");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// A `freeim-server` child process (one loop thread, logging warnings),
/// killed on drop.
pub struct Node {
    server: String,
    listen: String,
    child: Child,
}

impl Node {
    /// Starts node `server` of cluster `servers`, listening on `listen`
    /// (usually the same address; a node's name may differ from where it
    /// listens), and waits until it accepts and has subscribed on `redis`.
    ///
    /// # Panics
    /// When the node exits or is not up within 5 s.
    pub fn start(redis: &RedisServer, server: &str, servers: &[String], listen: &str) -> Node {
        let child = Command::new(node_binary())
            .args([
                "--listen",
                listen,
                "--redis",
                &redis.url(),
                "--server",
                server,
            ])
            .args(["--servers", &servers.join(";"), "--threads", "1"])
            .env("FREEIM_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start freeim-server");
        let mut node = Node {
            server: server.to_string(),
            listen: listen.to_string(),
            child,
        };
        // Accepting on the port and subscribed on this Redis (a notice for a
        // channel nobody caches is a no-op): a port another process happened
        // to take, or a node that has not subscribed yet, is not "up".
        let subscribed = || redis.raw_command(&["PUBLISH", "im_v2_wsChanChanged", ""]) != ":0";
        let up = wait_until(Duration::from_secs(5), || {
            matches!(node.child.try_wait(), Ok(None))
                && TcpStream::connect(listen).is_ok()
                && subscribed()
        });
        assert!(up, "node {server} (listening on {listen}) did not start");
        node
    }

    /// Its name in the cluster.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Where it listens.
    pub fn listen(&self) -> &str {
        &self.listen
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
