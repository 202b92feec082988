//! [`Demo`]: the running service. A tokio runtime whose workers accept
//! connections and serve HTTP/1.1 with hyper (keep-alive, the request-head
//! timeout) through the axum router of [`http`](crate::http), and whose
//! blocking pool ([`Settings::threads`] threads) runs the calls into
//! `imhelper`; plus the presence event bus and the `channels` push task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use imhelper::{EventBus, ImHelper, ImHelperOptions};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::channels::ChannelsPush;
use crate::config::Settings;
use crate::history::History;
use crate::presence::{self, Directory};

/// How long stopping waits for requests in progress to be answered.
const STOP_GRACE: Duration = Duration::from_secs(2);

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
    /// The async runtime could not be built (no threads to be had).
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// The demo service, serving until [`stop`](Demo::stop)ped or dropped
/// (outside of an async context: it owns its tokio runtime).
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
    runtime: Option<Runtime>,
    server: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
    addr: SocketAddr,
    bus: Option<EventBus>,
}

impl Demo {
    /// Connects to the cluster, subscribes to presence events, binds the
    /// HTTP address and starts serving; returns once requests are served.
    ///
    /// # Errors
    /// [`StartError`] when the settings are refused, Redis is unreachable,
    /// or the address cannot be bound.
    pub fn start(settings: Settings) -> Result<Demo, StartError> {
        let mut options = ImHelperOptions::new(settings.redis.clone(), settings.servers.clone());
        options.path = settings.path.clone();
        let io_timeout = options.io_timeout;
        let helper = Arc::new(ImHelper::new(options).map_err(StartError::Config)?);
        // Checked by `ImHelper::new` already.
        let redis_url = settings
            .redis
            .parse()
            .map_err(|e| StartError::Config(imhelper::Error::Config(format!("{e}"))))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("freeim-demo")
            .max_blocking_threads(settings.threads.max(1))
            .build()
            .map_err(StartError::Runtime)?;
        let channels_push = ChannelsPush::start(Arc::clone(&helper), runtime.handle());
        let directory = Arc::new(Directory::new());
        let bus = presence::start(
            Arc::clone(&helper),
            Arc::clone(&directory),
            channels_push.clone(),
        )
        .map_err(|source| StartError::Redis {
            url: settings.redis.clone(),
            source,
        })?;
        let bind_error = |e: std::io::Error| StartError::Bind {
            addr: settings.listen,
            message: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(settings.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener).map_err(bind_error)?
        };
        let history = History::new(redis_url, io_timeout, settings.threads.max(1));
        let api = Arc::new(Api::new(helper, directory, history, channels_push));
        let app = crate::http::router(api, settings.body_timeout);
        let (stop, stopped) = oneshot::channel();
        let server = runtime.spawn(serve(listener, app, settings.head_timeout, stopped));
        Ok(Demo {
            runtime: Some(runtime),
            server: Some(server),
            stop: Some(stop),
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
        if let (Some(runtime), Some(server)) = (&self.runtime, self.server.take()) {
            let _ = runtime.block_on(server);
        }
    }

    /// Stops serving: no new connections, requests in progress get up to
    /// 2 s to be answered, then the event bus and the runtime stop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(runtime), Some(server)) = (&self.runtime, self.server.take()) {
            let _ = runtime.block_on(server);
        }
        if let Some(bus) = self.bus.take() {
            bus.stop();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(STOP_GRACE);
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
            .finish_non_exhaustive()
    }
}

/// Accepts connections and serves each on a task of its own until `stop`
/// fires; then lets the open connections finish (at most [`STOP_GRACE`]).
async fn serve(
    listener: TcpListener,
    app: Router,
    head_timeout: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset in the
                    // backlog: wait a little rather than spin.
                    log::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        log::debug!("stopping with connections still open");
    }
}
