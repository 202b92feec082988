//! `{"Item1": clientId, "Item2": meta}` (a .NET value tuple): the value of a
//! connect token, and, unchanged, the payload of that socket's online and
//! offline events.

use serde::{Deserialize, Serialize};

/// Who a token admits, and what the presence events of the socket it opens
/// carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTicket {
    /// The client id.
    #[serde(rename = "Item1")]
    pub client_id: i64,
    /// The business service's metadata for this connection; `None` is JSON
    /// `null` (what .NET writes for a null string), read back as `None`.
    #[serde(rename = "Item2", default)]
    pub client_meta: Option<String>,
}

/// Why bytes are not a [`ClientTicket`].
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Not a JSON object (serde alone would also take the array form
    /// `[id, "meta"]`, which nobody writes).
    #[error("not a JSON object")]
    NotAnObject,
    /// A JSON object without the ticket's shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

impl ClientTicket {
    /// A ticket for `client_id` with `client_meta`.
    pub fn new(client_id: i64, client_meta: &str) -> ClientTicket {
        ClientTicket {
            client_id,
            client_meta: Some(client_meta.to_string()),
        }
    }

    /// Parses a token value or an event payload: a JSON object with the
    /// fields in any order, unknown fields ignored, a missing or `null` meta
    /// read as `None`.
    ///
    /// # Errors
    /// [`TicketError`] when the bytes are not such an object.
    pub fn parse(json: &[u8]) -> Result<ClientTicket, TicketError> {
        if json.trim_ascii_start().first() != Some(&b'{') {
            return Err(TicketError::NotAnObject);
        }
        Ok(serde_json::from_slice(json)?)
    }

    /// `{"Item1":id,"Item2":meta}`, escaped by `serde_json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ticket always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{BAD_TICKETS, TICKETS};

    #[test]
    fn every_ticket_vector_round_trips() {
        for vector in TICKETS {
            let ticket = ClientTicket::parse(vector.wire.as_bytes()).unwrap();
            assert_eq!(ticket.client_id, vector.client_id, "{}", vector.wire);
            assert_eq!(
                ticket.client_meta.as_deref(),
                vector.client_meta,
                "{}",
                vector.wire
            );
            if vector.canonical {
                assert_eq!(ticket.to_json(), vector.wire);
            }
        }
    }

    #[test]
    fn malformed_tickets_are_errors_not_panics() {
        for wire in BAD_TICKETS {
            assert!(ClientTicket::parse(wire).is_err(), "{wire:?}");
        }
    }
}
