//! Node settings: the command line (a contract other tools rely on), the same
//! settings from `FREEIM_*` environment variables, defaults, and validation.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::ws::MAX_HEADER_LEN;

/// Settings of one ImServer node.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "freeim-server",
    version,
    about = "FreeIM-compatible WebSocket push node: holds clients' sockets, takes commands from Redis",
    after_help = "Every option can also be set through the environment variable named in brackets."
)]
pub struct Config {
    /// Address to accept WebSocket connections on.
    #[arg(long, env = "FREEIM_LISTEN", default_value = "0.0.0.0:6001")]
    pub listen: SocketAddr,

    /// Redis URL shared by every node and business service:
    /// `redis://[user:password@]host:port/db`, `rediss://…` (TLS; add
    /// `?ssl_ca_certs=/path/ca.pem` for a private CA), `unix:///path`, or
    /// `redis+sentinel://[user:password@]sentinel:26379,…/master_name/db`.
    #[arg(
        long,
        env = "FREEIM_REDIS",
        default_value = "redis://127.0.0.1:6379/",
        hide_env_values = true
    )]
    pub redis: String,

    /// Longest a silently dead Redis link (no FIN, no RST: a partition, a
    /// hung proxy) goes unnoticed: the subscriber sends PING after a third
    /// of it without traffic and reconnects when no answer comes within
    /// another third. Shorter detects sooner and costs one PING per idle
    /// third (e.g. `15s`, `3s`).
    #[arg(long, env = "FREEIM_REDIS_LIVENESS", default_value = "15s", value_parser = parse_duration)]
    pub redis_liveness: Duration,

    /// This node's name in the cluster (`host:port` as clients reach it);
    /// defaults to the listen address.
    #[arg(long, env = "FREEIM_SERVER")]
    pub server: Option<String>,

    /// The cluster's nodes, `;`- or `,`-separated, identical on every node and
    /// business service (client `id` belongs to `servers[id mod len]`);
    /// defaults to this node alone.
    #[arg(long, env = "FREEIM_SERVERS")]
    pub servers: Option<String>,

    /// WebSocket path; also names the Redis keys (`im_v2` + path with `/` → `_`).
    #[arg(long, env = "FREEIM_PATH", default_value = "/ws")]
    pub path: String,

    /// Event-loop threads; defaults to the number of cores.
    #[arg(long, env = "FREEIM_THREADS")]
    pub threads: Option<usize>,

    /// Most open client connections; at the cap new upgrades get 503.
    /// Defaults to the open-file limit less headroom for Redis and listeners.
    #[arg(long, env = "FREEIM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most connections still upgrading (request head or token check) at
    /// once, split evenly across loops; beyond it new connections get 503.
    #[arg(long, env = "FREEIM_MAX_PENDING_UPGRADES", default_value_t = 16384)]
    pub max_pending_upgrades: usize,

    /// Largest upgrade request head, in bytes (431 beyond it).
    #[arg(long, env = "FREEIM_MAX_HEADER_BYTES", default_value_t = 8192)]
    pub max_header_bytes: usize,

    /// Largest client frame or message, in bytes (close 1009 beyond it).
    #[arg(long, env = "FREEIM_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    pub max_message_bytes: usize,

    /// Most bytes queued for one connection behind the message it is being
    /// sent (that one does not count, whatever its size); a push that would
    /// go past it closes the reader with 1008 "send buffer full". At least
    /// --max-push-bytes plus a frame header (14), so a largest push always
    /// fits behind the message in flight; the default holds two.
    #[arg(long, env = "FREEIM_MAX_SEND_BUFFER", default_value_t = 8 << 20)]
    pub max_send_buffer: usize,

    /// Largest message pushed to clients, in bytes: the text a socket
    /// receives (FreeIM's JSON-encoded message). `imhelper` refuses a larger
    /// one before publishing; a larger command published anyway (e.g. by
    /// another ImHelper) is dropped, counted (`freeim_pushes_refused_total`)
    /// and logged. Every command must also fit Redis's pub/sub output-buffer
    /// limit (32 MB by default) with its JSON escaping.
    #[arg(long, env = "FREEIM_MAX_PUSH_BYTES", default_value_t = 4 << 20)]
    pub max_push_bytes: usize,

    /// Most receipt bytes one Send command may make this node publish
    /// (receivers here × the receipt command's length, which holds the
    /// message JSON-escaped twice). Receipts go back through
    /// the sender's node's subscription, and one send with receipts to
    /// 100,000 receivers would publish hundreds of MB into it, past Redis's
    /// pub/sub output-buffer limit. A command over the budget is delivered
    /// without receipts, counted (`freeim_receipts_refused_total`) and logged.
    #[arg(long, env = "FREEIM_MAX_RECEIPT_BYTES", default_value_t = 4 << 20)]
    pub max_receipt_bytes: usize,

    /// Time a connection may take to complete its upgrade (e.g. `10s`, `500ms`).
    #[arg(long, env = "FREEIM_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Idle time after which the node pings a client; `0s` turns heartbeats off.
    #[arg(long, env = "FREEIM_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// Time a pinged client has to answer before it is closed as dead.
    #[arg(long, env = "FREEIM_HEARTBEAT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub heartbeat_timeout: Duration,

    /// On SIGTERM/SIGINT: time to close every socket with 1001, publish the
    /// offline events and clear presence before exiting anyway.
    #[arg(long, env = "FREEIM_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Accept upgrades only from these `Origin`s (`,`-separated); any when unset.
    #[arg(long, env = "FREEIM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Address for the admin endpoints `/metrics` (Prometheus) and `/healthz`; off when unset.
    #[arg(long, env = "FREEIM_ADMIN")]
    pub admin: Option<SocketAddr>,

    /// Conformance-test mode: no Redis, no tokens, every data message echoed.
    #[arg(long, env = "FREEIM_ECHO")]
    pub echo: bool,
}

/// Settings after defaults are filled in and every value is checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to accept on.
    pub listen: SocketAddr,
    /// Where Redis is (parsed; its `Display` hides passwords).
    pub redis: redis_link::RedisUrl,
    /// Longest a silently dead Redis link goes unnoticed.
    pub redis_liveness: Duration,
    /// This node's name.
    pub server: String,
    /// The cluster, in partition order.
    pub servers: Vec<String>,
    /// WebSocket path.
    pub path: String,
    /// Event-loop threads.
    pub threads: usize,
    /// Most open client connections.
    pub max_connections: usize,
    /// Most connections still upgrading.
    pub max_pending_upgrades: usize,
    /// Largest upgrade request head.
    pub max_header_bytes: usize,
    /// Largest client frame or message.
    pub max_message_bytes: usize,
    /// Most bytes queued per connection behind the message in flight.
    pub max_send_buffer: usize,
    /// Largest message pushed to clients.
    pub max_push_bytes: usize,
    /// Receipt budget of one Send command, in bytes.
    pub max_receipt_bytes: usize,
    /// Upgrade deadline.
    pub handshake_timeout: Duration,
    /// Ping after this much silence; `None` when heartbeats are off.
    pub heartbeat_interval: Option<Duration>,
    /// Answer deadline after a ping.
    pub heartbeat_timeout: Duration,
    /// Graceful-drain deadline.
    pub drain_timeout: Duration,
    /// Allowed `Origin`s; empty = any.
    pub allowed_origins: Vec<String>,
    /// Admin endpoint address.
    pub admin: Option<SocketAddr>,
    /// Echo mode.
    pub echo: bool,
}

/// File descriptors kept back from the open-file limit for listeners, Redis
/// connections, wakers and epoll.
const FD_HEADROOM: usize = 64;

impl Config {
    /// Fills in defaults and checks every value; the error is one line.
    pub fn validate(self) -> Result<Settings, String> {
        let server = self.server.unwrap_or_else(|| self.listen.to_string());
        let servers: Vec<String> = match self.servers {
            Some(list) => list
                .split([';', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => vec![server.clone()],
        };
        if servers.is_empty() {
            return Err("--servers lists no server".into());
        }
        if !servers.contains(&server) {
            return Err(format!(
                "--server {server} is not in --servers {}: this node would receive no commands",
                servers.join(";")
            ));
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ']) {
            return Err(format!(
                "--path {:?} must start with '/' and hold no '?', '#' or space",
                self.path
            ));
        }
        let redis: redis_link::RedisUrl =
            self.redis.parse().map_err(|e| format!("--redis: {e}"))?;
        if self.redis_liveness < Duration::from_millis(300) {
            return Err("--redis-liveness must be at least 300ms".into());
        }
        let threads = match self.threads {
            Some(0) => return Err("--threads must be at least 1".into()),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let fd_limit = open_file_limit();
        let fd_cap = fd_limit.saturating_sub(FD_HEADROOM);
        let max_connections = match self.max_connections {
            Some(0) => return Err("--max-connections must be at least 1".into()),
            Some(n) if n > fd_cap => {
                return Err(format!(
                    "--max-connections {n} exceeds the open-file limit {fd_limit} less {FD_HEADROOM} kept back"
                ))
            }
            Some(n) => n,
            None => fd_cap.max(1),
        };
        if self.max_header_bytes < 256 {
            return Err("--max-header-bytes must be at least 256".into());
        }
        if self.max_message_bytes < 125 {
            return Err("--max-message-bytes must be at least 125".into());
        }
        if self.max_push_bytes == 0 {
            return Err("--max-push-bytes must be at least 1".into());
        }
        if self.max_send_buffer < self.max_push_bytes.saturating_add(MAX_HEADER_LEN) {
            return Err(format!(
                "--max-send-buffer {} must be at least --max-push-bytes {} + {MAX_HEADER_LEN}: \
                 one largest push (and its frame header) must fit behind the message in flight",
                self.max_send_buffer, self.max_push_bytes
            ));
        }
        if self.handshake_timeout.is_zero() || self.heartbeat_timeout.is_zero() {
            return Err("--handshake-timeout and --heartbeat-timeout must be above zero".into());
        }
        Ok(Settings {
            listen: self.listen,
            redis,
            redis_liveness: self.redis_liveness,
            server,
            servers,
            path: self.path,
            threads,
            max_connections,
            max_pending_upgrades: self.max_pending_upgrades.max(1),
            max_header_bytes: self.max_header_bytes,
            max_message_bytes: self.max_message_bytes,
            max_send_buffer: self.max_send_buffer,
            max_push_bytes: self.max_push_bytes,
            max_receipt_bytes: self.max_receipt_bytes,
            handshake_timeout: self.handshake_timeout,
            heartbeat_interval: Some(self.heartbeat_interval).filter(|d| !d.is_zero()),
            heartbeat_timeout: self.heartbeat_timeout,
            drain_timeout: self.drain_timeout,
            allowed_origins: self.allowed_origins,
            admin: self.admin,
            echo: self.echo,
        })
    }
}

/// The process's soft open-file limit (`RLIMIT_NOFILE`).
pub fn open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 10s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?} has an unknown unit (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["freeim-server"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .validate()
    }

    #[test]
    fn defaults_make_a_one_node_cluster() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.server, "0.0.0.0:6001");
        assert_eq!(settings.servers, vec!["0.0.0.0:6001".to_string()]);
        assert_eq!(settings.path, "/ws");
        assert!(settings.threads >= 1);
        assert_eq!(settings.heartbeat_interval, Some(Duration::from_secs(30)));
    }

    #[test]
    fn servers_accept_both_separators() {
        let settings = settings(&["--server", "b:2", "--servers", "a:1; b:2,c:3"]).unwrap();
        assert_eq!(settings.servers, ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (args, needle) in [
            (
                &["--server", "x:1", "--servers", "a:1;b:2"][..],
                "not in --servers",
            ),
            (&["--path", "ws"], "--path"),
            (&["--redis", "http://x"], "--redis"),
            (&["--threads", "0"], "--threads"),
            (&["--max-connections", "999999999"], "open-file limit"),
            (&["--listen", "nowhere"], "invalid value"),
            (&["--handshake-timeout", "10 parsecs"], "unknown unit"),
            (&["--max-send-buffer", "4096"], "--max-push-bytes"),
            (&["--max-push-bytes", "0"], "--max-push-bytes"),
        ] {
            let error = settings(args).unwrap_err();
            assert!(error.contains(needle), "{args:?}: {error}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("s").is_err());
    }
}
