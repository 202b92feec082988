//! Test vectors: bytes on the wire ↔ typed values, taken from FreeIM 2.x's
//! behaviour (`docs/protocol.md`). This crate's tests check its encoders and
//! decoders against them; the node's and `imhelper`'s tests use them to
//! check what really crosses Redis.

use crate::command::{ChanMessage, Command, SendCommand};

/// `(what, name)` for path `/ws`, server `10.0.0.1:6001`, in the order of
/// [`Keys`](crate::Keys)' methods: prefix, token `ab`, online, chan `room`,
/// client `-5`, client `007` (a member field as read), list_chan, server,
/// online event, offline event, chan_changed, node, alive.
pub const KEYS: &[(&str, &str)] = &[
    ("prefix", "im_v2_ws"),
    ("token ab", "im_v2_wsTokenab"),
    ("online", "im_v2_wsOnline"),
    ("chan room", "im_v2_wsChanroom"),
    ("client -5", "im_v2_wsClient-5"),
    ("client 007", "im_v2_wsClient007"),
    ("list_chan", "im_v2_wsListChan"),
    ("server", "im_v2_wsServer10.0.0.1:6001"),
    ("online event", "evt_im_v2_wsOnline"),
    ("offline event", "evt_im_v2_wsOffline"),
    ("chan_changed", "im_v2_wsChanChanged"),
    ("node", "im_v2_wsNode10.0.0.1:6001"),
    ("alive", "im_v2_wsAlive10.0.0.1:6001"),
];

/// `(client_id, server_count, index)`: which place of the servers list owns
/// the client. Negative ids fall back to the first server, as in FreeIM.
pub const ROUTING: &[(i64, usize, usize)] = &[
    (0, 3, 0),
    (4, 3, 1),
    (5, 3, 2),
    (i64::MAX, 1, 0),
    (i64::MAX, 2, 1),
    (-1, 3, 0),
    (-3, 3, 0),
    (-4, 3, 0),
    (i64::MIN, 3, 0),
    (i64::MIN, 1, 0),
];

/// A [`ClientTicket`](crate::ClientTicket) on the wire.
pub struct TicketVector {
    /// The JSON text.
    pub wire: &'static str,
    /// `Item1`.
    pub client_id: i64,
    /// `Item2`.
    pub client_meta: Option<&'static str>,
    /// Whether encoding the typed value gives exactly `wire`.
    pub canonical: bool,
}

/// Token values and event payloads.
pub const TICKETS: &[TicketVector] = &[
    TicketVector {
        wire: r#"{"Item1":42,"Item2":"alice"}"#,
        client_id: 42,
        client_meta: Some("alice"),
        canonical: true,
    },
    TicketVector {
        wire: r#"{"Item1":-1,"Item2":"say \"hi\"\n 你好"}"#,
        client_id: -1,
        client_meta: Some("say \"hi\"\n 你好"),
        canonical: true,
    },
    TicketVector {
        wire: r#"{"Item1":7,"Item2":null}"#,
        client_id: 7,
        client_meta: None,
        canonical: true,
    },
    TicketVector {
        wire: r#"{"Item1":7}"#,
        client_id: 7,
        client_meta: None,
        canonical: false,
    },
    TicketVector {
        wire: r#" { "Item2" : "web" , "Extra": [1], "Item1" : 42 } "#,
        client_id: 42,
        client_meta: Some("web"),
        canonical: false,
    },
];

/// Bytes that are not a ticket.
pub const BAD_TICKETS: &[&[u8]] = &[
    b"",
    b"not json",
    b"{}",
    b"[42,\"alice\"]",
    br#"{"Item1":"42","Item2":"x"}"#,
    br#"{"Item1":1.5,"Item2":"x"}"#,
    br#"{"Item1":42,"Item2":7}"#,
    br#"{"Item1":99999999999999999999,"Item2":"x"}"#,
    b"\xff\xfe",
];

/// A command on a node's channel.
pub struct CommandVector {
    /// The published payload.
    pub wire: &'static str,
    /// The typed value (a function: commands own their strings).
    pub command: fn() -> Command,
    /// Whether encoding the typed value gives exactly `wire`.
    pub canonical: bool,
}

/// `1 → [2, 3]`, `"hi"`, with receipts: the first vector, and again with
/// its fields in another order.
fn send_hi_with_receipt() -> Command {
    Command::Send(SendCommand {
        sender: 1,
        receivers: vec![2, 3],
        text: "\"hi\"".into(),
        receipt: true,
    })
}

/// Direct messages, channel messages, broadcasts, force-offline commands.
pub const COMMANDS: &[CommandVector] = &[
    CommandVector {
        wire: r#"{"Item1":1,"Item2":[2,3],"Item3":"\"hi\"","Item4":true}"#,
        command: send_hi_with_receipt,
        canonical: true,
    },
    CommandVector {
        wire: r#"{"Item1":0,"Item2":[9],"Item3":"{\"a\":1}","Item4":false}"#,
        command: || {
            Command::Send(SendCommand {
                sender: 0,
                receivers: vec![9],
                text: r#"{"a":1}"#.into(),
                receipt: false,
            })
        },
        canonical: true,
    },
    CommandVector {
        wire: r#"{"Item4":true,"Item3":"\"hi\"","Item2":[2,3],"Item1":1}"#,
        command: send_hi_with_receipt,
        canonical: false,
    },
    CommandVector {
        wire: r#"__FreeIM__(ChanMessage){"Item1":7,"Item2":"room \"1\"","Item3":"\"hi\"","Item4":true}"#,
        command: || {
            Command::Chan(ChanMessage {
                sender: 7,
                chan: Some("room \"1\"".into()),
                text: "\"hi\"".into(),
                cacheable: true,
            })
        },
        canonical: true,
    },
    CommandVector {
        wire: r#"__FreeIM__(ChanMessage){"Item1":5,"Item2":"room","Item3":"{}"}"#,
        command: || {
            Command::Chan(ChanMessage {
                sender: 5,
                chan: Some("room".into()),
                text: "{}".into(),
                cacheable: false,
            })
        },
        canonical: true,
    },
    CommandVector {
        wire: r#"__FreeIM__(ChanMessage){"Item1":0,"Item2":null,"Item3":"[1,\"x\"]"}"#,
        command: || {
            Command::Chan(ChanMessage {
                sender: 0,
                chan: None,
                text: r#"[1,"x"]"#.into(),
                cacheable: false,
            })
        },
        canonical: true,
    },
    CommandVector {
        wire: "__FreeIM__(ForceOffline)42",
        command: || Command::ForceOffline(42),
        canonical: true,
    },
    CommandVector {
        wire: "__FreeIM__(ForceOffline)-3",
        command: || Command::ForceOffline(-3),
        canonical: true,
    },
];

/// Payloads that are no command.
pub const BAD_COMMANDS: &[&[u8]] = &[
    b"",
    b"{",
    b"[1,2]",
    br#"{"Item1":"x","Item2":[],"Item3":""}"#,
    b"__FreeIM__(ChanMessage){}",
    b"__FreeIM__(ForceOffline)abc",
    b"__FreeIM__(ForceOffline)\xff",
];

/// A receipt on the wire.
pub struct ReceiptVector {
    /// Who sent the message (gets the receipt).
    pub sender: i64,
    /// Who it was for (the receipt's sender).
    pub receiver: i64,
    /// The message text.
    pub text: &'static str,
    /// Whether the receiver had a socket on the node.
    pub delivered: bool,
    /// The Send command the node publishes.
    pub wire: &'static str,
}

/// A delivered message's receipt.
pub const RECEIPT: ReceiptVector = ReceiptVector {
    sender: 1,
    receiver: 2,
    text: "\"hi\"",
    delivered: true,
    wire: r#"{"Item1":2,"Item2":[1],"Item3":"{\"content\":\"\\\"hi\\\"\",\"receipt\":\"发送成功\"}","Item4":false}"#,
};
