//! Pushing messages to a loop's sockets: FreeIM's delivery rules, receipts,
//! and the per-connection send-buffer cap (a reader more than
//! `--max-send-buffer` bytes behind the message in flight is closed with 1008).

use super::connections::Connections;
use super::event_loop::EventLoop;
use std::sync::Arc;

use super::registry::Registry;
use crate::bus::Job;
use crate::bus::{Audience, Frame, Push};
use crate::metrics::LoopCounters;
use crate::ws::code;
use freeim_protocol::receipt_command;

/// What routing one push on one loop came to.
#[derive(Debug, Default)]
pub struct Routed {
    /// Frames queued to sockets.
    pub pushed: u64,
    /// Sockets whose queue is full: to be closed as slow readers.
    pub overflowed: Vec<u32>,
    /// Receipts owed to the sender: (receiver, whether it had a socket here).
    pub receipts: Vec<(i64, bool)>,
}

/// Queues `push`'s frame to every socket of its audience held by loop
/// `loop_index`, by FreeIM's delivery rules; no I/O (the loop flushes later).
pub fn route(
    registry: &Registry,
    conns: &mut Connections,
    push: &Push,
    loop_index: usize,
    limit: usize,
) -> Routed {
    let mut routed = Routed::default();
    let mut queue_all = |routed: &mut Routed, sockets: &[u32]| {
        for &key in sockets {
            match conns.queue(key, &push.frame, limit) {
                Ok(()) => routed.pushed += 1,
                Err(_) => routed.overflowed.push(key),
            }
        }
    };
    let receivers: &[i64] = match &push.audience {
        Audience::Clients(receivers) => receivers,
        Audience::Members(members) => members.get(loop_index).map_or(&[], Vec::as_slice),
        Audience::Everyone => &[],
    };
    for &receiver in receivers {
        let sockets = registry.sockets(receiver);
        if !is_lone_sender_socket(receiver, push.sender, sockets.len()) {
            queue_all(&mut routed, sockets);
        }
        if push.receipt && push.sender != 0 && receiver != push.sender {
            routed.receipts.push((receiver, !sockets.is_empty()));
        }
    }
    if let Audience::Everyone = push.audience {
        for (client_id, sockets) in registry.iter() {
            if !is_lone_sender_socket(client_id, push.sender, sockets.len()) {
                queue_all(&mut routed, sockets);
            }
        }
    }
    routed
}

impl EventLoop {
    pub(super) fn deliver(&mut self, mut push: Push) {
        if Arc::strong_count(&push.frame) > 1 {
            // Another loop holds the frame too: with one copy per loop, the
            // reference count each queued delivery moves stays in this
            // core's cache instead of bouncing between cores.
            push.frame = Arc::new(Frame::clone(&push.frame));
        }
        let limit = self.shared.settings.max_send_buffer;
        let routed = route(&self.registry, &mut self.conns, &push, self.index, limit);
        let names = &self.shared.names;
        for (receiver, delivered) in routed.receipts {
            let sender = push.sender;
            self.shared.worker.submit(Job::Publish {
                channel: names.keys().server(names.select_server(sender)),
                payload: receipt_command(sender, receiver, push.frame.payload(), delivered),
            });
        }
        let counters = self.counters();
        let frame_len = push.frame.bytes().len() as u64;
        LoopCounters::bump(&counters.messages_pushed, routed.pushed);
        LoopCounters::bump(&counters.bytes_pushed, routed.pushed * frame_len);
        LoopCounters::bump(&counters.slow_consumers, routed.overflowed.len() as u64);
        counters.observe_lag(push.frame.received().elapsed());
        for key in routed.overflowed {
            if let Some(suppressed) = self.peer_log.allow() {
                log::warn!("closing a slow reader: more than {limit} bytes behind the message in flight (+{suppressed} more peer events)");
            }
            // What it has not started reading it never will: free it now,
            // so the close frame follows the message in flight.
            if let Some(conn) = self.conns.get_mut(key) {
                conn.out.discard_unstarted();
            }
            self.begin_close(key, code::POLICY, "send buffer full");
        }
    }
}

/// FreeIM's echo rule: a sender's message goes to its *other* devices only,
/// so a sender with a single socket is skipped.
fn is_lone_sender_socket(receiver: i64, sender: i64, sockets: usize) -> bool {
    receiver == sender && sockets <= 1
}

#[cfg(test)]
mod tests {
    use super::is_lone_sender_socket;

    #[test]
    fn echo_goes_only_to_a_senders_other_devices() {
        assert!(is_lone_sender_socket(1, 1, 1));
        assert!(is_lone_sender_socket(1, 1, 0));
        assert!(!is_lone_sender_socket(1, 1, 2));
        assert!(!is_lone_sender_socket(2, 1, 1));
    }
}
