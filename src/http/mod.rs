//! HTTP/1.1 WebSocket upgrade handling, sans-io: the request head in, a
//! parsed request or a rejection out, and the response bytes to write.
//!
//! ## Layout
//! - [`upgrade`]: [`parse_upgrade`] validates a client's opening handshake
//!   (RFC 6455 §4.2.1) and extracts the path, `token` query parameter,
//!   `Origin` and whether [`HEARTBEAT_SUBPROTOCOL`] is offered; [`Rejection`]
//!   says why a request was refused.
//! - [`origin`]: [`Origin`] (RFC 6454 comparison) and [`OriginPolicy`], the
//!   `--allowed-origins` / `--require-origin` check (403).
//! - [`permessage_deflate`]: the `Sec-WebSocket-Extensions` offers (RFC 7692
//!   §7.1) and the [`PerMessageDeflate`] accepted.
//! - [`response`]: the `101 Switching Protocols` answer (naming the selected
//!   subprotocol and extension, if any) and error responses.
//!
//! ## Limits
//! The only limit on a request head is its size, `--max-header-bytes`
//! (431 beyond it). Nothing inside it has a cap of its own: not the number
//! of header fields (a field line takes at least 3 bytes, `a:` and a line
//! feed, so a head holds fewer than `max_header_bytes / 3` of them), nor the
//! length of the path, the query, the token or any header value.

pub mod origin;
pub mod permessage_deflate;
pub mod response;
pub mod upgrade;

pub use origin::{InvalidOrigin, Origin, OriginPolicy};
pub use permessage_deflate::PerMessageDeflate;
pub use response::{accept_response, rejection_response};
pub use upgrade::{
    accept_key, parse_upgrade, Rejection, UpgradeRequest, HEARTBEAT_SUBPROTOCOL,
    MIN_FIELD_LINE_BYTES,
};
