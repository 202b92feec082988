//! The process: wires the event loops ([`crate::node`]) to the Redis
//! threads ([`crate::store`]) through [`crate::bus`], binds the listeners,
//! serves until SIGTERM/SIGINT and drains.
//!
//! Start-up order: the loops' polls and mailboxes, then the Redis worker
//! (which fails fast when Redis is unreachable and clears what a previous run
//! of this node left in the presence hashes), the subscriber, the listener, and
//! last the loop threads.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Poll, Waker};

use crate::admin::AdminError;
use crate::bus::{Imports, Job, LoopMsg, Mailbox, Router, WorkerHandle};
use crate::config::Settings;
use crate::metrics::{Handover, Metrics};
use crate::names::Names;
use crate::node::{EventLoop, Shared, WAKER};
use crate::store::cutover::CutOver;
use crate::store::{self, StoreError};
use crate::upgrade::{self, OldNode, TakenOver, UpgradeError};

/// Why the node stopped with an error (one line each, printed by `main`).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An epoll instance or a loop's waker could not be made.
    #[error("cannot create {what}: {source}")]
    Poll {
        /// `an epoll instance` or `a waker`.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The Redis side did not start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The admin listener did not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The listening sockets could not be made.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// `--listen`.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// A listener could not be registered with its loop's poll.
    #[error("cannot register the listener: {0}")]
    Register(io::Error),
    /// Signals could not be handled.
    #[error("cannot handle signals: {0}")]
    Signals(io::Error),
    /// A thread (`an event loop`, `the signal thread`, `the Sentinel watch
    /// thread`) could not be started.
    #[error("cannot start {thread}: {source}")]
    Thread {
        /// Which.
        thread: &'static str,
        /// Why.
        source: io::Error,
    },
    /// An event loop failed.
    #[error("an event loop failed: {0}")]
    LoopFailed(io::Error),
    /// An event loop ended without an error or a drain.
    #[error("an event loop stopped unexpectedly")]
    LoopStopped,
    /// `--upgrade`: the connections could not be taken over.
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
    /// `--upgrade-socket` could not be served.
    #[error("cannot serve hand-overs on --upgrade-socket {path}: {source}")]
    UpgradeSocket {
        /// `--upgrade-socket`.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// Starts the node and serves until SIGTERM/SIGINT (then drains and returns
/// `Ok`) or until an event loop fails; the error is one line.
pub fn run(settings: Settings) -> Result<(), ServerError> {
    let names = Arc::new(Names::new(
        &settings.path,
        &settings.server,
        &settings.servers,
        settings.layout(),
    ));
    report_layout(&names, &settings);
    let mut polls = Vec::new();
    let mut mailboxes = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..settings.threads {
        let poll = Poll::new().map_err(|source| ServerError::Poll {
            what: "an epoll instance",
            source,
        })?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(|source| ServerError::Poll {
            what: "a waker",
            source,
        })?;
        let (mailbox, inbox) = Mailbox::new(waker);
        polls.push(poll);
        mailboxes.push(mailbox);
        inboxes.push(inbox);
    }
    let router = Router::new(mailboxes.into());
    let open_connections = Arc::new(AtomicUsize::new(0));
    let metrics = Arc::new(Metrics::new(settings.threads, open_connections.clone()));
    let cutover = Arc::new(match settings.upgrade {
        true => CutOver::taking_over(),
        false => CutOver::default(),
    });
    // The Sentinel watch (if any) lives until the node has drained.
    let (worker, _failover_watch) = if settings.echo {
        (WorkerHandle::detached(), None)
    } else {
        let context = store::Context {
            redis: settings.redis.clone(),
            liveness: settings.redis_liveness,
            max_receipt_bytes: settings.max_receipt_bytes,
            max_push_bytes: settings.max_push_bytes,
            take_over: settings.take_over,
            upgrade: settings.upgrade,
            upgrade_timeout: settings.upgrade_timeout,
            cutover: cutover.clone(),
            names: names.clone(),
            router: router.clone(),
            metrics: metrics.clone(),
        };
        let worker = store::worker::start(context.clone())?;
        let subscriber = store::subscriber::start(context)?;
        let on_switch = worker.clone();
        let failover_watch = settings
            .redis
            .watch_failovers(move || {
                log::warn!("Sentinel announced a new primary: reconnecting to it");
                on_switch.submit(Job::PrimaryChanged);
                subscriber.resubscribe();
            })
            .map_err(|source| ServerError::Thread {
                thread: "the Sentinel watch thread",
                source,
            })?;
        (worker, failover_watch)
    };
    if let Some(admin) = settings.admin {
        crate::admin::start(admin, metrics.clone())?;
    }
    let stop = stop_signals()?;
    let taken = match &settings.upgrade_socket {
        Some(path) if settings.upgrade => Some(upgrade::take_over(path, &settings, &cutover)?),
        _ => None,
    };
    let (listeners, go) = match taken {
        Some(mut taken) => {
            let listeners = std::mem::take(&mut taken.listeners);
            let spread = spread_listeners(listeners, settings.threads)?;
            (spread, Some(import(taken, &router)))
        }
        None => {
            let listeners = bind_listeners(settings.listen, settings.threads)?;
            (listeners.into_iter().map(|l| vec![l]).collect(), None)
        }
    };
    let listener_copies = listeners
        .iter()
        .flatten()
        .map(std::net::TcpListener::try_clone)
        .collect::<io::Result<Vec<_>>>()
        .map_err(|source| ServerError::Listen {
            addr: settings.listen,
            source,
        })?;
    log::info!(
        "freeim-server {} listening on ws://{}{} as {} of [{}], {} loop(s), at most {} connections, {}{}",
        env!("CARGO_PKG_VERSION"),
        settings.listen,
        settings.path,
        settings.server,
        settings.servers.join(";"),
        settings.threads,
        settings.max_connections,
        match settings.compression {
            true => format!(
                "permessage-deflate for messages of {}+ bytes",
                settings.compression_min_bytes
            ),
            false => "no compression".to_string(),
        },
        if settings.echo { ", echo mode" } else { "" },
    );
    let drain_timeout = settings.drain_timeout;
    let has_redis = !settings.echo;
    let shared = Arc::new(Shared {
        names,
        settings: Arc::new(settings),
        router: router.clone(),
        worker: worker.clone(),
        open_connections,
        metrics,
    });
    let (exited, loop_exits) = crossbeam_channel::unbounded();
    let loops = polls.into_iter().zip(inboxes).zip(listeners);
    for (index, ((poll, inbox), listeners)) in loops.enumerate() {
        let listeners = listeners
            .into_iter()
            .map(mio::net::TcpListener::from_std)
            .collect();
        let event_loop = EventLoop::new(index, shared.clone(), poll, listeners, inbox)
            .map_err(ServerError::Register)?;
        let exited = exited.clone();
        std::thread::Builder::new()
            .name(format!("loop-{index}"))
            .spawn(move || {
                let _ = exited.send(event_loop.run());
            })
            .map_err(|source| ServerError::Thread {
                thread: "an event loop",
                source,
            })?;
    }
    if let Some(go) = go {
        go(&shared);
    }
    let (retired, handed_over) = crossbeam_channel::bounded(1);
    let handing_over = Arc::new(parking_lot::Mutex::new(()));
    if let Some(path) = &shared.settings.upgrade_socket {
        let socket_error = |source| ServerError::UpgradeSocket {
            path: path.display().to_string(),
            source,
        };
        let listener = match shared.settings.upgrade {
            true => upgrade::transport::Listener::replace(path),
            false => upgrade::transport::Listener::bind(path),
        }
        .map_err(socket_error)?;
        let old = OldNode {
            settings: shared.settings.clone(),
            names: shared.names.clone(),
            router: router.clone(),
            worker: worker.clone(),
            cutover,
            metrics: shared.metrics.clone(),
            listeners: listener_copies,
            busy: handing_over.clone(),
        };
        upgrade::serve(listener, old, retired).map_err(socket_error)?;
    }
    crossbeam_channel::select! {
        recv(loop_exits) -> result => {
            return Err(match result {
                Ok(Err(e)) => ServerError::LoopFailed(e),
                _ => ServerError::LoopStopped,
            });
        }
        recv(handed_over) -> _ => {
            retire(&router, &loop_exits);
            return Ok(());
        }
        recv(stop) -> _ => {}
    }
    // A hand-over under way ends first (the connections are in flight):
    // handed over, there is nothing to drain; abandoned, they are back.
    drop(handing_over.lock());
    if handed_over.try_recv().is_ok() {
        retire(&router, &loop_exits);
        return Ok(());
    }
    drain(
        &router,
        has_redis.then_some(&worker),
        &loop_exits,
        drain_timeout,
    );
    Ok(())
}

/// Ends the loops of a process whose connections are the new process's
/// now (the loops are empty): no drain, presence is the new process's.
fn retire(router: &Router, loop_exits: &Receiver<io::Result<()>>) {
    router.post_all(|| LoopMsg::Shutdown);
    let deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..router.loops() {
        let _ = loop_exits.recv_deadline(deadline);
    }
}

/// In a Redis Cluster, says where this node's names live and how the nodes
/// spread over the slot space (each node's names share one hash slot).
fn report_layout(names: &Names, settings: &Settings) {
    if names.layout() != freeim_protocol::Layout::Sharded {
        return;
    }
    let master = settings
        .redis
        .slot_master(names.slot(), Duration::from_secs(3))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let spread: Vec<String> = names
        .servers()
        .iter()
        .map(|server| {
            let slot = freeim_protocol::key_slot(&names.keys_of(server).online());
            format!("{server} → slot {slot}")
        })
        .collect();
    log::info!(
        "Redis Cluster: this node's names start with {} (hash slot {}, served by {master}); \
         nodes: {}",
        names.keys().prefix(),
        names.slot(),
        spread.join(", ")
    );
}

/// Gives the loops (not started yet) the connections taken over, and returns
/// what to do once they run: take the lease, publish the `go` marker (the
/// subscriber then delivers what it held since the cut), count and log.
fn import(taken: TakenOver, router: &Router) -> impl FnOnce(&Shared) {
    let TakenOver {
        conns, id, started, ..
    } = taken;
    let count = conns.len();
    let generations_above = upgrade::highest_generation(&conns);
    let shares = upgrade::distribute(conns, router.loops());
    for (index, share) in shares.into_iter().enumerate() {
        if !share.is_empty() {
            let imports = Imports {
                conns: share,
                generations_above,
            };
            // Posted, so that the loop wakes for it when it starts.
            router.mailbox(index).post(LoopMsg::Import(imports));
        }
    }
    move |shared: &Shared| {
        let (done, assumed) = crossbeam_channel::bounded(1);
        shared.worker.submit(Job::AssumeLease { done });
        let names = &shared.names;
        shared.worker.submit(Job::Publish {
            channel: names.keys().server(names.server()),
            payload: freeim_protocol::handover::marker(freeim_protocol::handover::Step::Go, id),
        });
        let took = started.elapsed();
        shared
            .metrics
            .count_handover(Handover::TakenOver, count, took);
        if assumed.recv_timeout(Duration::from_secs(5)).is_err() {
            log::warn!("hand-over {id:x}: the lease is not taken yet (Redis slow or away)");
        }
        log::info!("hand-over {id:x}: took over {count} connections in {took:?}; serving");
    }
}

/// The listening sockets taken over, spread over `threads` loops: loop `i`
/// gets those at `i`, `i + threads`, ...; a loop left without one gets a new
/// one on the same address (`SO_REUSEPORT`).
fn spread_listeners(
    listeners: Vec<std::net::TcpListener>,
    threads: usize,
) -> Result<Vec<Vec<std::net::TcpListener>>, ServerError> {
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let addr = listeners[0]
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: unknown,
            source,
        })?;
    let mut spread: Vec<Vec<std::net::TcpListener>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, listener) in listeners.into_iter().enumerate() {
        spread[n % threads].push(listener);
    }
    for share in spread.iter_mut().filter(|share| share.is_empty()) {
        let fail = |source| ServerError::Listen { addr, source };
        let socket = socket(addr, true).map_err(fail)?;
        socket.listen(4096).map_err(fail)?;
        share.push(socket.into());
    }
    Ok(spread)
}

/// Graceful drain: every loop closes its sockets with 1001 and exits, then
/// the Redis worker (none in echo mode) publishes the last offline events and
/// clears this node's presence; whatever is left at the deadline is abandoned.
fn drain(
    router: &Router,
    worker: Option<&WorkerHandle>,
    loop_exits: &Receiver<io::Result<()>>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    log::info!("draining: closing every connection (deadline {timeout:?})");
    router.post_all(|| LoopMsg::Shutdown);
    for _ in 0..router.loops() {
        if loop_exits.recv_deadline(deadline).is_err() {
            log::warn!("drain deadline reached with connections still closing");
            break;
        }
    }
    let Some(worker) = worker else {
        return;
    };
    let (done, drained) = crossbeam_channel::bounded(1);
    worker.submit(Job::Drain { done });
    let grace = deadline.max(Instant::now() + Duration::from_secs(1));
    match drained.recv_deadline(grace) {
        Ok(()) => log::info!("drained: presence cleared, exiting"),
        Err(_) => log::warn!("drain: Redis did not answer in time; exiting anyway"),
    }
}

/// A channel that yields once SIGTERM or SIGINT arrives.
fn stop_signals() -> Result<Receiver<()>, ServerError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).map_err(ServerError::Signals)?;
    let (stop, stopped) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                log::info!("received signal {signal}");
                let _ = stop.send(());
            }
        })
        .map_err(|source| ServerError::Thread {
            thread: "the signal thread",
            source,
        })?;
    Ok(stopped)
}

/// Binds one listening socket per event loop on `addr`, sharing the port
/// with `SO_REUSEPORT` so the kernel hands each new connection to one loop
/// (a single shared socket would wake every loop for every connection).
///
/// A probe bind without `SO_REUSEPORT` first makes sure nothing listens on
/// the port already: otherwise a second node started on the same port (same
/// user) would silently join the group and take half the connections.
fn bind_listeners(
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, ServerError> {
    let fail = |source| ServerError::Listen { addr, source };
    let mut addr = addr;
    if addr.port() != 0 {
        drop(socket(addr, false).map_err(fail)?);
    }
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket(addr, true).map_err(fail)?;
        socket.listen(4096).map_err(fail)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr().map_err(fail)?; // port 0: the others follow the first
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A non-blocking TCP socket bound to `addr` with SO_REUSEADDR, TCP_NODELAY
/// (and SO_REUSEPORT when asked).
fn socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    // Accepted sockets inherit it on Linux: no setsockopt per connection.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let listeners = bind_listeners("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = listeners[0].local_addr().unwrap();
        assert_eq!(
            listeners[1].local_addr().unwrap(),
            addr,
            "one port for every loop"
        );
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let accepted = loop {
            if let Some(Ok((stream, _))) = listeners.iter().map(|l| l.accept()).find(Result::is_ok)
            {
                break stream;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(accepted.nodelay().unwrap());
    }
}
