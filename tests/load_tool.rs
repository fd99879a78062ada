//! `ferrows-load` against the `ferrows` binary: its echo mode's fast path
//! (frames encoded once, echoes counted from their headers), the path that
//! checks every message, and what the summary says of its own CPU.

use std::collections::HashMap;
use std::process::Command;

#[path = "support/process.rs"]
mod process;

use process::ServerProcess;

/// Runs `ferrows-load ARGS --url URL`; returns its RESULT line's fields and its whole output.
fn load(server: &ServerProcess, args: &[&str]) -> (HashMap<String, String>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrows-load"))
        .args(args)
        .args(["--url", &format!("ws://{}/echo", server.addr)])
        .output()
        .expect("run ferrows-load");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "ferrows-load {args:?} failed:\n{text}\nserver log:\n{}", server.log_text());
    let fields = text
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{text}"))
        .split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (fields, text)
}

fn number(fields: &HashMap<String, String>, key: &str) -> f64 {
    fields.get(key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no number {key} in {fields:?}"))
}

/// The checks every echo run must pass: echoes counted, no error, every Close answered.
fn assert_clean_echo(fields: &HashMap<String, String>, text: &str, connections: usize) {
    assert_eq!(fields["errors"], "0", "{text}");
    assert!(number(fields, "msgs_per_sec") > 100.0, "{text}");
    assert!(number(fields, "p50_us") > 0.0, "no round trip was measured:\n{text}");
    assert!(
        text.contains(&format!("{connections} answered by the server's Close, 0 not answered")),
        "the closing handshake did not follow the echoes:\n{text}"
    );
}

#[test]
fn the_fast_path_counts_the_echoes_of_binary_and_text_messages_of_every_size() {
    let server = ServerProcess::start("load_tool_fast", &["--loops", "1", "--no-deflate"], "warn");
    let timing = ["--warmup", "0.2", "--duration", "0.8"];
    for (kind, size) in [("--binary", "16"), ("--text", "300"), ("--binary", "70000")] {
        let mut args = vec!["echo", kind, "--size", size, "--connections", "4", "--in-flight", "8"];
        args.extend(timing);
        let (fields, text) = load(&server, &args);
        assert_clean_echo(&fields, &text, 4);
        assert_eq!(fields["size"], size);
    }
}

#[test]
fn every_message_and_deflate_take_the_checking_path_and_agree() {
    let server = ServerProcess::start("load_tool_checked", &["--loops", "1"], "warn");
    let timing = ["--warmup", "0.2", "--duration", "0.8"];
    for extra in ["--every-message", "--deflate"] {
        let mut args = vec!["echo", "--text", "--size", "64", "--connections", "3", "--in-flight", "2", extra];
        args.extend(timing);
        let (fields, text) = load(&server, &args);
        assert_clean_echo(&fields, &text, 3);
        let deflated = if extra == "--deflate" { "3" } else { "0" };
        assert_eq!(fields["deflate"], deflated, "{text}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_summary_says_how_busy_the_load_generator_was() {
    let server = ServerProcess::start("load_tool_cpu", &["--loops", "1", "--no-deflate"], "warn");
    let args = ["echo", "--connections", "2", "--in-flight", "4", "--warmup", "0.1", "--duration", "0.8"];
    let (fields, text) = load(&server, &args);
    let share = number(&fields, "load_cpu");
    assert!(share > 0.0 && share <= 1.05, "load_cpu={share} is not a share of one thread's time:\n{text}");
    assert!(text.contains("load cpu "), "{text}");
}
