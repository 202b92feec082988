//! `imhelper` writes what `freeim_protocol::vectors` says, byte for byte
//! (checked with a raw subscriber and a raw read of the token), and reads
//! every event payload vector as it says, skipping the malformed ones.

mod common;

use std::time::Duration;

use common::{helper, publish, raw, Sniffer};
use freeim_protocol::vectors::{BAD_TICKETS, COMMANDS, TICKETS};
use freeim_protocol::{Command, Keys};
use imhelper::PresenceEvent;
use redis::Commands;
use serde_json::Value;
use testkit::RedisServer;

const SERVER: &str = "127.0.0.1:6001";

#[test]
fn every_command_imhelper_can_write_is_its_vector() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &[SERVER]);
    let sniffer = Sniffer::start(&redis, &[Keys::new("/ws").server(SERVER)]);
    let mut written = 0;
    for vector in COMMANDS.iter().filter(|v| v.canonical) {
        // The message as a service passes it: the JSON value of the text.
        let message = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        match (vector.command)() {
            Command::Send(send) => helper
                .send_message(
                    send.sender,
                    &send.receivers,
                    &message(&send.text),
                    send.receipt,
                )
                .unwrap(),
            // Named channels are always cacheable from this crate; the other
            // form is what .NET helpers write.
            Command::Chan(chan) if chan.channel().is_some() && !chan.cacheable => continue,
            Command::Chan(chan) => match chan.channel() {
                Some(name) => helper
                    .send_chan_message(chan.sender, name, &message(&chan.text))
                    .unwrap(),
                None => helper.send_broadcast_message(&message(&chan.text)).unwrap(),
            },
            Command::ForceOffline(id) => {
                helper.force_offline(id).unwrap();
            }
        }
        let (_, payload) = sniffer.take_exactly(1).pop().unwrap();
        assert_eq!(payload, vector.wire);
        written += 1;
    }
    assert!(written >= 6, "most vectors are imhelper's own forms");
}

#[test]
fn the_token_value_is_the_ticket_vector() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &[SERVER]);
    for vector in TICKETS.iter().filter(|v| v.canonical) {
        let Some(meta) = vector.client_meta else {
            continue; // a null meta is .NET's form
        };
        let url = helper.prev_connect_server(vector.client_id, meta).unwrap();
        let token = url.split("token=").nth(1).unwrap();
        let value: String = raw(&redis).get(Keys::new("/ws").token(token)).unwrap();
        assert_eq!(value, vector.wire);
    }
}

#[test]
fn every_event_vector_reads_as_it_says_and_bad_ones_are_skipped() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &[SERVER]);
    let mut events = helper.events().unwrap();
    let channel = Keys::new("/ws").online_event();
    for vector in TICKETS {
        for bad in BAD_TICKETS {
            let mut conn = raw(&redis);
            let _: i64 = conn.publish(&channel, *bad).unwrap();
        }
        publish(&redis, &channel, vector.wire);
        match events.recv_timeout(Duration::from_secs(5)) {
            Some(PresenceEvent::Online(event)) => {
                assert_eq!(event.client_id, vector.client_id, "{}", vector.wire);
                assert_eq!(event.client_meta, vector.client_meta.unwrap_or_default());
            }
            other => panic!("{}: got {other:?}", vector.wire),
        }
    }
}
