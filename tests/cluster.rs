//! Several `ferrows` processes sharing topics through a real Redis
//! (`redis-server` from Debian; `.ci/run` installs it), started by the test
//! on a free port.
#![cfg(feature = "redis")]

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;
#[path = "support/rng.rs"]
mod rng;
#[cfg(feature = "jwt")]
#[path = "support/tokens.rs"]
mod tokens;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cluster::{
    assert_silent, epoch_of, get_json, healthz, kill, metric, next, next_message, next_message_within, next_of_type,
    node, nodes, offsets, publish, publish_http, publisher, pubsub, request, room, room_text, send_publish, subscribe,
    subscriber, wait_for_health, Reader, Ws,
};
use ferrows::client::{Error, Message};
use process::ServerProcess;
use redis::Redis;
use rng::Rng;
use serde_json::json;

/// Three nodes in the cluster, with a subscriber of `topic` on the first two
/// and both nodes' subscriptions on Redis.
fn three_nodes(redis: &Redis, name: &str, topic: &str) -> ([ServerProcess; 3], Ws, Ws) {
    let nodes = nodes(name, |_| redis.url(), &[]);
    let on_a = subscriber(nodes[0].addr, topic);
    let on_b = subscriber(nodes[1].addr, topic);
    redis.wait_for_subscribers(&format!("ferrows:t:topic/{topic}"), 2);
    (nodes, on_a, on_b)
}

#[test]
fn a_publish_on_any_node_reaches_every_node_once_and_in_order() {
    let redis = Redis::start();
    let ([a, b, c], mut on_a, mut on_b) = three_nodes(&redis, "cluster", "news");

    let mut publisher = pubsub(b.addr);
    for i in 0..50 {
        send_publish(&mut publisher, "news", json!({"from": "b", "i": i}));
    }
    for i in 0..50 {
        publish_http(c.addr, "news", &json!({"from": "c", "i": i}));
    }
    // A gets B's 50 and C's 50, each once and in its publisher's order
    // (the two publishers race each other); B gets its own node's publishes
    // once (locally, not again from Redis) and C's.
    for ws in [&mut on_a, &mut on_b] {
        let mut seen = std::collections::HashMap::<String, Vec<u64>>::new();
        for _ in 0..100 {
            let data = next_message(ws)["data"].clone();
            seen.entry(data["from"].as_str().unwrap().to_owned()).or_default().push(data["i"].as_u64().unwrap());
        }
        let expected: Vec<u64> = (0..50).collect();
        assert_eq!(seen.get("b"), Some(&expected));
        assert_eq!(seen.get("c"), Some(&expected));
        assert_silent(ws, Duration::from_millis(300));
    }
    assert_eq!(metric(a.addr, "ferrows_cluster_received_total"), 100);
    assert_eq!(metric(b.addr, "ferrows_cluster_received_total"), 50);
    // Each publish goes out on the topic's two channels: its `/pubsub` subscribers' and its room's.
    assert_eq!(metric(b.addr, "ferrows_cluster_published_total"), 100);
    assert_eq!(metric(a.addr, "ferrows_cluster_duplicates_total"), 0);
    assert_eq!(metric(a.addr, "ferrows_cluster_gaps_total"), 0);

    // The last local subscriber leaving unsubscribes the node's channel.
    drop(on_a);
    redis.wait_for_subscribers("ferrows:t:topic/news", 1);
}

#[test]
fn rooms_pubsub_and_the_publish_api_meet_across_nodes() {
    let redis = Redis::start();
    let [a, b] = nodes("space", |_| redis.url(), &[]);
    let mut member_a = room(a.addr, "lobby");
    let mut member_b = room(b.addr, "lobby");
    let mut subscriber_b = subscriber(b.addr, "lobby");
    redis.wait_for_subscribers("ferrows:t:room/lobby", 2);
    redis.wait_for_subscribers("ferrows:t:topic/lobby", 1);

    // A room member on A: the member on B, and B's /pubsub subscriber as a JSON string.
    member_a.send_text("hello from a").unwrap();
    assert_eq!(room_text(&mut member_a), "hello from a");
    assert_eq!(room_text(&mut member_b), "hello from a");
    assert_eq!(next_message(&mut subscriber_b)["data"], json!("hello from a"));

    // A /pubsub publish on A and the publish API on A reach both rooms' members and B's subscriber.
    let mut publisher_a = pubsub(a.addr);
    send_publish(&mut publisher_a, "lobby", json!({"n": 1}));
    publish_http(a.addr, "lobby", &json!("from the backend"));
    // Two publishers: each one's order is kept, not the order between them.
    for member in [&mut member_a, &mut member_b] {
        let mut got = [room_text(member), room_text(member)];
        got.sort();
        assert_eq!(got, ["from the backend", r#"{"n":1}"#]);
    }
    let got = [next_message(&mut subscriber_b)["data"].clone(), next_message(&mut subscriber_b)["data"].clone()];
    assert!(got.contains(&json!({"n": 1})) && got.contains(&json!("from the backend")), "{got:?}");
    assert_eq!(metric(a.addr, "ferrows_cluster_duplicates_total"), 0);
    assert_eq!(metric(b.addr, "ferrows_cluster_duplicates_total"), 0);
}

#[cfg(feature = "jwt")]
#[test]
fn the_api_disconnects_a_user_on_every_node_and_nobody_else() {
    use cluster::http;
    use ferrows::client::ClientBuilder;
    use std::net::SocketAddr;

    const SECRET: &str = "the cluster's token secret, 32 bytes or more";
    let redis = Redis::start();
    let env = [("FERROWS_AUTH_HMAC_SECRET", SECRET), ("FERROWS_API_KEY", "k")];
    let [a, b] = nodes("disconnect", |_| redis.url(), &env);
    let token = |sub: &str| {
        let claims = json!({"sub": sub, "exp": tokens::unix_now() + 60, "topics": ["*"], "publish": ["*"]});
        tokens::hs256(SECRET, &claims)
    };
    let session = |addr: SocketAddr, sub: &str, path: &str| -> Ws {
        ClientBuilder::new()
            .read_timeout(Some(Duration::from_secs(5)))
            .header("Authorization", format!("Bearer {}", token(sub)))
            .connect(&format!("ws://{addr}{path}"))
            .unwrap()
    };
    let mut frank_a = session(a.addr, "frank", "/rooms/lobby");
    let mut frank_b = session(b.addr, "frank", "/pubsub");
    let mut grace_b = session(b.addr, "grace", "/rooms/lobby");
    redis.wait_for_subscribers("ferrows:t:user/frank", 2);

    let body = r#"{"user":"frank"}"#;
    let answer = http(
        a.addr,
        &format!(
            "POST /api/disconnect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.ends_with(r#"{"sessions":1}"#), "this node's count: {answer}");
    for ws in [&mut frank_a, &mut frank_b] {
        match ws.recv_within(Some(Duration::from_secs(5))) {
            Ok(Message::Close(Some(close))) => assert_eq!(close.code.0, 4003, "{close:?}"),
            other => panic!("expected a close with 4003, got {other:?}"),
        }
    }
    grace_b.send_text("grace speaks").unwrap();
    assert_eq!(grace_b.recv_within(Some(Duration::from_secs(5))).unwrap(), Message::Text("grace speaks".into()));
}

#[test]
fn redis_restarted_local_traffic_goes_on_and_cross_node_traffic_resumes() {
    let mut redis = Redis::start();
    let [a, b] = nodes("restart", |_| redis.url(), &[]);
    let mut on_a = subscriber(a.addr, "live");
    redis.wait_for_subscribers("ferrows:t:topic/live", 1);
    let mut local_publisher = pubsub(a.addr);
    let mut remote_publisher = pubsub(b.addr);
    send_publish(&mut remote_publisher, "live", json!("before"));
    assert_eq!(next_message(&mut on_a)["data"], json!("before"));

    redis.kill();
    wait_for_health(a.addr, "down", Duration::from_secs(5));
    // Local delivery never stops.
    for i in 0..20 {
        send_publish(&mut local_publisher, "live", json!({"local": i}));
        assert_eq!(next_message(&mut on_a)["data"], json!({"local": i}));
    }
    send_publish(&mut remote_publisher, "live", json!("during the outage"));

    redis.restart();
    let restarted = Instant::now();
    // B publishes a numbered message every 20 ms until A receives one.
    let mut sent = 0;
    let first = loop {
        send_publish(&mut remote_publisher, "live", json!(sent));
        sent += 1;
        match next_message_within(&mut on_a, Duration::from_millis(20)) {
            Ok(message) => break message["data"].clone(),
            Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(restarted.elapsed() < Duration::from_secs(5), "no cross-node message 5 s after Redis came back");
    };
    let resumed = restarted.elapsed();
    assert!(resumed < Duration::from_secs(2), "cross-node traffic resumed {resumed:?} after Redis came back");
    // No duplicates and no reordering: what follows the first is the rest, in order.
    let first = first.as_u64().expect("a number") as usize;
    for i in first + 1..sent {
        assert_eq!(next_message(&mut on_a)["data"], json!(i));
    }
    for i in sent..sent + 20 {
        send_publish(&mut remote_publisher, "live", json!(i));
        assert_eq!(next_message(&mut on_a)["data"], json!(i));
    }
    assert_silent(&mut on_a, Duration::from_millis(300));
    assert!(metric(a.addr, "ferrows_cluster_reconnects_total") >= 2, "both connections reconnected");
    assert!(metric(b.addr, "ferrows_cluster_lost_total") >= 1, "the publish during the outage is counted lost");
    assert!(metric(a.addr, "ferrows_cluster_gaps_total") >= 1, "A saw a gap in B's sequence");
    assert_eq!(metric(a.addr, "ferrows_cluster_duplicates_total"), 0);
    assert!(a.log_text().contains("connection to Redis lost"), "{}", a.log_text());
}

#[test]
fn a_node_starts_without_redis_and_joins_when_it_comes() {
    let mut redis = Redis::not_started();
    let a = node("late-a", &redis.url(), &[]);
    // Serves its own clients meanwhile.
    let mut sub = subscriber(a.addr, "t");
    let mut publisher = pubsub(a.addr);
    send_publish(&mut publisher, "t", json!(1));
    assert_eq!(next_message(&mut sub)["data"], json!(1));
    assert!(healthz(a.addr).contains("cluster: down"));
    assert!(a.log_text().contains("cannot be made"), "{}", a.log_text());
    redis.restart();
    let took = wait_for_health(a.addr, "up", Duration::from_secs(5));
    assert!(took < Duration::from_secs(2), "joined {took:?} after Redis came");
    redis.wait_for_subscribers("ferrows:t:topic/t", 1);
}

#[cfg(unix)]
#[test]
fn a_node_killed_does_not_disturb_the_others() {
    let redis = Redis::start();
    let ([a, mut b, c], mut on_a, _on_b) = three_nodes(&redis, "kill", "k");
    kill(&mut b);
    for i in 0..20 {
        publish_http(c.addr, "k", &json!(i));
        assert_eq!(next_message(&mut on_a)["data"], json!(i));
    }
    assert!(healthz(a.addr).contains("cluster: up"));
    assert!(healthz(c.addr).contains("cluster: up"));
}

#[test]
fn an_unusable_redis_url_stops_the_binary_with_status_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrows"))
        .args(["--listen", "127.0.0.1:0", "--redis-url", "rediss://secure:6379"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("rediss://"), "{output:?}");
}

/// Two processes on one port, both with io.reuse_port (SO_REUSEPORT): the
/// kernel spreads connections over both, and the cluster joins their subscribers.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn two_nodes_share_one_port() {
    let redis = Redis::start();
    let url = redis.url();
    let a_args = ["--loops", "2", "--redis-url", &url, "--redis-node-id", "port-a", "--io-reuse-port"];
    let a = ServerProcess::start("port-a", &a_args, "info");
    let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("port-b.log");
    let mut b = Command::new(env!("CARGO_BIN_EXE_ferrows"))
        .args(["--listen", &a.addr.to_string(), "--loops", "1", "--redis-url", &url, "--redis-node-id", "port-b"])
        .arg("--io-reuse-port")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("listening on") {
        assert!(b.try_wait().unwrap().is_none(), "the second node exited: {}", std::fs::read_to_string(&log).unwrap());
        assert!(Instant::now() < deadline, "the second node did not start");
        thread::sleep(Duration::from_millis(20));
    }
    // Subscribers land on either process; a publish through the shared port reaches them all.
    let mut subscribers: Vec<Ws> = (0..16).map(|_| pubsub(a.addr)).collect();
    for ws in &mut subscribers {
        subscribe(ws, "shared");
    }
    wait_for_health(a.addr, "up", Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    // Both processes' bridges subscribed once each process holds a subscriber.
    while redis.subscribers("ferrows:t:topic/shared") < 2 {
        assert!(Instant::now() < deadline, "the subscribers all landed on one process (or a bridge did not subscribe)");
        thread::sleep(Duration::from_millis(20));
    }
    publish_http(a.addr, "shared", &json!("to all"));
    for ws in &mut subscribers {
        assert_eq!(next_message(ws)["data"], json!("to all"));
        assert_silent(ws, Duration::from_millis(50));
    }
    let _ = b.kill();
    let _ = b.wait();
}

/// Publishes `n` on `publisher`'s node and waits until `watcher` has it: publications in a known order.
fn publish_seen(publisher: &mut Ws, watcher: &mut Ws, topic: &str, n: u64) {
    publish(publisher, topic, json!(n));
    let message = next_message(watcher);
    assert_eq!(message["data"], n, "{message}");
}

#[test]
fn history_lives_in_redis_and_a_client_recovers_on_another_node() {
    let mut redis = Redis::start();
    let history = [("FERROWS_TOPICS_HISTORY_SIZE", "100")];
    let [a, b] = nodes("kept", |_| redis.url(), &history);
    let (mut on_a, mut on_b) = (pubsub(a.addr), pubsub(b.addr));
    let mut watcher = pubsub(b.addr);
    request(&mut watcher, json!({"op": "subscribe", "topic": "chat:x", "id": 0}));
    let ack = next(&mut watcher);
    assert_eq!(ack["positions"]["chat:x"]["offset"], 0, "{ack}");
    let epoch = ack["positions"]["chat:x"]["epoch"].as_str().expect("an epoch").to_owned();

    // A reader on node A sees publications of both nodes, numbered in one sequence.
    let mut reader = pubsub(a.addr);
    request(&mut reader, json!({"op": "subscribe", "topic": "chat:x", "id": 1}));
    assert_eq!(next(&mut reader)["positions"]["chat:x"]["epoch"], epoch.as_str());
    for (n, publisher) in [(1, &mut on_a), (2, &mut on_b)] {
        publish_seen(publisher, &mut watcher, "chat:x", n);
        let message = next_message(&mut reader);
        assert_eq!((message["offset"].as_u64(), message["data"].as_u64()), (Some(n), Some(n)), "{message}");
        assert_eq!(message["epoch"], epoch.as_str());
    }
    drop(reader);
    for n in 3..=5 {
        let publisher = if n % 2 == 1 { &mut on_a } else { &mut on_b };
        publish_seen(publisher, &mut watcher, "chat:x", n);
    }

    // Back on node B, from offset 2: 3, 4 and 5 again, marked, the ack, then live ones.
    let mut back = pubsub(b.addr);
    let since = json!({"chat:x": {"offset": 2, "epoch": epoch}});
    request(&mut back, json!({"op": "subscribe", "topic": "chat:x", "since": since, "id": 2}));
    for n in 3..=5 {
        let message = next(&mut back);
        assert_eq!((message["offset"].as_u64(), message["recovered"].as_bool()), (Some(n), Some(true)), "{message}");
    }
    let ack = next(&mut back);
    assert_eq!(ack["recovered"]["chat:x"], true, "{ack}");
    assert_eq!(ack["positions"]["chat:x"], json!({"offset": 5, "epoch": epoch}));
    publish_seen(&mut on_a, &mut watcher, "chat:x", 6);
    let live = next(&mut back);
    assert_eq!((live["offset"].as_u64(), live.get("recovered")), (Some(6), None), "{live}");
    // The history request reads Redis too, on either node.
    request(&mut on_a, json!({"op": "history", "topic": "chat:x", "limit": 2, "id": 3}));
    let answer = next(&mut on_a);
    assert_eq!(offsets(&answer), [5, 6], "{answer}");
    // And so does the backend's API, on the other node.
    let body = get_json(b.addr, "/api/history/chat:x?limit=2");
    assert_eq!((body["offset"].as_u64(), body["publications"][0]["offset"].as_u64()), (Some(6), Some(5)), "{body}");

    // Redis restarted without persistence: the history is gone, and a new epoch says so.
    redis.kill();
    wait_for_health(a.addr, "down", Duration::from_secs(5));
    // Meanwhile a publish still reaches this node's subscribers, without a position, acked as not kept.
    let mut local = pubsub(a.addr);
    request(&mut local, json!({"op": "subscribe", "topic": "chat:x", "id": 4}));
    let ack = next(&mut local);
    assert_eq!(ack.get("positions"), None, "no position without Redis: {ack}");
    request(&mut on_a, json!({"op": "publish", "topic": "chat:x", "data": "unkept", "id": 5}));
    let acked = next(&mut on_a);
    assert_eq!((acked["op"].as_str(), acked["kept"].as_bool()), (Some("publish"), Some(false)), "{acked}");
    let message = next_message(&mut local);
    assert_eq!((message["data"].as_str(), message.get("offset")), (Some("unkept"), None), "{message}");
    // The backend's API says so too.
    assert_eq!(publish_http(a.addr, "chat:x", &json!("unkept too")), json!({"recipients": 1, "kept": false}));
    assert_eq!(next_message(&mut local)["data"], "unkept too");
    assert!(metric(a.addr, "ferrows_history_unkept_total") >= 2);

    redis.restart();
    for n in [&a, &b] {
        wait_for_health(n.addr, "up", Duration::from_secs(5));
    }
    let mut after = pubsub(a.addr);
    let since = json!({"chat:x": {"offset": 6, "epoch": epoch}});
    request(&mut after, json!({"op": "subscribe", "topic": "chat:x", "since": since, "id": 6}));
    let ack = next(&mut after);
    assert_eq!(ack["recovered"]["chat:x"], false, "{ack}");
    assert_eq!(ack["positions"]["chat:x"]["offset"], 0, "{ack}");
    assert_ne!(ack["positions"]["chat:x"]["epoch"], epoch.as_str(), "a new epoch");
    // With Redis back, the API answers once Redis kept the publication: a read then has it.
    let answer = publish_http(b.addr, "chat:x", &json!("kept by the api"));
    assert_eq!((answer["recipients"].as_u64(), answer.get("kept")), (Some(2), None), "{answer}");
    let body = get_json(a.addr, "/api/history/chat:x?limit=1");
    assert_eq!(body["publications"][0]["data"], "kept by the api", "{body}");
}

/// How many clients `topic` has, by a `presence_count` request on `ws`.
fn presence_count(ws: &mut Ws, topic: &str) -> u64 {
    request(ws, json!({"op": "presence_count", "topic": topic, "id": "count"}));
    next_of_type(ws, "presence_count")["count"].as_u64().expect("a count")
}

/// The next join or leave event on `ws`, as (type, client).
fn next_event(ws: &mut Ws) -> (String, String) {
    loop {
        let event = next(ws);
        if event["type"] == "join" || event["type"] == "leave" {
            return (event["type"].as_str().unwrap().to_owned(), event["client"].as_str().unwrap().to_owned());
        }
    }
}

#[test]
fn presence_spans_the_nodes_and_a_killed_nodes_clients_vanish_within_the_ttl() {
    let redis = Redis::start();
    let env = [
        ("FERROWS_TOPICS_PRESENCE", "true"),
        ("FERROWS_TOPICS_JOIN_LEAVE", "true"),
        ("FERROWS_REDIS_PRESENCE_TTL", "1500ms"),
    ];
    let [a, b, mut c] = nodes("presence", |_| redis.url(), &env);
    let mut on_a = subscriber(a.addr, "lobby");
    redis.wait_for_subscribers("ferrows:t:topic/lobby", 1);
    let mut on_b = subscriber(b.addr, "lobby");
    let (kind, b_client) = next_event(&mut on_a);
    assert_eq!(kind, "join", "a join on node B is seen on node A");
    let on_c = subscriber(c.addr, "lobby");
    assert_eq!(next_event(&mut on_a).0, "join");
    assert_eq!(next_event(&mut on_b).0, "join");

    // Every node answers for the whole cluster.
    assert_eq!(presence_count(&mut on_a, "lobby"), 3);
    request(&mut on_b, json!({"op": "presence", "topic": "lobby", "id": "who"}));
    let answer = next_of_type(&mut on_b, "presence");
    let clients: Vec<&str> =
        answer["clients"].as_array().expect("clients").iter().map(|c| c["client"].as_str().unwrap()).collect();
    assert_eq!(clients.len(), 3, "{answer}");
    assert!(clients.contains(&b_client.as_str()));
    let body = get_json(a.addr, "/api/presence/lobby");
    assert_eq!(body["clients"].as_array().map(Vec::len), Some(3), "the backend sees every node's clients: {body}");

    // Node C killed: its client is gone from the answers within the TTL.
    kill(&mut c);
    drop(on_c);
    let killed = Instant::now();
    while presence_count(&mut on_a, "lobby") != 2 {
        assert!(
            killed.elapsed() < Duration::from_secs(4),
            "node C's client still present after {:?}",
            killed.elapsed()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let gone = killed.elapsed();
    assert!(gone <= Duration::from_millis(1500 + 500), "gone after {gone:?}, past the TTL of 1.5 s");

    // A leave on node B is seen on node A, and counted.
    request(&mut on_b, json!({"op": "unsubscribe", "topic": "lobby", "id": "u"}));
    assert_eq!(next_event(&mut on_a), ("leave".to_owned(), b_client));
    assert_eq!(presence_count(&mut on_a, "lobby"), 1);
}

#[test]
fn a_client_that_keeps_moving_between_nodes_gets_every_publication_once_in_order() {
    let redis = Redis::start();
    let env = [("FERROWS_TOPICS_HISTORY_SIZE", "200000")];
    let nodes: [ServerProcess; 2] = nodes("moving", |_| redis.url(), &env);
    // The topic's epoch, kept from a subscriber's first read on.
    let mut reader = Reader::new("h:t", epoch_of(nodes[0].addr, "h:t"));
    let running = Arc::new(AtomicBool::new(true));
    // A publisher on each node, paced so that the reader keeps up (a reader
    // that falls further behind than a recovery may send is told `false`).
    let every = Duration::from_millis(1);
    let publishers = [0, 1].map(|p| publisher(pubsub(nodes[p].addr), "h:t", p as u64, every, running.clone()));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut moves = 0;
    while Instant::now() < deadline {
        // Back on either node, from where it left.
        let mut ws = pubsub(nodes[rng.below(2) as usize].addr);
        assert_eq!(reader.rejoin(&mut ws), true, "everything after {} is kept", reader.last());
        for _ in 0..rng.below(200) {
            reader.take(&next(&mut ws));
        }
        // Dropped without a Close, whatever was on its way.
        drop(ws);
        moves += 1;
        thread::sleep(Duration::from_millis(rng.below(20)));
    }
    running.store(false, Ordering::Relaxed);
    let total = publishers.map(|p| p.join().unwrap().len() as u64).iter().sum::<u64>();
    let mut ws = pubsub(nodes[0].addr);
    assert_eq!(reader.rejoin(&mut ws), true, "everything after {} is kept", reader.last());
    while reader.offsets.len() < total as usize {
        reader.take(&next(&mut ws));
    }
    assert_eq!(reader.offsets.len() as u64, total, "every publication, once");
    assert!(moves >= 10 && total >= 100, "{moves} moves, {total} publications");
}

#[test]
fn a_room_and_pubsub_share_a_kept_topic_across_nodes() {
    let redis = Redis::start();
    let history = [("FERROWS_TOPICS_HISTORY_SIZE", "10")];
    let [a, b] = nodes("kept-room", |_| redis.url(), &history);
    let mut subscriber = subscriber(a.addr, "chat:r");
    let mut member = room(b.addr, "chat:r");
    let mut other = room(b.addr, "chat:r");
    redis.wait_for_subscribers("ferrows:t:stream/chat:r", 2);
    // A member's text reaches the /pubsub subscriber on the other node, numbered.
    member.send_text("hello").unwrap();
    let message = next_message(&mut subscriber);
    assert_eq!((message["data"].as_str(), message["offset"].as_u64()), (Some("hello"), Some(1)), "{message}");
    assert_eq!(room_text(&mut other), "hello");
    assert_eq!(room_text(&mut member), "hello", "a room echoes to its sender");
    // A JSON string published over /pubsub reaches the members as its text, and in order after a binary one.
    // The binary message is published first: its echo to the sender says Redis has ordered it.
    let binary = |ws: &mut Ws| match ws.recv_within(Some(Duration::from_secs(5))).unwrap() {
        Message::Binary(bytes) => assert_eq!(bytes, [1, 2, 3]),
        unexpected => panic!("expected the binary message first, got {unexpected:?}"),
    };
    member.send_binary(&[1, 2, 3]).unwrap();
    binary(&mut member);
    send_publish(&mut subscriber, "chat:r", json!("from a"));
    binary(&mut other);
    assert_eq!(room_text(&mut other), "from a");
    assert_eq!(room_text(&mut member), "from a");
}
