//! Where Redis is and how to reach it, for every long-lived Redis connection
//! of the FreeIM node and of `imhelper`.
//!
//! One URL names the deployment, in the same form for both:
//!
//! | form | meaning |
//! |---|---|
//! | `redis://[[user]:password@]host[:port][/db]` | one Redis server (port 6379 by default) |
//! | `rediss://…` | the same over TLS |
//! | `unix:///path/to/redis.sock` | a Unix socket |
//! | `redis+sentinel://[[user]:password@]host:port[,host:port…]/master_name[/db]` | the primary that these Redis Sentinels name `master_name` |
//! | `rediss+sentinel://…` | the same, TLS to the sentinels and the primary |
//! | `redis+cluster://[[user]:password@]host:port[,host:port…]/` | a Redis Cluster, found through these seed nodes (database 0 only) |
//! | `rediss+cluster://…` | the same over TLS |
//!
//! Query parameters: `ssl_ca_certs=/path/ca.pem` trusts that CA (PEM) for TLS
//! instead of the system's roots (redis-py's name for it);
//! `sentinel_password=…` (and `sentinel_username=…`) authenticate to the
//! sentinels when they need it. The user and password in front of the `@` are
//! the primary's. Passwords never appear in [`RedisUrl`]'s `Display` or
//! `Debug` output.
//!
//! [`RedisUrl::connect`] resolves the address again on every call: a DNS
//! name is looked up anew, and a Sentinel URL asks the sentinels (in order)
//! for the current primary and checks with `ROLE` that it is one, so callers
//! that reconnect after a failure follow a failover or a moved DNS name by
//! themselves. Every step is bounded by the caller's timeout, and every TCP
//! socket gets keepalive and `TCP_USER_TIMEOUT` ([`KEEPALIVE`]).
//!
//! # Layout
//!
//! | file | job |
//! |---|---|
//! | `address.rs` | [`RedisUrl`]: parsing, validation, redaction |
//! | `connect.rs` | resolving the primary (Sentinel), `redis::Connection`s with timeouts and keepalive |
//! | `stream.rs` | [`Stream`]: a raw TCP, TLS or Unix byte stream, for callers with their own RESP reader |
//! | `subscription.rs` | [`Subscription`]: a pub/sub connection that proves itself alive with `PING` |
//! | `failover.rs` | [`FailoverWatch`]: following Sentinel's `+switch-master` |
//! | `cluster.rs` | Redis Cluster: the master of a hash slot, a `redis` cluster connection |

#![deny(missing_docs)]

mod address;
mod cluster;
mod connect;
mod failover;
mod stream;
mod subscription;

pub use address::{AddressError, RedisUrl};
pub use connect::KEEPALIVE;
pub use failover::FailoverWatch;
pub use stream::{Shutdown, Stream};
pub use subscription::Subscription;
