//! The exact bytes of Send, Channel and broadcast commands, checked with a
//! raw subscriber on each node's channel; and the Unrouted check.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{helper, helper_on, Sniffer, QUIET};
use imhelper::{DirectMessage, Error, ImHelper, ImSendEventArgs, OnSend};
use serde::Serialize;
use testkit::RedisServer;

const SERVERS: [&str; 3] = ["s0:1", "s1:2", "s2:3"];

fn channel(server: &str) -> String {
    format!("im_v2_wsServer{server}")
}

fn all_channels() -> Vec<String> {
    SERVERS.iter().map(|s| channel(s)).collect()
}

fn by_channel(messages: Vec<(String, String)>) -> BTreeMap<String, String> {
    let count = messages.len();
    let map: BTreeMap<String, String> = messages.into_iter().collect();
    assert_eq!(map.len(), count, "one message per channel");
    map
}

#[test]
fn send_groups_by_node_and_dedups_in_one_publish_per_node() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());

    helper
        .send_message(9, &[4, 1, 2, 4, 5, 3, 1], "hi", true)
        .unwrap();

    let got = by_channel(sniffer.take_exactly(3));
    assert_eq!(
        got[&channel("s1:2")],
        r#"{"Item1":9,"Item2":[4,1],"Item3":"\"hi\"","Item4":true}"#
    );
    assert_eq!(
        got[&channel("s2:3")],
        r#"{"Item1":9,"Item2":[2,5],"Item3":"\"hi\"","Item4":true}"#
    );
    assert_eq!(
        got[&channel("s0:1")],
        r#"{"Item1":9,"Item2":[3],"Item3":"\"hi\"","Item4":true}"#
    );
}

#[test]
fn send_to_one_node_touches_only_that_node() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    helper.send_message(0, &[3, 6, 3], "x", false).unwrap();
    assert_eq!(
        sniffer.take_exactly(1),
        vec![(
            channel("s0:1"),
            r#"{"Item1":0,"Item2":[3,6],"Item3":"\"x\"","Item4":false}"#.to_string()
        )]
    );
}

#[derive(Serialize)]
struct Chat<'a> {
    from: &'a str,
    text: &'a str,
    n: u32,
}

#[test]
fn structured_messages_travel_as_json_text_with_escapes() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let sniffer = Sniffer::start(&redis, &[channel("n:1")]);
    let message = Chat {
        from: "al\"ice",
        text: "你好 \\ \n 😀",
        n: 2,
    };
    helper.send_message(1, &[2], &message, false).unwrap();
    let (_, payload) = sniffer.take_exactly(1).remove(0);
    assert_eq!(
        payload,
        r#"{"Item1":1,"Item2":[2],"Item3":"{\"from\":\"al\\\"ice\",\"text\":\"你好 \\\\ \\n 😀\",\"n\":2}","Item4":false}"#
    );
    // What the node will write to the socket is the message's own JSON.
    let command: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let frame = command["Item3"].as_str().unwrap();
    assert_eq!(frame, serde_json::to_string(&message).unwrap());
}

#[test]
fn no_receivers_publishes_nothing() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    helper.send_message(1, &[], "x", true).unwrap();
    assert!(sniffer.next(QUIET).is_none());
}

#[test]
fn send_to_an_unwatched_node_is_unrouted_but_the_rest_is_sent() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &[channel("s1:2")]);
    match helper.send_message(5, &[1, 2, 3, 4], "x", false) {
        Err(Error::Unrouted { servers }) => {
            let mut servers = servers;
            servers.sort();
            assert_eq!(servers, ["s0:1", "s2:3"]);
        }
        other => panic!("expected Unrouted, got {other:?}"),
    }
    assert_eq!(
        sniffer.take_exactly(1),
        vec![(
            channel("s1:2"),
            r#"{"Item1":5,"Item2":[1,4],"Item3":"\"x\"","Item4":false}"#.to_string()
        )]
    );
}

#[test]
fn a_batch_publishes_what_each_send_message_would_in_order() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    let batch = [
        DirectMessage {
            sender: 1,
            receivers: &[3, 6][..],
            message: "a",
            receipt: false,
        },
        DirectMessage {
            sender: 2,
            receivers: &[][..],
            message: "nobody",
            receipt: true,
        },
        DirectMessage {
            sender: 3,
            receivers: &[4, 5][..],
            message: "b",
            receipt: true,
        },
        DirectMessage {
            sender: 4,
            receivers: &[9][..],
            message: "c",
            receipt: false,
        },
    ];
    helper.send_messages(&batch).unwrap();
    let batched = sniffer.take_exactly(4);
    for direct in &batch {
        helper
            .send_message(
                direct.sender,
                direct.receivers,
                direct.message,
                direct.receipt,
            )
            .unwrap();
    }
    let one_by_one = sniffer.take_exactly(4);
    assert_eq!(batched, one_by_one);
    assert_eq!(
        batched
            .iter()
            .filter(|(chan, _)| *chan == channel("s0:1"))
            .map(|(_, payload)| payload.as_str())
            .collect::<Vec<_>>(),
        [
            r#"{"Item1":1,"Item2":[3,6],"Item3":"\"a\"","Item4":false}"#,
            r#"{"Item1":4,"Item2":[9],"Item3":"\"c\"","Item4":false}"#,
        ],
        "one node's commands arrive in batch order"
    );
    assert!(sniffer.next(QUIET).is_none());
}

#[test]
fn a_batch_names_each_unwatched_node_once_and_sends_the_rest() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &[channel("s1:2")]);
    let batch: Vec<DirectMessage<'_, str>> = [1, 4, 2, 3, 7]
        .iter()
        .map(|receiver| DirectMessage {
            sender: 0,
            receivers: std::slice::from_ref(receiver),
            message: "x",
            receipt: false,
        })
        .collect();
    match helper.send_messages(&batch) {
        Err(Error::Unrouted { servers }) => assert_eq!(servers, ["s2:3", "s0:1"]),
        other => panic!("expected Unrouted, got {other:?}"),
    }
    let delivered: Vec<String> = sniffer
        .take_exactly(3)
        .into_iter()
        .map(|(_, payload)| payload)
        .collect();
    assert_eq!(
        delivered,
        [1, 4, 7]
            .map(|id| format!(r#"{{"Item1":0,"Item2":[{id}],"Item3":"\"x\"","Item4":false}}"#))
    );
}

#[test]
fn chan_message_goes_to_every_node() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    helper
        .send_chan_message(7, "room \"1\"", &serde_json::json!({"t": "hi"}))
        .unwrap();
    let got = by_channel(sniffer.take_exactly(3));
    let expected = r#"__FreeIM__(ChanMessage){"Item1":7,"Item2":"room \"1\"","Item3":"{\"t\":\"hi\"}","Item4":true}"#;
    for server in SERVERS {
        assert_eq!(got[&channel(server)], expected, "{server}");
    }
}

#[test]
fn broadcast_has_sender_zero_and_null_chan() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    helper.send_broadcast_message("maintenance").unwrap();
    let got = by_channel(sniffer.take_exactly(3));
    for server in SERVERS {
        assert_eq!(
            got[&channel(server)],
            r#"__FreeIM__(ChanMessage){"Item1":0,"Item2":null,"Item3":"\"maintenance\""}"#
        );
    }
}

#[test]
fn a_server_listed_twice_gets_one_chan_message() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["a:1", "b:2", "a:1"]);
    let sniffer = Sniffer::start(&redis, &[channel("a:1"), channel("b:2")]);
    helper.send_broadcast_message("x").unwrap();
    assert_eq!(by_channel(sniffer.take_exactly(2)).len(), 2);
}

#[test]
fn chan_and_broadcast_name_unwatched_nodes() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &[channel("s0:1")]);
    for result in [
        helper.send_chan_message(1, "room", "x"),
        helper.send_broadcast_message("x"),
    ] {
        match result {
            Err(Error::Unrouted { servers }) => assert_eq!(servers, ["s1:2", "s2:3"]),
            other => panic!("expected Unrouted, got {other:?}"),
        }
    }
    assert_eq!(sniffer.take_exactly(2).len(), 2);
}

#[test]
fn empty_chan_name_is_refused_not_broadcast() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    assert!(matches!(
        helper.send_chan_message(1, "", "x"),
        Err(Error::InvalidArgument {
            argument: "chan",
            ..
        })
    ));
    assert!(sniffer.next(QUIET).is_none());
}

#[test]
fn unserialisable_message_is_a_serialize_error() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &["n:1"]);
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 1); // JSON object keys must be strings
    assert!(matches!(
        helper.send_message(1, &[2], &bad, false),
        Err(Error::Serialize(_))
    ));
    assert!(matches!(
        helper.send_broadcast_message(&bad),
        Err(Error::Serialize(_))
    ));
}

#[test]
fn receipts_over_the_budget_are_refused_before_anything_is_published() {
    let redis = RedisServer::start();
    let helper = helper(&redis, &SERVERS);
    let sniffer = Sniffer::start(&redis, &all_channels());
    // 100,000 receivers × 2 KB would be ~220 MB of receipts.
    let many: Vec<i64> = (0..100_000).collect();
    let big = "x".repeat(2048);
    let refused = helper.send_message(9, &many, &big, true);
    let Err(Error::TooManyReceipts {
        receivers,
        max_receipt_bytes,
        ..
    }) = refused
    else {
        panic!("expected TooManyReceipts, got {refused:?}");
    };
    assert_eq!(max_receipt_bytes, 4 << 20);
    assert!(receivers > 33_000, "{receivers}");
    // The same send without receipts, and the system's own sends, go out.
    helper.send_message(0, &many, &big, true).unwrap();
    helper.send_message(9, &many, &big, false).unwrap();
    assert_eq!(sniffer.take_exactly(6).len(), 6);
}

#[test]
fn a_message_over_max_push_bytes_is_refused_before_anything_is_published() {
    let redis = RedisServer::start();
    let helper = helper_on(&redis.url(), &SERVERS, |options| {
        options.max_push_bytes = 100
    });
    let sniffer = Sniffer::start(&redis, &all_channels());
    let over = "x".repeat(99); // 101 bytes of JSON with its quotes
    for refused in [
        helper.send_message(1, &[2], &over, false),
        helper.send_chan_message(1, "room", &over),
        helper.send_broadcast_message(&over),
    ] {
        let Err(Error::MessageTooLarge {
            bytes: 101,
            max_push_bytes: 100,
        }) = refused
        else {
            panic!("expected MessageTooLarge, got {refused:?}");
        };
    }
    // The first thing published is the next send, at the limit.
    helper
        .send_message(1, &[2], &"y".repeat(98), false)
        .unwrap();
    let published = sniffer.take_exactly(1);
    assert!(published[0].1.contains(&"y".repeat(98)), "{published:?}");
}

/// What the `on_send` hook was told of one publish, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Told {
    server: String,
    sender: i64,
    receivers: Vec<i64>,
    receipt: bool,
    chan: Option<String>,
    message: String,
}

impl Told {
    fn of(event: &ImSendEventArgs<'_>) -> Told {
        Told {
            server: event.server.to_string(),
            sender: event.sender_client_id,
            receivers: event.receive_client_id.to_vec(),
            receipt: event.receipt,
            chan: event.chan.map(str::to_string),
            message: event.message.to_string(),
        }
    }

    fn new(
        server: &str,
        sender: i64,
        receivers: &[i64],
        chan: Option<&str>,
        message: &str,
    ) -> Told {
        Told {
            server: server.to_string(),
            sender,
            receivers: receivers.to_vec(),
            receipt: false,
            chan: chan.map(str::to_string),
            message: message.to_string(),
        }
    }

    fn with_receipt(self) -> Told {
        Told {
            receipt: true,
            ..self
        }
    }
}

/// A helper for `servers` whose `on_send` hook records what it is told, and
/// the record.
fn recording_helper(
    redis: &RedisServer,
    servers: &[&str],
    configure: impl FnOnce(&mut imhelper::ImHelperOptions),
) -> (ImHelper, Arc<Mutex<Vec<Told>>>) {
    let told = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&told);
    let helper = helper_on(&redis.url(), servers, |options| {
        options.on_send = Some(OnSend::new(move |event| {
            record.lock().unwrap().push(Told::of(event));
        }));
        configure(options);
    });
    (helper, told)
}

fn take(told: &Mutex<Vec<Told>>) -> Vec<Told> {
    std::mem::take(&mut *told.lock().unwrap())
}

/// `Item3` of a Send command, or of a Channel command after its prefix.
fn item3(payload: &str) -> String {
    let json = payload
        .strip_prefix("__FreeIM__(ChanMessage)")
        .unwrap_or(payload);
    let command: serde_json::Value = serde_json::from_str(json).unwrap();
    command["Item3"].as_str().unwrap().to_string()
}

#[test]
fn on_send_is_told_of_each_per_node_publish_with_freeims_args() {
    let redis = RedisServer::start();
    let (helper, told) = recording_helper(&redis, &SERVERS, |_| {});
    let sniffer = Sniffer::start(&redis, &all_channels());

    helper
        .send_message(9, &[4, 1, 2, 4, 5, 3, 1], "hi", true)
        .unwrap();
    assert_eq!(
        take(&told),
        [
            Told::new("s1:2", 9, &[4, 1], None, r#""hi""#).with_receipt(),
            Told::new("s2:3", 9, &[2, 5], None, r#""hi""#).with_receipt(),
            Told::new("s0:1", 9, &[3], None, r#""hi""#).with_receipt(),
        ]
    );
    // The message is the text as published.
    for (_, payload) in sniffer.take_exactly(3) {
        assert_eq!(item3(&payload), r#""hi""#);
    }

    let batch = [
        DirectMessage {
            sender: 1,
            receivers: &[3][..],
            message: "a",
            receipt: false,
        },
        DirectMessage {
            sender: 2,
            receivers: &[][..],
            message: "nobody",
            receipt: false,
        },
        DirectMessage {
            sender: 3,
            receivers: &[4][..],
            message: "b",
            receipt: true,
        },
    ];
    helper.send_messages(&batch).unwrap();
    assert_eq!(
        take(&told),
        [
            Told::new("s0:1", 1, &[3], None, r#""a""#),
            Told::new("s1:2", 3, &[4], None, r#""b""#).with_receipt(),
        ]
    );
    assert_eq!(sniffer.take_exactly(2).len(), 2);

    let message = serde_json::json!({"t": "hi"});
    helper.send_chan_message(7, "room", &message).unwrap();
    let text = message.to_string();
    assert_eq!(
        take(&told),
        SERVERS.map(|server| Told::new(server, 7, &[], Some("room"), &text))
    );
    for (_, payload) in sniffer.take_exactly(3) {
        assert_eq!(item3(&payload), text);
    }

    helper.send_broadcast_message("all").unwrap();
    assert_eq!(
        take(&told),
        SERVERS.map(|server| Told::new(server, 0, &[], None, r#""all""#))
    );
    assert_eq!(sniffer.take_exactly(3).len(), 3);
}

#[test]
fn on_send_is_told_once_per_distinct_server() {
    let redis = RedisServer::start();
    let (helper, told) = recording_helper(&redis, &["a:1", "b:2", "a:1"], |_| {});
    let _sniffer = Sniffer::start(&redis, &[channel("a:1"), channel("b:2")]);
    helper.send_broadcast_message("x").unwrap();
    // Ids 0 and 2 both route to a:1 (its two places): one publish there.
    helper.send_message(5, &[0, 1, 2], "y", false).unwrap();
    assert_eq!(
        take(&told),
        [
            Told::new("a:1", 0, &[], None, r#""x""#),
            Told::new("b:2", 0, &[], None, r#""x""#),
            Told::new("a:1", 5, &[0, 2], None, r#""y""#),
            Told::new("b:2", 5, &[1], None, r#""y""#),
        ]
    );
}

#[test]
fn on_send_is_not_told_of_refused_or_empty_sends_nor_force_offline() {
    let redis = RedisServer::start();
    let (helper, told) = recording_helper(&redis, &SERVERS, |options| {
        options.max_push_bytes = 100;
        options.max_receipt_bytes = 1000;
    });
    let sniffer = Sniffer::start(&redis, &all_channels());
    let over = "x".repeat(99);
    let many: Vec<i64> = (1..=100).collect();
    let mut unserialisable = std::collections::HashMap::new();
    unserialisable.insert(vec![1u8], 1);

    helper.send_message(1, &[], "nobody", true).unwrap();
    helper.send_messages::<str>(&[]).unwrap();
    assert!(helper.send_message(1, &[2], &over, false).is_err());
    assert!(helper
        .send_message(1, &[2], &unserialisable, false)
        .is_err());
    assert!(helper.send_message(1, &many, "receipts", true).is_err());
    assert!(helper.send_chan_message(1, "", "x").is_err());
    assert!(helper.send_chan_message(1, "room", &over).is_err());
    assert!(helper.send_broadcast_message(&over).is_err());
    helper.force_offline(4).unwrap();

    assert!(take(&told).is_empty());
    assert_eq!(sniffer.take_exactly(1)[0].1, "__FreeIM__(ForceOffline)4");
}

#[test]
fn on_send_runs_before_the_publish() {
    let redis = RedisServer::start();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded::<()>();
    let helper = helper_on(&redis.url(), &["n:1"], |options| {
        options.on_send = Some(OnSend::new(move |event| {
            entered_tx.send(Told::of(event)).unwrap();
            release_rx.recv().unwrap();
        }));
    });
    let sniffer = Sniffer::start(&redis, &[channel("n:1")]);

    std::thread::scope(|scope| {
        let sending = scope.spawn(|| helper.send_message(1, &[2], "hi", false));
        let told = entered.recv_timeout(common::PATIENCE).unwrap();
        assert_eq!(told, Told::new("n:1", 1, &[2], None, r#""hi""#));
        assert!(
            sniffer.next(QUIET).is_none(),
            "published before the hook returned"
        );
        release.send(()).unwrap();
        sending.join().unwrap().unwrap();
    });
    assert_eq!(
        sniffer.take_exactly(1)[0].1,
        r#"{"Item1":1,"Item2":[2],"Item3":"\"hi\"","Item4":false}"#
    );
}

#[test]
fn a_panicking_on_send_neither_stops_the_publish_nor_poisons_the_helper() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let helper = helper_on(&redis.url(), &["n:1"], |options| {
        options.on_send = Some(OnSend::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            panic!("the hook fails");
        }));
        options.max_connections = 1;
    });
    let sniffer = Sniffer::start(&redis, &[channel("n:1")]);

    // From several threads at once, through a pool of one connection.
    std::thread::scope(|scope| {
        for thread in 0..3 {
            let helper = &helper;
            scope.spawn(move || {
                for n in 0..2 {
                    helper
                        .send_message(thread, &[10 + n], "still sent", false)
                        .unwrap();
                }
            });
        }
    });
    helper.send_chan_message(1, "room", "also sent").unwrap();

    assert_eq!(sniffer.take_exactly(7).len(), 7);
    assert_eq!(calls.load(Ordering::SeqCst), 7);
    assert_eq!(helper.on_send_panics(), 7);
    assert_eq!(helper.stats().open, 1);
    assert!(!helper.has_online(10).unwrap());
}
