//! The three layers a setting can be given in: the TOML file, the environment, the command line.

use std::path::Path;

use super::error::{ConfigError, Place};
use super::table::{index_of, sections, Kind, SETTINGS};
use super::value::{parse_text, parse_toml, Value};

/// The values one layer gives, by position in the settings table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer(pub(crate) Vec<Option<Value>>);

impl Default for Layer {
    fn default() -> Self {
        Layer(vec![None; SETTINGS.len()])
    }
}

impl Layer {
    fn set(&mut self, key: &str, value: Value) {
        if let Some(slot) = index_of(key).and_then(|i| self.0.get_mut(i)) {
            *slot = Some(value);
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Run,
    PrintConfig,
    Help,
    Version,
}

/// The command line, read.
#[derive(Debug)]
pub(crate) struct CommandLine {
    pub(crate) action: Action,
    /// `--config PATH`.
    pub(crate) config: Option<String>,
    pub(crate) layer: Layer,
}

/// Reads the arguments (without the program name). `--help` and `--version`
/// stop the reading where they stand.
pub(crate) fn parse_args(args: &[String]) -> Result<CommandLine, ConfigError> {
    let mut line = CommandLine { action: Action::Run, config: None, layer: Layer::default() };
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        if inline.is_some() && ["--print-config", "--no-deflate", "--deflate-no-context-takeover"].contains(&flag) {
            return Err(ConfigError::FlagValue { flag: flag.to_owned(), reason: "takes no value" });
        }
        match flag {
            "-h" | "--help" => return Ok(CommandLine { action: Action::Help, ..line }),
            "-V" | "--version" => return Ok(CommandLine { action: Action::Version, ..line }),
            "--print-config" => line.action = Action::PrintConfig,
            // Aliases kept from before every setting had its own flag.
            "--no-deflate" => line.layer.set("deflate.enabled", Value::Bool(false)),
            "--deflate-no-context-takeover" => {
                line.layer.set("deflate.server_no_context_takeover", Value::Bool(true));
                line.layer.set("deflate.client_no_context_takeover", Value::Bool(true));
            }
            "--config" => {
                let value = inline.or_else(|| args.next().cloned());
                line.config =
                    Some(value.ok_or(ConfigError::FlagValue { flag: flag.to_owned(), reason: "needs a path" })?);
            }
            _ => {
                let index = SETTINGS
                    .iter()
                    .position(|s| s.flag() == flag)
                    .ok_or_else(|| ConfigError::UnknownFlag(arg.clone()))?;
                let kind = SETTINGS[index].kind();
                let value = match (kind, inline) {
                    (_, Some(value)) => value,
                    // A bool flag takes the next argument only when it is not another flag;
                    // bare, it means true.
                    (Kind::Bool, None) => match args.next_if(|next| !next.starts_with('-')) {
                        Some(next) => next.clone(),
                        None => "true".to_owned(),
                    },
                    (_, None) => args
                        .next()
                        .cloned()
                        .ok_or(ConfigError::FlagValue { flag: flag.to_owned(), reason: "needs a value" })?,
                };
                let value = parse_text(kind, &value).map_err(|reason| ConfigError::Invalid {
                    place: Place::Flag(flag.to_owned()),
                    value: format!("{value:?}"),
                    reason,
                })?;
                let slot = &mut line.layer.0[index];
                match (slot.as_mut(), value) {
                    // A repeated list flag adds to what the command line gave before.
                    (Some(Value::List(before)), Value::List(more)) => before.extend(more),
                    (_, value) => *slot = Some(value),
                }
            }
        }
    }
    Ok(line)
}

/// Reads the `FERROWS_*` variables among `names`; any that is no setting
/// (other than `FERROWS_CONFIG`) is an error.
pub(crate) fn parse_env(
    env: &dyn Fn(&str) -> Option<String>,
    names: impl Iterator<Item = String>,
) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    let mut names: Vec<String> = names.filter(|n| n.starts_with("FERROWS_") && n != super::CONFIG_ENV).collect();
    // Reported in a stable order whatever order the process environment has.
    names.sort();
    for name in names {
        let index =
            SETTINGS.iter().position(|s| s.env_name() == name).ok_or_else(|| ConfigError::UnknownEnv(name.clone()))?;
        let invalid = |value: String, reason| ConfigError::Invalid { place: Place::Env(name.clone()), value, reason };
        let text = env(&name).ok_or_else(|| invalid("(not text)".into(), "expected valid UTF-8".into()))?;
        let value = parse_text(SETTINGS[index].kind(), &text).map_err(|reason| invalid(format!("{text:?}"), reason))?;
        layer.0[index] = Some(value);
    }
    Ok(layer)
}

/// Reads the TOML file's text; any key, at any level, that is no setting is an error.
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Layer, ConfigError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string().trim_end().to_owned() })?;
    let mut layer = Layer::default();
    let unknown = |key: String| ConfigError::UnknownKey { path: path.to_owned(), key };
    for (name, value) in &table {
        match value {
            toml::Value::Table(section) if sections().contains(&name.as_str()) => {
                for (key, value) in section {
                    let key = format!("{name}.{key}");
                    let index = index_of(&key).ok_or_else(|| unknown(key))?;
                    layer.0[index] = Some(file_value(path, index, value)?);
                }
            }
            _ if sections().contains(&name.as_str()) => {
                return Err(ConfigError::Invalid {
                    place: Place::File { path: path.to_owned(), key: name.clone() },
                    value: value.to_string(),
                    reason: format!("expected a section, [{name}]"),
                })
            }
            _ => {
                // A quoted dotted key ("limits.max_connections" = 1) is not the section's key.
                let index = index_of(name).filter(|_| !name.contains('.')).ok_or_else(|| unknown(name.clone()))?;
                layer.0[index] = Some(file_value(path, index, value)?);
            }
        }
    }
    Ok(layer)
}

fn file_value(path: &Path, index: usize, value: &toml::Value) -> Result<Value, ConfigError> {
    let setting = &SETTINGS[index];
    parse_toml(setting.kind(), value).map_err(|reason| ConfigError::Invalid {
        place: Place::File { path: path.to_owned(), key: setting.key().to_owned() },
        value: value.to_string(),
        reason,
    })
}
