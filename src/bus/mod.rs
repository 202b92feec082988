//! The types that cross threads, below both the event loops ([`crate::node`])
//! and the Redis threads ([`crate::store`]): connection ids and socket names,
//! pushes and their frames, the loops' messages and mailboxes with the
//! [`Router`], the Redis worker's jobs, and connections' state on their way
//! to another process ([`ConnState`]).
//!
//! ## Layers
//! Each module may use the ones below it, never one beside or above it:
//!
//! | layer | modules |
//! |---|---|
//! | process | [`crate::server`]: wires the loops and the Redis threads, signals, drain |
//! | hand-over | [`crate::upgrade`]: a hot upgrade's old and new sides |
//! | threads | [`crate::node`] (event loops), [`crate::store`] (Redis threads), [`crate::admin`] |
//! | crossing | `bus` (this module) |
//! | leaves | [`crate::ws`], [`crate::http`], [`crate::names`], [`crate::config`], [`crate::metrics`], [`crate::throttle`], `freeim_protocol` |
//!
//! `node` and `store` never import each other: what one tells the other is
//! a type from here.

mod conn_id;
mod handover;
mod job;
mod loop_msg;
mod push;
mod router;

pub use conn_id::{socket_loop, socket_name, socket_name_prefix, ConnId};
pub use handover::{decode_states, encode_states, ConnState, Parcel, PhaseState, FORMAT};
pub use job::{HeldSocket, Job, WorkerHandle};
pub use loop_msg::{Adoption, Imports, LoopMsg, TokenOutcome};
pub use push::{Audience, Frame, Members, Push};
pub use router::{loop_of, Mailbox, Router, Wakes};
