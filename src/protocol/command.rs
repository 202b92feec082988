//! Decoding the commands published on a node's `{prefix}Server{server}` channel.

use serde::Deserialize;

const CHAN_MESSAGE_PREFIX: &[u8] = b"__FreeIM__(ChanMessage)";
const FORCE_OFFLINE_PREFIX: &[u8] = b"__FreeIM__(ForceOffline)";

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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

/// A channel message: `{"Item1": sender, "Item2": chan or null, "Item3": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    /// Set by the Rust `imhelper` (this project's addition, ignored by .NET
    /// nodes): its publisher announces membership changes on
    /// `{prefix}ChanChanged`, so cached members may serve this message.
    #[serde(rename = "Item4", default)]
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

/// Decodes one payload published on the node's command channel.
pub fn decode_command(payload: &[u8]) -> Result<Command, CommandError> {
    if let Some(json) = payload.strip_prefix(CHAN_MESSAGE_PREFIX) {
        return serde_json::from_slice(json)
            .map(Command::Chan)
            .map_err(|source| CommandError::Json {
                kind: "channel",
                source,
            });
    }
    if let Some(id) = payload.strip_prefix(FORCE_OFFLINE_PREFIX) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_send_with_fields_in_any_order() {
        let payload = br#"{"Item4":true,"Item3":"\"hi\"","Item2":[2,3],"Item1":1}"#;
        let expected = Command::Send(SendCommand {
            sender: 1,
            receivers: vec![2, 3],
            text: "\"hi\"".into(),
            receipt: true,
        });
        assert_eq!(decode_command(payload).unwrap(), expected);
    }

    #[test]
    fn decodes_channel_and_broadcast() {
        let chan =
            decode_command(br#"__FreeIM__(ChanMessage){"Item1":5,"Item2":"room","Item3":"{}"}"#);
        let Command::Chan(chan) = chan.unwrap() else {
            panic!("not a channel message")
        };
        assert_eq!((chan.sender, chan.channel()), (5, Some("room")));
        for payload in [
            &br#"__FreeIM__(ChanMessage){"Item1":0,"Item2":null,"Item3":"1"}"#[..],
            br#"__FreeIM__(ChanMessage){"Item1":0,"Item2":"","Item3":"1"}"#,
        ] {
            let Command::Chan(broadcast) = decode_command(payload).unwrap() else {
                panic!("not a channel message")
            };
            assert_eq!(broadcast.channel(), None);
        }
    }

    #[test]
    fn decodes_force_offline() {
        let command = decode_command(b"__FreeIM__(ForceOffline)-42").unwrap();
        assert_eq!(command, Command::ForceOffline(-42));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for payload in [
            &b""[..],
            b"{",
            b"[1,2]",
            br#"{"Item1":"x","Item2":[],"Item3":""}"#,
            b"__FreeIM__(ChanMessage){}",
            b"__FreeIM__(ForceOffline)abc",
            b"__FreeIM__(ForceOffline)\xff",
        ] {
            assert!(decode_command(payload).is_err(), "{payload:?}");
        }
    }
}
