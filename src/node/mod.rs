//! The node: thread-per-core `mio` event loops holding the client sockets,
//! fed by the Redis threads of [`crate::store`].
//!
//! Start-up order: the loops' polls and mailboxes, then the Redis worker
//! (which fails fast when Redis is unreachable and clears what a previous run
//! of this node left in the presence hashes), the subscriber, the listener, and
//! last the loop threads.

pub mod conn;
pub mod connections;
pub mod delivery;
pub mod event_loop;
pub mod lifecycle;
pub mod mailbox;
pub mod registry;
pub mod timer;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use mio::{Poll, Waker};

use crate::config::Settings;
use crate::protocol::Names;
use crate::store;
use event_loop::{EventLoop, Shared, WAKER};
use mailbox::{Mailbox, Router};

/// Starts the node and serves until an event loop fails; the error is one line.
pub fn run(settings: Settings) -> Result<(), String> {
    let names = Arc::new(Names::new(
        &settings.path,
        &settings.server,
        &settings.servers,
    ));
    let mut polls = Vec::new();
    let mut mailboxes = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..settings.threads {
        let poll = Poll::new().map_err(|e| format!("cannot create an epoll instance: {e}"))?;
        let waker = Waker::new(poll.registry(), WAKER)
            .map_err(|e| format!("cannot create a waker: {e}"))?;
        let (mailbox, inbox) = Mailbox::new(waker);
        polls.push(poll);
        mailboxes.push(mailbox);
        inboxes.push(inbox);
    }
    let router = Router::new(mailboxes.into());
    let redis =
        redis::Client::open(settings.redis.as_str()).map_err(|e| format!("--redis: {e}"))?;
    let worker = store::worker::start(redis.clone(), names.clone(), router.clone())?;
    store::subscriber::start(redis, names.clone(), router.clone(), worker.clone())?;
    let listener = bind(settings.listen)?;
    log::info!(
        "freeim-server {} listening on ws://{}{} as {} of [{}], {} loop(s), at most {} connections",
        env!("CARGO_PKG_VERSION"),
        settings.listen,
        settings.path,
        settings.server,
        settings.servers.join(";"),
        settings.threads,
        settings.max_connections,
    );
    let shared = Arc::new(Shared {
        names,
        settings: Arc::new(settings),
        router,
        worker,
        open_connections: Arc::new(AtomicUsize::new(0)),
    });
    let mut threads = Vec::new();
    for (index, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let listener = listener
            .try_clone()
            .map_err(|e| format!("cannot share the listener: {e}"))?;
        let event_loop = EventLoop::new(
            index,
            shared.clone(),
            poll,
            mio::net::TcpListener::from_std(listener),
            inbox,
        )
        .map_err(|e| format!("cannot register the listener: {e}"))?;
        let thread = std::thread::Builder::new()
            .name(format!("loop-{index}"))
            .spawn(move || event_loop.run())
            .map_err(|e| format!("cannot start an event loop: {e}"))?;
        threads.push(thread);
    }
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("an event loop failed: {e}")),
            Err(_) => return Err("an event loop panicked".into()),
        }
    }
    Ok(())
}

/// Binds the listening socket (non-blocking, SO_REUSEADDR, deep backlog).
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let fail = |e: std::io::Error| format!("cannot listen on {addr}: {e}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(4096).map_err(fail)?;
    Ok(socket.into())
}
