//! Table tests for the client side, one per rule of RFC 6455 §4.1.

use super::*;
use crate::proto::handshake::*;

const NONCE: &[u8; 16] = b"the sample nonce";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn start(request: ClientRequest) -> (ClientHandshake, String) {
    let mut out = Vec::new();
    let handshake = request.encode(NONCE, &mut out).unwrap();
    (handshake, String::from_utf8(out).unwrap())
}

/// A 101 response with the given fields replacing the defaults of the same
/// name (`None` drops the field).
fn response_with(status_line: &str, changes: &[(&str, Option<&str>)]) -> String {
    let defaults = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)];
    let mut head = format!("{status_line}\r\n");
    for (name, value) in defaults {
        if !changes.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in changes {
        if let Some(value) = value {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    head
}

fn ok_101(changes: &[(&str, Option<&str>)]) -> String {
    response_with("HTTP/1.1 101 Switching Protocols", changes)
}

fn feed(request: ClientRequest, response: &str) -> Result<Response, ResponseError> {
    let (mut handshake, _) = start(request);
    match handshake.feed(response.as_bytes())? {
        Status::Complete { head, .. } => Ok(head),
        Status::Partial => panic!("response incomplete: {response:?}"),
    }
}

fn plain() -> ClientRequest {
    ClientRequest::new("ws://server.example.com/chat").unwrap()
}

#[test]
fn rfc6455_4_1_request_has_every_required_field() {
    let (handshake, text) = start(plain());
    assert_eq!(
        text,
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(handshake.key(), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(handshake.expected_accept(), ACCEPT);
}

#[test]
fn rfc6455_4_1_request_line_and_host_follow_the_url() {
    let cases = [
        ("ws://h", "GET / HTTP/1.1\r\nHost: h\r\n"),
        ("ws://h:80/a?b=c", "GET /a?b=c HTTP/1.1\r\nHost: h\r\n"),
        ("wss://h:443", "GET / HTTP/1.1\r\nHost: h\r\n"),
        ("wss://h:8443/x", "GET /x HTTP/1.1\r\nHost: h:8443\r\n"),
        ("ws://[::1]:9001/", "GET / HTTP/1.1\r\nHost: [::1]:9001\r\n"),
        ("ws://[::1]", "GET / HTTP/1.1\r\nHost: [::1]\r\n"),
    ];
    for (url, start_of_request) in cases {
        let (_, text) = start(ClientRequest::new(url).unwrap());
        assert!(text.starts_with(start_of_request), "{url}: {text}");
    }
}

#[test]
fn rfc6455_3_bad_urls_are_caller_errors() {
    for (url, expected) in [
        ("http://h/", UrlError::UnsupportedScheme),
        ("ws://u@h/", UrlError::UserInfo),
        ("ws://h/#f", UrlError::Fragment),
        ("ws:///", UrlError::MissingHost),
    ] {
        assert_eq!(ClientRequest::new(url), Err(HandshakeUsageError::Url(expected)), "{url}");
    }
}

#[test]
fn rfc6455_4_1_offers_are_written() {
    let request = plain()
        .protocol("v2.chat")
        .protocol("v1.chat")
        .extensions("permessage-deflate; client_max_window_bits")
        .header("Origin", "http://example.com");
    let (_, text) = start(request);
    assert!(text.contains("\r\nSec-WebSocket-Protocol: v2.chat, v1.chat\r\n"));
    assert!(text.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
    assert!(text.ends_with("\r\nOrigin: http://example.com\r\n\r\n"));
}

#[test]
fn rfc6455_4_1_bad_offers_are_caller_errors() {
    let cases = [
        (plain().protocol("a b"), "InvalidProtocol"),
        (plain().protocol(""), "InvalidProtocol"),
        (plain().protocol("a").protocol("a"), "DuplicateProtocol"),
        (plain().extensions("x;"), "InvalidExtensions"),
        (plain().extensions(""), "InvalidExtensions"),
        (plain().header("Sec-WebSocket-Key", "x"), "ReservedHeader"),
        (plain().header("host", "x"), "ReservedHeader"),
        (plain().header("X Y", "x"), "InvalidHeaderName"),
        (plain().header("X-Y", "a\nb"), "InvalidHeaderValue"),
    ];
    for (request, expected) in cases {
        let mut out = Vec::new();
        let err = request.encode(NONCE, &mut out).unwrap_err();
        assert!(format!("{err:?}").starts_with(expected), "{err:?}");
        assert!(out.is_empty());
    }
}

#[test]
fn rfc6455_4_1_valid_response_is_accepted() {
    let response = feed(plain(), &ok_101(&[])).unwrap();
    assert_eq!(response.protocol(), None);
    assert!(response.extensions().is_empty());
    assert_eq!(response.header("sec-websocket-accept"), Some(ACCEPT.as_bytes()));
}

#[test]
fn rfc6455_4_1_status_must_be_101() {
    for (line, status) in [
        ("HTTP/1.1 200 OK", 200),
        ("HTTP/1.1 400 Bad Request", 400),
        ("HTTP/1.1 426 Upgrade Required", 426),
        ("HTTP/1.0 302 Found", 302),
    ] {
        let err = feed(plain(), &response_with(line, &[])).unwrap_err();
        assert_eq!(err, ResponseError::UnexpectedStatus { status });
        assert_eq!(err.status(), Some(status));
    }
}

#[test]
fn rfc6455_4_1_101_must_be_http_1_1() {
    let err = feed(plain(), &response_with("HTTP/1.0 101 Switching Protocols", &[])).unwrap_err();
    assert_eq!(err, ResponseError::UnsupportedHttpVersion);
}

#[test]
fn rfc6455_4_1_upgrade_must_be_websocket() {
    for value in ["WebSocket", "WEBSOCKET"] {
        feed(plain(), &ok_101(&[("Upgrade", Some(value))])).unwrap();
    }
    for value in [None, Some("h2c"), Some("")] {
        assert_eq!(feed(plain(), &ok_101(&[("Upgrade", value)])), Err(ResponseError::MissingUpgrade));
    }
}

#[test]
fn rfc6455_4_1_connection_must_include_upgrade() {
    feed(plain(), &ok_101(&[("Connection", Some("keep-alive, upgrade"))])).unwrap();
    for value in [None, Some("keep-alive"), Some("close")] {
        assert_eq!(feed(plain(), &ok_101(&[("Connection", value)])), Err(ResponseError::MissingConnectionUpgrade));
    }
}

#[test]
fn rfc6455_4_1_accept_must_match_the_key() {
    let wrong = accept_key("AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(feed(plain(), &ok_101(&[("Sec-WebSocket-Accept", Some(&wrong))])), Err(ResponseError::AcceptMismatch));
    // base64 is case-sensitive.
    let lowered = ACCEPT.to_lowercase();
    assert_eq!(feed(plain(), &ok_101(&[("Sec-WebSocket-Accept", Some(&lowered))])), Err(ResponseError::AcceptMismatch));
    assert_eq!(feed(plain(), &ok_101(&[("Sec-WebSocket-Accept", None)])), Err(ResponseError::MissingAccept));
    assert_eq!(
        feed(plain(), &ok_101(&[("Sec-WebSocket-Accept", Some(ACCEPT)), ("Sec-WebSocket-Accept", Some(ACCEPT))])),
        Err(ResponseError::DuplicateAccept)
    );
}

#[test]
fn rfc6455_4_1_protocol_must_have_been_offered() {
    let offered = || plain().protocol("chat").protocol("superchat");
    let response = feed(offered(), &ok_101(&[("Sec-WebSocket-Protocol", Some("superchat"))]));
    assert_eq!(response.unwrap().protocol(), Some("superchat"));
    // Nothing offered, yet one chosen.
    assert_eq!(
        feed(plain(), &ok_101(&[("Sec-WebSocket-Protocol", Some("chat"))])),
        Err(ResponseError::ProtocolNotOffered)
    );
    assert_eq!(
        feed(offered(), &ok_101(&[("Sec-WebSocket-Protocol", Some("other"))])),
        Err(ResponseError::ProtocolNotOffered)
    );
    assert_eq!(
        feed(offered(), &ok_101(&[("Sec-WebSocket-Protocol", Some(""))])),
        Err(ResponseError::ProtocolNotOffered)
    );
}

#[test]
fn rfc6455_4_2_2_at_most_one_protocol() {
    let offered = || plain().protocol("chat").protocol("superchat");
    assert_eq!(
        feed(offered(), &ok_101(&[("Sec-WebSocket-Protocol", Some("chat, superchat"))])),
        Err(ResponseError::MultipleProtocols)
    );
    assert_eq!(
        feed(offered(), &ok_101(&[("Sec-WebSocket-Protocol", Some("chat")), ("Sec-WebSocket-Protocol", Some("chat"))])),
        Err(ResponseError::MultipleProtocols)
    );
}

#[test]
fn rfc6455_4_1_extensions_must_have_been_offered() {
    let offered = || plain().extensions("permessage-deflate; client_max_window_bits, x-foo");
    let response = feed(
        offered(),
        &ok_101(&[("Sec-WebSocket-Extensions", Some("permessage-deflate; server_max_window_bits=\"12\""))]),
    )
    .unwrap();
    assert_eq!(response.extensions().len(), 1);
    assert_eq!(response.extensions()[0].param("server_max_window_bits").and_then(|p| p.value.as_deref()), Some("12"));
    assert_eq!(
        feed(offered(), &ok_101(&[("Sec-WebSocket-Extensions", Some("x-bar"))])),
        Err(ResponseError::ExtensionNotOffered { name: "x-bar".into() })
    );
    assert_eq!(
        feed(plain(), &ok_101(&[("Sec-WebSocket-Extensions", Some("x-foo"))])),
        Err(ResponseError::ExtensionNotOffered { name: "x-foo".into() })
    );
    assert!(matches!(
        feed(offered(), &ok_101(&[("Sec-WebSocket-Extensions", Some("x-foo;"))])),
        Err(ResponseError::MalformedExtensions(_))
    ));
}

#[test]
fn frames_after_the_response_are_handed_back_byte_at_a_time() {
    let (mut handshake, _) = start(plain());
    let mut input = ok_101(&[]).into_bytes();
    // An unmasked text frame from the server follows in the same read.
    input.extend_from_slice(b"\x81\x02hi");
    let mut result = None;
    for (i, &b) in input.iter().enumerate() {
        match handshake.feed(&[b]).unwrap() {
            Status::Partial => {}
            Status::Complete { head, rest } => {
                result = Some((i, head, rest));
                break;
            }
        }
    }
    let (at, _, rest) = result.unwrap();
    assert!(rest.is_empty());
    assert_eq!(at + 5, input.len());
    assert_eq!(handshake.reader().parses, 1);
    assert!(handshake.reader().scan_steps <= 4 * input.len());
}

#[test]
fn response_limits_apply() {
    let (mut handshake, _) = start(plain().limits(HandshakeLimits { max_head_bytes: 32, max_headers: 64 }));
    assert_eq!(handshake.feed(ok_101(&[]).as_bytes()), Err(ResponseError::HeadTooLarge { limit: 32 }));
    // Errors are final.
    assert_eq!(handshake.feed(b""), Err(ResponseError::HeadTooLarge { limit: 32 }));
    let (mut handshake, _) = start(plain().limits(HandshakeLimits { max_head_bytes: 8192, max_headers: 2 }));
    assert_eq!(handshake.feed(ok_101(&[]).as_bytes()), Err(ResponseError::TooManyHeaders { limit: 2 }));
}

#[test]
fn garbage_is_a_malformed_response() {
    for garbage in [&b"\0\0\0\0\r\n\r\n"[..], b"HTTP/1.1 abc\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"] {
        let (mut handshake, _) = start(plain());
        assert!(matches!(handshake.feed(garbage), Err(ResponseError::MalformedResponse { .. })));
    }
}
