//! The same client byte stream (the frames a client sends after the
//! handshake) through ferrows' server connection and through tungstenite's
//! server, configured alike (frame and message limits, no extensions). They
//! must agree on accepting or failing the connection, on the messages and
//! control frames (type and bytes, in order), and on the class of the close
//! code a failure earns (1002, 1007 or 1009). A stream that ends before a
//! verdict is no verdict for either side.
//!
//! Where RFC 6455 leaves room for two answers, the difference is normalised
//! below, each with the section that allows it (see docs/fuzzing.md):
//!
//! - Close code 1014 (bad gateway, registered with IANA after RFC 6455, like
//!   1012 and 1013 which both accept): ferrows accepts it, tungstenite fails
//!   the connection with 1002. §7.4.2 leaves 1000-2999 to the RFC and its
//!   registry; §7.4.1 lists only 1000-1011.
//! - Order of checks inside one frame: a frame that breaks two rules may earn
//!   either close code (§7.1.7 says only that the connection is failed; it
//!   orders nothing). ferrows checks the header as it arrives (reserved bits,
//!   opcode, masking, control frame rules, minimal length) before the frame
//!   limit; tungstenite checks the opcode and the frame limit on the header and
//!   the rest once the payload is in. So a frame over the limit that also
//!   breaks a header rule is 1002 for one and 1009 for the other; a message
//!   over the limit whose last frame holds invalid UTF-8 is 1007 for ferrows
//!   (it checks UTF-8 as the payload arrives) and 1009 for tungstenite (it
//!   checks the limit first, once the frame is whole). Likewise a
//!   Close with a code that may not be sent and a reason that is not UTF-8 is
//!   1002 (ferrows, code first) or 1007 (tungstenite, reason first).
//! - Minimal length encoding (§5.2: "the minimal number of bytes MUST be
//!   used"): ferrows fails the connection, tungstenite reads the frame. The
//!   messages before that frame must still agree.
//! - A Close whose code may not be sent (§7.4.1): tungstenite reports it as
//!   a Close with 1002 and answers with 1002; ferrows fails the connection
//!   with 1002. Both are a 1002 failure here.
//! - Timing: ferrows judges a frame from its first bytes, tungstenite once it
//!   is whole (§5.2 and §7.1.7 allow either), so a stream that ends inside a
//!   frame may be failed by ferrows and still open for tungstenite: no verdict.
#![no_main]

use std::io::{self, Read, Write};
use std::time::Instant;

use ferrows::proto::{Config, Connection, Event, ProtocolError, Received};
use libfuzzer_sys::fuzz_target;
use tungstenite::error::{CapacityError, Error as WsError, ProtocolError as WsProtocolError};
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tungstenite::protocol::{Message, Role, WebSocket, WebSocketConfig};

/// Frame and message limits, chosen by the fuzzer so that both are reached.
const LIMITS: [(usize, usize); 4] = [(125, 125), (16, 300), (200, 64), (1 << 16, 1 << 16)];

/// A message or control frame as both sides report it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// How a side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The peer's Close was read: a clean close.
    Closed,
    /// The connection was failed with a close code of this class.
    Failed(u16),
    /// The stream ended first.
    Open,
}

/// A client stream handed out in fuzz-chosen read sizes; what is written is dropped.
struct Stream<'a> {
    data: &'a [u8],
    plan: u8,
    step: u32,
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = chunk(self.plan, self.step, self.data.len()).min(buf.len());
        self.step += 1;
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Stream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Read sizes from the plan byte: mostly small, sometimes everything at once.
fn chunk(plan: u8, step: u32, rest: usize) -> usize {
    match (plan.rotate_left(step % 8) & 0x0f) as usize {
        0 => rest,
        n => n * (1 + step as usize % 3),
    }
    .min(rest)
}

fn ferrows_side(
    stream: &[u8],
    plan: u8,
    in_place: bool,
    (frame, message): (usize, usize),
) -> (Vec<Msg>, Verdict, Option<ProtocolError>) {
    let mut config = Config::default();
    config.max_frame_size = frame;
    config.max_message_size = message;
    // tungstenite has no fragment limit; a 4 KiB input holds fewer than 700 frames.
    config.max_fragments = usize::MAX;
    config.keepalive = None;
    config.close_timeout = None;
    let now = Instant::now();
    let mut conn = Connection::server(config, now);
    let mut msgs = Vec::new();
    let mut closed = false;
    let mut buf = stream.to_vec();
    let mut pos = 0;
    let mut step = 0;
    while pos < buf.len() && conn.wants_read() {
        let size = chunk(plan, step, buf.len() - pos);
        step += 1;
        let data = &mut buf[pos..pos + size];
        pos += size;
        let events: Vec<Event> = if in_place {
            let _ = conn.handle_read_in_place(data, now);
            let mut events = Vec::new();
            while let Some(received) = conn.poll_event_in(data) {
                events.push(match received {
                    Received::Text(text) => Event::Text(text.to_owned()),
                    Received::Binary(bytes) => Event::Binary(bytes.to_vec()),
                    Received::Event(event) => *event,
                });
            }
            events
        } else {
            let _ = conn.handle_read(data, now);
            std::iter::from_fn(|| conn.poll_event()).collect()
        };
        for event in events {
            msgs.push(match event {
                Event::Text(text) => Msg::Text(text),
                Event::Binary(bytes) => Msg::Binary(bytes),
                Event::Ping(payload) => Msg::Ping(payload.to_vec()),
                Event::Pong(payload) => Msg::Pong(payload.to_vec()),
                Event::Close(frame) => {
                    closed = true;
                    Msg::Close(frame.map(|f| (f.code.0, f.reason)))
                }
            });
        }
    }
    let error = conn.protocol_error().cloned();
    let verdict = match &error {
        Some(e) => Verdict::Failed(e.close_code().0),
        None if closed => Verdict::Closed,
        None => Verdict::Open,
    };
    (msgs, verdict, error)
}

fn tungstenite_side(stream: &[u8], plan: u8, (frame, message): (usize, usize)) -> (Vec<Msg>, Verdict) {
    let mut config = WebSocketConfig::default();
    config.max_frame_size = Some(frame);
    config.max_message_size = Some(message);
    config.accept_unmasked_frames = false;
    let mut ws = WebSocket::from_raw_socket(Stream { data: stream, plan, step: 0 }, Role::Server, Some(config));
    let mut msgs = Vec::new();
    let verdict = loop {
        match ws.read() {
            Ok(Message::Text(text)) => msgs.push(Msg::Text(text)),
            Ok(Message::Binary(bytes)) => msgs.push(Msg::Binary(bytes)),
            Ok(Message::Ping(bytes)) => msgs.push(Msg::Ping(bytes)),
            Ok(Message::Pong(bytes)) => msgs.push(Msg::Pong(bytes)),
            Ok(Message::Close(frame)) => {
                msgs.push(Msg::Close(frame.map(|f| (u16::from(f.code), f.reason.into_owned()))));
                break Verdict::Closed;
            }
            Ok(Message::Frame(_)) => unreachable!("raw frames are never read"),
            Err(WsError::Protocol(WsProtocolError::ResetWithoutClosingHandshake)) => break Verdict::Open,
            Err(WsError::Protocol(_)) => break Verdict::Failed(1002),
            Err(WsError::Capacity(CapacityError::MessageTooLong { .. })) => break Verdict::Failed(1009),
            Err(WsError::Utf8) => break Verdict::Failed(1007),
            Err(e) => panic!("tungstenite: unexpected error {e:?}"),
        }
    };
    (msgs, verdict)
}

/// One frame header as the stream declares it, read without either decoder.
struct Header {
    /// The opcode, 0x0 to 0xf.
    opcode: u8,
    /// The header breaks a rule ferrows checks before the frame limit.
    header_violation: bool,
    /// The length is not in its minimal encoding (§5.2).
    non_minimal: bool,
    /// The declared payload length.
    len: u64,
    /// Opcode 0x8 (Close), with its payload unmasked.
    close_payload: Option<Vec<u8>>,
}

/// Walks the frames of a client stream, up to the first one that is not
/// whole; says too whether the stream ends inside a frame.
fn headers(mut s: &[u8]) -> (Vec<Header>, bool) {
    let mut out = Vec::new();
    while s.len() >= 2 {
        let (b0, b1) = (s[0], s[1]);
        let opcode = b0 & 0x0f;
        let control = opcode & 0x08 != 0;
        let (len, at) = match b1 & 0x7f {
            126 if s.len() >= 4 => (u64::from(u16::from_be_bytes([s[2], s[3]])), 4),
            127 if s.len() >= 10 => (u64::from_be_bytes(s[2..10].try_into().unwrap_or_default()), 10),
            126 | 127 => (u64::MAX, usize::MAX),
            n => (u64::from(n), 2),
        };
        let masked = b1 & 0x80 != 0;
        let non_minimal = (at == 4 && len < 126) || (at == 10 && len <= 0xffff);
        let header_violation = b0 & 0x70 != 0
            || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10)
            || !masked
            || (control && (b0 & 0x80 == 0 || b1 & 0x7f > 125))
            || non_minimal
            || len >> 63 != 0;
        let body = at.saturating_add(if masked { 4 } else { 0 });
        let whole = at != usize::MAX && (s.len() as u64).saturating_sub(body as u64) >= len && s.len() >= body;
        let close_payload = (whole && masked && opcode == 8).then(|| {
            let mask = &s[at..body];
            s[body..body + len as usize].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect()
        });
        out.push(Header { opcode, header_violation, non_minimal, len, close_payload });
        if !whole {
            break;
        }
        s = &s[body + len as usize..];
    }
    (out, !s.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let Some((&plan, stream)) = data.split_first() else {
        return;
    };
    let limits = LIMITS[usize::from(plan >> 4) % LIMITS.len()];
    let (f_msgs, f_verdict, f_error) = ferrows_side(stream, plan, plan & 0x40 != 0, limits);
    let (t_msgs, t_verdict) = tungstenite_side(stream, plan.rotate_left(3), limits);

    let (frames, ends_inside_frame) = headers(stream);
    let (mut t_msgs, mut t_verdict) = (t_msgs, t_verdict);
    // tungstenite hands over a Close whose code may not be sent as a Close
    // with 1002 and answers it so: the connection is failed. The code it
    // read is in the first Close frame of the stream.
    if t_verdict == Verdict::Closed {
        let payload = frames.iter().find_map(|h| h.close_payload.as_deref());
        if let Some([hi, lo, ..]) = payload {
            if !WsCloseCode::from(u16::from_be_bytes([*hi, *lo])).is_allowed() {
                t_msgs.pop();
                t_verdict = Verdict::Failed(1002);
            }
        }
    }

    // §5.2 minimal length: ferrows fails, tungstenite reads on; what came before agrees.
    // A control frame with a 16- or 64-bit length is one too: ferrows calls
    // it a control frame over 125 bytes, on its second byte.
    let first_violation = frames.iter().find(|h| h.header_violation);
    if matches!(f_error, Some(ProtocolError::NonMinimalLength | ProtocolError::ControlFrameTooLong(126 | 127)))
        && first_violation.is_some_and(|h| h.non_minimal)
    {
        assert!(
            t_msgs.starts_with(&f_msgs),
            "messages differ before a non-minimal length: ferrows {f_msgs:?}, tungstenite {t_msgs:?}"
        );
        return;
    }
    assert_eq!(
        f_msgs.len().min(t_msgs.len()),
        common_prefix(&f_msgs, &t_msgs),
        "messages differ: ferrows {f_msgs:?} {f_verdict:?}, tungstenite {t_msgs:?} {t_verdict:?}"
    );
    match (f_verdict, t_verdict) {
        (f, t) if f == t => assert_eq!(f_msgs, t_msgs),
        // Ferrows judged a frame that had not all arrived: no verdict.
        (Verdict::Failed(_), Verdict::Open) if ends_inside_frame => assert!(t_msgs.starts_with(&f_msgs)),
        // §7.4.2: 1014 is a registered code tungstenite does not accept on the wire.
        (Verdict::Closed, Verdict::Failed(1002))
            if matches!(f_msgs.last(), Some(Msg::Close(Some((1014, _)))))
                && frames
                    .iter()
                    .find_map(|h| h.close_payload.as_deref())
                    .is_some_and(|p| p.starts_with(&[0x03, 0xf6])) =>
        {
            assert_eq!(f_msgs[..f_msgs.len() - 1], t_msgs[..]);
        }
        // Order of checks inside one frame: a frame or message over its
        // limit that also breaks a header rule, or holds invalid UTF-8.
        (Verdict::Failed(1002), Verdict::Failed(1009))
            if matches!(
                f_error,
                Some(
                    ProtocolError::ReservedBits(_)
                        | ProtocolError::ReservedOpcode(_)
                        | ProtocolError::UnmaskedFrame
                        | ProtocolError::ControlFrameTooLong(_)
                        | ProtocolError::FragmentedControlFrame
                        | ProtocolError::LengthOverflow
                        | ProtocolError::UnexpectedContinuation
                        | ProtocolError::ExpectedContinuation
                )
            ) && over_limit(&frames, limits) =>
        {
            assert_eq!(f_msgs, t_msgs)
        }
        (Verdict::Failed(1007), Verdict::Failed(1009))
            if matches!(f_error, Some(ProtocolError::InvalidUtf8)) && over_limit(&frames, limits) =>
        {
            assert_eq!(f_msgs, t_msgs)
        }
        (Verdict::Failed(1002), Verdict::Failed(1007))
            if matches!(f_error, Some(ProtocolError::InvalidCloseCode(_)))
                && frames.iter().any(|h| {
                    h.close_payload.as_deref().is_some_and(|p| p.len() >= 2 && std::str::from_utf8(&p[2..]).is_err())
                }) =>
        {
            assert_eq!(f_msgs, t_msgs)
        }
        (f, t) => panic!("verdicts differ: ferrows {f:?} ({f_error:?}) {f_msgs:?}, tungstenite {t:?} {t_msgs:?}"),
    }
});

/// Whether a frame declares more than the frame limit, or a message more than
/// the message limit.
fn over_limit(frames: &[Header], (frame, message): (usize, usize)) -> bool {
    let mut in_message = 0u64;
    frames.iter().any(|h| {
        match h.opcode {
            1 | 2 => in_message = h.len,
            0 => in_message = in_message.saturating_add(h.len),
            _ => {}
        }
        h.len > frame as u64 || in_message > message as u64
    })
}

fn common_prefix(a: &[Msg], b: &[Msg]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
