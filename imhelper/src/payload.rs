//! Wire payloads (`docs/protocol.md`, "Pub/sub channels" and "Keys"): builders for
//! what this crate writes, the parser for what nodes publish. Pure, no I/O.
//!
//! Every JSON text is produced by `serde_json`, so names, metadata and
//! messages are escaped correctly whatever they contain. Field order is
//! .NET's value-tuple order, `Item1`, `Item2`, …

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::ClientEvent;

/// An upper bound of [`receipt_len`] for a text of `text_len` bytes, without
/// building a receipt: escaped twice, a byte becomes at most 7 (`\u00XX`,
/// its backslash escaped again); the command around it is under 256 bytes.
/// (The node bounds its `--max-receipt-bytes` check the same way.)
pub(crate) fn receipt_len_bound(text_len: usize) -> usize {
    text_len.saturating_mul(7).saturating_add(256)
}

/// The longest receipt command a node can publish for `message_text`: a
/// Send command whose message is `{"content": text, "receipt": …}`, so the
/// text is JSON-escaped twice (FreeIM's receipt, as the node builds it for
/// `--max-receipt-bytes`), with the widest ids and the longer wording.
pub(crate) fn receipt_len(message_text: &str) -> Result<usize> {
    #[derive(Serialize)]
    struct Receipt<'a> {
        content: &'a str,
        receipt: &'a str,
    }
    let receipt = serde_json::to_string(&Receipt {
        content: message_text,
        receipt: "用户不在线",
    })?;
    Ok(send_command(i64::MIN, &[i64::MIN], &receipt, false)?.len())
}

/// Prefix of a channel (or broadcast) message on a node's command channel.
pub(crate) const CHAN_MESSAGE_PREFIX: &str = "__FreeIM__(ChanMessage)";

/// Prefix of a force-offline command on a node's command channel.
pub(crate) const FORCE_OFFLINE_PREFIX: &str = "__FreeIM__(ForceOffline)";

/// `(clientId, meta)`: the token value and the online/offline event payload.
#[derive(Serialize)]
struct TokenValue<'a> {
    #[serde(rename = "Item1")]
    client_id: i64,
    #[serde(rename = "Item2")]
    client_meta: &'a str,
}

/// The Send command.
#[derive(Serialize)]
struct SendCommand<'a> {
    #[serde(rename = "Item1")]
    sender: i64,
    #[serde(rename = "Item2")]
    receivers: &'a [i64],
    #[serde(rename = "Item3")]
    message: &'a str,
    #[serde(rename = "Item4")]
    receipt: bool,
}

/// The body of a Channel message, after [`CHAN_MESSAGE_PREFIX`].
#[derive(Serialize)]
struct ChanCommand<'a> {
    #[serde(rename = "Item1")]
    sender: i64,
    #[serde(rename = "Item2")]
    chan: Option<&'a str>,
    #[serde(rename = "Item3")]
    message: &'a str,
    /// This project's addition, sent with named channels only: the publisher
    /// announces membership changes, so Rust nodes may serve the message from
    /// their member cache. .NET nodes ignore the field.
    #[serde(rename = "Item4", skip_serializing_if = "std::ops::Not::not")]
    cacheable: bool,
}

/// An online/offline event as nodes publish it. Serde accepts the fields in
/// any order and ignores unknown ones; a `null` meta (what .NET writes for a
/// null string) reads as empty.
#[derive(Deserialize)]
struct EventPayload {
    #[serde(rename = "Item1")]
    client_id: i64,
    #[serde(rename = "Item2", default)]
    client_meta: Option<String>,
}

/// The value stored under `{prefix}Token{token}`: `{"Item1":id,"Item2":meta}`.
pub(crate) fn token_value(client_id: i64, client_meta: &str) -> Result<String> {
    Ok(serde_json::to_string(&TokenValue {
        client_id,
        client_meta,
    })?)
}

/// The message serialised as JSON text: what travels in `Item3` and what the
/// node writes, unchanged, as one WebSocket text frame.
pub(crate) fn message_text<T: Serialize + ?Sized>(message: &T) -> Result<String> {
    Ok(serde_json::to_string(message)?)
}

/// `{"Item1":sender,"Item2":[receivers],"Item3":"<message text>","Item4":receipt}`.
pub(crate) fn send_command(
    sender: i64,
    receivers: &[i64],
    message_text: &str,
    receipt: bool,
) -> Result<String> {
    Ok(serde_json::to_string(&SendCommand {
        sender,
        receivers,
        message: message_text,
        receipt,
    })?)
}

/// `__FreeIM__(ChanMessage){"Item1":sender,"Item2":chan|null,"Item3":"<message text>"}`,
/// plus `"Item4":true` for a named channel (see `ChanCommand::cacheable`).
/// `chan = None` is a broadcast.
pub(crate) fn chan_command(sender: i64, chan: Option<&str>, message_text: &str) -> Result<String> {
    let body = serde_json::to_string(&ChanCommand {
        sender,
        chan,
        message: message_text,
        cacheable: chan.is_some(),
    })?;
    Ok(format!("{CHAN_MESSAGE_PREFIX}{body}"))
}

/// `__FreeIM__(ForceOffline){clientId}`.
pub(crate) fn force_offline_command(client_id: i64) -> String {
    format!("{FORCE_OFFLINE_PREFIX}{client_id}")
}

/// Parses an online/offline event payload `{"Item1":id,"Item2":"meta"}`.
/// Only a JSON object is accepted (serde would also take the array form
/// `[id, "meta"]`, which no node writes).
pub(crate) fn parse_client_event(payload: &[u8]) -> Result<ClientEvent> {
    let bad = |why: String| {
        Error::BadEventPayload(format!("{why} in {:?}", String::from_utf8_lossy(payload)))
    };
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(bad("not a JSON object".into()));
    }
    let parsed: EventPayload = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    Ok(ClientEvent {
        client_id: parsed.client_id,
        client_meta: parsed.client_meta.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_escapes_the_text_twice() {
        let plain = message_text(&"x".repeat(1000)).unwrap();
        let quotes = message_text(&"\"".repeat(1000)).unwrap();
        // 1002 plain bytes fit once with ~100 bytes of command around them;
        // each quote (2 bytes as JSON text) is 8 bytes in the receipt.
        let (plain, quotes) = (receipt_len(&plain).unwrap(), receipt_len(&quotes).unwrap());
        assert!((1002..1200).contains(&plain), "{plain}");
        assert!((8000..8200).contains(&quotes), "{quotes}");
    }

    #[test]
    fn token_value_shape() {
        assert_eq!(
            token_value(42, "alice").unwrap(),
            r#"{"Item1":42,"Item2":"alice"}"#
        );
        assert_eq!(
            token_value(-1, "say \"hi\"\n").unwrap(),
            r#"{"Item1":-1,"Item2":"say \"hi\"\n"}"#
        );
    }

    #[test]
    fn a_text_message_travels_as_a_json_string_of_json_text() {
        let text = message_text("hi").unwrap();
        assert_eq!(text, r#""hi""#);
        assert_eq!(
            send_command(1, &[2, 3], &text, true).unwrap(),
            r#"{"Item1":1,"Item2":[2,3],"Item3":"\"hi\"","Item4":true}"#
        );
    }

    #[test]
    fn object_messages_are_escaped_once_more() {
        let text = message_text(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(
            send_command(0, &[9], &text, false).unwrap(),
            r#"{"Item1":0,"Item2":[9],"Item3":"{\"a\":1}","Item4":false}"#
        );
    }

    #[test]
    fn quotes_backslashes_and_unicode_round_trip() {
        let original = "he said \"hi\" \\ 你好 😀 \u{1}";
        let text = message_text(original).unwrap();
        let command = send_command(5, &[6], &text, false).unwrap();
        let value: serde_json::Value = serde_json::from_str(&command).unwrap();
        let item3 = value["Item3"].as_str().unwrap();
        assert_eq!(item3, text);
        let inner: String = serde_json::from_str(item3).unwrap();
        assert_eq!(inner, original);
        // Non-ASCII stays UTF-8 (as .NET writes it); control chars are escaped.
        assert!(command.contains("你好"));
        assert!(command.contains(r"\\u0001"));
    }

    #[test]
    fn chan_command_shape() {
        let text = message_text("hi").unwrap();
        assert_eq!(
            chan_command(7, Some("room \"1\""), &text).unwrap(),
            r#"__FreeIM__(ChanMessage){"Item1":7,"Item2":"room \"1\"","Item3":"\"hi\"","Item4":true}"#
        );
    }

    #[test]
    fn broadcast_has_a_null_chan() {
        let text = message_text(&serde_json::json!([1, "x"])).unwrap();
        assert_eq!(
            chan_command(0, None, &text).unwrap(),
            r#"__FreeIM__(ChanMessage){"Item1":0,"Item2":null,"Item3":"[1,\"x\"]"}"#
        );
    }

    #[test]
    fn force_offline_shape() {
        assert_eq!(force_offline_command(42), "__FreeIM__(ForceOffline)42");
        assert_eq!(force_offline_command(-3), "__FreeIM__(ForceOffline)-3");
    }

    #[test]
    fn event_fields_in_any_order() {
        let expected = ClientEvent {
            client_id: 42,
            client_meta: "alice".into(),
        };
        for payload in [
            r#"{"Item1":42,"Item2":"alice"}"#,
            r#"{"Item2":"alice","Item1":42}"#,
            r#" { "Item2" : "alice" , "Extra": [1], "Item1" : 42 } "#,
        ] {
            assert_eq!(
                parse_client_event(payload.as_bytes()).unwrap(),
                expected,
                "{payload}"
            );
        }
    }

    #[test]
    fn event_meta_may_be_null_or_missing() {
        for payload in [r#"{"Item1":7,"Item2":null}"#, r#"{"Item1":7}"#] {
            let event = parse_client_event(payload.as_bytes()).unwrap();
            assert_eq!(event.client_id, 7);
            assert_eq!(event.client_meta, "");
        }
    }

    #[test]
    fn event_meta_is_unescaped() {
        let payload = token_value(-9, "a\"b\\c 你好").unwrap();
        let event = parse_client_event(payload.as_bytes()).unwrap();
        assert_eq!(event.client_id, -9);
        assert_eq!(event.client_meta, "a\"b\\c 你好");
    }

    #[test]
    fn malformed_events_are_errors_not_panics() {
        for payload in [
            &b""[..],
            b"not json",
            b"{}",
            b"[42,\"alice\"]",
            br#"{"Item1":"42","Item2":"x"}"#,
            br#"{"Item1":1.5,"Item2":"x"}"#,
            br#"{"Item1":42,"Item2":7}"#,
            br#"{"Item1":99999999999999999999,"Item2":"x"}"#,
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_client_event(payload), Err(Error::BadEventPayload(_))),
                "{payload:?}"
            );
        }
    }
}
