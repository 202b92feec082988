//! Echo mode (`--echo`, for the Autobahn conformance suite): no Redis, no
//! tokens, and every data message a client sends comes back to it.
//!
//! It is a path of its own beside the push node's, chosen once when a loop
//! starts: upgrades are admitted at once (the client id is the slot key, see
//! the loop's `admit_echo`), sessions decode with data kept, and received
//! bytes go through [`absorb`] instead of [`Conn::absorb`]. Everything else
//! (handshake, pings, close paths) is the production code. A session that
//! negotiated permessage-deflate gets every message back compressed when the
//! compressor makes it shorter and the session's window takes it (there is
//! no minimum size here: the conformance suite's messages are small).

use super::conn::{Absorbed, Conn};
use super::send_queue::SendQueue;
use crate::http::PerMessageDeflate;
use crate::ws::deflate::{encode_deflated_frame, fits_window};
use crate::ws::{encode_frame, Event, OpCode, ReaderConfig};

/// The decoder settings of an echo session: data messages are assembled.
pub fn reader_config(production: ReaderConfig) -> ReaderConfig {
    ReaderConfig {
        keep_data: true,
        ..production
    }
}

/// [`Conn::absorb`], sending every data message back.
pub fn absorb(conn: &mut Conn, input: &mut [u8]) -> Absorbed {
    conn.absorb_with(input, echo_back)
}

/// Queues a complete data message to go back to its sender.
fn echo_back(out: &mut SendQueue, deflate: Option<PerMessageDeflate>, data: Event) {
    let (opcode, payload) = match &data {
        Event::Text(Some(text)) => (OpCode::Text, text.as_bytes()),
        Event::Binary(Some(data)) => (OpCode::Binary, &data[..]),
        _ => return,
    };
    let compressed = deflate
        .filter(|deal| fits_window(payload.len(), deal.server_max_window_bits))
        .and_then(|_| encode_deflated_frame(opcode, payload));
    match compressed {
        Some(frame) => out.push_with(|out| out.extend_from_slice(&frame)),
        None => out.push_with(|out| encode_frame(out, opcode, payload)),
    }
}
