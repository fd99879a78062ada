//! The server's settings through the library API: defaults, the three layers
//! and their precedence, the errors each kind of value earns, `--help`,
//! `--print-config` and the example file. Nothing here reads the process's
//! own arguments or environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrows::app::{AppConfig, RouteSpec};
use ferrows::config::{self, ConfigError, Loaded, Settings, Source};
use ferrows::proto::Keepalive;
use ferrows::runtime::{ServerConfig, SlowConsumerPolicy};

fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Settings::load(&args, &lookup, vars.iter().map(|(k, _)| k.clone()))
}

fn settings(args: &[&str], env: &[(&str, &str)]) -> Settings {
    match load(args, env) {
        Ok(Loaded::Run(settings)) => settings,
        other => panic!("{args:?} {env:?}: {other:?}"),
    }
}

/// The error message, checked to contain every one of `parts`.
fn error(args: &[&str], env: &[(&str, &str)], parts: &[&str]) -> String {
    let message = match load(args, env) {
        Err(e) => e.to_string(),
        Ok(loaded) => panic!("{args:?} {env:?} loaded: {loaded:?}"),
    };
    for part in parts {
        assert!(message.contains(part), "{message:?} does not contain {part:?}");
    }
    message
}

/// A file under the temporary directory, its name unique to this run; removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(contents: &str) -> TempFile {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("ferrows-config-test-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    TempFile(path)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn defaults_are_the_library_defaults() {
    let defaults = Settings::defaults();
    assert_eq!(defaults.listen(), [addr("127.0.0.1:9001")]);
    assert_eq!(defaults.loops(), None);
    assert_eq!(defaults.log_filter(), "info");
    assert!(defaults.deflate_enabled());
    assert_eq!(defaults.server_config(), ServerConfig::default());
    assert_eq!(defaults.app_config(), AppConfig::default());
    assert_eq!(defaults.app_config().routes, RouteSpec::defaults());

    let loaded = settings(&[], &[("HOME", "/root"), ("PATH", "/bin")]);
    assert_eq!(loaded, defaults);
    assert_eq!(loaded.sources().to_string(), "defaults");
    assert_eq!(loaded.source("limits.max_connections"), Some(Source::Default));
    assert_eq!(loaded.source("no.such.key"), None);
}

#[test]
fn flags_win_over_environment_over_file_for_a_scalar() {
    let file = temp_file("loops = 3\n");
    let path = file.path();
    let env = [("FERROWS_LOOPS", "2")];
    assert_eq!(settings(&["--config", path], &[]).loops(), Some(3));
    assert_eq!(settings(&["--config", path], &env).loops(), Some(2));
    let all = settings(&["--config", path, "--loops", "1"], &env);
    assert_eq!(all.loops(), Some(1));
    assert_eq!(all.source("loops"), Some(Source::Flag));
    assert_eq!(all.sources().to_string(), format!("file {path}, environment FERROWS_LOOPS, flags"));
    // FERROWS_CONFIG names the file when --config does not.
    let from_env = settings(&[], &[("FERROWS_CONFIG", path)]);
    assert_eq!((from_env.loops(), from_env.source("loops")), (Some(3), Some(Source::File)));
}

#[test]
fn flags_win_over_environment_over_file_for_a_list() {
    let file = temp_file("listen = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n");
    let path = file.path();
    assert_eq!(settings(&["--config", path], &[]).listen(), [addr("127.0.0.1:1"), addr("127.0.0.1:2")]);
    let env = [("FERROWS_LISTEN", "127.0.0.1:3, [::1]:4")];
    assert_eq!(settings(&["--config", path], &env).listen(), [addr("127.0.0.1:3"), addr("[::1]:4")]);
    // The first flag replaces the lower layers' list; repeats add to it.
    let flags = settings(&["--config", path, "--listen", "127.0.0.1:5", "--listen=127.0.0.1:6,127.0.0.1:7"], &env);
    assert_eq!(flags.listen(), [addr("127.0.0.1:5"), addr("127.0.0.1:6"), addr("127.0.0.1:7")]);
    // An empty value empties a list that may be empty.
    let origins = settings(&["--allowed-origins="], &[("FERROWS_ALLOWED_ORIGINS", "https://a.test")]);
    assert!(origins.server_config().allowed_origins.allows_any());
}

#[test]
fn bool_flags_and_their_aliases() {
    let enabled = |args: &[&str], env: &[(&str, &str)]| settings(args, env).deflate_enabled();
    assert!(!enabled(&["--deflate-enabled=false"], &[]));
    assert!(!enabled(&["--deflate-enabled", "false"], &[]));
    assert!(enabled(&["--deflate-enabled"], &[("FERROWS_DEFLATE_ENABLED", "false")]));
    assert!(enabled(&["--deflate-enabled", "--loops", "1"], &[("FERROWS_DEFLATE_ENABLED", "false")]));
    assert!(!enabled(&["--no-deflate"], &[]));
    let no_takeover = settings(&["--deflate-no-context-takeover"], &[]);
    assert_eq!(no_takeover.get("deflate.server_no_context_takeover").as_deref(), Some("true"));
    assert_eq!(no_takeover.get("deflate.client_no_context_takeover").as_deref(), Some("true"));
}

#[test]
fn bad_values_name_where_they_came_from_and_the_expected_form() {
    // Durations, sizes, bools, numbers and ranges.
    error(&["--timeouts-handshake", "10x"], &[], &["flag --timeouts-handshake", "\"10x\"", "duration like 500ms, 10s"]);
    error(&["--timeouts-close=0s"], &[], &["--timeouts-close", "more than zero"]);
    error(&[], &[("FERROWS_TIMEOUTS_IDLE", "1.5s")], &["FERROWS_TIMEOUTS_IDLE", "\"1.5s\"", "duration like"]);
    error(&["--limits-max-frame-size", "16MB"], &[], &["--limits-max-frame-size", "\"16MB\"", "size like 512B, 64KiB"]);
    error(&["--io-read-buffer-size", "1KiB"], &[], &["--io-read-buffer-size", "at least 4KiB"]);
    error(&[], &[("FERROWS_DEFLATE_ENABLED", "yes")], &["FERROWS_DEFLATE_ENABLED", "\"yes\"", "true or false"]);
    error(&[], &[("FERROWS_LOOPS", "abc")], &["environment variable FERROWS_LOOPS", "\"abc\"", "whole number"]);
    error(&["--limits-max-connections=0"], &[], &["--limits-max-connections", "\"0\"", "at least 1"]);
    error(&["--deflate-level", "10"], &[], &["--deflate-level", "\"10\"", "from 0 to 9"]);
    error(&["--deflate-server-max-window-bits", "8"], &[], &["from 9 to 15"]);
    // Addresses, choices, origins, routes, subprotocols, log filters.
    error(&["--listen", "localhost"], &[], &["flag --listen", "\"localhost\"", "address like 127.0.0.1:9001"]);
    error(&["--listen="], &[], &["flag --listen", "at least one entry"]);
    error(&["--backpressure-slow-consumer", "wait"], &[], &["--backpressure-slow-consumer", "one of drop, close"]);
    error(
        &[],
        &[("FERROWS_ALLOWED_ORIGINS", "https://ok.test,ftp:/x")],
        &["FERROWS_ALLOWED_ORIGINS", "\"ftp:/x\"", "`*.host`"],
    );
    error(&["--routes", "/x = teleport"], &[], &["flag --routes", "teleport", "PATH = HANDLER"]);
    error(&["--subprotocols", "chat, v 2"], &[], &["--subprotocols", "\"v 2\"", "subprotocol name"]);
    error(&["--log-level", "ferrows=loud"], &[], &["--log-level", "ferrows=loud", "env_logger filter"]);
    // In the file: the file, the key, the value as TOML, the form.
    let file = temp_file("[timeouts]\nidle = \"soon\"\n");
    let path = file.path();
    error(&["--config", path], &[], &[path, "key timeouts.idle", "\"soon\"", "duration like"]);
    let file = temp_file("loops = \"3\"\n");
    let path = file.path();
    error(&["--config", path], &[], &[path, "key loops", "whole number"]);
    let file = temp_file("limits = 5\n");
    let path = file.path();
    error(&["--config", path], &[], &[path, "key limits", "[limits]"]);
    let file = temp_file("listen = \"127.0.0.1:1\"\n");
    let path = file.path();
    error(&["--config", path], &[], &[path, "key listen", "list of strings"]);
    let file = temp_file("loops = = 3\n");
    let path = file.path();
    error(&["--config", path], &[], &[path, "line 1"]);
    error(&["--config", "/nonexistent/ferrows.toml"], &[], &["/nonexistent/ferrows.toml", "cannot read"]);
    // Flags that lack or refuse a value.
    error(&["--loops"], &[], &["flag --loops", "needs a value"]);
    error(&["--no-deflate=yes"], &[], &["flag --no-deflate", "takes no value"]);
}

#[test]
fn unknown_keys_variables_and_flags_are_errors() {
    let top = temp_file("loops = 1\nlisten_address = \"127.0.0.1:1\"\n");
    error(&["--config", top.path()], &[], &["unknown key listen_address"]);
    let nested = temp_file("[limits]\nmax_conections = 5\n");
    error(&["--config", nested.path()], &[], &["unknown key limits.max_conections"]);
    let section = temp_file("[limit]\nmax_connections = 5\n");
    error(&["--config", section.path()], &[], &["unknown key limit"]);
    let dotted = temp_file("\"limits.max_connections\" = 5\n");
    error(&["--config", dotted.path()], &[], &["unknown key limits.max_connections"]);
    error(&[], &[("FERROWS_LOOPZ", "1")], &["unknown environment variable FERROWS_LOOPZ"]);
    error(&["--loopz", "1"], &[], &["unknown argument \"--loopz\""]);
    error(&["serve"], &[], &["unknown argument \"serve\""]);
    // Variables of other programs are none of ferrows' business.
    settings(&[], &[("FERROWSX", "1"), ("RUSTFLAGS", "x")]);
}

#[test]
fn help_version_and_print_config_are_actions() {
    assert!(matches!(load(&["--help", "--no-such-flag"], &[]), Ok(Loaded::Help)));
    assert!(matches!(load(&["-h"], &[("FERROWS_LOOPZ", "1")]), Ok(Loaded::Help)));
    assert!(matches!(load(&["-V"], &[]), Ok(Loaded::Version)));
    match load(&["--print-config", "--loops", "2"], &[]) {
        Ok(Loaded::PrintConfig(settings)) => assert_eq!(settings.loops(), Some(2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn help_lists_every_flag_variable_and_default() {
    let help = config::help();
    for setting in config::settings() {
        assert!(help.contains(&format!("  {} ", setting.flag())), "{}", setting.flag());
        assert!(help.contains(&setting.env_name()), "{}", setting.env_name());
        assert!(help.contains(&format!("[default: {}]", setting.default_text())) || setting.default_text().is_empty());
        assert!(help.contains(setting.help()), "{}", setting.key());
    }
    for flag in ["--config PATH", "--print-config", "--no-deflate", "--deflate-no-context-takeover", "--help"] {
        assert!(help.contains(flag), "{flag}");
    }
    assert!(help.contains("--timeouts-drain DURATION  FERROWS_TIMEOUTS_DRAIN  [default: 10s]"));
}

#[test]
fn print_config_reads_back_to_the_same_settings() {
    let args = [
        "--listen=127.0.0.1:7001,[::1]:7002",
        "--loops=3",
        "--log-level=warn,ferrows=debug",
        "--allowed-origins=https://chat.example.com,*.example.org",
        "--subprotocols=chat.v2,chat",
        "--routes=/ws = echo,/r/{name} = room echo_to_sender=false",
        "--limits-max-frame-size=1536",
        "--limits-max-message-size=3GiB",
        "--timeouts-idle=90m",
        "--timeouts-ping-interval=1500ms",
        "--backpressure-slow-consumer=close",
        "--deflate-enabled=false",
        "--deflate-min-message-size=0",
    ];
    let settings = settings(&args, &[("FERROWS_API_KEY", "")]);
    let text = settings.to_toml();
    let again = self::settings(&["--config", temp_file(&text).path()], &[]);
    assert_eq!(again, settings, "{text}");
    assert_eq!(again.to_toml(), text);
    assert!(text.contains("api_key = \"\"\n"));
}

#[test]
fn print_config_leaves_the_api_key_out() {
    let settings = settings(&[], &[("FERROWS_API_KEY", "s3cr3t \"key\"")]);
    assert_eq!(settings.app_config().api_key.as_deref(), Some("s3cr3t \"key\""));
    let text = settings.to_toml();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        text.contains(
            "\n# api_key = \"...\"  (set, not printed: give it here, in FERROWS_API_KEY or with --api-key)\n"
        ),
        "{text}"
    );
    // What it prints reads back, with no key at all: publishing is for loopback clients only.
    let again = self::settings(&["--config", temp_file(&text).path()], &[]);
    assert_eq!(again.app_config().api_key, None);
}

#[test]
fn a_masked_secret_is_refused_wherever_it_comes_from() {
    let file = temp_file("api_key = \"***\"\n");
    type Place<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let places: [Place; 4] = [
        (&["--config", file.path()], &[]),
        (&[], &[("FERROWS_API_KEY", "***")]),
        (&["--api-key", "***"], &[]),
        (&["--api-key= *** "], &[]),
    ];
    for (args, env) in places {
        let e = load(args, env).expect_err("a masked api_key");
        let message = e.to_string();
        assert!(message.contains("bad value") && message.contains("is a masked secret"), "{message}");
    }
    // A key that merely contains stars is a key.
    let settings = settings(&["--api-key", "a***b"], &[]);
    assert_eq!(settings.app_config().api_key.as_deref(), Some("a***b"));
}

#[test]
fn the_example_file_holds_every_setting_at_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/ferrows.example.toml");
    assert_eq!(settings(&["--config", path], &[]), Settings::defaults());
    let text = std::fs::read_to_string(path).unwrap();
    // Keys by section, as the file lays them out: `[section]` lines, then `name = value`.
    let mut keys = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = format!("{name}.");
        } else if let Some((name, _)) = line.split_once(" = ").filter(|_| !line.starts_with(['#', ' '])) {
            keys.push(format!("{section}{name}"));
        }
    }
    let table: Vec<String> = config::settings().iter().map(|s| s.key().to_owned()).collect();
    assert_eq!(keys, table);
}

#[test]
fn conversions_fill_the_library_configs() {
    let settings = settings(
        &[
            "--timeouts-ping-interval=0",
            "--limits-max-connections-per-ip=0",
            "--timeouts-idle=2m",
            "--limits-max-frame-size=64KiB",
            "--limits-max-request-head=16KiB",
            "--limits-max-headers=32",
            "--backpressure-slow-consumer=close",
            "--io-backlog=128",
            "--allowed-origins=https://chat.example.com",
            "--api-key=k",
            "--limits-max-topic-len=10",
        ],
        &[],
    );
    let server = settings.server_config();
    assert_eq!(server.protocol.keepalive, None);
    assert_eq!(server.max_connections_per_ip, None);
    assert_eq!(server.protocol.idle_timeout, Some(Duration::from_secs(120)));
    assert_eq!(server.protocol.max_frame_size, 64 << 10);
    assert_eq!(server.protocol.close_timeout, Some(Duration::from_secs(5)));
    assert_eq!((server.handshake_limits.max_head_bytes, server.handshake_limits.max_headers), (16 << 10, 32));
    assert_eq!(server.slow_consumer, SlowConsumerPolicy::Close);
    assert_eq!(server.backlog, 128);
    assert!(server.allowed_origins.allows(Some("https://chat.example.com")));
    assert!(!server.allowed_origins.allows(Some("https://evil.test")));
    let app = settings.app_config();
    assert_eq!(app.api_key.as_deref(), Some("k"));
    assert_eq!(app.protocol_limits.max_topic_len, 10);

    let other = self::settings(
        &["--limits-max-connections-per-ip", "5", "--timeouts-ping-interval", "10s", "--timeouts-ping-timeout", "3s"],
        &[],
    )
    .server_config();
    assert_eq!(other.max_connections_per_ip, Some(5));
    let keepalive = Keepalive { idle: Duration::from_secs(10), timeout: Duration::from_secs(3) };
    assert_eq!(other.protocol.keepalive, Some(keepalive));
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_settings_reach_the_codec_config() {
    let settings = settings(
        &[
            "--deflate-level",
            "1",
            "--deflate-server-max-window-bits=10",
            "--deflate-no-context-takeover",
            "--deflate-client-no-context-takeover-fallback=false",
            "--no-deflate",
        ],
        &[("FERROWS_DEFLATE_MIN_MESSAGE_SIZE", "1KiB")],
    );
    let deflate = settings.server_config().deflate;
    assert!(!deflate.enabled);
    assert_eq!((deflate.level, deflate.server_max_window_bits, deflate.client_max_window_bits), (1, 10, 13));
    assert!(deflate.server_no_context_takeover && deflate.client_no_context_takeover);
    assert!(!deflate.client_no_context_takeover_fallback);
    assert_eq!(deflate.min_message_size, 1024);
}

#[cfg(feature = "deflate")]
#[test]
fn the_deflate_defaults_are_a_servers() {
    let deflate = settings(&[], &[]).server_config().deflate;
    assert_eq!(deflate, ferrows::proto::deflate::DeflateConfig::server());
    assert_eq!(deflate, ServerConfig::default().deflate);
}

#[test]
fn rust_log_stands_in_for_an_unset_log_level() {
    let from_rust_log = settings(&[], &[("RUST_LOG", "debug")]);
    assert_eq!(from_rust_log.log_filter(), "debug");
    assert_eq!(from_rust_log.sources().to_string(), "environment RUST_LOG");
    assert_eq!(settings(&[], &[("RUST_LOG", "debug"), ("FERROWS_LOG_LEVEL", "warn")]).log_filter(), "warn");
    let file = temp_file("log_level = \"error\"\n");
    assert_eq!(settings(&["--config", file.path()], &[("RUST_LOG", "debug")]).log_filter(), "error");
}

#[test]
fn a_redis_password_is_a_secret_too() {
    let url = "redis://app:pa55@10.0.0.7:6379/0";
    let settings = settings(&["--redis-url", url], &[]);
    let text = settings.to_toml();
    assert!(!text.contains("pa55"), "{text}");
    assert!(
        text.contains(
            "\n# url = \"redis://app:...@10.0.0.7:6379/0\"  (set, not printed: give it here, in FERROWS_REDIS_URL or with --redis-url)\n"
        ),
        "{text}"
    );
    let e = load(&["--redis-url", "redis://app:***@10.0.0.7:6379"], &[]).expect_err("a masked password");
    assert!(e.to_string().contains("is a masked secret"), "{e}");
    // With no password there is nothing to hide.
    let plain = self::settings(&["--redis-url", "redis://10.0.0.7:6379"], &[]).to_toml();
    assert!(plain.contains("\nurl = \"redis://10.0.0.7:6379\"\n"), "{plain}");
}

#[test]
fn namespaces_come_from_tables_in_the_file_and_entries_in_flags() {
    let file = temp_file(
        "[topics]\nanonymous = true\nmax_subscribers = 100\n\n\
         [[namespaces]]\nprefix = \"news:\"\nclient_publish = false\n\n\
         [[namespaces]]\nprefix = \"news:vip:\"\nmax_subscribers = 5\n",
    );
    let settings = settings(&["--config", file.path()], &[]);
    let namespaces = settings.app_config().namespaces;
    let default = namespaces.of("lobby");
    assert!(default.anonymous && default.client_publish);
    assert_eq!(default.max_subscribers, 100);
    let news = namespaces.of("news:today");
    assert!(!news.anonymous && !news.client_publish, "a namespace's options do not inherit [topics]");
    assert_eq!(news.max_subscribers, 0);
    assert_eq!(namespaces.of("news:vip:x").max_subscribers, 5);
    assert_eq!(namespaces.prefix_of("news:vip:x"), Some("news:vip:"));
    // The same as flags, and --print-config reads back to the same settings.
    let flags = self::settings(
        &[
            "--topics-anonymous",
            "--topics-max-subscribers=100",
            "--namespaces=news: client_publish=false,news:vip: max_subscribers=5",
        ],
        &[],
    );
    assert_eq!(flags.app_config().namespaces, namespaces);
    let again = self::settings(&["--config", temp_file(&settings.to_toml()).path()], &[]);
    assert_eq!(again.app_config().namespaces, namespaces);

    error(&["--namespaces=news: colour=red"], &[], &["--namespaces", "colour"]);
    error(&["--namespaces=a: ,a: anonymous=true"], &[], &["\"a:\"", "twice"]);
    let untitled = temp_file("[[namespaces]]\nclient_publish = false\n");
    error(&["--config", untitled.path()], &[], &["namespaces", "prefix"]);
    let bad = temp_file("[[namespaces]]\nprefix = \"x:\"\nclient_publish = \"no\"\n");
    error(&["--config", bad.path()], &[], &["client_publish"]);
}
