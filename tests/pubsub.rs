//! Topics and broadcasting across loops, over real sockets.
//!
//! A small test handler turns text commands into engine calls:
//! `sub TOPIC`, `unsub TOPIC`, `pub TOPIC TEXT`, `pubx TOPIC TEXT` (leaving
//! out the sender), `all TEXT` (every connection). Each command is
//! acknowledged with `ok` (or `ok N` with the local recipients of a publish).

#[path = "support/socket.rs"]
mod socket;

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::runtime::{
    Context, Decision, DeliverError, Handler, Inlet, Message, Server, ServerConfig, SessionId, SharedFrame,
    SlowConsumerPolicy, Topic, Upgrade, Uplink,
};
use socket::*;
use tungstenite::Message as WsMessage;

type Ws = tungstenite::WebSocket<TcpStream>;

struct Commands;

impl Handler for Commands {
    type State = ();

    fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
        Decision::accept(())
    }

    fn on_message(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        let mut parts = text.splitn(3, ' ');
        let reply = match (parts.next(), parts.next(), parts.next()) {
            (Some("sub"), Some(topic), None) => ctx.subscribe(session, topic).map(|()| "ok".to_owned()),
            (Some("unsub"), Some(topic), None) => Ok(format!("ok {}", ctx.unsubscribe(session, topic))),
            (Some("pub"), Some(topic), Some(body)) => {
                Ok(format!("ok {}", ctx.publish(topic, Message::Text(body), None)))
            }
            (Some("pubx"), Some(topic), Some(body)) => {
                Ok(format!("ok {}", ctx.publish(topic, Message::Text(body), Some(session))))
            }
            (Some("all"), Some(first), rest) => {
                let body = rest.map_or(first.to_owned(), |r| format!("{first} {r}"));
                Ok(format!("ok {}", ctx.broadcast(Message::Text(&body), Some(session))))
            }
            (Some("counts"), None, None) => {
                let (topics, subscriptions) = ctx.topic_counts();
                Ok(format!("ok {topics} {subscriptions}"))
            }
            _ => Ok("unknown".to_owned()),
        };
        let _ = ctx.send_text(session, &reply.unwrap_or_else(|e| format!("error {e}")));
    }
}

fn connect(server: &TestServer) -> Ws {
    let stream = TcpStream::connect(server.addr).expect("TCP connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_nodelay(true).unwrap();
    tungstenite::client(server.url("/"), stream).expect("the WebSocket handshake").0
}

fn text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("a message") {
            WsMessage::Text(t) => return t.to_string(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn command(ws: &mut Ws, line: &str) -> String {
    ws.send(WsMessage::text(line)).unwrap();
    text(ws)
}

/// Waits until `check` holds, polling; fails after a generous bound.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn subscribers_on_every_loop_receive_every_publish_in_order() {
    let server = TestServer::start(quick_config(), 4, |_| Commands);
    // Enough subscribers that every loop gets some (the kernel spreads them).
    let mut subscribers: Vec<Ws> = (0..24).map(|_| connect(&server)).collect();
    for ws in &mut subscribers {
        assert_eq!(command(ws, "sub news"), "ok");
    }
    let mut publisher = connect(&server);
    for i in 0..200 {
        assert!(command(&mut publisher, &format!("pub news message {i}")).starts_with("ok "));
    }
    for ws in &mut subscribers {
        for i in 0..200 {
            assert_eq!(text(ws), format!("message {i}"));
        }
    }
    assert_eq!(server.handle().topic_count(), 1);
    assert_eq!(server.handle().pubsub_stats().dropped_channel_full.load(Ordering::Relaxed), 0);
    server.stop();
}

#[test]
fn unsubscribe_and_disconnect_leave_no_topic_behind() {
    let server = TestServer::start(quick_config(), 2, |_| Commands);
    let mut a = connect(&server);
    let mut b = connect(&server);
    assert_eq!(command(&mut a, "sub t1"), "ok");
    assert_eq!(command(&mut a, "sub t2"), "ok");
    assert_eq!(command(&mut b, "sub t2"), "ok");
    assert_eq!(command(&mut a, "sub t2"), "ok", "subscribing twice is harmless");
    assert_eq!(server.handle().topic_count(), 2);
    assert_eq!(command(&mut a, "unsub t1"), "ok true");
    assert_eq!(command(&mut a, "unsub t1"), "ok false");
    eventually("t1 leaves the directory", || server.handle().topic_count() == 1);
    assert_eq!(command(&mut a, "pub t1 nobody"), "ok 0");
    drop(a);
    b.close(None).unwrap();
    eventually("every topic leaves the directory", || server.handle().topic_count() == 0);
    let mut c = connect(&server);
    assert_eq!(command(&mut c, "counts"), "ok 0 0");
    server.stop();
}

#[test]
fn a_publish_can_leave_out_its_sender() {
    let server = TestServer::start(quick_config(), 1, |_| Commands);
    let mut a = connect(&server);
    let mut b = connect(&server);
    assert_eq!(command(&mut a, "sub room"), "ok");
    assert_eq!(command(&mut b, "sub room"), "ok");
    a.send(WsMessage::text("pubx room from a")).unwrap();
    assert_eq!(text(&mut a), "ok 1", "only b, not a");
    assert_eq!(text(&mut b), "from a");
    a.send(WsMessage::text("pub room to all")).unwrap();
    let (first, second) = (text(&mut a), text(&mut a));
    assert_eq!((first.as_str(), second.as_str()), ("to all", "ok 2"), "the sender's copy precedes the ack");
    assert_eq!(text(&mut b), "to all");
    server.stop();
}

#[test]
fn broadcast_reaches_every_connection_on_every_loop() {
    let server = TestServer::start(quick_config(), 3, |_| Commands);
    let mut others: Vec<Ws> = (0..12).map(|_| connect(&server)).collect();
    let mut sender = connect(&server);
    assert!(command(&mut sender, "all hello everyone").starts_with("ok "));
    for ws in &mut others {
        assert_eq!(text(ws), "hello everyone");
    }
    server.stop();
}

/// A subscriber that never reads: the publisher goes on, the server's queue
/// for that subscriber stays at its limit, and messages beyond it are
/// dropped for that subscriber only, counted.
#[test]
fn a_subscriber_that_never_reads_loses_messages_not_the_server_memory() {
    const COUNT: u64 = 3000;
    let mut config = quick_config();
    // Room for the fast subscriber to lag a little; none for one that never reads.
    config.max_out_queue = 2 << 20;
    let server = TestServer::start(config, 1, |_| Commands);
    let mut slow = RawClient::connect_with_receive_buffer(server.addr, 4096).handshake("/");
    slow.send_frame(true, ferrows::proto::frame::OpCode::Text, b"sub firehose");
    assert_eq!(slow.next_frame().payload, b"ok");
    let mut fast = connect(&server);
    assert_eq!(command(&mut fast, "sub firehose"), "ok");
    // The fast subscriber reads as messages come and gets everything, in order.
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = received.clone();
    let reader = std::thread::spawn(move || {
        for i in 0..COUNT {
            assert!(text(&mut fast).starts_with(&format!("{i:05}")), "message {i}");
            progress.store(i + 1, Ordering::Release);
        }
    });
    let mut publisher = connect(&server);
    let body = "x".repeat(8 << 10);
    for i in 0..COUNT {
        // Fast means keeping within 512 KiB of the stream, well inside its
        // queue, however slowly this machine runs the reading thread.
        let deadline = Instant::now() + IO_TIMEOUT;
        while i.saturating_sub(received.load(Ordering::Acquire)) >= 64 {
            assert!(Instant::now() < deadline, "the fast subscriber stalled at {i}");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(command(&mut publisher, &format!("pub firehose {i:05}{body}")).starts_with("ok "));
    }
    reader.join().expect("the fast subscriber got every message");
    let dropped = server.handle().pubsub_stats().dropped_backpressure.load(Ordering::Relaxed);
    // 24 MiB published; the slow subscriber takes at most the kernel's socket
    // buffers (a few MiB) and its 2 MiB queue: most must be dropped.
    assert!(dropped > COUNT / 2, "only {dropped} dropped: the queue must be bounded");
    // What the slow one gets is an in-order prefix of the stream, with gaps.
    let mut last = None;
    for _ in 0..10 {
        let frame = slow.next_frame();
        let n: u32 = std::str::from_utf8(&frame.payload[..5]).unwrap().parse().unwrap();
        assert!(last.is_none_or(|l| n > l), "out of order");
        last = Some(n);
    }
    server.stop();
}

#[test]
fn the_close_policy_closes_a_slow_subscriber_with_1008() {
    let mut config = ServerConfig::default();
    config.max_out_queue = 32 << 10;
    config.slow_consumer = SlowConsumerPolicy::Close;
    config.linger_timeout = Duration::from_secs(1);
    let server = TestServer::start(config, 1, |_| Commands);
    let mut slow = RawClient::connect_with_receive_buffer(server.addr, 4096).handshake("/");
    slow.send_frame(true, ferrows::proto::frame::OpCode::Text, b"sub firehose");
    assert_eq!(slow.next_frame().payload, b"ok");
    let mut publisher = connect(&server);
    // 8 MiB: more than the kernel's send buffer for the slow one can grow
    // to (tcp_wmem's 4 MiB), so its queue must pass the limit however fast
    // the server writes.
    let body = "y".repeat(8 << 10);
    for _ in 0..1000 {
        publisher.send(WsMessage::text(format!("pub firehose {body}"))).unwrap();
        assert!(text(&mut publisher).starts_with("ok "));
    }
    assert!(server.handle().pubsub_stats().slow_consumers_closed.load(Ordering::Relaxed) >= 1);
    // Reading now: messages, then the Close with 1008.
    let close = loop {
        let frame = slow.next_frame();
        if frame.opcode == ferrows::proto::frame::OpCode::Close {
            break frame;
        }
    };
    assert_eq!(close.close_code(), Some(1008));
    server.stop();
}

/// What a bridge to elsewhere saw, and its way in.
#[derive(Debug, Default)]
struct RecordingUplink {
    inlet: Mutex<Option<Inlet>>,
    events: Mutex<Vec<String>>,
}

impl RecordingUplink {
    fn record(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn inlet(&self) -> Inlet {
        self.inlet.lock().unwrap().clone().expect("attached at start")
    }
}

impl Uplink for RecordingUplink {
    fn attach(&self, inlet: Inlet) -> std::io::Result<()> {
        *self.inlet.lock().unwrap() = Some(inlet);
        self.record("attach".into());
        Ok(())
    }

    fn publish(&self, topic: Option<&Topic>, frame: &SharedFrame) {
        let payload = String::from_utf8_lossy(&frame[2..]);
        self.record(format!("publish {} {payload}", topic.map_or("*", |t| &**t)));
    }

    fn interest(&self, topic: &Topic, subscribed: bool) {
        self.record(format!("interest {topic} {subscribed}"));
    }

    fn detach(&self) {
        self.record("detach".into());
    }

    fn render_metrics(&self, out: &mut String) {
        out.push_str("test_uplink_up 1\n");
    }
}

fn text_frame(text: &str) -> SharedFrame {
    let mut frame = Vec::new();
    encode_frame(true, 0, OpCode::Text, text.as_bytes(), None, &mut frame);
    frame.into()
}

#[test]
fn an_uplink_sees_publishes_and_interest_and_delivers_to_every_loop() {
    let uplink = Arc::new(RecordingUplink::default());
    let handle = Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .loops(2)
        .config(quick_config())
        .uplink(uplink.clone())
        .start(|_| Commands)
        .expect("the server starts");
    let url = format!("ws://{}/", handle.local_addrs()[0]);
    let open = || {
        let stream = TcpStream::connect(handle.local_addrs()[0]).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tungstenite::client(url.as_str(), stream).expect("the WebSocket handshake").0
    };
    let (mut a, mut b) = (open(), open());
    assert_eq!(command(&mut a, "sub news"), "ok");
    assert_eq!(command(&mut b, "sub news"), "ok");
    // The node's first subscriber only.
    assert_eq!(uplink.events(), ["attach", "interest news true"]);

    assert_eq!(command(&mut a, "pubx news hi"), "ok 1");
    assert_eq!(text(&mut b), "hi");
    // Both count every loop's sessions, whichever loops a and b are on.
    assert_eq!(command(&mut a, "all everyone"), "ok 1");
    assert_eq!(text(&mut b), "everyone");

    // From elsewhere: to both subscribers, whatever their loop, and never back out.
    let inlet = uplink.inlet();
    assert!(inlet.has_subscribers("news"));
    assert_eq!(inlet.deliver(Some(&Topic::from("news")), &text_frame("from afar")), Ok(2));
    assert_eq!(inlet.deliver(None, &text_frame("to all")), Ok(0));
    for ws in [&mut a, &mut b] {
        assert_eq!(text(ws), "from afar");
        assert_eq!(text(ws), "to all");
    }
    let half: SharedFrame = text_frame("cut")[..4].into();
    assert_eq!(inlet.deliver(None, &half), Err(DeliverError::NotADataFrame));

    assert_eq!(command(&mut a, "unsub news"), "ok true");
    assert_eq!(command(&mut b, "unsub news"), "ok true");
    assert!(!inlet.has_subscribers("news"));
    let mut metrics = String::new();
    handle.metrics().render(&mut metrics);
    assert!(metrics.ends_with("test_uplink_up 1\n"), "{metrics}");
    handle.shutdown();
    join_within(handle, Duration::from_secs(20));
    let expected = ["attach", "interest news true", "publish news hi", "publish * everyone", "interest news false"];
    assert_eq!(uplink.events(), [&expected[..], &["detach"]].concat());
}
