//! The receipt a node sends back when a message was sent with `Item4: true`:
//! a Send command from the receiver to the sender whose message is
//! `{"content": <the message text>, "receipt": <FreeIM's wording>}`, with no
//! receipt of its own.

use crate::command::send_command;

/// Receipt text when the receiver had a socket on the node (FreeIM's wording).
pub const RECEIPT_DELIVERED: &str = "发送成功";
/// Receipt text when the receiver had no socket on the node (FreeIM's wording).
pub const RECEIPT_OFFLINE: &str = "用户不在线";

/// `{"content": text, "receipt": …}`, borrowed for encoding.
#[derive(serde::Serialize)]
struct Receipt<'a> {
    content: &'a str,
    receipt: &'a str,
}

/// The Send command that carries a receipt back to `sender`: from
/// `receiver`, message `{"content": text, "receipt": …}`, no receipt of its
/// own. `text` is the original message text (JSON), so it is escaped twice.
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
    send_command(receiver, &[sender], &message, false)
}

/// An upper bound of [`receipt_command`]'s length for a text of `text_len`
/// bytes, without building it: the text is JSON-escaped twice, which turns
/// a byte into at most 7 (`\u00XX`, its backslash escaped again), and the
/// command around it is under 256 bytes.
fn receipt_len_bound(text_len: usize) -> usize {
    text_len.saturating_mul(7).saturating_add(256)
}

/// Whether the receipts for a message of `text` sent to `receivers` clients
/// (the sender not counted) fit in `budget` bytes: `Err(bytes)` with the
/// most they could take when they do not. The node (`--max-receipt-bytes`)
/// and `imhelper` (`max_receipt_bytes`) decide the same way.
///
/// A cheap bound settles nearly every message; only a large one builds the
/// longest receipt (widest ids, longer wording) to measure it.
pub fn receipts_fit(receivers: usize, text: &str, budget: usize) -> Result<(), usize> {
    if receivers.saturating_mul(receipt_len_bound(text.len())) <= budget {
        return Ok(());
    }
    let each = receipt_command(i64::MIN, i64::MIN, text, false).len();
    match receivers.saturating_mul(each) {
        bytes if bytes <= budget => Ok(()),
        bytes => Err(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_holds_for_the_worst_texts() {
        let controls: String = (0u8..32).map(char::from).collect();
        for text in [
            "",
            "x",
            "\"\\\"",
            "\u{1}\u{1f}\"\\",
            "用户不在线",
            &controls,
        ] {
            let text = serde_json::to_string(&text.repeat(100)).unwrap();
            let built = receipt_command(i64::MIN, i64::MIN, &text, false).len();
            assert!(built <= receipt_len_bound(text.len()), "{text}: {built}");
        }
    }

    #[test]
    fn the_budget_check_measures_a_receipt_only_past_the_bound() {
        let text = serde_json::to_string(&"x".repeat(1000)).unwrap();
        let each = receipt_command(i64::MIN, i64::MIN, &text, false).len();
        assert_eq!(receipts_fit(0, &text, 0), Ok(()));
        assert_eq!(
            receipts_fit(3, &text, 3 * each),
            Ok(()),
            "exact size, over the bound"
        );
        assert_eq!(receipts_fit(3, &text, 3 * each - 1), Err(3 * each));
        assert_eq!(receipts_fit(2, "1", 2 * receipt_len_bound(1)), Ok(()));
    }

    #[test]
    fn a_receipt_is_a_send_back_to_the_sender() {
        let vector = crate::vectors::RECEIPT;
        assert_eq!(
            receipt_command(
                vector.sender,
                vector.receiver,
                vector.text,
                vector.delivered
            ),
            vector.wire
        );
        assert!(receipt_command(1, 2, "1", false).contains(RECEIPT_OFFLINE));
    }
}
