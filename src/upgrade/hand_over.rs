//! The old process's side of a hand-over: serves requests on
//! `--upgrade-socket`, cuts the command stream, collects every connection from
//! the loops, sends it all, and retires, or takes everything back.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use freeim_protocol::handover::{marker, Step};
use mio::net::TcpStream;

use super::distribute;
use super::transport::{Channel, Control, Listener};
use crate::bus::FORMAT;
use crate::bus::{encode_states, ConnState, Imports, Job, LoopMsg, Router, WorkerHandle};
use crate::config::Settings;
use crate::metrics::{Handover, Metrics};
use crate::names::Names;
use crate::store::cutover::CutOver;

/// What the old side works with.
pub struct OldNode {
    /// Node settings.
    pub settings: Arc<Settings>,
    /// Key and channel names.
    pub names: Arc<Names>,
    /// The loops' mailboxes.
    pub router: Router,
    /// The Redis worker (markers, retiring).
    pub worker: WorkerHandle,
    /// The cut of the command stream.
    pub cutover: Arc<CutOver>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The listening sockets (copies of the loops' descriptors).
    pub listeners: Vec<std::net::TcpListener>,
    /// Held while a hand-over runs: a drain (SIGTERM) waits for it.
    pub busy: Arc<parking_lot::Mutex<()>>,
}

/// How a hand-over attempt ended, short of completing.
enum Aborted {
    /// The other side left before it said it was ready (nothing began: a
    /// process checking whether the socket is live, say).
    Left,
    /// The hand-over failed, for this reason.
    Failed(String),
}

impl From<io::Error> for Aborted {
    fn from(e: io::Error) -> Aborted {
        Aborted::Failed(format!("hand-over channel: {e}"))
    }
}

/// Serves hand-over requests on `listener` on its own thread, one at a time;
/// `retired` yields once the connections are handed over (the process then
/// exits without draining).
pub fn serve(listener: Listener, node: OldNode, retired: Sender<()>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("upgrade".into())
        .spawn(move || loop {
            let channel = match listener.accept() {
                Ok(channel) => channel,
                Err(e) => {
                    log::error!("hand-over socket failed: {e}; no hot upgrade possible now");
                    return;
                }
            };
            // Held until the outcome is known to the main thread too.
            let busy = node.busy.lock();
            if node.hand_over(&channel) {
                let _ = retired.send(());
                return;
            }
            drop(busy);
        })
        .map(drop)
}

/// A hand-over's id: unique enough to tell two hand-overs' markers apart
/// (the clock's nanoseconds mixed with the process id).
fn hand_over_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 40)
}

impl OldNode {
    /// One hand-over: true once the new process holds everything.
    fn hand_over(&self, channel: &Channel) -> bool {
        let started = Instant::now();
        let id = hand_over_id();
        log::info!("hand-over {id:x}: a new process asks for every connection");
        let mut collected = Vec::new();
        let outcome = self.run(channel, id, started, &mut collected);
        let took = started.elapsed();
        match outcome {
            Ok(conns) => {
                self.metrics
                    .count_handover(Handover::HandedOver, conns, took);
                log::info!(
                    "hand-over {id:x}: {conns} connections handed over in {took:?}; exiting"
                );
                true
            }
            Err(Aborted::Left) => {
                log::info!("hand-over {id:x}: the other process left before it was ready");
                false
            }
            Err(Aborted::Failed(why)) => {
                self.metrics.count_handover(Handover::Failed, 0, took);
                let _ = channel.send_control(
                    &Control::Abort {
                        reason: why.clone(),
                    },
                    &[],
                );
                self.take_back(id, collected);
                log::warn!(
                    "hand-over {id:x} abandoned after {:?}: {why}; still serving every connection",
                    started.elapsed()
                );
                false
            }
        }
    }

    fn run(
        &self,
        channel: &Channel,
        id: u64,
        started: Instant,
        collected: &mut Vec<(ConnState, TcpStream)>,
    ) -> Result<usize, Aborted> {
        let timeout = self.settings.upgrade_timeout;
        let deadline = started + timeout;
        channel.set_timeout(timeout)?;
        let settings = &self.settings;
        let format = std::env::var("FREEIM_UPGRADE_FORMAT")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(FORMAT);
        let hello = Control::Hello {
            format,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            server: settings.server.clone(),
            servers: settings.servers.clone(),
            path: settings.path.clone(),
            listen: settings.listen.to_string(),
            db: settings.redis.db(),
            id,
        };
        let answer = channel
            .send_control(&hello, &[])
            .and_then(|()| channel.recv_control());
        let Ok((answer, _)) = answer else {
            return Err(Aborted::Left);
        };
        match answer {
            Control::Ready => {}
            Control::Refuse { reason } => {
                return Err(Aborted::Failed(format!("refused: {reason}")))
            }
            other => return Err(Aborted::Failed(format!("unexpected {other:?}"))),
        }
        // The cut: everything published before the marker is this process's.
        let at_cut = self.cutover.cut(id);
        self.publish(Step::Cut, id);
        at_cut.recv_deadline(deadline).map_err(|_| {
            Aborted::Failed("the cut marker did not come back from Redis in time".into())
        })?;
        let loops = self.router.loops();
        let (quiet, quieted) = crossbeam_channel::unbounded();
        self.router.post_all(|| LoopMsg::Quiesce(quiet.clone()));
        for _ in 0..loops {
            quieted.recv_deadline(deadline).map_err(|_| {
                Aborted::Failed(
                    "connections still waiting for token answers at the deadline".into(),
                )
            })?;
        }
        let (parcel, parcels) = crossbeam_channel::unbounded();
        self.router.post_all(|| LoopMsg::Collect(parcel.clone()));
        for _ in 0..loops {
            let parcel = parcels.recv_deadline(deadline).map_err(|_| {
                Aborted::Failed("a loop did not give its connections up in time".into())
            })?;
            collected.extend(parcel.conns);
        }
        let listeners: Vec<_> = self.listeners.iter().map(|l| l.as_raw_fd()).collect();
        channel.send_control(&Control::Listeners, &listeners)?;
        let (states, fds): (Vec<&ConnState>, Vec<_>) = collected
            .iter()
            .map(|(state, stream)| (state, stream.as_raw_fd()))
            .unzip();
        let data = encode_states(&states);
        channel.send_data(&data)?;
        channel.send_fds(&fds)?;
        let conns = collected.len();
        log::info!(
            "hand-over {id:x}: sent {conns} connections ({} bytes of state) in {:?}",
            data.len(),
            started.elapsed()
        );
        channel.send_control(
            &Control::Sent {
                conns,
                bytes: data.len(),
            },
            &[],
        )?;
        // The whole hand-over has one deadline, not one per message.
        let left = deadline.saturating_duration_since(Instant::now());
        channel.set_timeout(left.max(std::time::Duration::from_millis(1)))?;
        match channel.recv_control()?.0 {
            Control::Took => {}
            Control::Refuse { reason } => {
                return Err(Aborted::Failed(format!("refused: {reason}")))
            }
            other => return Err(Aborted::Failed(format!("unexpected {other:?}"))),
        }
        // Past this point the new process owns everything: no way back.
        self.cutover.retire();
        let (done, retired) = crossbeam_channel::bounded(1);
        self.worker.submit(Job::Retire { done });
        if retired.recv_timeout(timeout).is_err() {
            log::warn!("hand-over {id:x}: the Redis worker did not finish in time");
        }
        if let Err(e) = channel.send_control(&Control::Released, &[]) {
            log::warn!("hand-over {id:x}: cannot tell the new process it may start: {e}");
        }
        // Closing this process's descriptors leaves the sockets open: the
        // new process holds its own.
        collected.clear();
        Ok(conns)
    }

    /// The hand-over failed: the loops take their connections back and
    /// accept again, and the subscriber delivers what it held since the cut.
    fn take_back(&self, id: u64, collected: Vec<(ConnState, TcpStream)>) {
        let shares = distribute(collected, self.router.loops());
        for (index, share) in shares.into_iter().enumerate() {
            if !share.is_empty() {
                let imports = Imports {
                    conns: share,
                    generations_above: 0,
                };
                self.router.mailbox(index).post(LoopMsg::Import(imports));
            }
        }
        self.router.post_all(|| LoopMsg::Resume);
        if !self.cutover.cancel() {
            self.publish(Step::Abort, id);
        }
    }

    fn publish(&self, step: Step, id: u64) {
        let keys = self.names.keys();
        self.worker.submit(Job::Publish {
            channel: keys.server(self.names.server()),
            payload: marker(step, id),
        });
    }
}
