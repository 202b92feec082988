//! The HTTP API: routing, one handler per endpoint, and the mapping of
//! failures to status codes. Independent of the HTTP server crate: a
//! request is a method, a path and a body; a reply is a status, a content
//! type and bytes.
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `POST /prev-connect` | `{"id"?, "name"?}` | `{"id", "name", "url", "server"}`; an id is assigned when absent |
//! | `GET /channels` | | `{"channels": [{"chan", "online"}]}`, busiest first |
//! | `POST /join` | `{"id", "chan"}` | `{"chan", "online"}`; creates the channel, tells its members |
//! | `POST /leave` | `{"id", "chan"}` | `{"chan", "online"}` |
//! | `POST /chan-message` | `{"id", "chan", "text", "mid"?}` | `{"ok", "mid"}`; the sender must have joined |
//! | `POST /direct` | `{"from", "to", "text", "receipt"?, "mid"?}` | `{"ok", "mid"}`; receipt (default on) comes over the sender's socket |
//! | `POST /broadcast` | `{"from"?, "text"}` | `{"ok"}` |
//! | `POST /force-offline` | `{"id", "by"?}` | `{"ok", "was_online"}` |
//! | `GET /online` | | `{"clients": [{"id", "name"}]}` |
//! | `GET /health` | | `{"status": "ok"}` (no Redis involved) |
//!
//! Errors are `{"error": "<one line>"}`: `400` bad input, `403` not a
//! member, `404` unknown path, `405` wrong method, `413` body too large,
//! `503` Redis unreachable, every Redis connection busy, or no node running
//! for the client's server.

use std::sync::Arc;

use imhelper::ImHelper;
use rand::Rng;
use serde_json::{json, Value};

use crate::assets;
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

/// The API's state: the cluster handle and the name directory.
#[derive(Debug)]
pub struct Api {
    helper: Arc<ImHelper>,
    directory: Arc<Directory>,
}

impl Api {
    /// An API on `helper`, naming clients from `directory`.
    pub fn new(helper: Arc<ImHelper>, directory: Arc<Directory>) -> Api {
        Api { helper, directory }
    }

    /// Answers one request. `path` excludes the query string; `body` is at
    /// most [`MAX_BODY_BYTES`] (the server answers `413` beyond that).
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        if let Some(asset) = assets::find(path) {
            return match method {
                "GET" | "HEAD" => Reply {
                    status: 200,
                    content_type: asset.content_type,
                    cacheable: true,
                    body: asset.body.as_bytes().to_vec(),
                },
                _ => method_not_allowed("GET"),
            };
        }
        let (allowed, result) = match path {
            "/prev-connect" => ("POST", self.on_post(method, body, Api::prev_connect)),
            "/join" => ("POST", self.on_post(method, body, Api::join)),
            "/leave" => ("POST", self.on_post(method, body, Api::leave)),
            "/chan-message" => ("POST", self.on_post(method, body, Api::chan_message)),
            "/direct" => ("POST", self.on_post(method, body, Api::direct)),
            "/broadcast" => ("POST", self.on_post(method, body, Api::broadcast)),
            "/force-offline" => ("POST", self.on_post(method, body, Api::force_offline)),
            "/channels" => ("GET", self.on_get(method, Api::channels)),
            "/online" => ("GET", self.on_get(method, Api::online)),
            "/health" => ("GET", self.on_get(method, |_| Ok(json!({"status": "ok"})))),
            _ => return Reply::error(404, format!("no such endpoint: {path}")),
        };
        match result {
            None => method_not_allowed(allowed),
            Some(Ok(value)) => Reply::json(200, &value),
            Some(Err(error)) => {
                if error.status >= 500 {
                    log::warn!("{method} {path}: {}", error.message);
                }
                Reply::error(error.status, error.message)
            }
        }
    }

    fn on_post(
        &self,
        method: &str,
        body: &[u8],
        handler: fn(&Api, &[u8]) -> Handled,
    ) -> Option<Handled> {
        (method == "POST").then(|| handler(self, body))
    }

    fn on_get(&self, method: &str, handler: impl Fn(&Api) -> Handled) -> Option<Handled> {
        matches!(method, "GET" | "HEAD").then(|| handler(self))
    }

    fn sender(&self, id: i64) -> (i64, String) {
        (id, self.directory.name_of(id))
    }

    fn prev_connect(&self, body: &[u8]) -> Handled {
        let request: input::PrevConnect = input::parse(body).map_err(ApiError::bad_request)?;
        let id = match request.id {
            Some(id) => input::id("id", id).map_err(ApiError::bad_request)?,
            None => rand::thread_rng().gen_range(ASSIGNED_IDS),
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

    fn channels(&self) -> Handled {
        let mut channels = self.helper.get_chan_list()?;
        channels.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.chan.cmp(&b.chan)));
        let channels: Vec<Value> = channels
            .into_iter()
            .map(|c| json!({"chan": c.chan, "online": c.online}))
            .collect();
        Ok(json!({ "channels": channels }))
    }

    fn join(&self, body: &[u8]) -> Handled {
        let (id, chan) = membership(body)?;
        self.helper.join_chan(id, &[&chan])?;
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

    fn online(&self) -> Handled {
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
        let mut options =
            ImHelperOptions::new("redis://127.0.0.1:1/", vec!["127.0.0.1:6001".into()]);
        options.io_timeout = std::time::Duration::from_millis(200);
        Api::new(
            Arc::new(ImHelper::new(options).unwrap()),
            Arc::new(Directory::new()),
        )
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
