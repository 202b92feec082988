//! How other threads reach an event loop: each loop has a [`Mailbox`] (a
//! crossbeam channel plus a `mio::Waker`), and [`Router`] picks the loop that
//! owns a client and posts to it.
//!
//! All sockets of one client live on the loop `client_id mod loops`, so that
//! loop alone can apply the sender-echo rule and decide receipts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use super::{Audience, Frame, LoopMsg, Members, Push};

/// A loop's inbox: a channel and the waker of the loop's `Poll`.
pub struct Mailbox {
    sender: Sender<LoopMsg>,
    waker: Waker,
    wake_pending: AtomicBool,
}

impl Mailbox {
    /// Creates a mailbox whose messages come out of the returned receiver.
    pub fn new(waker: Waker) -> (Mailbox, Receiver<LoopMsg>) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let mailbox = Mailbox {
            sender,
            waker,
            wake_pending: AtomicBool::new(false),
        };
        (mailbox, receiver)
    }

    /// Queues `msg` and wakes the loop, unless a wake is already pending: a
    /// burst of messages costs one wake-up syscall, not one each.
    pub fn post(&self, msg: LoopMsg) {
        self.send(msg);
        self.wake();
    }

    /// Queues `msg` without waking the loop; [`wake`](Self::wake) it after
    /// the last message of a batch.
    pub fn send(&self, msg: LoopMsg) {
        let _ = self.sender.send(msg); // fails only once the loop has exited
    }

    /// Wakes the loop, unless a wake is already pending.
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop before it drains its receiver.
    pub fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }
}

/// The index of the loop, of `loops`, that holds `client_id`'s sockets.
pub fn loop_of(client_id: i64, loops: usize) -> usize {
    client_id.rem_euclid(loops as i64) as usize
}

/// Posts work to the loop that owns each client.
#[derive(Clone)]
pub struct Router {
    mailboxes: Arc<[Mailbox]>,
}

impl Router {
    /// Routes over these loops' mailboxes, in loop order.
    pub fn new(mailboxes: Arc<[Mailbox]>) -> Router {
        assert!(!mailboxes.is_empty(), "a node has at least one loop");
        Router { mailboxes }
    }

    /// The index of the loop that holds `client_id`'s sockets.
    pub fn loop_of(&self, client_id: i64) -> usize {
        loop_of(client_id, self.mailboxes.len())
    }

    /// Number of loops.
    pub fn loops(&self) -> usize {
        self.mailboxes.len()
    }

    /// The mailbox of loop `index`.
    pub fn mailbox(&self, index: usize) -> &Mailbox {
        &self.mailboxes[index]
    }

    /// Posts `msg` to every loop.
    pub fn post_all(&self, msg: impl Fn() -> LoopMsg) {
        for mailbox in self.mailboxes.iter() {
            mailbox.post(msg());
        }
    }

    /// A fresh set of loops to wake, for a batch of posts.
    pub fn wakes(&self) -> Wakes {
        Wakes(vec![false; self.mailboxes.len()])
    }

    /// Wakes every loop the batch posted to (once each) and empties the set.
    pub fn wake(&self, wakes: &mut Wakes) {
        for (index, pending) in wakes.0.iter_mut().enumerate() {
            if std::mem::take(pending) {
                self.mailboxes[index].wake();
            }
        }
    }

    /// Queues `msg` for loop `index`, to be woken by [`wake`](Self::wake).
    pub fn send(&self, index: usize, msg: LoopMsg, wakes: &mut Wakes) {
        self.mailboxes[index].send(msg);
        wakes.0[index] = true;
    }

    /// Splits `receivers` by owning loop and queues each loop its share.
    pub fn push_to_clients(
        &self,
        sender: i64,
        receivers: Vec<i64>,
        frame: Arc<Frame>,
        receipt: bool,
        wakes: &mut Wakes,
    ) {
        let push = |audience| {
            LoopMsg::Push(Push {
                sender,
                audience,
                frame: frame.clone(),
                receipt,
            })
        };
        if self.mailboxes.len() == 1 {
            return self.send(0, push(Audience::Clients(receivers)), wakes);
        }
        let mut shares: Vec<Vec<i64>> = vec![Vec::new(); self.mailboxes.len()];
        for receiver in receivers {
            shares[self.loop_of(receiver)].push(receiver);
        }
        for (index, share) in shares.into_iter().enumerate() {
            if !share.is_empty() {
                self.send(index, push(Audience::Clients(share)), wakes);
            }
        }
    }

    /// Splits a channel's members by owning loop, for [`push_to_members`](Self::push_to_members).
    pub fn partition(&self, members: impl IntoIterator<Item = i64>) -> Members {
        let mut shares: Vec<Vec<i64>> = vec![Vec::new(); self.mailboxes.len()];
        for member in members {
            shares[self.loop_of(member)].push(member);
        }
        Arc::new(shares)
    }

    /// Queues a channel message for every loop holding some of its members.
    pub fn push_to_members(
        &self,
        sender: i64,
        members: Members,
        frame: Arc<Frame>,
        wakes: &mut Wakes,
    ) {
        for (index, share) in members.iter().enumerate() {
            if !share.is_empty() {
                let push = Push {
                    sender,
                    audience: Audience::Members(members.clone()),
                    frame: frame.clone(),
                    receipt: false,
                };
                self.send(index, LoopMsg::Push(push), wakes);
            }
        }
    }

    /// Queues a broadcast for every loop.
    pub fn push_to_everyone(&self, sender: i64, frame: Arc<Frame>, wakes: &mut Wakes) {
        for index in 0..self.mailboxes.len() {
            let push = Push {
                sender,
                audience: Audience::Everyone,
                frame: frame.clone(),
                receipt: false,
            };
            self.send(index, LoopMsg::Push(push), wakes);
        }
    }
}

/// The loops a batch of posts has queued messages for and not woken yet.
#[derive(Debug)]
pub struct Wakes(Vec<bool>);
