//! Recovery from history under concurrent publishers on several loops: a
//! client that drops its connection at arbitrary points and comes back with
//! `since` ends up with the topic's publications exactly once, in order.

#[path = "support/rng.rs"]
mod rng;
#[path = "support/socket.rs"]
mod socket;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrows::app::{App, AppConfig, NamespaceOptions, Namespaces};
use rng::Rng;
use serde_json::{json, Value};
use socket::*;
use tungstenite::Message as WsMessage;

type Ws = tungstenite::WebSocket<TcpStream>;

fn connect(server: &TestServer) -> Ws {
    let stream = TcpStream::connect(server.addr).expect("TCP connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tungstenite::client(server.url("/pubsub"), stream).expect("the WebSocket handshake").0
}

fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message") {
            WsMessage::Text(t) => return serde_json::from_str(t.as_str()).expect("JSON"),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The client's side: the offsets it read, in order, across its connections.
struct Reader {
    seen: Vec<u64>,
    epoch: String,
}

impl Reader {
    /// Subscribes (from where it left off, after the first time) and reads
    /// the recovered publications and the ack; checks they continue its sequence.
    fn rejoin(&mut self, ws: &mut Ws) {
        let last = self.seen.last().copied().unwrap_or(0);
        let since = json!({"h:t": {"offset": last, "epoch": self.epoch}});
        let request = json!({"op": "subscribe", "topic": "h:t", "since": since, "id": 1});
        ws.send(WsMessage::text(request.to_string())).unwrap();
        loop {
            let value = next(ws);
            if value["type"] == "ack" {
                assert_eq!(value["recovered"]["h:t"], true, "everything is kept: {value}");
                assert_eq!(value["positions"]["h:t"]["epoch"], self.epoch.as_str());
                return;
            }
            assert_eq!(value["recovered"], true, "before the ack, only recovered publications: {value}");
            self.take(&value);
        }
    }

    fn take(&mut self, message: &Value) {
        assert_eq!(message["type"], "message", "{message}");
        let offset = message["offset"].as_u64().unwrap();
        let expected = self.seen.last().map_or(1, |last| last + 1);
        assert_eq!(offset, expected, "a gap or a duplicate after {:?}: {message}", self.seen.last());
        self.seen.push(offset);
    }
}

#[test]
fn a_client_that_keeps_dropping_its_connection_gets_every_publication_once_in_order() {
    for case in 0..6u64 {
        let mut config = AppConfig::default();
        let kept: ferrows::app::Namespace = "h: history_size=200000".parse().unwrap();
        config.namespaces = Namespaces::new(NamespaceOptions::default(), vec![kept]).unwrap();
        let app = App::new(config);
        let server = TestServer::start(quick_config(), 3, move |_| app.clone());
        // The stream's epoch, before its first publication.
        let mut first = connect(&server);
        first.send(WsMessage::text(json!({"op": "history", "topic": "h:t"}).to_string())).unwrap();
        let epoch = next(&mut first)["epoch"].as_str().unwrap().to_owned();
        let running = Arc::new(AtomicBool::new(true));
        // Publishers on (likely) different loops, each as fast as its acks come.
        let publishers: Vec<_> = (0..3)
            .map(|p| {
                let mut ws = connect(&server);
                let running = running.clone();
                std::thread::spawn(move || {
                    let mut sent = 0u64;
                    // Until the reader is done, a little paced, so that the kept window holds it all.
                    while running.load(Ordering::Relaxed) {
                        if sent % 10 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        let request = json!({"op": "publish", "topic": "h:t", "data": [p, sent], "id": sent});
                        ws.send(WsMessage::text(request.to_string())).unwrap();
                        assert_eq!(next(&mut ws)["op"], "publish");
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();

        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1));
        let mut reader = Reader { seen: Vec::new(), epoch };
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            let mut ws = connect(&server);
            reader.rejoin(&mut ws);
            for _ in 0..rng.below(200) {
                let value = next(&mut ws);
                reader.take(&value);
            }
            // Dropped without a Close, whatever was on its way.
            drop(ws);
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
        running.store(false, Ordering::Relaxed);
        let total: u64 = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        // One last time: everything up to the last publication.
        let mut ws = connect(&server);
        reader.rejoin(&mut ws);
        while reader.seen.len() < total as usize {
            let value = next(&mut ws);
            reader.take(&value);
        }
        assert_eq!(reader.seen.len() as u64, total, "case {case}");
        server.stop();
    }
}
