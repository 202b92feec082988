//! The commands business services publish on a node's `{prefix}Server{server}`
//! channel (FreeIM's `ImHelper` writes them, its `ImServer` reads them):
//! a direct message (Send), a channel message or broadcast, a force-offline.
//! Field order is .NET's value-tuple order, `Item1`, `Item2`, …; every JSON
//! text is produced by `serde_json`, so any name or message is escaped right.

use serde::{Deserialize, Serialize};

/// Prefix of a channel (or broadcast) message.
pub const CHAN_MESSAGE_PREFIX: &str = "__FreeIM__(ChanMessage)";

/// Prefix of a force-offline command; the client id follows in decimal.
pub const FORCE_OFFLINE_PREFIX: &str = "__FreeIM__(ForceOffline)";

/// One command for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Deliver a message to listed receivers.
    Send(SendCommand),
    /// Deliver a message to a channel's members, or to everyone.
    Chan(ChanMessage),
    /// Close every socket of a client.
    ForceOffline(i64),
}

/// A direct message: `{"Item1": sender, "Item2": [receivers], "Item3": text, "Item4": receipt}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCommand {
    /// The sender's client id; 0 for a system message.
    #[serde(rename = "Item1")]
    pub sender: i64,
    /// The receivers' client ids.
    #[serde(rename = "Item2")]
    pub receivers: Vec<i64>,
    /// The message, already serialised as JSON; written as one text frame.
    #[serde(rename = "Item3")]
    pub text: String,
    /// Whether the sender wants a receipt.
    #[serde(rename = "Item4", default)]
    pub receipt: bool,
}

/// A channel message: `{"Item1": sender, "Item2": chan or null, "Item3": text}`
/// after [`CHAN_MESSAGE_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChanMessage {
    /// The sender's client id; 0 for a system message.
    #[serde(rename = "Item1")]
    pub sender: i64,
    /// The channel; `None` (or empty) means broadcast to every socket.
    #[serde(rename = "Item2", default)]
    pub chan: Option<String>,
    /// The message, already serialised as JSON; written as one text frame.
    #[serde(rename = "Item3")]
    pub text: String,
    /// This project's addition (`Item4`, written only when true, ignored by
    /// .NET nodes): the publisher announces membership changes on
    /// `{prefix}ChanChanged`, so cached members may serve this message.
    #[serde(rename = "Item4", default, skip_serializing_if = "std::ops::Not::not")]
    pub cacheable: bool,
}

impl ChanMessage {
    /// The channel name, or `None` for a broadcast (null or empty name).
    pub fn channel(&self) -> Option<&str> {
        self.chan.as_deref().filter(|chan| !chan.is_empty())
    }
}

/// Why a published payload is not a command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The JSON did not have the command's shape.
    #[error("malformed {kind} command: {source}")]
    Json {
        /// Which command was being decoded.
        kind: &'static str,
        /// What serde_json found.
        source: serde_json::Error,
    },
    /// The force-offline command's client id is not a decimal i64.
    #[error("malformed force-offline client id")]
    ClientId,
}

/// Decodes one payload published on a node's command channel.
///
/// # Errors
/// [`CommandError`] when the payload is none of the three commands.
pub fn decode_command(payload: &[u8]) -> Result<Command, CommandError> {
    if let Some(json) = payload.strip_prefix(CHAN_MESSAGE_PREFIX.as_bytes()) {
        return serde_json::from_slice(json)
            .map(Command::Chan)
            .map_err(|source| CommandError::Json {
                kind: "channel",
                source,
            });
    }
    if let Some(id) = payload.strip_prefix(FORCE_OFFLINE_PREFIX.as_bytes()) {
        return std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.trim().parse().ok())
            .map(Command::ForceOffline)
            .ok_or(CommandError::ClientId);
    }
    serde_json::from_slice(payload)
        .map(Command::Send)
        .map_err(|source| CommandError::Json {
            kind: "send",
            source,
        })
}

/// The Send command, borrowed for encoding.
#[derive(Serialize)]
struct SendRef<'a> {
    #[serde(rename = "Item1")]
    sender: i64,
    #[serde(rename = "Item2")]
    receivers: &'a [i64],
    #[serde(rename = "Item3")]
    text: &'a str,
    #[serde(rename = "Item4")]
    receipt: bool,
}

/// The channel message, borrowed for encoding.
#[derive(Serialize)]
struct ChanRef<'a> {
    #[serde(rename = "Item1")]
    sender: i64,
    #[serde(rename = "Item2")]
    chan: Option<&'a str>,
    #[serde(rename = "Item3")]
    text: &'a str,
    #[serde(rename = "Item4", skip_serializing_if = "std::ops::Not::not")]
    cacheable: bool,
}

/// `{"Item1":sender,"Item2":[receivers],"Item3":"<text>","Item4":receipt}`;
/// `text` is the message already serialised as JSON.
pub fn send_command(sender: i64, receivers: &[i64], text: &str, receipt: bool) -> String {
    serde_json::to_string(&SendRef {
        sender,
        receivers,
        text,
        receipt,
    })
    .expect("a send command always serialises")
}

/// `__FreeIM__(ChanMessage){"Item1":sender,"Item2":chan|null,"Item3":"<text>"}`,
/// plus `"Item4":true` for a named channel when `cacheable` (see
/// [`ChanMessage::cacheable`]). `chan = None` is a broadcast.
pub fn chan_command(sender: i64, chan: Option<&str>, text: &str, cacheable: bool) -> String {
    let body = serde_json::to_string(&ChanRef {
        sender,
        chan,
        text,
        cacheable,
    })
    .expect("a channel command always serialises");
    format!("{CHAN_MESSAGE_PREFIX}{body}")
}

/// `__FreeIM__(ForceOffline){clientId}`.
pub fn force_offline_command(client_id: i64) -> String {
    format!("{FORCE_OFFLINE_PREFIX}{client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{BAD_COMMANDS, COMMANDS};

    /// What the encoder writes for `command`.
    fn encode(command: &Command) -> String {
        match command {
            Command::Send(send) => {
                send_command(send.sender, &send.receivers, &send.text, send.receipt)
            }
            Command::Chan(chan) => chan_command(
                chan.sender,
                chan.chan.as_deref(),
                &chan.text,
                chan.cacheable,
            ),
            Command::ForceOffline(id) => force_offline_command(*id),
        }
    }

    #[test]
    fn every_command_vector_decodes_and_the_canonical_ones_encode() {
        for vector in COMMANDS {
            let command = (vector.command)();
            assert_eq!(
                decode_command(vector.wire.as_bytes()).unwrap(),
                command,
                "{}",
                vector.wire
            );
            if vector.canonical {
                assert_eq!(encode(&command), vector.wire);
            }
        }
    }

    #[test]
    fn garbage_is_an_error_with_a_reason() {
        for payload in BAD_COMMANDS {
            assert!(decode_command(payload).is_err(), "{payload:?}");
        }
    }

    #[test]
    fn broadcast_reads_null_or_empty_chan_as_no_channel() {
        for wire in [
            &br#"__FreeIM__(ChanMessage){"Item1":0,"Item2":null,"Item3":"1"}"#[..],
            br#"__FreeIM__(ChanMessage){"Item1":0,"Item2":"","Item3":"1"}"#,
        ] {
            let Command::Chan(message) = decode_command(wire).unwrap() else {
                panic!("not a channel message")
            };
            assert_eq!(message.channel(), None);
        }
    }

    #[test]
    fn messages_round_trip_whatever_they_contain() {
        let original = "he said \"hi\" \\ 你好 😀 \u{1}";
        let text = serde_json::to_string(original).unwrap();
        let wire = send_command(5, &[6], &text, false);
        // Non-ASCII stays UTF-8 (as .NET writes it); control chars are escaped.
        assert!(wire.contains("你好") && wire.contains(r"\\u0001"));
        let Command::Send(send) = decode_command(wire.as_bytes()).unwrap() else {
            panic!("not a send")
        };
        assert_eq!(
            serde_json::from_str::<String>(&send.text).unwrap(),
            original
        );
    }
}
