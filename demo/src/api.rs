//! The HTTP API: routing, one handler per endpoint, and the mapping of
//! failures to status codes. Independent of the HTTP server crate: a
//! request is a method, a path, a query string and a body; a reply is a
//! status, a content type and bytes.
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `POST /prev-connect` | `{"id"?, "name"?}` | `{"id", "name", "url", "server"}`; an id is assigned when absent |
//! | `GET /channels` | | `{"channels": [{"chan", "online"}]}`, busiest first |
//! | `POST /join` | `{"id", "chan"}` | `{"chan", "online"}`; creates the channel, tells its members |
//! | `POST /leave` | `{"id", "chan"}` | `{"chan", "online"}` |
//! | `POST /chan-message` | `{"id", "chan", "text", "mid"?}` | `{"ok", "mid"}`; the sender must have joined |
//! | `POST /direct` | `{"from", "to", "text", "receipt"?, "mid"?}` | `{"ok", "mid"}`; receipt (default on) comes over the sender's socket |
//! | `GET /history?chan=NAME` | | `{"messages": [...]}`: the channel's last 100 messages, oldest first |
//! | `GET /history?id=ME&with=OTHER` | | `{"messages": [...]}`: the last 100 direct messages between the two |
//! | `POST /broadcast` | `{"from"?, "text"}` | `{"ok"}` |
//! | `POST /force-offline` | `{"id", "by"?}` | `{"ok", "was_online"}` |
//! | `GET /online` | | `{"clients": [{"id", "name"}]}` |
//! | `GET /health` | | `{"status": "ok"}` (no Redis involved) |
//!
//! A join or a leave also asks for a `channels` push
//! ([`ChannelsPush`]); a channel or direct message is recorded in the
//! [`History`] before it is pushed.
//!
//! [`Api::route`] decides from the method and path alone (no I/O) whether
//! the answer is ready (the page, `/health`, `404`, `405`) or needs Redis,
//! in which case [`Api::run`] answers with blocking calls.
//!
//! Errors are `{"error": "<one line>"}`: `400` bad input, `403` not a
//! member, `404` unknown path, `405` wrong method, `408` body too slow and
//! `413` body too large (both from the server), `503` Redis unreachable,
//! every Redis connection busy, or no node running for the client's server.

use std::sync::Arc;

use imhelper::ImHelper;
use rand::Rng;
use serde_json::{json, Value};

use crate::assets;
use crate::channels::{self, ChannelsPush};
use crate::history::{Conversation, History};
use crate::input;
use crate::messages::{self, Sender};
use crate::presence::Directory;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Ids handed out by `POST /prev-connect` are drawn from this range (six
/// digits: easy to read aloud and type).
pub const ASSIGNED_IDS: std::ops::Range<i64> = 100_000..1_000_000;

/// An answer to send back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Whether the answer may be cached (static assets) or not (API).
    pub cacheable: bool,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            cacheable: false,
            body: value.to_string().into_bytes(),
        }
    }

    /// A JSON error answer `{"error": message}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &json!({ "error": message.into() }))
    }

    /// The body as text (for logs and tests).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A failed request: the status and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// What went wrong, for the client.
    pub message: String,
}

impl ApiError {
    /// A `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> ApiError {
        imhelper::Error::Redis(error).into()
    }
}

impl From<imhelper::Error> for ApiError {
    fn from(error: imhelper::Error) -> ApiError {
        let (status, message) = match &error {
            imhelper::Error::Config(m) => (400, m.clone()),
            imhelper::Error::Redis(e) => (503, format!("Redis is unreachable: {e}")),
            imhelper::Error::Unrouted { servers } => (
                503,
                format!(
                    "no FreeIM node is running for {}: start it (or fix --servers)",
                    servers.join(", ")
                ),
            ),
            imhelper::Error::PoolExhausted { .. } => (503, error.to_string()),
            imhelper::Error::InvalidArgument { .. } => (400, error.to_string()),
            imhelper::Error::MessageTooLarge { .. } => (413, error.to_string()),
            other => (500, other.to_string()),
        };
        ApiError { status, message }
    }
}

type Handled = Result<Value, ApiError>;

/// A handler of an endpoint that needs Redis.
#[derive(Clone, Copy, Debug)]
enum Handler {
    /// Reads the body (`POST`).
    Post(fn(&Api, &[u8]) -> Handled),
    /// Reads the query string (`GET`, `HEAD`).
    Get(fn(&Api, &str) -> Handled),
}

/// The endpoints that need Redis, by path.
const ENDPOINTS: [(&str, Handler); 10] = [
    ("/prev-connect", Handler::Post(Api::prev_connect)),
    ("/join", Handler::Post(Api::join)),
    ("/leave", Handler::Post(Api::leave)),
    ("/chan-message", Handler::Post(Api::chan_message)),
    ("/direct", Handler::Post(Api::direct)),
    ("/broadcast", Handler::Post(Api::broadcast)),
    ("/force-offline", Handler::Post(Api::force_offline)),
    ("/channels", Handler::Get(Api::channels)),
    ("/history", Handler::Get(Api::history)),
    ("/online", Handler::Get(Api::online)),
];

/// An endpoint that needs Redis, with the right method: what
/// [`Api::run`] answers.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    path: &'static str,
    handler: Handler,
}

/// What a request needs, decided from its method and path alone.
#[derive(Clone, Debug)]
pub enum Route {
    /// The answer is known now: the page and its scripts, `/health`, or a
    /// refusal (`404`, `405`).
    Ready(Reply),
    /// The answer needs Redis: [`Api::run`], which blocks.
    Redis(Endpoint),
}

/// The API's state: the cluster handle, the name directory, the history
/// and the channel-list push.
#[derive(Debug)]
pub struct Api {
    helper: Arc<ImHelper>,
    directory: Arc<Directory>,
    history: History,
    channels_push: ChannelsPush,
}

impl Api {
    /// An API on `helper`, naming clients from `directory`, recording
    /// messages in `history`, and asking `channels_push` for a push after
    /// every join and leave.
    pub fn new(
        helper: Arc<ImHelper>,
        directory: Arc<Directory>,
        history: History,
        channels_push: ChannelsPush,
    ) -> Api {
        Api {
            helper,
            directory,
            history,
            channels_push,
        }
    }

    /// Routes a request by its method and path (without the query).
    pub fn route(method: &str, path: &str) -> Route {
        let is_get = matches!(method, "GET" | "HEAD");
        if let Some(asset) = assets::find(path) {
            return Route::Ready(if is_get {
                Reply {
                    status: 200,
                    content_type: asset.content_type,
                    cacheable: true,
                    body: asset.body.as_bytes().to_vec(),
                }
            } else {
                method_not_allowed("GET")
            });
        }
        if path == "/health" {
            return Route::Ready(if is_get {
                Reply::json(200, &json!({"status": "ok"}))
            } else {
                method_not_allowed("GET")
            });
        }
        let Some(&(path, handler)) = ENDPOINTS.iter().find(|(known, _)| *known == path) else {
            return Route::Ready(Reply::error(404, format!("no such endpoint: {path}")));
        };
        match handler {
            Handler::Post(_) if method != "POST" => Route::Ready(method_not_allowed("POST")),
            Handler::Get(_) if !is_get => Route::Ready(method_not_allowed("GET")),
            _ => Route::Redis(Endpoint { path, handler }),
        }
    }

    /// Answers a routed request: `query` is the query string (without the
    /// `?`), `body` at most [`MAX_BODY_BYTES`]. Blocks on Redis.
    pub fn run(&self, endpoint: Endpoint, query: &str, body: &[u8]) -> Reply {
        let result = match endpoint.handler {
            Handler::Post(handler) => handler(self, body),
            Handler::Get(handler) => handler(self, query),
        };
        match result {
            Ok(value) => Reply::json(200, &value),
            Err(error) => {
                if error.status >= 500 {
                    log::warn!("{}: {}", endpoint.path, error.message);
                }
                Reply::error(error.status, error.message)
            }
        }
    }

    /// Answers one request, `target` being the path and the query string:
    /// [`route`](Api::route), then [`run`](Api::run) when Redis is needed.
    pub fn handle(&self, method: &str, target: &str, body: &[u8]) -> Reply {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        match Api::route(method, path) {
            Route::Ready(reply) => reply,
            Route::Redis(endpoint) => self.run(endpoint, query, body),
        }
    }

    fn sender(&self, id: i64) -> (i64, String) {
        (id, self.directory.name_of(id))
    }

    fn prev_connect(&self, body: &[u8]) -> Handled {
        let request: input::PrevConnect = input::parse(body).map_err(ApiError::bad_request)?;
        let id = match request.id {
            Some(id) => input::id("id", id).map_err(ApiError::bad_request)?,
            None => rand::rng().random_range(ASSIGNED_IDS),
        };
        let name = match request.name.as_deref() {
            Some(name) => input::name(name).map_err(ApiError::bad_request)?,
            None => messages::default_name(id),
        };
        let url = self.helper.prev_connect_server(id, &name)?;
        Ok(json!({
            "id": id, "name": name, "url": url, "server": self.helper.select_server(id),
        }))
    }

    fn channels(&self, _query: &str) -> Handled {
        Ok(json!({ "channels": channels::list(&self.helper)? }))
    }

    fn history(&self, query: &str) -> Handled {
        let conversation = input::history(query).map_err(ApiError::bad_request)?;
        Ok(json!({ "messages": self.history.recent(&conversation)? }))
    }

    fn join(&self, body: &[u8]) -> Handled {
        let (id, chan) = membership(body)?;
        self.helper.join_chan(id, &[&chan])?;
        self.channels_push.changed();
        let (id, name) = self.sender(id);
        let notice =
            messages::membership(true, &Sender { id, name: &name }, &chan, messages::now_ms());
        self.helper.send_chan_message(0, &chan, &notice)?;
        let online = self.helper.get_chan_online(&chan)?;
        Ok(json!({ "chan": chan, "online": online }))
    }

    fn leave(&self, body: &[u8]) -> Handled {
        let (id, chan) = membership(body)?;
        self.helper.leave_chan(id, &[&chan])?;
        self.channels_push.changed();
        let (id, name) = self.sender(id);
        let notice = messages::membership(
            false,
            &Sender { id, name: &name },
            &chan,
            messages::now_ms(),
        );
        self.helper.send_chan_message(0, &chan, &notice)?;
        let online = self.helper.get_chan_online(&chan)?;
        Ok(json!({ "chan": chan, "online": online }))
    }

    fn chan_message(&self, body: &[u8]) -> Handled {
        let request: input::ChanMessage = input::parse(body).map_err(ApiError::bad_request)?;
        let id = input::id("id", request.id).map_err(ApiError::bad_request)?;
        let chan = input::chan(&request.chan).map_err(ApiError::bad_request)?;
        let text = input::text(&request.text).map_err(ApiError::bad_request)?;
        let mid = input::mid(request.mid.as_deref()).map_err(ApiError::bad_request)?;
        if !self.helper.get_chan_list_by_client_id(id)?.contains(&chan) {
            return Err(ApiError {
                status: 403,
                message: format!("{id} is not in #{chan}: join it first"),
            });
        }
        let (id, name) = self.sender(id);
        let message = messages::chan(
            &Sender { id, name: &name },
            &chan,
            text,
            &mid,
            messages::now_ms(),
        );
        self.history
            .record(&Conversation::Chan(chan.clone()), &message)?;
        self.helper.send_chan_message(id, &chan, &message)?;
        Ok(json!({ "ok": true, "mid": mid }))
    }

    fn direct(&self, body: &[u8]) -> Handled {
        let request: input::Direct = input::parse(body).map_err(ApiError::bad_request)?;
        let from = input::id("from", request.from).map_err(ApiError::bad_request)?;
        let to = input::id("to", request.to).map_err(ApiError::bad_request)?;
        if from == to {
            return Err(ApiError::bad_request("to must differ from from"));
        }
        let text = input::text(&request.text).map_err(ApiError::bad_request)?;
        let mid = input::mid(request.mid.as_deref()).map_err(ApiError::bad_request)?;
        let (from, name) = self.sender(from);
        let message = messages::direct(
            &Sender {
                id: from,
                name: &name,
            },
            to,
            text,
            &mid,
            messages::now_ms(),
        );
        self.history
            .record(&Conversation::direct(from, to), &message)?;
        self.helper
            .send_message(from, &[to], &message, request.receipt.unwrap_or(true))?;
        Ok(json!({ "ok": true, "mid": mid }))
    }

    fn broadcast(&self, body: &[u8]) -> Handled {
        let request: input::Broadcast = input::parse(body).map_err(ApiError::bad_request)?;
        let text = input::text(&request.text).map_err(ApiError::bad_request)?;
        let from = match request.from {
            Some(id) => Some(self.sender(input::id("from", id).map_err(ApiError::bad_request)?)),
            None => None,
        };
        let sender = from.as_ref().map(|(id, name)| Sender { id: *id, name });
        let message = messages::announcement(sender.as_ref(), text, messages::now_ms());
        self.helper.send_broadcast_message(&message)?;
        Ok(json!({ "ok": true }))
    }

    fn force_offline(&self, body: &[u8]) -> Handled {
        let request: input::ForceOffline = input::parse(body).map_err(ApiError::bad_request)?;
        let id = input::id("id", request.id).map_err(ApiError::bad_request)?;
        let by = match request.by {
            Some(by) => Some(self.sender(input::id("by", by).map_err(ApiError::bad_request)?)),
            None => None,
        };
        let was_online = self.helper.has_online(id)?;
        if was_online {
            // Same pub/sub channel, same order: the notice reaches the
            // sockets before the node closes them.
            let by = by.as_ref().map(|(id, name)| Sender { id: *id, name });
            self.helper.send_message(
                0,
                &[id],
                &messages::kicked(by.as_ref(), messages::now_ms()),
                false,
            )?;
            self.helper.force_offline(id)?;
        }
        Ok(json!({ "ok": true, "was_online": was_online }))
    }

    fn online(&self, _query: &str) -> Handled {
        let mut ids = self.helper.get_client_list_by_online()?;
        ids.sort_unstable();
        let clients: Vec<Value> = ids
            .into_iter()
            .map(|id| json!({"id": id, "name": self.directory.name_of(id)}))
            .collect();
        Ok(json!({ "clients": clients }))
    }
}

fn membership(body: &[u8]) -> Result<(i64, String), ApiError> {
    let request: input::Membership = input::parse(body).map_err(ApiError::bad_request)?;
    let id = input::id("id", request.id).map_err(ApiError::bad_request)?;
    let chan = input::chan(&request.chan).map_err(ApiError::bad_request)?;
    Ok((id, chan))
}

fn method_not_allowed(allowed: &str) -> Reply {
    Reply::error(405, format!("method not allowed: use {allowed}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imhelper::ImHelperOptions;

    /// An API whose Redis is a closed port: every path that needs no Redis
    /// can be checked without one.
    fn api() -> Api {
        let (url, timeout) = (
            "redis://127.0.0.1:1/",
            std::time::Duration::from_millis(200),
        );
        let mut options = ImHelperOptions::new(url, vec!["127.0.0.1:6001".into()]);
        options.io_timeout = timeout;
        let helper = Arc::new(ImHelper::new(options).unwrap());
        let history = History::new(url.parse().unwrap(), timeout, 1);
        // The push task never runs: nothing here gets past validation.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let push = ChannelsPush::start(Arc::clone(&helper), runtime.handle());
        Api::new(helper, Arc::new(Directory::new()), history, push)
    }

    #[test]
    fn static_assets_are_served() {
        let api = api();
        for path in [
            "/",
            "/index.html",
            "/app.js",
            "/style.css",
            "/freeim-client.js",
        ] {
            let reply = api.handle("GET", path, b"");
            assert_eq!(reply.status, 200, "{path}");
            assert!(!reply.body.is_empty());
        }
        assert_eq!(
            api.handle("GET", "/", b"").content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(api.handle("POST", "/app.js", b"").status, 405);
    }

    #[test]
    fn unknown_paths_and_methods() {
        let api = api();
        let reply = api.handle("GET", "/nope", b"");
        assert_eq!(reply.status, 404);
        assert!(reply.text().contains("no such endpoint"));
        assert_eq!(api.handle("GET", "/join", b"").status, 405);
        assert_eq!(api.handle("POST", "/channels", b"").status, 405);
        assert_eq!(api.handle("GET", "/health", b"").status, 200);
        assert!(matches!(Api::route("GET", "/health"), Route::Ready(_)));
        assert!(matches!(Api::route("GET", "/history"), Route::Redis(_)));
    }

    #[test]
    fn bad_history_queries_are_400() {
        let api = api();
        for target in ["/history", "/history?chan=a%20b", "/history?id=1&with=1"] {
            let reply = api.handle("GET", target, b"");
            assert_eq!(reply.status, 400, "{target}: {}", reply.text());
        }
    }

    #[test]
    fn bad_input_is_400_before_redis_is_touched() {
        let api = api();
        for (path, body) in [
            ("/prev-connect", r#"{"id":-3}"#),
            ("/prev-connect", r#"{"name":""}"#),
            ("/prev-connect", "[1,2]"),
            ("/join", r#"{"id":1}"#),
            ("/join", r#"{"id":1,"chan":"a b"}"#),
            ("/leave", r#"{"id":0,"chan":"a"}"#),
            ("/chan-message", r#"{"id":1,"chan":"a","text":"  "}"#),
            (
                "/chan-message",
                r#"{"id":1,"chan":"a","text":"x","mid":"<b>"}"#,
            ),
            ("/direct", r#"{"from":1,"to":1,"text":"me"}"#),
            ("/direct", r#"{"from":1,"to":2}"#),
            ("/broadcast", r#"{"text":""}"#),
            ("/broadcast", r#"{"from":-1,"text":"x"}"#),
            ("/force-offline", r#"{"id":"7"}"#),
            ("/force-offline", "{"),
        ] {
            assert!(
                matches!(Api::route("POST", path), Route::Redis(_)),
                "{path}"
            );
            let reply = api.handle("POST", path, body.as_bytes());
            assert_eq!(reply.status, 400, "{path} {body}: {}", reply.text());
            let error: Value = serde_json::from_slice(&reply.body).unwrap();
            let message = error["error"].as_str().unwrap();
            assert!(!message.is_empty() && !message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn redis_down_is_503() {
        let reply = api().handle("GET", "/online", b"");
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(reply.text().contains("Redis is unreachable"));
    }
}
