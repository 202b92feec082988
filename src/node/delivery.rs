//! Pushing messages to a loop's sockets: FreeIM's delivery rules, receipts,
//! and the per-connection send-buffer cap (slow readers are closed with 1008).

use super::event_loop::EventLoop;
use super::mailbox::{Audience, Push};
use crate::metrics::LoopCounters;
use crate::protocol::receipt_command;
use crate::store::Job;
use crate::ws::code;

impl EventLoop {
    pub(super) fn deliver(&mut self, push: Push) {
        let Push {
            sender,
            audience,
            frame,
            receipt,
        } = push;
        let limit = self.shared.settings.max_send_buffer;
        let mut overflowed = Vec::new();
        let receivers: &[i64] = match &audience {
            Audience::Clients(receivers) => receivers,
            Audience::Members(members) => members.get(self.index).map_or(&[], Vec::as_slice),
            Audience::Everyone => &[],
        };
        let mut pushed = 0u64;
        for &receiver in receivers {
            let sockets = self.registry.sockets(receiver);
            let delivered = !sockets.is_empty();
            if !is_lone_sender_socket(receiver, sender, sockets.len()) {
                for &key in sockets {
                    match self.conns.queue(key, frame.bytes(), limit) {
                        Ok(()) => pushed += 1,
                        Err(_) => overflowed.push(key),
                    }
                }
            }
            if receipt && sender != 0 && receiver != sender {
                let names = &self.shared.names;
                self.shared.worker.submit(Job::Publish {
                    channel: names.server_channel(names.select_server(sender)),
                    payload: receipt_command(sender, receiver, frame.payload(), delivered),
                });
            }
        }
        if let Audience::Everyone = audience {
            for (client_id, sockets) in self.registry.iter() {
                if is_lone_sender_socket(client_id, sender, sockets.len()) {
                    continue;
                }
                for &key in sockets {
                    match self.conns.queue(key, frame.bytes(), limit) {
                        Ok(()) => pushed += 1,
                        Err(_) => overflowed.push(key),
                    }
                }
            }
        }
        let counters = self.counters();
        LoopCounters::bump(&counters.messages_pushed, pushed);
        LoopCounters::bump(&counters.bytes_pushed, pushed * frame.bytes().len() as u64);
        LoopCounters::bump(&counters.slow_consumers, overflowed.len() as u64);
        counters.observe_lag(frame.received().elapsed());
        for key in overflowed {
            log::warn!("closing a slow reader: more than {limit} bytes unsent");
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
