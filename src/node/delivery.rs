//! Pushing messages to a loop's sockets: FreeIM's delivery rules and the
//! per-connection send-buffer cap, without I/O. The loop's side (receipts,
//! counters, closing a reader more than `--max-send-buffer` bytes behind the
//! message in flight with 1008) is in `event_loop/deliver.rs`.

use super::conn::Wire;
use super::connections::Connections;
use super::registry::Registry;
use crate::bus::{Audience, Push};
use crate::http::PerMessageDeflate;
use crate::ws::deflate::fits_window;

/// What routing one push on one loop came to.
#[derive(Debug, Default)]
pub struct Routed {
    /// Frames queued to sockets.
    pub pushed: u64,
    /// Bytes of those frames, as each socket gets them.
    pub bytes: u64,
    /// Of those frames, the ones queued compressed (permessage-deflate).
    pub deflated: u64,
    /// Times this loop compressed the message: 0 or 1, and 0 when another
    /// loop's copy was compressed first.
    pub compressions: u64,
    /// Sockets whose queue is full: to be closed as slow readers.
    pub overflowed: Vec<u32>,
    /// Receipts owed to the sender: (receiver, whether it had a socket here).
    pub receipts: Vec<(i64, bool)>,
}

/// Queues `push`'s frame to every socket of its audience held by loop
/// `loop_index`, by FreeIM's delivery rules; no I/O but a flush through
/// `wire` of a socket whose queue is over `limit` (the loop flushes the
/// others later). A socket that negotiated permessage-deflate gets the
/// compressed frame when the message has at least `min_deflate` bytes, gets
/// shorter compressed and fits the socket's window; the message is
/// compressed the first time such a socket needs it, and never again.
pub fn route(
    registry: &Registry,
    conns: &mut Connections,
    wire: &mut impl Wire,
    push: &Push,
    loop_index: usize,
    limit: usize,
    min_deflate: usize,
) -> Routed {
    let mut routed = Routed::default();
    let frame = &push.frame;
    let payload_len = frame.payload_len();
    let mut compressions = 0;
    // Whether the frame has a compressed variant, once a socket asked.
    let mut made: Option<bool> = None;
    let mut deflate = |deal: PerMessageDeflate| {
        fits_window(payload_len, deal.server_max_window_bits)
            && *made
                .get_or_insert_with(|| frame.deflated(min_deflate, || compressions += 1).is_some())
    };
    let mut queue_all = |routed: &mut Routed, sockets: &[u32]| {
        for &key in sockets {
            let mut deflated = false;
            let mut choose = |deal| {
                deflated = deflate(deal);
                deflated
            };
            match conns.queue(key, frame, limit, wire, &mut choose) {
                Ok(()) => {
                    routed.pushed += 1;
                    routed.deflated += u64::from(deflated);
                    routed.bytes += frame.bytes_as(deflated).len() as u64;
                }
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
    routed.compressions = compressions;
    routed
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
