//! Faults of the network between the nodes of a cluster of three `ferrows`
//! nodes and their Redis (`redis-server` from Debian; `.ci/run` installs
//! it), each started by the test on a free port: through a fault-injecting
//! proxy between a node and Redis (`support/proxy.rs`), a delay, a stall, a
//! cut in the middle of a reply and a trickle of single bytes. Each test
//! says what a client sees, within which time, and that nothing acknowledged
//! as kept is lost. Faults of the processes are in `cluster_faults.rs`.
#![cfg(feature = "redis")]

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/process.rs"]
mod process;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cluster::{
    assert_every_kept_one_received_once_in_order, deliver_until, drain_in_sequence, epoch_of, kept, metric, next,
    next_message_within, next_of_type_within, nodes, offsets, publish, publish_until_received, publisher, pubsub,
    request, subscriber, wait_for_gauge, Reader, Ws, FAULT_SETTINGS, NOTICED_WITHIN,
};
use ferrows::client::Error;
use process::ServerProcess;
use proxy::Proxy;
use redis::Redis;
use serde_json::{json, Value};

/// Three nodes, each through a proxy of its own to `redis`, all up.
fn three_nodes_behind_proxies(redis: &Redis, name: &str) -> ([ServerProcess; 3], [Proxy; 3]) {
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, redis.port));
    let proxies = [(); 3].map(|_| Proxy::start(upstream));
    let nodes = nodes(name, |i| proxies[i].url(), &FAULT_SETTINGS);
    (nodes, proxies)
}

/// Publishes `count` messages `[who, n]` on `ws` to `topic`, `every` apart;
/// returns when each was sent.
fn publish_paced(ws: &mut Ws, topic: &str, who: u64, count: usize, every: Duration) -> Vec<Instant> {
    (0..count)
        .map(|n| {
            let sent = Instant::now();
            publish(ws, topic, json!([who, n]));
            thread::sleep(every);
            sent
        })
        .collect()
}

/// Receives `count` messages on `ws` in a thread of its own; each message with when it came.
fn receive(mut ws: Ws, count: usize) -> thread::JoinHandle<(Ws, Vec<(Value, Instant)>)> {
    thread::spawn(move || {
        let got = (0..count)
            .map(|_| (next_message_within(&mut ws, Duration::from_secs(5)).unwrap(), Instant::now()))
            .collect();
        (ws, got)
    })
}

/// Fault 5a: 50 ms added to every chunk between node B and Redis, both
/// ways. Cross-node deliveries to B, kept or not, come whole, in order and
/// late by about the delay; a recovery through the delay answers `true`.
#[test]
fn a_delay_to_redis_delays_cross_node_deliveries_in_order() {
    const DELAY: Duration = Duration::from_millis(50);
    let redis = Redis::start();
    let ([a, b, _c], proxies) = three_nodes_behind_proxies(&redis, "delay");
    let epoch = epoch_of(b.addr, "h:d");
    let on_b = subscriber(b.addr, "d");
    let kept_on_b = subscriber(b.addr, "h:d");
    redis.wait_for_subscribers("ferrows:t:topic/d", 1);
    let mut from_a = pubsub(a.addr);
    // Without the delay first, for comparison.
    let receiver = receive(on_b, 20);
    let sent = publish_paced(&mut from_a, "d", 0, 20, Duration::from_millis(5));
    let (on_b, got) = receiver.join().unwrap();
    let before: Vec<Duration> = got.iter().zip(&sent).map(|((_, at), sent)| at.duration_since(*sent)).collect();

    proxies[1].set_delay(DELAY);
    thread::sleep(Duration::from_millis(100));
    for (topic, ws) in [("d", on_b), ("h:d", kept_on_b)] {
        let receiver = receive(ws, 40);
        let sent = publish_paced(&mut from_a, topic, 1, 40, Duration::from_millis(5));
        let (_, got) = receiver.join().unwrap();
        let mut latencies = Vec::new();
        for (n, ((message, at), sent)) in got.iter().zip(&sent).enumerate() {
            assert_eq!(message["data"], json!([1, n]), "in order: {message}");
            if topic == "h:d" {
                assert_eq!(
                    (message["offset"].as_u64(), message["epoch"].as_str()),
                    (Some(n as u64 + 1), Some(epoch.as_str()))
                );
            }
            latencies.push(at.duration_since(*sent));
        }
        let (low, high) = (latencies.iter().min().unwrap(), latencies.iter().max().unwrap());
        assert!(*low >= DELAY, "{topic}: a delivery came in {low:?}, before the delay");
        assert!(*high < DELAY + Duration::from_millis(400), "{topic}: a delivery took {high:?}");
        eprintln!(
            "delay: {topic} took {low:?} to {high:?} with the delay, {:?} to {:?} without",
            before.iter().min().unwrap(),
            before.iter().max().unwrap()
        );
    }
    // A recovery through the delay (one round trip both ways).
    let mut reader = Reader::new("h:d", epoch);
    let mut back = pubsub(b.addr);
    let asked = Instant::now();
    assert_eq!(reader.rejoin(&mut back), true);
    assert_eq!(reader.offsets.len(), 40);
    let took = asked.elapsed();
    assert!(took >= DELAY * 2, "the read went through the delay both ways: {took:?}");
    assert!(metric(b.addr, "ferrows_cluster_up") == 1, "a delay is not a loss");
    assert_eq!(metric(b.addr, "ferrows_cluster_invalid_total"), 0);
}

/// Fault 5b: node B's link to Redis stalled (nothing forwarded, the
/// connections open) for 3 s, past the silence bound of 750 ms. B takes
/// its links as lost within the bound and stays down while the stall
/// lasts; its local deliveries never stop; once the stall ends it is up
/// again within 2 s, cross-node deliveries resume, and its client recovers
/// every kept publication.
#[test]
fn a_stall_past_the_silence_bound_reconnects_and_local_delivery_never_stops() {
    const STALL: Duration = Duration::from_secs(3);
    let redis = Redis::start();
    let ([a, b, _c], proxies) = three_nodes_behind_proxies(&redis, "stall");
    let epoch = epoch_of(a.addr, "h:s");
    let mut reader = Reader::new("h:s", epoch);
    let mut kept_on_b = pubsub(b.addr);
    assert_eq!(reader.rejoin(&mut kept_on_b), true);
    let mut on_b = subscriber(b.addr, "s");
    redis.wait_for_subscribers("ferrows:t:topic/s", 1);
    let mut from_a = pubsub(a.addr);
    let mut from_b = pubsub(b.addr);
    let running = Arc::new(AtomicBool::new(true));
    let kept_publisher = publisher(pubsub(a.addr), "h:s", 0, Duration::from_millis(20), running.clone());
    reader.take_until(&mut kept_on_b, 5);

    proxies[1].stall(STALL);
    let stalled = Instant::now();
    let mut noticed = None;
    let (until, pause) = (stalled + STALL - Duration::from_millis(200), Duration::from_millis(20));
    let (_, slowest) = deliver_until(&mut from_b, &mut on_b, "s", until, Duration::from_secs(1), pause, || {
        // Once down, B stays down while the stall lasts: its new connections are not answered either.
        let up = metric(b.addr, "ferrows_cluster_up");
        match noticed {
            None if up == 0 => noticed = Some(stalled.elapsed()),
            None => {}
            Some(_) => assert_eq!(up, 0, "up again while stalled"),
        }
    });
    let noticed = noticed.expect("B never took its link as lost");
    assert!(noticed < NOTICED_WITHIN, "noticed after {noticed:?}");
    assert!(slowest < Duration::from_millis(300), "a local delivery took {slowest:?}");

    let ends = stalled + STALL;
    wait_for_gauge(b.addr, "ferrows_cluster_up", 1, Duration::from_secs(4));
    let up_after = Instant::now().saturating_duration_since(ends);
    assert!(up_after < Duration::from_secs(2), "up {up_after:?} after the stall ended");
    // Cross-node again: A publishes until B has one.
    let deadline = ends + Duration::from_secs(3);
    publish_until_received(&mut from_a, &mut on_b, "s", "after", deadline, "nothing from A on B 3 s after the stall");
    running.store(false, Ordering::Relaxed);
    let published = kept_publisher.join().unwrap();
    assert!(published.iter().all(|s| s.kept), "A's link was fine: every publication kept");
    assert!(drain_in_sequence(&mut reader, &mut kept_on_b, Duration::from_millis(100)).is_empty());
    let mut back = pubsub(b.addr);
    assert_eq!(reader.rejoin(&mut back), true, "everything after {} is kept", reader.last());
    reader.take_until(&mut back, published.len());
    assert_every_kept_one_received_once_in_order(&reader, [published.as_slice()]);
    assert!(metric(b.addr, "ferrows_cluster_reconnects_total") >= 2, "both links made again");
    assert_eq!(metric(b.addr, "ferrows_cluster_invalid_total"), 0);
    eprintln!("stall: noticed after {noticed:?}, up {up_after:?} after the stall, slowest local delivery {slowest:?}");
}

/// Fault 5c: node B's connection to Redis cut in the middle of a reply:
/// once in a history read's answer, once in a message pushed to its
/// subscription. B reconnects; the read is answered (`recovered` true or
/// false, never garbage); no partial or corrupted message reaches a client
/// (`ferrows_cluster_invalid_total` stays 0); a recovery once B is up again
/// gives every kept publication whole.
#[test]
fn a_cut_mid_reply_reconnects_and_delivers_nothing_partial() {
    let redis = Redis::start();
    let ([a, b, c], proxies) = three_nodes_behind_proxies(&redis, "cut");
    let epoch = epoch_of(a.addr, "h:c");
    let mut from_a = pubsub(a.addr);
    let big = |n: usize| json!({"n": n, "text": "x".repeat(2000)});
    for n in 0..30 {
        assert!(kept(&publish(&mut from_a, "h:c", big(n))));
    }

    // A read of 30 records of 2 KB, cut after its first kilobyte.
    let cuts = proxies[1].cuts();
    proxies[1].cut_after(1000);
    let mut reader = Reader::new("h:c", epoch.clone());
    let mut on_b = pubsub(b.addr);
    let since = json!({"h:c": {"offset": 0, "epoch": epoch}});
    request(&mut on_b, json!({"op": "subscribe", "topic": "h:c", "since": since, "id": "r"}));
    let recovered = loop {
        let value = next(&mut on_b);
        if value["type"] == "ack" {
            break value["recovered"]["h:c"].clone();
        }
        assert_eq!(value["data"], big(reader.offsets.len()), "whole and correct");
        reader.take(&value);
    };
    assert!(recovered == true || recovered == false, "{recovered}");
    if recovered == true {
        assert_eq!(reader.offsets.len(), 30);
    }
    assert_eq!(proxies[1].cuts(), cuts + 1, "the cut happened");
    let up = wait_for_gauge(b.addr, "ferrows_cluster_up", 1, Duration::from_secs(3));

    // A message pushed to B's subscription, cut in its middle.
    let mut plain_on_b = subscriber(b.addr, "c");
    redis.wait_for_subscribers("ferrows:t:topic/c", 1);
    proxies[1].cut_after(1000);
    let mut from_c = pubsub(c.addr);
    publish(&mut from_c, "c", big(0));
    wait_for_gauge(b.addr, "ferrows_cluster_up", 1, Duration::from_secs(3));
    // Not delivered at all (at most once across nodes), or whole; then the next ones, whole.
    redis.wait_for_subscribers("ferrows:t:topic/c", 1);
    let mut n = 1;
    let started = Instant::now();
    loop {
        publish(&mut from_c, "c", big(n));
        match next_message_within(&mut plain_on_b, Duration::from_millis(50)) {
            Ok(message) => {
                let got = message["data"]["n"].as_u64().unwrap() as usize;
                assert_eq!(message["data"], big(got), "whole and correct");
                if got > 0 {
                    break;
                }
            }
            Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        n += 1;
        assert!(started.elapsed() < Duration::from_secs(3), "nothing from C on B 3 s after the cut");
    }
    assert_eq!(proxies[1].cuts(), cuts + 2, "the second cut happened");
    // Everything kept, recovered whole once B is up.
    let mut again = pubsub(b.addr);
    let mut reader = Reader::new("h:c", epoch);
    assert_eq!(reader.rejoin(&mut again), true);
    for (n, data) in reader.data.iter().enumerate() {
        assert_eq!(*data, big(n));
    }
    assert_eq!(reader.offsets.len(), 30);
    for node in [&a, &b, &c] {
        assert_eq!(metric(node.addr, "ferrows_cluster_invalid_total"), 0);
    }
    eprintln!("cut: the read answered recovered {recovered}, B up again {up:?} after");
}

/// Fault 5d: node B's link to Redis trickles one byte at a time (a pause
/// of 1 ms between bytes, both ways). Messages, kept records and history
/// replies still arrive whole, correct and in order, and B stays up.
#[test]
fn a_trickle_of_single_bytes_still_delivers_whole_messages_and_history() {
    let redis = Redis::start();
    let ([a, b, _c], proxies) = three_nodes_behind_proxies(&redis, "trickle");
    let epoch = epoch_of(a.addr, "h:t");
    let mut on_b = subscriber(b.addr, "t");
    let mut kept_on_b = subscriber(b.addr, "h:t");
    redis.wait_for_subscribers("ferrows:t:topic/t", 1);
    let mut from_a = pubsub(a.addr);

    proxies[1].trickle(Some(Duration::from_millis(1)));
    for (topic, ws) in [("t", &mut on_b), ("h:t", &mut kept_on_b)] {
        let sent: Vec<Value> = (0..8).map(|n| json!({"n": n, "text": "é\"\u{1f600}".repeat(n)})).collect();
        for data in &sent {
            publish(&mut from_a, topic, data.clone());
        }
        for (n, data) in sent.iter().enumerate() {
            let message = next_message_within(ws, Duration::from_secs(10)).unwrap();
            assert_eq!(message["data"], *data, "whole, correct and in order");
            if topic == "h:t" {
                assert_eq!(message["offset"].as_u64(), Some(n as u64 + 1));
            }
        }
    }
    // A recovery and a history request, answered through the trickle.
    let mut reader = Reader::new("h:t", epoch);
    let mut back = pubsub(b.addr);
    assert_eq!(reader.rejoin(&mut back), true);
    assert_eq!(reader.offsets.len(), 8);
    request(&mut back, json!({"op": "history", "topic": "h:t", "limit": 3, "id": "h"}));
    let answer = next_of_type_within(&mut back, "history", Duration::from_secs(10)).unwrap();
    assert_eq!(offsets(&answer), [6, 7, 8], "{answer}");
    assert_eq!(answer["publications"][2]["data"], reader.data[7]);
    assert_eq!(metric(b.addr, "ferrows_cluster_up"), 1, "a slow link is not a lost one");
    assert_eq!(metric(b.addr, "ferrows_cluster_reconnects_total"), 0);
    assert_eq!(metric(b.addr, "ferrows_cluster_invalid_total"), 0);
    proxies[1].trickle(None);
}
