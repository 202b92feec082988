//! Connections to the primary: the address resolved anew on every connect
//! (DNS, or Sentinel plus a `ROLE` check), TLS, AUTH, `SELECT`, timeouts and
//! TCP keepalive.
//!
//! Errors a person reads at start-up are sentences: a server that does not
//! speak RESP (an HTTP port, a typo in the port) is "`host:port` is not a
//! Redis server: it answered …", not a parser's dump; a refused AUTH says
//! which credentials were refused, never the password.
//!
//! `redis::sentinel` is not used: its blocking API connects without a
//! timeout, so one frozen sentinel or a half-dead old primary would hang the
//! caller for as long as the kernel keeps retrying (minutes), and a failover
//! is exactly when that happens.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{
    Client, Connection, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, TlsCertificates, Value,
};

use crate::address::{Credentials, Place, RedisUrl};

/// TCP keepalive on every Redis socket: the first probe after this much
/// silence, then 3 probes 2 s apart; with `TCP_USER_TIMEOUT` (10 s)
/// unacknowledged data fails the socket too. Together they close a
/// connection whose peer host vanished (no FIN, no RST) in about 11 s. They cannot see a peer that is
/// alive at TCP level but no longer forwards (a hung proxy): callers prove
/// that with their own request/answer deadline (PING).
pub const KEEPALIVE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
const USER_TIMEOUT: Duration = Duration::from_secs(10);

/// The primary's address, as found now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Primary {
    Tcp(String, u16),
    Unix(std::path::PathBuf),
}

impl fmt::Display for Primary {
    /// `host:port` (`[v6]:port`) or the socket's path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Primary::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Primary::Tcp(host, port) => write!(f, "{host}:{port}"),
            Primary::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How much of a non-Redis server's answer an error quotes.
const QUOTED_ANSWER: usize = 80;

impl RedisUrl {
    /// A connection to the primary, authenticated, on the URL's database,
    /// with `timeout` as its connect, read and write timeout.
    ///
    /// With a Sentinel URL, each sentinel in turn is asked for the primary
    /// until one names a server that answers `ROLE` as `master`.
    ///
    /// Before returning, the connection has had one reply (to `ECHO`), so a
    /// server that does not speak RESP fails here rather than at the
    /// caller's first command.
    ///
    /// # Errors
    /// Whatever `redis` reports for the connect, TLS or `SELECT`; a refused
    /// AUTH as `AuthenticationFailed` in a sentence; a server that answers
    /// something other than RESP as an `Io` error "`host:port` is not a
    /// Redis server: it answered …"; with Sentinel, an error naming the last
    /// reason no primary was found.
    pub fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        match &self.place {
            Place::Tcp { host, port } => self.open(Primary::Tcp(host.clone(), *port), timeout),
            Place::Unix(path) => self.open(Primary::Unix(path.clone()), timeout),
            Place::Sentinel { .. } => self
                .ask_sentinels(timeout)
                .map(|(connection, _)| connection),
            Place::Cluster { .. } => self.ask_seeds(|url, seed| url.open(seed, timeout)),
        }
    }

    /// Where the primary is now (for callers that open their own stream).
    pub(crate) fn primary(&self, timeout: Duration) -> RedisResult<Primary> {
        match &self.place {
            Place::Tcp { host, port } => Ok(Primary::Tcp(host.clone(), *port)),
            Place::Unix(path) => Ok(Primary::Unix(path.clone())),
            Place::Sentinel { .. } => self.ask_sentinels(timeout).map(|(_, primary)| primary),
            Place::Cluster { .. } => {
                self.ask_seeds(|url, seed| url.open(seed.clone(), timeout).map(|_| seed))
            }
        }
    }

    /// Asks each sentinel for the primary; the first that names a server
    /// answering `ROLE` as master wins.
    fn ask_sentinels(&self, timeout: Duration) -> RedisResult<(Connection, Primary)> {
        let Place::Sentinel { sentinels, master } = &self.place else {
            unreachable!("ask_sentinels on a URL without sentinels");
        };
        let mut last_error = None;
        // Sentinels usually agree: a primary that failed once is not tried
        // again in the same call (a hung one would cost a timeout each).
        let mut tried = Vec::new();
        // The sentinel that answered last goes first: one that is down or
        // silent costs a timeout once, not on every connect.
        let first = self.first_to_ask.get() % sentinels.len().max(1);
        let order = (first..sentinels.len()).chain(0..first);
        for index in order {
            let (host, port) = &sentinels[index];
            let sentinel = Primary::Tcp(host.clone(), *port);
            let asked = self
                .open_as(sentinel, &self.sentinel_auth, 0, timeout)
                .and_then(|mut sentinel| {
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(master)
                        .query::<Option<(String, u16)>>(&mut sentinel)
                });
            let primary = match asked {
                Ok(Some((host, port))) => Primary::Tcp(host, port),
                Ok(None) => {
                    last_error = Some(RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "a sentinel does not know the master",
                        format!("{host}:{port} has no master named {master:?}"),
                    )));
                    continue;
                }
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            if tried.contains(&primary) {
                continue;
            }
            tried.push(primary.clone());
            match self.open(primary.clone(), timeout).and_then(|mut c| {
                is_master(&mut c)?;
                Ok(c)
            }) {
                Ok(connection) => {
                    self.first_to_ask.set(index);
                    return Ok((connection, primary));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no sentinels in the URL"))
        }))
    }

    pub(crate) fn open(&self, primary: Primary, timeout: Duration) -> RedisResult<Connection> {
        self.open_as(primary, &self.auth, self.db, timeout)
    }

    /// A connection to `server`, authenticated with `auth`, on `db`; its
    /// errors say what went wrong in words ([`RedisUrl::explain`]).
    fn open_as(
        &self,
        server: Primary,
        auth: &Credentials,
        db: i64,
        timeout: Duration,
    ) -> RedisResult<Connection> {
        self.try_open_as(server.clone(), auth, db, timeout)
            .map_err(|error| self.explain(error, &server, timeout))
    }

    fn try_open_as(
        &self,
        server: Primary,
        auth: &Credentials,
        db: i64,
        timeout: Duration,
    ) -> RedisResult<Connection> {
        let addr = match server {
            Primary::Tcp(host, port) if self.tls.is_some() => ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            },
            Primary::Tcp(host, port) => ConnectionAddr::Tcp(host, port),
            Primary::Unix(path) => ConnectionAddr::Unix(path),
        };
        let mut settings = RedisConnectionInfo::default()
            .set_db(db)
            .set_skip_set_lib_name();
        if let Some(username) = &auth.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &auth.password {
            settings = settings.set_password(password);
        }
        let info: ConnectionInfo = addr
            .into_connection_info()?
            .set_redis_settings(settings)
            .set_tcp_settings(tcp_settings());
        let client = match self.tls.as_ref().and_then(|tls| tls.ca_pem.as_ref()) {
            Some(ca) => Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.to_vec()),
                },
            )?,
            None => Client::open(info)?,
        };
        let mut connection = client.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        connection.set_write_timeout(Some(timeout))?;
        first_reply(&mut connection)?;
        Ok(connection)
    }

    /// `error` from connecting to `server`, in words where the `redis`
    /// crate's are not: a reply that is not RESP becomes "… is not a Redis
    /// server: it answered …" (kind `Io`), a refused AUTH a sentence (kind
    /// still `AuthenticationFailed`). Other errors pass unchanged.
    fn explain(&self, error: RedisError, server: &Primary, timeout: Duration) -> RedisError {
        match error.kind() {
            ErrorKind::Parse => RedisError::from(io::Error::new(
                io::ErrorKind::InvalidData,
                self.not_redis(server, timeout),
            )),
            ErrorKind::AuthenticationFailed => RedisError::from((
                ErrorKind::AuthenticationFailed,
                "Redis refused the user name or password in the URL",
                format!("check them against the requirepass or ACL users of {server}"),
            )),
            _ => error,
        }
    }

    /// The error for a `server` whose answer is not RESP, quoting the start
    /// of what it answers a `PING` on a fresh connection (the failed one's
    /// bytes are gone): `"HTTP/1.1 400 Bad Request"` says it all.
    pub(crate) fn not_redis(&self, server: &Primary, timeout: Duration) -> String {
        let answer = self
            .stream_to(server.clone(), &Credentials::default(), timeout)
            .and_then(|mut stream| {
                stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
                stream.flush()?;
                let mut answer = Vec::new();
                let mut chunk = [0u8; QUOTED_ANSWER];
                while answer.len() < QUOTED_ANSWER && !answer.contains(&b'\n') {
                    match stream.read(&mut chunk)? {
                        0 => break,
                        n => answer.extend_from_slice(&chunk[..n]),
                    }
                }
                Ok(answer)
            });
        match answer.as_deref().map(first_line) {
            Ok(line) if !line.is_empty() => {
                format!("{server} is not a Redis server: it answered {line:?}")
            }
            _ => format!("{server} is not a Redis server: its answer is not RESP"),
        }
    }
}

/// The first line of `answer`, at most [`QUOTED_ANSWER`] bytes of it, as
/// text (`Debug` formatting then escapes what is not printable).
fn first_line(answer: &[u8]) -> String {
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(&line[..line.len().min(QUOTED_ANSWER)]).into_owned()
}

/// Reads one reply before the caller sends its first command, so that a
/// server that does not speak RESP fails here, where the error can say so.
/// `ECHO` rather than `PING`, so `PING` counts stay those of liveness
/// checks. An error reply (`NOAUTH`, `NOPERM`, a sentinel's unknown
/// command) is RESP too and passes: the caller's own command will meet it.
fn first_reply(connection: &mut Connection) -> RedisResult<()> {
    match redis::cmd("ECHO").arg("freeim").query::<Value>(connection) {
        Err(error) if error.code().is_none() => Err(error),
        _ => Ok(()),
    }
}

/// Keepalive and `TCP_NODELAY` for the `redis` crate's sockets.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive())
        .set_user_timeout(USER_TIMEOUT)
}

/// The keepalive of [`KEEPALIVE`].
pub(crate) fn keepalive() -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(KEEPALIVE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES)
}

/// `TCP_USER_TIMEOUT` for raw sockets.
pub(crate) fn user_timeout() -> Duration {
    USER_TIMEOUT
}

/// Fails unless the server says it is a primary (`ROLE` → `master`): a
/// sentinel may still name a demoted or restarted-as-replica server.
fn is_master(connection: &mut Connection) -> RedisResult<()> {
    let role: Value = redis::cmd("ROLE").query(connection)?;
    let is_master = match &role {
        Value::Array(items) => {
            matches!(items.first(), Some(Value::BulkString(r)) if r == b"master")
        }
        _ => false,
    };
    if is_master {
        Ok(())
    } else {
        Err(RedisError::from((
            ErrorKind::Client,
            "the server the sentinel named is not a primary (yet)",
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A server that answers whatever comes the way an HTTP server answers
    /// a request it cannot parse; its `redis://` URL with `auth` in front.
    fn http_server(auth: &str) -> (RedisUrl, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = stream.read(&mut [0u8; 512]);
                    let _ =
                        stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
                });
            }
        });
        let url = format!("redis://{auth}{address}/").parse().unwrap();
        (url, address)
    }

    #[test]
    fn a_server_that_is_not_redis_is_named_with_its_answer() {
        let timeout = Duration::from_secs(2);
        for auth in ["", ":secret@", "user:secret@"] {
            let (url, address) = http_server(auth);
            let expected = format!(
                "{address} is not a Redis server: it answered \"HTTP/1.1 400 Bad Request\""
            );
            let error = url.connect(timeout).err().expect("not Redis");
            assert_eq!(error.to_string(), expected, "{auth}");
            assert_eq!(error.kind(), ErrorKind::Io);
            if !auth.is_empty() {
                // The raw stream says the same when its AUTH gets HTTP back.
                let error = url.connect_stream(timeout).err().expect("not Redis");
                assert_eq!(error.to_string(), expected, "{auth}");
                assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            }
        }
    }

    #[test]
    fn answers_are_quoted_as_one_short_line() {
        assert_eq!(
            first_line(b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n"),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            first_line(b"SSH-2.0-OpenSSH_9.6\r\n"),
            "SSH-2.0-OpenSSH_9.6"
        );
        assert_eq!(first_line(b""), "");
        assert_eq!(first_line(&[b'x'; 200]).len(), QUOTED_ANSWER);
        // A TLS alert: Debug formatting keeps it on one line.
        let alert = format!("{:?}", first_line(b"\x15\x03\x03\x00\x02\x02\x32"));
        assert!(!alert.contains('\n') && alert.starts_with('"'), "{alert}");
    }

    #[test]
    fn addresses_show_as_people_write_them() {
        assert_eq!(
            Primary::Tcp("redis.internal".into(), 6379).to_string(),
            "redis.internal:6379"
        );
        assert_eq!(Primary::Tcp("::1".into(), 6379).to_string(), "[::1]:6379");
        assert_eq!(
            Primary::Unix("/run/redis.sock".into()).to_string(),
            "/run/redis.sock"
        );
    }
}
