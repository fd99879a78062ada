//! The ceiling for echo traffic on loopback: a single-threaded mio loop that
//! does the least a WebSocket echo server can do.
//!
//! It answers the HTTP upgrade (the 101 with its Sec-WebSocket-Accept) and
//! then sends every frame back as it came, with one change: the client's
//! frames are masked and a client must refuse masked frames (RFC 6455 §5.1),
//! so each frame goes back with the mask bit cleared, the masking key dropped
//! and the payload unmasked, the least work any WebSocket server does. It
//! checks nothing else: no UTF-8, no limits, no message reassembly (fragments
//! go back as fragments), and a ping goes back as a ping. After reflecting a
//! Close it closes the connection, as a server does after the closing
//! handshake.
//!
//! Edge-triggered: a connection is read until `WouldBlock` into one 64 KiB
//! buffer, and what each read brings is written back at once; output the
//! socket does not take waits in the connection, which is not read again
//! until that output is written.

#![forbid(unsafe_code)]

use std::io::{self, Read, Write};

use base64::Engine;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use sha1::{Digest, Sha1};
use slab::Slab;

/// The listener's token; a connection's is its slab key plus one.
const LISTENER: Token = Token(0);

/// The read buffer's size.
const READ_BUFFER: usize = 64 * 1024;

/// The largest upgrade request taken.
const MAX_REQUEST: usize = 8 * 1024;

/// RFC 6455 §1.3: the GUID appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// One frame in its passage back: the unmasked header already sent on, the
/// payload still to come.
#[derive(Debug, Default)]
struct Reflector {
    /// The bytes of a header that arrived in pieces.
    header: [u8; 14],
    /// How many of `header` are held.
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
    /// The current frame's masking key, if it has one.
    mask: Option<[u8; 4]>,
    /// Where in the key the next payload byte falls.
    offset: usize,
    /// Whether the current frame is a Close.
    close: bool,
    /// Whether a whole Close went back: nothing more is taken.
    closed: bool,
}

impl Reflector {
    /// Appends to `out` the frames of `input` sent back unmasked.
    fn reflect(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.closed {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining).map_or(input.len(), |left| left.min(input.len()));
                let start = out.len();
                out.extend_from_slice(&input[..take]);
                if let Some(mask) = self.mask {
                    unmask(&mut out[start..], mask, self.offset);
                }
                self.offset = (self.offset + take) % 4;
                self.remaining -= take as u64;
                input = &input[take..];
                self.closed = self.remaining == 0 && self.close;
                continue;
            }
            // A header: straight from the input when it is whole there, else gathered.
            if self.have == 0 && input.len() >= 2 && input.len() >= header_len(input) {
                let len = header_len(input);
                self.start_frame(&input[..len], out);
                input = &input[len..];
                continue;
            }
            let want = if self.have < 2 { 2 } else { header_len(&self.header[..self.have]) };
            let take = (want - self.have).min(input.len());
            self.header[self.have..self.have + take].copy_from_slice(&input[..take]);
            self.have += take;
            input = &input[take..];
            if self.have >= 2 && self.have == header_len(&self.header[..self.have]) {
                let header = self.header;
                self.start_frame(&header[..self.have], out);
                self.have = 0;
            }
        }
    }

    /// Sends on a whole header with its mask bit and key taken out.
    fn start_frame(&mut self, header: &[u8], out: &mut Vec<u8>) {
        let masked = header[1] & 0x80 != 0;
        let len_bytes = header.len() - 2 - if masked { 4 } else { 0 };
        let payload_len = match len_bytes {
            0 => u64::from(header[1] & 0x7f),
            _ => header[2..2 + len_bytes].iter().fold(0, |len, &b| (len << 8) | u64::from(b)),
        };
        out.push(header[0]);
        out.push(header[1] & 0x7f);
        out.extend_from_slice(&header[2..2 + len_bytes]);
        self.mask = masked.then(|| {
            let key = &header[2 + len_bytes..];
            [key[0], key[1], key[2], key[3]]
        });
        self.offset = 0;
        self.remaining = payload_len;
        self.close = header[0] & 0x0f == 0x8;
        self.closed = payload_len == 0 && self.close;
    }
}

/// The length of the header that starts `bytes` (at least 2 bytes).
fn header_len(bytes: &[u8]) -> usize {
    let len_bytes = match bytes[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + len_bytes + if bytes[1] & 0x80 != 0 { 4 } else { 0 }
}

/// XORs `data` with `mask`, whose byte `offset` applies to `data[0]`, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = [0u8; 8];
    for (i, b) in key.iter_mut().enumerate() {
        *b = mask[(offset + i) % 4];
    }
    let word = u64::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

/// Where a connection stands.
enum State {
    /// Gathering the upgrade request.
    Request(Vec<u8>),
    /// Reflecting frames.
    Open(Reflector),
}

/// One accepted connection.
struct Conn {
    /// The socket.
    stream: TcpStream,
    /// The request or the frame in passage.
    state: State,
    /// Output the socket has not taken yet.
    pending: Vec<u8>,
    /// Close once `pending` is written: the closing handshake is done or the request was refused.
    finish: bool,
}

impl Conn {
    /// Appends to `out` what `input` earns: the 101 and reflected frames.
    fn take(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match &mut self.state {
            State::Open(reflector) => {
                reflector.reflect(input, out);
                self.finish = reflector.closed;
            }
            State::Request(request) => {
                request.extend_from_slice(input);
                let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if request.len() > MAX_REQUEST {
                        out.extend_from_slice(
                            b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
                        );
                        self.finish = true;
                    }
                    return;
                };
                let head = &request[..end];
                let Some(key) = websocket_key(head) else {
                    out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
                    self.finish = true;
                    return;
                };
                let accept = base64::engine::general_purpose::STANDARD
                    .encode(Sha1::new().chain_update(key).chain_update(GUID).finalize());
                out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
                out.extend_from_slice(b"Connection: Upgrade\r\nSec-WebSocket-Accept: ");
                out.extend_from_slice(accept.as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
                let rest = request.split_off(end + 4);
                let mut reflector = Reflector::default();
                reflector.reflect(&rest, out);
                self.finish = reflector.closed;
                self.state = State::Open(reflector);
            }
        }
    }

    /// Writes `out` (after anything pending); what the socket does not take is kept.
    fn send(&mut self, out: &[u8]) -> io::Result<()> {
        let mut written = 0;
        while written < out.len() {
            match self.stream.write(&out[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.extend_from_slice(&out[written..]);
        Ok(())
    }

    /// Writes pending output; true once none is left.
    fn flush(&mut self) -> io::Result<bool> {
        let pending = std::mem::take(&mut self.pending);
        self.send(&pending)?;
        Ok(self.pending.is_empty())
    }
}

/// The Sec-WebSocket-Key value of a request head.
fn websocket_key(head: &[u8]) -> Option<&[u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = line.split_at(colon);
        name.eq_ignore_ascii_case(b"sec-websocket-key").then(|| value[1..].trim_ascii())
    })
}

/// What to do with a connection after handling its event.
#[derive(PartialEq, Eq)]
enum After {
    /// Keep it, with this interest.
    Keep(Interest),
    /// Drop it.
    Close,
}

/// Reads and reflects until `WouldBlock`, or until output waits.
fn drive(conn: &mut Conn, input: &mut [u8], out: &mut Vec<u8>) -> io::Result<After> {
    if !conn.flush()? {
        return Ok(After::Keep(Interest::READABLE | Interest::WRITABLE));
    }
    if conn.finish {
        return Ok(After::Close);
    }
    if conn.pending.capacity() > 0 {
        conn.pending = Vec::new();
    }
    loop {
        let n = match conn.stream.read(input) {
            Ok(0) => return Ok(After::Close),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(After::Keep(Interest::READABLE)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.clear();
        conn.take(&input[..n], out);
        conn.send(out)?;
        if !conn.pending.is_empty() {
            return Ok(After::Keep(Interest::READABLE | Interest::WRITABLE));
        }
        if conn.finish {
            return Ok(After::Close);
        }
    }
}

fn main() {
    let addr = ferrows_peers::listen_addr("raw_echo");
    if let Err(e) = run(addr) {
        eprintln!("raw_echo: {e}");
        std::process::exit(1);
    }
}

/// Accepts and reflects, forever.
fn run(addr: std::net::SocketAddr) -> io::Result<()> {
    let mut listener =
        TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<(Conn, Interest)> = Slab::new();
    let mut input = vec![0u8; READ_BUFFER];
    let mut out = Vec::with_capacity(READ_BUFFER + 64);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry().register(&mut stream, Token(entry.key() + 1), Interest::READABLE)?;
                            let conn =
                                Conn { stream, state: State::Request(Vec::new()), pending: Vec::new(), finish: false };
                            entry.insert((conn, Interest::READABLE));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Out of descriptors, say: the rest wait in the backlog.
                        Err(e) => {
                            eprintln!("raw_echo: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let key = event.token().0 - 1;
            // A stale event for a connection already gone.
            let Some((conn, interest)) = conns.get_mut(key) else { continue };
            match drive(conn, &mut input, &mut out) {
                Ok(After::Keep(wanted)) => {
                    if wanted != *interest {
                        poll.registry().reregister(&mut conn.stream, event.token(), wanted)?;
                        *interest = wanted;
                    }
                }
                Ok(After::Close) | Err(_) => {
                    let (mut conn, _) = conns.remove(key);
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn masked(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut frame = vec![first];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    /// The same frame unmasked.
    fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = masked(first, payload, [0; 4]);
        let len_bytes = header_len(&frame) - 6;
        frame[1] &= 0x7f;
        frame.drain(2 + len_bytes..6 + len_bytes);
        frame
    }

    #[test]
    fn reflects_frames_at_every_split() {
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let frames = [(0x82, &b"sixteen bytes!!!"[..]), (0x01, &big[..300]), (0x80, &big[..]), (0x88, &[3, 232][..])];
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (i, (first, payload)) in frames.iter().enumerate() {
            input.extend(masked(*first, payload, [1, 2, 3, i as u8 + 4]));
            expected.extend(unmasked(*first, payload));
        }
        input.extend(masked(0x82, b"after the close", [9; 4]));
        for split in [1, 2, 3, 7, 13, 64, 1000, input.len()] {
            let mut reflector = Reflector::default();
            let mut out = Vec::new();
            for piece in input.chunks(split) {
                reflector.reflect(piece, &mut out);
            }
            assert!(reflector.closed, "split {split}");
            assert_eq!(out, expected, "split {split}");
        }
    }

    #[test]
    fn answers_the_upgrade() {
        // RFC 6455 §1.3's example key and accept value.
        let head = b"GET /chat HTTP/1.1\r\nHost: x\r\nsec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ== \r\n";
        assert_eq!(websocket_key(head), Some(&b"dGhlIHNhbXBsZSBub25jZQ=="[..]));
        let accept = base64::engine::general_purpose::STANDARD
            .encode(Sha1::new().chain_update(b"dGhlIHNhbXBsZSBub25jZQ==").chain_update(GUID).finalize());
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(websocket_key(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
