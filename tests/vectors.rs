//! The node reads every command of `freeim_protocol::vectors` as the vector
//! says, published raw on its channel (as FreeIM's .NET ImHelper would), and
//! the receipt its sender gets is the receipt vector's message.

mod common;

use common::*;
use freeim_protocol::vectors::{COMMANDS, RECEIPT};
use freeim_protocol::Command;
use tungstenite::protocol::frame::coding::CloseCode;

/// The next text that is not a receipt (client 1 sends with receipts);
/// receipts read on the way are kept in `receipts`.
fn next_not_receipt(client: &mut Client, receipts: &mut Vec<String>) -> Option<String> {
    loop {
        let text = client.recv_text(PROMPTLY)?;
        if !text.starts_with(r#"{"content":"#) {
            return Some(text);
        }
        receipts.push(text);
    }
}

#[test]
fn every_command_vector_is_delivered_as_the_vector_says() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    let ids = [1, 2, 3, 9, 42, -3];
    let mut clients: Vec<(i64, Client)> = ids
        .iter()
        .map(|&id| (id, connect_as(&im, id, "v")))
        .collect();
    for &id in &ids {
        wait_online(&redis, id, Some(1));
    }
    // Every vector's channel gets one member, so each message reaches
    // exactly the clients named below.
    im.join_chan(2, &["room \"1\""]).unwrap();
    im.join_chan(3, &["room"]).unwrap();
    let mut receipts = Vec::new();

    for vector in COMMANDS {
        assert!(publish(&redis, &node.channel(), vector.wire) > 0);
        let (receivers, text): (Vec<i64>, Option<String>) = match (vector.command)() {
            Command::Send(send) => (send.receivers, Some(send.text)),
            Command::Chan(message) => {
                let members = match message.channel() {
                    Some("room \"1\"") => vec![2],
                    Some("room") => vec![3],
                    Some(other) => panic!("no member joined {other}"),
                    None => ids.to_vec(),
                };
                (members, Some(message.text))
            }
            Command::ForceOffline(id) => (vec![id], None),
        };
        for (id, client) in clients.iter_mut().filter(|(id, _)| receivers.contains(id)) {
            match &text {
                Some(text) => assert_eq!(
                    next_not_receipt(client, &mut receipts).as_ref(),
                    Some(text),
                    "client {id}, {}",
                    vector.wire
                ),
                None => assert_eq!(
                    client.closed_with(PROMPTLY),
                    Some(CloseCode::Library(4001)),
                    "client {id}, {}",
                    vector.wire
                ),
            }
        }
    }

    // Sender 1 asked for receipts; the one from 2 is the vector's message.
    let Ok(Command::Send(receipt)) = freeim_protocol::decode_command(RECEIPT.wire.as_bytes())
    else {
        panic!("the receipt vector is a Send command")
    };
    let (_, client_1) = clients.iter_mut().find(|(id, _)| *id == 1).unwrap();
    while let Some(text) = client_1.recv_text(QUIET) {
        receipts.push(text);
    }
    assert!(receipts.contains(&receipt.text), "{receipts:?}");
}
