//! Why a configuration cannot be loaded.

use std::fmt;
use std::path::PathBuf;

/// Where a value was given: the place an error message names.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A key of the TOML file.
    File {
        /// The file.
        path: PathBuf,
        /// The key path, `limits.max_connections`.
        key: String,
    },
    /// An environment variable, `FERROWS_LOOPS`.
    Env(String),
    /// A command-line flag, `--loops`.
    Flag(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::File { path, key } => write!(f, "{}: key {key}", path.display()),
            Place::Env(name) => write!(f, "environment variable {name}"),
            Place::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration that cannot be used; the binary prints it and exits with status 2.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that is not of its setting's form or out of its range.
    Invalid {
        /// Where the value was given.
        place: Place,
        /// The value as given (TOML syntax for a file value).
        value: String,
        /// What was expected instead.
        reason: String,
    },
    /// A key of the TOML file that is no setting.
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key path, `limits.max_conections`.
        key: String,
    },
    /// A `FERROWS_*` environment variable that is no setting.
    UnknownEnv(String),
    /// A command-line argument that is no flag.
    UnknownFlag(String),
    /// A flag given without the value it needs, or a value given to a flag that takes none.
    FlagValue {
        /// The flag.
        flag: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Settings that do not go together (`tls.key` without `tls.cert`, say).
    Conflict(String),
    /// The file cannot be read or is not TOML.
    File {
        /// The file.
        path: PathBuf,
        /// The reader's or parser's message.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { place, value, reason } => write!(f, "{place}: bad value {value}: {reason}"),
            ConfigError::UnknownKey { path, key } => {
                write!(f, "{}: unknown key {key} (`ferrows --help` lists the settings)", path.display())
            }
            ConfigError::UnknownEnv(name) => {
                write!(f, "unknown environment variable {name} (`ferrows --help` lists the settings)")
            }
            ConfigError::UnknownFlag(flag) => write!(f, "unknown argument {flag:?} (see --help)"),
            ConfigError::FlagValue { flag, reason } => write!(f, "flag {flag}: {reason}"),
            ConfigError::Conflict(message) => f.write_str(message),
            ConfigError::File { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}
