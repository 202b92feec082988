//! Fuzzes the decoder of commands published on a node's Redis channel and
//! the token-value (`ClientTicket`) parser.
//!
//! Beyond "no panic", checks that a decoded force-offline id decodes the same
//! when written back, that a decoded channel message had the channel prefix,
//! and that a parsed ticket survives `to_json` and parsing again.
#![no_main]

use freeim_protocol::{decode_command, ClientTicket, Command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_command(data) {
        Ok(Command::ForceOffline(id)) => {
            let again = format!("__FreeIM__(ForceOffline){id}");
            assert_eq!(
                decode_command(again.as_bytes()).ok(),
                Some(Command::ForceOffline(id))
            );
        }
        Ok(Command::Chan(message)) => {
            assert!(data.starts_with(b"__FreeIM__(ChanMessage)"));
            if let Some(chan) = message.channel() {
                assert!(!chan.is_empty());
            }
        }
        Ok(Command::Send(_)) => assert!(!data.starts_with(b"__FreeIM__(")),
        Err(e) => {
            // The error renders (it is logged).
            let _ = e.to_string();
        }
    }

    if let Ok(ticket) = ClientTicket::parse(data) {
        let json = ticket.to_json();
        assert_eq!(ClientTicket::parse(json.as_bytes()).ok(), Some(ticket));
    }
});
