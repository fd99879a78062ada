//! The links to Redis: each connection's life (connect, authenticate and
//! subscribe, fail and retry after a growing backoff), its timers (pings,
//! silent connections, connect deadlines) and its bytes in and out.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};

use super::records::Expected;
use super::{Bridge, PUBLISHER, SUBSCRIBER, SUBSCRIBE_BATCH};
use crate::cluster::resp::{encode_command, Reader};
use crate::cluster::ClusterStats;

/// The first wait before reconnecting; each failure doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// One connection to Redis.
#[derive(Debug)]
pub(super) enum Link {
    /// Waiting until `retry_at` to connect again.
    Down { retry_at: Instant },
    /// The TCP connect is in progress.
    Connecting { stream: TcpStream, deadline: Instant },
    /// Connected: commands go out, replies and pushes come in.
    Up(Box<Conn>),
}

#[derive(Debug)]
pub(super) struct Conn {
    stream: TcpStream,
    reader: Reader,
    pub(super) out: Vec<u8>,
    written: usize,
    /// When the server last sent anything.
    heard: Instant,
    /// Whether the server has sent anything on this connection yet: a TCP
    /// connect alone does not make a link up (a Redis that hangs still
    /// completes connects from its listen backlog).
    pub(super) answered: bool,
    /// When the next PING goes out.
    ping_at: Instant,
    /// What the socket is registered for.
    interest: Interest,
    /// What each reply still to come answers, in order (the publishing
    /// connection's; the subscribed one's replies need no matching).
    pub(super) expected: VecDeque<Expected>,
    /// Bytes the script calls in `expected` hold.
    pub(super) held: usize,
}

/// A link and its reconnect state.
#[derive(Debug)]
pub(super) struct Peer {
    pub(super) link: Link,
    /// The wait before the next reconnect.
    backoff: Duration,
    /// Whether the link has been up before: coming up again is a reconnect.
    up_before: bool,
    /// Failures since it was last up.
    failures: u32,
}

impl Peer {
    /// A link down, to be connected at `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self { link: Link::Down { retry_at: now }, backoff: FIRST_BACKOFF, up_before: false, failures: 0 }
    }
}

impl Bridge {
    fn link(&mut self, index: usize) -> &mut Link {
        &mut self.links[index].link
    }

    fn name(index: usize) -> &'static str {
        if index == SUBSCRIBER {
            "subscriber"
        } else {
            "publisher"
        }
    }

    /// The earliest timer of either link, or of a read waiting for its subscription.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let ping = self.config.ping_interval;
        self.links
            .iter()
            .map(|peer| match &peer.link {
                Link::Down { retry_at } => *retry_at,
                Link::Connecting { deadline, .. } => *deadline,
                Link::Up(conn) => conn.ping_at.min(conn.heard + ping * 3),
            })
            .chain(self.keeping.deadline())
            .chain(self.membership.deadline())
            .min()
    }

    /// The bridge itself was away longer than two ping intervals (its process
    /// stopped, its thread starved): what Redis sent meanwhile waits unread,
    /// so the silence is the bridge's, not Redis's. Each link gets a fresh
    /// window, and a PING now.
    pub(super) fn away(&mut self, now: Instant) {
        for peer in &mut self.links {
            if let Link::Up(conn) = &mut peer.link {
                conn.heard = now;
                conn.ping_at = now;
            }
        }
    }

    /// Timers: reconnects, connect deadlines, pings and silent connections.
    pub(super) fn expire(&mut self, now: Instant) {
        for index in [SUBSCRIBER, PUBLISHER] {
            let ping = self.config.ping_interval;
            match self.link(index) {
                Link::Down { retry_at } if now >= *retry_at => self.connect(index, now),
                Link::Connecting { deadline, .. } if now >= *deadline => {
                    self.fail(index, now, "connect timed out");
                }
                Link::Up(conn) if now >= conn.heard + ping * 3 => {
                    self.fail(index, now, "no answer to PING");
                }
                Link::Up(conn) if now >= conn.ping_at => {
                    conn.ping_at = now + ping;
                    encode_command(&[b"PING"], &mut conn.out);
                    if index == PUBLISHER {
                        conn.expected.push_back(Expected::Plain);
                    }
                    self.flush(index, now);
                }
                _ => {}
            }
        }
        // Reads that waited too long are answered; any that can go now, go.
        self.release_reads(now);
        self.refresh_members(now);
        self.flush(PUBLISHER, now);
    }

    fn connect(&mut self, index: usize, now: Instant) {
        let addr = match (self.url.host.as_str(), self.url.port).to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(addr)) => addr,
            Ok(None) => return self.fail(index, now, "the host resolved to no address"),
            Err(e) => return self.fail(index, now, &format!("cannot resolve {}: {e}", self.url.host)),
        };
        match start_connect(&self.poll, addr, index) {
            Ok(stream) => {
                let deadline = now + self.config.connect_timeout;
                *self.link(index) = Link::Connecting { stream, deadline };
            }
            Err(e) => self.fail(index, now, &e.to_string()),
        }
    }

    /// The link is lost (or never came up): retry after the backoff.
    pub(super) fn fail(&mut self, index: usize, now: Instant, why: &str) {
        // Down at once, not when the turn ends: a failure found by a timer
        // comes before the poll's wait, and appends taken meanwhile would be lost.
        self.stats.set_up(false);
        let backoff = self.links[index].backoff;
        let was = std::mem::replace(self.link(index), Link::Down { retry_at: now + backoff });
        let lost = matches!(&was, Link::Up(conn) if conn.answered);
        match was {
            Link::Up(mut conn) => {
                let _ = self.poll.registry().deregister(&mut conn.stream);
                if index == PUBLISHER {
                    self.publisher_lost(std::mem::take(&mut conn.expected));
                } else {
                    self.keeping.subscriber_lost();
                    self.reads_lost_their_subscription();
                }
            }
            Link::Connecting { mut stream, .. } => {
                let _ = self.poll.registry().deregister(&mut stream);
            }
            Link::Down { .. } => {}
        }
        let name = Self::name(index);
        if self.links[index].failures == 0 {
            let what = if lost { "lost" } else { "cannot be made" };
            log::warn!(
                "cluster: {name} connection to Redis {what} ({why}); local delivery goes on, retrying (backoff up to {:?})",
                self.config.max_backoff
            );
        } else {
            log::debug!("cluster: {name} connection to Redis: {why}; retrying in {backoff:?}");
        }
        let peer = &mut self.links[index];
        peer.failures = peer.failures.saturating_add(1);
        // `seen` stays: a sequence that resumes past where it stopped shows what the outage lost.
        peer.backoff = (backoff * 2).min(self.config.max_backoff.max(FIRST_BACKOFF));
    }

    /// Readiness on a link: the connect completes, replies come in, output goes out.
    pub(super) fn on_event(&mut self, index: usize, now: Instant) {
        if let Link::Connecting { stream, .. } = self.link(index) {
            match connect_result(stream) {
                Ok(false) => return,
                Ok(true) => self.established(index, now),
                Err(e) => return self.fail(index, now, &e.to_string()),
            }
        }
        self.read(index, now);
        self.flush(index, now);
    }

    /// The TCP connect completed: authenticate, and subscribe to what is wanted.
    fn established(&mut self, index: usize, now: Instant) {
        let Link::Connecting { stream, .. } =
            std::mem::replace(self.link(index), Link::Down { retry_at: now + FIRST_BACKOFF })
        else {
            return;
        };
        let mut conn = Conn {
            stream,
            reader: Reader::new(self.config.max_message),
            out: Vec::new(),
            written: 0,
            heard: now,
            answered: false,
            ping_at: now + self.config.ping_interval,
            interest: Interest::READABLE | Interest::WRITABLE,
            expected: VecDeque::new(),
            held: 0,
        };
        let auth = match (&self.url.user, &self.url.password) {
            (Some(user), Some(password)) => Some(vec![&b"AUTH"[..], user.as_bytes(), password.as_bytes()]),
            (None, Some(password)) => Some(vec![&b"AUTH"[..], password.as_bytes()]),
            _ => None,
        };
        if let Some(auth) = auth {
            encode_command(&auth, &mut conn.out);
            // The subscribed connection's replies are read apart, never matched.
            if index == PUBLISHER {
                conn.expected.push_back(Expected::Auth);
            }
        }
        if index == PUBLISHER {
            // Pipelined after AUTH, so that EVALSHA normally finds them.
            Self::load_scripts(&mut conn.out, &mut conn.expected);
            // A Redis that restarted has none of this node's members.
            self.membership.refresh_now(now);
        } else {
            for topic in &self.wanted {
                self.keeping.sent(topic, true);
            }
            let mut channels: Vec<Vec<u8>> = vec![self.channel(None)];
            channels.extend(self.wanted.iter().map(|t| self.channel(Some(t))));
            for batch in channels.chunks(SUBSCRIBE_BATCH) {
                let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
                args.extend(batch.iter().map(Vec::as_slice));
                encode_command(&args, &mut conn.out);
            }
        }
        self.links[index].link = Link::Up(Box::new(conn));
    }

    /// The first bytes from Redis on a new connection: the link is up.
    fn answered(&mut self, index: usize) {
        let peer = &mut self.links[index];
        peer.backoff = FIRST_BACKOFF;
        peer.failures = 0;
        if std::mem::replace(&mut peer.up_before, true) {
            ClusterStats::add(&self.stats.reconnects, 1);
            log::info!("cluster: {} connection to Redis up again", Self::name(index));
        } else {
            log::info!("cluster: {} connection to Redis up", Self::name(index));
        }
    }

    /// Reads until the socket would block, handling each whole value.
    fn read(&mut self, index: usize, now: Instant) {
        let mut values = Vec::new();
        let mut first_answer = false;
        let failure = {
            let Link::Up(conn) = &mut self.links[index].link else {
                return;
            };
            let mut failure = None;
            loop {
                match conn.stream.read(&mut self.scratch) {
                    Ok(0) => {
                        failure = Some("Redis closed the connection".to_owned());
                        break;
                    }
                    Ok(n) => {
                        conn.heard = now;
                        first_answer |= !std::mem::replace(&mut conn.answered, true);
                        conn.reader.feed(&self.scratch[..n]);
                        loop {
                            match conn.reader.next_value() {
                                Ok(Some(value)) => values.push(value),
                                Ok(None) => break,
                                Err(e) => {
                                    failure = Some(e.to_string());
                                    break;
                                }
                            }
                        }
                        if failure.is_some() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
            failure
        };
        if first_answer {
            self.answered(index);
        }
        for value in values {
            if let Err(why) = self.handle(index, value) {
                return self.fail(index, now, &why);
            }
        }
        if let Some(why) = failure {
            self.fail(index, now, &why);
        }
    }

    /// Writes a link's output until the socket would block.
    pub(super) fn flush(&mut self, index: usize, now: Instant) {
        let Link::Up(conn) = &mut self.links[index].link else { return };
        let mut failure = None;
        while conn.written < conn.out.len() {
            match conn.stream.write(&conn.out[conn.written..]) {
                Ok(0) => {
                    failure = Some("the connection takes no more".to_owned());
                    break;
                }
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if conn.written == conn.out.len() {
            conn.out.clear();
            conn.written = 0;
            if conn.out.capacity() > (1 << 20) {
                conn.out = Vec::new();
            }
        }
        let interest =
            if conn.written < conn.out.len() { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        if interest != conn.interest {
            conn.interest = interest;
            if let Err(e) = self.poll.registry().reregister(&mut conn.stream, Token(index), interest) {
                failure.get_or_insert(e.to_string());
            }
        }
        if let Some(why) = failure {
            self.fail(index, now, &why);
        }
    }
}

/// Whether a non-blocking connect completed (`Ok(false)`: not yet).
fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

fn start_connect(poll: &Poll, addr: SocketAddr, index: usize) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    let _ = stream.set_nodelay(true);
    poll.registry().register(&mut stream, Token(index), Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

/// A connection on a socket nobody reads, registered with no poll: for
/// tests that look at what is written, never flushing it.
#[cfg(test)]
pub(super) fn idle_conn(now: Instant) -> Conn {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    stream.set_nonblocking(true).unwrap();
    Conn {
        stream: TcpStream::from_std(stream),
        reader: Reader::new(1 << 20),
        out: Vec::new(),
        written: 0,
        heard: now,
        answered: true,
        ping_at: now + Duration::from_secs(60),
        interest: Interest::READABLE,
        expected: VecDeque::new(),
        held: 0,
    }
}
