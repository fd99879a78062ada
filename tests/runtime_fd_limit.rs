//! Running out of file descriptors: accepting backs off instead of spinning,
//! and recovers once descriptors are free again. Runs the real binary under a
//! low descriptor limit (Linux: `ulimit -n` and `/proc`).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The binary with one loop, under `ulimit -n DESCRIPTORS`, logging at `log_level`.
fn start(descriptors: u32, log_level: &str) -> (Server, ChildStderr, u16) {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let command = format!(
        "ulimit -n {descriptors} && exec {} --listen 127.0.0.1:{port} --loops 1",
        env!("CARGO_BIN_EXE_ferrows")
    );
    let mut child = Command::new("bash")
        .args(["-c", &command])
        .env("RUST_LOG", log_level)
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs the server");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, stderr, port)
}

#[test]
fn out_of_descriptors_backs_off_and_recovers() {
    let (server, stderr, port) = start(40, "warn");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let pid = server.0.id();

    // More connections than the server has descriptors left: the rest wait in the backlog.
    let held: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(addr).expect("backlog takes it")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    // A loop retrying accept at once would burn the whole second (100 ticks).
    assert!(used < 50, "server used {used} ticks of CPU in 1 s while out of descriptors");

    drop(held);
    // Descriptors come back as the held connections close; a new client is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tungstenite::connect(format!("ws://127.0.0.1:{port}/echo")) {
            Ok((mut ws, _)) => {
                ws.send(tungstenite::Message::text("still here")).unwrap();
                let reply = ws.read().unwrap();
                assert_eq!(reply, tungstenite::Message::text("still here"));
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "server did not recover: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    drop(server);
    let log: Vec<String> = BufReader::new(stderr).lines().map_while(Result::ok).collect();
    assert!(
        log.iter().any(|line| line.contains("accept failed, pausing")),
        "the server logs the back-off; its log was:\n{}",
        log.join("\n")
    );
}

/// The server under `ulimit -n`: its connection limit fits the descriptors
/// it may open, connections past it are answered 503 (one warning, not one
/// per connection), and room made by closing ones is taken again.
#[test]
fn past_the_descriptor_limit_connections_are_answered_503() {
    // 300 descriptors, one loop: 128 + 16 kept for the process, 156 for connections.
    let (server, stderr, port) = start(300, "info");
    let url = format!("ws://127.0.0.1:{port}/echo");
    let connect = || tungstenite::connect(&url).map(|(ws, _)| ws).map_err(Box::new);
    // The probe above may still hold a place for a moment: wait for it to go.
    std::thread::sleep(Duration::from_millis(200));
    let mut held: Vec<_> = (0..156).map(|i| connect().unwrap_or_else(|e| panic!("connection {i}: {e}"))).collect();
    for _ in 0..20 {
        match connect() {
            Err(e) => match *e {
                tungstenite::Error::Http(response) => assert_eq!(response.status(), 503),
                other => panic!("expected 503 past the limit, got {other}"),
            },
            Ok(_) => panic!("a connection past the limit was upgraded"),
        }
    }
    // Every held connection still echoes.
    for ws in &mut held {
        ws.send(tungstenite::Message::text("here")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("here"));
    }
    // Closing some makes room for as many.
    for mut ws in held.drain(..10) {
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = Vec::new();
    while again.len() < 10 {
        match connect() {
            Ok(ws) => again.push(ws),
            Err(e) => {
                assert!(Instant::now() < deadline, "room was not taken again: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(server);
    let log: Vec<String> = BufReader::new(stderr).lines().map_while(Result::ok).collect();
    let text = log.join("\n");
    assert!(text.contains("max_connections lowered from 20000 to 156"), "the server says its limit:\n{text}");
    let warnings = log.iter().filter(|line| line.contains("connection refused with 503")).count();
    assert_eq!(warnings, 1, "one warning for twenty refusals:\n{text}");
    assert!(!text.contains("accept failed"), "the descriptors never ran out:\n{text}");
}
