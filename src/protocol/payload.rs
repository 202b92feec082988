//! JSON payloads a node reads from and writes to Redis: the token value and
//! presence event (`{"Item1": clientId, "Item2": meta}`) and receipts.

use serde::{Deserialize, Serialize};

/// Receipt text when the receiver had a socket on the node (FreeIM's wording).
pub const RECEIPT_DELIVERED: &str = "发送成功";
/// Receipt text when the receiver had no socket on the node (FreeIM's wording).
pub const RECEIPT_OFFLINE: &str = "用户不在线";

/// Who a token admits: the value stored under `{prefix}Token{token}` and
/// published, unchanged, as the online and offline events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTicket {
    /// The client id.
    #[serde(rename = "Item1")]
    pub client_id: i64,
    /// The business service's metadata for this connection.
    #[serde(rename = "Item2", default)]
    pub client_meta: Option<String>,
}

impl ClientTicket {
    /// Parses a token value.
    pub fn parse(json: &[u8]) -> Result<ClientTicket, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The event payload for this client.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ticket always serialises")
    }
}

#[derive(Serialize)]
struct Receipt<'a> {
    content: &'a str,
    receipt: &'a str,
}

#[derive(Serialize)]
struct SendPayload<'a> {
    #[serde(rename = "Item1")]
    sender: i64,
    #[serde(rename = "Item2")]
    receivers: [i64; 1],
    #[serde(rename = "Item3")]
    text: &'a str,
    #[serde(rename = "Item4")]
    receipt: bool,
}

/// An upper bound of [`receipt_command`]'s length for a text of `text_len`
/// bytes, without building it: the text is JSON-escaped twice, which turns
/// a byte into at most 7 (`\u00XX`, its backslash escaped again), and the
/// command around it is under 256 bytes.
pub fn receipt_len_bound(text_len: usize) -> usize {
    text_len.saturating_mul(7).saturating_add(256)
}

/// The Send command that carries a receipt back to `sender`: from `receiver`,
/// message `{"content": text, "receipt": …}`, no receipt of its own.
pub fn receipt_command(sender: i64, receiver: i64, text: &str, delivered: bool) -> String {
    let receipt = Receipt {
        content: text,
        receipt: if delivered {
            RECEIPT_DELIVERED
        } else {
            RECEIPT_OFFLINE
        },
    };
    let message = serde_json::to_string(&receipt).expect("a receipt always serialises");
    serde_json::to_string(&SendPayload {
        sender: receiver,
        receivers: [sender],
        text: &message,
        receipt: false,
    })
    .expect("a send command always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trips_in_any_field_order() {
        let ticket = ClientTicket::parse(br#"{"Item2":"web","Item1":7}"#).unwrap();
        assert_eq!(ticket.client_id, 7);
        assert_eq!(ticket.to_json(), r#"{"Item1":7,"Item2":"web"}"#);
        let null_meta = ClientTicket::parse(br#"{"Item1":7,"Item2":null}"#).unwrap();
        assert_eq!(null_meta.client_meta, None);
        assert!(ClientTicket::parse(b"{\"Item1\":\"7\"}").is_err());
    }

    #[test]
    fn the_receipt_bound_holds_for_the_worst_texts() {
        for text in ["", "x", "\"\\\"", "\u{1}\u{1f}\"\\", "用户不在线"] {
            let text = serde_json::to_string(&text.repeat(100)).unwrap();
            let built = receipt_command(i64::MIN, i64::MIN, &text, false).len();
            assert!(built <= receipt_len_bound(text.len()), "{text}: {built}");
        }
        let controls: String = (0u8..32).map(char::from).collect();
        let built = receipt_command(i64::MIN, i64::MIN, &controls, false).len();
        assert!(built <= receipt_len_bound(controls.len()), "{built}");
    }

    #[test]
    fn receipt_is_a_send_back_to_the_sender() {
        let command = receipt_command(1, 2, "\"hi\"", true);
        assert_eq!(
            command,
            r#"{"Item1":2,"Item2":[1],"Item3":"{\"content\":\"\\\"hi\\\"\",\"receipt\":\"发送成功\"}","Item4":false}"#
        );
        assert!(receipt_command(1, 2, "1", false).contains(RECEIPT_OFFLINE));
    }
}
