//! Faults injected into a cluster of three `ferrows` nodes and one Redis
//! (`redis-server` from Debian; `.ci/run` installs it), each started by the
//! test on a free port: a node killed or stopped, Redis stopped, and,
//! through a fault-injecting proxy between the nodes and Redis
//! (`support/proxy.rs`), a delay, a stall, a cut in the middle of a reply
//! and a trickle of single bytes. Each test says what a client sees, within
//! which time, and that nothing acknowledged as kept is lost.
#![cfg(feature = "redis")]

#[path = "support/process.rs"]
mod process;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrows::client::{Client, ClientBuilder, ClientStream, Error, Message};
use process::ServerProcess;
use proxy::Proxy;
use redis::Redis;
use serde_json::{json, Value};

/// The bridge's ping interval in these tests: a connection silent for three
/// (750 ms) is taken as lost.
const PING_INTERVAL: &str = "250ms";
/// Three ping intervals, and the time to notice them passed and to answer a
/// poll of the metrics, with room for a loaded machine.
const NOTICED_WITHIN: Duration = Duration::from_millis(2500);

/// Topics under `h:` keep history; others do not.
const HISTORY: (&str, &str) = ("FERROWS_NAMESPACES", "h: history_size=100000");

/// A node with the tests' ping interval and kept topics under `h:`.
fn node(name: &str, redis_url: &str) -> ServerProcess {
    let env = [("FERROWS_REDIS_PING_INTERVAL", PING_INTERVAL), HISTORY];
    ServerProcess::start_with_env(
        name,
        &["--loops", "2", "--redis-url", redis_url, "--redis-node-id", name],
        "info",
        &env,
    )
}

/// Three nodes on `redis` directly, all up.
fn three_nodes(redis: &Redis, name: &str) -> [ServerProcess; 3] {
    let nodes = ["a", "b", "c"].map(|n| node(&format!("{name}-{n}"), &redis.url()));
    for n in &nodes {
        wait_for_health(n.addr, "up", Duration::from_secs(5));
    }
    nodes
}

/// Three nodes, each through a proxy of its own to `redis`, all up.
fn three_nodes_behind_proxies(redis: &Redis, name: &str) -> ([ServerProcess; 3], [Proxy; 3]) {
    let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, redis.port));
    let proxies = [(); 3].map(|_| Proxy::start(upstream));
    let names = ["a", "b", "c"];
    let nodes = [0, 1, 2].map(|i| node(&format!("{name}-{}", names[i]), &proxies[i].url()));
    for n in &nodes {
        wait_for_health(n.addr, "up", Duration::from_secs(5));
    }
    (nodes, proxies)
}

fn http(addr: SocketAddr, request: &str) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response
}

fn healthz(addr: SocketAddr) -> String {
    http(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = http(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_for_health(addr: SocketAddr, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if healthz(addr).contains(&format!("cluster: {state}")) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "cluster not {state} within {within:?}: {}", healthz(addr));
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `ferrows_cluster_up` is `value`; returns how long it took.
fn wait_for_up_gauge(addr: SocketAddr, value: u64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if metric(addr, "ferrows_cluster_up") == value {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "ferrows_cluster_up not {value} within {within:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Redis's process id, from its `INFO server`.
fn redis_pid(redis: &Redis) -> String {
    let mut socket = TcpStream::connect((Ipv4Addr::LOCALHOST, redis.port)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    socket.write_all(b"INFO server\r\n").unwrap();
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&reply);
        if let Some(pid) = text.lines().find_map(|l| l.strip_prefix("process_id:")) {
            if text.contains("\r\nrun_id:") {
                return pid.trim().to_owned();
            }
        }
        let n = socket.read(&mut buf).expect("the INFO reply");
        assert!(n > 0, "Redis closed the connection");
        reply.extend_from_slice(&buf[..n]);
    }
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to `pid` with the system's `kill`.
fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), pid]).status().expect("run `kill`");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// Sends SIGCONT to a stopped process when dropped, so that a failed
/// assertion leaves nothing stopped.
struct Stopped(String);

impl Stopped {
    fn new(pid: String) -> Stopped {
        signal(&pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

type Ws = Client<ClientStream>;

fn pubsub(addr: SocketAddr) -> Ws {
    ClientBuilder::new().read_timeout(Some(Duration::from_secs(5))).connect(&format!("ws://{addr}/pubsub")).unwrap()
}

fn request(ws: &mut Ws, body: Value) {
    ws.send_text(&body.to_string()).unwrap();
}

/// The next message of the pub/sub protocol as JSON, within `timeout`.
fn next_within(ws: &mut Ws, timeout: Duration) -> Result<Value, Error> {
    match ws.recv_within(Some(timeout))? {
        Message::Text(text) => {
            Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}), garbage delivered: {text:?}")))
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn next(ws: &mut Ws) -> Value {
    next_within(ws, Duration::from_secs(5)).unwrap()
}

/// The next published message (not an ack) within `timeout`.
fn next_message_within(ws: &mut Ws, timeout: Duration) -> Result<Value, Error> {
    loop {
        let value = next_within(ws, timeout)?;
        if value["type"] == "message" {
            return Ok(value);
        }
    }
}

fn subscribe(ws: &mut Ws, topic: &str) -> Value {
    request(ws, json!({"op": "subscribe", "topic": topic, "id": "s"}));
    let ack = next(ws);
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

/// Publishes `data` and returns its ack.
fn publish(ws: &mut Ws, topic: &str, data: Value) -> Value {
    request(ws, json!({"op": "publish", "topic": topic, "data": data, "id": "p", "exclude_self": true}));
    let ack = next(ws);
    assert_eq!((ack["type"].as_str(), ack["op"].as_str()), (Some("ack"), Some("publish")), "{ack}");
    ack
}

/// Whether a publish ack says its publication was kept.
fn kept(ack: &Value) -> bool {
    ack.get("kept") != Some(&json!(false))
}

/// Nothing more arrives within `quiet`.
fn assert_silent(ws: &mut Ws, quiet: Duration) {
    match next_within(ws, quiet) {
        Err(Error::Timeout) => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
}

/// A topic's epoch, read by a subscribe on `addr`.
fn epoch_of(addr: SocketAddr, topic: &str) -> String {
    let mut ws = pubsub(addr);
    let ack = subscribe(&mut ws, topic);
    ack["positions"][topic]["epoch"].as_str().unwrap_or_else(|| panic!("no epoch: {ack}")).to_owned()
}

/// What a client of a kept topic has received: each publication's data in offset order.
struct Reader {
    topic: String,
    epoch: String,
    offsets: Vec<u64>,
    data: Vec<Value>,
}

impl Reader {
    fn new(topic: &str, epoch: String) -> Reader {
        Reader { topic: topic.to_owned(), epoch, offsets: Vec::new(), data: Vec::new() }
    }

    fn last(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// One message: the next offset of the sequence, in the topic's epoch.
    fn take(&mut self, message: &Value) {
        assert_eq!(message["type"], "message", "{message}");
        assert_eq!(message["epoch"], self.epoch.as_str(), "{message}");
        let offset = message["offset"].as_u64().unwrap_or_else(|| panic!("no offset: {message}"));
        assert_eq!(offset, self.last() + 1, "a gap or a duplicate: {message}");
        self.offsets.push(offset);
        self.data.push(message["data"].clone());
    }

    /// Subscribes on `ws` from the last offset taken; takes what is
    /// recovered; returns the ack's `recovered`.
    fn rejoin(&mut self, ws: &mut Ws) -> Value {
        let since = json!({&self.topic: {"offset": self.last(), "epoch": self.epoch}});
        request(ws, json!({"op": "subscribe", "topic": self.topic, "since": since, "id": "r"}));
        loop {
            let value = next(ws);
            if value["type"] == "ack" {
                return value["recovered"][&self.topic].clone();
            }
            assert_eq!(value["recovered"], true, "before the ack, only recovered publications: {value}");
            self.take(&value);
        }
    }
}

/// Takes what `ws` has for `reader` in sequence, until nothing comes for
/// `quiet` or the sequence jumps (a link to Redis was down meanwhile);
/// returns the data of the unkept publications met (no offset).
fn drain_in_sequence(reader: &mut Reader, ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut unkept = Vec::new();
    while let Ok(message) = next_message_within(ws, quiet) {
        match message["offset"].as_u64() {
            None => unkept.push(message["data"].clone()),
            Some(offset) if offset == reader.last() + 1 => reader.take(&message),
            Some(_) => break,
        }
    }
    unkept
}

/// A publication and what its ack said.
struct Sent {
    data: Value,
    kept: bool,
}

/// Publishes `[who, n]` on `ws` every `every` until `running` is false;
/// returns every publication with whether its ack said it was kept.
fn publisher(
    mut ws: Ws,
    topic: &'static str,
    who: u64,
    every: Duration,
    running: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<Sent>> {
    thread::spawn(move || {
        let mut sent = Vec::new();
        while running.load(Ordering::Relaxed) {
            let data = json!([who, sent.len()]);
            let ack = publish(&mut ws, topic, data.clone());
            sent.push(Sent { data, kept: kept(&ack) });
            thread::sleep(every);
        }
        sent
    })
}

/// Every publication in `published` acknowledged as kept was received
/// once, and each publisher's in the order it published them.
fn assert_every_kept_one_received_once_in_order<'s>(reader: &Reader, published: impl IntoIterator<Item = &'s [Sent]>) {
    let mut at: HashMap<&Value, usize> = HashMap::new();
    for (index, data) in reader.data.iter().enumerate() {
        assert!(at.insert(data, index).is_none(), "{data} received twice");
    }
    for sent in published {
        let mut previous = None;
        for Sent { data, .. } in sent.iter().filter(|s| s.kept) {
            let Some(&index) = at.get(data) else { panic!("{data} was acknowledged as kept and never received") };
            assert!(previous < Some(index), "{data} received out of its publisher's order");
            previous = Some(index);
        }
    }
}

/// Fault 1: `kill -9` of a node while publishers on the two others keep
/// publishing to a kept topic. Its client, on another node with `since`,
/// is answered `recovered: true` and gets every publication acknowledged as
/// kept exactly once, in order.
#[cfg(unix)]
#[test]
fn a_node_killed_during_fan_out_its_clients_recover_on_another_node() {
    let redis = Redis::start();
    let [a, mut b, c] = three_nodes(&redis, "killed");
    let epoch = epoch_of(a.addr, "h:fan");
    let mut reader = Reader::new("h:fan", epoch);
    let mut on_b = pubsub(b.addr);
    assert_eq!(reader.rejoin(&mut on_b), true);
    let running = Arc::new(AtomicBool::new(true));
    let every = Duration::from_millis(3);
    let publishers =
        [(0, a.addr), (2, c.addr)].map(|(who, addr)| publisher(pubsub(addr), "h:fan", who, every, running.clone()));
    while reader.offsets.len() < 100 {
        let message = next_message_within(&mut on_b, Duration::from_secs(5)).unwrap();
        reader.take(&message);
    }

    signal(&b.child.id().to_string(), "KILL");
    let _ = b.child.wait();
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
        let message = next_message_within(&mut moved, Duration::from_secs(5)).unwrap();
        assert_eq!(message.get("recovered"), None, "{message}");
        reader.take(&message);
    }
    running.store(false, Ordering::Relaxed);
    let published = publishers.map(|p| p.join().unwrap());
    let total: usize = published.iter().map(Vec::len).sum();
    assert!(published.iter().flatten().all(|s| s.kept), "Redis was up: every publication kept");
    while reader.offsets.len() < total {
        let message = next_message_within(&mut moved, Duration::from_secs(5)).unwrap();
        reader.take(&message);
    }
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
    let [a, b, c] = three_nodes(&redis, "stopped");
    let mut on_a = pubsub(a.addr);
    subscribe(&mut on_a, "s");
    let mut on_b = pubsub(b.addr);
    subscribe(&mut on_b, "s");
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
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    while since.elapsed() < Duration::from_secs(10) {
        let sent = Instant::now();
        publish(&mut from_c, "s", json!(n));
        let message = next_message_within(&mut on_a, Duration::from_secs(1)).unwrap();
        assert_eq!(message["data"], n, "{message}");
        slowest = slowest.max(sent.elapsed());
        n += 1;
        thread::sleep(Duration::from_millis(50));
    }
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
    // Cross-node delivery to B resumes: C publishes every 20 ms until B has one.
    let resumed = loop {
        publish(&mut from_c, "s", json!("again"));
        match next_message_within(&mut on_b, Duration::from_millis(20)) {
            Ok(message) if message["data"] == "again" => break continued.elapsed(),
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(continued.elapsed() < Duration::from_secs(3), "B gets nothing from C 3 s after SIGCONT");
    };
    // And B's publishes reach A once both its links are up again.
    wait_for_up_gauge(b.addr, 1, Duration::from_secs(3));
    let mut from_b = pubsub(b.addr);
    loop {
        publish(&mut from_b, "s", json!("from b"));
        match next_message_within(&mut on_a, Duration::from_millis(20)) {
            Ok(message) if message["data"] == "from b" => break,
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(continued.elapsed() < Duration::from_secs(3), "nothing from B on A 3 s after SIGCONT");
    }
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
    let [a, b, c] = three_nodes(&redis, "hung");
    let epoch = epoch_of(a.addr, "h:hung");
    let mut reader = Reader::new("h:hung", epoch);
    let mut kept_on_a = pubsub(a.addr);
    assert_eq!(reader.rejoin(&mut kept_on_a), true);
    let mut on_a = pubsub(a.addr);
    subscribe(&mut on_a, "s");
    let mut on_b = pubsub(b.addr);
    subscribe(&mut on_b, "s");
    redis.wait_for_subscribers("ferrows:t:topic/s", 2);
    let mut from_a = pubsub(a.addr);
    let mut from_b = pubsub(b.addr);
    publish(&mut from_b, "s", json!("before"));
    assert_eq!(next_message_within(&mut on_a, Duration::from_secs(2)).unwrap()["data"], "before");
    // A publisher of the kept topic on A, before, during and after the stop.
    let running = Arc::new(AtomicBool::new(true));
    let kept_publisher = publisher(pubsub(a.addr), "h:hung", 0, Duration::from_millis(20), running.clone());
    while reader.offsets.len() < 10 {
        reader.take(&next_message_within(&mut kept_on_a, Duration::from_secs(5)).unwrap());
    }
    let lost_before = metric(a.addr, "ferrows_cluster_lost_total");

    let stopped = Stopped::new(redis_pid(&redis));
    let since = Instant::now();
    let mut noticed = Vec::new();
    for node in [&a, &b, &c] {
        wait_for_up_gauge(node.addr, 0, NOTICED_WITHIN);
        noticed.push(since.elapsed());
        assert!(healthz(node.addr).contains("cluster: down"));
    }
    // Local delivery goes on (the kept topic's publications too, unkept),
    // and the gauge stays 0: reconnects to a hung Redis are not taken as up.
    let mut unkept_received = Vec::new();
    let mut local = 0;
    while since.elapsed() < Duration::from_secs(10) {
        let sent = Instant::now();
        publish(&mut from_a, "s", json!(local));
        let message = next_message_within(&mut on_a, Duration::from_millis(500)).unwrap();
        assert_eq!(message["data"], local, "{message}");
        assert!(sent.elapsed() < Duration::from_millis(500));
        local += 1;
        unkept_received.extend(drain_in_sequence(&mut reader, &mut kept_on_a, Duration::from_millis(1)));
        for node in [&a, &b, &c] {
            assert_eq!(metric(node.addr, "ferrows_cluster_up"), 0, "up while Redis is stopped");
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(a.addr, "ferrows_cluster_lost_total") > lost_before, "publishes not sent to Redis are counted");

    drop(stopped);
    let continued = Instant::now();
    let mut resumed = Vec::new();
    for node in [&a, &b, &c] {
        wait_for_up_gauge(node.addr, 1, Duration::from_secs(3));
        resumed.push(continued.elapsed());
    }
    // Cross-node delivery again: B publishes every 20 ms until A has one.
    loop {
        publish(&mut from_b, "s", json!("after"));
        match next_message_within(&mut on_a, Duration::from_millis(20)) {
            Ok(message) if message["data"] == "after" => break,
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(continued.elapsed() < Duration::from_secs(3), "nothing from B on A 3 s after SIGCONT");
    }
    let crossed = continued.elapsed();
    thread::sleep(Duration::from_millis(300));
    running.store(false, Ordering::Relaxed);
    let published = kept_publisher.join().unwrap();
    // What the old connection still had, then a new one recovers from the last offset it saw.
    unkept_received.extend(drain_in_sequence(&mut reader, &mut kept_on_a, Duration::from_millis(100)));
    let mut again = pubsub(a.addr);
    assert_eq!(reader.rejoin(&mut again), true, "everything after {} is kept", reader.last());
    let kept_count = published.iter().filter(|s| s.kept).count();
    let unkept: Vec<Value> = published.iter().filter(|s| !s.kept).map(|s| s.data.clone()).collect();
    assert!(!unkept.is_empty(), "publications during the stop are acked as not kept");
    assert_eq!(unkept_received, unkept, "each unkept publication is delivered locally, once, in order");
    assert_eq!(metric(a.addr, "ferrows_history_unkept_total"), unkept.len() as u64);
    while reader.offsets.len() < kept_count {
        reader.take(&next_message_within(&mut again, Duration::from_secs(5)).unwrap());
    }
    assert_every_kept_one_received_once_in_order(&reader, [published.as_slice()]);
    assert_silent(&mut again, Duration::from_millis(300));
    eprintln!(
        "hung: noticed after {noticed:?}, up again {resumed:?} and across nodes {crossed:?} after SIGCONT; \
         {kept_count} kept, {} unkept",
        unkept.len()
    );
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
    let mut on_b = pubsub(b.addr);
    subscribe(&mut on_b, "d");
    let mut kept_on_b = pubsub(b.addr);
    subscribe(&mut kept_on_b, "h:d");
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
    let mut on_b = pubsub(b.addr);
    subscribe(&mut on_b, "s");
    redis.wait_for_subscribers("ferrows:t:topic/s", 1);
    let mut from_a = pubsub(a.addr);
    let mut from_b = pubsub(b.addr);
    let running = Arc::new(AtomicBool::new(true));
    let kept_publisher = publisher(pubsub(a.addr), "h:s", 0, Duration::from_millis(20), running.clone());
    while reader.offsets.len() < 5 {
        reader.take(&next_message_within(&mut kept_on_b, Duration::from_secs(5)).unwrap());
    }

    proxies[1].stall(STALL);
    let stalled = Instant::now();
    let mut noticed = None;
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    while stalled.elapsed() < STALL - Duration::from_millis(200) {
        let sent = Instant::now();
        publish(&mut from_b, "s", json!(n));
        let message = next_message_within(&mut on_b, Duration::from_secs(1)).unwrap();
        assert_eq!(message["data"], n);
        slowest = slowest.max(sent.elapsed());
        n += 1;
        // Once down, B stays down while the stall lasts: its new connections are not answered either.
        let up = metric(b.addr, "ferrows_cluster_up");
        match noticed {
            None if up == 0 => noticed = Some(stalled.elapsed()),
            None => {}
            Some(_) => assert_eq!(up, 0, "up again while stalled"),
        }
        thread::sleep(Duration::from_millis(20));
    }
    let noticed = noticed.expect("B never took its link as lost");
    assert!(noticed < NOTICED_WITHIN, "noticed after {noticed:?}");
    assert!(slowest < Duration::from_millis(300), "a local delivery took {slowest:?}");

    let ends = stalled + STALL;
    wait_for_up_gauge(b.addr, 1, Duration::from_secs(4));
    let up_after = Instant::now().saturating_duration_since(ends);
    assert!(up_after < Duration::from_secs(2), "up {up_after:?} after the stall ended");
    // Cross-node again: A publishes every 20 ms until B has one.
    loop {
        publish(&mut from_a, "s", json!("after"));
        match next_message_within(&mut on_b, Duration::from_millis(20)) {
            Ok(message) if message["data"] == "after" => break,
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(ends.elapsed() < Duration::from_secs(3), "nothing from A on B 3 s after the stall");
    }
    running.store(false, Ordering::Relaxed);
    let published = kept_publisher.join().unwrap();
    assert!(published.iter().all(|s| s.kept), "A's link was fine: every publication kept");
    assert!(drain_in_sequence(&mut reader, &mut kept_on_b, Duration::from_millis(100)).is_empty());
    let mut back = pubsub(b.addr);
    assert_eq!(reader.rejoin(&mut back), true, "everything after {} is kept", reader.last());
    while reader.offsets.len() < published.len() {
        reader.take(&next_message_within(&mut back, Duration::from_secs(5)).unwrap());
    }
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
    let up = wait_for_up_gauge(b.addr, 1, Duration::from_secs(3));

    // A message pushed to B's subscription, cut in its middle.
    let mut plain_on_b = pubsub(b.addr);
    subscribe(&mut plain_on_b, "c");
    redis.wait_for_subscribers("ferrows:t:topic/c", 1);
    proxies[1].cut_after(1000);
    let mut from_c = pubsub(c.addr);
    publish(&mut from_c, "c", big(0));
    wait_for_up_gauge(b.addr, 1, Duration::from_secs(3));
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
    let mut on_b = pubsub(b.addr);
    subscribe(&mut on_b, "t");
    let mut kept_on_b = pubsub(b.addr);
    subscribe(&mut kept_on_b, "h:t");
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
    let answer = loop {
        let value = next_within(&mut back, Duration::from_secs(10)).unwrap();
        if value["type"] == "history" {
            break value;
        }
    };
    let offsets: Vec<u64> = answer["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [6, 7, 8], "{answer}");
    assert_eq!(answer["publications"][2]["data"], reader.data[7]);
    assert_eq!(metric(b.addr, "ferrows_cluster_up"), 1, "a slow link is not a lost one");
    assert_eq!(metric(b.addr, "ferrows_cluster_reconnects_total"), 0);
    assert_eq!(metric(b.addr, "ferrows_cluster_invalid_total"), 0);
    proxies[1].trickle(None);
}
