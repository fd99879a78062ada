//! Interoperability with an independent client: Python's `websockets`
//! (`pip install websockets`) runs scripts from `tests/python/` against the
//! echo server: text and binary round trips, a Ping, a clean close; and
//! permessage-deflate in both directions.
//!
//! A missing `python3` or `websockets` fails the test with instructions: it is
//! never skipped.

#[path = "support/socket.rs"]
mod socket;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ferrows::app::Echo;
use socket::{quick_config, TestServer};

/// Longer than the script's own timeouts add up to: only against a hang.
const SCRIPT_WITHIN: Duration = Duration::from_secs(60);

const INSTALL: &str = "install Python 3 and the `websockets` package: `pip install websockets`";

/// Fails with instructions unless `python3` can import `websockets`.
fn require_python_websockets() {
    let probe = Command::new("python3")
        .args(["-c", "import websockets.sync.client, websockets; print(websockets.__version__)"])
        .output();
    match probe {
        Err(e) => panic!("cannot run `python3` ({e}): {INSTALL}"),
        Ok(out) if !out.status.success() => {
            panic!("the Python `websockets` package is missing: {INSTALL}\n{}", String::from_utf8_lossy(&out.stderr))
        }
        Ok(_) => {}
    }
}

/// Waits for `child` until `within`, killing it past that.
fn wait_within(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait().expect("poll the Python client") {
            Some(status) => {
                let mut stdout = Vec::new();
                let mut stderr = Vec::new();
                if let Some(mut out) = child.stdout.take() {
                    out.read_to_end(&mut stdout).expect("read its stdout");
                }
                if let Some(mut err) = child.stderr.take() {
                    err.read_to_end(&mut stderr).expect("read its stderr");
                }
                return Output { status, stdout, stderr };
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the Python client did not finish within {within:?}");
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs `tests/python/{script}` against a fresh echo server and requires it to print OK.
fn run_script(script: &str) {
    require_python_websockets();
    let server = TestServer::start(quick_config(), 2, |_| Echo);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let child = Command::new("python3")
        .arg(&script)
        .arg(server.url("/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let output = wait_within(child, SCRIPT_WITHIN);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "OK",
        "the Python client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    server.stop_within(Duration::from_secs(10));
}

#[test]
fn python_websockets_client_echoes_pings_and_closes_cleanly() {
    run_script("echo_client.py");
}

/// RFC 7692 with an independent peer: the client compresses what it sends,
/// the server compresses its echoes, with context takeover both ways.
#[cfg(feature = "deflate")]
#[test]
fn python_websockets_negotiates_permessage_deflate_and_round_trips_compressed_messages() {
    run_script("deflate_client.py");
}
