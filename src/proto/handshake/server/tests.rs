//! Table tests for the server side, one per rule of RFC 6455 §4.2.

use super::*;
use crate::proto::handshake::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The RFC 6455 §1.2 example request, with the given header lines replacing
/// the defaults of the same name (`None` value drops the field).
fn head_with(request_line: &str, changes: &[(&str, Option<&str>)]) -> String {
    let defaults = [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut head = format!("{request_line}\r\n");
    for (name, value) in defaults {
        if changes.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    for (name, value) in changes {
        if let Some(value) = value {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    head
}

fn valid_head() -> String {
    head_with("GET /chat HTTP/1.1", &[])
}

fn parse(head: &[u8]) -> Result<Request, HandshakeError> {
    let mut handshake = ServerHandshake::default();
    match handshake.feed(head)? {
        Status::Complete { head, .. } => Ok(head),
        Status::Partial => panic!("head incomplete: {:?}", String::from_utf8_lossy(head)),
    }
}

fn upgrade(head: &str) -> Result<UpgradeRequest, HandshakeError> {
    parse(head.as_bytes())?.validate_upgrade()
}

/// Checks that `err` earns `status` and that its response is a complete
/// HTTP/1.1 response that closes the connection and says why.
fn assert_response(err: &HandshakeError, status: u16, reason: &str) -> String {
    assert_eq!(err.status().as_u16(), status, "{err}");
    let mut out = Vec::new();
    err.write_response(&mut out);
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/plain; charset=utf-8"));
    assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())), "{head}");
    assert!(body.contains(reason), "{body:?} lacks {reason:?}");
    text
}

fn assert_rejected(head: &str, status: u16, reason: &str) -> String {
    let err = upgrade(head).expect_err("request should be refused");
    assert_response(&err, status, reason)
}

#[test]
fn rfc6455_4_2_1_example_request_is_accepted() {
    let upgrade = upgrade(&valid_head()).unwrap();
    assert_eq!(upgrade.key(), KEY);
    assert!(upgrade.protocols().is_empty());
    assert!(upgrade.extensions().is_empty());
}

#[test]
fn rfc6455_4_2_2_accept_is_101_with_rfc_example_key() {
    let mut out = Vec::new();
    upgrade(&valid_head()).unwrap().accept(&Accept::new(), &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn rfc6455_4_2_1_header_names_are_case_insensitive() {
    for case in [str::to_lowercase, str::to_uppercase] {
        let head = format!(
            "GET / HTTP/1.1\r\n{}: a\r\n{}: websocket\r\n{}: Upgrade\r\n{}: {KEY}\r\n{}: 13\r\n\r\n",
            case("Host"),
            case("Upgrade"),
            case("Connection"),
            case("Sec-WebSocket-Key"),
            case("Sec-WebSocket-Version"),
        );
        upgrade(&head).unwrap();
    }
}

#[test]
fn rfc6455_4_2_1_upgrade_value_is_case_insensitive() {
    for value in ["WebSocket", "WEBSOCKET", "websocket", "h2c, WebSocket"] {
        upgrade(&head_with("GET / HTTP/1.1", &[("Upgrade", Some(value))])).unwrap();
    }
}

#[test]
fn rfc6455_4_2_1_upgrade_must_name_websocket_else_400() {
    for value in [None, Some("h2c"), Some("websocket2"), Some("")] {
        assert_rejected(&head_with("GET / HTTP/1.1", &[("Upgrade", value)]), 400, "Upgrade must include websocket");
    }
}

#[test]
fn rfc6455_4_2_1_connection_is_a_token_list() {
    for value in ["keep-alive, Upgrade", "upgrade", "UPGRADE,keep-alive", " Upgrade "] {
        upgrade(&head_with("GET / HTTP/1.1", &[("Connection", Some(value))])).unwrap();
    }
    // The token may also come on a second Connection line.
    let head = head_with("GET / HTTP/1.1", &[("Connection", Some("keep-alive")), ("connection", Some("Upgrade"))]);
    upgrade(&head).unwrap();
}

#[test]
fn rfc6455_4_2_1_connection_must_include_upgrade_else_400() {
    for value in [None, Some("keep-alive"), Some("Upgraded"), Some("close")] {
        assert_rejected(&head_with("GET / HTTP/1.1", &[("Connection", value)]), 400, "Connection must include Upgrade");
    }
}

#[test]
fn rfc6455_4_2_1_host_is_required_else_400() {
    assert_rejected(&head_with("GET / HTTP/1.1", &[("Host", None)]), 400, "missing Host");
    assert_rejected(&head_with("GET / HTTP/1.1", &[("Host", Some(""))]), 400, "missing Host");
}

#[test]
fn rfc9112_3_2_duplicate_host_is_400() {
    let head = head_with("GET / HTTP/1.1", &[("Host", Some("a")), ("host", Some("b"))]);
    assert_rejected(&head, 400, "more than one Host");
}

#[test]
fn rfc6455_4_1_method_must_be_get_else_405() {
    for method in ["POST", "PUT", "HEAD", "get"] {
        let text = assert_rejected(&head_with(&format!("{method} / HTTP/1.1"), &[]), 405, "must use GET");
        assert!(text.contains("\r\nAllow: GET\r\n"), "{text}");
    }
}

#[test]
fn rfc6455_4_1_http_1_0_is_400() {
    assert_rejected(&head_with("GET / HTTP/1.0", &[]), 400, "HTTP/1.1");
}

#[test]
fn rfc6455_4_2_1_unknown_http_version_is_400() {
    let err = parse(head_with("GET / HTTP/2.0", &[]).as_bytes()).unwrap_err();
    assert_response(&err, 400, "malformed request");
}

#[test]
fn rfc6455_4_2_1_version_must_be_13_else_426() {
    for value in [None, Some("8"), Some("12"), Some("14"), Some("13, 8"), Some("013"), Some("")] {
        let text = assert_rejected(
            &head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Version", value)]),
            426,
            "Sec-WebSocket-Version must be 13",
        );
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{text}");
    }
}

#[test]
fn rfc6455_11_3_5_version_sent_twice_is_400() {
    let head =
        head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Version", Some("13")), ("Sec-WebSocket-Version", Some("13"))]);
    assert_rejected(&head, 400, "more than one Sec-WebSocket-Version");
}

#[test]
fn rfc6455_4_2_1_key_is_required_else_400() {
    assert_rejected(&head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Key", None)]), 400, "missing Sec-WebSocket-Key");
}

#[test]
fn rfc6455_4_2_1_key_must_decode_to_16_bytes_else_400() {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let short = encode(&[1; 15]);
    let long = encode(&[1; 17]);
    for key in [
        short.as_str(),
        long.as_str(),
        "not base64 at all!!!!!!=",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25jZQ==x",
        "",
    ] {
        assert_rejected(
            &head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Key", Some(key))]),
            400,
            "Sec-WebSocket-Key must be base64 of 16 bytes",
        );
    }
}

#[test]
fn rfc6455_11_3_1_key_sent_twice_is_400() {
    let head = head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Key", Some(KEY)), ("Sec-WebSocket-Key", Some(KEY))]);
    assert_rejected(&head, 400, "more than one Sec-WebSocket-Key");
}

#[test]
fn head_limit_passed_without_end_of_head_is_431_at_once() {
    let limits = HandshakeLimits::default();
    let mut handshake = ServerHandshake::new(limits);
    let mut head = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    head.resize(limits.max_head_bytes - 1, b'a');
    assert_eq!(handshake.feed(&head), Ok(Status::Partial));
    // The byte that fills the buffer without an end of head is refused at
    // once; no `\r\n\r\n` is ever sent.
    let err = handshake.feed(b"a").unwrap_err();
    assert_eq!(err, HandshakeError::HeadTooLarge { limit: 8192 });
    assert_response(&err, 431, "larger than 8192 bytes");
    // The error is final, and the buffer is released.
    assert_eq!(handshake.feed(b"\r\n\r\n"), Err(err));
    assert_eq!(handshake.buffered(), 0);
}

#[test]
fn head_limit_passed_in_one_chunk_is_431() {
    let mut handshake = ServerHandshake::default();
    let mut head = valid_head().into_bytes();
    head.splice(16..16, format!("X-Long: {}\r\n", "a".repeat(9000)).into_bytes());
    let err = handshake.feed(&head).unwrap_err();
    assert_response(&err, 431, "larger than");
    assert!(handshake.buffered() <= 8192);
}

#[test]
fn head_within_limit_followed_by_frames_is_accepted() {
    // The head fits; what follows it may be any length.
    let mut input = valid_head().into_bytes();
    input.extend(std::iter::repeat_n(0x82, 20_000));
    let mut handshake = ServerHandshake::default();
    let Ok(Status::Complete { rest, .. }) = handshake.feed(&input) else {
        panic!("complete request expected");
    };
    assert_eq!(rest.len(), 20_000);
}

#[test]
fn sixty_five_headers_is_431_and_sixty_four_is_fine() {
    let head_with_fields = |n: usize| {
        let mut head = String::from("GET / HTTP/1.1\r\n");
        for i in 0..n {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head.push_str("\r\n");
        head
    };
    assert!(parse(head_with_fields(64).as_bytes()).is_ok());
    let err = parse(head_with_fields(65).as_bytes()).unwrap_err();
    assert_eq!(err, HandshakeError::TooManyHeaders { limit: 64 });
    assert_response(&err, 431, "more than 64 header fields");
}

#[test]
fn caller_limits_are_honoured() {
    let limits = HandshakeLimits { max_head_bytes: 64, max_headers: 2 };
    let mut handshake = ServerHandshake::new(limits);
    assert_eq!(handshake.limits(), limits);
    assert!(matches!(handshake.feed(valid_head().as_bytes()), Err(HandshakeError::HeadTooLarge { limit: 64 })));
    let mut handshake = ServerHandshake::new(HandshakeLimits { max_head_bytes: 8192, max_headers: 2 });
    assert!(matches!(handshake.feed(valid_head().as_bytes()), Err(HandshakeError::TooManyHeaders { limit: 2 })));
}

#[test]
fn requests_httparse_rejects_are_400() {
    let cases: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
        b"\0\0\0\0\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\n: x\r\n\r\n",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\nX: y\r\n\r\n",
    ];
    for head in cases {
        let err = parse(head).unwrap_err();
        assert_response(&err, 400, "malformed request");
    }
}

#[test]
fn error_responses_never_echo_peer_bytes() {
    let evil = "<script>\u{1b}[31m";
    for field in ["Sec-WebSocket-Version", "Sec-WebSocket-Key", "Upgrade", "Sec-WebSocket-Extensions"] {
        let head = head_with("GET / HTTP/1.1", &[(field, Some(evil))]);
        let text = assert_rejected(&head, upgrade(&head).unwrap_err().status().as_u16(), "");
        assert!(!text.contains("<script>"), "{text}");
    }
}

#[test]
fn path_and_query_are_split() {
    let request = parse(head_with("GET /chat/room?id=7&x HTTP/1.1", &[]).as_bytes()).unwrap();
    assert_eq!(request.method(), "GET");
    assert_eq!(request.path(), "/chat/room");
    assert_eq!(request.query(), Some("id=7&x"));
    assert_eq!(request.version(), HttpVersion::Http11);
    let request = parse(head_with("GET /plain HTTP/1.1", &[]).as_bytes()).unwrap();
    assert_eq!((request.path(), request.query()), ("/plain", None));
}

#[test]
fn host_origin_and_key_are_exposed() {
    let head = head_with("GET / HTTP/1.1", &[("Origin", Some("http://example.com")), ("HOST", Some("h:9001"))]);
    let request = parse(head.as_bytes()).unwrap();
    assert_eq!(request.host(), Some("h:9001"));
    assert_eq!(request.origin(), Some("http://example.com"));
    assert_eq!(request.key(), Some(KEY));
    assert!(request.is_upgrade());
}

#[test]
fn bytes_after_the_head_are_handed_back() {
    let mut input = valid_head().into_bytes();
    let frame = [0x81, 0x85, 1, 2, 3, 4, b'h' ^ 1, b'e' ^ 2, b'l' ^ 3, b'l' ^ 4, b'o' ^ 1];
    input.extend_from_slice(&frame);
    let split = input.len() - 5;
    let mut handshake = ServerHandshake::default();
    assert_eq!(handshake.feed(&input[..20]), Ok(Status::Partial));
    let Ok(Status::Complete { rest, .. }) = handshake.feed(&input[20..split]) else {
        panic!("complete request expected");
    };
    assert_eq!(rest, &frame[..frame.len() - 5]);
}

#[test]
fn the_reader_starts_over_after_a_complete_head() {
    let mut handshake = ServerHandshake::default();
    let first = b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /metrics HTTP/1.1\r\n";
    let Ok(Status::Complete { head, rest }) = handshake.feed(first) else {
        panic!("complete request expected");
    };
    assert_eq!(head.path(), "/health");
    assert_eq!(handshake.buffered(), 0);
    assert_eq!(handshake.feed(&rest), Ok(Status::Partial));
    let Ok(Status::Complete { head, .. }) = handshake.feed(b"Host: a\r\n\r\n") else {
        panic!("complete request expected");
    };
    assert_eq!(head.path(), "/metrics");
}

#[test]
fn plain_http_requests_parse_and_are_not_upgrades() {
    let request = parse(b"POST /publish?topic=a HTTP/1.0\r\nContent-Length: 3\r\n\r\n").unwrap();
    assert_eq!(request.method(), "POST");
    assert_eq!(request.version(), HttpVersion::Http10);
    assert!(!request.is_upgrade());
    assert_eq!(request.headers().get_str("content-length"), Some("3"));
    let request = parse(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    assert!(!request.is_upgrade());
    assert_eq!(request.validate_upgrade().unwrap_err(), HandshakeError::MissingUpgrade);
}

#[test]
fn rfc6455_4_2_1_protocols_are_read_across_lines() {
    let head = head_with(
        "GET / HTTP/1.1",
        &[("Sec-WebSocket-Protocol", Some(" chat ,superchat,")), ("sec-websocket-protocol", Some("v2.json"))],
    );
    let request = parse(head.as_bytes()).unwrap();
    assert_eq!(request.protocols().collect::<Vec<_>>(), ["chat", "superchat", "v2.json"]);
    let upgrade = request.validate_upgrade().unwrap();
    assert_eq!(upgrade.protocols(), ["chat", "superchat", "v2.json"]);
}

#[test]
fn rfc6455_4_1_protocol_elements_must_be_tokens_else_400() {
    for value in ["chat, a b", "\"chat\"", "chat;v=1"] {
        assert_rejected(
            &head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Protocol", Some(value))]),
            400,
            "malformed Sec-WebSocket-Protocol",
        );
    }
}

#[test]
fn rfc6455_9_1_extension_offers_across_lines_in_order() {
    let head = head_with(
        "GET / HTTP/1.1",
        &[
            (
                "Sec-WebSocket-Extensions",
                Some("permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\""),
            ),
            ("sec-websocket-extensions", Some("  permessage-deflate ,x-foo;a=\"b\\c\"")),
        ],
    );
    let upgrade = upgrade(&head).unwrap();
    let offers = upgrade.extensions();
    assert_eq!(offers.len(), 3);
    assert_eq!(offers[0].name, "permessage-deflate");
    assert_eq!(offers[0].params.len(), 2);
    assert_eq!(offers[0].params[0].value, None);
    assert_eq!(offers[0].params[1].value.as_deref(), Some("10"));
    assert!(offers[1].params.is_empty());
    assert_eq!(offers[2].name, "x-foo");
    assert_eq!(offers[2].params[0].value.as_deref(), Some("bc"));
}

#[test]
fn rfc6455_9_1_malformed_extensions_are_400() {
    for value in ["", ";", "a;", "a; b=", "a; b=\"c", "a; b=\"c d\"", "a b", "a,;b", "a; b=c=d"] {
        assert_rejected(
            &head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Extensions", Some(value))]),
            400,
            "malformed Sec-WebSocket-Extensions",
        );
    }
}

#[test]
fn rfc6455_4_2_2_protocol_must_have_been_offered() {
    let head = head_with("GET / HTTP/1.1", &[("Sec-WebSocket-Protocol", Some("chat"))]);
    let upgrade = upgrade(&head).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        upgrade.accept(&Accept::new().protocol("other"), &mut out),
        Err(HandshakeUsageError::ProtocolNotOffered { protocol: "other".into() })
    );
    assert!(out.is_empty());
    upgrade.accept(&Accept::new().protocol("chat"), &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("\r\nSec-WebSocket-Protocol: chat\r\n"));
}

#[test]
fn rfc6455_9_1_accepted_extensions_must_have_been_offered() {
    let head = head_with(
        "GET / HTTP/1.1",
        &[("Sec-WebSocket-Extensions", Some("permessage-deflate; client_max_window_bits"))],
    );
    let upgrade = upgrade(&head).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        upgrade.accept(&Accept::new().extensions("x-other"), &mut out),
        Err(HandshakeUsageError::ExtensionNotOffered { name: "x-other".into() })
    );
    assert!(matches!(
        upgrade.accept(&Accept::new().extensions("permessage-deflate;"), &mut out),
        Err(HandshakeUsageError::InvalidExtensions(_))
    ));
    assert!(matches!(
        upgrade.accept(&Accept::new().extensions("a\r\nX-Evil: 1"), &mut out),
        Err(HandshakeUsageError::InvalidExtensions(_))
    ));
    assert!(out.is_empty());
    upgrade.accept(&Accept::new().extensions("permessage-deflate; server_no_context_takeover"), &mut out).unwrap();
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"));
}

#[test]
fn extra_response_headers_are_checked_and_written() {
    let upgrade = upgrade(&valid_head()).unwrap();
    let mut out = Vec::new();
    for (name, value) in [
        ("Sec-WebSocket-Accept", "x"),
        ("upgrade", "h2c"),
        ("Content-Length", "0"),
        ("Bad Name", "x"),
        ("X-Ok", "a\r\nSet-Cookie: evil"),
    ] {
        assert!(upgrade.accept(&Accept::new().header(name, value), &mut out).is_err());
    }
    assert!(out.is_empty());
    upgrade.accept(&Accept::new().header("Set-Cookie", "id=1; HttpOnly"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("\r\nSet-Cookie: id=1; HttpOnly\r\n\r\n"), "{text}");
}

#[test]
fn byte_at_a_time_is_linear_and_parses_once() {
    // A head of almost 8 KiB fed one byte at a time: the end-of-head search
    // looks at each byte a bounded number of times, and httparse runs once.
    let mut head = String::from("GET / HTTP/1.1\r\n");
    let filler = format!("X-Filler: {}\r\n", "a".repeat(150));
    while head.len() + filler.len() < 8000 {
        head.push_str(&filler);
    }
    head.push_str("\r\n");
    let mut handshake = ServerHandshake::default();
    let mut complete = false;
    for &b in head.as_bytes() {
        match handshake.feed(&[b]) {
            Ok(Status::Partial) => assert_eq!(handshake.reader().parses, 0),
            Ok(Status::Complete { .. }) => complete = true,
            Err(err) => panic!("{err}"),
        }
    }
    assert!(complete);
    assert_eq!(handshake.reader().parses, 1);
    assert!(handshake.reader().scan_steps <= 4 * head.len());
}

#[test]
fn errors_are_sticky() {
    let mut handshake = ServerHandshake::default();
    let err = handshake.feed(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").unwrap_err();
    assert_eq!(handshake.feed(valid_head().as_bytes()), Err(err));
}
