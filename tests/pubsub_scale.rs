//! Ten thousand subscribers of one topic, on the real binary (a process of
//! its own, so that its descriptors and the test's each stay within the
//! per-process limit): one publish through the HTTP API reaches all of them.
#![cfg(target_os = "linux")]

#[path = "support/process.rs"]
mod process;
#[path = "support/socket.rs"]
mod socket;

use ferrows::proto::frame::OpCode;
use process::ServerProcess;
use socket::*;

const SUBSCRIBERS: usize = 10_000;

#[test]
fn ten_thousand_subscribers_of_one_topic_all_receive_a_publish() {
    let server = ServerProcess::start("pubsub-scale", &["--loops", "1"], "warn");
    let addr = server.addr;

    let subscribe = br#"{"op":"subscribe","topic":"crowd"}"#;
    let mut clients: Vec<RawClient> = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let mut client = RawClient::open(addr, "/pubsub");
        client.send_frame(true, OpCode::Text, subscribe);
        clients.push(client);
    }
    for client in &mut clients {
        let ack = client.next_frame();
        assert!(String::from_utf8_lossy(&ack.payload).contains(r#""op":"subscribe""#));
    }

    let body = r#"{"hello":"everyone"}"#;
    let request = format!(
        "POST /publish/crowd HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut poster = RawClient::connect(addr);
    poster.send_raw(request.as_bytes());
    let answer = String::from_utf8_lossy(&poster.read_to_end()).into_owned();
    assert!(answer.ends_with(&format!("{{\"recipients\":{SUBSCRIBERS}}}")), "{answer}");

    let expected = format!(r#"{{"type":"message","topic":"crowd","data":{body}}}"#);
    for client in &mut clients {
        assert_eq!(String::from_utf8_lossy(&client.next_frame().payload), expected);
    }
}
