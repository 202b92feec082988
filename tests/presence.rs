//! Presence: online/offline events, the `Online` hash, channel membership
//! clean-up on a client's last close, tokens (single use, expiry), and a node
//! killed with SIGKILL and restarted leaving no ghost presence.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use imhelper::{ChanInfo, ImHelper, PresenceEvent};

fn one_node() -> (TestRedis, Node, ImHelper) {
    let redis = TestRedis::start();
    let node = Node::start(&redis);
    let im = helper(&redis, &[&node]);
    (redis, node, im)
}

fn sorted_ids(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

fn chan_list(im: &ImHelper) -> Vec<(String, i64)> {
    let mut list: Vec<(String, i64)> = im
        .get_chan_list()
        .unwrap()
        .into_iter()
        .map(|ChanInfo { chan, online }| (chan, online))
        .collect();
    list.sort();
    list
}

#[test]
fn online_and_offline_events_carry_the_client_id_and_meta() {
    let (_redis, _node, im) = one_node();
    let mut events = im.events().unwrap();

    let web = connect_as(&im, 7, "web; alice");
    assert_eq!(next_events(&mut events, 1), [online(7, "web; alice")]);
    let phone = connect_as(&im, 7, "phone ☎ \"quoted\"");
    assert_eq!(
        next_events(&mut events, 1),
        [online(7, "phone ☎ \"quoted\"")]
    );
    let other = connect_as(&im, -3, "");
    assert_eq!(next_events(&mut events, 1), [online(-3, "")]);

    web.close();
    assert_eq!(next_events(&mut events, 1), [offline(7, "web; alice")]);
    drop(phone); // TCP close without a closing handshake
    assert_eq!(
        next_events(&mut events, 1),
        [offline(7, "phone ☎ \"quoted\"")]
    );
    other.close();
    assert_eq!(next_events(&mut events, 1), [offline(-3, "")]);
    assert_eq!(events.recv_timeout(QUIET), None, "no extra events");
}

#[test]
fn the_event_bus_calls_back_for_online_and_offline() {
    let (_redis, _node, im) = one_node();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (on, off) = (seen.clone(), seen.clone());
    let bus = im
        .event_bus(
            move |c| on.lock().unwrap().push(PresenceEvent::Online(c)),
            move |c| off.lock().unwrap().push(PresenceEvent::Offline(c)),
        )
        .unwrap();

    let client = connect_as(&im, 42, "bus");
    assert!(wait_until(PROMPTLY, || seen.lock().unwrap().len() == 1));
    client.close();
    assert!(wait_until(PROMPTLY, || seen.lock().unwrap().len() == 2));
    assert_eq!(
        *seen.lock().unwrap(),
        [online(42, "bus"), offline(42, "bus")]
    );
    bus.stop();
}

#[test]
fn the_online_hash_counts_every_socket_and_lists_clients() {
    let (redis, _node, im) = one_node();
    let mut sevens: Vec<Client> = (0..3).map(|_| connect_as(&im, 7, "m")).collect();
    let eight = connect_as(&im, 8, "m");
    wait_online(&redis, 7, Some(3));
    wait_online(&redis, 8, Some(1));
    assert_eq!(
        online_all(&redis),
        [("7".to_string(), "3".to_string()), ("8".into(), "1".into())].into()
    );
    assert_eq!(sorted_ids(im.get_client_list_by_online().unwrap()), [7, 8]);

    sevens.pop().unwrap().close();
    wait_online(&redis, 7, Some(2));
    drop(sevens.pop()); // abrupt TCP close counts too
    wait_online(&redis, 7, Some(1));
    assert_eq!(sorted_ids(im.get_client_list_by_online().unwrap()), [7, 8]);
    sevens.pop().unwrap().close();
    wait_online(&redis, 7, None);
    assert_eq!(im.get_client_list_by_online().unwrap(), [8]);
    eight.close();
    wait_online(&redis, 8, None);
    assert!(im.get_client_list_by_online().unwrap().is_empty());
}

#[test]
fn has_online_and_has_online_many_follow_the_sockets() {
    let (redis, _node, im) = one_node();
    assert!(!im.has_online(1).unwrap());
    let one = connect_as(&im, 1, "m");
    let _three = connect_as(&im, 3, "m");
    wait_online(&redis, 1, Some(1));
    wait_online(&redis, 3, Some(1));
    assert!(im.has_online(1).unwrap());
    assert!(!im.has_online(2).unwrap());
    assert_eq!(
        im.has_online_many(&[3, 2, 1, 4]).unwrap(),
        [true, false, true, false]
    );
    assert!(im.has_online_many(&[]).unwrap().is_empty());
    one.close();
    wait_online(&redis, 1, None);
    assert!(!im.has_online(1).unwrap());
    assert_eq!(im.has_online_many(&[1, 3]).unwrap(), [false, true]);
}

#[test]
fn channel_memberships_are_cleared_only_when_the_last_socket_closes() {
    let (redis, _node, im) = one_node();
    let first = connect_as(&im, 5, "a");
    let second = connect_as(&im, 5, "b");
    let six = connect_as(&im, 6, "c");
    im.join_chan(5, &["a", "b"]).unwrap();
    im.join_chan(6, &["a"]).unwrap();
    assert_eq!(chan_list(&im), [("a".into(), 2), ("b".into(), 1)]);

    first.close();
    wait_online(&redis, 5, Some(1)); // the close script ran
    assert_eq!(
        chan_list(&im),
        [("a".into(), 2), ("b".into(), 1)],
        "one of two sockets closing leaves the channels alone"
    );
    assert_eq!(sorted_ids(im.get_chan_client_list("a").unwrap()), [5, 6]);
    let mut chans = im.get_chan_list_by_client_id(5).unwrap();
    chans.sort();
    assert_eq!(chans, ["a", "b"]);

    second.close();
    wait_online(&redis, 5, None);
    assert_eq!(chan_list(&im), [("a".into(), 1)]);
    assert_eq!(im.get_chan_client_list("a").unwrap(), [6]);
    assert!(im.get_chan_client_list("b").unwrap().is_empty());
    assert!(im.get_chan_list_by_client_id(5).unwrap().is_empty());
    assert_eq!(im.get_chan_online("a").unwrap(), 1);
    assert_eq!(im.get_chan_online("b").unwrap(), 0);
    assert_eq!(
        redis.raw_command(&["EXISTS", &owner_keys(&redis, 5).client(5)]),
        ":0"
    );

    // Client 6 stays a member while connected; leaving empties the list.
    im.leave_chan_clients("a", &[6]).unwrap();
    assert!(chan_list(&im).is_empty());
    drop(six);
}

#[test]
fn a_token_admits_one_socket_only() {
    let (redis, node, im) = one_node();
    let url = im.prev_connect_server(9, "once").unwrap();
    let token = url.split("token=").nth(1).unwrap().to_string();
    assert_eq!(token.len(), 128);
    assert_eq!(redis.raw_command(&["TTL", &node.keys.token(&token)]), ":10");
    let mut first = Client::connect(&url).expect("the first use is admitted");
    assert_eq!(
        redis.raw_command(&["EXISTS", &node.keys.token(&token)]),
        ":0",
        "the token is deleted when used"
    );
    assert_eq!(Client::refusal_status(&url), 401, "a used token is refused");
    wait_online(&redis, 9, Some(1));
    im.send_message(0, &[9], "first socket fine", false)
        .unwrap();
    assert_eq!(
        first.recv_text(PROMPTLY).as_deref(),
        Some("\"first socket fine\"")
    );
    assert_still_serves(&redis, &node);
}

#[test]
fn an_expired_or_unknown_token_is_refused() {
    let (redis, node, _im) = one_node();
    let key = &node.keys.token("shortlived");
    let value = r#"{"Item1":31,"Item2":"late"}"#;
    assert_eq!(redis.raw_command(&["SET", key, value, "EX", "1"]), "+OK");
    assert!(
        wait_until(PROMPTLY, || redis.raw_command(&["EXISTS", key]) == ":0"),
        "the token expires"
    );
    let url = format!("ws://{}/ws?token=shortlived", node.server);
    assert_eq!(Client::refusal_status(&url), 401);
    let unknown = format!("ws://{}/ws?token=neverissued", node.server);
    assert_eq!(Client::refusal_status(&unknown), 401);
    assert_eq!(online_count(&redis, 31), None);

    // The same token, while still alive, is admitted (the check above can fail).
    redis.raw_command(&["SET", key, value, "EX", "1"]);
    let _client = Client::connect(&url).expect("a live token is admitted");
    wait_online(&redis, 31, Some(1));
}

#[test]
fn a_killed_and_restarted_node_leaves_no_ghost_presence() {
    let (redis, mut node, im) = one_node();
    let spy = Spy::start(&redis, &event_channels(&redis, "Offline"));
    let a = connect_as(&im, 11, "a");
    let b1 = connect_as(&im, 12, "b");
    let b2 = connect_as(&im, 12, "b");
    im.join_chan(11, &["room"]).unwrap();
    im.join_chan(12, &["room"]).unwrap();
    im.join_chan(13, &["room"]).unwrap(); // never connected: stays a member
    wait_online(&redis, 11, Some(1));
    wait_online(&redis, 12, Some(2));

    node.kill();
    drop((a, b1, b2));
    assert_eq!(
        online_count(&redis, 12).as_deref(),
        Some("2"),
        "SIGKILL leaves the counts behind (precondition)"
    );

    node.restart();
    wait_online(&redis, 11, None);
    wait_online(&redis, 12, None);
    assert!(im.get_client_list_by_online().unwrap().is_empty());
    assert_eq!(chan_list(&im), [("room".into(), 1)]);
    assert_eq!(im.get_chan_client_list("room").unwrap(), [13]);

    let mut reaped: Vec<String> = spy.collect(QUIET).into_iter().map(|(_, p)| p).collect();
    reaped.sort();
    assert_eq!(
        reaped,
        [
            r#"{"Item1":11,"Item2":"a"}"#,
            r#"{"Item1":12,"Item2":"b"}"#,
            r#"{"Item1":12,"Item2":"b"}"#
        ],
        "one offline event per reaped socket"
    );

    // The restarted node works and counts from the truth.
    let mut again = connect_as(&im, 12, "back");
    wait_online(&redis, 12, Some(1));
    im.send_message(0, &[12], "hello again", false).unwrap();
    assert_eq!(
        again.recv_text(PROMPTLY).as_deref(),
        Some("\"hello again\"")
    );
}

#[test]
fn reaped_offline_events_carry_each_sockets_own_meta() {
    let (redis, mut node, im) = one_node();
    let spy = Spy::start(&redis, &event_channels(&redis, "Offline"));
    let phone = connect_as(&im, 12, "phone");
    let laptop = connect_as(&im, 12, "laptop");
    wait_online(&redis, 12, Some(2));

    node.kill();
    drop((phone, laptop));
    node.restart();
    wait_online(&redis, 12, None);
    let mut reaped: Vec<String> = spy.collect(QUIET).into_iter().map(|(_, p)| p).collect();
    reaped.sort();
    assert_eq!(
        reaped,
        [
            r#"{"Item1":12,"Item2":"laptop"}"#,
            r#"{"Item1":12,"Item2":"phone"}"#
        ],
        "the offline events of reaped sockets repeat their online events"
    );
}

#[test]
fn racing_uses_of_one_token_admit_exactly_one_socket() {
    let (redis, node, im) = one_node();
    for round in 0..5 {
        let url = im.prev_connect_server(40 + round, "race").unwrap();
        let outcomes: Vec<Result<Client, u16>> = std::thread::scope(|s| {
            let attempts: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| match Client::connect(&url).map_err(|e| *e) {
                        Ok(client) => Ok(client),
                        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                        Err(e) => panic!("unexpected failure: {e}"),
                    })
                })
                .collect();
            attempts.into_iter().map(|a| a.join().unwrap()).collect()
        });
        let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(admitted, 1, "round {round}");
        assert!(outcomes.iter().all(|o| matches!(o, Ok(_) | Err(401))));
        wait_online(&redis, 40 + round, Some(1));
    }
    assert_still_serves(&redis, &node);
}

#[test]
fn concurrent_opens_and_closes_leave_exact_counts_and_events() {
    let (redis, _node, im) = one_node();
    let mut events = im.events().unwrap();
    im.join_chan(3, &["busy"]).unwrap();
    let clients: Vec<Client> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let im = &im;
                s.spawn(move || {
                    (0..5)
                        .map(|_| connect_as(im, t % 4, "burst"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(clients.len(), 40);
    for id in 0..4 {
        wait_online(&redis, id, Some(10));
    }
    std::thread::scope(|s| {
        let mut clients = clients;
        while !clients.is_empty() {
            let batch: Vec<Client> = clients.drain(..clients.len().min(5)).collect();
            s.spawn(move || {
                for (i, client) in batch.into_iter().enumerate() {
                    if i % 2 == 0 {
                        client.close();
                    } else {
                        drop(client);
                    }
                }
            });
        }
    });
    for id in 0..4 {
        wait_online(&redis, id, None);
    }
    let all = sorted(next_events(&mut events, 80));
    let expected: Vec<_> = (0..4)
        .flat_map(|id| std::iter::repeat_n(online(id, "burst"), 10))
        .chain((0..4).flat_map(|id| std::iter::repeat_n(offline(id, "burst"), 10)))
        .collect();
    assert_eq!(all, expected);
    assert_eq!(events.recv_timeout(QUIET), None, "no extra events");
    assert!(
        im.get_chan_list().unwrap().is_empty(),
        "3 left busy on its last close"
    );
}

#[test]
fn a_custom_path_names_every_key_and_channel() {
    let redis = TestRedis::start();
    let node = Node::start_with(&redis, &["--path", "/im/chat"]);
    let mut options = imhelper::ImHelperOptions::new(redis.url(), vec![node.server.clone()]);
    options.path = "/im/chat".into();
    let im = ImHelper::new(options).unwrap();
    assert_eq!(im.prefix(), "im_v2_im_chat");
    let mut events = im.events().unwrap();

    let url = im.prev_connect_server(5, "custom").unwrap();
    assert!(url.starts_with(&format!("ws://{}/im/chat?token=", node.server)));
    let mut client = Client::connect(&url).expect("upgrade on the custom path");
    assert_eq!(next_events(&mut events, 1), [online(5, "custom")]);
    assert!(node.keys.online().ends_with("im_v2_im_chatOnline"));
    assert!(wait_until(PROMPTLY, || hget(
        &redis,
        &node.keys.online(),
        "5"
    )
    .as_deref()
        == Some("1")));
    let default_online = names(&redis).of(&node.server).online();
    assert!(default_online.ends_with("im_v2_wsOnline"));
    assert_eq!(redis.raw_command(&["EXISTS", &default_online]), ":0");
    im.send_message(0, &[5], "on the custom path", false)
        .unwrap();
    assert_eq!(
        client.recv_text(PROMPTLY).as_deref(),
        Some("\"on the custom path\"")
    );

    // The default path is not served, and tokens under the default prefix
    // admit nobody.
    let value = r#"{"Item1":6,"Item2":"x"}"#;
    let token_key = names(&redis).of(&node.server).token("underdefault");
    assert_eq!(
        redis.raw_command(&["SET", &token_key, value, "EX", "10"]),
        "+OK"
    );
    let default = format!("ws://{}/ws?token=underdefault", node.server);
    assert_eq!(Client::refusal_status(&default), 404);
    let wrong_prefix = default.replace("/ws?", "/im/chat?");
    assert_eq!(Client::refusal_status(&wrong_prefix), 401);
    client.close();
    assert_eq!(next_events(&mut events, 1), [offline(5, "custom")]);
}

#[test]
fn a_token_with_its_fields_in_another_order_is_accepted() {
    let (redis, node, im) = one_node();
    let mut events = im.events().unwrap();
    redis.raw_command(&[
        "SET",
        &node.keys.token("reordered"),
        r#"{"Item2":"dotnet","Item1":77}"#,
        "EX",
        "10",
    ]);
    let url = format!("ws://{}/ws?token=reordered", node.server);
    let _client = Client::connect(&url).expect("admitted");
    assert_eq!(next_events(&mut events, 1), [online(77, "dotnet")]);
    wait_online(&redis, 77, Some(1));
}
