//! What the peer echo servers share: the command line.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

/// The address a peer listens on unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9002";

/// The `--listen ADDR` of the command line (`--listen=ADDR` too), or [`DEFAULT_LISTEN`].
///
/// Exits with status 2 and a message on anything else.
pub fn listen_addr(program: &str) -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut listen = DEFAULT_LISTEN.to_owned();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--listen" => args.next(),
            "-h" | "--help" => {
                println!("{program}: a WebSocket echo server for ferrows's comparison bench\n");
                println!("usage: {program} [--listen ADDR]  (default {DEFAULT_LISTEN})");
                std::process::exit(0);
            }
            _ => arg.strip_prefix("--listen=").map(str::to_owned),
        };
        match value {
            Some(value) => listen = value,
            None => usage_error(program, &format!("unexpected argument {arg:?}")),
        }
    }
    listen.parse().unwrap_or_else(|_| usage_error(program, &format!("--listen: {listen:?} is not an address")))
}

/// Prints `message` and exits with status 2.
fn usage_error(program: &str, message: &str) -> ! {
    eprintln!("{program}: {message} (usage: {program} [--listen ADDR])");
    std::process::exit(2)
}
