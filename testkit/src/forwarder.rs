//! [`Forwarder`]: a TCP forwarder in front of a real server, for "silent
//! partition" tests.
//!
//! Every connection accepted on the forwarder's loopback port is forwarded,
//! byte for byte and both ways, to `127.0.0.1:target_port`.
//! [`Forwarder::freeze`] then stops forwarding on the connections open at that
//! moment *without closing anything*: no FIN, no RST, the sockets stay open
//! and the kernel still acknowledges (and answers keepalive probes for) what
//! arrives, but nothing is read or passed on any more. That is what a NAT
//! that forgot the flow or a hung proxy looks like to a client: only a
//! request/answer deadline notices it.
//!
//! Each connection has two pump threads (one per direction) that read with a
//! short timeout, so they notice a freeze or the forwarder's drop within
//! about [`POLL`]. A frozen connection's threads exit; its sockets are held
//! until the forwarder is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Read/write timeout of the forwarder's sockets: how soon a pump notices a
/// freeze or a drop.
const POLL: Duration = Duration::from_millis(50);
/// Connect timeout to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP forwarder from `127.0.0.1:<free port>` to `127.0.0.1:target_port`
/// that can silently stop forwarding ([`freeze`](Forwarder::freeze)). Stops
/// its threads and closes every socket on drop.
pub struct Forwarder {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    target: SocketAddr,
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// Connections that are open (pumps running) or frozen.
    connections: Mutex<Vec<Arc<Connection>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// One forwarded connection: the accepted socket and the one to the target.
struct Connection {
    client: TcpStream,
    server: TcpStream,
    /// Held by a pump while it writes, so that once
    /// [`Forwarder::freeze`] returns no byte is passed on any more.
    frozen: Mutex<bool>,
}

impl Connection {
    fn frozen(&self) -> MutexGuard<'_, bool> {
        self.frozen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

impl Forwarder {
    /// Listens on `127.0.0.1:<free port>` and forwards every accepted
    /// connection to `127.0.0.1:target_port`, both ways, on background
    /// threads. A connection the target refuses is closed.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start(target_port: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a forwarder port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking forwarder listener");
        let port = listener.local_addr().expect("forwarder address").port();
        let shared = Arc::new(Shared {
            target: SocketAddr::from(([127, 0, 0, 1], target_port)),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            connections: Mutex::new(Vec::new()),
            pumps: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("forwarder-{port}"))
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn the forwarder's accept thread")
        };
        Forwarder {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port the forwarder listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`: the forwarder as a Redis URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops forwarding, both ways, on every connection open now, but keeps
    /// all their sockets open (no FIN, no RST): a NAT that forgot the flow, a
    /// hung proxy. Bytes arriving afterwards on either side stay unread in
    /// the kernel's buffers (bytes a pump had already read are dropped).
    /// Connections accepted afterwards are forwarded normally.
    ///
    /// When this returns, no byte is passed on by a frozen connection any
    /// more. A connection whose `connect` the kernel completed but that the
    /// forwarder had not yet accepted counts as accepted afterwards.
    pub fn freeze(&self) {
        for connection in lock(&self.shared.connections).iter() {
            *connection.frozen() = true;
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor is gone: no new connections or pumps from here on.
        for connection in lock(&self.shared.connections).iter() {
            connection.close();
        }
        let pumps = std::mem::take(&mut *lock(&self.shared.pumps));
        for pump in pumps {
            let _ = pump.join();
        }
        lock(&self.shared.connections).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                forward(client, shared);
                shared.accepted.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Connects `client` to the target and starts its two pumps; closes it when
/// the target cannot be reached.
fn forward(client: TcpStream, shared: &Arc<Shared>) {
    let Ok(server) = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT) else {
        return;
    };
    let setup = |socket: &TcpStream| {
        socket.set_nonblocking(false)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(POLL))?;
        socket.set_write_timeout(Some(POLL))
    };
    if setup(&client).and_then(|()| setup(&server)).is_err() {
        return;
    }
    let connection = Arc::new(Connection {
        client,
        server,
        frozen: Mutex::new(false),
    });
    {
        // Forget connections that ended normally (their pumps are gone).
        let mut connections = lock(&shared.connections);
        connections.retain(|c| Arc::strong_count(c) > 1 || *c.frozen());
        connections.push(Arc::clone(&connection));
    }
    let mut pumps = lock(&shared.pumps);
    pumps.retain(|pump| !pump.is_finished());
    for upstream in [true, false] {
        let (pumped, shared) = (Arc::clone(&connection), Arc::clone(shared));
        let spawned = std::thread::Builder::new()
            .name("forwarder-pump".into())
            .spawn(move || pump(&pumped, upstream, &shared.stop));
        match spawned {
            Ok(handle) => pumps.push(handle),
            Err(_) => connection.close(),
        }
    }
}

/// Copies one direction (client → server when `upstream`) until end of
/// stream, an error, a freeze or the forwarder's drop.
fn pump(connection: &Connection, upstream: bool, stop: &AtomicBool) {
    let (from, to) = if upstream {
        (&connection.client, &connection.server)
    } else {
        (&connection.server, &connection.client)
    };
    let mut buf = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) || *connection.frozen() {
            return;
        }
        let n = match (&*from).read(&mut buf) {
            Ok(0) => {
                // Half-close: pass the FIN on, keep the other direction.
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if is_timeout(e.kind()) || e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                if !*connection.frozen() {
                    connection.close();
                }
                return;
            }
        };
        let mut sent = 0;
        while sent < n {
            let frozen = connection.frozen();
            if *frozen || stop.load(Ordering::SeqCst) {
                return;
            }
            match (&*to).write(&buf[sent..n]) {
                Ok(0) => return connection.close(),
                Ok(k) => sent += k,
                Err(e) if is_timeout(e.kind()) || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return connection.close(),
            }
            drop(frozen);
        }
    }
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}
