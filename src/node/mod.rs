//! The thread-per-core `mio` event loops holding the client sockets, fed
//! through [`crate::bus`] by the Redis threads (started by [`crate::server`]).
//!
//! Two halves: the sans-io state of a loop's connections ([`machine`], over
//! [`conn`], [`connections`], [`registry`], [`delivery`], [`send_queue`],
//! [`timer`] and [`echo`]), which takes bytes, answers and time and leaves
//! actions; and its driver ([`event_loop`], with the [`sockets`]), which
//! makes every system call and posts to the other threads.

pub mod conn;
pub mod connections;
pub mod delivery;
pub mod echo;
pub mod event_loop;
pub mod machine;
pub mod registry;
pub mod send_queue;
pub mod sockets;
pub mod timer;

pub use event_loop::{EventLoop, Shared, WAKER};
