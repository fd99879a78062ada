//! The `ferrows` binary's configuration as an operator meets it: exit codes,
//! messages on stderr, `--help` and `--print-config`. The binary is run with
//! every `FERROWS_*` variable of the test's own environment removed, so only
//! what a test sets counts.

#[path = "support/process.rs"]
mod process;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The binary with these arguments and exactly these `FERROWS_*` variables (and no `RUST_LOG`).
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrows"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FERROWS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    command
}

fn ferrows(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("the ferrows binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A file under the temporary directory, its name unique to this run; removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferrows-config-binary-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn print_config_prints_the_defaults_as_toml() {
    let output = ferrows(&["--print-config"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("listen = [\"127.0.0.1:9001\"]\n"), "{text}");
    assert!(text.contains("\n[timeouts]\n") && text.contains("\ndrain = \"10s\"\n"), "{text}");
}

#[test]
fn an_unknown_file_key_stops_start_up_with_status_2() {
    let file = TempFile::new("loops = 1\n[limits]\nmax_conections = 10\n");
    let output = ferrows(&["--config", file.path()], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.starts_with("ferrows: "), "{message}");
    assert!(message.contains(file.path()) && message.contains("limits.max_conections"), "{message}");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let output = ferrows(&[], &[("FERROWS_LOOPS", "abc")]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("FERROWS_LOOPS") && message.contains("\"abc\""), "{message}");
}

#[test]
fn an_out_of_range_flag_stops_start_up_with_status_2() {
    let output = ferrows(&["--limits-max-connections=0"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--limits-max-connections"), "{}", stderr(&output));
    let output = ferrows(&["--no-such-flag"], &[]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_lists_the_settings() {
    let output = ferrows(&["--help"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("--timeouts-drain") && text.contains("FERROWS_TIMEOUTS_DRAIN"), "{text}");
    let version = ferrows(&["--version"], &[]);
    assert_eq!(stdout(&version).trim(), format!("ferrows {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn flags_win_over_environment_over_file() {
    let file = TempFile::new("loops = 3\n");
    let loops = |args: &[&str], env: &[(&str, &str)]| {
        let output = ferrows(args, env);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output).lines().find(|l| l.starts_with("loops = ")).map(str::to_owned)
    };
    let config = ["--print-config", "--config", file.path()];
    assert_eq!(loops(&config, &[]).as_deref(), Some("loops = 3"));
    assert_eq!(loops(&config, &[("FERROWS_LOOPS", "2")]).as_deref(), Some("loops = 2"));
    let with_flag = [&config[..], &["--loops", "1"]].concat();
    assert_eq!(loops(&with_flag, &[("FERROWS_LOOPS", "2")]).as_deref(), Some("loops = 1"));
    // FERROWS_CONFIG names the file when --config does not.
    assert_eq!(loops(&["--print-config"], &[("FERROWS_CONFIG", file.path())]).as_deref(), Some("loops = 3"));
}

#[test]
fn a_listen_address_that_cannot_be_bound_exits_with_status_1() {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no interface of a test machine has it.
    let mut child = command(&["--listen", "192.0.2.1:9"], &[]).stderr(Stdio::piped()).spawn().unwrap();
    // Should the address be bound after all, the test fails rather than waits for ever.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("ferrows: cannot listen on 192.0.2.1:9: "), "{}", stderr(&output));
}

#[test]
fn a_second_server_on_an_address_in_use_exits_with_status_1_and_says_why() {
    let first = process::ServerProcess::start("port-held", &["--loops", "2"], "warn");
    let addr = first.addr.to_string();
    let output = ferrows(&["--listen", &addr], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "ferrows: cannot listen on {addr}: address in use (another process is listening there; \
             set io.reuse_port = true to share the port between processes)\n"
        )
    );
    // Consent on one side is not enough: the first server did not give it.
    #[cfg(unix)]
    {
        let output = ferrows(&["--listen", &addr, "--io-reuse-port"], &[]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains(&format!("cannot listen on {addr}: address in use")), "{}", stderr(&output));
    }
}

#[test]
fn print_config_read_back_holds_no_secret_and_a_masked_one_stops_the_start() {
    let output = ferrows(&["--api-key", "s3cret", "--redis-url", "redis://:pw@127.0.0.1:1", "--print-config"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let printed = stdout(&output);
    assert!(!printed.contains("s3cret") && !printed.contains(":pw@") && !printed.contains("***"), "{printed}");
    let file = TempFile::new(&printed);
    let again = ferrows(&["--config", file.path(), "--print-config"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stdout(&again).contains("\napi_key = \"\"\n"), "read back, no key is set: {}", stdout(&again));
    // The secret comes from elsewhere, as the comment says.
    let with_key = ferrows(&["--config", file.path(), "--print-config"], &[("FERROWS_API_KEY", "s3cret")]);
    assert!(stdout(&with_key).contains("\n# api_key = \"...\"  (set, not printed"), "{}", stdout(&with_key));
    // A file with the mask in place of the key does not start.
    let masked = TempFile::new(&printed.replace("# api_key = \"...\"", "api_key = \"***\"  #"));
    let output = ferrows(&["--config", masked.path(), "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("key api_key: bad value \"***\": \"***\" is a masked secret"),
        "{}",
        stderr(&output)
    );
}
