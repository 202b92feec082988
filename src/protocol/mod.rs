//! FreeIM 2.x wire contract, without I/O: the Redis key and channel names a
//! node uses ([`names`]), the commands business services publish to it
//! ([`command`]) and the JSON payloads it publishes back ([`payload`]).
//!
//! `docs/protocol.md` is the specification these modules follow.

pub mod command;
pub mod names;
pub mod payload;

pub use command::{decode_command, ChanMessage, Command, CommandError, SendCommand};
pub use names::Names;
pub use payload::{receipt_command, receipt_len_bound, ClientTicket};
