//! Side by side: ferrows and other echo servers under the same load.
//!
//! uWebSockets, the speed reference, is an optional peer (`--uws-dir`):
//! nothing of it is part of this repository; benches/README.md gives the
//! recipe to build its `EchoServer`.
//!
//! Run with `cargo bench --bench compare` (options after `--`, see `--help`).
//! It builds ferrows's binaries and the peer servers of `benches/peers` (a
//! crate of its own, built into `target/peers`), then for each round, each
//! row and each server starts a fresh server on 127.0.0.1, loads it with
//! `ferrows-load` and stops it; servers take turns, in the reverse order
//! every other round (A B C D, D C B A, ...), so that drift in the
//! machine's speed, and whatever a run leaves to the next (a run after
//! another measured a few percent faster here), touch them alike. With an
//! even number of rounds each server goes first as often as last. The server runs on
//! CPU 0 and the load on CPU 1 when `taskset` exists and there are two CPUs.
//! Medians over the rounds go to a table on stdout, one `CELL` line per
//! row and server, `target/compare/compare.csv` and, through
//! `benches/compare_chart.py` (matplotlib), `target/compare/compare.png`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

const HELP: &str = "\
compare: ferrows beside tokio-tungstenite, fastwebsockets, a raw TCP echo and,
optionally, uWebSockets

USAGE:
    cargo bench --bench compare [-- OPTIONS]

OPTIONS:
    --rounds N             rounds; each runs every row on every server (default 3)
    --duration SECS        measured time of each echo and handshake run (default 5)
    --warmup SECS          unmeasured time before it (default 1)
    --only TEXT            rows whose key or title contains TEXT (repeatable), e.g.
                           --only '16 in flight' --only handshakes --only idle
    --servers A,B,...      servers to run, of ferrows, uWebSockets, tokio-tungstenite,
                           fastwebsockets, raw (default all; uWebSockets only
                           with --uws-dir)
    --uws-dir DIR          also run uWebSockets: DIR/EchoServer, built from its
                           examples/EchoServer.cpp to listen on 127.0.0.1 at the
                           port in the environment variable PORT (the recipe is
                           in benches/README.md)
    --idle-connections N   connections of the idle row (default 10000)
    --baseline PATH        also run another ferrows binary (an earlier build, say)
                           as the server `baseline`, with ferrows's flags, taking
                           turns with the others; its ratio column says how the
                           current build compares with it
    --no-build             use the binaries already built
    -h, --help             print this help

Results: a table on stdout (medians; ratios are ferrows / peer), CELL lines
for scripts, target/compare/compare.csv and target/compare/compare.png. A
figure marked * is load-bound: the load generator was on CPU for 90 % or more
of the measured time, so it may be what limits the figure, not the server.
Run logs: target/compare/logs/.
";

/// The open-file limit asked for the servers and the load when the idle row runs.
const WANTED_NOFILE: u64 = 25_000;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// One loop, as the peers have one thread; no permessage-deflate, which they lack.
const FERROWS_FLAGS: &str = "--loops 1 --no-deflate --log-level warn";

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ferrows,
    /// Another ferrows binary, given with `--baseline`.
    Baseline,
    /// uWebSockets's `EchoServer`, given with `--uws-dir`.
    Uws,
    TokioTungstenite,
    Fastwebsockets,
    Raw,
}

/// In table order.
const SERVERS: [Server; 5] =
    [Server::Ferrows, Server::Uws, Server::TokioTungstenite, Server::Fastwebsockets, Server::Raw];

/// The load generator's share of CPU time above which a figure is marked
/// load-bound (the load tool's own `LOAD_BOUND`).
const LOAD_BOUND: f64 = 0.9;

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Ferrows => "ferrows",
            Server::Baseline => "baseline",
            Server::Uws => "uWebSockets",
            Server::TokioTungstenite => "tokio-tungstenite",
            Server::Fastwebsockets => "fastwebsockets",
            Server::Raw => "raw",
        }
    }

    /// The program and its arguments, listening on `addr`.
    fn command(self, dirs: &Dirs, addr: SocketAddr) -> Vec<String> {
        let (dir, program, args) = match self {
            // One loop, as the peers have one thread; no permessage-deflate, which they lack.
            Server::Ferrows => (&dirs.release, "ferrows", FERROWS_FLAGS),
            Server::Baseline => {
                let path = dirs.baseline.clone().unwrap_or_default();
                let mut command = vec![path.display().to_string(), "--listen".into(), addr.to_string()];
                command.extend(words(FERROWS_FLAGS));
                return command;
            }
            // It takes its port from the environment (see `start`).
            Server::Uws => {
                let dir = dirs.uws.clone().unwrap_or_default();
                return vec![dir.join("EchoServer").display().to_string()];
            }
            Server::TokioTungstenite => (&dirs.peers_bin, "tokio_tungstenite_echo", ""),
            Server::Fastwebsockets => (&dirs.peers_bin, "fastwebsockets_echo", ""),
            Server::Raw => (&dirs.peers_bin, "raw_echo", ""),
        };
        let mut command = vec![dir.join(program).display().to_string(), "--listen".into(), addr.to_string()];
        command.extend(words(args));
        command
    }
}

/// The words of `line`, as arguments.
fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// What a row measures.
#[derive(Debug, Clone, Copy)]
enum Load {
    Echo { connections: usize, size: usize, in_flight: usize },
    Handshakes,
    Idle { connections: usize },
}

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    title: String,
    load: Load,
}

impl Row {
    fn echo(connections: usize, size: usize, in_flight: usize) -> Row {
        let (size_key, size_words) = match size {
            s if s >= 1024 => (format!("{}k", s / 1024), format!("{} KiB", s / 1024)),
            s => (s.to_string(), format!("{s} B")),
        };
        Row {
            key: format!("echo-{connections}x{size_key}-{in_flight}"),
            title: format!("echo {} x {size_words}, {in_flight} in flight", thousands(connections as f64)),
            load: Load::Echo { connections, size, in_flight },
        }
    }

    /// The RESULT field measured and its unit.
    fn metric(&self) -> (&'static str, &'static str) {
        match self.load {
            Load::Echo { .. } => ("msgs_per_sec", "msg/s"),
            Load::Handshakes => ("handshakes_per_sec", "handshakes/s"),
            Load::Idle { .. } => ("kib_per_conn", "KiB/conn"),
        }
    }

    /// The load tool's mode and arguments, but the URL.
    fn load_args(&self, opts: &Options, server_pid: u32) -> Vec<String> {
        let timing = format!("--warmup {} --duration {}", opts.warmup, opts.duration);
        words(&match self.load {
            Load::Echo { connections, size, in_flight } => {
                format!("echo --binary --connections {connections} --size {size} --in-flight {in_flight} {timing}")
            }
            Load::Handshakes => format!("connect --concurrency 50 {timing}"),
            // Eight source addresses: 10,000 connections and more from one
            // address to one port would use up most of its ephemeral ports.
            Load::Idle { connections } => format!(
                "idle --connections {connections} --hold 2 --server-pid {server_pid} --source-range 127.0.0.1-127.0.0.8"
            ),
        })
    }
}

/// The rows, in table order.
fn rows(idle_connections: usize) -> Vec<Row> {
    vec![
        Row::echo(100, 16, 1),
        Row::echo(1000, 16, 1),
        Row::echo(100, 16, 16),
        Row::echo(1000, 16, 16),
        Row::echo(100, 16 * 1024, 1),
        Row::echo(100, 16 * 1024, 4),
        Row::echo(1000, 1024, 1),
        Row { key: "handshakes".into(), title: "handshakes/s, 50 at a time".into(), load: Load::Handshakes },
        Row {
            key: format!("idle-{idle_connections}"),
            title: format!("idle: server RSS per connection at {}", thousands(idle_connections as f64)),
            load: Load::Idle { connections: idle_connections },
        },
    ]
}

/// The command line.
#[derive(Debug)]
struct Options {
    rounds: usize,
    duration: f64,
    warmup: f64,
    only: Vec<String>,
    servers: Vec<Server>,
    idle_connections: usize,
    build: bool,
    baseline: Option<PathBuf>,
    uws: Option<PathBuf>,
}

fn parse_args(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut opts = Options {
        rounds: 3,
        duration: 5.0,
        warmup: 1.0,
        only: Vec::new(),
        servers: SERVERS.to_vec(),
        idle_connections: 10_000,
        build: true,
        baseline: None,
        uws: None,
    };
    let mut servers_given = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            // Cargo adds --bench when it runs a benchmark.
            "--bench" => continue,
            "--no-build" => {
                opts.build = false;
                continue;
            }
            _ => {}
        }
        let value = inline.or_else(|| args.next()).ok_or_else(|| format!("{flag} needs a value (see --help)"))?;
        let number = |value: &str| value.trim().parse::<f64>().ok().filter(|n| *n > 0.0 && n.is_finite());
        let whole = |value: &str| value.trim().parse::<usize>().ok().filter(|n| *n > 0);
        match flag.as_str() {
            "--rounds" => opts.rounds = whole(&value).ok_or(format!("--rounds: {value:?} is not a count above 0"))?,
            "--duration" => opts.duration = number(&value).ok_or(format!("--duration: {value:?} is not seconds"))?,
            "--warmup" => opts.warmup = number(&value).ok_or(format!("--warmup: {value:?} is not seconds"))?,
            "--idle-connections" => {
                opts.idle_connections = whole(&value).ok_or(format!("--idle-connections: {value:?} is not a count"))?
            }
            "--only" => opts.only.push(value.to_lowercase()),
            "--baseline" => opts.baseline = Some(PathBuf::from(value)),
            "--uws-dir" => opts.uws = Some(PathBuf::from(value)),
            "--servers" => {
                servers_given = true;
                opts.servers = value
                    .split(',')
                    .map(|name| {
                        SERVERS.into_iter().find(|s| s.name() == name.trim()).ok_or_else(|| {
                            let names: Vec<_> = SERVERS.iter().map(|s| s.name()).collect();
                            format!("--servers: unknown server {name:?}; the servers are {}", names.join(", "))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                // Table order, whatever the order given.
                opts.servers.sort_by_key(|s| SERVERS.iter().position(|x| x == s));
                opts.servers.dedup();
            }
            _ => return Err(format!("unknown option {flag} (see --help)")),
        }
    }
    if opts.uws.is_none() {
        if opts.servers.contains(&Server::Uws) && servers_given {
            return Err("--servers: uWebSockets needs --uws-dir (see --help)".into());
        }
        opts.servers.retain(|&s| s != Server::Uws);
    }
    if opts.baseline.is_some() {
        // Right after ferrows, so that the two take turns closest in time.
        let at = opts.servers.iter().position(|&s| s == Server::Ferrows).map_or(0, |i| i + 1);
        opts.servers.insert(at, Server::Baseline);
    }
    Ok(Some(opts))
}

/// Where the binaries and results are.
struct Dirs {
    /// The main crate's directory.
    manifest: PathBuf,
    /// `target/release`: ferrows and ferrows-load.
    release: PathBuf,
    /// The peers' target directory, `target/peers`.
    peers_target: PathBuf,
    /// Their binaries.
    peers_bin: PathBuf,
    /// `target/compare`.
    out: PathBuf,
    /// The `--baseline` binary.
    baseline: Option<PathBuf>,
    /// The `--uws-dir` directory.
    uws: Option<PathBuf>,
}

impl Dirs {
    fn find() -> Result<Dirs, String> {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        // This bench runs from target/release/deps, beside what `cargo build --release` makes.
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's path: {e}"))?;
        let release = match exe.parent().and_then(Path::parent) {
            Some(dir) if dir.join("deps").is_dir() => dir.to_path_buf(),
            _ => manifest.join("target").join("release"),
        };
        let target = release.parent().map_or_else(|| manifest.join("target"), Path::to_path_buf);
        let peers_target = target.join("peers");
        let peers_bin = peers_target.join("release");
        Ok(Dirs { manifest, release, peers_target, peers_bin, out: target.join("compare"), baseline: None, uws: None })
    }
}

/// Runs `cargo` with `args` (and extra environment), failing on a non-zero exit.
fn cargo(dirs: &Dirs, args: &[&str], env: &[(&str, &Path)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    eprintln!("compare: {cargo} {}", args.join(" "));
    let mut command = Command::new(&cargo);
    command.args(args).current_dir(&dirs.manifest);
    for (name, value) in env {
        command.env(name, value);
    }
    let status = command.status().map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo {}` failed ({status})", args.join(" ")));
    }
    Ok(())
}

/// The soft and hard open-file limits of this process, from /proc/self/limits.
fn nofile_limits() -> Option<(u64, u64)> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    let mut fields = line.trim_start_matches("Max open files").split_whitespace();
    let soft = fields.next()?;
    let hard = fields.next()?;
    let parse = |v: &str| if v == "unlimited" { Some(u64::MAX) } else { v.parse().ok() };
    Some((parse(soft)?, parse(hard)?))
}

/// The open-file limit to run the idle row under: 25,000 where the hard limit
/// allows it, else the hard limit if each process still fits (the server and
/// the load are separate processes, each with one descriptor per connection).
fn nofile_for(connections: usize) -> Result<Option<u64>, String> {
    let Some((soft, hard)) = nofile_limits() else {
        return Ok(None);
    };
    let needed = connections as u64 + 1024;
    let wanted = WANTED_NOFILE.max(needed);
    if soft >= wanted {
        return Ok(None);
    }
    if hard >= wanted {
        return Ok(Some(wanted));
    }
    if hard >= needed {
        eprintln!(
            "compare: open-file limit: {wanted} wanted, the hard limit is {hard}; using {hard}, enough for \
             {connections} connections in each process"
        );
        return Ok(Some(hard));
    }
    Err(format!(
        "the idle row holds {connections} connections, so the server and the load each need an open-file limit \
         of at least {needed}, and the hard limit is {hard}: raise it (as root: `ulimit -Hn {WANTED_NOFILE}`, or \
         nofile in /etc/security/limits.conf), or leave the row out with --only"
    ))
}

/// How the server and the load are started: CPU pinning and the open-file limit.
struct Launch {
    pin: bool,
    nofile: Option<u64>,
}

impl Launch {
    fn command(&self, cpu: usize, program: &[String]) -> Command {
        let mut argv: Vec<String> = Vec::new();
        if let Some(limit) = self.nofile {
            // `ulimit -n` raises the soft limit; exec keeps the pid the server's.
            argv.extend(["sh", "-c", "ulimit -n \"$0\" || exit 125; exec \"$@\""].map(String::from));
            argv.push(limit.to_string());
        }
        if self.pin {
            argv.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        argv.extend_from_slice(program);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null());
        command
    }
}

/// A free port on 127.0.0.1 (another program could take it before the server does).
fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    listener.local_addr().map_err(|e| format!("cannot find a free port: {e}"))
}

/// The last lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].iter().map(|line| format!("    {line}\n")).collect()
}

/// A running server, killed when dropped.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `server` and waits until it accepts TCP connections.
fn start(server: Server, dirs: &Dirs, launch: &Launch, addr: SocketAddr, log: PathBuf) -> Result<Running, String> {
    let program = server.command(dirs, addr);
    let file = File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut command = launch.command(0, &program);
    if server == Server::Uws {
        command.env("PORT", addr.port().to_string());
    }
    let child = command
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: cannot start {}: {e}", server.name(), program[0]))?;
    let mut running = Running { child, log };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(format!(
                "{} did not start ({status}); {}:\n{}",
                server.name(),
                running.log.display(),
                tail(&running.log, 20)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(running);
        }
        if Instant::now() > deadline {
            return Err(format!("{} is not listening on {addr} after {START_TIMEOUT:?}", server.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One measurement: the RESULT line's fields.
type Fields = HashMap<String, String>;

/// Runs one row on one server: a fresh server, one load run.
fn measure(row: &Row, server: Server, ctx: &Context, round: usize) -> Result<Fields, String> {
    let name = format!("r{round}-{}-{}", row.key, server.name());
    let logs = ctx.dirs.out.join("logs");
    let addr = free_port()?;
    let mut running = start(server, &ctx.dirs, &ctx.launch, addr, logs.join(format!("{name}.server.log")))?;
    let mut program = vec![ctx.dirs.release.join("ferrows-load").display().to_string()];
    program.extend(row.load_args(&ctx.opts, running.child.id()));
    program.extend(["--url".to_owned(), format!("ws://{addr}/echo")]);
    let out_path = logs.join(format!("{name}.load.log"));
    let err_path = logs.join(format!("{name}.load.err"));
    let create = |path: &Path| File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()));
    let mut load = ctx
        .launch
        .command(1, &program)
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program[0]))?;
    // The idle row's time is mostly opening connections and settling.
    let limit = Duration::from_secs_f64(ctx.opts.duration + ctx.opts.warmup + 120.0);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = load.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = load.kill();
            let _ = load.wait();
            return Err(format!("{name}: the load ran past {limit:?}; see {}", err_path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let server_exit = running.child.try_wait().ok().flatten();
    let output = fs::read_to_string(&out_path).unwrap_or_default();
    let fields: Option<Fields> = output.lines().rev().find_map(|line| line.strip_prefix("RESULT ")).map(|line| {
        line.split_whitespace()
            .filter_map(|field| field.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    });
    let errors = fields.as_ref().and_then(|f| f.get("errors")).map(String::as_str);
    if let Some(status) = server_exit {
        return Err(format!(
            "{} exited during the run ({status}); {}:\n{}",
            server.name(),
            running.log.display(),
            tail(&running.log, 20)
        ));
    }
    if !status.success() || errors != Some("0") {
        return Err(format!(
            "{name}: the load tool reported errors ({status}, errors={}); {}:\n{}",
            errors.unwrap_or("?"),
            out_path.display(),
            tail(&out_path, 15)
        ));
    }
    let mut fields = fields.unwrap_or_default();
    if let Load::Idle { connections } = row.load {
        let open = fields.get("open").and_then(|v| v.parse::<usize>().ok());
        if open != Some(connections) {
            return Err(format!(
                "{name}: {open:?} of {connections} connections were held open; see {}",
                out_path.display()
            ));
        }
        let bytes: f64 = fields
            .get("bytes_per_conn")
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{name}: no server memory in the result; see {}", out_path.display()))?;
        fields.insert("kib_per_conn".into(), format!("{:.4}", bytes / 1024.0));
    }
    drop(running);
    Ok(fields)
}

/// Everything a run needs.
struct Context {
    opts: Options,
    dirs: Dirs,
    launch: Launch,
}

/// The measurements of one row on one server over the rounds.
#[derive(Default, Clone)]
struct Cell {
    values: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    /// The load generator's share of CPU time in each run.
    load_cpu: Vec<f64>,
}

impl Cell {
    /// Whether the load generator was busy enough to be what limited the figure.
    fn load_bound(&self) -> bool {
        median(&self.load_cpu).is_some_and(|share| share >= LOAD_BOUND)
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

fn show(row: &Row, value: f64) -> String {
    match row.load {
        Load::Idle { .. } => format!("{value:.3}"),
        _ => thousands(value),
    }
}

/// UTC now as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest / 60 % 60, rest % 60)
}

/// The machine, for the top of the report.
fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    let listed = cpuinfo.lines().filter(|line| line.starts_with("processor")).count();
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{model}, {listed} CPUs ({usable} usable); load average {}", load.join(" "))
}

fn run(opts: Options) -> Result<(), String> {
    let mut dirs = Dirs::find()?;
    dirs.baseline = opts.baseline.clone();
    dirs.uws = opts.uws.clone();
    let rows: Vec<Row> = rows(opts.idle_connections)
        .into_iter()
        .filter(|row| {
            opts.only.is_empty()
                || opts
                    .only
                    .iter()
                    .any(|text| row.key.contains(text.as_str()) || row.title.to_lowercase().contains(text.as_str()))
        })
        .collect();
    if rows.is_empty() {
        return Err(format!("--only {:?} matches no row; see --help", opts.only));
    }
    let idle = rows.iter().find_map(|row| match row.load {
        Load::Idle { connections } => Some(connections),
        _ => None,
    });
    let nofile = match idle {
        Some(connections) => nofile_for(connections)?,
        None => None,
    };
    if opts.build {
        cargo(&dirs, &["build", "--release", "--bins"], &[])?;
        let manifest = dirs.manifest.join("benches/peers/Cargo.toml");
        let manifest = manifest.display().to_string();
        cargo(
            &dirs,
            &["build", "--release", "--manifest-path", &manifest],
            &[("CARGO_TARGET_DIR", &dirs.peers_target)],
        )?;
    }
    for server in &opts.servers {
        let program = server.command(&dirs, "127.0.0.1:1".parse().map_err(|_| "bad address")?);
        if !Path::new(&program[0]).is_file() {
            let how =
                if *server == Server::Uws { "build it as benches/README.md says" } else { "run without --no-build" };
            return Err(format!("{} is not built: {} is missing ({how})", server.name(), program[0]));
        }
    }
    let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    let pin = usable >= 2 && taskset.is_ok_and(|s| s.success());
    fs::create_dir_all(dirs.out.join("logs")).map_err(|e| format!("cannot create {}: {e}", dirs.out.display()))?;

    println!("ferrows side-by-side benchmark, {}", utc_now());
    println!("machine: {}", machine());
    println!(
        "settings: {} round(s), {} s measured after {} s warm-up per run, binary messages, loopback; {}",
        opts.rounds,
        opts.duration,
        opts.warmup,
        if pin { "server on CPU 0, load on CPU 1 (taskset)" } else { "not pinned (no taskset or one CPU)" }
    );
    let ctx = Context { opts, dirs, launch: Launch { pin, nofile } };
    let servers = ctx.opts.servers.clone();
    let total = ctx.opts.rounds * rows.len() * servers.len();
    let mut cells: Vec<Vec<Cell>> = vec![vec![Cell::default(); servers.len()]; rows.len()];
    let mut done = 0;
    for round in 1..=ctx.opts.rounds {
        for (r, row) in rows.iter().enumerate() {
            // Every other round in the reverse order: see the module's docs.
            let order: Vec<usize> =
                if round % 2 == 1 { (0..servers.len()).collect() } else { (0..servers.len()).rev().collect() };
            for s in order {
                let server = servers[s];
                done += 1;
                let fields = measure(row, server, &ctx, round)
                    .map_err(|e| format!("round {round}, {}, {}: {e}", row.title, server.name()))?;
                let (metric, unit) = row.metric();
                let get = |key: &str| fields.get(key).and_then(|v| v.parse::<f64>().ok());
                let value = get(metric).ok_or(format!("{}: no {metric} in the load tool's result", row.key))?;
                let cell = &mut cells[r][s];
                cell.values.push(value);
                cell.p50_us.extend(get("p50_us"));
                cell.p99_us.extend(get("p99_us"));
                cell.load_cpu.extend(get("load_cpu"));
                let cpu = get("load_cpu").map_or(String::new(), |share| format!(" (load cpu {:.0} %)", share * 100.0));
                eprintln!(
                    "[{done:>3}/{total}] round {round}/{}  {:<40} {:<18} {} {unit}{cpu}",
                    ctx.opts.rounds,
                    row.title,
                    server.name(),
                    show(row, value)
                );
            }
        }
    }
    report(&ctx, &rows, &servers, &cells)
}

/// Prints the table and the CELL lines, writes the CSV and draws the chart.
fn report(ctx: &Context, rows: &[Row], servers: &[Server], cells: &[Vec<Cell>]) -> Result<(), String> {
    let ferrows = servers.iter().position(|&s| s == Server::Ferrows);
    let peers: Vec<usize> = (0..servers.len()).filter(|&s| Some(s) != ferrows).collect();
    let medians: Vec<Vec<Option<f64>>> =
        cells.iter().map(|row| row.iter().map(|cell| median(&cell.values)).collect()).collect();
    let ratio = |r: usize, s: usize| -> Option<f64> {
        let f = medians[r][ferrows?]?;
        let p = medians[r][s]?;
        (p != 0.0).then(|| f / p)
    };

    let title_width = rows.iter().map(|row| row.title.len()).max().unwrap_or(0).max(3);
    let mut table = format!("\n{:<title_width$}  {:<12}", "row", "unit");
    for server in servers {
        let _ = write!(table, "  {:>17}", server.name());
    }
    if ferrows.is_some() {
        for &s in &peers {
            let _ = write!(table, "  {:>9}", format!("f/{}", short(servers[s])));
        }
    }
    table.push('\n');
    for (r, row) in rows.iter().enumerate() {
        let _ = write!(table, "{:<title_width$}  {:<12}", row.title, row.metric().1);
        for (s, median) in medians[r].iter().enumerate() {
            let mark = if cells[r][s].load_bound() { "*" } else { " " };
            let _ = write!(table, "  {:>16}{mark}", median.map_or("-".into(), |v| show(row, v)));
        }
        if ferrows.is_some() {
            for &s in &peers {
                let _ = write!(table, "  {:>9}", ratio(r, s).map_or("-".into(), ratio_text));
            }
        }
        table.push('\n');
    }
    println!("{table}");
    println!(
        "medians of {} round(s); f/PEER = ferrows / PEER (above 1 is ferrows ahead for msg/s and",
        ctx.opts.rounds
    );
    println!("handshakes/s, behind for KiB/conn); idle KiB/conn is the server's RSS growth per held connection;");
    println!("* load-bound: the load generator was on CPU {:.0} % or more of the time", LOAD_BOUND * 100.0);
    println!();

    let mut csv =
        String::from("row,title,server,metric,unit,median,runs,p50_us,p99_us,ferrows_ratio,load_cpu,load_bound\n");
    for (r, row) in rows.iter().enumerate() {
        let (metric, unit) = row.metric();
        for (s, server) in servers.iter().enumerate() {
            let cell = &cells[r][s];
            let runs: Vec<String> = cell.values.iter().map(|v| format!("{v}")).collect();
            let values =
                [medians[r][s], median(&cell.p50_us), median(&cell.p99_us), ratio(r, s), median(&cell.load_cpu)];
            let [median, p50, p99, x, cpu] = values.map(|v| v.map_or(String::new(), |v| format!("{v:.4}")));
            let bound = cell.load_bound();
            let na = |v: &str| if v.is_empty() { "na".to_owned() } else { v.to_owned() };
            println!(
                "CELL row={} server={} metric={metric} unit={unit} median={} runs={} p50_us={} p99_us={} \
                 ferrows_ratio={} load_cpu={} load_bound={bound}",
                row.key,
                server.name(),
                na(&median),
                runs.join(";"),
                na(&p50),
                na(&p99),
                na(&x),
                na(&cpu)
            );
            let _ = writeln!(
                csv,
                "{},\"{}\",{},{metric},{unit},{median},{},{p50},{p99},{x},{cpu},{bound}",
                row.key,
                row.title,
                server.name(),
                runs.join(";")
            );
        }
    }
    let csv_path = ctx.dirs.out.join("compare.csv");
    fs::write(&csv_path, csv).map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    println!("\nwrote {}", csv_path.display());
    chart(ctx, &csv_path);
    Ok(())
}

/// A ratio with two decimals, three below 0.1.
fn ratio_text(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}x")
    } else {
        format!("{x:.2}x")
    }
}

fn short(server: Server) -> &'static str {
    match server {
        Server::Ferrows => "ferrows",
        Server::Baseline => "base",
        Server::Uws => "uws",
        Server::TokioTungstenite => "tt",
        Server::Fastwebsockets => "fws",
        Server::Raw => "raw",
    }
}

/// Draws the PNG with matplotlib, installing it with pip if it is missing.
/// A missing chart is a warning: the table and the CSV hold the results.
fn chart(ctx: &Context, csv: &Path) {
    let python = |args: &[&str]| {
        Command::new("python3").args(args).stdout(Stdio::null()).status().is_ok_and(|status| status.success())
    };
    if !python(&["-c", "import matplotlib"]) {
        eprintln!("compare: installing matplotlib for the chart");
        python(&["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "matplotlib"]);
    }
    let script = ctx.dirs.manifest.join("benches/compare_chart.py");
    let png = ctx.dirs.out.join("compare.png");
    let (script, csv_arg, png_arg) =
        (script.display().to_string(), csv.display().to_string(), png.display().to_string());
    if python(&[&script, &csv_arg, &png_arg]) {
        println!("wrote {png_arg}");
    } else {
        eprintln!("compare: warning: no chart: `python3 {script} {csv_arg} {png_arg}` failed");
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --benches` runs this without --bench: nothing to measure then.
    if !args.iter().any(|a| a == "--bench" || a == "-h" || a == "--help") {
        println!("compare: run it with `cargo bench --bench compare`; see `-- --help`");
        return ExitCode::SUCCESS;
    }
    let opts = match parse_args(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("compare: {e}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: error: {e}");
            ExitCode::FAILURE
        }
    }
}
