//! A TCP proxy that injects faults between a cluster node and its Redis:
//! std threads and `std::net` only, on a loopback port of its own (bound
//! to port 0, so never one another process holds). Each connection it
//! accepts gets its own connection to Redis and, per direction, a reader
//! thread that takes chunks as they come and a writer thread that forwards
//! them through the faults switched on at that moment:
//!
//! - a **delay**: a chunk goes out `delay` after it came in (a delay line,
//!   not a pause per chunk: the throughput stays, the latency grows);
//! - a **stall**: nothing goes out until a moment, the connections stay open;
//! - a **cut**: after N more bytes from Redis (all connections counted
//!   together), the connection those bytes travel on is closed on both
//!   sides, wherever in a reply the Nth byte falls;
//! - a **trickle**: one byte at a time, with a pause between bytes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How often idle threads look at the stop flag and the faults.
const TICK: Duration = Duration::from_millis(5);

/// The faults, shared by every connection and switched at run time.
#[derive(Default)]
struct Faults {
    stop: AtomicBool,
    /// Milliseconds a chunk waits before it goes out.
    delay_ms: AtomicU64,
    /// Nothing goes out before this moment.
    stall_until: Mutex<Option<Instant>>,
    /// Bytes from Redis still forwarded before a cut; `None`: no cut armed.
    cut_after: Mutex<Option<u64>>,
    /// Pause between two bytes, in microseconds; 0: whole chunks.
    trickle_us: AtomicU64,
    accepted: AtomicU64,
    cuts: AtomicU64,
    /// Both ends of every connection, to close them when the proxy goes.
    sockets: Mutex<Vec<TcpStream>>,
}

/// A fault-injecting proxy in front of `upstream`, stopped (its
/// connections closed) when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
}

/// Which way a chunk goes.
#[derive(Clone, Copy, PartialEq)]
enum Direction {
    ToRedis,
    FromRedis,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let faults = Arc::new(Faults::default());
        let shared = faults.clone();
        thread::spawn(move || accept(listener, upstream, shared));
        Proxy { addr, faults }
    }

    /// The URL a node is given for its Redis.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Every chunk, both ways, goes out `delay` after it came in.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Nothing is forwarded, either way, for `duration` from now.
    pub fn stall(&self, duration: Duration) {
        *self.faults.stall_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + duration);
    }

    /// After `bytes` more bytes from Redis, the connection they go on is
    /// closed on both sides.
    pub fn cut_after(&self, bytes: u64) {
        *self.faults.cut_after.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
    }

    /// One byte at a time, `pause` between two (`None`: whole chunks again).
    pub fn trickle(&self, pause: Option<Duration>) {
        let micros = pause.map_or(0, |p| p.as_micros().max(1) as u64);
        self.faults.trickle_us.store(micros, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.faults.accepted.load(Ordering::Relaxed)
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.faults.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.faults.stop.store(true, Ordering::Relaxed);
        for socket in self.faults.sockets.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

fn accept(listener: TcpListener, upstream: SocketAddr, faults: Arc<Faults>) {
    while !faults.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((node, _)) => {
                faults.accepted.fetch_add(1, Ordering::Relaxed);
                // A Redis that does not answer: the node sees its connection closed.
                let Ok(redis) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else { continue };
                if node.set_nonblocking(false).is_err() {
                    continue;
                }
                let _ = (node.set_nodelay(true), redis.set_nodelay(true));
                let (Ok(node_out), Ok(redis_out)) = (node.try_clone(), redis.try_clone()) else { continue };
                if let (Ok(a), Ok(b)) = (node.try_clone(), redis.try_clone()) {
                    faults.sockets.lock().unwrap_or_else(PoisonError::into_inner).extend([a, b]);
                }
                // Each writer closes both ends when its direction ends.
                pump(node, redis_out, Direction::ToRedis, faults.clone());
                pump(redis, node_out, Direction::FromRedis, faults.clone());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(TICK),
            Err(_) => thread::sleep(TICK),
        }
    }
}

/// Starts the reader and the writer of one direction.
fn pump(from: TcpStream, to: TcpStream, direction: Direction, faults: Arc<Faults>) {
    let (sender, chunks) = mpsc::channel::<(Instant, Vec<u8>)>();
    let from_end = from.try_clone().ok();
    thread::spawn(move || {
        let mut from = from;
        let mut buf = vec![0; 16 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send((Instant::now(), buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        forward(chunks, &to, direction, &faults);
        // This direction is over (an end closed, a cut, the proxy stopped): so is the other.
        let _ = to.shutdown(Shutdown::Both);
        if let Some(from) = from_end {
            let _ = from.shutdown(Shutdown::Both);
        }
    });
}

/// Writes the chunks out through the faults until the reader ends or a cut.
fn forward(chunks: Receiver<(Instant, Vec<u8>)>, mut to: &TcpStream, direction: Direction, faults: &Faults) {
    loop {
        let (came, chunk) = match chunks.recv_timeout(TICK) {
            Ok(chunk) => chunk,
            Err(RecvTimeoutError::Timeout) if !faults.stop.load(Ordering::Relaxed) => continue,
            Err(_) => return,
        };
        let mut sent = 0;
        while sent < chunk.len() {
            if faults.stop.load(Ordering::Relaxed) {
                return;
            }
            let stalled =
                faults.stall_until.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|t| Instant::now() < t);
            let due = came + Duration::from_millis(faults.delay_ms.load(Ordering::Relaxed));
            if stalled || Instant::now() < due {
                thread::sleep(TICK.min(due.saturating_duration_since(Instant::now())).max(Duration::from_millis(1)));
                continue;
            }
            let pause = faults.trickle_us.load(Ordering::Relaxed);
            let mut end = if pause > 0 { sent + 1 } else { chunk.len() };
            let mut cut = false;
            if direction == Direction::FromRedis {
                let mut armed = faults.cut_after.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(left) = armed.as_mut() {
                    let take = (end - sent).min(*left as usize);
                    end = sent + take;
                    *left -= take as u64;
                    if *left == 0 {
                        *armed = None;
                        cut = true;
                    }
                }
            }
            if to.write_all(&chunk[sent..end]).is_err() {
                return;
            }
            sent = end;
            if cut {
                faults.cuts.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if pause > 0 {
                thread::sleep(Duration::from_micros(pause));
            }
        }
    }
}
