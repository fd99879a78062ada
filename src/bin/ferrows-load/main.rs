//! `ferrows-load`: a WebSocket load generator for any RFC 6455 server.
//!
//! Five modes, each printing a progress line per second (stderr) and a
//! summary ending in one `RESULT key=value ...` line (stdout):
//!
//! - `echo`: N connections each keep K timestamped messages in flight;
//!   reports messages/s, payload bytes/s and round-trip latency percentiles.
//! - `idle`: opens N connections at a bounded rate and holds them; with
//!   `--server-pid` (Linux) reports the server's resident memory per connection.
//! - `connect`: opens, handshakes and closes connections C at a time;
//!   reports handshakes/s and handshake latency.
//! - `fanout`: N subscribers of one topic and one publisher with K publishes
//!   unacknowledged (ferrows' JSON pub/sub protocol); reports deliveries/s,
//!   publishes/s, publish-to-receipt delay, and gaps in each subscriber's sequence.
//! - `room`: N members of a room send one message each per round, and a round
//!   ends when every member has all N; reports rounds/s, deliveries/s (N² per
//!   round) and round times.
//!
//! Run `ferrows-load --help` for the flags.
//!
//! Each connection is the crate's own client, a
//! [`ferrows::client::ClientConnection`] opened with one
//! [`ferrows::client::ClientBuilder`], on mio: one event loop per thread (one
//! thread unless `--threads`), each with its own slab of sessions and one
//! 64 KiB read buffer. Masking keys and nonces come from the OS random source.
#![forbid(unsafe_code)]
#![warn(missing_docs, clippy::missing_docs_in_private_items)]

mod args;
mod connect;
mod echo;
mod fanout;
mod help;
mod histogram;
mod idle;
mod leader;
mod pace;
mod payload;
mod replies;
mod report;
mod room;
mod rss;
mod session;
mod shared;
mod worker;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Instant;

use ferrows::client::Error;
use ferrows::proto::handshake::WsUrl;

use args::{Command, Mode, Options};
use shared::Shared;

fn main() -> ExitCode {
    env_logger::init();
    let code = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", help::HELP);
            0
        }
        Ok(Command::Run(opts)) => run(*opts),
        Ok(Command::Check(opts)) => {
            println!("ferrows-load: the flags are valid: {} mode against {}", opts.mode.name(), opts.url);
            0
        }
        Err(e) => {
            eprintln!("ferrows-load: {e}\n(see ferrows-load --help)");
            2
        }
    };
    ExitCode::from(code)
}

/// Runs the load `opts` asks for; returns the exit status.
fn run(mut opts: Options) -> u8 {
    let target = match resolve(&opts) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("ferrows-load: {e}");
            return 2;
        }
    };
    // More threads than connections would leave some idle.
    let units = if opts.mode == Mode::Connect { opts.concurrency } else { opts.sockets() };
    opts.threads = opts.threads.min(units);
    // Every connection draws its nonce and masking keys from the OS random source.
    if let Err(Error::Random(e)) = opts.client.endpoint_at(opts.ws_url.clone(), Instant::now()) {
        eprintln!("ferrows-load: the OS random source is not available: {e}");
        return 1;
    }
    warn_about_file_limit(&opts);

    let shared = Shared::default();
    watch_for_interrupt(&shared);
    eprintln!("ferrows-load {} -> {} ({target}), {} thread(s)", opts.mode.name(), opts.url, opts.threads);
    let result = match opts.mode {
        Mode::Echo => echo::run(&opts, target, &shared),
        Mode::Idle => idle::run(&opts, target, &shared),
        Mode::Connect => connect::run(&opts, target, &shared),
        Mode::Fanout => fanout::run(&opts, target, &shared),
        Mode::Room => room::run(&opts, target, &shared),
    };
    match result {
        Ok(code) => code as u8,
        Err(e) => {
            eprintln!("ferrows-load: {e}");
            1
        }
    }
}

/// The server's address: the URL's host resolved, in the family of the sources if any.
fn resolve(opts: &Options) -> Result<SocketAddr, String> {
    resolve_url(&opts.ws_url, &opts.sources).map_err(|e| format!("--url {}: {e}", opts.url))
}

/// An address of `url`'s host, of the family the source addresses need.
pub(crate) fn resolve_url(url: &WsUrl, sources: &[std::net::IpAddr]) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (url.host(), url.port())
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host()))?
        .collect();
    let wanted_v4 = sources.first().map(|ip| ip.is_ipv4());
    addrs.iter().copied().find(|addr| wanted_v4.is_none_or(|v4| addr.is_ipv4() == v4)).ok_or_else(|| match wanted_v4 {
        Some(v4) => format!("no {} address to reach from the given source addresses", if v4 { "IPv4" } else { "IPv6" }),
        None => format!("{} has no address", url.host()),
    })
}

/// Warns when the connections asked for exceed the open-file limit.
fn warn_about_file_limit(opts: &Options) {
    let needed = match opts.mode {
        Mode::Connect => opts.concurrency,
        _ => opts.sockets(),
    } as u64;
    if let Some(limit) = rss::open_file_limit() {
        // A few descriptors go to the poll, stdio and the like.
        if needed + 16 > limit {
            eprintln!(
                "warning: {needed} connections but the open file limit is {limit}: raise it first, e.g. `ulimit -n {}`",
                (needed + 1024).next_power_of_two()
            );
        }
    }
}

/// Makes the first Ctrl-C end the run early with a summary; a second one exits at once.
#[cfg(unix)]
fn watch_for_interrupt(shared: &Shared) {
    use signal_hook::consts::SIGINT;
    use std::sync::Arc;

    let flag = &shared.interrupted;
    // Registered first, so it sees the flag before the second handler sets it:
    // a second Ctrl-C exits at once with 130, as a shell expects.
    let registered = signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(flag))
        .and_then(|_| signal_hook::flag::register(SIGINT, Arc::clone(flag)));
    if let Err(e) = registered {
        eprintln!("warning: Ctrl-C will end the run without a summary ({e})");
    }
}

/// Ctrl-C ends the process without a summary where signals are not watched.
#[cfg(not(unix))]
fn watch_for_interrupt(_shared: &Shared) {}
