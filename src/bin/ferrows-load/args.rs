//! The command line: flags parsed by hand, checked against the mode they belong to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrows::client::{ClientBuilder, Endpoint, Error};
#[cfg(feature = "deflate")]
use ferrows::proto::deflate::DeflateConfig;
use ferrows::proto::handshake::WsUrl;
use ferrows::proto::Config;

use crate::payload::Payload;
use crate::{fanout, room};

/// What the tool measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Round trips of echoed messages.
    Echo,
    /// Idle connections, and the server's memory for them.
    Idle,
    /// Handshakes per second.
    Connect,
    /// One publisher, N subscribers of its topic.
    Fanout,
    /// N members of a room, each sending one message per round.
    Room,
}

impl Mode {
    /// The mode's name on the command line and in the RESULT line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Connect => "connect",
            Mode::Fanout => "fanout",
            Mode::Room => "room",
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
    /// The server URL, parsed.
    pub ws_url: WsUrl,
    /// What every connection offers in its opening handshake, and its protocol limits.
    pub client: ClientBuilder,
    /// Fanout: where the publisher connects, when not to `url` (another node
    /// of a cluster, say).
    pub publisher_url: Option<WsUrl>,
    /// For `wss://`: the CA certificates (PEM) to verify the server against;
    /// `None`: any certificate is taken.
    pub ca: Option<std::path::PathBuf>,
    /// Connections to open (echo, idle); subscribers (fanout); members (room).
    pub connections: usize,
    /// Event loops.
    pub threads: usize,
    /// Source addresses to bind, round-robin; empty to let the OS choose.
    pub sources: Vec<IpAddr>,
    /// Most connections in connect or handshake at once, all threads together.
    pub max_pending: usize,
    /// Limit on connect plus handshake.
    pub timeout: Duration,
    /// Messages in flight per connection (echo); publishes awaiting their ack (fanout).
    pub in_flight: usize,
    /// Payload bytes per message (echo, room; idle with `send_once`; fanout: of `data`).
    pub size: usize,
    /// Text messages rather than binary (echo).
    pub text: bool,
    /// What fills a message after its send time (echo).
    pub payload: Payload,
    /// Every message built, sent, parsed and checked by the library's
    /// client and stamped with its send time, rather than the fast path of
    /// pre-encoded frames (echo).
    pub every_message: bool,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// With `deflate`: both ends reset their compressor after every message.
    pub deflate_no_context_takeover: bool,
    /// Send one message on each new connection and wait for its echo (idle).
    pub send_once: bool,
    /// Unmeasured time before measuring (echo, connect, fanout, room).
    pub warmup: Duration,
    /// Measured time (echo, connect, fanout, room unless `rounds`).
    pub duration: Duration,
    /// Rounds to measure (room), instead of `duration`.
    pub rounds: Option<u64>,
    /// How long all connections are held open (idle).
    pub hold: Duration,
    /// The server whose memory is read (idle).
    pub server_pid: Option<u32>,
    /// Connections in progress at once (connect).
    pub concurrency: usize,
    /// Sends per second instead of as fast as replies allow: messages per
    /// connection (echo), publishes (fanout), rounds (room).
    pub rate: Option<f64>,
}

impl Options {
    /// How many connections the run opens: the subscribers and the publisher
    /// in fanout mode, the connections or members otherwise (connect mode
    /// opens `concurrency` at a time instead).
    pub fn sockets(&self) -> usize {
        match self.mode {
            Mode::Fanout => self.connections + 1,
            _ => self.connections,
        }
    }

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
    /// Only check the flags (`--check`): print the run and exit.
    Check(Box<Options>),
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

/// The modes, as listed in messages.
const MODES: &str = "echo, idle, connect, fanout or room";

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

/// Bytes a server may add around a payload it relays.
const ENVELOPE_SLACK: usize = 4096;

/// Which modes accept a flag; `None` for a flag nobody knows.
fn modes_of(flag: &str) -> Option<&'static [Mode]> {
    const ALL: &[Mode] = &[Mode::Echo, Mode::Idle, Mode::Connect, Mode::Fanout, Mode::Room];
    Some(match flag {
        "--url" | "--threads" | "--sources" | "--source-range" | "--max-pending" | "--timeout" | "--protocol"
        | "--header" | "--ca" => ALL,
        "--deflate" | "--deflate-no-context-takeover" => ALL,
        "--connections" => &[Mode::Echo, Mode::Idle],
        "--size" => &[Mode::Echo, Mode::Idle, Mode::Fanout, Mode::Room],
        "--in-flight" => &[Mode::Echo, Mode::Fanout],
        "--rate" => &[Mode::Echo, Mode::Fanout, Mode::Room],
        "--binary" | "--text" | "--payload" | "--every-message" => &[Mode::Echo],
        "--warmup" | "--duration" => &[Mode::Echo, Mode::Connect, Mode::Fanout, Mode::Room],
        "--hold" | "--server-pid" | "--send-once" => &[Mode::Idle],
        "--concurrency" => &[Mode::Connect],
        "--subscribers" | "--publisher-url" => &[Mode::Fanout],
        "--members" | "--rounds" => &[Mode::Room],
        _ => return None,
    })
}

/// Whether a flag is a switch (takes no value).
fn is_switch(flag: &str) -> bool {
    matches!(
        flag,
        "--binary" | "--text" | "--deflate" | "--deflate-no-context-takeover" | "--send-once" | "--every-message"
    )
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
        ws_url: WsUrl::parse("ws://127.0.0.1:9001/").map_err(|e| arg_error!("{e}"))?,
        client: ClientBuilder::new(),
        ca: None,
        publisher_url: None,
        connections: 100,
        threads: 1,
        sources: Vec::new(),
        max_pending: 1000,
        timeout: Duration::from_secs(10),
        in_flight: 1,
        size: 16,
        text: false,
        payload: Payload::Pattern,
        every_message: false,
        deflate: false,
        deflate_no_context_takeover: false,
        send_once: false,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(10),
        rounds: None,
        hold: Duration::from_secs(10),
        server_pid: None,
        concurrency: 50,
        rate: None,
    };
    let mut protocols = Vec::new();
    let mut headers = Vec::new();
    let mut seen_type: Option<&'static str> = None;
    let mut seen_sources = None;
    let mut size = None;
    let mut connections = None;
    let mut duration_given = false;
    let mut check_only = false;

    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "--check" {
            check_only = true;
            continue;
        }
        if !arg.starts_with('-') {
            if mode.is_some() {
                return Err(arg_error!("unexpected argument {arg:?} (the mode is given once, first)"));
            }
            mode = Some(match arg.as_str() {
                "echo" => Mode::Echo,
                "idle" => Mode::Idle,
                "connect" => Mode::Connect,
                "fanout" => Mode::Fanout,
                "room" => Mode::Room,
                _ => return Err(arg_error!("unknown mode {arg:?}: expected {MODES}")),
            });
            continue;
        }
        let Some(current) = mode else {
            return Err(arg_error!("{arg}: the mode ({MODES}) comes first"));
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
                "--every-message" => opts.every_message = true,
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
            "--ca" => opts.ca = Some(value.into()),
            "--publisher-url" => {
                let url = WsUrl::parse(&value).map_err(|e| arg_error!("{flag} {value}: invalid WebSocket URL: {e}"))?;
                if url.is_secure() != opts.url.starts_with("wss:") {
                    return Err(arg_error!("{flag} {value}: give it the --url's scheme"));
                }
                opts.publisher_url = Some(url);
            }
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
            "--connections" | "--subscribers" | "--members" => connections = Some(positive(&flag, &value)?),
            "--rounds" => opts.rounds = Some(positive(&flag, &value)?),
            "--in-flight" => opts.in_flight = positive(&flag, &value)?,
            "--size" => size = Some(number(&flag, &value)?),
            "--payload" => {
                opts.payload = Payload::from_name(value.trim())
                    .ok_or_else(|| arg_error!("{flag}: unknown payload {value:?}: expected pattern or json"))?;
            }
            "--warmup" => opts.warmup = seconds(&flag, &value, true)?,
            "--duration" => {
                opts.duration = seconds(&flag, &value, false)?;
                duration_given = true;
            }
            "--hold" => opts.hold = seconds(&flag, &value, true)?,
            "--server-pid" => opts.server_pid = Some(positive(&flag, &value)?),
            "--concurrency" => opts.concurrency = positive(&flag, &value)?,
            "--rate" => opts.rate = Some(rate(&flag, &value)?),
            _ => return Err(arg_error!("unknown flag {flag} (see --help)")),
        }
    }

    let Some(mode) = mode else {
        return Err(arg_error!("missing mode: {MODES} (see --help)"));
    };
    opts.mode = mode;
    opts.connections = connections.unwrap_or(match mode {
        Mode::Fanout => fanout::DEFAULT_SUBSCRIBERS,
        Mode::Room => room::DEFAULT_MEMBERS,
        _ => opts.connections,
    });
    if opts.rounds.is_some() && duration_given {
        return Err(arg_error!("--rounds conflicts with --duration: measure one or the other"));
    }
    if mode == Mode::Idle {
        if size.is_some() && !opts.send_once {
            return Err(arg_error!("--size applies to idle mode only with --send-once"));
        }
        opts.size = size.unwrap_or(SEND_ONCE_SIZE);
        if opts.send_once && !(1..=MAX_SIZE).contains(&opts.size) {
            return Err(arg_error!("--size {} out of range: 1..={MAX_SIZE} bytes", opts.size));
        }
    } else {
        opts.size = size.unwrap_or(match mode {
            Mode::Fanout => fanout::DEFAULT_SIZE,
            Mode::Room => room::DEFAULT_SIZE,
            _ => opts.size,
        });
    }
    let (least, carries) = match mode {
        Mode::Echo if opts.text => (min_size(true), "a text message carries its send time"),
        Mode::Echo => (min_size(false), "a binary message carries its send time"),
        Mode::Fanout => (fanout::MIN_SIZE, "the data carries its send time and sequence number"),
        Mode::Room => (room::MIN_SIZE, "a message carries its member and round"),
        Mode::Idle | Mode::Connect => (0, ""),
    };
    if least > 0 && !(least..=MAX_SIZE).contains(&opts.size) {
        return Err(arg_error!("--size {} out of range: {carries}, so {least}..={MAX_SIZE} bytes", opts.size));
    }
    if opts.server_pid.is_some() && !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(arg_error!("--server-pid reads /proc/PID/status, which only Linux has"));
    }
    opts.ws_url = WsUrl::parse(&opts.url).map_err(|e| arg_error!("--url {}: invalid WebSocket URL: {e}", opts.url))?;
    #[cfg(not(feature = "tls"))]
    if opts.ws_url.is_secure() {
        return Err(arg_error!("--url {}: wss:// needs the `tls` feature, which this build lacks", opts.url));
    }
    if opts.publisher_url.is_some() {
        // The publisher is paced by what the subscribers receive: one thread holds them all.
        opts.threads = 1;
    }
    if opts.ca.is_some() && !opts.ws_url.is_secure() {
        return Err(arg_error!("--ca applies to wss:// URLs only"));
    }
    if opts.deflate_no_context_takeover && !opts.deflate {
        return Err(arg_error!("--deflate-no-context-takeover needs --deflate"));
    }
    #[cfg(not(feature = "deflate"))]
    if opts.deflate {
        return Err(arg_error!(
            "--deflate: this ferrows-load was built without permessage-deflate (cargo feature `deflate`)"
        ));
    }
    opts.client = client(&opts, protocols, headers)?;
    // Writing one request here turns a bad --protocol or --header into a usage error.
    Endpoint::new(&opts.client, opts.ws_url.clone(), &[0; 16], || [0; 4], Instant::now()).map_err(|e| match e {
        Error::Request(e) => arg_error!("--protocol/--header: {e}"),
        e => arg_error!("--url {}: {e}", opts.url),
    })?;
    Ok(if check_only { Command::Check(Box::new(opts)) } else { Command::Run(Box::new(opts)) })
}

/// The settings every connection of the run is opened with.
fn client(opts: &Options, protocols: Vec<String>, headers: Vec<(String, String)>) -> Result<ClientBuilder, ArgError> {
    let mut config = Config::default();
    // The load itself shows the peer is alive, and the run's end bounds the close.
    config.keepalive = None;
    config.close_timeout = None;
    // Room for what a server wraps around a payload (a pub/sub delivery's envelope).
    let largest = opts.size.saturating_add(ENVELOPE_SLACK);
    config.max_message_size = config.max_message_size.max(largest);
    config.max_frame_size = config.max_frame_size.max(largest);
    let mut client = ClientBuilder::new().config(config).connect_timeout(Some(opts.timeout)).deflate(false);
    #[cfg(feature = "deflate")]
    if let Some(deflate) = opts.deflate_config() {
        client = client.deflate_config(deflate);
    }
    for protocol in protocols {
        client = client.protocol(protocol);
    }
    for (name, value) in headers {
        client = client.header(name, value);
    }
    #[cfg(feature = "tls")]
    if opts.ws_url.is_secure() {
        client = match &opts.ca {
            Some(path) => client.tls_roots(ca_roots(path)?),
            // A load generator measures; it takes the server's word for who it is.
            None => client.danger_accept_any_certificate(),
        };
    }
    Ok(client)
}

/// The certificates of a PEM file, as trusted roots.
#[cfg(feature = "tls")]
fn ca_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, ArgError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| arg_error!("--ca {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| arg_error!("--ca {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| arg_error!("--ca {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(arg_error!("--ca {}: no CERTIFICATE in it", path.display()));
    }
    Ok(roots)
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

/// A rate per second: above 0, at most a million.
fn rate(flag: &str, value: &str) -> Result<f64, ArgError> {
    let rate: f64 = value.trim().parse().map_err(|_| arg_error!("{flag}: {value:?} is not a number per second"))?;
    if rate.is_nan() || rate <= 0.0 || rate > 1e6 {
        return Err(arg_error!("{flag}: {value} per second is out of range (above 0 up to 1000000)"));
    }
    Ok(rate)
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
        assert_eq!(opts.ws_url.port(), 9);
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

    #[test]
    fn fanout_and_room() {
        let opts = options("fanout");
        assert_eq!((opts.connections, opts.sockets(), opts.size, opts.in_flight), (1000, 1001, 64, 1));
        let opts = options("fanout --subscribers 10 --size 100 --in-flight 4 --warmup 2 --threads 2");
        assert_eq!((opts.connections, opts.sockets(), opts.size, opts.in_flight), (10, 11, 100, 4));
        assert_eq!((opts.warmup, opts.threads), (Duration::from_secs(2), 2));
        let opts = options("room");
        assert_eq!((opts.connections, opts.sockets(), opts.size, opts.rounds), (100, 100, 32, None));
        assert_eq!(opts.duration, Duration::from_secs(10));
        let opts = options("room --members 500 --rounds 1000 --size 16");
        assert_eq!((opts.connections, opts.size, opts.rounds), (500, 16, Some(1000)));
        assert_eq!(options("room --duration 3").duration, Duration::from_secs(3));
        assert_eq!(options("room").rate, None);
        assert_eq!(options("room --rate 2.5").rate, Some(2.5));
        assert_eq!(options("fanout --rate 100").rate, Some(100.0));
        assert_eq!(options("echo --rate 0.5").rate, Some(0.5));
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn deflate_offer() {
        let encoded = |opts: &Options| {
            let mut out = Vec::new();
            let now = Instant::now();
            Endpoint::new(&opts.client, opts.ws_url.clone(), &[0; 16], || [0; 4], now).unwrap().poll_transmit(&mut out);
            String::from_utf8(out).unwrap()
        };
        let opts = options("echo");
        assert!(opts.deflate_config().is_none());
        assert!(!encoded(&opts).contains("Sec-WebSocket-Extensions"));
        for mode in ["echo", "idle", "connect", "fanout", "room"] {
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
            ("echo --ca ca.pem", "--ca applies to wss:// URLs only"),
            ("echo --url wss://h/ --ca /nonexistent/ca.pem", "--ca /nonexistent/ca.pem"),
            ("echo --header NoColon", "--header"),
            ("echo --protocol a,b", "--protocol"),
            ("echo --payload random", "--payload: unknown payload"),
            ("idle --payload json", "--payload does not apply to idle"),
            ("echo --send-once", "--send-once does not apply to echo"),
            ("idle --size 100", "--size applies to idle mode only with --send-once"),
            ("idle --send-once --size 0", "--size 0 out of range"),
            ("echo --deflate=1", "--deflate takes no value"),
            ("echo --deflate-no-context-takeover", "needs --deflate"),
            ("fanout --size 47", "--size 47 out of range"),
            ("room --size 15", "--size 15 out of range"),
            ("fanout --connections 5", "--connections does not apply to fanout"),
            ("room --subscribers 5", "--subscribers does not apply to room"),
            ("fanout --members 5", "--members does not apply to fanout"),
            ("fanout --rounds 5", "--rounds does not apply to fanout"),
            ("room --in-flight 2", "--in-flight does not apply to room"),
            ("room --rounds 0", "--rounds must be at least 1"),
            ("room --rounds 5 --duration 3", "--rounds conflicts with --duration"),
            ("fanout --subscribers 0", "--subscribers must be at least 1"),
            ("echo --rate 0", "--rate: 0 per second is out of range"),
            ("room --rate x", "--rate: \"x\" is not a number"),
            ("connect --rate 5", "--rate does not apply to connect"),
            ("idle --rate 5", "--rate does not apply to idle"),
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
        assert!(matches!(parse_line("echo --check --size 32"), Ok(Command::Check(o)) if o.size == 32));
        assert!(parse_line("room --check --size 32 --rounds 3 --duration 2").is_err(), "checked all the same");
    }
}
