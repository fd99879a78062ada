//! The handshake parsers on arbitrary bytes, fed in fuzz-chosen chunks.
//!
//! The first four bytes choose the chunk sizes (1 to 256, cycled); the rest
//! is fed to a `ServerHandshake` as a request and to a `ClientHandshake` as
//! a response. Neither may panic, and whatever they produce must hold
//! together: an accepted request gets a 101, a refused one a complete error
//! response, an accepted response names only what was offered.
#![no_main]

use ferrows::proto::handshake::{parse_extensions, Accept, ClientRequest, HandshakeLimits, ServerHandshake, Status};
use libfuzzer_sys::fuzz_target;

const PLAN_BYTES: usize = 4;

fuzz_target!(|data: &[u8]| {
    let (plan, input) = data.split_at(data.len().min(PLAN_BYTES));
    let sizes: Vec<usize> =
        if plan.is_empty() { vec![usize::MAX] } else { plan.iter().map(|&b| usize::from(b) + 1).collect() };
    let chunks = chunked(input, &sizes);
    server(&chunks);
    client(&chunks);
});

fn chunked<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = at.saturating_add(size).min(input.len());
        chunks.push(&input[at..end]);
        at = end;
    }
    chunks
}

fn server(chunks: &[&[u8]]) {
    let limits = HandshakeLimits::default();
    let mut handshake = ServerHandshake::new(limits);
    for chunk in chunks {
        let mut out = Vec::new();
        match handshake.feed(chunk) {
            Ok(Status::Partial) => {
                assert!(handshake.buffered() < limits.max_head_bytes);
                continue;
            }
            Ok(Status::Complete { head: request, rest }) => {
                assert!(rest.len() <= chunk.len());
                match request.validate_upgrade() {
                    Ok(upgrade) => {
                        let mut accept = Accept::new();
                        if let Some(protocol) = upgrade.protocols().first() {
                            accept = accept.protocol(protocol.as_str());
                        }
                        // An offer written back must parse again and be
                        // accepted as an answer to itself.
                        if let Some(offer) = upgrade.extensions().first() {
                            let text = offer.to_string();
                            let reparsed =
                                parse_extensions(text.as_bytes()).expect("a parsed offer must print as a valid value");
                            assert_eq!(reparsed.as_slice(), std::slice::from_ref(offer));
                            accept = accept.extensions(text);
                        }
                        upgrade.accept(&accept, &mut out).expect("accepting offered values is never misuse");
                        assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
                    }
                    Err(err) => {
                        err.write_response(&mut out);
                        check_error_response(&out);
                    }
                }
            }
            Err(err) => {
                err.write_response(&mut out);
                check_error_response(&out);
                // Errors are final.
                assert_eq!(handshake.feed(b"\r\n\r\n"), Err(err));
                return;
            }
        }
        assert!(out.ends_with(b"\r\n") || out.ends_with(b"\n"));
    }
}

/// A refusal is one complete response: one head, closing the connection,
/// with exactly `Content-Length` bytes of body.
fn check_error_response(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("responses are UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("complete head");
    assert!(head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 5"));
    assert!(head.contains("\r\nConnection: close\r\n"));
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse::<usize>().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len());
    assert!(!body.contains('\r'));
}

fn client(chunks: &[&[u8]]) {
    let request = ClientRequest::new("ws://fuzz.example/chat")
        .expect("a valid URL")
        .protocol("chat")
        .protocol("superchat")
        .extensions("permessage-deflate; client_max_window_bits, x-foo");
    let mut out = Vec::new();
    // "the sample nonce" gives the RFC 6455 §1.3 key, so the seed corpus can
    // hold a response that passes.
    let mut handshake = request.encode(b"the sample nonce", &mut out).expect("a valid request");
    for chunk in chunks {
        match handshake.feed(chunk) {
            Ok(Status::Partial) => {}
            Ok(Status::Complete { head: response, .. }) => {
                if let Some(protocol) = response.protocol() {
                    assert!(protocol == "chat" || protocol == "superchat");
                }
                for extension in response.extensions() {
                    assert!(extension.name == "permessage-deflate" || extension.name == "x-foo");
                }
                return;
            }
            Err(_) => return,
        }
    }
}
