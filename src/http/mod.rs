//! HTTP/1.1 WebSocket upgrade handling, sans-io: the request head in, a
//! parsed request or a rejection out, and the response bytes to write.
//!
//! ## Layout
//! - [`upgrade`]: [`parse_upgrade`] validates a client's opening handshake
//!   (RFC 6455 §4.2.1) and extracts the path, `token` query parameter and
//!   `Origin`; [`Rejection`] says why a request was refused.
//! - [`response`]: the `101 Switching Protocols` answer and error responses.

pub mod response;
pub mod upgrade;

pub use response::{accept_response, rejection_response};
pub use upgrade::{accept_key, parse_upgrade, Rejection, UpgradeRequest};
