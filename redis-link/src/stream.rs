//! [`Stream`]: a raw byte stream to the primary (TCP, TLS over TCP, or a
//! Unix socket), for callers that speak RESP themselves, such as the node's
//! pub/sub reader, which reads many messages per `read`.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use redis::io::tcp::socket2::SockRef;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use redis::{Parser, Value};

use crate::address::{Credentials, RedisUrl};
use crate::connect::{keepalive, user_timeout, Primary};

/// A connected, authenticated byte stream to a Redis server.
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// A Unix socket.
    Unix(UnixStream),
}

impl RedisUrl {
    /// Opens a raw stream to the primary (resolved as in
    /// [`connect`](RedisUrl::connect)), with keepalive, `TCP_NODELAY`, and
    /// `timeout` as its read and write timeout; for TLS the handshake is
    /// done, and with a password in the URL `AUTH` has succeeded, before
    /// this returns. (Pub/sub is not per database: no `SELECT`.)
    ///
    /// # Errors
    /// Resolution, connect, certificate or handshake failures; a refused
    /// `AUTH` (`PermissionDenied`, in a sentence with the server's own
    /// words); a server whose answer to `AUTH` is not RESP (`InvalidData`,
    /// "`host:port` is not a Redis server: it answered …").
    pub fn connect_stream(&self, timeout: Duration) -> io::Result<Stream> {
        let primary = self.primary(timeout).map_err(io::Error::other)?;
        self.stream_to(primary, &self.auth, timeout)
    }

    /// A raw stream to `server` (a primary or a sentinel), TLS when the URL
    /// says so, authenticated with `auth`.
    pub(crate) fn stream_to(
        &self,
        server: Primary,
        auth: &Credentials,
        timeout: Duration,
    ) -> io::Result<Stream> {
        let mut stream = match server.clone() {
            Primary::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            Primary::Tcp(host, port) => {
                let tcp = connect_tcp(&host, port, timeout)?;
                match &self.tls {
                    None => Stream::Tcp(tcp),
                    Some(tls) => {
                        let config = client_config(tls.ca_pem.as_deref().map(Vec::as_slice))?;
                        let name = ServerName::try_from(host.clone()).map_err(io::Error::other)?;
                        let session =
                            ClientConnection::new(config, name).map_err(io::Error::other)?;
                        Stream::Tls(Box::new(StreamOwned::new(session, tcp)))
                    }
                }
            }
        };
        stream.set_timeout(Some(timeout))?;
        if let Stream::Tls(tls) = &mut stream {
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock)?;
            }
        }
        if let Some(password) = &auth.password {
            let mut command = redis::cmd("AUTH");
            if let Some(username) = &auth.username {
                command.arg(username);
            }
            command.arg(password);
            stream.write_all(&command.get_packed_command())?;
            stream.flush()?;
            // Nothing else is in flight, so the parser reads this reply only.
            let reply = match Parser::new().parse_value(&mut stream) {
                Ok(reply) => reply,
                Err(e) if e.kind() == redis::ErrorKind::Parse => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        self.not_redis(&server, timeout),
                    ))
                }
                Err(e) => return Err(io::Error::other(e)),
            };
            if let Value::ServerError(refused) = reply {
                // The server's words (`WRONGPASS invalid username-password
                // pair …`) never hold the password.
                let said = match refused.details() {
                    Some(details) => format!("{} {details}", refused.code()),
                    None => refused.code().to_string(),
                };
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "Redis at {server} refused the user name or password in the URL: {said}"
                    ),
                ));
            }
        }
        Ok(stream)
    }
}

/// Shuts a [`Stream`]'s socket down from another thread: its blocked
/// reads return at once (EOF), so its owner notices and reconnects.
#[derive(Debug)]
pub struct Shutdown(ShutdownSocket);

#[derive(Debug)]
enum ShutdownSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Shutdown {
    /// Shuts both directions down; errors (already closed) are ignored.
    pub fn shutdown(&self) {
        let _ = match &self.0 {
            ShutdownSocket::Tcp(tcp) => tcp.shutdown(std::net::Shutdown::Both),
            ShutdownSocket::Unix(unix) => unix.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Stream {
    /// A handle that shuts this stream's socket down from another thread.
    ///
    /// # Errors
    /// The socket could not be duplicated (out of file descriptors).
    pub fn shutdown_handle(&self) -> io::Result<Shutdown> {
        Ok(Shutdown(match self {
            Stream::Tcp(tcp) => ShutdownSocket::Tcp(tcp.try_clone()?),
            Stream::Tls(tls) => ShutdownSocket::Tcp(tls.sock.try_clone()?),
            Stream::Unix(unix) => ShutdownSocket::Unix(unix.try_clone()?),
        }))
    }

    /// Sets the read and write timeout (`None` blocks forever).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(tcp) => set_tcp_timeout(tcp, timeout),
            Stream::Tls(tls) => set_tcp_timeout(&tls.sock, timeout),
            Stream::Unix(unix) => {
                unix.set_read_timeout(timeout)?;
                unix.set_write_timeout(timeout)
            }
        }
    }
}

fn set_tcp_timeout(tcp: &TcpStream, timeout: Option<Duration>) -> io::Result<()> {
    tcp.set_read_timeout(timeout)?;
    tcp.set_write_timeout(timeout)
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// Connects to the first address of `host` that answers, re-resolving the
/// name now; sets keepalive, `TCP_USER_TIMEOUT` and `TCP_NODELAY`.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                let socket = SockRef::from(&tcp);
                socket.set_tcp_keepalive(&keepalive())?;
                socket.set_tcp_user_timeout(Some(user_timeout()))?;
                return Ok(tcp);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"))
    }))
}

/// A rustls configuration trusting `ca_pem`, or the system's roots.
fn client_config(ca_pem: Option<&[u8]>) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(io::Error::other)?)
                    .map_err(io::Error::other)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
