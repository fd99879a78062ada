//! Test tier "process", many at once: `ferrows` nodes sharing topics through
//! a Redis (`support/redis.rs`), their HTTP endpoints, and clients of their
//! `/pubsub` protocol and rooms; for kept topics, a reader that checks the
//! delivery promise (every publication acked as kept received once, in order)
//! and publishers that note what their acks said. Needs `support/process.rs`
//! as `mod process` beside it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrows::client::{Client, ClientBuilder, ClientStream, Error, Message};
use serde_json::{json, Value};

use crate::process::{send_signal, ServerProcess};

/// The settings of the fault tests: a ping interval of 250 ms (a connection
/// silent for three, 750 ms, is taken as lost), and history kept for the
/// topics under `h:`, not for others.
pub const FAULT_SETTINGS: [(&str, &str); 2] =
    [("FERROWS_REDIS_PING_INTERVAL", "250ms"), ("FERROWS_NAMESPACES", "h: history_size=100000")];
/// Three ping intervals of [`FAULT_SETTINGS`], and the time to notice them
/// passed and to answer a poll of the metrics, with room for a loaded machine.
pub const NOTICED_WITHIN: Duration = Duration::from_millis(2500);

/// How long a client waits for an answer unless told otherwise.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A node of the cluster named `name` (its `--redis-node-id` and its log's
/// name), on the Redis at `redis_url`, with these `FERROWS_*` variables.
pub fn node(name: &str, redis_url: &str, env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start_with_env(
        name,
        &["--loops", "2", "--redis-url", redis_url, "--redis-node-id", name],
        "info",
        env,
    )
}

/// `N` nodes named `{name}-a`, `{name}-b`, …, the `i`th on the Redis at
/// `redis_url(i)`, each with `env`; returned once every one is `cluster: up`.
pub fn nodes<const N: usize>(
    name: &str,
    redis_url: impl Fn(usize) -> String,
    env: &[(&str, &str)],
) -> [ServerProcess; N] {
    let nodes: [ServerProcess; N] =
        std::array::from_fn(|i| node(&format!("{name}-{}", char::from(b'a' + i as u8)), &redis_url(i), env));
    for n in &nodes {
        wait_for_health(n.addr, "up", ANSWER_WITHIN);
    }
    nodes
}

/// Kills `node` with `kill -9` (no goodbye to anyone) and reaps it.
pub fn kill(node: &mut ServerProcess) {
    send_signal(&node.child.id().to_string(), "KILL");
    let _ = node.child.wait();
}

/// Sends `request` on a connection of its own and returns the whole response.
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).unwrap();
    response
}

/// The response to a GET of `target`.
pub fn get(addr: SocketAddr, target: &str) -> String {
    http(addr, &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
}

/// The JSON body of a GET of `target` answered 200.
pub fn get_json(addr: SocketAddr, target: &str) -> Value {
    let response = get(addr, target);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

pub fn healthz(addr: SocketAddr) -> String {
    get(addr, "/healthz")
}

/// The value of the metric `name` (one without labels).
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = get(addr, "/metrics");
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Waits until `/healthz` says `cluster: {state}`; returns how long it took.
pub fn wait_for_health(addr: SocketAddr, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if healthz(addr).contains(&format!("cluster: {state}")) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "cluster not {state} within {within:?}: {}", healthz(addr));
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the metric `name` is `value`; returns how long it took.
pub fn wait_for_gauge(addr: SocketAddr, name: &str, value: u64, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if metric(addr, name) == value {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{name} not {value} within {within:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes `data` to `topic` through the backend's API; returns its answer.
pub fn publish_http(addr: SocketAddr, topic: &str, data: &Value) -> Value {
    let body = data.to_string();
    let response = http(
        addr,
        &format!(
            "POST /publish/{topic} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

pub type Ws = Client<ClientStream>;

/// A WebSocket client of `path` on `addr`, its reads bounded by 5 s.
fn client(addr: SocketAddr, path: &str) -> Ws {
    ClientBuilder::new().read_timeout(Some(ANSWER_WITHIN)).connect(&format!("ws://{addr}{path}")).unwrap()
}

/// A client of the pub/sub protocol.
pub fn pubsub(addr: SocketAddr) -> Ws {
    client(addr, "/pubsub")
}

/// A member of the room `name`.
pub fn room(addr: SocketAddr, name: &str) -> Ws {
    client(addr, &format!("/rooms/{name}"))
}

/// The next text a room member receives.
pub fn room_text(ws: &mut Ws) -> String {
    match ws.recv_within(Some(ANSWER_WITHIN)).unwrap() {
        Message::Text(text) => text,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn request(ws: &mut Ws, body: Value) {
    ws.send_text(&body.to_string()).unwrap();
}

/// The next message of the pub/sub protocol as JSON, within `timeout`.
pub fn next_within(ws: &mut Ws, timeout: Duration) -> Result<Value, Error> {
    match ws.recv_within(Some(timeout))? {
        Message::Text(text) => {
            Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}), garbage delivered: {text:?}")))
        }
        other => panic!("unexpected {other:?}"),
    }
}

pub fn next(ws: &mut Ws) -> Value {
    next_within(ws, ANSWER_WITHIN).unwrap()
}

/// The next message whose `type` is `kind`, skipping others, each within `timeout`.
pub fn next_of_type_within(ws: &mut Ws, kind: &str, timeout: Duration) -> Result<Value, Error> {
    loop {
        let value = next_within(ws, timeout)?;
        if value["type"] == kind {
            return Ok(value);
        }
    }
}

pub fn next_of_type(ws: &mut Ws, kind: &str) -> Value {
    next_of_type_within(ws, kind, ANSWER_WITHIN).unwrap()
}

/// The next published message (not an ack) within `timeout`.
pub fn next_message_within(ws: &mut Ws, timeout: Duration) -> Result<Value, Error> {
    next_of_type_within(ws, "message", timeout)
}

/// The next published message (not an ack).
pub fn next_message(ws: &mut Ws) -> Value {
    next_of_type(ws, "message")
}

/// Subscribes `ws` to `topic`; returns the ack.
pub fn subscribe(ws: &mut Ws, topic: &str) -> Value {
    request(ws, json!({"op": "subscribe", "topic": topic, "id": "s"}));
    let ack = next(ws);
    assert_eq!(ack["type"], "ack", "{ack}");
    ack
}

/// A new client on `addr` subscribed to `topic`.
pub fn subscriber(addr: SocketAddr, topic: &str) -> Ws {
    let mut ws = pubsub(addr);
    subscribe(&mut ws, topic);
    ws
}

/// Publishes `data` to `topic` (not to `ws` itself) and returns the ack.
pub fn publish(ws: &mut Ws, topic: &str, data: Value) -> Value {
    request(ws, json!({"op": "publish", "topic": topic, "data": data, "id": "p", "exclude_self": true}));
    let ack = next(ws);
    assert_eq!((ack["type"].as_str(), ack["op"].as_str()), (Some("ack"), Some("publish")), "{ack}");
    ack
}

/// Sends a publish of `data` to `topic` (not to `ws` itself) without waiting for its ack.
pub fn send_publish(ws: &mut Ws, topic: &str, data: Value) {
    request(ws, json!({"op": "publish", "topic": topic, "data": data, "exclude_self": true}));
}

/// Whether a publish ack says its publication was kept.
pub fn kept(ack: &Value) -> bool {
    ack.get("kept") != Some(&json!(false))
}

/// Nothing more arrives within `quiet`.
pub fn assert_silent(ws: &mut Ws, quiet: Duration) {
    match next_within(ws, quiet) {
        Err(Error::Timeout) => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
}

/// The offsets of the publications in a `history` answer (or an API's).
pub fn offsets(answer: &Value) -> Vec<u64> {
    let publications = answer["publications"].as_array().unwrap_or_else(|| panic!("no publications: {answer}"));
    publications.iter().map(|p| p["offset"].as_u64().unwrap()).collect()
}

/// Publishes the string `data` to `topic` on `from` again each time `to`
/// has received nothing more for 20 ms, until `to` receives it (what else
/// comes is passed over); fails with `failure` once `deadline` is past.
pub fn publish_until_received(from: &mut Ws, to: &mut Ws, topic: &str, data: &str, deadline: Instant, failure: &str) {
    loop {
        publish(from, topic, json!(data));
        match next_message_within(to, Duration::from_millis(20)) {
            Ok(message) if message["data"] == data => return,
            Ok(_) | Err(Error::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "{failure}");
    }
}

/// Publishes 0, 1, 2, … to `topic` on `from` until `until`, `pause` apart,
/// each received on `to`, in order, within `within`; after each, calls
/// `meanwhile` (what a test watches during a fault). Returns how many went
/// and the slowest from a publish to its delivery.
pub fn deliver_until(
    from: &mut Ws,
    to: &mut Ws,
    topic: &str,
    until: Instant,
    within: Duration,
    pause: Duration,
    mut meanwhile: impl FnMut(),
) -> (u64, Duration) {
    let mut slowest = Duration::ZERO;
    let mut n = 0;
    while Instant::now() < until {
        let sent = Instant::now();
        publish(from, topic, json!(n));
        let message = next_message_within(to, within).unwrap();
        assert_eq!(message["data"], n, "{message}");
        slowest = slowest.max(sent.elapsed());
        n += 1;
        meanwhile();
        thread::sleep(pause);
    }
    (n, slowest)
}

/// A topic's epoch, read by a subscribe on `addr`.
pub fn epoch_of(addr: SocketAddr, topic: &str) -> String {
    let mut ws = pubsub(addr);
    let ack = subscribe(&mut ws, topic);
    ack["positions"][topic]["epoch"].as_str().unwrap_or_else(|| panic!("no epoch: {ack}")).to_owned()
}

/// What a client of a kept topic has received: each publication's data in offset order.
pub struct Reader {
    topic: String,
    epoch: String,
    pub offsets: Vec<u64>,
    pub data: Vec<Value>,
}

impl Reader {
    pub fn new(topic: &str, epoch: String) -> Reader {
        Reader { topic: topic.to_owned(), epoch, offsets: Vec::new(), data: Vec::new() }
    }

    pub fn last(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// One message: the next offset of the sequence, in the topic's epoch.
    pub fn take(&mut self, message: &Value) {
        assert_eq!(message["type"], "message", "{message}");
        assert_eq!(message["epoch"], self.epoch.as_str(), "{message}");
        let offset = message["offset"].as_u64().unwrap_or_else(|| panic!("no offset: {message}"));
        assert_eq!(offset, self.last() + 1, "a gap or a duplicate: {message}");
        self.offsets.push(offset);
        self.data.push(message["data"].clone());
    }

    /// Takes the published messages `ws` receives until `count` are taken in all.
    pub fn take_until(&mut self, ws: &mut Ws, count: usize) {
        while self.offsets.len() < count {
            self.take(&next_message(ws));
        }
    }

    /// Subscribes on `ws` from the last offset taken; takes what is
    /// recovered; returns the ack's `recovered`.
    pub fn rejoin(&mut self, ws: &mut Ws) -> Value {
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
pub fn drain_in_sequence(reader: &mut Reader, ws: &mut Ws, quiet: Duration) -> Vec<Value> {
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
pub struct Sent {
    pub data: Value,
    pub kept: bool,
}

/// Publishes `[who, n]` to `topic` on `ws` every `every` until `running` is
/// false, in a thread of its own; returns every publication with whether
/// its ack said it was kept.
pub fn publisher(
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
pub fn assert_every_kept_one_received_once_in_order<'s>(
    reader: &Reader,
    published: impl IntoIterator<Item = &'s [Sent]>,
) {
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
