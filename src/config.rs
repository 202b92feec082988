//! Node settings: the command line (a contract other tools rely on), the same
//! settings from `FREEIM_*` environment variables, defaults, and validation.
//!
//! [`Config`] is what was written; [`Config::validate`] turns it, once, at
//! start-up, into [`Settings`]: lists trimmed, origins parsed, host names
//! resolved, defaults filled in. A value that cannot be used is an error
//! naming its setting, never silently raised, lowered or ignored.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;

use crate::http::{Origin, OriginPolicy};
use crate::ws::MAX_HEADER_LEN;

/// Settings of one ImServer node.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "freeim-server",
    version,
    about = "FreeIM-compatible WebSocket push node: holds clients' sockets, takes commands from Redis",
    after_help = "Every option can also be set through the environment variable named in brackets. \
                  Durations are written 500ms, 10s, 1m30s, 1.5s, 2h (humantime's units) or as bare \
                  seconds, at most a year (1y)."
)]
pub struct Config {
    /// Address to accept WebSocket connections on: `ip:port`, `[ipv6]:port`
    /// or `host:port`. A host name is resolved once, at start-up; the node
    /// listens on its first IPv4 address (its first address if it has none).
    #[arg(long, env = "FREEIM_LISTEN", default_value = "0.0.0.0:6001")]
    pub listen: String,

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
    /// defaults to --listen as written (an IP address in its usual form).
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
    /// Defaults to the open-file limit less 64 kept back for Redis and
    /// listeners; more than that is an error.
    #[arg(long, env = "FREEIM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most connections still upgrading (request head or token check) at
    /// once, split evenly across loops (each loop's share rounded up);
    /// beyond it new connections get 503. At least 1.
    #[arg(long, env = "FREEIM_MAX_PENDING_UPGRADES", default_value_t = 16384)]
    pub max_pending_upgrades: usize,

    /// Largest upgrade request head, in bytes (431 beyond it); at least 256.
    /// The only limit on the request: the number of header fields (a field
    /// line takes at least 3 bytes) and the length of the path, query, token
    /// and header values are bounded by it alone.
    #[arg(long, env = "FREEIM_MAX_HEADER_BYTES", default_value_t = 8192)]
    pub max_header_bytes: usize,

    /// Largest client frame or message, in bytes (close 1009 beyond it);
    /// from 125 (a control frame's largest payload) to 4294967295.
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

    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it
    /// (every browser does): `on` or `off`. Without context takeover either
    /// way, so an idle connection holds no compressor state; a message is
    /// compressed once for all its receivers.
    #[arg(long, env = "FREEIM_COMPRESSION", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub compression: bool,

    /// Messages shorter than this many bytes go uncompressed even to clients
    /// that negotiated permessage-deflate (compressing them saves little);
    /// at most --max-push-bytes. Needs --compression on.
    #[arg(long, env = "FREEIM_COMPRESSION_MIN_BYTES")]
    pub compression_min_bytes: Option<usize>,

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

    /// Accept upgrades only from these origins, `,`-separated
    /// (`https://app.example.com, https://example.com:8443`); any when unset.
    /// Compared as origins: scheme and host in any case, a default port
    /// (80, 443) written or not. Each must be `scheme://host[:port]`,
    /// with no path. A request without `Origin` is still accepted unless
    /// --require-origin.
    #[arg(long, env = "FREEIM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Refuse (403) upgrades without an `Origin` header. Browsers always
    /// send one; native apps and server-side clients often do not.
    #[arg(long, env = "FREEIM_REQUIRE_ORIGIN")]
    pub require_origin: bool,

    /// Address for the admin endpoints `/metrics` (Prometheus) and
    /// `/healthz` (`ip:port` or `host:port`, resolved like --listen); off when unset.
    #[arg(long, env = "FREEIM_ADMIN")]
    pub admin: Option<String>,

    /// Conformance-test mode: no Redis, no tokens, every data message echoed.
    #[arg(long, env = "FREEIM_ECHO")]
    pub echo: bool,

    /// Start even though a live node holds this `--server` name (its lease
    /// `{prefix}Alive{server}`); that node exits at its next lease renewal
    /// (within 5 s), leaving the name's presence to this one. Without it a
    /// node refuses to start while another live node holds its name.
    #[arg(long, env = "FREEIM_TAKE_OVER")]
    pub take_over: bool,

    /// Unix socket where this node hands its listening sockets and every
    /// connection over to a new process started with `--upgrade` (a hot
    /// upgrade: README "Upgrading a node"). Made with mode 0600; only a
    /// process of the same user may take over. Off when unset.
    #[arg(long, env = "FREEIM_UPGRADE_SOCKET")]
    pub upgrade_socket: Option<std::path::PathBuf>,

    /// Start by taking the listening sockets and every connection over from
    /// the node serving on `--upgrade-socket` (same `--server`, `--servers`
    /// and `--path`); that node exits once this one holds them. Fails, and
    /// leaves that node serving, if the hand-over cannot complete.
    #[arg(long, env = "FREEIM_UPGRADE", requires = "upgrade_socket")]
    pub upgrade: bool,

    /// Longest a hand-over may take before it is abandoned (the old process
    /// then keeps serving every connection).
    #[arg(long, env = "FREEIM_UPGRADE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub upgrade_timeout: Duration,
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
    /// permessage-deflate: negotiated with clients that offer it.
    pub compression: bool,
    /// Shortest message sent compressed to a client that negotiated it.
    pub compression_min_bytes: usize,
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
    /// Which `Origin`s may upgrade.
    pub origins: OriginPolicy,
    /// Admin endpoint address.
    pub admin: Option<SocketAddr>,
    /// Echo mode.
    pub echo: bool,
    /// Take the name from a live node.
    pub take_over: bool,
    /// Where connections are handed over to a new process.
    pub upgrade_socket: Option<std::path::PathBuf>,
    /// Start by taking the connections over from the running node.
    pub upgrade: bool,
    /// Longest a hand-over may take.
    pub upgrade_timeout: Duration,
}

impl Settings {
    /// How Redis names are laid out: sharded for a Redis Cluster
    /// (`redis+cluster://`), FreeIM's otherwise.
    pub fn layout(&self) -> freeim_protocol::Layout {
        freeim_protocol::Layout::for_redis(self.redis.is_cluster())
    }
}

/// Why the settings cannot be used: the setting at fault and what is wrong
/// with it, as one line that starts with the setting's flag (e.g.
/// `--threads must be at least 1`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The flag of the setting at fault (`--max-connections`).
    pub setting: &'static str,
    message: String,
}

impl ConfigError {
    fn new(setting: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            setting,
            message: message.into(),
        }
    }
}

/// `--compression-min-bytes` when not given: shorter JSON saves a few bytes
/// at most once compressed on its own.
pub const DEFAULT_COMPRESSION_MIN_BYTES: usize = 128;

/// An `on`/`off` switch (also `true`/`false`, `1`/`0`, `yes`/`no`).
fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

/// File descriptors kept back from the open-file limit for listeners, Redis
/// connections, wakers and epoll.
const FD_HEADROOM: usize = 64;

impl Config {
    /// Fills in defaults and checks every value; the error is one line.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let listen = resolve("--listen", &self.listen)?;
        let server =
            self.server
                .unwrap_or_else(|| match self.listen.trim().parse::<SocketAddr>() {
                    Ok(ip) => ip.to_string(),
                    Err(_) => self.listen.trim().to_string(),
                });
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
            return Err(ConfigError::new("--servers", "--servers lists no server"));
        }
        if !servers.contains(&server) {
            return Err(ConfigError::new(
                "--server",
                format!(
                    "--server {server} is not in --servers {}: this node would receive no commands",
                    servers.join(";")
                ),
            ));
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ']) {
            return Err(ConfigError::new(
                "--path",
                format!(
                    "--path {:?} must start with '/' and hold no '?', '#' or space",
                    self.path
                ),
            ));
        }
        let redis: redis_link::RedisUrl = self
            .redis
            .parse()
            .map_err(|e| ConfigError::new("--redis", format!("--redis: {e}")))?;
        if self.redis_liveness < Duration::from_millis(300) {
            return Err(ConfigError::new(
                "--redis-liveness",
                "--redis-liveness must be at least 300ms",
            ));
        }
        let threads = match self.threads {
            Some(0) => {
                return Err(ConfigError::new(
                    "--threads",
                    "--threads must be at least 1",
                ))
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let fd_limit = open_file_limit();
        let fd_cap = fd_limit.saturating_sub(FD_HEADROOM);
        let max_connections = match self.max_connections {
            Some(0) => return Err(ConfigError::new("--max-connections", "--max-connections must be at least 1")),
            Some(n) if n > fd_cap => {
                return Err(ConfigError::new(
                    "--max-connections",
                    format!("--max-connections {n} exceeds the open-file limit {fd_limit} less {FD_HEADROOM} kept back"),
                ))
            }
            Some(n) => n,
            None if fd_cap == 0 => {
                return Err(ConfigError::new(
                    "--max-connections",
                    format!(
                        "the open-file limit {fd_limit} leaves no room for connections once {FD_HEADROOM} \
                         are kept back: raise it (ulimit -n) or set --max-connections"
                    ),
                ))
            }
            None => fd_cap,
        };
        if self.max_pending_upgrades == 0 {
            return Err(ConfigError::new(
                "--max-pending-upgrades",
                "--max-pending-upgrades must be at least 1",
            ));
        }
        if self.max_header_bytes < 256 {
            return Err(ConfigError::new(
                "--max-header-bytes",
                "--max-header-bytes must be at least 256",
            ));
        }
        if self.max_message_bytes < 125 {
            return Err(ConfigError::new(
                "--max-message-bytes",
                "--max-message-bytes must be at least 125",
            ));
        }
        if u32::try_from(self.max_message_bytes).is_err() {
            return Err(ConfigError::new(
                "--max-message-bytes",
                format!("--max-message-bytes must be at most {}", u32::MAX),
            ));
        }
        if self.max_push_bytes == 0 {
            return Err(ConfigError::new(
                "--max-push-bytes",
                "--max-push-bytes must be at least 1",
            ));
        }
        if self.max_send_buffer < self.max_push_bytes.saturating_add(MAX_HEADER_LEN) {
            return Err(ConfigError::new(
                "--max-send-buffer",
                format!(
                    "--max-send-buffer {} must be at least --max-push-bytes {} + {MAX_HEADER_LEN}: \
                     one largest push (and its frame header) must fit behind the message in flight",
                    self.max_send_buffer, self.max_push_bytes
                ),
            ));
        }
        let compression_min_bytes = match self.compression_min_bytes {
            Some(_) if !self.compression => {
                return Err(ConfigError::new(
                    "--compression-min-bytes",
                    "--compression-min-bytes needs --compression on",
                ))
            }
            Some(n) if n > self.max_push_bytes => {
                return Err(ConfigError::new(
                    "--compression-min-bytes",
                    format!(
                        "--compression-min-bytes {n} exceeds --max-push-bytes {}: no message would \
                         ever be compressed (use --compression off)",
                        self.max_push_bytes
                    ),
                ))
            }
            Some(n) => n,
            None => DEFAULT_COMPRESSION_MIN_BYTES,
        };
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::new(
                "--handshake-timeout",
                "--handshake-timeout must be above zero",
            ));
        }
        if self.upgrade_timeout.is_zero() {
            return Err(ConfigError::new(
                "--upgrade-timeout",
                "--upgrade-timeout must be above zero",
            ));
        }
        if self.echo && self.upgrade_socket.is_some() {
            return Err(ConfigError::new(
                "--upgrade-socket",
                "--upgrade-socket needs Redis (a hand-over cuts the command stream there): not \
                 with --echo",
            ));
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::new(
                "--heartbeat-timeout",
                "--heartbeat-timeout must be above zero",
            ));
        }
        let origins = OriginPolicy::new(parse_origins(&self.allowed_origins)?, self.require_origin);
        let admin = match &self.admin {
            Some(text) => Some(resolve("--admin", text)?),
            None => None,
        };
        Ok(Settings {
            listen,
            redis,
            redis_liveness: self.redis_liveness,
            server,
            servers,
            path: self.path,
            threads,
            max_connections,
            max_pending_upgrades: self.max_pending_upgrades,
            max_header_bytes: self.max_header_bytes,
            max_message_bytes: self.max_message_bytes,
            max_send_buffer: self.max_send_buffer,
            max_push_bytes: self.max_push_bytes,
            compression: self.compression,
            compression_min_bytes,
            max_receipt_bytes: self.max_receipt_bytes,
            handshake_timeout: self.handshake_timeout,
            heartbeat_interval: Some(self.heartbeat_interval).filter(|d| !d.is_zero()),
            heartbeat_timeout: self.heartbeat_timeout,
            drain_timeout: self.drain_timeout,
            origins,
            admin,
            echo: self.echo,
            take_over: self.take_over,
            upgrade_socket: self.upgrade_socket,
            upgrade: self.upgrade,
            upgrade_timeout: self.upgrade_timeout,
        })
    }
}

/// `--allowed-origins`, each item trimmed (empty items, as from a trailing
/// comma or an empty variable, are skipped) and parsed as an origin.
fn parse_origins(items: &[String]) -> Result<Vec<Origin>, ConfigError> {
    let mut origins: Vec<Origin> = Vec::new();
    for item in items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
    {
        let origin = item.parse().map_err(|e| {
            let message = format!("--allowed-origins: {item:?} is not an origin: {e}");
            ConfigError::new("--allowed-origins", message)
        })?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// The address `flag`'s `host:port` names: an IP address as written, a host
/// name looked up now (its first IPv4 address, else its first address).
fn resolve(flag: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let example = "e.g. 0.0.0.0:6001, [::]:6001 or localhost:6001";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(ConfigError::new(
            flag,
            format!("{flag} {text:?} is not host:port ({example})"),
        ));
    };
    if host.is_empty() || host.contains([':', '[', ']', ' ', '/']) {
        return Err(ConfigError::new(
            flag,
            format!("{flag} {text:?} is not host:port ({example})"),
        ));
    }
    let port: u16 = port.parse().map_err(|_| {
        let message = format!("{flag} {text:?}: {port:?} is not a port number (0 to 65535)");
        ConfigError::new(flag, message)
    })?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| {
            ConfigError::new(flag, format!("{flag} {text}: cannot resolve {host:?}: {e}"))
        })?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            ConfigError::new(
                flag,
                format!("{flag} {text}: {host:?} resolves to no address"),
            )
        })
}

/// The process's soft open-file limit (`RLIMIT_NOFILE`); 1024 if it cannot
/// be read.
pub fn open_file_limit() -> usize {
    rlimit::Resource::NOFILE
        .get_soft()
        .map_or(1024, |soft| usize::try_from(soft).unwrap_or(usize::MAX))
}

/// The longest duration a setting takes: a year (`1y`, 365.25 days, as
/// `humantime` counts one). Anything longer is surely a slip, and the
/// deadlines computed from a duration must not overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// Parses a duration as `humantime` writes one (`250ms`, `10s`, `1m30s`,
/// `1.5s`, `2h`, `1y`) or a bare number of seconds (`3`), up to
/// [`MAX_DURATION`]. clap puts the setting's name before the error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bare_seconds = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = if bare_seconds {
        humantime::parse_duration(&format!("{text}s"))
    } else {
        humantime::parse_duration(text)
    };
    let too_long =
        || format!("{text:?} is longer than a year, the longest duration a setting takes");
    match parsed {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        Ok(_) => Err(too_long()),
        // Without a fraction, humantime overflows only past ~584 billion years.
        Err(humantime::DurationError::NumberOverflow) if !text.contains('.') => Err(too_long()),
        Err(e) => Err(format!(
            "{text:?} is not a duration like 500ms, 10s, 1m30s or 2h: {e}"
        )),
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
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_error_names_its_setting() {
        let argv = ["freeim-server", "--listen", "127.0.0.1:0", "--threads", "0"];
        let error = Config::try_parse_from(argv)
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(error.setting, "--threads");
        assert_eq!(error.to_string(), "--threads must be at least 1");
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
            (
                &["--listen", "nowhere"],
                "--listen \"nowhere\" is not host:port",
            ),
            (&["--listen", "localhost:http"], "is not a port number"),
            (&["--listen", "no-such-host.invalid:6001"], "cannot resolve"),
            (&["--admin", "nowhere"], "--admin"),
            (&["--max-pending-upgrades", "0"], "--max-pending-upgrades"),
            (&["--upgrade-timeout", "0s"], "--upgrade-timeout"),
            (
                &["--echo", "--upgrade-socket", "/tmp/x.sock"],
                "--upgrade-socket needs Redis",
            ),
            (
                &["--max-message-bytes", "4294967296"],
                "--max-message-bytes",
            ),
            (&["--heartbeat-timeout", "0s"], "--heartbeat-timeout"),
            (
                &["--drain-timeout", "99999999999999999999m"],
                "longer than a year",
            ),
            (&["--allowed-origins", "a.test"], "--allowed-origins"),
            (
                &["--allowed-origins", "https://a.test, https://b.test/"],
                "\"https://b.test/\" is not an origin",
            ),
            (&["--allowed-origins", "null"], "opaque"),
            (&["--handshake-timeout", "10 parsecs"], "unknown time unit"),
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
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30min"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for (text, needle) in [
            ("s", "not a duration"),
            ("", "not a duration"),
            ("-1s", "not a duration"),
            ("10 parsecs", "unknown time unit \"parsecs\""),
            ("0.5ns", "not a duration"),
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn durations_stop_at_a_year() {
        assert_eq!(parse_duration("1y"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("525960m"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("31557600"), Ok(MAX_DURATION));
        for text in [
            "1y 1s",
            "525961m",
            "31557601s",
            "31557600001ms",
            "18446744073709551615m",
            "99999999999999999999",
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(error.contains("longer than a year"), "{text}: {error}");
        }
    }

    #[test]
    fn origins_are_trimmed_parsed_and_deduplicated() {
        let listed = settings_of(&[
            "--allowed-origins",
            " https://a.test , HTTPS://B.test:443,,https://a.test:443, ",
        ]);
        let shown: Vec<String> = listed
            .origins
            .allowed()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["https://a.test", "https://b.test"]);
        assert!(!listed.origins.required());
        assert_eq!(listed.origins.check(None), Ok(()));
        assert_eq!(listed.origins.check(Some("https://b.test")), Ok(()));

        // An empty value (e.g. FREEIM_ALLOWED_ORIGINS="") is the same as unset.
        assert!(settings_of(&["--allowed-origins", ""])
            .origins
            .allowed()
            .is_empty());
        assert!(settings_of(&["--require-origin"]).origins.required());
    }

    #[test]
    fn listen_takes_host_names_and_names_the_node_as_written() {
        let settings = settings_of(&["--listen", "localhost:6001"]);
        assert_eq!(settings.listen, "127.0.0.1:6001".parse().unwrap());
        assert_eq!(settings.server, "localhost:6001");
        let settings = settings_of(&["--listen", " [::1]:6001 "]);
        assert_eq!(settings.server, "[::1]:6001");
        let settings = settings_of(&["--admin", "localhost:9100"]);
        assert_eq!(settings.admin, Some("127.0.0.1:9100".parse().unwrap()));
    }

    fn settings_of(args: &[&str]) -> Settings {
        settings(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn settings_are_kept_as_given() {
        let settings = settings_of(&[
            "--max-pending-upgrades",
            "1",
            "--max-message-bytes",
            "4294967295",
        ]);
        assert_eq!(settings.max_pending_upgrades, 1);
        assert_eq!(settings.max_message_bytes, u32::MAX as usize);
    }

    #[test]
    fn compression_settings() {
        let defaults = settings_of(&[]);
        assert!(defaults.compression);
        assert_eq!(
            defaults.compression_min_bytes,
            DEFAULT_COMPRESSION_MIN_BYTES
        );
        assert!(!settings_of(&["--compression", "off"]).compression);
        let every = settings_of(&["--compression-min-bytes", "0"]);
        assert_eq!(every.compression_min_bytes, 0);
        let error = settings(&["--compression", "maybe"]).unwrap_err();
        assert!(error.contains("\"maybe\" is not on or off"), "{error}");
        let error =
            settings(&["--compression", "off", "--compression-min-bytes", "10"]).unwrap_err();
        assert_eq!(error, "--compression-min-bytes needs --compression on");
        let error = settings(&[
            "--max-push-bytes",
            "1000",
            "--max-send-buffer",
            "2000",
            "--compression-min-bytes",
            "1001",
        ])
        .unwrap_err();
        assert!(
            error.starts_with("--compression-min-bytes 1001 exceeds --max-push-bytes 1000"),
            "{error}"
        );
    }
}
