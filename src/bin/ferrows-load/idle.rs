//! Idle mode: open N connections, hold them, and (on Linux) weigh what they
//! cost the server.
//!
//! With `--send-once` each connection first sends one message and waits for
//! its echo, so that the server's per-connection state for messages (a
//! permessage-deflate compressor above all) exists when its memory is read.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use ferrows::client::{ClientConnection, ClientEvent};

use crate::args::Options;
use crate::leader::{Leader, RSS_SETTLE};
use crate::payload;
use crate::report::{conclude, print_closes_and_errors};
use crate::rss::vm_rss_kib;
use crate::session::{Handler, Opened};
use crate::shared::{Phase, Shared};
use crate::worker::{run_threads, Load, Plan, CLOSE_GRACE};

/// How long the server is left alone before its memory is first read.
const RSS_BEFORE_SETTLE: Duration = Duration::from_secs(1);

/// One thread's part of an idle run: it sends the first message if asked,
/// and otherwise only answers pings, which the connection does by itself.
#[derive(Debug)]
pub struct Idle<'a> {
    /// The text message each connection sends once it opens, if any.
    first: Option<String>,
    /// Where errors go.
    shared: &'a Shared,
}

impl<'a> Idle<'a> {
    /// A thread's part of an idle run per `opts`.
    pub fn new(opts: &Options, shared: &'a Shared) -> Self {
        Idle { first: opts.send_once.then(|| payload::json(opts.size)), shared }
    }
}

impl Handler for Idle<'_> {
    fn on_open(&mut self, conn: &mut ClientConnection, _slot: usize, _started: Instant, _now: Instant) -> Opened {
        let Some(first) = &self.first else {
            return Opened::Ready;
        };
        // A refusal means the connection is closing; waiting for the echo then
        // ends in a failure that says so.
        let _ = conn.send_text(first);
        Opened::AwaitReply
    }

    fn on_event(&mut self, _conn: &mut ClientConnection, _slot: usize, event: ClientEvent, _now: Instant) {
        let (len, kind) = match &event {
            ClientEvent::Text(text) => (text.len(), "text"),
            ClientEvent::Binary(data) => (data.len(), "binary"),
            _ => return,
        };
        let expected = self.first.as_ref().map(String::len);
        if kind != "text" || Some(len) != expected {
            let why = match expected {
                Some(size) => format!("expected a {size}-byte text echo, got a {len}-byte {kind} message"),
                None => format!("got a {len}-byte {kind} message on an idle connection"),
            };
            self.shared.error("echo mismatch", why);
        }
    }
}

impl Load for Idle<'_> {
    fn set_phase(&mut self, _phase: Phase) {}

    fn flush(&mut self, _shared: &Shared) {}
}

/// Runs idle mode and prints its summary; returns the exit status.
///
/// # Errors
///
/// A thread's event loop could not run.
pub fn run(opts: &Options, target: SocketAddr, shared: &Shared) -> io::Result<i32> {
    let rss_before = match opts.server_pid {
        Some(pid) => {
            eprintln!("letting the server settle for {} s, then reading its memory", RSS_BEFORE_SETTLE.as_secs());
            std::thread::sleep(RSS_BEFORE_SETTLE);
            match vm_rss_kib(pid) {
                Ok(kib) => Some(kib),
                Err(e) => {
                    eprintln!("ferrows-load: --server-pid {pid}: {e}");
                    return Ok(1);
                }
            }
        }
        None => None,
    };
    let leader = Leader::new(opts, CLOSE_GRACE, shared);
    let plan = |index| Plan::open_share(opts, index, 0);
    let (results, leader) = run_threads(opts, target, shared, leader, plan, |_, _| Idle::new(opts, shared))?;

    let clean = results.iter().map(|r| r.clean_closes).sum();
    let unclean = results.iter().map(|r| r.unclean_closes).sum();
    let (failed, errors) = (shared.failed.load(Relaxed), shared.errors.load(Relaxed));
    let open = leader.open_measured;

    println!();
    println!("idle {}: {} connections, {} thread(s)", opts.url, opts.connections, opts.threads);
    if opts.send_once {
        println!("  first      a {}-byte JSON-like text message per connection, open once echoed", opts.size);
    }
    println!(
        "  open       {open} held for {}, {} still open at the end; {failed} failed to open",
        leader.measured_words(),
        leader.open_at_end
    );
    let (mut before_field, mut after_field, mut per_conn_field) = ("na".to_owned(), "na".to_owned(), "na".to_owned());
    match (rss_before, &leader.rss_after) {
        (Some(before), Some(Ok(after))) => {
            before_field = before.to_string();
            after_field = after.to_string();
            let grown = (*after as i64 - before as i64) * 1024;
            let per_conn = if open > 0 { grown / open as i64 } else { 0 };
            per_conn_field = per_conn.to_string();
            println!(
                "  server RSS {before} KiB before, {after} KiB with {open} open ({} s after): {per_conn} bytes ({:.2} KiB) per connection",
                RSS_SETTLE.as_secs(),
                per_conn as f64 / 1024.0
            );
            if per_conn < 0 {
                println!("             (it shrank: the server reused memory freed earlier; measure on a fresh server)");
            }
        }
        (Some(before), Some(Err(e))) => {
            before_field = before.to_string();
            println!("  server RSS {before} KiB before; after: {e}");
            shared.error("server memory", e);
        }
        (Some(before), None) => println!("  server RSS {before} KiB before; not read after (the hold never began)"),
        _ => println!("  server RSS not measured (give --server-pid)"),
    }
    print_closes_and_errors(opts, shared, clean, unclean, errors);
    let send_once = if opts.send_once { opts.size } else { 0 };
    println!(
        "RESULT mode=idle connections={} open={open} failed={failed} send_once={send_once} deflate={} rss_before_kib={before_field} rss_after_kib={after_field} bytes_per_conn={per_conn_field} errors={}",
        opts.connections,
        shared.deflated.load(Relaxed),
        shared.errors.load(Relaxed)
    );
    Ok(conclude(shared, &opts.url))
}
