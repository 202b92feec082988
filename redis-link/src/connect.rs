//! Connections to the primary: the address resolved anew on every connect
//! (DNS, or Sentinel plus a `ROLE` check), TLS, AUTH, `SELECT`, timeouts and
//! TCP keepalive.
//!
//! `redis::sentinel` is not used: its blocking API connects without a
//! timeout, so one frozen sentinel or a half-dead old primary would hang the
//! caller for as long as the kernel keeps retrying (minutes), and a failover
//! is exactly when that happens.

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

impl RedisUrl {
    /// A connection to the primary, authenticated, on the URL's database,
    /// with `timeout` as its connect, read and write timeout.
    ///
    /// With a Sentinel URL, each sentinel in turn is asked for the primary
    /// until one names a server that answers `ROLE` as `master`.
    ///
    /// # Errors
    /// Whatever `redis` reports for the connect, TLS, AUTH or `SELECT`;
    /// with Sentinel, an error naming the last reason no primary was found.
    pub fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        match &self.place {
            Place::Tcp { host, port } => self.open(Primary::Tcp(host.clone(), *port), timeout),
            Place::Unix(path) => self.open(Primary::Unix(path.clone()), timeout),
            Place::Sentinel { .. } => self
                .ask_sentinels(timeout)
                .map(|(connection, _)| connection),
        }
    }

    /// Where the primary is now (for callers that open their own stream).
    pub(crate) fn primary(&self, timeout: Duration) -> RedisResult<Primary> {
        match &self.place {
            Place::Tcp { host, port } => Ok(Primary::Tcp(host.clone(), *port)),
            Place::Unix(path) => Ok(Primary::Unix(path.clone())),
            Place::Sentinel { .. } => self.ask_sentinels(timeout).map(|(_, primary)| primary),
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
        let first = self.first_sentinel.get() % sentinels.len().max(1);
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
                    self.first_sentinel.set(index);
                    return Ok((connection, primary));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no sentinels in the URL"))
        }))
    }

    fn open(&self, primary: Primary, timeout: Duration) -> RedisResult<Connection> {
        self.open_as(primary, &self.auth, self.db, timeout)
    }

    fn open_as(
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
        let connection = client.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        connection.set_write_timeout(Some(timeout))?;
        Ok(connection)
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
