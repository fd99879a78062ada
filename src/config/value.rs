//! Setting values: parsed from flag and environment text or from TOML, and written back.
//!
//! Every value is checked where it enters, against its setting's [`Kind`], so
//! a bad value is reported with the place it came from.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use super::table::{Item, Kind};
use crate::app::{Namespace, NamespaceOptions, Namespaces, RouteSpec};
use crate::runtime::OriginPolicy;

/// A checked value of a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bool(bool),
    Count(u64),
    Size(u64),
    Duration(Duration),
    /// Text, secrets, log filters and choices.
    Text(String),
    /// List entries, each checked, in their canonical text form.
    List(Vec<String>),
}

/// Why a value was refused: a sentence for after "bad value ...: ".
pub(crate) type Reason = String;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SIZE_UNITS: [(&str, u64); 4] = [("GiB", GIB), ("MiB", MIB), ("KiB", KIB), ("B", 1)];
const DURATION_UNITS_MS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)];

/// The usual stand-in for a hidden secret. Refused as a secret's value, so
/// that a configuration printed by some tool with its secrets masked never
/// authenticates anyone with the mask.
const MASK: &str = "***";

/// Reads a value from its flag or environment form (lists comma-separated).
pub(crate) fn parse_text(kind: Kind, text: &str) -> Result<Value, Reason> {
    let trimmed = text.trim();
    match kind {
        Kind::Bool => match trimmed {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(expected(kind)),
        },
        Kind::Count { .. } => check(kind, trimmed.parse().map(Value::Count).map_err(|_| expected(kind))?),
        Kind::Size { .. } => check(kind, Value::Size(parse_size(trimmed).ok_or_else(|| expected(kind))?)),
        Kind::Duration { .. } => check(kind, Value::Duration(parse_duration(trimmed).ok_or_else(|| expected(kind))?)),
        Kind::Text => Ok(Value::Text(text.to_owned())),
        Kind::Secret | Kind::SecretUrl => check(kind, Value::Text(text.to_owned())),
        Kind::LogFilter | Kind::Choice(_) => check(kind, Value::Text(trimmed.to_owned())),
        Kind::List { .. } => {
            let items = text.split(',').map(str::trim).filter(|i| !i.is_empty()).map(str::to_owned).collect();
            check(kind, Value::List(items))
        }
    }
}

/// Reads a value from the TOML file.
pub(crate) fn parse_toml(kind: Kind, value: &toml::Value) -> Result<Value, Reason> {
    let parsed = match (kind, value) {
        (Kind::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (Kind::Count { .. }, toml::Value::Integer(n)) => Value::Count(u64::try_from(*n).map_err(|_| expected(kind))?),
        (Kind::Size { .. }, toml::Value::Integer(n)) => Value::Size(u64::try_from(*n).map_err(|_| expected(kind))?),
        (Kind::Duration { .. }, toml::Value::Integer(n)) => {
            let seconds = u64::try_from(*n).map_err(|_| expected(kind))?;
            Value::Duration(Duration::from_secs(seconds))
        }
        (Kind::Size { .. } | Kind::Duration { .. }, toml::Value::String(s)) => return parse_text(kind, s),
        (Kind::Text | Kind::Secret | Kind::SecretUrl | Kind::LogFilter | Kind::Choice(_), toml::Value::String(s)) => {
            Value::Text(s.clone())
        }
        (Kind::List { item: Item::Namespace, .. }, toml::Value::Array(items)) => {
            Value::List(items.iter().map(namespace_entry).collect::<Result<_, _>>()?)
        }
        (Kind::List { .. }, toml::Value::Array(items)) => {
            let items = items.iter().map(|item| item.as_str().map(|s| s.trim().to_owned()));
            Value::List(items.collect::<Option<_>>().ok_or_else(|| expected(kind))?)
        }
        _ => return Err(expected(kind)),
    };
    check(kind, parsed)
}

/// A namespace of the file, in its entry form: a string as it is, a table
/// (`prefix` and options) written as `PREFIX OPTION=VALUE ...`.
fn namespace_entry(item: &toml::Value) -> Result<String, Reason> {
    let table = match item {
        toml::Value::String(text) => return Ok(text.trim().to_owned()),
        toml::Value::Table(table) => table,
        _ => return Err("expected [[namespaces]] tables with a `prefix`, or strings".into()),
    };
    let Some(toml::Value::String(prefix)) = table.get("prefix") else {
        return Err("a [[namespaces]] table needs `prefix`, a string".into());
    };
    let mut entry = prefix.clone();
    for (key, value) in table.iter().filter(|(key, _)| *key != "prefix") {
        let value = match value {
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Integer(n) => n.to_string(),
            // Durations: "90s", "5m".
            toml::Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
            _ => return Err(format!("namespace {prefix:?}: `{key}` takes true, false, a whole number or a duration")),
        };
        entry.push_str(&format!(" {key}={value}"));
    }
    Ok(entry)
}

/// Where the secret is in a value of `kind`: all of a [`Kind::Secret`], the
/// password of a [`Kind::SecretUrl`]; `None` when the value holds none. What
/// `--print-config` leaves out and where the mask is refused: one rule.
pub(crate) fn secret_span(kind: Kind, text: &str) -> Option<Range<usize>> {
    match kind {
        Kind::Secret => (!text.is_empty()).then_some(0..text.len()),
        Kind::SecretUrl => {
            // RFC 3986 §3.2: the authority runs from `//` to the next `/`, `?` or `#`;
            // its userinfo, up to the last `@`, is `user:password`.
            let start = text.find("://")? + 3;
            let end = text[start..].find(['/', '?', '#']).map_or(text.len(), |i| start + i);
            let at = start + text[start..end].rfind('@')?;
            let colon = start + text[start..at].find(':')? + 1;
            (colon < at).then_some(colon..at)
        }
        _ => None,
    }
}

/// Checks a parsed value against the kind's range and item rules; canonicalizes list entries.
fn check(kind: Kind, value: Value) -> Result<Value, Reason> {
    match (kind, value) {
        (Kind::Count { min, max }, Value::Count(n)) if n < min || n > max => Err(expected(kind)),
        (Kind::Size { min }, Value::Size(n)) if n < min => Err(expected(kind)),
        (Kind::Duration { nonzero: true }, Value::Duration(d)) if d.is_zero() => Err(expected(kind)),
        (Kind::Choice(words), Value::Text(t)) if !words.contains(&t.as_str()) => Err(expected(kind)),
        (_, Value::Text(t)) if secret_span(kind, &t).is_some_and(|span| t[span].trim() == MASK) => Err(format!(
            "{MASK:?} is a masked secret, not the secret itself; give the real value here, in the environment \
             or with the flag (`ferrows --help` names them)"
        )),
        (Kind::LogFilter, Value::Text(t)) => check_log_filter(&t).map(|()| Value::Text(t)),
        (Kind::List { item, non_empty }, Value::List(items)) => {
            if non_empty && items.is_empty() {
                return Err("expected at least one entry".into());
            }
            let many = items.len() > 1;
            let check = |text: &String| match check_item(item, text) {
                // Origin and route messages quote the entry themselves.
                Err(reason) if many && matches!(item, Item::Addr | Item::Token) => Err(format!("{text:?}: {reason}")),
                checked => checked,
            };
            let items: Vec<String> = items.iter().map(check).collect::<Result<_, _>>()?;
            if item == Item::Namespace {
                let prefixes = items.iter().filter_map(|entry| entry.split_whitespace().next());
                let namespaces = prefixes.map(|prefix| Namespace::new(prefix, NamespaceOptions::default()));
                Namespaces::new(
                    NamespaceOptions::default(),
                    namespaces.collect::<Result<_, _>>().map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(Value::List(items))
        }
        (_, value) => Ok(value),
    }
}

fn check_item(item: Item, text: &str) -> Result<String, Reason> {
    match item {
        Item::Addr => text
            .parse::<SocketAddr>()
            .map(|a| a.to_string())
            .map_err(|_| "expected an address like 127.0.0.1:9001 or [::1]:9001".to_owned()),
        Item::Origin => OriginPolicy::list([text]).map(|_| text.to_owned()).map_err(|e| e.to_string()),
        // RFC 6455 §4.1: each subprotocol is a token (RFC 7230 §3.2.6).
        Item::Token if !text.is_empty() && text.bytes().all(is_tchar) => Ok(text.to_owned()),
        Item::Token => Err("expected a subprotocol name (letters, digits and !#$%&'*+-.^_`|~)".to_owned()),
        Item::Route => text.parse::<RouteSpec>().map(|r| r.to_string()).map_err(|e| e.to_string()),
        Item::Namespace => text.parse::<Namespace>().map(|n| n.to_string()).map_err(|e| format!("{text:?}: {e}")),
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// env_logger takes almost any word as a module name; what it cannot use is a
/// `module=LEVEL` whose level is not a level, so that is what is refused.
fn check_log_filter(filter: &str) -> Result<(), Reason> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    // Past a `/` comes a message filter, free text.
    let directives = filter.split_once('/').map_or(filter, |(d, _)| d);
    for directive in directives.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.split_once('=').map(|(_, level)| level.trim());
        let bad_level = level.is_some_and(|l| !l.is_empty() && !LEVELS.iter().any(|k| k.eq_ignore_ascii_case(l)));
        if bad_level || directive.contains(char::is_whitespace) {
            return Err(format!(
                "{directive:?}: expected an env_logger filter like `info` or `warn,ferrows=debug` \
                 (levels: {})",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// The form a kind's values take, as the end of an error message.
pub(crate) fn expected(kind: Kind) -> Reason {
    match kind {
        Kind::Bool => "expected true or false".into(),
        Kind::Count { min, max } if max >= u64::from(u32::MAX) => format!("expected a whole number, at least {min}"),
        Kind::Count { min, max } => format!("expected a whole number from {min} to {max}"),
        Kind::Size { min } => format!(
            "expected a size like 512B, 64KiB, 16MiB or 1GiB, or a whole number of bytes, at least {}",
            render_size(min)
        ),
        Kind::Duration { nonzero } => format!(
            "expected a duration like 500ms, 10s, 2m or 1h, or a whole number of seconds{}",
            if nonzero { ", more than zero" } else { "" }
        ),
        Kind::Text | Kind::Secret | Kind::SecretUrl | Kind::LogFilter => "expected a string".into(),
        Kind::Choice(words) => format!("expected one of {}", words.join(", ")),
        Kind::List { .. } => "expected a list of strings (comma-separated outside the file)".into(),
    }
}

/// `512B`, `64KiB`, `16MiB`, `1GiB`, or a bare number of bytes.
fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let scale = if unit.is_empty() { 1 } else { SIZE_UNITS.iter().find(|(u, _)| *u == unit)?.1 };
    number.checked_mul(scale)
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = split_number(text)?;
    let scale = if unit.is_empty() { 1000 } else { DURATION_UNITS_MS.iter().find(|(u, _)| *u == unit)?.1 };
    number.checked_mul(scale).map(Duration::from_millis)
}

/// Splits `16MiB` into `(16, "MiB")`; `None` without leading digits.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number = text[..digits].parse().ok()?;
    Some((number, text[digits..].trim_start()))
}

/// A size in the largest unit that divides it, or a bare number of bytes.
pub(crate) fn render_size(bytes: u64) -> String {
    match SIZE_UNITS.iter().find(|(_, scale)| *scale > 1 && bytes > 0 && bytes % scale == 0) {
        Some((unit, scale)) => format!("{}{unit}", bytes / scale),
        None => bytes.to_string(),
    }
}

/// A duration in the largest unit that divides it (durations are whole milliseconds).
pub(crate) fn render_duration(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    match DURATION_UNITS_MS.iter().find(|(_, scale)| ms > 0 && ms % scale == 0) {
        Some((unit, scale)) => format!("{}{unit}", ms / scale),
        None => "0s".into(),
    }
}

impl Value {
    /// The flag and environment form (lists comma-separated); it parses back to the same value.
    pub(crate) fn to_text(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Count(n) => n.to_string(),
            Value::Size(n) => render_size(*n),
            Value::Duration(d) => render_duration(*d),
            Value::Text(t) => t.clone(),
            Value::List(items) => items.join(","),
        }
    }

    /// The TOML form; it parses back to the same value.
    pub(crate) fn to_toml(&self) -> String {
        let string = |s: &str| toml::Value::String(s.to_owned()).to_string();
        match self {
            Value::Bool(_) | Value::Count(_) => self.to_text(),
            Value::Size(n) if *n < KIB || n % KIB != 0 => n.to_string(),
            Value::Size(_) | Value::Duration(_) => string(&self.to_text()),
            Value::Text(t) => string(t),
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(|i| string(i)).collect();
                let one_line = format!("[{}]", items.join(", "));
                if one_line.len() <= 80 {
                    one_line
                } else {
                    format!("[\n{}]", items.iter().map(|i| format!("    {i},\n")).collect::<String>())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes) in [("512B", 512), ("64KiB", 64 << 10), ("16MiB", 16 << 20), ("1GiB", 1 << 30), ("7", 7)] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
        }
        for bad in ["", "MiB", "16MB", "1.5KiB", "-1", "99999999999999999999GiB"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        for bytes in [0, 64, 1536, 4096, 16 << 20, 3 << 30] {
            assert_eq!(parse_size(&render_size(bytes)), Some(bytes));
        }
        assert_eq!(render_size(64 << 10), "64KiB");
    }

    #[test]
    fn durations() {
        for (text, ms) in [("500ms", 500), ("10s", 10_000), ("2m", 120_000), ("1h", 3_600_000), ("3", 3000)] {
            assert_eq!(parse_duration(text), Some(Duration::from_millis(ms)), "{text}");
        }
        for bad in ["", "s", "1.5s", "10 parsecs", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        for ms in [0, 1, 1500, 60_000, 5_400_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&render_duration(d)), Some(d));
        }
    }

    #[test]
    fn log_filters() {
        for good in ["info", "warn,ferrows=debug", "ferrows::runtime=TRACE", "off", "debug/accept", "ferrows"] {
            assert_eq!(check_log_filter(good), Ok(()), "{good}");
        }
        for bad in ["ferrows=loud", "info, my module"] {
            assert!(check_log_filter(bad).is_err(), "{bad}");
        }
    }
}
