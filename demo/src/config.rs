//! Settings of the demo service: the command line, the same settings from
//! environment variables, defaults, and validation with one-line errors.
//!
//! The cluster settings (`--redis`, `--servers`, `--path`) read the node's
//! own variables (`FREEIM_REDIS`, `FREEIM_SERVERS`, `FREEIM_PATH`), because
//! a business service must use exactly the values its nodes use. Only the
//! listen address has a variable of its own, `FREEIM_DEMO_LISTEN`, so that
//! one shell can configure a node and the demo side by side.
//!
//! The HTTP time limits are [`Settings`] fields with fixed defaults
//! ([`HEAD_TIMEOUT`], [`BODY_TIMEOUT`]), not flags.

use std::net::SocketAddr;
use std::time::Duration;

/// Default time a client has to send a request head; also how long an idle
/// keep-alive connection is kept.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send a request body, once its head came.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

use clap::Parser;

/// The command line of `freeim-demo`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "freeim-demo",
    version,
    about = "Demo business service for FreeIM: an HTTP API on imhelper and a chat page",
    after_help = "Every option can also be set through the environment variable named in brackets."
)]
pub struct Config {
    /// Address the HTTP API and the chat page are served on.
    #[arg(long, env = "FREEIM_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Redis URL shared with the nodes.
    #[arg(
        long,
        env = "FREEIM_REDIS",
        default_value = "redis://127.0.0.1:6379/",
        hide_env_values = true
    )]
    pub redis: String,

    /// The cluster's nodes, `;`- or `,`-separated, exactly as the nodes list
    /// them (client `id` belongs to `servers[id mod len]`).
    #[arg(long, env = "FREEIM_SERVERS", default_value = "127.0.0.1:6001")]
    pub servers: String,

    /// The nodes' WebSocket path (also names the Redis keys).
    #[arg(long, env = "FREEIM_PATH", default_value = "/ws")]
    pub path: String,

    /// Threads for the blocking calls into imhelper and Redis (tokio's
    /// blocking pool; HTTP itself is served by tokio's workers).
    #[arg(long, env = "FREEIM_DEMO_THREADS", default_value_t = 4)]
    pub threads: usize,
}

/// Checked settings, ready for [`Demo::start`](crate::Demo::start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Address to serve HTTP on (port `0` picks a free one).
    pub listen: SocketAddr,
    /// Redis URL.
    pub redis: String,
    /// The cluster, in partition order.
    pub servers: Vec<String>,
    /// The nodes' WebSocket path.
    pub path: String,
    /// Threads for the blocking calls into `imhelper` and Redis (at least
    /// 1): the size of tokio's blocking pool. Requests beyond that wait in
    /// line; requests that need no Redis never do.
    pub threads: usize,
    /// Time a client has to send a request head, and the longest an idle
    /// keep-alive connection is kept; the connection is closed after it.
    pub head_timeout: Duration,
    /// Time a client has to send a request body once its head came; a
    /// slower one gets `408` and the connection is closed.
    pub body_timeout: Duration,
}

impl Settings {
    /// Settings for one node `server` behind Redis `redis`, served on
    /// `listen`, with the default path, 4 threads and the default time
    /// limits.
    ///
    /// # Example
    ///
    /// ```
    /// use freeim_demo::Settings;
    ///
    /// let settings = Settings::new("127.0.0.1:0".parse().unwrap(), "redis://127.0.0.1/", "127.0.0.1:6001");
    /// assert_eq!(settings.servers, ["127.0.0.1:6001"]);
    /// assert_eq!(settings.path, "/ws");
    /// ```
    pub fn new(listen: SocketAddr, redis: &str, server: &str) -> Settings {
        Settings {
            listen,
            redis: redis.to_string(),
            servers: vec![server.to_string()],
            path: "/ws".to_string(),
            threads: 4,
            head_timeout: HEAD_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
        }
    }
}

impl Config {
    /// Fills in defaults and checks every value; the error is one line.
    ///
    /// # Example
    ///
    /// ```
    /// use clap::Parser;
    /// use freeim_demo::Config;
    ///
    /// let config = Config::parse_from(["freeim-demo", "--servers", "a:1;b:2", "--path", "/chat"]);
    /// let settings = config.validate().unwrap();
    /// assert_eq!(settings.servers, ["a:1", "b:2"]);
    ///
    /// let bad = Config::parse_from(["freeim-demo", "--path", "chat"]);
    /// assert!(bad.validate().unwrap_err().contains("--path"));
    /// ```
    pub fn validate(self) -> Result<Settings, String> {
        let servers: Vec<String> = self
            .servers
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if servers.is_empty() {
            return Err("--servers lists no server".into());
        }
        if let Some(bad) = servers.iter().find(|s| !looks_like_host_port(s)) {
            return Err(format!("--servers: {bad:?} is not a host:port name"));
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ']) {
            return Err(format!(
                "--path {:?} must start with '/' and hold no '?', '#' or space",
                self.path
            ));
        }
        // Every form imhelper takes (Sentinel included); the error never
        // quotes a password.
        if let Err(e) = self.redis.parse::<redis_link::RedisUrl>() {
            return Err(format!("--redis: {e}"));
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        Ok(Settings {
            listen: self.listen,
            redis: self.redis,
            servers,
            path: self.path,
            threads: self.threads,
            head_timeout: HEAD_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
        })
    }
}

/// `host:port` with a non-empty host, a numeric port, and no whitespace.
fn looks_like_host_port(server: &str) -> bool {
    match server.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok()
                && !server.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["freeim-demo"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn defaults_point_at_run_sh() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.servers, ["127.0.0.1:6001"]);
        assert_eq!(settings.path, "/ws");
        assert_eq!(settings.redis, "redis://127.0.0.1:6379/");
    }

    #[test]
    fn servers_split_on_both_separators() {
        let settings = parse(&["--servers", " a:1 ; b:2,c:3 "]).unwrap();
        assert_eq!(settings.servers, ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for (args, needle) in [
            (&["--servers", ";"][..], "--servers"),
            (&["--servers", "nohost"][..], "host:port"),
            (&["--servers", "a:notaport"][..], "host:port"),
            (&["--path", "ws"][..], "--path"),
            (&["--redis", "http://x"][..], "--redis"),
            (&["--threads", "0"][..], "--threads"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.contains(needle), "{args:?}: {error}");
            assert!(!error.contains('\n'), "{args:?}: {error}");
        }
    }
}
