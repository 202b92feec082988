//! The demo's HTTP endpoints against a real Redis and a real node, with
//! WebSocket clients standing in for pages.

mod common;

use std::time::{Duration, Instant};

use common::{http, http_raw, Client, Node, RedisServer, Stack, PROMPTLY};
use freeim_demo::{Demo, Settings};
use serde_json::{json, Value};

fn presence(event: &'static str, id: i64) -> impl Fn(&Value) -> bool {
    move |m| m["type"] == "presence" && m["event"] == event && m["id"] == id
}

#[test]
fn prev_connect_assigns_an_id_and_a_single_use_url() {
    let stack = Stack::start();
    let (status, answer) = stack.post("/prev-connect", "");
    assert_eq!(status, 200, "{answer}");
    let id = answer["id"].as_i64().unwrap();
    assert!((100_000..1_000_000).contains(&id), "{answer}");
    assert!(!answer["name"].as_str().unwrap().is_empty());
    assert_eq!(answer["server"], stack.node.server());
    let url = answer["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("ws://{}/ws?token=", stack.node.server())),
        "{url}"
    );
    let client = Client::connect(url).expect("the URL admits one socket");
    assert!(Client::connect(url).is_err(), "a token is single use");
    client.close();

    let (status, answer) = stack.post("/prev-connect", r#"{"id": 42, "name": " Alice "}"#);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["id"].as_i64(), answer["name"].as_str()),
        (Some(42), Some("Alice"))
    );
}

#[test]
fn comings_and_goings_are_broadcast_and_listed() {
    let stack = Stack::start();
    let mut alice = stack.connect(r#"{"name":"Alice"}"#);
    let bob = stack.connect(r#"{"name":"Bob"}"#);
    let online = alice.expect("Bob's online event", presence("online", bob.id));
    assert_eq!(online["name"], "Bob");

    let (status, list) = stack.get("/online");
    assert_eq!(status, 200);
    let clients = list["clients"].as_array().unwrap();
    assert!(
        clients.contains(&json!({"id": alice.id, "name": "Alice"})),
        "{list}"
    );
    assert!(
        clients.contains(&json!({"id": bob.id, "name": "Bob"})),
        "{list}"
    );

    let bob_id = bob.id;
    bob.close();
    let offline = alice.expect("Bob's offline event", presence("offline", bob_id));
    assert_eq!(offline["name"], "Bob");
    let (_, list) = stack.get("/online");
    assert_eq!(list["clients"], json!([{"id": alice.id, "name": "Alice"}]));
}

#[test]
fn a_second_socket_closing_is_no_offline_news() {
    let stack = Stack::start();
    let mut watcher = stack.connect("{}");
    let first = stack.connect(r#"{"id": 777}"#);
    let second = stack.connect(r#"{"id": 777}"#);
    watcher.expect("777 online", presence("online", 777));
    second.close();
    assert!(watcher.never_gets(Duration::from_millis(500), presence("offline", 777)));
    first.close();
    watcher.expect("777 offline", presence("offline", 777));
}

#[test]
fn channels_are_created_listed_joined_and_left() {
    let stack = Stack::start();
    let mut alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect(r#"{"name":"Bob"}"#);
    // The demo learns names from the online events: wait until it has both.
    alice.expect("Bob online", presence("online", bob.id));

    let (status, answer) = stack.post(
        "/join",
        &format!(r##"{{"id":{},"chan":"#general"}}"##, alice.id),
    );
    assert_eq!(
        (status, &answer),
        (200, &json!({"chan": "general", "online": 1}))
    );
    let alice_id = alice.id;
    alice.expect("her own join notice", |m| {
        m["event"] == "joined" && m["from"] == alice_id
    });
    let (_, answer) = stack.post("/join", &format!(r#"{{"id":{},"chan":"general"}}"#, bob.id));
    assert_eq!(answer["online"], 2);
    let notice = alice.expect("Bob's join notice", |m| {
        m["event"] == "joined" && m["from"] == bob.id
    });
    assert_eq!(notice["text"], "Bob joined #general");
    stack.post("/join", &format!(r#"{{"id":{},"chan":"quiet"}}"#, bob.id));

    let (status, list) = stack.get("/channels");
    assert_eq!(status, 200);
    assert_eq!(
        list["channels"],
        json!([{"chan": "general", "online": 2}, {"chan": "quiet", "online": 1}])
    );

    let body = format!(
        r#"{{"id":{},"chan":"general","text":"hello room","mid":"m-1"}}"#,
        alice.id
    );
    let (status, answer) = stack.post("/chan-message", &body);
    assert_eq!((status, &answer), (200, &json!({"ok": true, "mid": "m-1"})));
    let message = bob.expect("the channel message", |m| m["type"] == "chan");
    assert_eq!(message["chan"], "general");
    assert_eq!(message["from"], alice.id);
    assert_eq!(message["name"], "Alice");
    assert_eq!(message["text"], "hello room");
    assert_eq!(message["mid"], "m-1");
    assert!(
        alice.never_gets(Duration::from_millis(300), |m| m["type"] == "chan"),
        "a sender with one socket gets no echo"
    );

    let carol = stack.connect("{}");
    let body = format!(
        r#"{{"id":{},"chan":"general","text":"let me in"}}"#,
        carol.id
    );
    let (status, answer) = stack.post("/chan-message", &body);
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("join it first"));

    let (status, answer) = stack.post(
        "/leave",
        &format!(r#"{{"id":{},"chan":"general"}}"#, alice.id),
    );
    assert_eq!(
        (status, &answer),
        (200, &json!({"chan": "general", "online": 1}))
    );
    let notice = bob.expect("Alice's leave notice", |m| m["event"] == "left");
    assert_eq!(notice["text"], "Alice left #general");
}

#[test]
fn direct_messages_come_with_receipts() {
    let stack = Stack::start();
    let mut alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect(r#"{"name":"Bob"}"#);
    // The demo learns names from the online events: wait until it has both.
    alice.expect("Bob online", presence("online", bob.id));

    let body = format!(
        r#"{{"from":{},"to":{},"text":"psst","mid":"d1"}}"#,
        alice.id, bob.id
    );
    let (status, answer) = stack.post("/direct", &body);
    assert_eq!((status, &answer), (200, &json!({"ok": true, "mid": "d1"})));
    let message = bob.expect("the direct message", |m| m["type"] == "direct");
    assert_eq!(
        (
            &message["from"],
            &message["to"],
            &message["name"],
            &message["text"]
        ),
        (
            &json!(alice.id),
            &json!(bob.id),
            &json!("Alice"),
            &json!("psst")
        )
    );
    let receipt = alice.expect("a receipt", |m| m.get("receipt").is_some());
    assert_eq!(receipt["receipt"], "发送成功");
    let original: Value = serde_json::from_str(receipt["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        original, message,
        "the receipt carries the message it is about"
    );

    let body = format!(
        r#"{{"from":{},"to":123,"text":"anyone?","mid":"d2"}}"#,
        alice.id
    );
    assert_eq!(stack.post("/direct", &body).0, 200);
    let receipt = alice.expect("an offline receipt", |m| m.get("receipt").is_some());
    assert_eq!(receipt["receipt"], "用户不在线");
    assert!(receipt["content"]
        .as_str()
        .unwrap()
        .contains(r#""mid":"d2""#));

    let body = format!(
        r#"{{"from":{},"to":{},"text":"no receipt","receipt":false}}"#,
        alice.id, bob.id
    );
    assert_eq!(stack.post("/direct", &body).0, 200);
    bob.expect("the second message", |m| m["text"] == "no receipt");
    assert!(alice.never_gets(Duration::from_millis(300), |m| m.get("receipt").is_some()));
}

#[test]
fn broadcasts_reach_everyone() {
    let stack = Stack::start();
    let mut alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect("{}");
    // The demo learns names from the online events: wait until it has both.
    alice.expect("the other client online", presence("online", bob.id));
    let body = format!(r#"{{"from":{},"text":"lunch!"}}"#, alice.id);
    assert_eq!(stack.post("/broadcast", &body), (200, json!({"ok": true})));
    for client in [&mut alice, &mut bob] {
        let message = client.expect("the announcement", |m| m["event"] == "announcement");
        assert_eq!(
            (&message["type"], &message["text"]),
            (&json!("system"), &json!("lunch!"))
        );
        assert_eq!(message["name"], "Alice");
    }
    assert_eq!(stack.post("/broadcast", r#"{"text":"maintenance"}"#).0, 200);
    let message = bob.expect("the system announcement", |m| m["text"] == "maintenance");
    assert!(message.get("from").is_none());
}

#[test]
fn force_offline_warns_then_disconnects() {
    let stack = Stack::start();
    let mut alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect(r#"{"name":"Bob"}"#);
    alice.expect("Bob online", presence("online", bob.id));

    let body = format!(r#"{{"id":{},"by":{}}}"#, bob.id, alice.id);
    let (status, answer) = stack.post("/force-offline", &body);
    assert_eq!(
        (status, &answer),
        (200, &json!({"ok": true, "was_online": true}))
    );
    let notice = bob.expect("the kick notice", |m| m["event"] == "kicked");
    assert_eq!(notice["text"], "Alice disconnected you");
    assert!(
        bob.is_closed_within(PROMPTLY),
        "the node closes Bob's socket"
    );
    alice.expect("Bob offline", presence("offline", bob.id));

    let (status, answer) = stack.post("/force-offline", r#"{"id": 999999}"#);
    assert_eq!(
        (status, &answer),
        (200, &json!({"ok": true, "was_online": false}))
    );
}

#[test]
fn bad_requests_get_json_errors_and_the_service_keeps_serving() {
    let stack = Stack::start();
    let addr = stack.demo.local_addr();
    for (method, path, body, expected) in [
        ("POST", "/join", "not json", 400),
        ("POST", "/join", r#"{"id":1}"#, 400),
        ("POST", "/join", r#"{"id":1,"chan":"two words"}"#, 400),
        (
            "POST",
            "/direct",
            r#"{"from":1,"to":2,"text":"x","extra":true}"#,
            400,
        ),
        ("POST", "/prev-connect", r#"{"id":0}"#, 400),
        ("GET", "/join", "", 405),
        ("DELETE", "/channels", "", 405),
        ("GET", "/admin", "", 404),
    ] {
        let (status, answer) = http(addr, method, path, body);
        assert_eq!(status, expected, "{method} {path} {body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let huge = vec![b'x'; freeim_demo::api::MAX_BODY_BYTES + 1];
    let (status, _, body) = http_raw(addr, "POST", "/broadcast", &huge);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(stack.get("/health"), (200, json!({"status": "ok"})));
    assert_eq!(stack.get("/channels").0, 200);
}

#[test]
fn the_page_and_the_client_library_are_served() {
    let stack = Stack::start();
    let addr = stack.demo.local_addr();
    let (status, head, body) = http_raw(addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(r#"<script src="/freeim-client.js">"#));
    for asset in ["/freeim-client.js", "/app.js", "/style.css"] {
        let (status, _, body) = http_raw(addr, "GET", asset, b"");
        assert_eq!(status, 200, "{asset}");
        assert!(body.len() > 500, "{asset}");
    }
    let (_, head, _) = http_raw(addr, "GET", "/freeim-client.js?v=1", b"");
    assert!(head.contains("text/javascript"), "{head}");
}

#[test]
fn a_missing_node_is_a_clear_503() {
    let redis = RedisServer::start();
    let up = format!("127.0.0.1:{}", common::free_port());
    let down = format!("127.0.0.1:{}", common::free_port());
    let servers = vec![up.clone(), down.clone()];
    let _node = Node::start(&redis, &up, &servers, &up);
    let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), &redis.url(), &up);
    settings.servers = servers;
    let demo = Demo::start(settings).unwrap();
    // Odd ids belong to the second server, which nobody runs.
    let (status, answer) = http(
        demo.local_addr(),
        "POST",
        "/direct",
        r#"{"from":2,"to":3,"text":"hi"}"#,
    );
    assert_eq!(status, 503, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("no FreeIM node is running for") && error.contains(&down),
        "{error}"
    );
    let (status, answer) = http(
        demo.local_addr(),
        "POST",
        "/direct",
        r#"{"from":3,"to":2,"text":"hi"}"#,
    );
    assert_eq!(
        status, 200,
        "the running node still gets its share: {answer}"
    );
}

#[test]
fn redis_going_away_is_a_503_and_recovers() {
    let mut stack = Stack::start();
    stack.redis.kill();
    let (status, answer) = stack.get("/channels");
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .starts_with("Redis is unreachable"));
    stack.redis.restart();
    assert!(
        common::wait_until(PROMPTLY * 2, || stack.get("/channels").0 == 200),
        "the demo serves again once Redis is back"
    );
}

fn is_channels_push(m: &Value) -> bool {
    m["type"] == "channels"
}

/// The TTL Redis reports for `key`, in seconds.
fn ttl(stack: &Stack, key: &str) -> i64 {
    let reply = stack.redis.raw_command(&["TTL", key]);
    reply.trim_start_matches(':').parse().expect(&reply)
}

#[test]
fn channel_history_keeps_the_last_100_in_order_with_an_expiry() {
    let stack = Stack::start();
    let alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect(r#"{"name":"Bob"}"#);
    for id in [alice.id, bob.id] {
        let body = json!({"id": id, "chan": "général"}).to_string();
        assert_eq!(stack.post("/join", &body).0, 200);
    }
    let history = "/history?chan=%23g%C3%A9n%C3%A9ral";
    assert_eq!(stack.get(history), (200, json!({"messages": []})));

    let send = |i: usize| {
        let body = json!({"id": alice.id, "chan": "général", "text": format!("n{i}"), "mid": format!("m{i}")});
        assert_eq!(stack.post("/chan-message", &body.to_string()).0, 200);
    };
    send(0);
    let pushed = bob.expect("the first message", |m| m["mid"] == "m0");
    assert_eq!(
        stack.get(history),
        (200, json!({ "messages": [pushed] })),
        "the exact object pushed"
    );
    (1..105).for_each(send);
    let (status, answer) = stack.get(history);
    assert_eq!(status, 200);
    let mids: Vec<&str> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mid"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (5..105).map(|i| format!("m{i}")).collect();
    assert_eq!(mids, expected, "the last 100, oldest first");
    let ttl = ttl(&stack, "freeim_demo:history:chan:général");
    assert!(0 < ttl && ttl <= 7 * 24 * 3600, "TTL {ttl}");
    assert_eq!(
        stack.get("/history?chan=empty"),
        (200, json!({"messages": []}))
    );
}

#[test]
fn direct_history_is_one_conversation_either_way_round() {
    let stack = Stack::start();
    let alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect(r#"{"name":"Bob"}"#);
    let direct = |from: i64, to: i64, mid: &str| {
        let body = json!({"from": from, "to": to, "text": mid, "mid": mid});
        assert_eq!(stack.post("/direct", &body.to_string()).0, 200);
    };
    direct(alice.id, bob.id, "d1");
    direct(bob.id, alice.id, "d2");
    direct(alice.id, 999_999, "d3");
    let first = bob.expect("the first direct message", |m| m["mid"] == "d1");

    let (status, ab) = stack.get(&format!("/history?id={}&with={}", alice.id, bob.id));
    assert_eq!(status, 200, "{ab}");
    let messages = ab["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{ab}");
    assert_eq!(messages[0], first);
    assert_eq!(messages[1]["mid"], "d2");
    assert_eq!(messages[1]["from"], bob.id);
    let (_, ba) = stack.get(&format!("/history?with={}&id={}", alice.id, bob.id));
    assert_eq!(ab, ba);
    let (_, other) = stack.get(&format!("/history?id={}&with=999999", alice.id));
    assert_eq!(other["messages"].as_array().unwrap().len(), 1, "{other}");

    let (lo, hi) = (alice.id.min(bob.id), alice.id.max(bob.id));
    let ttl = ttl(&stack, &format!("freeim_demo:history:direct:{lo}:{hi}"));
    assert!(0 < ttl && ttl <= 7 * 24 * 3600, "TTL {ttl}");

    for bad in [
        "/history",
        "/history?id=1",
        "/history?id=1&with=x",
        "/history?chan=a%2Fb",
    ] {
        let (status, answer) = stack.get(bad);
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(stack.post("/history", "").0, 405);
}

#[test]
fn channel_list_changes_are_pushed_to_everyone() {
    let stack = Stack::start();
    let alice = stack.connect(r#"{"name":"Alice"}"#);
    let mut bob = stack.connect(r#"{"name":"Bob"}"#);

    let joined = Instant::now();
    let body = json!({"id": alice.id, "chan": "general"}).to_string();
    assert_eq!(stack.post("/join", &body).0, 200);
    let push = bob.expect("the channel list after Alice's join", is_channels_push);
    assert!(
        joined.elapsed() < Duration::from_secs(2),
        "{:?}",
        joined.elapsed()
    );
    assert_eq!(
        push,
        json!({"type": "channels", "channels": [{"chan": "general", "online": 1}]})
    );

    let body = json!({"id": bob.id, "chan": "quiet"}).to_string();
    stack.post("/join", &body);
    bob.expect("the list with #quiet", |m| {
        is_channels_push(m) && m["channels"].as_array().unwrap().len() == 2
    });
    stack.post("/leave", &body);
    bob.expect("the list without #quiet", |m| {
        is_channels_push(m) && m["channels"] == json!([{"chan": "general", "online": 1}])
    });

    let left = Instant::now();
    alice.close();
    bob.expect("the list after Alice went offline", |m| {
        is_channels_push(m) && m["channels"] == json!([])
    });
    assert!(
        left.elapsed() < Duration::from_secs(2),
        "{:?}",
        left.elapsed()
    );
}

#[test]
fn channel_list_pushes_are_coalesced() {
    let stack = Stack::start();
    let mut watcher = stack.connect("{}");
    let started = Instant::now();
    const JOINS: usize = 40;
    for i in 0..JOINS {
        let body = json!({"id": 500 + i, "chan": format!("room{}", i % 4)}).to_string();
        assert_eq!(stack.post("/join", &body).0, 200);
    }
    let burst = started.elapsed();
    let mut pushes = Vec::new();
    while let Some(message) = watcher.recv(Duration::from_secs(1)) {
        if is_channels_push(&message) {
            pushes.push(message);
        }
    }
    let at_most = burst.as_millis() as usize / 250 + 2;
    assert!(
        !pushes.is_empty() && pushes.len() <= at_most && pushes.len() < JOINS,
        "{} pushes for {JOINS} joins in {burst:?}",
        pushes.len()
    );
    let (_, list) = stack.get("/channels");
    assert_eq!(pushes.last().unwrap()["channels"], list["channels"]);
    assert_eq!(
        list["channels"],
        json!([
            {"chan": "room0", "online": 10}, {"chan": "room1", "online": 10},
            {"chan": "room2", "online": 10}, {"chan": "room3", "online": 10},
        ])
    );
}
