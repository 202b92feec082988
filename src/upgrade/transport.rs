//! The Unix socket between the process handing its connections over and the
//! one taking them: `SOCK_SEQPACKET` (message boundaries kept, so each
//! message's file descriptors arrive with it), `SCM_RIGHTS` for the
//! descriptors, and three kinds of message:
//!
//! | first byte | rest | descriptors |
//! |---|---|---|
//! | `C` | a [`Control`] message, JSON | none, or the listening sockets |
//! | `D` | a piece of the connections' states (`crate::bus::encode_states`) | none |
//! | `F` | nothing | up to [`FDS_PER_MESSAGE`] connection sockets, in state order |
//!
//! Control messages are JSON so that two binaries of different versions
//! always understand each other's `Hello` and refusal; the states are in the
//! versioned binary format the `Hello` names.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{self as sock, AddressFamily, ControlMessage, ControlMessageOwned};
use nix::sys::socket::{MsgFlags, SockFlag, SockType, UnixAddr};
use serde::{Deserialize, Serialize};

/// Most descriptors one message carries (the kernel's `SCM_MAX_FD` is 253).
pub const FDS_PER_MESSAGE: usize = 250;
/// Largest piece of state data in one message.
const DATA_PER_MESSAGE: usize = 64 * 1024;
/// Room for the largest message received.
const RECEIVE_BUFFER: usize = DATA_PER_MESSAGE + 1;

/// The conversation, in order: `Hello` (old → new), `Ready` or `Refuse`
/// (new → old), `Listeners` with their descriptors, the states and the
/// connection sockets, `Sent` (old → new), `Took` (new → old), and
/// `Released` or `Abort` (old → new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Control {
    /// Who hands over what: the state format, the binary and the node.
    Hello {
        /// The state format the states will be in (`crate::bus::FORMAT`).
        format: u32,
        /// The old binary's version.
        version: String,
        /// The old process.
        pid: u32,
        /// `--server`.
        server: String,
        /// `--servers`.
        servers: Vec<String>,
        /// `--path`.
        path: String,
        /// `--listen` (the address of the listening sockets handed over).
        #[serde(default)]
        listen: String,
        /// The Redis database (`SELECT`): presence lives there.
        #[serde(default)]
        db: i64,
        /// The hand-over's id, in its markers.
        id: u64,
    },
    /// The new process reads the format, serves the same node, and is
    /// subscribed, waiting for the cut.
    Ready,
    /// The new process will not take over, and why.
    Refuse {
        /// One line.
        reason: String,
    },
    /// The listening sockets are attached.
    Listeners,
    /// Every state and socket has been sent.
    Sent {
        /// Connections sent.
        conns: usize,
        /// Bytes of state data sent.
        bytes: usize,
    },
    /// The new process holds everything; it does not touch a socket before
    /// `Released`.
    Took,
    /// The old process let go: it will never touch the sockets again, its
    /// Redis jobs are done and its lease is the new process's to take.
    Released,
    /// The old process keeps serving; the new one must not use anything.
    Abort {
        /// One line.
        reason: String,
    },
}

/// What arrived.
#[derive(Debug)]
pub enum Received {
    /// A control message, with the descriptors attached to it.
    Control(Control, Vec<OwnedFd>),
    /// A piece of state data.
    Data(Vec<u8>),
    /// Connection sockets.
    Fds(Vec<OwnedFd>),
    /// The peer closed the channel (or died).
    Closed,
}

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
}

fn os(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

impl Channel {
    /// Connects to the node handing over at `path`.
    pub fn connect(path: &Path) -> io::Result<Channel> {
        let fd = seqpacket()?;
        let addr = UnixAddr::new(path).map_err(os)?;
        sock::connect(fd.as_raw_fd(), &addr).map_err(os)?;
        Ok(Channel { fd })
    }

    /// Bounds every later receive by `timeout`.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        let timeout = nix::sys::time::TimeVal::new(
            timeout.as_secs() as _,
            timeout.subsec_micros().max(1) as _,
        );
        sock::setsockopt(&self.fd, sock::sockopt::ReceiveTimeout, &timeout).map_err(os)
    }

    /// Sends a control message, with `fds` attached.
    pub fn send_control(&self, control: &Control, fds: &[RawFd]) -> io::Result<()> {
        let json = serde_json::to_vec(control).expect("a control message serialises");
        self.send(b'C', &json, fds)
    }

    /// Sends state data, in pieces.
    pub fn send_data(&self, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(DATA_PER_MESSAGE) {
            self.send(b'D', piece, &[])?;
        }
        Ok(())
    }

    /// Sends connection sockets, in order.
    pub fn send_fds(&self, fds: &[RawFd]) -> io::Result<()> {
        for batch in fds.chunks(FDS_PER_MESSAGE) {
            self.send(b'F', &[], batch)?;
        }
        Ok(())
    }

    fn send(&self, kind: u8, body: &[u8], fds: &[RawFd]) -> io::Result<()> {
        let kind = [kind];
        let iov = [IoSlice::new(&kind), IoSlice::new(body)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        loop {
            match sock::sendmsg::<()>(self.fd.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(os(e)),
            }
        }
    }

    /// Receives the next message (blocking, up to the timeout set).
    pub fn recv(&self) -> io::Result<Received> {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        let mut space = nix::cmsg_space!([RawFd; FDS_PER_MESSAGE + 3]);
        let (len, fds, truncated) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match sock::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for cmsg in msg.cmsgs().map_err(os)? {
                        if let ControlMessageOwned::ScmRights(raw) = cmsg {
                            // SAFETY: the kernel just installed these
                            // descriptors in this process; nothing else owns them.
                            fds.extend(
                                raw.into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                    let truncated = msg
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    break (msg.bytes, fds, truncated);
                }
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(os(e)),
            }
        };
        if truncated {
            return Err(invalid("a hand-over message was truncated"));
        }
        if len == 0 {
            return Ok(Received::Closed);
        }
        let body = &buf[1..len];
        match buf[0] {
            b'C' => {
                let control = serde_json::from_slice(body)
                    .map_err(|e| invalid(format!("unreadable hand-over message: {e}")))?;
                Ok(Received::Control(control, fds))
            }
            b'D' if fds.is_empty() => Ok(Received::Data(body.to_vec())),
            b'F' if body.is_empty() => Ok(Received::Fds(fds)),
            kind => Err(invalid(format!("unknown hand-over message kind {kind}"))),
        }
    }

    /// Receives the next control message; anything else is an error.
    pub fn recv_control(&self) -> io::Result<(Control, Vec<OwnedFd>)> {
        match self.recv()? {
            Received::Control(control, fds) => Ok((control, fds)),
            Received::Closed => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other process closed the hand-over channel",
            )),
            other => Err(invalid(format!(
                "expected a control message, got {other:?}"
            ))),
        }
    }
}

/// Where a node waits for a process to take its connections over.
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
}

impl Listener {
    /// Listens at `path` (mode 0600): a stale socket file (nobody listens)
    /// is replaced; a live socket, or anything that is not a socket, is an
    /// error (and left alone).
    pub fn bind(path: &Path) -> io::Result<Listener> {
        if is_socket(path)? {
            match Channel::connect(path) {
                Ok(_) => return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process serves on it (start the new one with --upgrade to take over)",
                )),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path)?
                }
                Err(e) => return Err(e),
            }
        }
        let fd = seqpacket()?;
        let addr = UnixAddr::new(path).map_err(os)?;
        let umask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = sock::bind(fd.as_raw_fd(), &addr).map_err(os);
        nix::sys::stat::umask(umask);
        bound?;
        sock::listen(&fd, sock::Backlog::new(4).map_err(os)?).map_err(os)?;
        Ok(Listener {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Listens at `path` in place of the process this one took over from
    /// (its socket file, still served until it exits, is replaced).
    pub fn replace(path: &Path) -> io::Result<Listener> {
        if is_socket(path)? {
            std::fs::remove_file(path)?;
        }
        Listener::bind(path)
    }

    /// Waits for the next process; one of another user is refused (closed).
    pub fn accept(&self) -> io::Result<Channel> {
        loop {
            let fd = match sock::accept4(&self.fd, SockFlag::SOCK_CLOEXEC) {
                Ok(fd) => fd,
                Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => continue,
                Err(e) => return Err(os(e)),
            };
            let peer = sock::getsockopt(&fd, sock::sockopt::PeerCredentials).map_err(os)?;
            if peer.uid() != nix::unistd::getuid().as_raw() {
                log::warn!(
                    "refused a hand-over request on {} from uid {} (process {})",
                    self.path.display(),
                    peer.uid(),
                    peer.pid()
                );
                continue;
            }
            return Ok(Channel { fd });
        }
    }
}

/// Whether `path` is a socket file: false when nothing is there, an error
/// when something else is (a file the node must not replace).
fn is_socket(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => Ok(true),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "it exists and is not a socket: not replacing it",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn seqpacket() -> io::Result<OwnedFd> {
    sock::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(os)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_descriptors_cross_in_order() {
        let dir = std::env::temp_dir().join(format!("freeim-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("up.sock");
        let listener = Listener::bind(&path).unwrap();
        let client = Channel::connect(&path).unwrap();
        let server = listener.accept().unwrap();
        let hello = Control::Ready;
        let files: Vec<std::fs::File> = (0..300).map(|_| tempfile()).collect();
        let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        server.send_control(&hello, &raw[..2]).unwrap();
        server.send_data(&vec![7u8; 100_000]).unwrap();
        server.send_fds(&raw).unwrap();
        drop(server);
        client.set_timeout(Duration::from_secs(5)).unwrap();
        let (control, fds) = client.recv_control().unwrap();
        assert_eq!((control, fds.len()), (hello, 2));
        let mut data = Vec::new();
        let mut fds = Vec::new();
        loop {
            match client.recv().unwrap() {
                Received::Data(piece) => data.extend(piece),
                Received::Fds(batch) => fds.extend(batch),
                Received::Closed => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(data, vec![7u8; 100_000]);
        assert_eq!(fds.len(), 300);
        assert!(
            Listener::bind(&path).is_err(),
            "a live socket is not replaced"
        );
        drop(listener);
        assert!(
            Listener::bind(&path).is_ok(),
            "a stale socket file is replaced"
        );
        let file = dir.join("precious.conf");
        std::fs::write(&file, "x").unwrap();
        assert!(Listener::bind(&file).is_err() && Listener::replace(&file).is_err());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "x",
            "a file is left alone"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile() -> std::fs::File {
        std::fs::File::open("/dev/null").unwrap()
    }
}
