//! # freeim-server
//!
//! A FreeIM-compatible WebSocket push node. Clients connect with a one-time
//! token issued by a business service through the `imhelper` crate; the
//! business service then pushes messages to them through Redis pub/sub.
//!
//! ## Layout
//! - [`ws`]: the RFC 6455 frame codec (sans-io: bytes in, events out).
//! - [`http`]: the HTTP/1.1 upgrade request parser and response builders.
//! - [`names`]: this node's place in the cluster and its Redis names (the
//!   wire contract itself is the `freeim-protocol` crate).
//! - [`config`]: command line and environment settings.
//! - [`metrics`] and [`admin`]: counters, and the `/metrics` and `/healthz` endpoints.
//! - [`store`]: the Redis side: the subscriber thread and the worker that
//!   pipelines token checks, presence and events.
//! - [`bus`]: the types that cross threads (below `node` and `store`, which
//!   never import each other), and the layer rules.
//! - [`node`]: the thread-per-core `mio` event loops and their connections.
//! - [`server`]: the process: wiring, listeners, signals, drain.
//! - [`throttle`]: rate limiting for log lines peers can trigger.

#![deny(missing_docs)]

pub mod admin;
pub mod bus;
pub mod config;
pub mod http;
pub mod metrics;
pub mod names;
pub mod node;
pub mod server;
pub mod store;
pub mod throttle;
pub mod upgrade;
pub mod ws;
