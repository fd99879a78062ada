//! The handshake through its public API: every split point of the input,
//! random chunkings, and client/server round trips.

use ferrows::proto::handshake::{
    accept_key, Accept, ClientHandshake, ClientRequest, HandshakeError, HandshakeLimits, Request, Response,
    ResponseError, ServerHandshake, Status,
};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::Index;

/// The RFC 6455 §1.2 example request, with an extension offer and the first
/// bytes of a masked frame after it.
const EXAMPLE: &[u8] = b"GET /chat?room=7 HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=\"15\"\r\n\
    Sec-WebSocket-Version: 13\r\n\
    \r\n\
    \x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";

/// Feeds `chunks` in order until the head is complete; chunks after that are
/// not fed but appended to the rest, as a connection would pass them on.
fn drive_server<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Request, Vec<u8>) {
    let mut handshake = ServerHandshake::new(HandshakeLimits::default());
    let mut done: Option<(Request, Vec<u8>)> = None;
    for chunk in chunks {
        if let Some((_, rest)) = &mut done {
            rest.extend_from_slice(chunk);
            continue;
        }
        match handshake.feed(chunk) {
            Ok(Status::Partial) => {}
            Ok(Status::Complete { head, rest }) => done = Some((head, rest)),
            Err(err) => panic!("request refused: {err}"),
        }
    }
    done.expect("request never completed")
}

fn drive_client<'a>(
    mut handshake: ClientHandshake,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<(Response, Vec<u8>), ResponseError> {
    let mut done: Option<(Response, Vec<u8>)> = None;
    for chunk in chunks {
        if let Some((_, rest)) = &mut done {
            rest.extend_from_slice(chunk);
            continue;
        }
        if let Status::Complete { head, rest } = handshake.feed(chunk)? {
            done = Some((head, rest));
        }
    }
    Ok(done.expect("response never completed"))
}

/// Splits `input` into consecutive chunks of the given sizes, cycling
/// through them.
fn chunked<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + size.max(1)).min(input.len());
        chunks.push(&input[at..end]);
        at = end;
    }
    chunks
}

#[test]
fn rfc6455_1_2_example_parses_the_same_at_every_split_point() {
    let (whole, rest) = drive_server([EXAMPLE]);
    assert_eq!(whole.path(), "/chat");
    assert_eq!(whole.query(), Some("room=7"));
    assert_eq!(whole.origin(), Some("http://example.com"));
    assert_eq!(rest, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58");
    for at in 0..=EXAMPLE.len() {
        let (head, tail) = EXAMPLE.split_at(at);
        assert_eq!(drive_server([head, tail]), (whole.clone(), rest.clone()), "split at {at}");
    }
}

#[test]
fn rfc6455_4_2_2_example_accept_and_response() {
    let (request, _) = drive_server([EXAMPLE]);
    let upgrade = request.validate_upgrade().unwrap();
    assert_eq!(upgrade.protocols(), ["chat", "superchat"]);
    assert_eq!(upgrade.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(accept_key(upgrade.key()), upgrade.accept_key());
    let mut out = Vec::new();
    upgrade.accept(&Accept::new().protocol("chat").extensions("permessage-deflate"), &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
}

#[test]
fn rfc6455_4_1_client_reads_a_response_split_at_every_point() {
    let request = ClientRequest::new("ws://server.example.com/chat").unwrap().protocol("chat");
    let mut out = Vec::new();
    let handshake = request.encode(b"the sample nonce", &mut out).unwrap();
    let response: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x05hello";
    for at in 0..=response.len() {
        let (head, tail) = response.split_at(at);
        let (parsed, rest) = drive_client(handshake.clone(), [head, tail]).unwrap();
        assert_eq!(parsed.protocol(), Some("chat"), "split at {at}");
        assert_eq!(rest, b"\x81\x05hello", "split at {at}");
    }
}

#[test]
fn rfc6455_4_2_1_refusals_are_complete_http_responses() {
    let mut handshake = ServerHandshake::new(HandshakeLimits::default());
    let Ok(Status::Complete { head, .. }) =
        handshake.feed(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
    else {
        panic!("complete request expected");
    };
    let err = head.validate_upgrade().unwrap_err();
    assert_eq!(err, HandshakeError::MissingConnectionUpgrade);
    let mut out = Vec::new();
    err.write_response(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"));
    assert!(text.ends_with("\r\n\r\nConnection must include Upgrade\n"));
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,10}"
}

/// A valid upgrade request with random path, query, offers, extra fields
/// and header-name case, followed by random frame bytes.
fn request_input() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        "(/[a-zA-Z0-9._~%-]{0,8}){1,4}",
        proptest::option::of("[a-zA-Z0-9=&]{0,10}"),
        vec(token(), 0..4),
        proptest::option::of(Just("permessage-deflate; client_max_window_bits, x-foo; a=\"b\"".to_owned())),
        vec((token(), "[ -~]{0,20}"), 0..5),
        any::<bool>(),
        vec(any::<u8>(), 0..32),
    )
        .prop_map(|(path, query, protocols, extensions, extra, upper, frames)| {
            let name = |n: &str| if upper { n.to_uppercase() } else { n.to_lowercase() };
            let mut head = format!("GET {path}");
            if let Some(query) = query {
                head.push('?');
                head.push_str(&query);
            }
            head.push_str(" HTTP/1.1\r\n");
            for (field, value) in [
                ("Host", "example.com:9001"),
                ("Upgrade", "websocket"),
                ("Connection", "keep-alive, Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ] {
                head.push_str(&format!("{}: {value}\r\n", name(field)));
            }
            if !protocols.is_empty() {
                head.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", protocols.join(", ")));
            }
            if let Some(extensions) = extensions {
                head.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
            }
            for (field, value) in extra {
                head.push_str(&format!("X-{field}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let mut input = head.into_bytes();
            input.extend_from_slice(&frames);
            (input, frames)
        })
}

proptest! {
    #[test]
    fn request_parses_the_same_at_every_split_point((input, frames) in request_input()) {
        let (whole, rest) = drive_server([input.as_slice()]);
        prop_assert_eq!(&rest, &frames);
        prop_assert!(whole.validate_upgrade().is_ok());
        for at in 0..=input.len() {
            let (head, tail) = input.split_at(at);
            let (request, rest) = drive_server([head, tail]);
            prop_assert_eq!(&request, &whole);
            prop_assert_eq!(&rest, &frames);
        }
    }

    #[test]
    fn request_parses_the_same_in_any_chunking(
        (input, frames) in request_input(),
        sizes in vec(1usize..40, 1..12),
    ) {
        let (whole, _) = drive_server([input.as_slice()]);
        let (request, rest) = drive_server(chunked(&input, &sizes));
        prop_assert_eq!(request, whole);
        prop_assert_eq!(rest, frames);
    }

    #[test]
    fn client_and_server_agree(
        secure in any::<bool>(),
        host in "[a-z][a-z0-9-]{0,9}(\\.[a-z]{1,5}){0,2}",
        port in proptest::option::of(1u16..),
        path in "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,8}){1,3}",
        query in proptest::option::of("[a-zA-Z0-9=&/?:@-]{0,12}"),
        protocols in btree_set(token(), 0..4),
        choice in any::<Index>(),
        offer_deflate in any::<bool>(),
        nonce in any::<[u8; 16]>(),
        client_frames in vec(any::<u8>(), 0..16),
        server_frames in vec(any::<u8>(), 0..16),
        sizes in vec(1usize..40, 1..8),
    ) {
        let scheme = if secure { "wss" } else { "ws" };
        let mut url = format!("{scheme}://{host}");
        if let Some(port) = port {
            url.push_str(&format!(":{port}"));
        }
        url.push_str(&path);
        if let Some(query) = &query {
            url.push('?');
            url.push_str(query);
        }
        let protocols: Vec<String> = protocols.into_iter().collect();

        let mut request = ClientRequest::new(&url).unwrap();
        for protocol in &protocols {
            request = request.protocol(protocol.as_str());
        }
        if offer_deflate {
            request = request.extensions("permessage-deflate; client_max_window_bits");
        }
        let mut wire = Vec::new();
        let client = request.encode(&nonce, &mut wire).unwrap();
        wire.extend_from_slice(&client_frames);

        // The server reads what the client wrote.
        let (parsed, rest) = drive_server(chunked(&wire, &sizes));
        prop_assert_eq!(&rest, &client_frames);
        prop_assert_eq!(parsed.path(), path.as_str());
        prop_assert_eq!(parsed.query(), query.as_deref());
        let default_port = if secure { 443 } else { 80 };
        let expected_host = match port {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.clone(),
        };
        prop_assert_eq!(parsed.host(), Some(expected_host.as_str()));
        let upgrade = parsed.validate_upgrade().unwrap();
        prop_assert_eq!(upgrade.protocols(), protocols.as_slice());
        prop_assert_eq!(upgrade.extensions().len(), usize::from(offer_deflate));
        prop_assert_eq!(upgrade.accept_key(), client.expected_accept());

        // The client reads what the server answered.
        let chosen = (!protocols.is_empty()).then(|| protocols[choice.index(protocols.len())].clone());
        let mut accept = Accept::new();
        if let Some(protocol) = &chosen {
            accept = accept.protocol(protocol.as_str());
        }
        if offer_deflate {
            accept = accept.extensions("permessage-deflate; client_max_window_bits=12");
        }
        let mut answer = Vec::new();
        upgrade.accept(&accept, &mut answer).unwrap();
        answer.extend_from_slice(&server_frames);
        let (response, rest) = drive_client(client, chunked(&answer, &sizes)).unwrap();
        prop_assert_eq!(&rest, &server_frames);
        prop_assert_eq!(response.protocol(), chosen.as_deref());
        prop_assert_eq!(response.extensions().len(), usize::from(offer_deflate));
        if offer_deflate {
            let window = response.extensions()[0]
                .param("client_max_window_bits")
                .and_then(|param| param.value.clone());
            prop_assert_eq!(window.as_deref(), Some("12"));
        }
    }
}
