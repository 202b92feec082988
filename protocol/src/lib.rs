//! The FreeIM 2.x wire contract, without I/O: what the `freeim-server` node
//! and the `imhelper` library write to and read from Redis. Both depend on
//! this crate; no wire string is spelled anywhere else.
//!
//! | module | owns |
//! |---|---|
//! | [`keys`] | every Redis key and pub/sub channel name, from the `path` prefix |
//! | [`layout`] | one Redis (FreeIM's names) or a Redis Cluster (a hash tag per node, sharded pub/sub) |
//! | [`routing`] | `clientId mod len(servers)`: which node owns a client |
//! | [`ticket`] | `{"Item1": clientId, "Item2": meta}`: token value and presence event |
//! | [`command`] | the commands published on a node's channel: encoding and decoding |
//! | [`handover`] | **[ext]** the markers a node hand-over (hot upgrade) publishes on its channel |
//! | [`receipt`] | the receipt a node sends back for a message sent with one |
//! | [`scripts`] | the Lua scripts: channel membership (helper) and presence (node) |
//! | [`vectors`] | test vectors: bytes on the wire ↔ typed values, for both sides' tests |
//!
//! `docs/protocol.md` is the specification these modules follow; where this
//! project differs from FreeIM 2.x, the item's docs say so.

#![deny(missing_docs)]

pub mod command;
pub mod handover;
pub mod keys;
pub mod layout;
pub mod receipt;
pub mod routing;
pub mod scripts;
pub mod ticket;
pub mod vectors;

pub use command::{
    chan_command, decode_command, force_offline_command, send_command, ChanMessage, Command,
    CommandError, SendCommand,
};
pub use keys::Keys;
pub use layout::{key_slot, Directory, Layout};
pub use receipt::{receipt_command, receipts_fit, RECEIPT_DELIVERED, RECEIPT_OFFLINE};
pub use routing::{first_places, group_by_server, server_index};
pub use ticket::{ClientTicket, TicketError};
