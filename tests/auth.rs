//! Sessions with tokens, over real sockets: the three ways a token comes,
//! 401 and 403, grants for reading and publishing, expiry and refresh, the
//! user's disconnection, the metrics, and a log that never holds a token.
#![cfg(feature = "jwt")]

#[path = "support/process.rs"]
mod process;
#[path = "support/socket.rs"]
mod socket;
#[path = "support/tokens.rs"]
mod tokens;

use std::time::Duration;

use ferrows::app::{App, AppConfig, AuthSettings, Namespace, NamespaceOptions, Namespaces};
use ferrows::proto::OpCode;
use serde_json::{json, Value};
use socket::*;

const SECRET: &str = "a test secret that is 32 bytes or more long";

fn token_with(secret: &str, claims: &Value) -> String {
    tokens::hs256(secret, claims)
}

/// A token of `sub` valid for `secs` (expired for a negative number), with these grants.
fn token(sub: &str, secs: i64, topics: &[&str], publish: &[&str]) -> String {
    let exp = tokens::unix_now() + secs;
    token_with(SECRET, &json!({"sub": sub, "exp": exp, "topics": topics, "publish": publish}))
}

fn config() -> AppConfig {
    let mut config = AppConfig::default();
    let mut auth = AuthSettings::default();
    auth.hmac_secret = Some(SECRET.into());
    auth.leeway = Duration::ZERO;
    config.auth = auth;
    config.connect_timeout = Duration::from_secs(1);
    let open: Namespace = "open: anonymous=true".parse().unwrap();
    config.namespaces = Namespaces::new(NamespaceOptions::default(), vec![open]).unwrap();
    config
}

fn start() -> TestServer {
    let app = App::new(config());
    TestServer::start(quick_config(), 2, move |_| app.clone())
}

/// Upgrades on `path` with extra header lines; returns the client and the response head.
fn upgrade(server: &TestServer, path: &str, extra: &[&str]) -> (RawClient, String) {
    let mut client = RawClient::connect(server.addr);
    client.send_raw(upgrade_request(path, extra).as_bytes());
    let head = client.read_http_head();
    (client, head)
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

fn send_json(client: &mut RawClient, value: Value) {
    client.send_frame(true, OpCode::Text, value.to_string().as_bytes());
}

fn next_json(client: &mut RawClient) -> Value {
    let frame = client.next_frame();
    assert_eq!(frame.opcode, OpCode::Text, "{frame:?}");
    serde_json::from_slice(&frame.payload).expect("JSON")
}

fn next_text(client: &mut RawClient) -> String {
    let frame = client.next_frame();
    assert_eq!(frame.opcode, OpCode::Text, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

#[test]
fn a_room_wants_a_valid_token_with_its_grant() {
    let server = start();
    let alice = token("alice", 60, &["chat:*"], &["chat:*"]);
    for (extra, expected) in [
        (vec![], 401),
        (vec![bearer("not.a.token")], 401),
        (
            vec![bearer(&token_with(
                "another secret of at least thirty-two bytes",
                &json!({"sub": "x", "exp": tokens::unix_now() + 60}),
            ))],
            401,
        ),
        (vec![bearer(&token("alice", -10, &["chat:*"], &[]))], 401),
        (vec![bearer(&token("bob", 60, &["news:*"], &[]))], 403),
        (vec![bearer(&alice)], 101),
    ] {
        let lines: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (_, head) = upgrade(&server, "/rooms/chat:lobby", &lines);
        assert_eq!(status(&head), expected, "{head}");
        if expected == 401 {
            assert_eq!(header(&head, "WWW-Authenticate").as_deref(), Some(r#"Bearer error="invalid_token""#));
        }
    }
    // The token as a subprotocol entry, beside the protocol the server answers.
    let offer = format!("Sec-WebSocket-Protocol: chat, bearer.{alice}");
    let (_, head) = upgrade(&server, "/rooms/chat:lobby", &[&offer]);
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(header(&head, "Sec-WebSocket-Protocol").as_deref(), Some("chat"), "never the bearer entry");
    // An anonymous namespace lets anyone in without a token.
    let (_, head) = upgrade(&server, "/rooms/open:hall", &[]);
    assert_eq!(status(&head), 101, "{head}");
    server.stop();
}

#[test]
fn a_member_publishes_only_with_a_publish_grant() {
    let server = start();
    let (mut speaker, head) = upgrade(&server, "/rooms/chat:a", &[&bearer(&token("s", 60, &["chat:*"], &["chat:a"]))]);
    assert_eq!(status(&head), 101);
    let (mut listener, head) = upgrade(&server, "/rooms/chat:a", &[&bearer(&token("l", 60, &["chat:a"], &[]))]);
    assert_eq!(status(&head), 101);
    std::thread::sleep(Duration::from_millis(100));
    speaker.send_frame(true, OpCode::Text, b"hello");
    assert_eq!(next_text(&mut listener), "hello");
    listener.send_frame(true, OpCode::Text, b"me too");
    let close = listener.expect_close();
    assert_eq!(close.close_code(), Some(1008));
    // Anonymous members of an anonymous namespace read, and may not speak while a key is set.
    let (mut guest, _) = upgrade(&server, "/rooms/open:hall", &[]);
    guest.send_frame(true, OpCode::Text, b"hi");
    assert_eq!(guest.expect_close().close_code(), Some(1008));
    server.stop();
}

#[test]
fn pubsub_takes_a_token_in_its_first_message_and_checks_every_topic() {
    let server = start();
    let (mut client, head) = upgrade(&server, "/pubsub", &[]);
    assert_eq!(status(&head), 101, "a token may come later");
    send_json(
        &mut client,
        json!({"op": "connect", "token": token("carol", 60, &["news:*"], &["news:carol"]), "id": 1}),
    );
    assert_eq!(next_json(&mut client), json!({"type": "ack", "op": "connect", "id": 1, "user": "carol"}));
    send_json(&mut client, json!({"op": "subscribe", "topics": ["news:a", "open:x"], "id": 2}));
    assert_eq!(next_json(&mut client)["type"], "ack", "granted and anonymous topics");
    send_json(&mut client, json!({"op": "subscribe", "topic": "chat:a", "id": 3}));
    let refused = next_json(&mut client);
    assert_eq!((refused["code"].as_str(), refused["id"].as_i64()), (Some("forbidden"), Some(3)));
    send_json(&mut client, json!({"op": "publish", "topic": "news:a", "data": 1, "id": 4}));
    assert_eq!(next_json(&mut client)["code"], "forbidden", "no publish grant for news:a");
    send_json(&mut client, json!({"op": "publish", "topic": "news:carol", "data": 2, "id": 5}));
    assert_eq!(next_json(&mut client)["op"], "publish");
    send_json(&mut client, json!({"op": "connect", "token": "x", "id": 6}));
    assert_eq!(next_json(&mut client)["code"], "forbidden", "connect only first");

    // A bad token in the first message: an error; the session stays, anonymous.
    let (mut other, _) = upgrade(&server, "/pubsub", &[]);
    send_json(&mut other, json!({"op": "connect", "token": "a.b.c", "id": 1}));
    assert_eq!(next_json(&mut other)["code"], "unauthorized");
    send_json(&mut other, json!({"op": "subscribe", "topic": "news:a", "id": 2}));
    assert_eq!(next_json(&mut other)["code"], "forbidden");
    // A bad token on the upgrade: 401.
    let (_, head) = upgrade(&server, "/pubsub", &[&bearer("a.b.c")]);
    assert_eq!(status(&head), 401);
    // Silence where a first message is awaited: closed with 4001 after the handshake timeout.
    let (mut silent, _) = upgrade(&server, "/pubsub", &[]);
    let close = silent.expect_close();
    assert_eq!((close.close_code(), close.close_reason().as_str()), (Some(4001), "no token"));
    server.stop();
}

#[test]
fn an_expired_token_closes_the_session_unless_refreshed() {
    let server = start();
    let (mut short, _) = upgrade(&server, "/rooms/chat:t", &[&bearer(&token("dave", 1, &["chat:*"], &[]))]);
    let close = short.expect_close();
    assert_eq!((close.close_code(), close.close_reason().as_str()), (Some(4001), "token expired"));

    let (mut client, _) = upgrade(&server, "/pubsub", &[&bearer(&token("erin", 2, &["chat:*"], &[]))]);
    send_json(&mut client, json!({"op": "refresh", "token": token("mallory", 60, &["*"], &["*"]), "id": 1}));
    assert_eq!(next_json(&mut client)["code"], "forbidden", "a refresh keeps the user");
    send_json(&mut client, json!({"op": "refresh", "token": token("erin", 4, &["chat:*"], &[]), "id": 2}));
    assert_eq!(next_json(&mut client), json!({"type": "ack", "op": "refresh", "id": 2}));
    // Past the first token's end, still open.
    std::thread::sleep(Duration::from_millis(2500));
    send_json(&mut client, json!({"op": "ping", "id": 3}));
    assert_eq!(next_json(&mut client)["op"], "ping");
    let close = client.expect_close();
    assert_eq!(close.close_code(), Some(4001), "the refreshed token ends too");
    server.stop();
}

#[test]
fn a_refresh_with_narrower_grants_leaves_the_topics_no_longer_granted() {
    let server = start();
    let wide = token("gina", 60, &["chat:*", "news:*"], &["*"]);
    let (mut client, _) = upgrade(&server, "/pubsub", &[&bearer(&wide)]);
    send_json(&mut client, json!({"op": "subscribe", "topics": ["chat:a", "news:b"], "id": 1}));
    assert_eq!(next_json(&mut client)["op"], "subscribe");
    send_json(&mut client, json!({"op": "refresh", "token": token("gina", 60, &["chat:*"], &["*"]), "id": 2}));
    assert_eq!(next_json(&mut client), json!({"type": "ack", "op": "refresh", "id": 2, "unsubscribed": ["news:b"]}));
    send_json(&mut client, json!({"op": "publish", "topic": "news:b", "data": 1, "id": 3}));
    assert_eq!(next_json(&mut client)["recipients"], 0, "no longer a subscriber");
    send_json(&mut client, json!({"op": "publish", "topic": "chat:a", "data": 2, "id": 4}));
    assert_eq!(next_json(&mut client)["data"], 2, "still a subscriber");
    assert_eq!(next_json(&mut client)["recipients"], 1);
    server.stop();
}

#[test]
fn the_api_disconnects_one_user_and_nobody_else() {
    let mut config = config();
    config.api_key = Some("k".into());
    let app = App::new(config);
    let server = TestServer::start(quick_config(), 2, move |_| app.clone());
    let frank = token("frank", 60, &["chat:*"], &[]);
    let (mut room, _) = upgrade(&server, "/rooms/chat:x", &[&bearer(&frank)]);
    let (mut sub, _) = upgrade(&server, "/pubsub", &[&bearer(&frank)]);
    let (mut other, _) = upgrade(&server, "/rooms/chat:x", &[&bearer(&token("grace", 60, &["chat:*"], &[]))]);
    std::thread::sleep(Duration::from_millis(100));
    let request = "POST /api/disconnect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 16\r\n\r\n{\"user\":\"frank\"}";
    let answer = http_answer(&server, request.as_bytes());
    assert!(answer.ends_with(r#"{"sessions":2}"#), "{answer}");
    for client in [&mut room, &mut sub] {
        let close = client.expect_close();
        assert_eq!((close.close_code(), close.close_reason().as_str()), (Some(4003), "disconnected"));
    }
    other.send_frame(true, OpCode::Ping, b"still here");
    assert_eq!(other.next_frame().opcode, OpCode::Pong);
    server.stop();
}

#[test]
fn a_token_too_long_for_the_request_head_is_431() {
    let server = start();
    let huge = "a".repeat(64 << 10);
    let (_, head) = upgrade(&server, "/rooms/chat:a", &[&bearer(&huge)]);
    assert_eq!(status(&head), 431, "{head}");
    server.stop();
}

/// The binary, logging at debug, with tokens good and bad: the log names none of them.
#[test]
fn the_log_never_holds_a_token() {
    let args = ["--auth-leeway", "0s", "--namespaces", "open: anonymous=true", "--timeouts-handshake", "1s"];
    let server =
        process::ServerProcess::start_with_env("auth-log", &args, "debug", &[("FERROWS_AUTH_HMAC_SECRET", SECRET)]);
    let good = token("henry", 60, &["chat:*"], &["chat:*"]);
    let expired = token("henry", -10, &["chat:*"], &[]);
    let forged = token_with(
        "a forger's secret that is long enough to be valid",
        &json!({"sub": "x", "exp": tokens::unix_now() + 60}),
    );
    let metrics_of = |addr| {
        let mut client = RawClient::connect(addr);
        client.send_raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        String::from_utf8(client.read_to_end()).unwrap()
    };
    for token in [&good, &expired, &forged] {
        let mut client = RawClient::connect(server.addr);
        client.send_raw(upgrade_request("/rooms/chat:a", &[&bearer(token)]).as_bytes());
        let head = client.read_http_head();
        let offer = format!("Sec-WebSocket-Protocol: chat, bearer.{token}");
        let mut again = RawClient::connect(server.addr);
        again.send_raw(upgrade_request("/rooms/chat:a", &[&offer]).as_bytes());
        let _ = again.read_http_head();
        let mut pubsub = RawClient::connect(server.addr);
        pubsub.send_raw(upgrade_request("/pubsub", &[]).as_bytes());
        let _ = pubsub.read_http_head();
        send_json(&mut pubsub, json!({"op": "connect", "token": token}));
        let _ = pubsub.next_frame();
        if status(&head) == 101 {
            client.send_frame(true, OpCode::Text, b"hello");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let metrics = metrics_of(server.addr);
    // Each token three times: the header, the subprotocol entry, the connect message.
    assert!(metrics.contains(r#"ferrows_auth_total{result="ok"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"ferrows_auth_total{result="expired"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"ferrows_auth_total{result="invalid"} 3"#), "{metrics}");
    let log = server.log_text();
    assert!(log.contains("upgrade refused"), "the log is at debug: {log}");
    for token in [&good, &expired, &forged] {
        for part in token.split('.') {
            assert!(!log.contains(part), "a token's part is in the log:\n{log}");
        }
    }
}

/// SIGHUP reads the public key file again: tokens of the old key are refused after it.
#[cfg(unix)]
#[test]
fn sighup_reloads_the_public_key() {
    let (old, old_pem) = tokens::ed25519(1);
    let (new, new_pem) = tokens::ed25519(2);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("auth-reload.pem");
    std::fs::write(&path, old_pem).unwrap();
    let server = process::ServerProcess::start("auth-reload", &["--auth-public-key", path.to_str().unwrap()], "info");
    let claims = json!({"sub": "ivy", "exp": tokens::unix_now() + 60, "topics": ["*"]});
    let (old_token, new_token) = (tokens::eddsa(&old, &claims), tokens::eddsa(&new, &claims));
    let status_with = |token: &str| {
        let mut client = RawClient::connect(server.addr);
        client.send_raw(upgrade_request("/rooms/r", &[&bearer(token)]).as_bytes());
        status(&client.read_http_head())
    };
    assert_eq!((status_with(&old_token), status_with(&new_token)), (101, 401));
    std::fs::write(&path, new_pem).unwrap();
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.log_text().contains("token key reloaded") {
        assert!(std::time::Instant::now() < deadline, "no reload logged:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((status_with(&old_token), status_with(&new_token)), (401, 101));
}
