//! End-to-end harness: real `freeim-server` processes, real Redis (one
//! `redis-server` or a Redis Cluster: `testkit::TestRedis`) and real WebSocket clients (tungstenite over TCP).
//!
//! | file | concern |
//! |---|---|
//! | `node.rs` | `freeim-server` processes: free ports, [`Node`], clusters, a node still serving |
//! | `client.rs` | tungstenite [`Client`]s, raw tokens, `ImHelper` wiring |
//! | `raw_ws.rs` | the hand-made [`RawWs`] client, raw frames and upgrade requests |
//! | `deflate.rs` | permessage-deflate for test clients: compress, inflate, the offer |
//! | `redis.rs` | the nodes' names, Redis reads, publishing, the pub/sub [`Spy`] |
//! | `events.rs` | presence events: made, awaited, sorted |
//! | `exits.rs` | processes that must fail: exit code and stderr |
//! | `admin.rs` | the admin endpoint: `GET`, metric values |
//!
//! Everything is re-exported here, so a suite needs only `use common::*;`.

#![allow(dead_code)] // each test binary uses a different part of the harness

mod admin;
mod client;
mod deflate;
mod events;
mod exits;
mod node;
mod raw_ws;
mod redis;

use std::time::Duration;

// A suite that uses nothing of a file would warn of its re-export.
#[allow(unused_imports)]
pub use self::{
    admin::*, client::*, deflate::*, events::*, exits::*, node::*, raw_ws::*, redis::*,
};
pub use testkit::{wait_until, TestRedis};

/// How long a test waits for something that should happen promptly.
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// A short wait for things that must *not* happen, when no marker can prove it.
pub const QUIET: Duration = Duration::from_millis(300);
