//! `--help` and `--print-config`, both written from the settings table.

use std::fmt::Write;

use super::table::{Item, Kind, SETTINGS};
use super::value::{secret_span, Value};
use super::Settings;

/// The text of `ferrows --help`: every flag with its environment variable, default and meaning.
#[must_use]
pub fn help() -> String {
    let mut out = format!(
        "\
ferrows {}: a WebSocket server

Usage: ferrows [--config PATH] [--SETTING VALUE]...

A setting is taken from its flag, else its environment variable, else its key in the
TOML file named by --config PATH (or FERROWS_CONFIG), else its default. `--flag VALUE`
and `--flag=VALUE` both work; a bool flag alone means true. Lists are comma-separated in
flags and the environment, and a list flag may be repeated. Durations: 500ms, 10s, 2m,
1h (a bare number is seconds). Sizes: 512B, 64KiB, 16MiB, 1GiB (a bare number is bytes).

Options:
  --config PATH                  the TOML file of settings (env {})
  --print-config                 print the effective settings as TOML, then exit
  --no-deflate                   the same as --deflate-enabled=false
  --deflate-no-context-takeover  the same as --deflate-server-no-context-takeover
                                 and --deflate-client-no-context-takeover
  -h, --help                     print this help, then exit
  -V, --version                  print the version, then exit

Settings (flag, environment variable, default):
",
        env!("CARGO_PKG_VERSION"),
        super::CONFIG_ENV,
    );
    let mut section = None;
    for setting in SETTINGS {
        if setting.section() != section {
            section = setting.section();
            let _ = writeln!(out, "\n  [{}]", section.unwrap_or_default());
        }
        let default = match setting.default_text() {
            "" => "none",
            text => text,
        };
        let _ = writeln!(
            out,
            "  {} {}  {}  [default: {default}]\n      {}",
            setting.flag(),
            metavar(setting.kind()),
            setting.env_name(),
            setting.help()
        );
    }
    out.push_str(
        "
Route handlers: demo (the chat page), echo, room (echo_to_sender=false keeps a member's
messages from coming back to it), pubsub (the JSON protocol), publish (POST a body to a
topic), metrics (Prometheus text), health. Logs go to stderr. SIGINT or SIGTERM drains
the sessions and stops the server; a second signal stops it at once.
",
    );
    out
}

fn metavar(kind: Kind) -> String {
    let name = match kind {
        Kind::Bool => "[true|false]",
        Kind::Count { .. } => "N",
        Kind::Size { .. } => "SIZE",
        Kind::Duration { .. } => "DURATION",
        Kind::Text => "TEXT",
        Kind::Secret => "KEY",
        Kind::SecretUrl => "URL",
        Kind::LogFilter => "FILTER",
        Kind::Choice(words) => return words.join("|"),
        Kind::List { item: Item::Addr, .. } => "ADDR,...",
        Kind::List { item: Item::Origin, .. } => "ORIGIN,...",
        Kind::List { item: Item::Token, .. } => "NAME,...",
        Kind::List { item: Item::Route, .. } => "ROUTE,...",
        Kind::List { item: Item::Namespace, .. } => "NAMESPACE,...",
    };
    name.to_owned()
}

impl Settings {
    /// The settings as a TOML file that `--config` reads back to the same settings,
    /// each key under a comment saying what it does. A secret that is set
    /// (`api_key`) is left out, on a comment line that says how to give it.
    #[must_use]
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# ferrows settings in effect; `ferrows --config FILE` reads this back.\n");
        let mut section = None;
        for (setting, value) in SETTINGS.iter().zip(&self.values) {
            if setting.section() != section {
                section = setting.section();
                let _ = writeln!(out, "\n[{}]", section.unwrap_or_default());
            }
            let _ = writeln!(out, "# {}", setting.help());
            let secret = match value {
                Value::Text(text) => secret_span(setting.kind(), text).map(|span| (text, span)),
                _ => None,
            };
            match secret {
                // A secret is never printed, not even masked: a mask read back must not become a key.
                Some((text, span)) => {
                    let _ = writeln!(
                        out,
                        "# {} = \"{}...{}\"  (set, not printed: give it here, in {} or with {})",
                        setting.name(),
                        &text[..span.start],
                        &text[span.end..],
                        setting.env_name(),
                        setting.flag()
                    );
                }
                None => {
                    let _ = writeln!(out, "{} = {}", setting.name(), value.to_toml());
                }
            }
        }
        out
    }
}
