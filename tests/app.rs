//! The binary's application over real sockets: routes, rooms, the JSON
//! pub/sub protocol and the HTTP publish API.

#[path = "support/socket.rs"]
mod socket;

use std::net::TcpStream;
use std::time::Duration;

use ferrows::app::{App, AppConfig, NamespaceOptions, Namespaces};
use serde_json::{json, Value};
use socket::*;
use tungstenite::Message as WsMessage;

type Ws = tungstenite::WebSocket<TcpStream>;

fn start(config: AppConfig, loops: usize) -> TestServer {
    let app = App::new(config);
    TestServer::start(quick_config(), loops, move |_| app.clone())
}

fn connect(server: &TestServer, path: &str) -> Ws {
    let stream = TcpStream::connect(server.addr).expect("TCP connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tungstenite::client(server.url(path), stream).expect("the WebSocket handshake").0
}

fn json_reply(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message") {
            WsMessage::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON from the server"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn send(ws: &mut Ws, value: Value) {
    ws.send(WsMessage::text(value.to_string())).unwrap();
}

fn post(server: &TestServer, path: &str, headers: &[&str], body: &str) -> String {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    http_answer(server, request.as_bytes())
}

#[test]
fn pubsub_subscribers_on_several_loops_get_publishes_in_order() {
    let server = start(AppConfig::default(), 3);
    let mut subscribers: Vec<Ws> = (0..9).map(|_| connect(&server, "/pubsub")).collect();
    for (i, ws) in subscribers.iter_mut().enumerate() {
        send(ws, json!({"op": "subscribe", "topics": ["news", "news"], "id": i}));
        assert_eq!(json_reply(ws), json!({"type": "ack", "op": "subscribe", "id": i, "topics": ["news"]}));
    }
    let mut publisher = connect(&server, "/pubsub");
    for n in 0..50 {
        send(&mut publisher, json!({"op": "publish", "topic": "news", "data": {"n": n}, "id": format!("p{n}")}));
        let ack = json_reply(&mut publisher);
        assert_eq!(ack["type"], "ack");
        assert_eq!(ack["id"], format!("p{n}"));
    }
    for ws in &mut subscribers {
        for n in 0..50 {
            assert_eq!(json_reply(ws), json!({"type": "message", "topic": "news", "data": {"n": n}}));
        }
    }
    server.stop();
}

#[test]
fn pubsub_errors_are_answered_and_the_connection_stays_open() {
    let server = start(AppConfig::default(), 1);
    let mut ws = connect(&server, "/pubsub");
    ws.send(WsMessage::text("{oops")).unwrap();
    assert_eq!(json_reply(&mut ws)["code"], "bad_json");
    send(&mut ws, json!({"op": "shout", "id": 1}));
    let error = json_reply(&mut ws);
    assert_eq!((error["code"].as_str(), error["id"].as_i64()), (Some("unknown_op"), Some(1)));
    send(&mut ws, json!({"op": "publish", "topics": [], "data": 1, "id": 2}));
    assert_eq!(json_reply(&mut ws)["code"], "missing_topic");
    ws.send(WsMessage::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(json_reply(&mut ws)["code"], "not_text");
    send(&mut ws, json!({"op": "ping", "id": 3}));
    assert_eq!(json_reply(&mut ws), json!({"type": "ack", "op": "ping", "id": 3}));
    server.stop();
}

#[test]
fn a_room_relays_each_message_to_every_member() {
    let server = start(AppConfig::default(), 2);
    let mut alice = connect(&server, "/rooms/kitchen");
    let mut bob = connect(&server, "/rooms/kitchen");
    let mut elsewhere = connect(&server, "/rooms/garden");
    // Joining takes effect on open; give the second member's subscription a moment.
    std::thread::sleep(Duration::from_millis(100));
    alice.send(WsMessage::text("hello kitchen")).unwrap();
    assert_eq!(alice.read().unwrap(), WsMessage::text("hello kitchen"), "the sender is included");
    assert_eq!(bob.read().unwrap(), WsMessage::text("hello kitchen"));
    elsewhere.send(WsMessage::text("garden only")).unwrap();
    assert_eq!(elsewhere.read().unwrap(), WsMessage::text("garden only"));
    bob.send(WsMessage::text("hi alice")).unwrap();
    assert_eq!(alice.read().unwrap(), WsMessage::text("hi alice"), "nothing from the garden in between");
    server.stop();
}

#[test]
fn demo_page_and_http_answers() {
    let server = start(AppConfig::default(), 1);
    let page = http_answer(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&page), 200);
    assert!(header(&page, "Content-Type").is_some_and(|t| t.starts_with("text/html")), "{page}");
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"));
    assert_eq!(status(&http_answer(&server, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")), 404);
    let wrong = http_answer(&server, b"GET /publish/news HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&wrong), 405);
    assert_eq!(header(&wrong, "Allow").as_deref(), Some("POST"));
    assert_eq!(status(&http_answer(&server, b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n")), 405);
    let big = format!("POST /publish/news HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 2 << 20);
    assert_eq!(status(&http_answer(&server, big.as_bytes())), 413);
    // An upgrade to a path without a WebSocket service.
    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request("/", &[]).as_bytes());
    assert_eq!(status(&client.read_http_head()), 404);
    server.stop();
}

#[test]
fn the_publish_api_reaches_pubsub_subscribers() {
    let server = start(AppConfig::default(), 2);
    let mut a = connect(&server, "/pubsub");
    send(&mut a, json!({"op": "subscribe", "topic": "alerts"}));
    json_reply(&mut a);
    // More subscribers, landing on either loop: `recipients` counts them all, whichever loop the POST lands on.
    let mut others: Vec<_> = (0..7).map(|_| connect(&server, "/pubsub")).collect();
    for ws in &mut others {
        send(ws, json!({"op": "subscribe", "topic": "alerts"}));
        json_reply(ws);
    }
    for _ in 0..4 {
        let answer = post(&server, "/publish/alerts", &["Content-Type: application/json"], r#"{"level": "high"}"#);
        assert_eq!(status(&answer), 200, "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body, json!({"recipients": 8}), "{answer}");
        assert_eq!(json_reply(&mut a), json!({"type": "message", "topic": "alerts", "data": {"level": "high"}}));
        for ws in &mut others {
            assert_eq!(json_reply(ws)["data"], json!({"level": "high"}));
        }
    }
    // The same count in a /pubsub publish ack; the publisher, not subscribed, is not among them.
    let mut publisher = connect(&server, "/pubsub");
    send(&mut publisher, json!({"op": "publish", "topic": "alerts", "data": 1, "id": 5}));
    assert_eq!(json_reply(&mut publisher), json!({"type": "ack", "op": "publish", "id": 5, "recipients": 8}));
    assert_eq!(json_reply(&mut a)["data"], 1);
    // Subscribers that leave, cleanly or not, leave the count on every loop.
    for ws in others.iter_mut().take(2) {
        ws.close(None).unwrap();
    }
    drop(others);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for id in 6.. {
        send(&mut publisher, json!({"op": "publish", "topic": "alerts", "data": id, "id": id}));
        let ack = json_reply(&mut publisher);
        assert_eq!(json_reply(&mut a)["data"], id);
        if ack["recipients"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the closed subscribers still count: {ack}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Text that is not JSON is published as a JSON string.
    assert_eq!(status(&post(&server, "/publish/alerts", &[], "plain words")), 200);
    assert_eq!(json_reply(&mut a)["data"], "plain words");
    server.stop();
}

#[test]
fn the_publish_api_checks_the_key_when_one_is_set() {
    let mut config = AppConfig::default();
    config.api_key = Some("s3cret".into());
    let server = start(config, 1);
    assert_eq!(status(&post(&server, "/publish/x", &[], "1")), 401);
    assert_eq!(status(&post(&server, "/publish/x", &["Authorization: Bearer wrong"], "1")), 401);
    assert_eq!(status(&post(&server, "/publish/x", &["Authorization: Bearer s3cret"], "1")), 200);
    server.stop();
}

#[test]
fn without_a_key_the_publish_api_refuses_what_a_local_proxy_forwards() {
    let server = start(AppConfig::default(), 1);
    assert_eq!(status(&post(&server, "/publish/x", &[], "1")), 200);
    assert_eq!(status(&post(&server, "/publish/x", &["X-Forwarded-For: 203.0.113.9"], "1")), 403);
    assert_eq!(status(&post(&server, "/publish/x", &["Forwarded: for=203.0.113.9"], "1")), 403);
    server.stop();
}

fn text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message") {
            WsMessage::Text(t) => return t.as_str().to_owned(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn rooms_pubsub_and_the_publish_api_are_one_topic_space() {
    let server = start(AppConfig::default(), 2);
    // Members and subscribers on both loops; `chat%3Alobby` is the topic `chat:lobby`.
    let mut members: Vec<Ws> = (0..3).map(|_| connect(&server, "/rooms/chat%3Alobby")).collect();
    let mut subscribers: Vec<Ws> = (0..3).map(|_| connect(&server, "/pubsub")).collect();
    for ws in &mut subscribers {
        send(ws, json!({"op": "subscribe", "topic": "chat:lobby"}));
        json_reply(ws);
    }
    // Joining a room takes effect on open; give the last member's loop a moment.
    std::thread::sleep(Duration::from_millis(100));

    // A room member's text: the room as it was, the subscribers as a JSON string.
    members[0].send(WsMessage::text(r#"hi "all" {not json"#)).unwrap();
    for ws in &mut members {
        assert_eq!(text(ws), r#"hi "all" {not json"#);
    }
    for ws in &mut subscribers {
        assert_eq!(json_reply(ws), json!({"type": "message", "topic": "chat:lobby", "data": "hi \"all\" {not json"}));
    }

    // A /pubsub publish: a JSON string reaches the room unquoted, other JSON as its text.
    let mut publisher = connect(&server, "/pubsub");
    send(&mut publisher, json!({"op": "publish", "topic": "chat:lobby", "data": "from \"pubsub\"", "id": 1}));
    assert_eq!(json_reply(&mut publisher), json!({"type": "ack", "op": "publish", "id": 1, "recipients": 6}));
    send(&mut publisher, json!({"op": "publish", "topic": "chat:lobby", "data": {"n": [1, 2]}, "id": 2}));
    assert_eq!(json_reply(&mut publisher)["recipients"], 6);
    for ws in &mut members {
        assert_eq!(text(ws), r#"from "pubsub""#);
        assert_eq!(text(ws), r#"{"n":[1,2]}"#);
    }
    for ws in &mut subscribers {
        assert_eq!(json_reply(ws)["data"], "from \"pubsub\"");
        assert_eq!(json_reply(ws)["data"], json!({"n": [1, 2]}));
    }

    // The HTTP API, with the topic's name percent-encoded in the path.
    let answer = post(&server, "/publish/chat%3Alobby", &[], r#"{"from": "backend"}"#);
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(answer.ends_with(r#"{"recipients":6}"#), "{answer}");
    for ws in &mut members {
        assert_eq!(text(ws), r#"{"from": "backend"}"#);
    }
    for ws in &mut subscribers {
        assert_eq!(json_reply(ws)["data"], json!({"from": "backend"}));
    }

    // A binary message stays in the room: the subscribers' next message is the text after it.
    members[1].send(WsMessage::binary(vec![1, 2, 3])).unwrap();
    members[1].send(WsMessage::text("after bytes")).unwrap();
    for ws in &mut members {
        assert_eq!(ws.read().unwrap(), WsMessage::binary(vec![1, 2, 3]));
        assert_eq!(text(ws), "after bytes");
    }
    for ws in &mut subscribers {
        assert_eq!(json_reply(ws)["data"], "after bytes");
    }
    // A path segment that is not a topic name is no room.
    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request("/rooms/a%0Ab", &[]).as_bytes());
    assert_eq!(status(&client.read_http_head()), 404);
    server.stop();
}

#[test]
fn namespaces_say_who_may_publish_and_how_many_may_subscribe() {
    let mut config = AppConfig::default();
    let entries = ["news: client_publish=false", "small: max_subscribers=2"];
    config.namespaces = Namespaces::new(NamespaceOptions::default(), entries.map(|e| e.parse().unwrap()).to_vec())
        .expect("distinct prefixes");
    let server = start(config, 2);

    // news: only the backend publishes; a client's publish is refused and the connection stays.
    let mut reader = connect(&server, "/pubsub");
    send(&mut reader, json!({"op": "subscribe", "topic": "news:today"}));
    json_reply(&mut reader);
    send(&mut reader, json!({"op": "publish", "topics": ["open", "news:today"], "data": 1, "id": 3}));
    let refused = json_reply(&mut reader);
    assert_eq!((refused["code"].as_str(), refused["id"].as_i64()), (Some("forbidden"), Some(3)), "{refused}");
    assert_eq!(status(&post(&server, "/publish/news:today", &[], "\"extra\"")), 200);
    assert_eq!(json_reply(&mut reader)["data"], "extra", "nothing of the refused publish went out");
    // A room member of a news: topic who speaks is closed with 1008.
    let mut member = connect(&server, "/rooms/news:today");
    member.send(WsMessage::text("may I?")).unwrap();
    match member.read() {
        Ok(WsMessage::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1008),
        other => panic!("expected a Close with 1008, got {other:?}"),
    }

    // small: two subscribers at most on this node, room members and /pubsub subscribers together.
    let _first = connect(&server, "/rooms/small:x");
    let mut second = connect(&server, "/pubsub");
    std::thread::sleep(Duration::from_millis(100));
    send(&mut second, json!({"op": "subscribe", "topic": "small:x", "id": 1}));
    assert_eq!(json_reply(&mut second)["type"], "ack");
    send(&mut second, json!({"op": "subscribe", "topic": "small:x", "id": 2}));
    assert_eq!(json_reply(&mut second)["type"], "ack", "a subscriber subscribing again is not refused");
    let mut third = connect(&server, "/pubsub");
    send(&mut third, json!({"op": "subscribe", "topics": ["small:y", "small:x"], "id": 4}));
    let full = json_reply(&mut third);
    assert_eq!((full["code"].as_str(), full["id"].as_i64()), (Some("topic_full"), Some(4)), "{full}");
    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request("/rooms/small:x", &[]).as_bytes());
    assert_eq!(status(&client.read_http_head()), 503);
    // Room for one more once a subscriber leaves.
    send(&mut second, json!({"op": "unsubscribe", "topic": "small:x"}));
    json_reply(&mut second);
    std::thread::sleep(Duration::from_millis(100));
    send(&mut third, json!({"op": "subscribe", "topic": "small:x", "id": 5}));
    assert_eq!(json_reply(&mut third)["type"], "ack");
    server.stop();
}

fn json_body(answer: &str) -> Value {
    serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("a body")).expect("a JSON body")
}

#[test]
fn the_backend_api_broadcasts_lists_topics_and_answers_in_json() {
    let mut config = AppConfig::default();
    config.api_key = Some("k3y".into());
    let server = start(config, 2);
    let key = "Authorization: Bearer k3y";
    let mut subscriber = connect(&server, "/pubsub");
    send(&mut subscriber, json!({"op": "subscribe", "topics": ["a", "b"]}));
    json_reply(&mut subscriber);
    let mut member = connect(&server, "/rooms/b");
    std::thread::sleep(Duration::from_millis(100));

    // Broadcast: one publish per distinct topic, in both forms.
    let answer = post(&server, "/api/broadcast", &[key], r#"{"topics":["a","b","a"],"data":{"x":1}}"#);
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(json_body(&answer), json!({"recipients": 3}));
    assert_eq!(json_reply(&mut subscriber), json!({"type": "message", "topic": "a", "data": {"x": 1}}));
    assert_eq!(json_reply(&mut subscriber), json!({"type": "message", "topic": "b", "data": {"x": 1}}));
    assert_eq!(text(&mut member), r#"{"x":1}"#);

    // The topics with subscribers on this node, both kinds counted.
    let answer = http_answer(&server, format!("GET /api/topics HTTP/1.1\r\nHost: x\r\n{key}\r\n\r\n").as_bytes());
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(
        json_body(&answer),
        json!({"topics": [{"topic": "a", "subscribers": 1}, {"topic": "b", "subscribers": 2}]})
    );

    // A user with no session: nothing to close, on any node.
    let answer = post(&server, "/api/disconnect", &[key], r#"{"user":"nobody"}"#);
    assert_eq!((status(&answer), json_body(&answer)), (200, json!({"sessions": 0})));

    // Errors are JSON with a code.
    for (path, headers, body, expected, code) in [
        ("/api/broadcast", &[][..], "{}", 401, "unauthorized"),
        ("/api/broadcast", &[key][..], r#"{"topics":[]}"#, 400, "bad_request"),
        ("/api/broadcast", &[key][..], r#"{"topics":[""],"data":1}"#, 400, "bad_request"),
        ("/api/disconnect", &[key][..], r#"{"who":"x"}"#, 400, "bad_request"),
        ("/api/nothing", &[key][..], "", 404, "not_found"),
        ("/publish/a", &["Authorization: Bearer nope"][..], "1", 401, "unauthorized"),
    ] {
        let answer = post(&server, path, headers, body);
        assert_eq!(status(&answer), expected, "{path} {body}: {answer}");
        assert_eq!(json_body(&answer)["code"], code, "{answer}");
    }
    let get = http_answer(&server, format!("GET /api/broadcast HTTP/1.1\r\nHost: x\r\n{key}\r\n\r\n").as_bytes());
    assert_eq!((status(&get), header(&get, "Allow").as_deref()), (405, Some("POST")));
    server.stop();
}

#[test]
fn a_topic_with_history_numbers_its_publications_and_gives_the_last_ones_back() {
    let mut config = AppConfig::default();
    let kept: ferrows::app::Namespace = "chat: history_size=3".parse().unwrap();
    config.namespaces = Namespaces::new(NamespaceOptions::default(), vec![kept]).unwrap();
    let server = start(config, 2);
    let mut subscriber = connect(&server, "/pubsub");
    // Before any publication: offset 0, and an epoch that the first publication keeps.
    send(&mut subscriber, json!({"op": "history", "topic": "chat:x", "id": 1}));
    let empty = json_reply(&mut subscriber);
    assert_eq!((empty["type"].as_str(), empty["offset"].as_u64()), (Some("history"), Some(0)), "{empty}");
    assert_eq!(empty["publications"], json!([]));
    let epoch = empty["epoch"].as_str().unwrap().to_owned();
    send(&mut subscriber, json!({"op": "subscribe", "topics": ["chat:x", "plain"]}));
    json_reply(&mut subscriber);
    let mut member = connect(&server, "/rooms/chat:x");
    std::thread::sleep(Duration::from_millis(100));

    // Five publications from three ways in: numbered in order, the room's frames bare.
    member.send(WsMessage::text("one")).unwrap();
    // Its echo to the sender says the room published it, before the others come in.
    assert_eq!(text(&mut member), "one");
    let mut publisher = connect(&server, "/pubsub");
    for n in 2..=4 {
        send(&mut publisher, json!({"op": "publish", "topic": "chat:x", "data": {"n": n}, "id": n}));
        json_reply(&mut publisher);
    }
    assert_eq!(status(&post(&server, "/publish/chat:x", &[], "five")), 200);
    let expected = [json!("one"), json!({"n": 2}), json!({"n": 3}), json!({"n": 4}), json!("five")];
    for (i, data) in expected.iter().enumerate() {
        let message = json_reply(&mut subscriber);
        assert_eq!(message["data"], *data);
        assert_eq!(message["offset"], i as u64 + 1, "{message}");
        assert_eq!(message["epoch"], epoch.as_str());
    }
    assert_eq!(text(&mut member), r#"{"n":2}"#);
    // A topic without history: no position in its messages, and no history to ask for.
    send(&mut publisher, json!({"op": "publish", "topic": "plain", "data": 0}));
    json_reply(&mut publisher);
    let plain = json_reply(&mut subscriber);
    assert!(plain.get("offset").is_none() && plain.get("epoch").is_none(), "{plain}");
    send(&mut subscriber, json!({"op": "history", "topic": "plain", "id": 9}));
    assert_eq!(json_reply(&mut subscriber)["code"], "no_history");

    // The last three are kept; `limit` takes fewer.
    send(&mut subscriber, json!({"op": "history", "topic": "chat:x", "limit": 2, "id": 2}));
    assert_eq!(
        json_reply(&mut subscriber),
        json!({"type": "history", "id": 2, "topic": "chat:x", "offset": 5, "epoch": epoch,
               "publications": [{"offset": 4, "data": {"n": 4}}, {"offset": 5, "data": "five"}]})
    );
    let answer = http_answer(&server, b"GET /api/history/chat%3Ax HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&answer), 200, "{answer}");
    let body = json_body(&answer);
    assert_eq!((body["offset"].as_u64(), body["epoch"].as_str()), (Some(5), Some(epoch.as_str())));
    let offsets: Vec<u64> =
        body["publications"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, [3, 4, 5]);
    let none = http_answer(&server, b"GET /api/history/plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status(&none), json_body(&none)["code"].as_str()), (404, Some("no_history")));
    server.stop();
}

#[test]
fn a_subscriber_that_comes_back_recovers_what_it_missed_once_and_in_order() {
    let mut config = AppConfig::default();
    let entries = ["chat: history_size=10", "small: history_size=2"];
    config.namespaces = Namespaces::new(NamespaceOptions::default(), entries.map(|e| e.parse().unwrap()).to_vec())
        .expect("distinct prefixes");
    let server = start(config, 2);
    let mut publisher = connect(&server, "/pubsub");
    let publish = |publisher: &mut Ws, topic: &str, n: u64| {
        send(publisher, json!({"op": "publish", "topic": topic, "data": n, "id": n}));
        assert_eq!(json_reply(publisher)["op"], "publish");
    };

    let mut first = connect(&server, "/pubsub");
    send(&mut first, json!({"op": "subscribe", "topics": ["chat:x", "small:y"], "id": 1}));
    let ack = json_reply(&mut first);
    assert_eq!(ack["positions"]["chat:x"]["offset"], 0, "{ack}");
    let epoch = ack["positions"]["chat:x"]["epoch"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        publish(&mut publisher, "chat:x", n);
        assert_eq!(json_reply(&mut first)["offset"], n);
    }
    drop(first);
    for n in 4..=5 {
        publish(&mut publisher, "chat:x", n);
    }
    for n in 1..=5 {
        publish(&mut publisher, "small:y", n);
    }

    // Back, from where it left: 4 and 5 again, marked, then the ack, then live ones once.
    let mut again = connect(&server, "/pubsub");
    let since = json!({"chat:x": {"offset": 3, "epoch": epoch}, "small:y": {"offset": 1, "epoch": "whatever"}});
    send(&mut again, json!({"op": "subscribe", "topics": ["chat:x", "small:y"], "since": since, "id": 2}));
    for n in 4..=5 {
        let message = json_reply(&mut again);
        assert_eq!((message["offset"].as_u64(), message["data"].as_u64()), (Some(n), Some(n)), "{message}");
        assert_eq!(message["recovered"], true);
    }
    let ack = json_reply(&mut again);
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["recovered"], json!({"chat:x": true, "small:y": false}), "the wrong epoch cannot recover");
    assert_eq!(ack["positions"]["chat:x"], json!({"offset": 5, "epoch": epoch}));
    publish(&mut publisher, "chat:x", 6);
    let live = json_reply(&mut again);
    assert_eq!((live["offset"].as_u64(), live.get("recovered")), (Some(6), None), "{live}");

    // Too far behind for what is kept: told so, with the current position.
    let mut late = connect(&server, "/pubsub");
    let small_epoch = ack["positions"]["small:y"]["epoch"].as_str().unwrap().to_owned();
    let since = json!({"small:y": {"offset": 1, "epoch": small_epoch}});
    send(&mut late, json!({"op": "subscribe", "topic": "small:y", "since": since, "id": 3}));
    let ack = json_reply(&mut late);
    assert_eq!(
        (ack["recovered"]["small:y"].as_bool(), ack["positions"]["small:y"]["offset"].as_u64()),
        (Some(false), Some(5))
    );
    // Right behind the kept window: recovered.
    let since = json!({"small:y": {"offset": 3, "epoch": small_epoch}});
    send(&mut late, json!({"op": "subscribe", "topic": "small:y", "since": since, "id": 4}));
    assert_eq!(json_reply(&mut late)["offset"], 4);
    assert_eq!(json_reply(&mut late)["offset"], 5);
    assert_eq!(json_reply(&mut late)["recovered"]["small:y"], true);
    server.stop();
}

#[test]
fn presence_says_who_is_in_a_topic_and_join_leave_tells_the_others() {
    let mut config = AppConfig::default();
    let live: ferrows::app::Namespace = "live: presence=true join_leave=true".parse().unwrap();
    config.namespaces = Namespaces::new(NamespaceOptions::default(), vec![live]).unwrap();
    let server = start(config, 2);
    let mut watcher = connect(&server, "/pubsub");
    send(&mut watcher, json!({"op": "subscribe", "topic": "live:x", "id": 1}));
    assert_eq!(json_reply(&mut watcher)["type"], "ack");
    let member = connect(&server, "/rooms/live:x");
    let join = json_reply(&mut watcher);
    assert_eq!((join["type"].as_str(), join["topic"].as_str()), (Some("join"), Some("live:x")), "{join}");
    let member_id = join["client"].as_str().unwrap().to_owned();

    send(&mut watcher, json!({"op": "presence", "topic": "live:x", "id": 2}));
    let presence = json_reply(&mut watcher);
    assert_eq!((presence["type"].as_str(), presence["id"].as_i64()), (Some("presence"), Some(2)), "{presence}");
    let clients: Vec<&str> =
        presence["clients"].as_array().unwrap().iter().map(|c| c["client"].as_str().unwrap()).collect();
    assert_eq!(clients.len(), 2, "{presence}");
    assert!(clients.contains(&member_id.as_str()));
    assert!(presence["clients"][0]["since"].as_u64().unwrap() > 1_700_000_000);
    send(&mut watcher, json!({"op": "presence_count", "topic": "live:x", "id": 3}));
    assert_eq!(json_reply(&mut watcher), json!({"type": "presence_count", "id": 3, "topic": "live:x", "count": 2}));
    let answer = http_answer(&server, b"GET /api/presence/live:x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(json_body(&answer)["clients"].as_array().map(Vec::len), Some(2), "{answer}");

    // The member goes: the others hear it, and it is gone from presence.
    drop(member);
    let leave = json_reply(&mut watcher);
    assert_eq!((leave["type"].as_str(), leave["client"].as_str()), (Some("leave"), Some(member_id.as_str())));
    send(&mut watcher, json!({"op": "presence_count", "topic": "live:x", "id": 4}));
    assert_eq!(json_reply(&mut watcher)["count"], 1);
    send(&mut watcher, json!({"op": "unsubscribe", "topic": "live:x"}));
    json_reply(&mut watcher);
    send(&mut watcher, json!({"op": "presence_count", "topic": "live:x", "id": 5}));
    assert_eq!(json_reply(&mut watcher)["count"], 0);
    // A topic whose namespace keeps no presence.
    send(&mut watcher, json!({"op": "presence", "topic": "other", "id": 6}));
    assert_eq!(json_reply(&mut watcher)["code"], "no_presence");
    server.stop();
}

#[test]
fn with_history_a_rooms_text_and_binary_messages_keep_their_order() {
    let mut config = AppConfig::default();
    let chat: ferrows::app::Namespace = "chat: history_size=10".parse().unwrap();
    config.namespaces = Namespaces::new(NamespaceOptions::default(), vec![chat]).unwrap();
    let server = start(config, 2);
    // Several members, so that some share the sender's loop and some do not.
    let mut members: Vec<Ws> = (0..4).map(|_| connect(&server, "/rooms/chat:r")).collect();
    let mut sender = connect(&server, "/rooms/chat:r");
    for n in 0..100 {
        let message = if n % 2 == 0 { WsMessage::text(n.to_string()) } else { WsMessage::binary(vec![n as u8]) };
        sender.send(message).unwrap();
    }
    for member in &mut members {
        for n in 0..100 {
            let got = match member.read().expect("a message") {
                WsMessage::Text(t) => t.as_str().parse::<u8>().expect("a number"),
                WsMessage::Binary(b) => b[0],
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(got, n, "in the order sent");
        }
    }
    server.stop();
}

#[test]
fn a_recovery_larger_than_the_output_queue_answers_false() {
    let mut config = AppConfig::default();
    let chat: ferrows::app::Namespace = "chat: history_size=50".parse().unwrap();
    config.namespaces = Namespaces::new(NamespaceOptions::default(), vec![chat]).unwrap();
    let app = App::new(config);
    let mut server_config = quick_config();
    server_config.max_out_queue = 8 << 10;
    let server = TestServer::start(server_config, 1, move |_| app.clone());
    let mut publisher = connect(&server, "/pubsub");
    send(&mut publisher, json!({"op": "subscribe", "topic": "chat:big", "id": 0}));
    let epoch = json_reply(&mut publisher)["positions"]["chat:big"]["epoch"].as_str().unwrap().to_owned();
    let kilobyte = "x".repeat(1000);
    for n in 1..=20 {
        send(&mut publisher, json!({"op": "publish", "topic": "chat:big", "data": kilobyte, "id": n}));
        // The ack and the message, in either order.
        let (a, b) = (json_reply(&mut publisher), json_reply(&mut publisher));
        let offsets: Vec<u64> = [&a, &b].iter().filter_map(|v| v["offset"].as_u64()).collect();
        assert_eq!(offsets, [n], "{a} {b}");
    }
    let mut reader = connect(&server, "/pubsub");
    let since = json!({"chat:big": {"offset": 0, "epoch": epoch}});
    send(&mut reader, json!({"op": "subscribe", "topic": "chat:big", "since": since, "id": 1}));
    let ack = json_reply(&mut reader);
    assert_eq!((ack["type"].as_str(), ack["recovered"]["chat:big"].as_bool()), (Some("ack"), Some(false)), "{ack}");
    assert_eq!(ack["positions"]["chat:big"]["offset"], 20);
    // What fits is recovered.
    let mut near = connect(&server, "/pubsub");
    let since = json!({"chat:big": {"offset": 15, "epoch": epoch}});
    send(&mut near, json!({"op": "subscribe", "topic": "chat:big", "since": since, "id": 2}));
    for n in 16..=20 {
        assert_eq!(json_reply(&mut near)["offset"], n);
    }
    assert_eq!(json_reply(&mut near)["recovered"]["chat:big"], true);
    server.stop();
}
