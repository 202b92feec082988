//! `freeim-demo`: a small business service in front of a FreeIM cluster,
//! written the way a real one would be: an HTTP API served by axum on tokio
//! whose handlers make *blocking* calls into [`imhelper`] on tokio's
//! blocking pool (the way a sync service lives in an async server), plus a
//! chat page and a dependency-free JavaScript client, embedded in the
//! binary.
//!
//! The browser never sends anything meaningful over its WebSocket: it asks
//! this service over HTTP (`POST /prev-connect`, `/join`, `/chan-message`,
//! `/direct`, …), and the service tells the nodes through Redis what to
//! push. The nodes' online/offline events come back through the event bus,
//! and the service broadcasts them to every page. The service keeps the
//! recent messages of each channel and direct conversation in Redis
//! ([`history`]) and pushes the channel list to everyone when it changes
//! ([`channels`]). See [`api`] for the endpoints and [`messages`] for what
//! the pages receive.
//!
//! # Example
//!
//! ```no_run
//! use freeim_demo::{Demo, Settings};
//!
//! let settings = Settings::new("127.0.0.1:8080".parse().unwrap(), "redis://127.0.0.1:6379/", "127.0.0.1:6001");
//! let demo = Demo::start(settings)?;
//! println!("open {}", demo.url());
//! demo.wait();
//! # Ok::<(), freeim_demo::StartError>(())
//! ```
//!
//! # Layout
//!
//! | file | job |
//! |---|---|
//! | `main.rs` | the binary: settings, start, one-line errors |
//! | `config.rs` | [`Config`] (command line and environment) → [`Settings`] |
//! | `server.rs` | [`Demo`]: the tokio runtime and its blocking pool, the hyper accept loop (keep-alive, head timeout), graceful stop |
//! | `http.rs` | the axum handler: body size and time limits (`413`, `408`), blocking calls on the blocking pool, reply headers |
//! | `api.rs` | routing and one handler per endpoint; errors → status codes |
//! | `input.rs` | request bodies, query strings and their validation (pure) |
//! | `messages.rs` | the JSON pushed to clients, display names (pure) |
//! | `history.rs` | the last 100 messages per channel and direct conversation, in Redis |
//! | `channels.rs` | the channel list, and its coalesced `channels` push |
//! | `presence.rs` | event bus → `presence` broadcasts; the name directory |
//! | `assets.rs` | the embedded page, `app.js`, `style.css`, `freeim-client.js` |
//! | `../static/` | those files' sources |

#![deny(missing_docs)]

pub mod api;
pub mod assets;
pub mod channels;
pub mod config;
pub mod history;
mod http;
pub mod input;
pub mod messages;
pub mod presence;
pub mod server;

pub use config::{Config, Settings};
pub use server::{Demo, StartError};
