//! A `redis-server` of the test's own for the cluster tests (Debian's;
//! `.ci/run` installs it): on a free loopback port, without persistence,
//! killed when dropped; with the few commands the tests use to look at it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const INSTALL: &str = "redis-server is needed (Debian: apt-get install redis-server; .ci/run installs it)";

/// A `redis-server` of the test's own, without persistence, killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// Holds the port while no server does: bound but not listening, so that
    /// a connection to it is refused and no other socket is given the port
    /// (a node listening on port 0 could otherwise get the one its Redis
    /// will take, and reach itself when it connects to its Redis).
    reservation: Option<socket2::Socket>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Self::not_started();
        redis.restart();
        redis
    }

    /// One with its port chosen, to start later ([`restart`](Self::restart)).
    pub fn not_started() -> Redis {
        let (port, reservation) = reserve_loopback_port();
        Redis { port, child: None, reservation: Some(reservation) }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port (again) and waits until it answers.
    pub fn restart(&mut self) {
        self.reservation = None;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer on port {}", self.port);
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one inline command; returns the first line of the reply.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut socket = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        socket.write_all(format!("{}\r\n", args.join(" ")).as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut buf = [0; 1024];
        while !reply.ends_with(b"\r\n") {
            let n = socket.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }

    /// The text of `INFO section`.
    pub fn info(&self, section: &str) -> String {
        let mut socket = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        socket.write_all(format!("INFO {section}\r\n").as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0; 4096];
        // $LEN\r\n, LEN bytes, \r\n
        loop {
            let text = String::from_utf8_lossy(&reply);
            let whole = text.split_once("\r\n").and_then(|(len, rest)| {
                let len: usize = len.strip_prefix('$')?.parse().ok()?;
                (rest.len() >= len + 2).then(|| rest[..len].to_owned())
            });
            if let Some(info) = whole {
                return info;
            }
            let n = socket.read(&mut buf).expect("the INFO reply");
            assert!(n > 0, "Redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
        }
    }

    /// How many times Redis ran `command` (from `INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        let prefix = format!("cmdstat_{command}:calls=");
        let info = self.info("commandstats");
        let line = info.lines().find_map(|l| l.strip_prefix(&prefix));
        line.and_then(|l| l.split(',').next()?.parse().ok()).unwrap_or(0)
    }

    /// The server's process id (from `INFO server`).
    pub fn pid(&self) -> String {
        let info = self.info("server");
        let pid = info.lines().find_map(|l| l.strip_prefix("process_id:"));
        pid.unwrap_or_else(|| panic!("no process_id in {info}")).trim().to_owned()
    }

    /// How many connections subscribe to `channel` (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> usize {
        let Ok(mut socket) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) else { return 0 };
        socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        socket.write_all(format!("PUBSUB NUMSUB {channel}\r\n").as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0; 512];
        // *2\r\n$N\r\nCHANNEL\r\n:COUNT\r\n
        while reply.iter().filter(|&&b| b == b'\n').count() < 4 {
            match socket.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&reply);
        text.lines().last().and_then(|l| l.strip_prefix(':')).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// Waits until exactly `n` connections subscribe to `channel`.
    pub fn wait_for_subscribers(&self, channel: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let count = self.subscribers(channel);
            if count == n {
                return;
            }
            assert!(Instant::now() < deadline, "{channel} has {count} subscribers, not {n}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port, held by a socket bound to it that does not listen
/// (and does not allow address reuse, so that no other bind shares it).
fn reserve_loopback_port() -> (u16, socket2::Socket) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).expect("bind a loopback port");
    let port = socket.local_addr().ok().and_then(|a| a.as_socket()).expect("its address").port();
    (port, socket)
}
