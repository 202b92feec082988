//! The new process's side of a hand-over: asks the node serving on
//! `--upgrade-socket` for everything, checks it can take it, and receives the
//! listening sockets, the connections' states and their sockets.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::transport::{Channel, Control, Received};
use crate::bus::{decode_states, ConnState, FORMAT};
use crate::config::Settings;
use crate::store::cutover::CutOver;

/// Why this process did not take over (the old one keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The running node could not be reached or the channel failed.
    #[error("hand-over from the node on {path}: {source}")]
    Channel {
        /// `--upgrade-socket`.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// This process refused what it was offered (and told the old one).
    #[error("refused the hand-over: {0}")]
    Refused(String),
    /// The old process abandoned the hand-over.
    #[error("the running node abandoned the hand-over: {0}")]
    Aborted(String),
}

/// What a completed hand-over gives the new process.
pub struct TakenOver {
    /// The listening sockets, as the old process's loops had them.
    pub listeners: Vec<std::net::TcpListener>,
    /// Every connection, with its socket.
    pub conns: Vec<(ConnState, TcpStream)>,
    /// The hand-over's id (for its `go` marker).
    pub id: u64,
    /// When it started.
    pub started: Instant,
}

/// Takes every connection over from the node serving on `path`. On success
/// the old process has let go: the caller owns the sockets and must publish
/// the `go` marker once its loops hold them.
///
/// # Errors
/// [`UpgradeError`]; the old process keeps serving.
pub fn take_over(
    path: &Path,
    settings: &Settings,
    cutover: &CutOver,
) -> Result<TakenOver, UpgradeError> {
    let started = Instant::now();
    let channel_error = |source| UpgradeError::Channel {
        path: path.display().to_string(),
        source,
    };
    let channel = Channel::connect(path).map_err(channel_error)?;
    channel
        .set_timeout(settings.upgrade_timeout)
        .map_err(channel_error)?;
    let refuse = |reason: String| {
        let _ = channel.send_control(
            &Control::Refuse {
                reason: reason.clone(),
            },
            &[],
        );
        UpgradeError::Refused(reason)
    };
    let (hello, _) = channel.recv_control().map_err(channel_error)?;
    let Control::Hello {
        format,
        version,
        pid,
        server,
        servers,
        path: ws_path,
        listen,
        db,
        id,
    } = hello
    else {
        return Err(refuse(format!("expected a Hello, got {hello:?}")));
    };
    log::info!("hand-over {id:x}: process {pid} (freeim-server {version}) offers its connections");
    if format != FORMAT {
        return Err(refuse(format!(
            "state format {format} of freeim-server {version} cannot be read here (this \
             binary reads format {FORMAT})"
        )));
    }
    if (&server, &servers, &ws_path) != (&settings.server, &settings.servers, &settings.path) {
        return Err(refuse(format!(
            "the running node is --server {server} --servers {} --path {ws_path}, this one \
             --server {} --servers {} --path {}",
            servers.join(";"),
            settings.server,
            settings.servers.join(";"),
            settings.path
        )));
    }
    if db != settings.redis.db() {
        return Err(refuse(format!(
            "the running node keeps presence in Redis database {db}, this one in {}",
            settings.redis.db()
        )));
    }
    if listen != settings.listen.to_string() {
        log::warn!(
            "hand-over {id:x}: serving on the running node's listening sockets ({listen}), not on \
             --listen {}",
            settings.listen
        );
    }
    let at_cut = cutover.await_cut(id);
    channel
        .send_control(&Control::Ready, &[])
        .map_err(channel_error)?;
    let (listeners, conns) = receive(&channel).map_err(|e| match e {
        Receive::Channel(e) => channel_error(e),
        Receive::Aborted(why) => UpgradeError::Aborted(why),
        Receive::Invalid(why) => refuse(why),
    })?;
    let deadline = started + settings.upgrade_timeout;
    if at_cut.recv_deadline(deadline).is_err() {
        return Err(refuse(
            "the cut marker did not reach this process's subscription in time".into(),
        ));
    }
    if std::env::var("FREEIM_UPGRADE_FAULT").as_deref() == Ok("stall-before-took") {
        log::warn!(
            "hand-over {id:x}: holding {} connections, stalling before Took \
             (FREEIM_UPGRADE_FAULT)",
            conns.len()
        );
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    channel
        .send_control(&Control::Took, &[])
        .map_err(channel_error)?;
    // Nothing is touched until the old process has let go. It may wait up
    // to the timeout for its Redis worker before it says so: wait longer.
    channel
        .set_timeout(settings.upgrade_timeout * 2 + Duration::from_secs(5))
        .map_err(channel_error)?;
    match channel.recv() {
        Ok(Received::Control(Control::Released, _)) => {}
        Ok(Received::Control(Control::Abort { reason }, _)) => {
            return Err(UpgradeError::Aborted(reason))
        }
        other if process_gone(pid) => {
            log::warn!(
                "hand-over {id:x}: the old process died after Took ({other:?}): taking over"
            );
        }
        Ok(other) => return Err(UpgradeError::Aborted(format!("unexpected {other:?}"))),
        Err(e) => return Err(channel_error(e)),
    }
    Ok(TakenOver {
        listeners,
        conns,
        id,
        started,
    })
}

enum Receive {
    Channel(io::Error),
    Aborted(String),
    Invalid(String),
}

type Handed = (Vec<std::net::TcpListener>, Vec<(ConnState, TcpStream)>);

/// The listening sockets, then the states and sockets, until `Sent`.
fn receive(channel: &Channel) -> Result<Handed, Receive> {
    let mut listeners = Vec::new();
    let mut data = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    loop {
        match channel.recv().map_err(Receive::Channel)? {
            Received::Control(Control::Listeners, sockets) => {
                listeners.extend(sockets.into_iter().map(std::net::TcpListener::from));
            }
            Received::Data(piece) => data.extend(piece),
            Received::Fds(batch) => fds.extend(batch),
            Received::Control(Control::Sent { conns, bytes }, _) => {
                if conns != fds.len() || bytes != data.len() {
                    return Err(Receive::Invalid(format!(
                        "announced {conns} connections and {bytes} bytes, received {} and {}",
                        fds.len(),
                        data.len()
                    )));
                }
                break;
            }
            Received::Control(Control::Abort { reason }, _) => {
                return Err(Receive::Aborted(reason))
            }
            Received::Control(other, _) => {
                return Err(Receive::Invalid(format!("unexpected {other:?}")))
            }
            Received::Closed => {
                return Err(Receive::Channel(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the running node closed the hand-over channel",
                )))
            }
        }
    }
    if listeners.is_empty() {
        return Err(Receive::Invalid(
            "no listening socket was handed over".into(),
        ));
    }
    let states = decode_states(&data)
        .map_err(|e| Receive::Invalid(format!("unreadable connection states: {e}")))?;
    if states.len() != fds.len() {
        return Err(Receive::Invalid(format!(
            "{} states for {} sockets",
            states.len(),
            fds.len()
        )));
    }
    let conns = states
        .into_iter()
        .zip(fds)
        .map(|(state, fd)| (state, TcpStream::from_std(std::net::TcpStream::from(fd))))
        .collect();
    Ok((listeners, conns))
}

/// Whether process `pid` is gone: no such process, or a zombie (exited,
/// not yet reaped by its parent).
fn process_gone(pid: u32) -> bool {
    let raw = nix::unistd::Pid::from_raw(pid as i32);
    if matches!(nix::sys::signal::kill(raw, None), Err(nix::Error::ESRCH)) {
        return true;
    }
    // `/proc/<pid>/stat`: "pid (comm) state …"; the name may hold spaces.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
