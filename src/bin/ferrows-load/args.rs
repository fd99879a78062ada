//! The command line: flags parsed by hand, checked against the mode they belong to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[cfg(feature = "deflate")]
use ferrows::proto::deflate::{client_offer, DeflateConfig};
use ferrows::proto::handshake::ClientRequest;

use crate::payload::Payload;

/// The help text printed by `--help`.
pub const HELP: &str = "\
ferrows-load: a WebSocket load generator (RFC 6455, plain ws://)

USAGE:
    ferrows-load <MODE> [OPTIONS]

MODES:
    echo       N connections each keep K messages in flight; every echoed copy
               gives a round-trip latency (the send time travels in the payload)
    idle       open N connections and hold them; with --server-pid, report the
               server's resident memory per connection (Linux)
    connect    handshakes per second: open, handshake, Close, wait for the
               server to close, again, with C at a time

COMMON OPTIONS:
    --url URL              server to load (default ws://127.0.0.1:9001/)
    --threads T            event loops, connections split across them (default 1)
    --sources A,B,...      source addresses to bind before connecting, round-robin
    --source-range A-B     IPv4 source addresses from A to B (e.g. 127.0.0.1-127.0.0.20),
                           to open more connections to one server port than one
                           address has ephemeral ports for
    --max-pending N        echo, idle: most connections in TCP connect or handshake
                           at once, all threads together (default 1000), so that
                           the server's accept backlog is not overrun
    --timeout SECS         give up on a connect plus handshake after SECS (default 10;
                           with --send-once, the first echo too)
    --protocol NAME        offer a subprotocol (repeatable)
    --header 'NAME: VALUE' add a request header, e.g. Origin (repeatable)
    --deflate              offer permessage-deflate (RFC 7692) with a 32 KiB window
                           both ways; the summary says on how many connections the
                           server accepted it
    --deflate-no-context-takeover
                           with --deflate: ask both ends to reset their compressor
                           after every message (less memory, less compression)
    -h, --help             print this help

ECHO OPTIONS:
    --connections N        connections (default 100)
    --in-flight K          messages in flight per connection (default 1)
    --size BYTES           payload size (default 16; at least 8 binary, 16 text)
    --binary | --text      message type (default binary)
    --payload KIND         what fills a message after its send time: pattern
                           (default; bytes 0..250 or digits 0..9 over and over) or
                           json (JSON-like records with varying numbers, which
                           compress the way API and chat traffic does)
    --warmup SECS          run unmeasured this long once connected (default 1)
    --duration SECS        then measure this long (default 10)

IDLE OPTIONS:
    --connections N        connections (default 100)
    --hold SECS            keep them open this long once all are open (default 10;
                           at least 2 with --server-pid)
    --server-pid PID       read the server's VmRSS from /proc/PID/status before
                           opening (after 1 s) and once all are open (after 2 s);
                           measure on a freshly started server
    --send-once            once a connection opens, send it one JSON-like text
                           message and count it open only when the echo is back
                           (the server must echo); with --deflate the server has
                           then built its compression state before its memory is
                           read
    --size BYTES           with --send-once: the message size (default 1024)

CONNECT OPTIONS:
    --concurrency C        connections in progress at once (default 50)
    --warmup SECS          run unmeasured this long first (default 1)
    --duration SECS        then measure this long (default 10)

SECS may be fractional (0.5). Progress goes to stderr every second; the summary
goes to stdout and ends with one line for scripts:
    RESULT mode=echo connections=.. size=.. msgs_per_sec=.. bytes_per_sec=.. p50_us=.. ...
msgs_per_sec and bytes_per_sec count echoes received (payload bytes, one way);
latencies are in microseconds; bytes_per_conn is the server's RSS growth per
open connection; deflate is how many connections use permessage-deflate (0
without --deflate). The Close that ends each connection must be answered within 2 s.

EXIT STATUS:
    0 the run completed without errors
    1 nothing could connect, or errors occurred (they are listed)
    2 the command line is wrong

EXAMPLES:
    ferrows-load echo --url ws://127.0.0.1:9001/ --connections 100 --in-flight 4 --size 64
    ferrows-load echo --text --payload json --size 1024 --deflate
    ferrows-load idle --connections 2000 --send-once --deflate --server-pid 4242
    ferrows-load idle --connections 50000 --source-range 127.0.0.1-127.0.0.4 --server-pid 4242
    ferrows-load connect --concurrency 50 --duration 5
";

/// What the tool measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Round trips of echoed messages.
    Echo,
    /// Idle connections, and the server's memory for them.
    Idle,
    /// Handshakes per second.
    Connect,
}

impl Mode {
    /// The mode's name on the command line and in the RESULT line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Connect => "connect",
        }
    }
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to measure.
    pub mode: Mode,
    /// The server URL as given.
    pub url: String,
    /// The opening handshake every connection sends (nonce aside).
    pub request: ClientRequest,
    /// Connections to open (echo, idle).
    pub connections: usize,
    /// Event loops.
    pub threads: usize,
    /// Source addresses to bind, round-robin; empty to let the OS choose.
    pub sources: Vec<IpAddr>,
    /// Most connections in connect or handshake at once, all threads together.
    pub max_pending: usize,
    /// Limit on connect plus handshake.
    pub timeout: Duration,
    /// Messages in flight per connection (echo).
    pub in_flight: usize,
    /// Payload bytes per message (echo; idle with `send_once`).
    pub size: usize,
    /// Text messages rather than binary (echo).
    pub text: bool,
    /// What fills a message after its send time (echo).
    pub payload: Payload,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// With `deflate`: both ends reset their compressor after every message.
    pub deflate_no_context_takeover: bool,
    /// Send one message on each new connection and wait for its echo (idle).
    pub send_once: bool,
    /// Unmeasured time before measuring (echo, connect).
    pub warmup: Duration,
    /// Measured time (echo, connect).
    pub duration: Duration,
    /// How long all connections are held open (idle).
    pub hold: Duration,
    /// The server whose memory is read (idle).
    pub server_pid: Option<u32>,
    /// Connections in progress at once (connect).
    pub concurrency: usize,
}

impl Options {
    /// The permessage-deflate settings every connection offers and checks the
    /// server's answer against; `None` without `--deflate`.
    #[cfg(feature = "deflate")]
    pub fn deflate_config(&self) -> Option<DeflateConfig> {
        self.deflate.then(|| {
            let mut config = DeflateConfig::default();
            // Asking the server to reset too (RFC 7692 §7.1.1.1) is what
            // makes its per-connection compression memory small.
            config.client_no_context_takeover = self.deflate_no_context_takeover;
            config.server_no_context_takeover = self.deflate_no_context_takeover;
            config
        })
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Print the help and exit.
    Help,
    /// Run a load.
    Run(Box<Options>),
}

/// A command line that cannot be run; the message names the flag at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds an [`ArgError`] from format arguments.
macro_rules! arg_error {
    ($($arg:tt)*) => { ArgError(format!($($arg)*)) };
}

/// The least payload that holds the send timestamp: 8 bytes binary, 16 digits text.
pub fn min_size(text: bool) -> usize {
    if text {
        16
    } else {
        8
    }
}

/// The largest payload accepted for `--size` (the protocol core's default message limit).
pub const MAX_SIZE: usize = 16 << 20;

/// The size of the message `--send-once` sends unless `--size` says otherwise.
pub const SEND_ONCE_SIZE: usize = 1024;

/// Which modes accept a flag; `None` for a flag nobody knows.
fn modes_of(flag: &str) -> Option<&'static [Mode]> {
    const ALL: &[Mode] = &[Mode::Echo, Mode::Idle, Mode::Connect];
    Some(match flag {
        "--url" | "--threads" | "--sources" | "--source-range" | "--max-pending" | "--timeout" | "--protocol"
        | "--header" => ALL,
        "--deflate" | "--deflate-no-context-takeover" => ALL,
        "--connections" | "--size" => &[Mode::Echo, Mode::Idle],
        "--in-flight" | "--binary" | "--text" | "--payload" => &[Mode::Echo],
        "--warmup" | "--duration" => &[Mode::Echo, Mode::Connect],
        "--hold" | "--server-pid" | "--send-once" => &[Mode::Idle],
        "--concurrency" => &[Mode::Connect],
        _ => return None,
    })
}

/// Whether a flag is a switch (takes no value).
fn is_switch(flag: &str) -> bool {
    matches!(flag, "--binary" | "--text" | "--deflate" | "--deflate-no-context-takeover" | "--send-once")
}

/// Parses the arguments after the program name.
///
/// # Errors
///
/// An unknown mode or flag, a flag of another mode, a missing or bad value.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ArgError> {
    let mut args = args.into_iter();
    let mut mode = None;
    let mut opts = Options {
        mode: Mode::Echo,
        url: "ws://127.0.0.1:9001/".to_owned(),
        // Replaced below once the URL is known; this one always parses.
        request: ClientRequest::new("ws://127.0.0.1:9001/").map_err(|e| arg_error!("{e}"))?,
        connections: 100,
        threads: 1,
        sources: Vec::new(),
        max_pending: 1000,
        timeout: Duration::from_secs(10),
        in_flight: 1,
        size: 16,
        text: false,
        payload: Payload::Pattern,
        deflate: false,
        deflate_no_context_takeover: false,
        send_once: false,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(10),
        hold: Duration::from_secs(10),
        server_pid: None,
        concurrency: 50,
    };
    let mut protocols = Vec::new();
    let mut headers = Vec::new();
    let mut seen_type: Option<&'static str> = None;
    let mut seen_sources = None;
    let mut size = None;

    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if !arg.starts_with('-') {
            if mode.is_some() {
                return Err(arg_error!("unexpected argument {arg:?} (the mode is given once, first)"));
            }
            mode = Some(match arg.as_str() {
                "echo" => Mode::Echo,
                "idle" => Mode::Idle,
                "connect" => Mode::Connect,
                _ => return Err(arg_error!("unknown mode {arg:?}: expected echo, idle or connect")),
            });
            continue;
        }
        let Some(current) = mode else {
            return Err(arg_error!("{arg}: the mode (echo, idle or connect) comes first"));
        };
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let Some(modes) = modes_of(&flag) else {
            return Err(arg_error!("unknown flag {flag} (see --help)"));
        };
        if !modes.contains(&current) {
            return Err(arg_error!("{flag} does not apply to {} mode", current.name()));
        }
        if is_switch(&flag) {
            if inline.is_some() {
                return Err(arg_error!("{flag} takes no value"));
            }
            match flag.as_str() {
                "--deflate" => opts.deflate = true,
                "--deflate-no-context-takeover" => opts.deflate_no_context_takeover = true,
                "--send-once" => opts.send_once = true,
                _ => {
                    let name = if flag == "--text" { "--text" } else { "--binary" };
                    if let Some(other) = seen_type.filter(|other| *other != name) {
                        return Err(arg_error!("{flag} conflicts with {other}"));
                    }
                    seen_type = Some(name);
                    opts.text = flag == "--text";
                }
            }
            continue;
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(arg_error!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--url" => opts.url = value,
            "--threads" => opts.threads = positive(&flag, &value)?,
            "--sources" | "--source-range" => {
                if let Some(other) = seen_sources.replace(flag.clone()) {
                    return Err(arg_error!("{flag} conflicts with {other}: give the source addresses once"));
                }
                opts.sources =
                    if flag == "--sources" { parse_sources(&flag, &value)? } else { parse_range(&flag, &value)? };
            }
            "--max-pending" => opts.max_pending = positive(&flag, &value)?,
            "--timeout" => opts.timeout = seconds(&flag, &value, false)?,
            "--protocol" => protocols.push(value),
            "--header" => {
                let Some((name, field)) = value.split_once(':') else {
                    return Err(arg_error!("{flag}: expected 'NAME: VALUE', got {value:?}"));
                };
                headers.push((name.trim().to_owned(), field.trim().to_owned()));
            }
            "--connections" => opts.connections = positive(&flag, &value)?,
            "--in-flight" => opts.in_flight = positive(&flag, &value)?,
            "--size" => size = Some(number(&flag, &value)?),
            "--payload" => {
                opts.payload = Payload::from_name(value.trim())
                    .ok_or_else(|| arg_error!("{flag}: unknown payload {value:?}: expected pattern or json"))?;
            }
            "--warmup" => opts.warmup = seconds(&flag, &value, true)?,
            "--duration" => opts.duration = seconds(&flag, &value, false)?,
            "--hold" => opts.hold = seconds(&flag, &value, true)?,
            "--server-pid" => opts.server_pid = Some(positive(&flag, &value)?),
            "--concurrency" => opts.concurrency = positive(&flag, &value)?,
            _ => return Err(arg_error!("unknown flag {flag} (see --help)")),
        }
    }

    let Some(mode) = mode else {
        return Err(arg_error!("missing mode: echo, idle or connect (see --help)"));
    };
    opts.mode = mode;
    if mode == Mode::Idle {
        if size.is_some() && !opts.send_once {
            return Err(arg_error!("--size applies to idle mode only with --send-once"));
        }
        opts.size = size.unwrap_or(SEND_ONCE_SIZE);
        if opts.send_once && !(1..=MAX_SIZE).contains(&opts.size) {
            return Err(arg_error!("--size {} out of range: 1..={MAX_SIZE} bytes", opts.size));
        }
    } else if let Some(size) = size {
        opts.size = size;
    }
    if mode == Mode::Echo && !(min_size(opts.text)..=MAX_SIZE).contains(&opts.size) {
        let kind = if opts.text { "text" } else { "binary" };
        return Err(arg_error!(
            "--size {} out of range: a {kind} message carries its send time, so {}..={MAX_SIZE} bytes",
            opts.size,
            min_size(opts.text)
        ));
    }
    if opts.server_pid.is_some() && !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(arg_error!("--server-pid reads /proc/PID/status, which only Linux has"));
    }
    let mut request = ClientRequest::new(&opts.url).map_err(|e| arg_error!("--url {}: {e}", opts.url))?;
    if request.url().is_secure() {
        return Err(arg_error!("--url {}: wss:// (TLS) is not supported; use ws://", opts.url));
    }
    for protocol in protocols {
        request = request.protocol(protocol);
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if opts.deflate_no_context_takeover && !opts.deflate {
        return Err(arg_error!("--deflate-no-context-takeover needs --deflate"));
    }
    #[cfg(feature = "deflate")]
    if let Some(config) = opts.deflate_config() {
        request = request.extensions(client_offer(&config));
    }
    #[cfg(not(feature = "deflate"))]
    if opts.deflate {
        return Err(arg_error!(
            "--deflate: this ferrows-load was built without permessage-deflate (cargo feature `deflate`)"
        ));
    }
    // Encoding once here turns a bad --protocol or --header into a usage error.
    request.encode(&[0; 16], &mut Vec::new()).map_err(|e| arg_error!("--protocol/--header: {e}"))?;
    opts.request = request;
    Ok(Command::Run(Box::new(opts)))
}

/// A whole number.
fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ArgError> {
    value.trim().parse().map_err(|_| arg_error!("{flag}: {value:?} is not a whole number"))
}

/// A whole number above zero.
fn positive<T: std::str::FromStr + Default + PartialEq>(flag: &str, value: &str) -> Result<T, ArgError> {
    let n: T = number(flag, value)?;
    if n == T::default() {
        return Err(arg_error!("{flag} must be at least 1"));
    }
    Ok(n)
}

/// Seconds, fractional allowed; zero only where `zero_ok`.
fn seconds(flag: &str, value: &str, zero_ok: bool) -> Result<Duration, ArgError> {
    let secs: f64 = value.trim().parse().map_err(|_| arg_error!("{flag}: {value:?} is not a number of seconds"))?;
    // A day is far beyond any sensible run; the bound keeps Instant arithmetic safe.
    if !(0.0..=86_400.0).contains(&secs) || (secs == 0.0 && !zero_ok) {
        let least = if zero_ok { "0" } else { "above 0" };
        return Err(arg_error!("{flag}: {value} seconds is out of range ({least} up to 86400)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `A,B,C`: addresses of one family.
fn parse_sources(flag: &str, value: &str) -> Result<Vec<IpAddr>, ArgError> {
    let sources = value
        .split(',')
        .map(|part| part.trim().parse::<IpAddr>().map_err(|_| arg_error!("{flag}: {part:?} is not an IP address")))
        .collect::<Result<Vec<_>, _>>()?;
    if sources.iter().any(|ip| ip.is_ipv4() != sources[0].is_ipv4()) {
        return Err(arg_error!("{flag}: mixes IPv4 and IPv6 addresses"));
    }
    Ok(sources)
}

/// `A-B`: IPv4 addresses from A to B inclusive.
fn parse_range(flag: &str, value: &str) -> Result<Vec<IpAddr>, ArgError> {
    let Some((first, last)) = value.split_once('-') else {
        return Err(arg_error!("{flag}: expected FIRST-LAST, e.g. 127.0.0.1-127.0.0.20"));
    };
    let parse = |part: &str| -> Result<u32, ArgError> {
        part.trim()
            .parse::<Ipv4Addr>()
            .map(u32::from)
            .map_err(|_| arg_error!("{flag}: {part:?} is not an IPv4 address"))
    };
    let (first, last) = (parse(first)?, parse(last)?);
    if first > last {
        return Err(arg_error!("{flag}: {value} runs backwards"));
    }
    if last - first >= 1 << 16 {
        return Err(arg_error!("{flag}: {value} holds more than 65536 addresses"));
    }
    Ok((first..=last).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Command, ArgError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    fn options(line: &str) -> Options {
        match parse_line(line) {
            Ok(Command::Run(opts)) => *opts,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_values() {
        let opts = options("echo");
        assert_eq!((opts.connections, opts.in_flight, opts.size, opts.text), (100, 1, 16, false));
        assert_eq!((opts.duration, opts.warmup), (Duration::from_secs(10), Duration::from_secs(1)));
        let opts = options("echo --text --size=32 --in-flight 4 --duration 0.5 --url ws://localhost:9/x");
        assert_eq!((opts.text, opts.size, opts.in_flight), (true, 32, 4));
        assert_eq!(opts.duration, Duration::from_millis(500));
        assert_eq!(opts.request.url().port(), 9);
        let opts = options("idle --source-range 127.0.0.1-127.0.0.3 --server-pid 7");
        assert_eq!(opts.sources.len(), 3);
        assert_eq!(opts.server_pid, Some(7));
        assert_eq!(options("connect --concurrency 3").concurrency, 3);
        let opts = options("echo --text --payload json --size 1024");
        assert_eq!((opts.payload, opts.size, opts.deflate), (Payload::Json, 1024, false));
        assert_eq!(options("echo").payload, Payload::Pattern);
        let opts = options("idle --send-once");
        assert!(opts.send_once);
        assert_eq!(opts.size, SEND_ONCE_SIZE);
        assert_eq!(options("idle --send-once --size 100").size, 100);
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_offer() {
        let encoded = |opts: &Options| {
            let mut out = Vec::new();
            opts.request.encode(&[0; 16], &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let opts = options("echo");
        assert!(opts.deflate_config().is_none());
        assert!(!encoded(&opts).contains("Sec-WebSocket-Extensions"));
        for mode in ["echo", "idle", "connect"] {
            let opts = options(&format!("{mode} --deflate"));
            assert_eq!(opts.deflate_config(), Some(DeflateConfig::default()));
            assert!(encoded(&opts).contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
        }
        let opts = options("idle --deflate --deflate-no-context-takeover");
        let config = opts.deflate_config().unwrap();
        assert!(config.client_no_context_takeover && config.server_no_context_takeover);
        assert!(encoded(&opts).contains("server_no_context_takeover; client_no_context_takeover"));
    }

    #[cfg(not(feature = "deflate"))]
    #[test]
    fn deflate_needs_the_feature() {
        match parse_line("echo --deflate") {
            Err(ArgError(message)) => assert!(message.contains("without permessage-deflate"), "{message}"),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let cases = [
            ("", "missing mode"),
            ("bench", "unknown mode"),
            ("--size 3", "comes first"),
            ("echo --nope 1", "--nope"),
            ("echo --hold 3", "--hold does not apply to echo"),
            ("connect --size 3", "--size does not apply to connect"),
            ("echo --size", "--size needs a value"),
            ("echo --size 4", "--size 4 out of range"),
            ("echo --text --size 8", "--size 8 out of range"),
            ("echo --connections 0", "--connections must be at least 1"),
            ("echo --connections x", "--connections"),
            ("echo --duration 0", "--duration"),
            ("echo --duration -1", "--duration"),
            ("echo --binary --text", "--text conflicts with --binary"),
            ("idle --sources 127.0.0.1,::1", "--sources: mixes"),
            ("idle --source-range 127.0.0.9-127.0.0.1", "backwards"),
            ("idle --sources 1.2.3.4 --source-range 1.2.3.4-1.2.3.5", "--source-range conflicts"),
            ("echo --url http://h/", "--url"),
            ("echo --url wss://h/", "wss://"),
            ("echo --header NoColon", "--header"),
            ("echo --protocol a,b", "--protocol"),
            ("echo --payload random", "--payload: unknown payload"),
            ("idle --payload json", "--payload does not apply to idle"),
            ("echo --send-once", "--send-once does not apply to echo"),
            ("idle --size 100", "--size applies to idle mode only with --send-once"),
            ("idle --send-once --size 0", "--size 0 out of range"),
            ("echo --deflate=1", "--deflate takes no value"),
            ("echo --deflate-no-context-takeover", "needs --deflate"),
        ];
        for (line, expected) in cases {
            match parse_line(line) {
                Err(ArgError(message)) => assert!(message.contains(expected), "{line}: {message}"),
                Ok(other) => panic!("{line}: accepted as {other:?}"),
            }
        }
    }

    #[test]
    fn help_wins() {
        assert!(matches!(parse_line("echo --size 1 --help"), Ok(Command::Help)));
        assert!(matches!(parse_line("-h"), Ok(Command::Help)));
    }
}
