//! [`Demo`]: the running service. A `tiny_http` listener shared by a few
//! worker threads, each reading one request at a time, bounding its body,
//! and answering through [`Api::handle`]; plus the presence event bus.

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use imhelper::{EventBus, ImHelper, ImHelperOptions};
use tiny_http::{Header, Request, Response, Server};

use crate::api::{Api, Reply, MAX_BODY_BYTES};
use crate::config::Settings;
use crate::presence::{self, Directory};

/// Why the service could not start. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cluster settings were refused by `imhelper`.
    #[error("{0}")]
    Config(imhelper::Error),
    /// Redis could not be reached to subscribe to the presence events.
    #[error("cannot reach Redis at {url}: {source}")]
    Redis {
        /// The Redis URL tried.
        url: String,
        /// What `imhelper` reported.
        source: imhelper::Error,
    },
    /// The HTTP address could not be bound (in use, not local, no rights).
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address tried.
        addr: SocketAddr,
        /// What the OS reported.
        message: String,
    },
}

/// The demo service, serving until [`stop`](Demo::stop)ped or dropped.
///
/// # Example
///
/// ```no_run
/// use freeim_demo::{Demo, Settings};
///
/// let settings = Settings::new("127.0.0.1:0".parse().unwrap(), "redis://127.0.0.1/", "127.0.0.1:6001");
/// let demo = Demo::start(settings)?;
/// println!("open {}", demo.url());
/// demo.wait();
/// # Ok::<(), freeim_demo::StartError>(())
/// ```
pub struct Demo {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    addr: SocketAddr,
    bus: Option<EventBus>,
}

impl Demo {
    /// Connects to the cluster, subscribes to presence events, binds the
    /// HTTP address and starts the workers; returns once requests are served.
    ///
    /// # Errors
    /// [`StartError`] when the settings are refused, Redis is unreachable,
    /// or the address cannot be bound.
    pub fn start(settings: Settings) -> Result<Demo, StartError> {
        let mut options = ImHelperOptions::new(settings.redis.clone(), settings.servers.clone());
        options.path = settings.path.clone();
        let helper = Arc::new(ImHelper::new(options).map_err(StartError::Config)?);
        let directory = Arc::new(Directory::new());
        let bus =
            presence::start(Arc::clone(&helper), Arc::clone(&directory)).map_err(|source| {
                StartError::Redis {
                    url: settings.redis.clone(),
                    source,
                }
            })?;
        let server = Server::http(settings.listen).map_err(|e| StartError::Bind {
            addr: settings.listen,
            message: e.to_string(),
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(settings.listen);
        let server = Arc::new(server);
        let api = Arc::new(Api::new(helper, directory));
        let workers = (0..settings.threads.max(1))
            .map(|i| {
                let (server, api) = (Arc::clone(&server), Arc::clone(&api));
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || serve(&server, &api))
                    .expect("spawn an HTTP worker thread")
            })
            .collect();
        Ok(Demo {
            server,
            workers,
            addr,
            bus: Some(bus),
        })
    }

    /// The address requests are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The chat page's URL, `http://<addr>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.join();
        }
    }

    /// Stops serving: the workers finish their current request and exit,
    /// and the event bus stops.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in std::mem::take(&mut self.workers) {
            let _ = worker.join();
        }
        if let Some(bus) = self.bus.take() {
            bus.stop();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("addr", &self.addr)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

/// One worker: answers requests until the server is unblocked.
fn serve(server: &Server, api: &Api) {
    while let Ok(mut request) = server.recv() {
        let reply = match read_body(&mut request) {
            Ok(body) => {
                let method = request.method().as_str().to_ascii_uppercase();
                let path = request.url().split('?').next().unwrap_or("/").to_string();
                catch_unwind(AssertUnwindSafe(|| api.handle(&method, &path, &body)))
                    .unwrap_or_else(|_| Reply::error(500, "internal error"))
            }
            Err(reply) => reply,
        };
        log::debug!("{} {} -> {}", request.method(), request.url(), reply.status);
        if let Err(e) = request.respond(response(reply)) {
            log::debug!("cannot answer a request: {e}");
        }
    }
}

/// Reads the body, at most [`MAX_BODY_BYTES`]; a larger one is a `413`.
fn read_body(request: &mut Request) -> Result<Vec<u8>, Reply> {
    let too_large = || Reply::error(413, format!("body larger than {MAX_BODY_BYTES} bytes"));
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("cannot read the body: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(body)
}

fn response(reply: Reply) -> Response<std::io::Cursor<Vec<u8>>> {
    let cache = if reply.cacheable {
        "no-cache"
    } else {
        "no-store"
    };
    let mut response = Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type))
        .with_header(header("Cache-Control", cache))
        .with_header(header("X-Content-Type-Options", "nosniff"));
    if reply.content_type.starts_with("text/html") {
        response = response.with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
        ));
    }
    response
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}
