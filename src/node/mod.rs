//! The thread-per-core `mio` event loops holding the client sockets, fed
//! through [`crate::bus`] by the Redis threads (started by [`crate::server`]).

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
