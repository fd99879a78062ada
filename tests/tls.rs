//! `wss://` over real sockets: the library's client, Python's `websockets`
//! and `openssl s_client` against the `ferrows` binary and the library
//! server, with a certificate authority made by the test (no committed keys).
#![cfg(feature = "tls")]

#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ferrows::app::{App, AppConfig};
use ferrows::client::{ClientBuilder, ClientStream, Error, Message};
use ferrows::proto::CloseCode;
use ferrows::runtime::{Server, TlsAcceptor, TlsError};
use process::ServerProcess;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A certificate authority and a server certificate it signed, as PEM files.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A CA named `name` and a certificate for `localhost` and 127.0.0.1, in a directory of their own.
    fn new(name: &str) -> Pki {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem"), dir };
        pki.issue(name);
        pki
    }

    /// (Re)writes the three files with a fresh CA and server pair.
    fn issue(&self, name: &str) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("ferrows test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(&self.ca, ca.pem()).unwrap();
        std::fs::write(&self.cert, cert.pem()).unwrap();
        std::fs::write(&self.key, key.serialize_pem()).unwrap();
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    }

    fn client(&self) -> ClientBuilder {
        ClientBuilder::new().tls_roots(self.roots()).read_timeout(Some(Duration::from_secs(10)))
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

fn echo_round_trip(client: &mut ferrows::client::Client<ClientStream>, text: &str) {
    client.send_text(text).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Text(text.to_owned()));
}

/// The negotiated TLS version and ALPN protocol of a client's connection.
fn tls_details(client: &ferrows::client::Client<ClientStream>) -> (Option<rustls::ProtocolVersion>, Option<Vec<u8>>) {
    match client.get_ref() {
        ClientStream::Tls(tls) => (tls.conn.protocol_version(), tls.conn.alpn_protocol().map(<[u8]>::to_vec)),
        other => panic!("not a TLS stream: {other:?}"),
    }
}

#[test]
fn the_library_server_serves_wss_and_ws_side_by_side() {
    let pki = Pki::new("side-by-side");
    let acceptor = TlsAcceptor::from_pem_files(&pki.cert, &pki.key).unwrap();
    let app = App::new(AppConfig::default());
    let server = Server::builder()
        .loops(1)
        .tls(acceptor)
        .listen("127.0.0.1:0".parse().unwrap())
        .listen_tls("127.0.0.1:0".parse().unwrap())
        .start(move |_| app.clone())
        .unwrap();
    let (plain, secure) = (server.local_addrs()[0], server.local_addrs()[1]);

    // TLS 1.3 by default, ALPN http/1.1, the certificate checked against the test CA.
    let mut client = pki.client().connect(&format!("wss://127.0.0.1:{}/echo", secure.port())).unwrap();
    assert_eq!(tls_details(&client), (Some(rustls::ProtocolVersion::TLSv1_3), Some(b"http/1.1".to_vec())));
    echo_round_trip(&mut client, "over TLS 1.3");
    let big = vec![7u8; 200_000];
    client.send_binary(&big).unwrap();
    assert_eq!(client.recv().unwrap(), Message::Binary(big));
    assert_eq!(client.close(CloseCode::NORMAL, "").unwrap().map(|f| f.code), Some(CloseCode::NORMAL));

    // The host name is checked too: the certificate names localhost.
    let mut by_name = pki.client().connect(&format!("wss://localhost:{}/echo", secure.port())).unwrap();
    echo_round_trip(&mut by_name, "by name");

    // TLS 1.2 is still offered.
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    let mut old = ClientBuilder::new()
        .tls_config(Arc::new(tls12))
        .read_timeout(Some(Duration::from_secs(10)))
        .connect(&format!("wss://127.0.0.1:{}/echo", secure.port()))
        .unwrap();
    assert_eq!(tls_details(&old).0, Some(rustls::ProtocolVersion::TLSv1_2));
    echo_round_trip(&mut old, "over TLS 1.2");

    // The plain listener beside it.
    let mut plain_client = ClientBuilder::new().connect(&format!("ws://{plain}/echo")).unwrap();
    echo_round_trip(&mut plain_client, "plain");

    // A certificate from another CA is refused by the client.
    let stranger = Pki::new("stranger");
    let refused = stranger.client().connect(&format!("wss://127.0.0.1:{}/echo", secure.port()));
    assert!(matches!(refused, Err(Error::Io(_))), "{refused:?}");
    // Unless the caller opts out of authentication.
    let mut anyway = ClientBuilder::new()
        .danger_accept_any_certificate()
        .read_timeout(Some(Duration::from_secs(10)))
        .connect(&format!("wss://127.0.0.1:{}/echo", secure.port()))
        .unwrap();
    echo_round_trip(&mut anyway, "unauthenticated");
    // And without any trust configured, wss:// is refused before connecting.
    assert!(matches!(ClientBuilder::new().connect("wss://127.0.0.1:1/"), Err(Error::TlsUnavailable)));

    server.shutdown();
    server.join().unwrap();
}

#[test]
fn certificate_files_that_cannot_be_used_are_refused_with_the_reason() {
    let pki = Pki::new("bad-files");
    let other = Pki::new("bad-files-other");
    let missing = pki.dir.join("missing.pem");
    let err = TlsAcceptor::from_pem_files(&missing, &pki.key).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // The key of another pair.
    let err = TlsAcceptor::from_pem_files(&pki.cert, &other.key).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    // A key where the certificate should be, and the other way round.
    let err = TlsAcceptor::from_pem_files(&pki.key, &pki.key).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
    let err = TlsAcceptor::from_pem_files(&pki.cert, &pki.cert).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
}

/// Runs the binary to its exit; returns the status code and what it printed.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrows"))
        .args(args)
        .env_remove("FERROWS_TLS_CERT")
        .env_remove("FERROWS_TLS_KEY")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run ferrows");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn the_binary_stops_with_status_2_on_unusable_tls_settings() {
    let pki = Pki::new("binary-errors");
    let other = Pki::new("binary-errors-other");
    let listen = format!("127.0.0.1:{}", process::free_loopback_port());
    let missing = pki.path("nothing-here.pem");
    let cases: [(&[&str], &str); 4] = [
        (&["--tls-cert", &missing, "--tls-key", &pki.path("key.pem")], "nothing-here.pem"),
        (&["--tls-cert", &pki.path("cert.pem"), "--tls-key", &other.path("key.pem")], "does not belong"),
        (&["--tls-key", &pki.path("key.pem")], "tls.cert and tls.key go together"),
        (&["--tls-listen", "127.0.0.1:1"], "tls.listen needs tls.cert"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["--listen", &listen];
        all.extend_from_slice(args);
        let (code, text) = run_binary(&all);
        assert_eq!(code, Some(2), "{all:?}: {text}");
        assert!(text.contains(expected), "{all:?}: expected {expected:?} in:\n{text}");
    }
}

/// Runs `tests/python/echo_client.py URL CAFILE` and requires OK.
fn python_echo(url: &str, cafile: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/echo_client.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(url)
        .arg(cafile)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(2),
        "Python's `websockets` is missing (tests/run installs it: pip install websockets):\n{stderr}"
    );
    assert!(
        output.status.success() && stdout.trim() == "OK",
        "the Python client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

#[test]
fn python_websockets_verifies_the_certificate_and_echoes_over_wss() {
    let pki = Pki::new("python");
    let cert = pki.path("cert.pem");
    let key = pki.path("key.pem");
    let server = ServerProcess::start("tls-python", &["--tls-cert", &cert, "--tls-key", &key], "info");
    python_echo(&format!("wss://localhost:{}/echo", server.addr.port()), &pki.ca);
    python_echo(&format!("wss://127.0.0.1:{}/echo", server.addr.port()), &pki.ca);
    assert!(server.log_text().contains(&format!("wss://{}/", server.addr)), "{}", server.log_text());
}

#[test]
fn openssl_s_client_completes_the_tls_handshake_and_the_upgrade() {
    let pki = Pki::new("openssl");
    let cert = pki.path("cert.pem");
    let key = pki.path("key.pem");
    let server = ServerProcess::start("tls-openssl", &["--tls-cert", &cert, "--tls-key", &key], "info");
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string(), "-servername", "localhost"])
        .args(["-CAfile", &pki.ca.display().to_string(), "-verify_return_error", "-alpn", "http/1.1"])
        .args(["-quiet", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client is required (Debian package openssl; .ci/run installs it)");
    let request = "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    child.stdin.take().unwrap().write_all(request.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0; 4096];
        while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let response = reader.join().unwrap();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 101"), "response: {response:?}\nopenssl said:\n{stderr}");
    // RFC 6455 §1.3: the accept value of the RFC's own example key.
    assert!(response.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{response}");
}

/// CPU seconds the process has used (Linux: /proc/PID/stat, user + system).
#[cfg(target_os = "linux")]
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// How long until the server ends a connection (EOF or reset), reading and dropping what it sends.
fn time_until_closed(mut socket: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0; 4096];
    while started.elapsed() < limit {
        match socket.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// The first flight of a real TLS client (its ClientHello).
fn client_hello() -> Vec<u8> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(tls), "localhost".try_into().unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// A sample of the server's `/metrics`, fetched over plain HTTP.
fn metric(addr: SocketAddr, sample: &str) -> u64 {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).unwrap();
    let line = text.lines().find(|l| l.starts_with(sample)).unwrap_or_else(|| panic!("no {sample} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn wait_until_accepting(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing accepts on {addr}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stalled_tls_handshakes_are_dropped_at_the_deadline_without_spinning() {
    let pki = Pki::new("stall");
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let tls_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, process::free_loopback_port()));
    let tls_listen = tls_addr.to_string();
    let args = ["--tls-cert", &cert, "--tls-key", &key, "--tls-listen", &tls_listen, "--timeouts-handshake", "2s"];
    let mut server = ServerProcess::start("tls-stall", &args, "debug");
    wait_until_accepting(tls_addr);
    let hello = client_hello();
    #[cfg(target_os = "linux")]
    let cpu_before = cpu_seconds(server.child.id());

    // Says nothing; sends half a ClientHello; sends a whole one, then neither reads nor answers.
    let silent = TcpStream::connect(tls_addr).unwrap();
    let mut partial = TcpStream::connect(tls_addr).unwrap();
    partial.write_all(&hello[..hello.len() / 2]).unwrap();
    let mut mute = TcpStream::connect(tls_addr).unwrap();
    mute.write_all(&hello).unwrap();
    let started = Instant::now();
    let watchers: Vec<_> = [silent, partial]
        .into_iter()
        .map(|socket| thread::spawn(move || time_until_closed(socket, Duration::from_secs(8))))
        .collect();
    for watcher in watchers {
        let closed_after = watcher.join().unwrap().expect("a stalled handshake was never dropped");
        assert!(
            closed_after >= Duration::from_millis(1500) && closed_after < Duration::from_secs(6),
            "dropped after {closed_after:?}, the deadline being 2 s"
        );
    }
    // The mute client's socket was closed by now too: what is buffered, then the end.
    thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    assert!(time_until_closed(mute, Duration::from_secs(2)).is_some(), "the client that never read is still open");
    #[cfg(target_os = "linux")]
    {
        // Three stalled handshakes cost the loop nothing while they wait: no busy loop.
        let used = cpu_seconds(server.child.id()) - cpu_before;
        assert!(used < 0.5, "the server used {used:.2} s of CPU in {:?} of stalled handshakes", started.elapsed());
    }

    // Plaintext on the TLS port is closed at once, long before the deadline, and counted.
    let mut plaintext = TcpStream::connect(tls_addr).unwrap();
    plaintext.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let closed_after = time_until_closed(plaintext, Duration::from_secs(5)).expect("plaintext was not refused");
    assert!(closed_after < Duration::from_secs(1), "plaintext refused only after {closed_after:?}");
    assert!(metric(server.addr, "ferrows_handshake_rejections_total{reason=\"tls\"}") >= 1);
    assert!(metric(server.addr, "ferrows_handshake_rejections_total{reason=\"timeout\"}") >= 3);
    server.assert_running();
    let log = server.log_text();
    assert!(log.contains("TLS: "), "the refusal is logged with its reason:\n{log}");
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_certificate_without_dropping_sessions() {
    let pki = Pki::new("reload");
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let mut server = ServerProcess::start("tls-reload", &["--tls-cert", &cert, "--tls-key", &key], "info");
    let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
    let old_roots = pki.roots();
    let mut before = pki.client().connect(&url).unwrap();
    echo_round_trip(&mut before, "before the reload");

    // New files from another CA, then SIGHUP.
    pki.issue("reload-renewed");
    // Sends SIGHUP and waits for the server to log `outcome`.
    let hup = |server: &ServerProcess, outcome: &str| {
        let pid = server.child.id().to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.log_text().contains(outcome) {
            assert!(Instant::now() < deadline, "no {outcome:?} in the log:\n{}", server.log_text());
            thread::sleep(Duration::from_millis(20));
        }
    };
    hup(&server, "certificate reloaded");
    let mut after = pki.client().connect(&url).unwrap();
    echo_round_trip(&mut after, "with the new certificate");
    // A client that trusts only the old CA (and has no session to resume) is refused.
    let old_client = ClientBuilder::new().tls_roots(old_roots);
    assert!(old_client.connect(&url).is_err(), "the old certificate is still served");
    // The session opened before the reload goes on.
    echo_round_trip(&mut before, "still open");

    // A broken file on the next SIGHUP: logged, and the pair in use stays.
    std::fs::write(&pki.key, "not a key").unwrap();
    hup(&server, "certificate not reloaded");
    let mut still = pki.client().connect(&url).unwrap();
    echo_round_trip(&mut still, "the renewed pair stays");
    server.assert_running();
}

/// `ClientConnection` (what the load tool drives) over TLS, on a mio loop.
#[test]
fn the_mio_client_connection_speaks_wss() {
    use ferrows::client::{ClientConnection, ClientEvent};
    use mio::{Events, Poll, Token};

    let pki = Pki::new("mio-client");
    let app = App::new(AppConfig::default());
    let server = Server::builder()
        .loops(1)
        .tls(TlsAcceptor::from_pem_files(&pki.cert, &pki.key).unwrap())
        .listen_tls("127.0.0.1:0".parse().unwrap())
        .start(move |_| app.clone())
        .unwrap();
    let addr = server.local_addrs()[0];
    let builder = pki.client();
    let url = format!("wss://localhost:{}/echo", addr.port());
    let mut conn = ClientConnection::connect(&builder, addr, &url, Instant::now()).unwrap();
    assert!(conn.is_tls());
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(16);
    let mut scratch = vec![0; 64 << 10];
    let interest = conn.interest();
    poll.registry().register(conn.stream_mut(), Token(0), interest).unwrap();
    // 200 KiB goes out in many records and comes back in many reads.
    let big = vec![0x5a; 200 << 10];
    let mut echoed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !conn.is_finished() {
        assert!(Instant::now() < deadline, "no echo within 10 s; got {echoed:?}");
        poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
        let now = Instant::now();
        for event in events.iter() {
            if event.is_writable() {
                conn.on_writable(now).unwrap();
            }
            if event.is_readable() {
                conn.on_readable(&mut scratch, now).unwrap();
            }
        }
        conn.handle_timeout(now).unwrap();
        while let Some(event) = conn.poll_event() {
            match event {
                ClientEvent::Open => {
                    conn.send_text("hello").unwrap();
                    conn.send_binary(&big).unwrap();
                }
                ClientEvent::Text(text) => echoed.push(text.len()),
                ClientEvent::Binary(data) => {
                    assert_eq!(data, big);
                    echoed.push(data.len());
                    conn.close(CloseCode::NORMAL, "", now).unwrap();
                }
                _ => {}
            }
        }
        conn.flush(now).unwrap();
        let interest = conn.interest();
        poll.registry().reregister(conn.stream_mut(), Token(0), interest).unwrap();
    }
    assert_eq!(echoed, vec![5, 200 << 10]);
    drop(conn);
    server.shutdown();
    server.join().unwrap();
}

/// A wss:// peer that sends and never reads: the server's output for it
/// stops at the queue limit, its reads stop (TCP pushes back on the peer),
/// and the server goes on serving others.
#[test]
fn a_wss_peer_that_never_reads_is_held_by_backpressure() {
    let pki = Pki::new("slow-reader");
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let args = ["--tls-cert", &cert, "--tls-key", &key, "--backpressure-max-out-queue", "64KiB", "--loops", "1"];
    let mut server = ServerProcess::start("tls-slow-reader", &args, "info");
    // The TLS handshake and the upgrade, then rustls driven by hand so that
    // nothing is ever read again.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let socket = TcpStream::connect(server.addr).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, socket);
    tls.write_all(
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut response = [0; 12];
    tls.read_exact(&mut response).unwrap();
    assert_eq!(&response, b"HTTP/1.1 101");
    // Masked (with a zero key) binary frames of 16 KiB.
    let mut frame = vec![0x82, 0xfe, 0x40, 0x00, 0, 0, 0, 0];
    frame.resize(frame.len() + (16 << 10), 0x42);
    tls.sock.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let (mut sent, started) = (0usize, Instant::now());
    'flood: while sent < 4096 && started.elapsed() < Duration::from_secs(20) {
        tls.conn.writer().write_all(&frame).unwrap();
        while tls.conn.wants_write() {
            if tls.conn.write_tls(&mut tls.sock).is_err() {
                break 'flood;
            }
        }
        sent += 1;
    }
    // 64 MiB of echoes the peer never reads would be far past every buffer on the way.
    assert!(sent < 4096, "the server read all {sent} messages while the peer read no echo");
    // Others are served meanwhile.
    let url = format!("wss://127.0.0.1:{}/echo", server.addr.port());
    let mut other = pki.client().connect(&url).unwrap();
    echo_round_trip(&mut other, "still served");
    server.assert_running();
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        let rss_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert!(rss_kib < 32 << 10, "server RSS {rss_kib} KiB while holding back a peer that never reads");
    }
}
