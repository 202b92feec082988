//! # freeim-loadtest
//!
//! The load generator bundled with the FreeIM-compatible push node: real
//! WebSocket clients, authorised exactly as a business service would (tokens
//! from `imhelper::ImHelper::prev_connect_server`), and messages sent the
//! same way (`send_message`, `send_chan_message`, `send_broadcast_message`).
//!
//! One invocation runs one scenario (`idle`, `p2p`, `fanout`, `broadcast`,
//! `storm`, `churn`), bounded in count and time, and prints one report: a
//! table, and with `--json` one JSON line. `summary` and `chart` read those
//! lines back (medians; SVG charts).
//!
//! ## Processes
//! The invoking process is the *coordinator*: it plays the business
//! service (imhelper calls, presence reads), reads the node's `/proc`
//! figures, and re-executes itself as *worker* processes (hidden `worker`
//! subcommand) that hold the client sockets — a process may hold about
//! 19,000 sockets. Commands and reports travel as JSON lines over the
//! workers' stdin/stdout. Client sockets bind to 127.0.0.1, 127.0.0.2, …
//! in turn so that no (source, destination) pair runs out of ephemeral
//! ports. Latency is measured on `CLOCK_MONOTONIC`, which every process
//! shares: the sender stamps the message, the receiving worker subtracts.
//!
//! ## Layout
//! | file | job |
//! |---|---|
//! | `main.rs` | parses the command line, runs the scenario |
//! | `cli.rs` | the clap command line, durations |
//! | `plan.rs` | spreading clients over processes and source addresses (pure) |
//! | `wire.rs` | client-side WebSocket: request, response head, frames, probes (sans-io) |
//! | `inflate.rs` | permessage-deflate: a compressed message inflated (`--deflate`) |
//! | `engine.rs` | a worker's mio event loop over its connections |
//! | `pacing.rs` | slow-reader mode: the per-connection read token bucket (pure arithmetic) |
//! | `tokens.rs` | threads fetching connect tokens through imhelper |
//! | `worker.rs` | the worker process: config and commands in, reports out |
//! | `control.rs` | the coordinator ↔ worker messages |
//! | `fleet.rs` | starting, commanding and collecting the workers |
//! | `session.rs` | a scenario's shared setup, totals over workers, CPU/memory meter |
//! | `stats.rs` | the client counters: counted, reported and summed as one type |
//! | `senders.rs` | paced or flat-out message senders |
//! | `events.rs` | counting online/offline events |
//! | `procfs.rs` | `/proc` readers: RSS, CPU per thread, sockstat |
//! | `rss.rs` | node memory over a message run: the 100 ms RSS sampler, peak and phase figures |
//! | `hist.rs` | HDR latency histograms and their transport |
//! | `report.rs` | a run's report: table and JSON line |
//! | `charts.rs` | `summary` medians and SVG charts |
//! | `scenario/` | one file per scenario |

#![deny(missing_docs)]

pub mod charts;
pub mod cli;
pub mod control;
pub mod engine;
pub mod events;
pub mod fleet;
pub mod hist;
pub mod inflate;
pub mod pacing;
pub mod plan;
pub mod procfs;
pub mod report;
pub mod rss;
pub mod scenario;
pub mod senders;
pub mod session;
pub mod stats;
pub mod sys;
pub mod tokens;
pub mod wire;
pub mod worker;
