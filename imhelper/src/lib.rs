//! `imhelper` drives FreeIM ImServer nodes through Redis, from any business
//! service, with blocking calls.
//!
//! It speaks FreeIM 2.x's Redis protocol byte for byte (see the project's
//! `docs/protocol.md`), so it drives the Rust ImServer and a .NET FreeIM ImServer
//! alike: it hands out connect tokens, publishes messages to the node that
//! holds each receiver, keeps channel membership in Redis with atomic Lua
//! scripts, reads presence, and listens to the nodes' online/offline events.
//!
//! Redis is named by one URL, in the same forms the nodes take: plain
//! `redis://`, TLS `rediss://` (with `?ssl_ca_certs=` for a private CA),
//! `unix://`, `redis+sentinel://` / `rediss+sentinel://`, and
//! `redis+cluster://host:port,host:port/` / `rediss+cluster://…` for a Redis
//! Cluster (see [`ImHelperOptions::redis_url`] and the [`redis_link`] crate
//! docs). Passwords in it are never logged.
//!
//! With a Redis Cluster the names are sharded (the project's
//! `docs/protocol.md`, `freeim_protocol::layout`): each node's keys and
//! channels carry its own hash tag, a client's token, presence and channel
//! memberships live with its owner node's, every Lua script touches one slot,
//! commands go out with `SPUBLISH`, cluster-wide reads visit every node's
//! partition and add up, and events come from every node's shard. Every
//! other URL keeps FreeIM's names, byte for byte.
//!
//! # Example
//!
//! ```no_run
//! use imhelper::{ImHelper, ImHelperOptions, PresenceEvent};
//!
//! # fn main() -> imhelper::Result<()> {
//! let helper = ImHelper::new(ImHelperOptions::new(
//!     "redis://127.0.0.1:6379/",
//!     // Every node's name, in the order of the nodes' own `--servers`.
//!     vec!["127.0.0.1:6001".to_string()],
//! ))?;
//!
//! // 1. A client asks the business service where to connect (over HTTP);
//! //    the service answers with a one-shot URL on the client's node.
//! let url = helper.prev_connect_server(42, "alice")?;
//! assert!(url.starts_with("ws://127.0.0.1:6001/ws?token="));
//!
//! // 2. Watch clients come and go (in a thread of its own).
//! let events = helper.events()?;
//! std::thread::spawn(move || {
//!     for event in events {
//!         match event {
//!             PresenceEvent::Online(c) => println!("{} ({}) is online", c.client_id, c.client_meta),
//!             PresenceEvent::Offline(c) => println!("{} went offline", c.client_id),
//!         }
//!     }
//! });
//!
//! // 3. Push messages: any serde-serialisable value, sent as JSON text.
//! helper.send_message(42, &[7, 8, 9], "hello", true)?;
//! helper.join_chan(42, &["room-1"])?;
//! helper.send_chan_message(42, "room-1", &serde_json::json!({"text": "hi, room"}))?;
//! helper.send_broadcast_message("maintenance at noon")?;
//!
//! // 4. Presence and channel reads.
//! if helper.has_online(7)? {
//!     println!("room-1 has {} members", helper.get_chan_online("room-1")?);
//! }
//! helper.force_offline(7)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors worth knowing
//!
//! Every publish checks how many nodes heard it. A node that is not running
//! (or a `servers` list that does not match the cluster's) shows up as
//! [`Error::Unrouted`] naming the servers nobody listened for, instead of
//! messages silently vanishing. While Redis is down every call fails with
//! [`Error::Redis`] within about [`ImHelperOptions::io_timeout`], and calls
//! work again on their own once Redis is back.
//!
//! One `ImHelper` never holds more than [`ImHelperOptions::max_connections`]
//! Redis connections (default 16), however many threads call it at once.
//! Calls beyond that wait in line; one that gets no connection within
//! [`ImHelperOptions::pool_wait`] fails with [`Error::PoolExhausted`]
//! without having sent anything, so it can be retried or shed.
//! [`ImHelper::stats`] shows the pool ([`PoolStats`]).
//!
//! # Inputs FreeIM treats specially
//!
//! Every operation takes the inputs FreeIM's ImHelper takes and treats them
//! as it does, or refuses them with a typed error before anything is sent;
//! each method's docs say which applies to it.
//!
//! | input | this helper | FreeIM 2.x |
//! |---|---|---|
//! | an empty name in `chans` of [`join_chan`](ImHelper::join_chan) / [`leave_chan`](ImHelper::leave_chan) | skipped | the same |
//! | an empty `chan` in [`leave_chan_clients`](ImHelper::leave_chan_clients) / [`clear_chan_client`](ImHelper::clear_chan_client) | nothing done (`0` removed) | the same |
//! | an empty `chan` in [`get_chan_client_list`](ImHelper::get_chan_client_list) / [`get_chan_online`](ImHelper::get_chan_online) | no members / `0`, Redis not asked | the same |
//! | an empty `chan` in [`send_chan_message`](ImHelper::send_chan_message) | [`Error::InvalidArgument`], nothing sent | broadcasts to everyone |
//! | an empty channel name in Redis (older versions of this helper wrote them) | left out of [`get_chan_list`](ImHelper::get_chan_list) / [`get_chan_list_by_client_id`](ImHelper::get_chan_list_by_client_id) | never written |
//! | no receivers, channels or ids; an empty batch | nothing sent | the same |
//! | `Online` / `Chan{chan}` fields that are not a non-zero id | left out of [`get_client_list_by_online`](ImHelper::get_client_list_by_online) / [`get_chan_client_list`](ImHelper::get_chan_client_list) | the same |
//! | client id `0` | the system as a sender (no receipts); accepted as a client, but never listed by the two reads above | the same |
//! | negative client ids | accepted, routed to the first server | the same |
//! | repeated receivers, channels or ids in a write | acted on once | the same |
//!
//! The options are normalised and checked once, by [`ImHelper::new`]
//! ([`Error::Config`] names the option): see [`ImHelperOptions`].
//!
//! # Bounded in time
//!
//! No call hangs: waiting for a connection is bounded by `pool_wait`, an
//! idle connection unused for over 1 s must answer `PING` within 1 s
//! before reuse (else a fresh one is opened), and every connect, read and
//! write by `io_timeout`. With a Redis Cluster, an operation that spans
//! several nodes' shards (the cluster-wide reads, `clear_chan_client`,
//! `leave_chan_clients` and `has_online_many` over several owners, a
//! publish to several nodes) makes one such call per shard, in turn.
//! The event thread proves its link alive every
//! [`ImHelperOptions::liveness`] / 3 of silence with `PING`, and replaces a
//! link that stops answering (see [`EventBus`]); a panicking callback is
//! caught, logged and counted, and later events are still delivered.
//!
//! # Layout
//!
//! One job per file:
//!
//! | file | job |
//! |---|---|
//! | `lib.rs` | crate docs and re-exports |
//! | `options.rs` | [`ImHelperOptions`], their defaults and validation |
//! | `error.rs` | [`Error`] and [`Result`] |
//! | `helper.rs` | the [`ImHelper`] value: construction, prefix, [`stats`](ImHelper::stats) |
//! | `shards.rs` | which node's names an operation uses (its owner's, or every partition's) and the hash slot its commands go to |
//! | `pool.rs` | the bounded connection pool: at most `max_connections`, each to the master of a slot, waiting in line up to `pool_wait`, idle checks, the one safe retry, [`PoolStats`] |
//! | `scripts.rs` | the join/leave/clear Lua scripts, in the layout's form |
//! | `connect.rs` | `select_server`, `prev_connect_server` (tokens) |
//! | `messages.rs` | `send_message` and its batch form `send_messages`, channel and broadcast messages: their checks and commands |
//! | `publish.rs` | the checked publish: the `on_send` hook, one pipeline, [`Error::Unrouted`]; [`on_send_panics`](ImHelper::on_send_panics) |
//! | `on_send.rs` | [`OnSend`] and [`ImSendEventArgs`], calling the hook with its panics caught |
//! | `presence.rs` | online reads and `force_offline` |
//! | `channels.rs` | channel membership: join, leave, `clear_chan_client`, reads |
//! | `events.rs` | [`EventBus`], [`EventStream`], their event types, caught callback panics, link health getters |
//! | `panics.rs` | the text of a caught callback panic |
//! | `listener.rs` | the subscriber threads behind both event forms (one per link): PING liveness, reconnects with backoff, link health counters |

#![deny(missing_docs)]

mod channels;
mod connect;
mod error;
mod events;
mod helper;
mod listener;
mod messages;
mod on_send;
mod options;
mod panics;
mod pool;
mod presence;
mod publish;
mod scripts;
mod shards;

pub use channels::ChanInfo;
pub use error::{Error, Result};
pub use events::{ClientEvent, EventBus, EventStream, PresenceEvent};
pub use helper::ImHelper;
pub use messages::DirectMessage;
pub use on_send::{ImSendEventArgs, OnSend};
pub use options::ImHelperOptions;
pub use pool::PoolStats;
