//! First light: a client admitted by a raw token receives a raw Send command.

mod common;

use common::*;

#[test]
fn raw_token_and_raw_send_reach_the_socket() {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let url = raw_token(&redis, &node, 42, "web");
    let mut client = Client::connect(&url).expect("upgrade");
    wait_online(&redis, 42, Some(1));
    let command = r#"{"Item1":1,"Item2":[42],"Item3":"\"hi\"","Item4":false}"#;
    assert_eq!(publish(&redis, &node.channel(), command), 1);
    assert_eq!(client.recv_text(PROMPTLY).as_deref(), Some("\"hi\""));
    assert!(Client::connect(&url).is_err(), "tokens are single-use");
}
