//! The admin listener (off unless `--admin` is given): `GET /metrics` and
//! `GET /healthz` (200 while both Redis connections are up, 503 otherwise).
//! It runs on its own thread, one request at a time, and never touches the
//! event loops.
//!
//! `/metrics` is `prometheus-client`'s encoding of a registry holding the
//! node's [`Metrics`] as a collector (read when scraped), in the Prometheus
//! text format 0.0.4: the classic format every Prometheus version scrapes
//! (the fallback of its default `scrape_protocols`), with no negotiation.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

use crate::metrics::Metrics;

/// Why the admin listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `--admin`'s address could not be bound.
    #[error("cannot listen on --admin {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Its thread could not be started.
    #[error("cannot start the admin thread: {0}")]
    Thread(std::io::Error),
}

/// Binds `addr` and serves the admin endpoints on a thread of their own.
///
/// # Errors
/// [`AdminError`] when the address cannot be bound or the thread started.
pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), AdminError> {
    let listener = TcpListener::bind(addr).map_err(|source| AdminError::Listen { addr, source })?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Arc::clone(&metrics)));
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &metrics, &registry) {
                    log::debug!("admin request failed: {e}");
                }
            }
        })
        .map_err(AdminError::Thread)?;
    log::info!("admin endpoints on http://{addr}/metrics and /healthz");
    Ok(())
}

fn answer(mut stream: TcpStream, metrics: &Metrics, registry: &Registry) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = [0u8; 4096];
    let mut len = 0;
    while len < head.len() && !head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut head[len..])? {
            0 => break,
            n => len += n,
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let (status, content_type, body) = match request.parse(&head[..len]) {
        Ok(httparse::Status::Complete(_)) => match (request.method, request.path) {
            (Some("GET"), Some("/metrics")) => {
                let mut body = String::with_capacity(8192);
                match prometheus_text::encode(&mut body, registry) {
                    Ok(()) => (200, prometheus_text::CONTENT_TYPE, body),
                    Err(_) => (500, "text/plain", "cannot encode the metrics\n".into()),
                }
            }
            (Some("GET"), Some("/healthz")) if metrics.redis_up() => {
                (200, "text/plain", "ok\n".into())
            }
            (Some("GET"), Some("/healthz")) => (503, "text/plain", "redis unavailable\n".into()),
            (Some("GET"), _) => (404, "text/plain", "not found\n".into()),
            _ => (405, "text/plain", "only GET\n".into()),
        },
        _ => (400, "text/plain", "bad request\n".into()),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
