//! A push on its owning loop: routed by [`route`], then receipts (left as
//! [`Action::Publish`]), counters, and closing the readers it overflowed.

use std::sync::Arc;

use super::{Action, Machine};
use crate::bus::{Frame, Push};
use crate::metrics::LoopCounters;
use crate::node::conn::Wire;
use crate::node::delivery::route;
use crate::ws::code;
use freeim_protocol::receipt_command;

impl Machine {
    /// Queues a push to its audience's sockets (marked dirty, flushed by the
    /// driver later; `wire` is used only to let a socket over the
    /// send-buffer cap take what it can before it is called slow). The
    /// driver observes the push's lag (reading the clock).
    pub fn on_push(&mut self, mut push: Push, wire: &mut impl Wire) {
        if Arc::strong_count(&push.frame) > 1 {
            // Another loop holds the frame too: with one copy per loop, the
            // reference count each queued delivery moves stays in this
            // core's cache instead of bouncing between cores.
            push.frame = Arc::new(Frame::clone(&push.frame));
        }
        let limit = self.settings.max_send_buffer;
        let routed = route(
            &self.registry,
            &mut self.conns,
            wire,
            &push,
            self.index,
            limit,
            self.settings.compression_min_bytes,
        );
        let names = &self.names;
        for (receiver, delivered) in routed.receipts {
            let sender = push.sender;
            self.actions.push(Action::Publish {
                channel: names.owner_keys(sender).server(names.select_server(sender)),
                payload: receipt_command(sender, receiver, push.frame.payload(), delivered),
            });
        }
        let counters = self.counters();
        LoopCounters::bump(&counters.messages_pushed, routed.pushed);
        LoopCounters::bump(&counters.bytes_pushed, routed.bytes);
        LoopCounters::bump(&counters.messages_deflated, routed.deflated);
        LoopCounters::bump(&counters.compressions, routed.compressions);
        LoopCounters::bump(&counters.slow_consumers, routed.overflowed.len() as u64);
        for key in routed.overflowed {
            if let Some(suppressed) = self.peer_log.allow() {
                log::warn!("closing a slow reader: more than {limit} bytes behind the message in flight (+{suppressed} more peer events)");
            }
            // What it has not started reading it never will: free it now,
            // so the close frame follows the message in flight.
            if let Some(conn) = self.conns.get_mut(key) {
                conn.discard_unstarted();
            }
            self.begin_close(key, code::POLICY, "send buffer full");
        }
    }
}
