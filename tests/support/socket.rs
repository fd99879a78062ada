//! Test tier "socket": helpers for the real-socket tests of the runtime, in-process: a server on a free port
//! that stops when dropped, a client driven by hand over a plain `TcpStream`
//! (for the bytes no well-behaved client library would send), and a handler
//! that reports what it sees over a channel.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ferrows::proto::frame::{encode_frame, OpCode};
use ferrows::proto::CloseCode;
use ferrows::runtime::{Context, Decision, Handler, Message, Server, ServerConfig, ServerHandle, SessionId, Upgrade};

/// The socket read timeout: only there so that a broken server fails a test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The RFC 6455 §1.3 example key and the accept value it earns.
pub const EXAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const EXAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every frame the hand-driven client sends.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A server on 127.0.0.1 with a port of its own. Dropping it (a failed test)
/// asks it to stop; [`TestServer::stop`] also waits for its loops.
pub struct TestServer {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl TestServer {
    /// Starts `loops` loops with `config`, one handler per loop from `factory`.
    pub fn start<H, F>(config: ServerConfig, loops: usize, factory: F) -> Self
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let handle = Server::builder()
            .listen("127.0.0.1:0".parse().expect("a valid address"))
            .loops(loops)
            .config(config)
            .start(factory)
            .expect("the server starts");
        let addr = handle.local_addrs()[0];
        assert_ne!(addr.port(), 0, "the server reports the port it bound");
        Self { handle: Some(handle), addr }
    }

    /// `ws://` URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("the server is running")
    }

    /// Asks the server to shut down (Close 1001 to every session).
    pub fn shutdown(&self) {
        self.handle().shutdown();
    }

    /// Shuts down and waits for every loop to finish, failing if that takes longer than `within`.
    pub fn stop_within(mut self, within: Duration) {
        let handle = self.handle.take().expect("the server is running");
        handle.shutdown();
        join_within(handle, within);
    }

    /// Shuts down and waits for every loop (sessions still open get the default close timeout).
    pub fn stop(self) {
        self.stop_within(Duration::from_secs(20));
    }

    /// Takes the handle out, for a test that joins it itself.
    pub fn into_handle(mut self) -> ServerHandle {
        self.handle.take().expect("the server is running")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.shutdown();
        }
    }
}

/// Joins `handle` on a helper thread; panics if the loops have not finished within `within`
/// or one of them stopped with an error. Returns how long the join took.
pub fn join_within(handle: ServerHandle, within: Duration) -> Duration {
    let started = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(handle.join());
    });
    match done_rx.recv_timeout(within) {
        Ok(Ok(())) => started.elapsed(),
        Ok(Err(e)) => panic!("an event loop stopped with an error: {e}"),
        Err(_) => panic!("the server's loops did not finish within {within:?} of shutdown"),
    }
}

/// The settings most tests use: defaults, with short linger and close
/// timeouts so that shutdown never waits long on a session a test left open.
pub fn quick_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.protocol.close_timeout = Some(Duration::from_secs(2));
    config.linger_timeout = Duration::from_secs(1);
    config
}

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a Close frame, `None` for an empty Close.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OpCode::Close, "not a Close frame: {self:?}");
        match self.payload.as_slice() {
            [] => None,
            [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            [_] => panic!("a one-byte Close payload from the server"),
        }
    }

    /// The reason of a Close frame.
    pub fn close_reason(&self) -> String {
        assert_eq!(self.opcode, OpCode::Close, "not a Close frame: {self:?}");
        let reason = self.payload.get(2..).unwrap_or_default();
        String::from_utf8(reason.to_vec()).expect("a Close reason in UTF-8")
    }
}

/// A client over a plain socket, driven byte by byte.
pub struct RawClient {
    pub stream: TcpStream,
    /// Bytes read from the socket and not yet consumed.
    buf: Vec<u8>,
}

impl RawClient {
    /// A TCP connection, nothing sent yet.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("TCP connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set write timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Self { stream, buf: Vec::new() }
    }

    /// A TCP connection whose receive buffer is held at `size` bytes (no
    /// autotuning), so that a client that does not read pushes back on the
    /// server after little data.
    pub fn connect_with_receive_buffer(addr: SocketAddr, size: usize) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
        socket.set_recv_buffer_size(size).expect("set SO_RCVBUF");
        socket.connect(&addr.into()).expect("TCP connect");
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set write timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Self { stream, buf: Vec::new() }
    }

    /// Completes the opening handshake for `path` on a connected client; checks the 101 response.
    pub fn handshake(mut self, path: &str) -> Self {
        self.send_raw(upgrade_request(path, &[]).as_bytes());
        let head = self.read_http_head();
        assert!(head.starts_with("HTTP/1.1 101 "), "expected 101 Switching Protocols, got:\n{head}");
        assert_eq!(header(&head, "Sec-WebSocket-Accept").as_deref(), Some(EXAMPLE_ACCEPT), "in:\n{head}");
        self
    }

    /// Connects and completes the opening handshake for `path`; checks the 101 response.
    pub fn open(addr: SocketAddr, path: &str) -> Self {
        Self::connect(addr).handshake(path)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Sends one masked frame, as a client must.
    pub fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.send_raw(&client_frame(fin, opcode, payload));
    }

    /// Sends a Close with `code` and `reason`.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send_frame(true, OpCode::Close, &payload);
    }

    /// Reads the head of an HTTP response, up to and including the blank line.
    pub fn read_http_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            assert!(self.fill().expect("read an HTTP response") > 0, "EOF before the end of the HTTP head");
        }
    }

    /// Reads everything until the server closes the connection; fails on a hang.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().expect("read until EOF") > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// The next frame, or `None` at a clean EOF between frames.
    pub fn read_frame(&mut self) -> Option<Frame> {
        if !self.ensure(2) {
            assert!(self.buf.is_empty(), "EOF inside a frame header: {:?}", self.buf);
            return None;
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b0 & 0x70, 0, "RSV bits set by the server");
        assert_eq!(b1 & 0x80, 0, "RFC 6455 §5.1: a server must not mask its frames");
        let opcode = OpCode::from_bits(b0).unwrap_or_else(|| panic!("reserved opcode {:#x}", b0 & 0x0f));
        let (len, header_len) = match b1 & 0x7f {
            126 => {
                assert!(self.ensure(4), "EOF inside a frame header");
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                assert!(self.ensure(10), "EOF inside a frame header");
                let bytes: [u8; 8] = self.buf[2..10].try_into().expect("eight bytes");
                (u64::from_be_bytes(bytes), 10)
            }
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len).expect("a frame length that fits in memory");
        assert!(self.ensure(header_len + len), "EOF inside a frame payload");
        let payload = self.buf[header_len..header_len + len].to_vec();
        self.buf.drain(..header_len + len);
        Some(Frame { fin: b0 & 0x80 != 0, opcode, payload })
    }

    /// The next frame; fails at EOF.
    pub fn next_frame(&mut self) -> Frame {
        self.read_frame().expect("a frame from the server, not EOF")
    }

    /// Expects the server's Close next and returns it.
    pub fn expect_close(&mut self) -> Frame {
        let frame = self.next_frame();
        assert_eq!(frame.opcode, OpCode::Close, "expected a Close frame, got {frame:?}");
        frame
    }

    /// Expects the server to end the connection (EOF, nothing more sent) within `within`,
    /// then ends this side too. Returns how long the EOF took.
    pub fn expect_eof_within(&mut self, within: Duration) -> Duration {
        assert!(self.buf.is_empty(), "unread bytes before the expected EOF: {:?}", self.buf);
        let started = Instant::now();
        let mut chunk = [0u8; 4096];
        loop {
            let left = within.checked_sub(started.elapsed()).unwrap_or_default().max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left)).expect("set read timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => panic!("expected EOF, got {n} more bytes: {:?}", &chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    panic!("the server did not close the connection within {within:?}")
                }
                Err(e) => panic!("expected a clean EOF, got {e}"),
            }
        }
        // The server is done; so is this client, so the server's linger ends at once.
        let _ = self.stream.shutdown(Shutdown::Write);
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set read timeout");
        started.elapsed()
    }

    /// Expects EOF within the I/O timeout.
    pub fn expect_eof(&mut self) {
        self.expect_eof_within(IO_TIMEOUT);
    }

    /// Closes the write side (a TCP FIN), keeping the read side open.
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown(Write)");
    }

    /// Makes sure `n` bytes are buffered; false at EOF.
    fn ensure(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            if self.fill().expect("read a frame") == 0 {
                return false;
            }
        }
        true
    }

    /// One read from the socket into the buffer; a timeout is an error.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer from the server in time"));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One masked frame as a client sends it.
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, 0, opcode, payload, Some(MASK), &mut out);
    out
}

/// A valid upgrade request for `path` with the RFC example key, plus `extra` header lines.
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {EXAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// The value of header `name` (case-insensitive) in an HTTP head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
    })
}

/// The status code of an HTTP response.
pub fn status(response: &str) -> u16 {
    let line = response.lines().next().unwrap_or_default();
    assert!(line.starts_with("HTTP/1.1 "), "not an HTTP/1.1 status line: {line:?}");
    line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {line:?}"))
}

/// What a [`ReportingEcho`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `on_open`: the session, its loop, and how many sessions that loop had open then.
    Opened { session: SessionId, loop_index: usize, open_sessions: usize },
    /// `on_close`: the session, its loop, and the code and reason it was given.
    Closed { session: SessionId, loop_index: usize, code: CloseCode, reason: String },
}

/// The message that makes a [`ReportingEcho`] close the session from the server side.
pub const CLOSE_ME: &str = "close me";
/// The code and reason of that close.
pub const SERVER_CLOSE_CODE: CloseCode = CloseCode(4000);
pub const SERVER_CLOSE_REASON: &str = "bye";

/// Echoes every message, closes with 4000 "bye" on the text `close me`, and
/// reports every open and close.
pub struct ReportingEcho {
    reports: Sender<Report>,
}

impl ReportingEcho {
    /// A handler factory for the server and the receiving end of its reports.
    pub fn factory() -> (impl Fn(usize) -> ReportingEcho + Send + Sync + 'static, Receiver<Report>) {
        let (tx, rx) = mpsc::channel();
        (move |_loop_index| ReportingEcho { reports: tx.clone() }, rx)
    }
}

impl Handler for ReportingEcho {
    type State = ();

    fn upgrade(&mut self, _request: &Upgrade<'_>) -> Decision<()> {
        Decision::accept(())
    }

    fn on_open(&mut self, ctx: &mut Context<'_, ()>, session: SessionId) {
        let report = Report::Opened { session, loop_index: ctx.loop_index(), open_sessions: ctx.sessions().count() };
        let _ = self.reports.send(report);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, message: Message<'_>) {
        let sent = match message {
            Message::Text(CLOSE_ME) => ctx.close(session, SERVER_CLOSE_CODE, SERVER_CLOSE_REASON),
            Message::Text(text) => ctx.send_text(session, text),
            Message::Binary(data) => ctx.send_binary(session, data),
        };
        // A message decoded just before a violation arrives after the Close
        // went out; its echo is refused, which is what the peer earned.
        let _ = sent;
    }

    fn on_close(&mut self, ctx: &mut Context<'_, ()>, session: SessionId, code: CloseCode, reason: &str) {
        let report = Report::Closed { session, loop_index: ctx.loop_index(), code, reason: reason.to_owned() };
        let _ = self.reports.send(report);
    }
}

/// The next report, within `within`.
pub fn next_report(reports: &Receiver<Report>, within: Duration) -> Report {
    match reports.recv_timeout(within) {
        Ok(report) => report,
        Err(RecvTimeoutError::Timeout) => panic!("no report from the handler within {within:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("the handler is gone"),
    }
}

/// Skips `Opened` reports and returns the next close's code and reason, within `within`.
pub fn next_close(reports: &Receiver<Report>, within: Duration) -> (CloseCode, String) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Report::Closed { code, reason, .. } = next_report(reports, left) {
            return (code, reason);
        }
    }
}

/// Deterministic bytes of every value.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

/// Sends `request` and reads the whole answer until the server closes the connection.
pub fn http_answer(server: &TestServer, request: &[u8]) -> String {
    let mut client = RawClient::connect(server.addr);
    client.send_raw(request);
    String::from_utf8_lossy(&client.read_to_end()).into_owned()
}
