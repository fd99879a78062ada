//! Test tier "process": the `ferrows` binary as a child process, for the tests that run it whole: on
//! a free loopback port, its log in a file, killed when dropped so that a
//! failed assertion leaves nothing running.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take to accept its first connection.
pub const START_WITHIN: Duration = Duration::from_secs(10);

/// A running `ferrows`.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `ferrows --listen 127.0.0.1:PORT ARGS...` with no `FERROWS_*`
    /// setting from the environment; returns once it accepts connections.
    /// Its log (at `log_level`) goes to `NAME.log` in the tests' temporary directory.
    pub fn start(name: &str, args: &[&str], log_level: &str) -> ServerProcess {
        Self::start_with_env(name, args, log_level, &[])
    }

    /// As [`start`](Self::start), with these `FERROWS_*` variables set (secrets, say).
    #[allow(dead_code)]
    pub fn start_with_env(name: &str, args: &[&str], log_level: &str, env: &[(&str, &str)]) -> ServerProcess {
        // A port found free may be taken before the server binds it: another port then.
        for _ in 0..5 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_loopback_port()));
            let mut server = Self::spawn(addr, name, args, log_level, env);
            if server.wait_until_accepting() {
                return server;
            }
        }
        panic!("ferrows found its port taken five times over");
    }

    fn spawn(addr: SocketAddr, name: &str, args: &[&str], log_level: &str, env: &[(&str, &str)]) -> ServerProcess {
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.log"));
        let log_file = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferrows"));
        command.args(["--listen", &addr.to_string()]).args(args);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FERROWS_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().copied());
        let child = command
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", env!("CARGO_BIN_EXE_ferrows")));
        ServerProcess { child, addr, log }
    }

    /// Waits until the server accepts; false when it exited because its port was taken.
    fn wait_until_accepting(&mut self) -> bool {
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                let log = self.log_text();
                if log.contains("address in use") {
                    return false;
                }
                panic!("ferrows exited ({status}); its log:\n{log}");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                // Whoever took the port answers too: the server, failing to bind it, exits at once.
                thread::sleep(Duration::from_millis(20));
                if self.child.try_wait().expect("poll the server process").is_none() {
                    return true;
                }
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "ferrows did not accept on {} within {START_WITHIN:?}; its log:\n{}",
                self.addr,
                self.log_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test, with the server's log, if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll the server process") {
            panic!("ferrows exited ({status}); its log:\n{}", self.log_text());
        }
    }

    /// Sends SIGTERM with the system's `kill`.
    #[cfg(unix)]
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("run `kill`");
        assert!(status.success(), "`kill -TERM {pid}` failed ({status}); the server's log:\n{}", self.log_text());
    }

    /// The exit status, if the process ends within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the kernel just handed out on loopback, released for the server to take.
pub fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

/// A process stopped with `SIGSTOP` (a hung node or broker), continued with
/// `SIGCONT` when dropped, so that a failed assertion leaves nothing stopped.
pub struct Stopped(String);

impl Stopped {
    /// Stops `pid` and waits until every thread of it is stopped: `kill`
    /// returns once the signal is sent, and on a busy machine a thread of the
    /// process can still run a while (and answer) before the stop reaches it.
    pub fn new(pid: String) -> Stopped {
        send_signal(&pid, "STOP");
        let stopped = Stopped(pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !stopped.all_threads_stopped() {
            assert!(Instant::now() < deadline, "process {} did not stop within 5 s", stopped.0);
            thread::sleep(Duration::from_millis(5));
        }
        stopped
    }

    /// Whether /proc shows every thread in the stopped state (`T`); where
    /// there is no /proc, the signal is taken as enough.
    fn all_threads_stopped(&self) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.0)) else { return true };
        tasks.flatten().all(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ").is_none_or(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        })
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to `pid` with the system's `kill`.
pub fn send_signal(pid: &str, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), pid]).status().expect("run `kill`");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}
