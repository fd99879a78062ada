//! Faults of the processes of a cluster of three `ferrows` nodes and one
//! Redis (`redis-server` from Debian; `.ci/run` installs it), each started by
//! the test on a free port: a node killed, a node stopped, Redis stopped.
//! Each test says what a client sees, within which time, and that nothing
//! acknowledged as kept is lost. Faults of the network between the nodes and
//! Redis are in `cluster_network.rs`.
#![cfg(feature = "redis")]

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cluster::{
    assert_every_kept_one_received_once_in_order, assert_silent, deliver_until, drain_in_sequence, epoch_of, healthz,
    kill, metric, next_message, next_message_within, next_within, nodes, publish, publish_until_received, publisher,
    pubsub, subscriber, wait_for_gauge, Reader, FAULT_SETTINGS, NOTICED_WITHIN,
};
use ferrows::client::{Error, Message};
use process::Stopped;
use redis::Redis;
use serde_json::{json, Value};

/// Fault 1: `kill -9` of a node while publishers on the two others keep
/// publishing to a kept topic. Its client, on another node with `since`,
/// is answered `recovered: true` and gets every publication acknowledged as
/// kept exactly once, in order.
#[cfg(unix)]
#[test]
fn a_node_killed_during_fan_out_its_clients_recover_on_another_node() {
    let redis = Redis::start();
    let [a, mut b, c] = nodes("killed", |_| redis.url(), &FAULT_SETTINGS);
    let epoch = epoch_of(a.addr, "h:fan");
    let mut reader = Reader::new("h:fan", epoch);
    let mut on_b = pubsub(b.addr);
    assert_eq!(reader.rejoin(&mut on_b), true);
    let running = Arc::new(AtomicBool::new(true));
    let every = Duration::from_millis(3);
    let publishers =
        [(0, a.addr), (2, c.addr)].map(|(who, addr)| publisher(pubsub(addr), "h:fan", who, every, running.clone()));
    reader.take_until(&mut on_b, 100);

    kill(&mut b);
    let killed = Instant::now();
    // What was on its way still comes, then the connection ends.
    loop {
        match next_within(&mut on_b, Duration::from_secs(5)) {
            Ok(message) => reader.take(&message),
            Err(Error::Timeout) => panic!("the connection to the killed node did not end"),
            Err(_) => break,
        }
    }
    let before_kill = reader.offsets.len();
    // A client's pause before it reconnects: publications go on meanwhile.
    thread::sleep(Duration::from_millis(200));
    let mut moved = pubsub(c.addr);
    assert_eq!(reader.rejoin(&mut moved), true, "everything after {} is kept", reader.last());
    let recovered_after = killed.elapsed();
    let recovered = reader.offsets.len() - before_kill;
    assert!(recovered > 0, "publications went on while the client was away");
    assert!(recovered_after < Duration::from_secs(2), "recovered {recovered_after:?} after the kill");
    // Live publications follow the recovered ones with no gap.
    for _ in 0..100 {
        let message = next_message(&mut moved);
        assert_eq!(message.get("recovered"), None, "{message}");
        reader.take(&message);
    }
    running.store(false, Ordering::Relaxed);
    let published = publishers.map(|p| p.join().unwrap());
    let total: usize = published.iter().map(Vec::len).sum();
    assert!(published.iter().flatten().all(|s| s.kept), "Redis was up: every publication kept");
    reader.take_until(&mut moved, total);
    assert_silent(&mut moved, Duration::from_millis(300));
    assert_every_kept_one_received_once_in_order(&reader, published.iter().map(Vec::as_slice));
    eprintln!(
        "killed: {before_kill} received before the kill, {recovered} recovered {recovered_after:?} after it, {total} in all"
    );
}

/// Fault 2: a node stopped (`SIGSTOP`) for 10 s, then continued. The two
/// others go on delivering to each other with small delays; the stopped
/// node's clients get no answer to their pings meanwhile; once continued,
/// it answers them and serves again, across nodes too.
#[cfg(unix)]
#[test]
fn a_node_stopped_for_10_s_stalls_only_its_own_clients() {
    let redis = Redis::start();
    let [a, b, c] = nodes("stopped", |_| redis.url(), &FAULT_SETTINGS);
    let mut on_a = subscriber(a.addr, "s");
    let mut on_b = subscriber(b.addr, "s");
    redis.wait_for_subscribers("ferrows:t:topic/s", 2);
    let mut from_c = pubsub(c.addr);

    let stopped = Stopped::new(b.child.id().to_string());
    let since = Instant::now();
    // B's client pings: no pong while B is stopped.
    let pinger = thread::spawn(move || {
        on_b.send_ping(b"are you there").unwrap();
        let answer = on_b.recv_within(Some(Duration::from_secs(3)));
        assert!(matches!(answer, Err(Error::Timeout)), "a stopped node answered: {answer:?}");
        on_b
    });
    // C to A goes on, in order, each within a small delay.
    let until = since + Duration::from_secs(10);
    let (n, slowest) =
        deliver_until(&mut from_c, &mut on_a, "s", until, Duration::from_secs(1), Duration::from_millis(50), || {});
    assert!(slowest < Duration::from_millis(500), "a delivery between the running nodes took {slowest:?}");
    assert!(healthz(a.addr).contains("cluster: up") && healthz(c.addr).contains("cluster: up"));
    let mut on_b = pinger.join().unwrap();

    drop(stopped);
    let continued = Instant::now();
    // The pong comes, and what C published meanwhile, whole and in order:
    // Redis held it for B, and B, knowing it was away itself, keeps its connections.
    let (mut pong_after, mut caught_up) = (None, 0);
    while pong_after.is_none() || caught_up < n {
        match on_b.recv_within(Some(Duration::from_secs(2))) {
            Ok(Message::Pong(_)) => pong_after = Some(continued.elapsed()),
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(message["data"], caught_up, "what B's client missed comes in order: {message}");
                caught_up += 1;
            }
            other => panic!("within 2 s of SIGCONT: a pong and {n} messages ({caught_up} came); got {other:?}"),
        }
    }
    let pong_after = pong_after.unwrap_or_default();
    // Cross-node delivery to B resumes: C publishes until B has one.
    let deadline = continued + Duration::from_secs(3);
    publish_until_received(&mut from_c, &mut on_b, "s", "again", deadline, "B gets nothing from C 3 s after SIGCONT");
    let resumed = continued.elapsed();
    // And B's publishes reach A once both its links are up again.
    wait_for_gauge(b.addr, "ferrows_cluster_up", 1, Duration::from_secs(3));
    let mut from_b = pubsub(b.addr);
    publish_until_received(&mut from_b, &mut on_a, "s", "from b", deadline, "nothing from B on A 3 s after SIGCONT");
    eprintln!("stopped: slowest delivery C to A {slowest:?}, pong {pong_after:?} and C to B {resumed:?} after SIGCONT");
}

/// Fault 3: Redis stopped (`SIGSTOP`) for 10 s, a broker that hangs rather
/// than dies. Every node notices within three ping intervals
/// (`ferrows_cluster_up` 0, and it stays 0), keeps serving its own
/// subscribers, acks what it cannot keep with `"kept":false` and counts it,
/// and resumes once Redis is continued; nothing acknowledged as kept is lost.
#[cfg(unix)]
#[test]
fn redis_stopped_for_10_s_nodes_notice_serve_locally_and_resume() {
    let redis = Redis::start();
    let [a, b, c] = nodes("hung", |_| redis.url(), &FAULT_SETTINGS);
    let epoch = epoch_of(a.addr, "h:hung");
    let mut reader = Reader::new("h:hung", epoch);
    let mut kept_on_a = pubsub(a.addr);
    assert_eq!(reader.rejoin(&mut kept_on_a), true);
    let mut on_a = subscriber(a.addr, "s");
    let _on_b = subscriber(b.addr, "s");
    redis.wait_for_subscribers("ferrows:t:topic/s", 2);
    let mut from_a = pubsub(a.addr);
    let mut from_b = pubsub(b.addr);
    publish(&mut from_b, "s", json!("before"));
    assert_eq!(next_message_within(&mut on_a, Duration::from_secs(2)).unwrap()["data"], "before");
    // A publisher of the kept topic on A, before, during and after the stop.
    let running = Arc::new(AtomicBool::new(true));
    let kept_publisher = publisher(pubsub(a.addr), "h:hung", 0, Duration::from_millis(20), running.clone());
    reader.take_until(&mut kept_on_a, 10);
    let lost_before = metric(a.addr, "ferrows_cluster_lost_total");

    let stopped = Stopped::new(redis.pid());
    let since = Instant::now();
    let mut noticed = Vec::new();
    for node in [&a, &b, &c] {
        wait_for_gauge(node.addr, "ferrows_cluster_up", 0, NOTICED_WITHIN);
        noticed.push(since.elapsed());
        assert!(healthz(node.addr).contains("cluster: down"));
    }
    // Local delivery goes on (the kept topic's publications too, unkept),
    // and the gauge stays 0: reconnects to a hung Redis are not taken as up.
    let mut unkept_received = Vec::new();
    let until = since + Duration::from_secs(10);
    let within = Duration::from_millis(500);
    let (_, slowest) = deliver_until(&mut from_a, &mut on_a, "s", until, within, Duration::from_millis(50), || {
        unkept_received.extend(drain_in_sequence(&mut reader, &mut kept_on_a, Duration::from_millis(1)));
        for node in [&a, &b, &c] {
            assert_eq!(metric(node.addr, "ferrows_cluster_up"), 0, "up while Redis is stopped");
        }
    });
    assert!(slowest < within, "a local delivery took {slowest:?}");
    assert!(metric(a.addr, "ferrows_cluster_lost_total") > lost_before, "publishes not sent to Redis are counted");

    drop(stopped);
    let continued = Instant::now();
    let mut resumed = Vec::new();
    for node in [&a, &b, &c] {
        wait_for_gauge(node.addr, "ferrows_cluster_up", 1, Duration::from_secs(3));
        resumed.push(continued.elapsed());
    }
    // Cross-node delivery again: B publishes until A has one.
    let deadline = continued + Duration::from_secs(3);
    publish_until_received(&mut from_b, &mut on_a, "s", "after", deadline, "nothing from B on A 3 s after SIGCONT");
    let crossed = continued.elapsed();
    thread::sleep(Duration::from_millis(300));
    running.store(false, Ordering::Relaxed);
    let published = kept_publisher.join().unwrap();
    // What the old connection still had, then a new one recovers from the last offset it saw.
    unkept_received.extend(drain_in_sequence(&mut reader, &mut kept_on_a, Duration::from_millis(100)));
    let mut again = pubsub(a.addr);
    assert_eq!(reader.rejoin(&mut again), true, "everything after {} is kept", reader.last());
    let kept_count = published.iter().filter(|s| s.kept).count();
    reader.take_until(&mut again, kept_count);
    let unkept: Vec<Value> = published.iter().filter(|s| !s.kept).map(|s| s.data.clone()).collect();
    assert!(!unkept.is_empty(), "publications during the stop are acked as not kept");
    // Acked `"kept":false`: made while the node knew Redis was unreachable,
    // it was delivered here without a position; on its way to Redis when it
    // hung (the publisher waits for each ack: one at most), Redis ran it once
    // continued, and it is recovered with its position. Each once, in order.
    let (in_redis, local): (Vec<Value>, Vec<Value>) = unkept.into_iter().partition(|data| reader.data.contains(data));
    assert!(in_redis.len() <= 1, "only the publication on its way when Redis stopped: {in_redis:?}");
    assert_eq!(unkept_received, local, "each unkept publication is delivered locally, once, in order");
    assert_eq!(metric(a.addr, "ferrows_history_unkept_total"), local.len() as u64);
    assert_every_kept_one_received_once_in_order(&reader, [published.as_slice()]);
    assert_silent(&mut again, Duration::from_millis(300));
    eprintln!(
        "hung: noticed after {noticed:?}, up again {resumed:?} and across nodes {crossed:?} after SIGCONT; \
         {kept_count} kept, {} delivered unkept, {} acked unkept and kept by Redis",
        local.len(),
        in_redis.len()
    );
}
