//! Kept records through a real Redis (`redis-server` from Debian; `.ci/run`
//! installs it), started by the test on a port of its own: two in-process
//! servers, each with the cluster bridge as its uplink, and a small handler
//! that appends what its sessions send and shows them what comes back.
#![cfg(feature = "redis")]

#[path = "support/process.rs"]
mod process;
#[path = "support/redis.rs"]
mod redis;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrows::cluster::{Cluster, ClusterConfig};
use ferrows::runtime::{
    Appended, Context, Decision, Handler, Keep, Message, Read, ReadAnswer, Record, Server, ServerHandle, SessionId,
    Upgrade,
};
use process::Stopped;
use redis::Redis;
use tungstenite::Message as WsMessage;

/// How records are kept: the last 3, for a minute.
const KEEP: Keep = Keep { size: 3, ttl: Duration::from_secs(60) };

/// The test's application. A session's path names its topic (`/chat`:
/// `stream/chat`), which it subscribes to on open. What it sends:
/// `read` reads the topic's last 3 kept records; `~TEXT` appends a record
/// not kept; `!TEXT` a kept one that leaves the sender out; `?TEXT` a kept
/// one whose keeping is confirmed to the sender (`appended OFFSET:EPOCH`, or
/// `appended none`); anything else a kept one. Records come back to every
/// subscriber as `OFFSET:EPOCH:DATA`, a read as `kept OFFSET:EPOCH
/// [OFFSET:DATA,...]` (or `kept none`).
#[derive(Default)]
struct Records {
    /// Whose read each ticket is.
    tickets: HashMap<u64, SessionId>,
    next_ticket: u64,
}

impl Handler for Records {
    type State = String;

    fn upgrade(&mut self, request: &Upgrade<'_>) -> Decision<String> {
        Decision::accept(format!("stream{}", request.path()))
    }

    fn on_open(&mut self, ctx: &mut Context<'_, String>, session: SessionId) {
        let Some(topic) = ctx.state(session).cloned() else { return };
        ctx.subscribe(session, &topic).expect("a subscription");
    }

    fn on_message(&mut self, ctx: &mut Context<'_, String>, session: SessionId, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let Some(topic) = ctx.state(session).cloned() else { return };
        let taken = if text == "read" || text == "position" {
            self.next_ticket += 1;
            self.tickets.insert(self.next_ticket, session);
            let limit = if text == "read" { 3 } else { 0 };
            let read = Read::last(topic.as_str().into(), limit, Duration::from_secs(60));
            ctx.read_kept(self.next_ticket, vec![read])
        } else if let Some(loose) = text.strip_prefix('~') {
            ctx.append(&topic, loose.as_bytes().to_vec(), None, None, None)
        } else if let Some(confirmed) = text.strip_prefix('?') {
            self.next_ticket += 1;
            self.tickets.insert(self.next_ticket, session);
            ctx.append(&topic, confirmed.as_bytes().to_vec(), Some(KEEP), None, Some(self.next_ticket))
        } else if let Some(hidden) = text.strip_prefix('!') {
            ctx.append(&topic, hidden.as_bytes().to_vec(), Some(KEEP), Some(session), None)
        } else {
            ctx.append(&topic, text.as_bytes().to_vec(), Some(KEEP), None, None)
        };
        if !taken {
            let _ = ctx.send_text(session, "refused");
        }
    }

    fn on_record(&mut self, ctx: &mut Context<'_, String>, record: &Record, exclude: Option<SessionId>) {
        let data = String::from_utf8_lossy(&record.data);
        let text = match &record.position {
            Some(position) => format!("{}:{}:{data}", position.offset, position.epoch),
            None => format!("0::{data}"),
        };
        let skip: Vec<SessionId> = exclude.into_iter().collect();
        ctx.publish_local(&record.topic, Message::Text(&text), &skip);
    }

    fn on_appended(&mut self, ctx: &mut Context<'_, String>, answer: Appended) {
        let Some(session) = self.tickets.remove(&answer.ticket) else { return };
        let text = match answer.position {
            Some(position) => format!("appended {}:{}", position.offset, position.epoch),
            None => "appended none".to_owned(),
        };
        let _ = ctx.send_text(session, &text);
    }

    fn on_read(&mut self, ctx: &mut Context<'_, String>, answer: ReadAnswer) {
        let Some(session) = self.tickets.remove(&answer.ticket) else { return };
        let text = match answer.results.first() {
            Some(Some(kept)) => {
                let records: Vec<String> = kept
                    .records
                    .iter()
                    .map(|(offset, data)| format!("{offset}:{}", String::from_utf8_lossy(data)))
                    .collect();
                format!("kept {}:{} [{}]", kept.position.offset, kept.position.epoch, records.join(","))
            }
            _ => "kept none".to_owned(),
        };
        let _ = ctx.send_text(session, &text);
    }
}

/// A server with the cluster bridge as its uplink; stopped when dropped.
struct Node {
    handle: Option<ServerHandle>,
    cluster: Arc<Cluster>,
    addr: SocketAddr,
}

impl Node {
    fn start(redis: &Redis, name: &str) -> Node {
        let mut config = ClusterConfig::new(redis.url());
        config.node_id = name.to_owned();
        let cluster = Arc::new(Cluster::new(config).expect("a cluster bridge"));
        let handle = Server::builder()
            .listen("127.0.0.1:0".parse().expect("an address"))
            .loops(2)
            .uplink(cluster.clone())
            .start(|_| Records::default())
            .expect("the server starts");
        let addr = handle.local_addrs()[0];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.stats().is_up() {
            assert!(Instant::now() < deadline, "{name}: the cluster bridge did not come up");
            thread::sleep(Duration::from_millis(10));
        }
        Node { handle: Some(handle), cluster, addr }
    }

    fn stat(&self, counter: fn(&ferrows::cluster::ClusterStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        counter(self.cluster.stats()).load(Ordering::Relaxed)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
            let _ = handle.join();
        }
    }
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// A client of `node`'s topic `stream{path}`.
fn connect(node: &Node, path: &str) -> Ws {
    let stream = TcpStream::connect(node.addr).expect("TCP connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tungstenite::client(format!("ws://{}{path}", node.addr), stream).expect("the WebSocket handshake").0
}

fn send(ws: &mut Ws, text: &str) {
    ws.send(WsMessage::text(text)).expect("a send");
}

fn text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message") {
            WsMessage::Text(text) => return text,
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Nothing arrives within `quiet`.
fn assert_silent(ws: &mut Ws, quiet: Duration) {
    ws.get_mut().set_read_timeout(Some(quiet)).unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("expected nothing, got {other:?}"),
    }
    ws.get_mut().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
}

/// `OFFSET:EPOCH:DATA` read back.
fn record(text: &str) -> (u64, String, String) {
    let mut parts = text.splitn(3, ':');
    let (Some(offset), Some(epoch), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("not a record: {text:?}");
    };
    (offset.parse().unwrap_or_else(|_| panic!("not a record: {text:?}")), epoch.to_owned(), data.to_owned())
}

#[test]
fn kept_records_cross_nodes_in_order_and_read_back() {
    let redis = Redis::start();
    let (a, b) = (Node::start(&redis, "records-a"), Node::start(&redis, "records-b"));
    let mut on_a = connect(&a, "/chat");
    let mut also_on_a = connect(&a, "/chat");
    let mut on_b = connect(&b, "/chat");
    redis.wait_for_subscribers("ferrows:t:stream/chat", 2);

    // Appended on A, they come to both nodes (A's own through Redis), in offset order, under one epoch.
    for i in 1..=5 {
        send(&mut on_a, &format!("m{i}"));
    }
    let mut epochs = Vec::new();
    for ws in [&mut on_a, &mut also_on_a, &mut on_b] {
        for i in 1..=5 {
            let (offset, epoch, data) = record(&text(ws));
            assert_eq!((offset, data.as_str()), (i, format!("m{i}").as_str()));
            epochs.push(epoch);
        }
    }
    let epoch = epochs[0].clone();
    assert!(epoch.len() == 8 && epoch.bytes().all(|b| b.is_ascii_hexdigit()), "{epoch:?}");
    assert!(epochs.iter().all(|e| *e == epoch), "{epochs:?}");

    // A read on B: the last 3 kept, with their offsets.
    send(&mut on_b, "read");
    assert_eq!(text(&mut on_b), format!("kept 5:{epoch} [3:m3,4:m4,5:m5]"));

    // A record that leaves its sender out reaches everyone else, on both nodes.
    send(&mut also_on_a, "!hidden");
    assert_eq!(text(&mut on_a), format!("6:{epoch}:hidden"));
    assert_eq!(text(&mut on_b), format!("6:{epoch}:hidden"));
    assert_silent(&mut also_on_a, Duration::from_millis(300));

    // Redis loses everything, its scripts included: the next record starts a new epoch at 1
    // (the scripts go again by EVAL after a NOSCRIPT).
    assert_eq!(redis.calls("eval"), 0, "EVALSHA found the scripts loaded");
    assert!(redis.calls("evalsha") >= 7);
    assert_eq!(redis.command(&["FLUSHALL"]).as_deref(), Some("+OK"));
    assert_eq!(redis.command(&["SCRIPT", "FLUSH"]).as_deref(), Some("+OK"));
    send(&mut on_b, "after the flush");
    let (offset, new_epoch, data) = record(&text(&mut on_a));
    assert_eq!((offset, data.as_str()), (1, "after the flush"));
    assert_ne!(new_epoch, epoch);
    assert_eq!(text(&mut on_b), format!("1:{new_epoch}:after the flush"));

    // A record not kept comes in the topic's order, without a position.
    send(&mut on_a, "~loose");
    assert_eq!(text(&mut on_a), "0::loose");
    assert_eq!(text(&mut on_b), "0::loose");
    send(&mut on_a, "read");
    assert_eq!(text(&mut on_a), format!("kept 1:{new_epoch} [1:after the flush]"));

    // A topic never written: a subscriber's read of its position gives offset
    // 0 and an epoch the first record keeps (a read of its last records keeps none).
    let mut fresh = connect(&b, "/fresh");
    redis.wait_for_subscribers("ferrows:t:stream/fresh", 1);
    send(&mut fresh, "read");
    assert!(text(&mut fresh).starts_with("kept 0:"));
    assert_eq!(redis.command(&["EXISTS", "ferrows:h:stream/fresh"]).as_deref(), Some(":0"), "nothing kept");
    send(&mut fresh, "position");
    let answer = text(&mut fresh);
    let fresh_epoch = answer.strip_prefix("kept 0:").and_then(|rest| rest.strip_suffix(" []"));
    let fresh_epoch = fresh_epoch.unwrap_or_else(|| panic!("{answer}")).to_owned();
    send(&mut fresh, "first");
    assert_eq!(text(&mut fresh), format!("1:{fresh_epoch}:first"));

    assert_eq!(redis.calls("eval"), 2, "one call of each script went again by EVAL");
    assert_eq!(a.stat(|s| &s.records_appended), 6);
    assert_eq!(b.stat(|s| &s.records_appended), 2);
    assert_eq!(a.stat(|s| &s.record_errors) + b.stat(|s| &s.record_errors), 0);
    assert_eq!(a.stat(|s| &s.invalid) + b.stat(|s| &s.invalid), 0);
    assert_eq!(a.stat(|s| &s.lost) + b.stat(|s| &s.lost), 0);
    // Every record came back to each node through Redis: 5 + 1 + 1 + 1 on both, and B's "first".
    assert_eq!(a.stat(|s| &s.received), 8);
    assert_eq!(b.stat(|s| &s.received), 9);
}

#[test]
fn a_confirmed_append_is_answered_once_redis_keeps_it_or_cannot_tell() {
    let redis = Redis::start();
    let a = Node::start(&redis, "confirm-a");
    let mut on_a = connect(&a, "/confirm");
    redis.wait_for_subscribers("ferrows:t:stream/confirm", 1);
    send(&mut on_a, "?one");
    // The record comes back through Redis, and the answer with the same position, in either order.
    let (mut answer, mut kept) = (None, None);
    while answer.is_none() || kept.is_none() {
        let text = text(&mut on_a);
        match text.strip_prefix("appended ") {
            Some(position) => answer = Some(position.to_owned()),
            None => kept = Some(record(&text)),
        }
    }
    let (offset, epoch, data) = kept.unwrap();
    assert_eq!((answer.unwrap(), data), (format!("{offset}:{epoch}"), "one".to_owned()));

    // Redis hangs (SIGSTOP): an append sent now is answered `none` once the
    // bridge gives the connection up (three silent pings), never `appended`.
    let stopped = Stopped::new(redis.pid());
    let stopped_at = Instant::now();
    send(&mut on_a, "?two");
    let answer = text(&mut on_a);
    drop(stopped);
    assert_eq!(answer, "appended none", "an append in flight when the link is lost is not known to be kept");
    assert!(stopped_at.elapsed() < Duration::from_secs(6), "answered after {:?}", stopped_at.elapsed());
}
