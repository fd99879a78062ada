//! The `ferrows` server binary.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use ferrows::app::{App, AppConfig};
use ferrows::runtime::{Server, ServerConfig, ShutdownHandle};

const USAGE: &str = "\
ferrows: a WebSocket server

Usage: ferrows [--listen ADDR]... [--loops N] [--api-key KEY] [--no-deflate]
               [--deflate-no-context-takeover]

Options:
  --listen ADDR   address to listen on, repeatable   [default: 127.0.0.1:9001]
                  (env FERROWS_LISTEN, comma-separated)
  --loops N       event loops, one thread each        [default: available cores]
                  (env FERROWS_LOOPS)
  --api-key KEY   key POST /publish/{topic} requires as `Authorization: Bearer KEY`
                  (env FERROWS_API_KEY) [default: none: the publish API then
                  answers loopback clients only]
  --no-deflate    do not negotiate permessage-deflate [default: negotiate it]
  --deflate-no-context-takeover
                  reset compression state between messages in both
                  directions: no codec memory held per idle connection
  -h, --help      print this help
  -V, --version   print the version

Routes: GET / demo chat page; WebSocket /echo (echo), /rooms/{name} (a room:
every message goes to all members), /pubsub (the JSON pub/sub protocol);
POST /publish/{topic} (publish the body to a pub/sub topic). Logs go to stderr; set RUST_LOG=debug for
per-connection lines. Ctrl-C or SIGTERM stops the server cleanly.
";

struct Options {
    listen: Vec<SocketAddr>,
    loops: Option<usize>,
    deflate: bool,
    deflate_no_context_takeover: bool,
    api_key: Option<String>,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut listen = Vec::new();
    let mut loops = None;
    if let Ok(value) = std::env::var("FERROWS_LISTEN") {
        for part in value.split(',').filter(|p| !p.trim().is_empty()) {
            listen.push(parse_addr("FERROWS_LISTEN", part.trim())?);
        }
    }
    if let Ok(value) = std::env::var("FERROWS_LOOPS") {
        loops = Some(parse_loops("FERROWS_LOOPS", &value)?);
    }
    let mut flag_listen = Vec::new();
    let mut deflate = true;
    let mut api_key = std::env::var("FERROWS_API_KEY").ok().filter(|k| !k.is_empty());
    let mut deflate_no_context_takeover = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).ok_or(format!("{name} needs a value"));
        match name.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("ferrows {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--listen" => flag_listen.push(parse_addr("--listen", &value()?)?),
            "--loops" => loops = Some(parse_loops("--loops", &value()?)?),
            "--no-deflate" => deflate = false,
            "--api-key" => api_key = Some(value()?).filter(|k| !k.is_empty()),
            "--deflate-no-context-takeover" => deflate_no_context_takeover = true,
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    // Flags win over the environment.
    if !flag_listen.is_empty() {
        listen = flag_listen;
    }
    if listen.is_empty() {
        listen.push(SocketAddr::from(([127, 0, 0, 1], 9001)));
    }
    Ok(Some(Options { listen, loops, deflate, deflate_no_context_takeover, api_key }))
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| format!("{key}: {value:?} is not an address like 127.0.0.1:9001 or [::1]:9001"))
}

fn parse_loops(key: &str, value: &str) -> Result<usize, String> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{key}: {value:?} is not a positive whole number")),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let options = match parse_args() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferrows: {message}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Server::builder();
    for addr in &options.listen {
        builder = builder.listen(*addr);
    }
    if let Some(loops) = options.loops {
        builder = builder.loops(loops);
    }
    #[allow(unused_mut)]
    let mut config = ServerConfig::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate.enabled = options.deflate;
        config.deflate.server_no_context_takeover = options.deflate_no_context_takeover;
        config.deflate.client_no_context_takeover = options.deflate_no_context_takeover;
    }
    #[cfg(not(feature = "deflate"))]
    if options.deflate_no_context_takeover {
        log::warn!("built without the deflate feature: --deflate-no-context-takeover has no effect");
    }
    let _ = options.deflate;
    builder = builder.config(config);
    let mut app_config = AppConfig::default();
    app_config.api_key = options.api_key.clone();
    let app = App::new(app_config);
    let server = match builder.start(move |_| app.clone()) {
        Ok(server) => server,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs: Vec<String> = server.local_addrs().iter().map(|a| format!("http://{a}/")).collect();
    log::info!(
        "ferrows {} listening on {} (demo page at /, WebSocket /echo, /rooms/NAME, /pubsub)",
        env!("CARGO_PKG_VERSION"),
        addrs.join(", ")
    );
    if let Err(e) = stop_on_signals(server.shutdown_handle()) {
        log::warn!("cannot watch for signals: {e}");
    }
    match server.join() {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("stopped on error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Shuts the server down gracefully on SIGINT or SIGTERM.
#[cfg(unix)]
fn stop_on_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("ferrows-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal}: shutting down");
            handle.shutdown();
        }
    })?;
    Ok(())
}

/// Shuts the server down gracefully on Ctrl-C (polled: the platform has no signal pipe).
#[cfg(not(unix))]
fn stop_on_signals(handle: ShutdownHandle) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
    std::thread::Builder::new().name("ferrows-signals".into()).spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        log::info!("interrupted: shutting down");
        handle.shutdown();
    })?;
    Ok(())
}
