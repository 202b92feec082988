//! The JSON messages the demo pushes to clients through the nodes, and the
//! default display names. Pure: no I/O, unit-tested.
//!
//! Every message is a JSON object with a `type` field, so a page can tell
//! them apart:
//!
//! | `type` | sent with | fields |
//! |---|---|---|
//! | `chan` | `send_chan_message` | `chan`, `from`, `name`, `text`, `mid`, `at` |
//! | `direct` | `send_message` (receipt on) | `from`, `name`, `to`, `text`, `mid`, `at` |
//! | `presence` | `send_broadcast_message` | `event` (`online`/`offline`), `id`, `name`, `at` |
//! | `system` | broadcast, channel or direct | `event` (`announcement`, `joined`, `left`, `kicked`), `text`, and `chan`, `from`, `name` when they apply |
//! | `channels` | `send_broadcast_message` | `channels`: `[{"chan", "online"}]`, as `GET /channels` lists them |
//!
//! Receipts are written by the *node*, in FreeIM's shape and without a
//! `type`: `{"content": "<the direct message's JSON text>", "receipt":
//! "发送成功"}` (delivered) or `"用户不在线"` (receiver offline). The page
//! treats an object with a `receipt` field as type `receipt`.

use serde::Serialize;
use serde_json::{json, Value};

const ADJECTIVES: [&str; 16] = [
    "Amber", "Brisk", "Calm", "Dapper", "Eager", "Fuzzy", "Gentle", "Happy", "Indigo", "Jolly",
    "Keen", "Lucky", "Mellow", "Nimble", "Quiet", "Rosy",
];
const ANIMALS: [&str; 16] = [
    "Fox", "Otter", "Heron", "Lynx", "Panda", "Robin", "Koala", "Badger", "Falcon", "Gecko",
    "Moose", "Newt", "Owl", "Puffin", "Seal", "Wren",
];

/// The name shown for `id` when the client chose none: two words picked by
/// the id, so the same id always gets the same name.
///
/// # Example
///
/// ```
/// assert_eq!(freeim_demo::messages::default_name(0), "Amber Fox");
/// assert_eq!(freeim_demo::messages::default_name(17), "Brisk Otter");
/// ```
pub fn default_name(id: i64) -> String {
    let n = id.unsigned_abs();
    format!(
        "{} {}",
        ADJECTIVES[(n % 16) as usize],
        ANIMALS[((n / 16) % 16) as usize]
    )
}

/// Milliseconds since the Unix epoch, for the `at` fields.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Who sent a message: the client's id and display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sender<'a> {
    /// The sender's client id.
    pub id: i64,
    /// The sender's display name.
    pub name: &'a str,
}

/// A channel message: `{"type":"chan", …}`.
pub fn chan(from: &Sender<'_>, chan: &str, text: &str, mid: &str, at: u64) -> Value {
    json!({
        "type": "chan", "chan": chan, "from": from.id, "name": from.name,
        "text": text, "mid": mid, "at": at,
    })
}

/// A direct message: `{"type":"direct", …}`.
pub fn direct(from: &Sender<'_>, to: i64, text: &str, mid: &str, at: u64) -> Value {
    json!({
        "type": "direct", "from": from.id, "name": from.name, "to": to,
        "text": text, "mid": mid, "at": at,
    })
}

/// Presence change: `{"type":"presence","event":"online"|"offline", …}`.
pub fn presence(online: bool, id: i64, name: &str, at: u64) -> Value {
    let event = if online { "online" } else { "offline" };
    json!({ "type": "presence", "event": event, "id": id, "name": name, "at": at })
}

/// An announcement to everyone, from a client or (`from = None`) the system.
pub fn announcement(from: Option<&Sender<'_>>, text: &str, at: u64) -> Value {
    let mut message = json!({ "type": "system", "event": "announcement", "text": text, "at": at });
    if let Some(from) = from {
        message["from"] = json!(from.id);
        message["name"] = json!(from.name);
    }
    message
}

/// A notice to a channel that someone joined (`joined = true`) or left it.
pub fn membership(joined: bool, who: &Sender<'_>, chan: &str, at: u64) -> Value {
    let (event, verb) = if joined {
        ("joined", "joined")
    } else {
        ("left", "left")
    };
    json!({
        "type": "system", "event": event, "chan": chan, "from": who.id, "name": who.name,
        "text": format!("{} {verb} #{chan}", who.name), "at": at,
    })
}

/// The channel list pushed to everyone when it changed:
/// `{"type":"channels","channels":[{"chan","online"},…]}`, the entries as
/// [`channels::list`](crate::channels::list) makes them.
pub fn channels(list: &[Value]) -> Value {
    json!({ "type": "channels", "channels": list })
}

/// The notice sent to a client right before it is forced offline, so its
/// page stops reconnecting on its own.
pub fn kicked(by: Option<&Sender<'_>>, at: u64) -> Value {
    let text = match by {
        Some(by) => format!("{} disconnected you", by.name),
        None => "you were disconnected".to_string(),
    };
    let mut message = json!({ "type": "system", "event": "kicked", "text": text, "at": at });
    if let Some(by) = by {
        message["from"] = json!(by.id);
        message["name"] = json!(by.name);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Sender<'static> = Sender {
        id: 7,
        name: "Alice",
    };

    #[test]
    fn every_message_has_a_type() {
        let all = [
            chan(&ALICE, "room", "hi", "m1", 1),
            direct(&ALICE, 8, "hi", "m2", 1),
            presence(true, 7, "Alice", 1),
            presence(false, 7, "Alice", 1),
            announcement(Some(&ALICE), "hello all", 1),
            announcement(None, "maintenance", 1),
            membership(true, &ALICE, "room", 1),
            membership(false, &ALICE, "room", 1),
            kicked(Some(&ALICE), 1),
            kicked(None, 1),
        ];
        assert_eq!(channels(&[])["type"], "channels");
        for message in all {
            let kind = message["type"].as_str().unwrap();
            assert!(
                ["chan", "direct", "presence", "system"].contains(&kind),
                "{message}"
            );
            assert_eq!(message["at"], 1);
        }
    }

    #[test]
    fn fields_are_where_the_page_reads_them() {
        let m = chan(&ALICE, "room", "hi", "m1", 5);
        assert_eq!(
            m,
            json!({"type":"chan","chan":"room","from":7,"name":"Alice","text":"hi","mid":"m1","at":5})
        );
        let d = direct(&ALICE, 8, "psst", "m2", 5);
        assert_eq!(d["to"], 8);
        assert_eq!(d["from"], 7);
        let p = presence(false, 9, "Bob", 5);
        assert_eq!(p["event"], "offline");
        assert_eq!(p["id"], 9);
        let j = membership(true, &ALICE, "room", 5);
        assert_eq!(j["text"], "Alice joined #room");
        assert_eq!(j["chan"], "room");
        assert!(announcement(None, "x", 5).get("from").is_none());
        assert_eq!(kicked(Some(&ALICE), 5)["text"], "Alice disconnected you");
    }

    #[test]
    fn default_names_are_stable_and_varied() {
        assert_eq!(default_name(123_456), default_name(123_456));
        let distinct: std::collections::HashSet<String> = (0..256).map(default_name).collect();
        assert_eq!(distinct.len(), 256);
        assert!(!default_name(-5).is_empty());
    }
}
