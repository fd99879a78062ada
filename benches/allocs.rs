//! Heap allocations per message on the server's hot paths, counted by a
//! counting global allocator around the server and its clients in one
//! process.
//!
//! Run with `cargo bench --bench allocs`. It starts the binary's application
//! (one loop) on a free loopback port and, after a warm-up, counts every
//! allocation in the process while it drives:
//!
//! - **echo**: `/echo`, 16-byte binary messages, 16 in flight;
//! - **room**: `/rooms/allocs` with 100 members, 16-byte text messages from one of them;
//! - **pubsub**: 100 `/pubsub` subscribers of one topic, a publisher sending
//!   `{"op":"publish",...}` requests (each answered with an ack).
//!
//! The clients send pre-encoded frames and count the replies from frame
//! headers into buffers on their stacks: they allocate nothing while
//! measured, so what is counted is the server's. The figures are
//! allocations per message in (and per delivery, where a message goes to many).
//! `--check` exits 1 when the echo or room path allocates 0.01 or more per message.

#![forbid(unsafe_code)]

#[path = "../tests/support/socket.rs"]
mod socket;

use std::alloc::System;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrows::app::{App, AppConfig};
use ferrows::proto::frame::OpCode;
use socket::{client_frame, quick_config, RawClient, TestServer};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The most allocations per message the `--check` paths may make.
const TARGET: f64 = 0.01;
/// How long to wait for the replies to one batch before the run is declared stuck.
const STUCK: Duration = Duration::from_secs(20);

/// What one path measured.
struct Figure {
    path: &'static str,
    messages: u64,
    deliveries: u64,
    allocations: usize,
    bytes: usize,
}

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let app = App::new(AppConfig::default());
    let server = TestServer::start(quick_config(), 1, move |_| app.clone());
    let figures = [echo(&server), room(&server), pubsub(&server)];
    println!("allocations per message, server and clients in one process (clients allocate none)");
    println!();
    println!("| path | messages in | deliveries | allocations | per message | per delivery | bytes per message |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut failed = false;
    for f in &figures {
        let per_message = f.allocations as f64 / f.messages as f64;
        let per_delivery = f.allocations as f64 / f.deliveries as f64;
        println!(
            "| {} | {} | {} | {} | {per_message:.4} | {per_delivery:.5} | {:.1} |",
            f.path,
            f.messages,
            f.deliveries,
            f.allocations,
            f.bytes as f64 / f.messages as f64
        );
        println!(
            "CELL path={} messages={} deliveries={} allocations={} per_message={per_message:.6}",
            f.path, f.messages, f.deliveries, f.allocations
        );
        if per_message >= TARGET {
            failed = true;
        }
    }
    server.stop();
    if check && failed {
        eprintln!("allocs: a path allocates {TARGET} or more per message");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `/echo`: batches of 16 messages, each batch answered before the next.
fn echo(server: &TestServer) -> Figure {
    const IN_FLIGHT: u64 = 16;
    let client = RawClient::open(server.addr, "/echo");
    let mut stream = client.stream;
    let batch: Vec<u8> = (0..IN_FLIGHT).flat_map(|_| client_frame(true, OpCode::Binary, &[7; 16])).collect();
    let mut counter = FrameCounter::default();
    let mut run = |stream: &mut TcpStream, batches: u64| {
        for _ in 0..batches {
            stream.write_all(&batch).expect("send a batch");
            counter.read_until(stream, IN_FLIGHT);
        }
    };
    run(&mut stream, 2_000);
    let region = Region::new(GLOBAL);
    let batches = 20_000;
    run(&mut stream, batches);
    let stats = region.change();
    let messages = batches * IN_FLIGHT;
    Figure {
        path: "echo",
        messages,
        deliveries: messages,
        allocations: stats.allocations,
        bytes: stats.bytes_allocated,
    }
}

/// `/rooms/allocs`: one member sends, all 100 (the sender too) receive.
fn room(server: &TestServer) -> Figure {
    let members: Vec<TcpStream> = (0..100).map(|_| RawClient::open(server.addr, "/rooms/allocs").stream).collect();
    let sender = members[0].try_clone().expect("a second handle on the socket");
    let received = count_in_threads(members);
    fan_out("room", sender, b"0123456789abcdef", &received, None)
}

/// `/pubsub`: 100 subscribers of `allocs`, one publisher whose requests are acked.
fn pubsub(server: &TestServer) -> Figure {
    let subscribe = br#"{"op":"subscribe","topics":["allocs"]}"#;
    let subscribers: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut client = RawClient::open(server.addr, "/pubsub");
            client.send_frame(true, OpCode::Text, subscribe);
            assert_eq!(client.next_frame().opcode, OpCode::Text, "the subscribe ack");
            client.stream
        })
        .collect();
    let publisher = RawClient::open(server.addr, "/pubsub").stream;
    let sender = publisher.try_clone().expect("a second handle on the socket");
    let received = count_in_threads(subscribers);
    let acks = count_in_threads(vec![publisher]);
    let request = br#"{"op":"publish","topic":"allocs","data":"0123456789abcdef"}"#;
    fan_out("pubsub", sender, request, &received, Some(&acks))
}

/// Sends `text` in batches of 8 from `sender`, each batch delivered to all
/// 100 receivers (and, with `acks`, acknowledged) before the next; counts
/// the allocations of 2,000 batches after 200 of warm-up.
fn fan_out(
    path: &'static str,
    mut sender: TcpStream,
    text: &[u8],
    received: &AtomicU64,
    acks: Option<&AtomicU64>,
) -> Figure {
    const BATCH: u64 = 8;
    const RECEIVERS: u64 = 100;
    let frame: Vec<u8> = (0..BATCH).flat_map(|_| client_frame(true, OpCode::Text, text)).collect();
    let mut sent = 0;
    let mut run = |sent: &mut u64, batches: u64| {
        for _ in 0..batches {
            sender.write_all(&frame).expect("send a batch");
            *sent += BATCH;
            wait_for(received, *sent * RECEIVERS);
            if let Some(acks) = acks {
                wait_for(acks, *sent);
            }
        }
    };
    run(&mut sent, 200);
    let before = sent;
    let region = Region::new(GLOBAL);
    run(&mut sent, 2_000);
    let stats = region.change();
    let messages = sent - before;
    Figure {
        path,
        messages,
        deliveries: messages * RECEIVERS,
        allocations: stats.allocations,
        bytes: stats.bytes_allocated,
    }
}

/// Counts the frames arriving on each stream, on a thread of its own, into one counter.
fn count_in_threads(streams: Vec<TcpStream>) -> Arc<AtomicU64> {
    let total = Arc::new(AtomicU64::new(0));
    for mut stream in streams {
        let total = total.clone();
        std::thread::spawn(move || {
            let mut counter = FrameCounter::default();
            let mut buf = [0u8; 16 << 10];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                let frames = counter.feed(&buf[..n]);
                total.fetch_add(frames, Ordering::Relaxed);
            }
        });
    }
    total
}

fn wait_for(counter: &AtomicU64, target: u64) {
    let start = Instant::now();
    while counter.load(Ordering::Relaxed) < target {
        assert!(start.elapsed() < STUCK, "replies stopped at {} of {target}", counter.load(Ordering::Relaxed));
        std::thread::yield_now();
    }
}

/// Counts server frames in a byte stream from their headers, allocating nothing.
#[derive(Default)]
struct FrameCounter {
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// The start of a header cut by the end of a read.
    head: [u8; 10],
    head_len: usize,
}

impl FrameCounter {
    /// Reads from `stream` until `frames` whole frames arrived.
    fn read_until(&mut self, stream: &mut TcpStream, frames: u64) {
        let mut buf = [0u8; 16 << 10];
        let mut seen = 0;
        while seen < frames {
            let n = stream.read(&mut buf).expect("read the replies");
            assert!(n > 0, "the server closed the connection");
            seen += self.feed(&buf[..n]);
        }
        assert_eq!(seen, frames, "more replies than messages");
    }

    /// Consumes `bytes`; returns the frames completed in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut frames = 0;
        loop {
            let skipped = usize::try_from(self.skip).unwrap_or(usize::MAX).min(bytes.len());
            bytes = &bytes[skipped..];
            self.skip -= skipped as u64;
            if self.skip > 0 || bytes.is_empty() {
                return frames;
            }
            let take = (10 - self.head_len).min(bytes.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&bytes[..take]);
            let have = self.head_len + take;
            let Some((header, len)) = parse_header(&self.head[..have]) else {
                self.head_len = have;
                return frames;
            };
            // The header's bytes that came from this read.
            bytes = &bytes[header - self.head_len..];
            self.head_len = 0;
            self.skip = len;
            frames += 1;
        }
    }
}

/// The header length and payload length of an unmasked frame starting `bytes`, if it is all there.
fn parse_header(bytes: &[u8]) -> Option<(usize, u64)> {
    let b1 = *bytes.get(1)?;
    match b1 & 0x7f {
        126 => Some((4, u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)))),
        127 => Some((10, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?))),
        n => Some((2, u64::from(n))),
    }
}
