//! The server binary's settings: defaults, a TOML file, `FERROWS_*` environment variables and flags.
//!
//! Every setting has a key in the file (`limits.max_connections`), an
//! environment variable (`FERROWS_LIMITS_MAX_CONNECTIONS`) and a flag
//! (`--limits-max-connections`). Flags win over the environment, which wins
//! over the file (`--config PATH` or `FERROWS_CONFIG`), which wins over the
//! defaults. One table, [`settings()`], drives the parsing of every layer,
//! `--help` and `--print-config`.
//!
//! Loading reads nothing from the process itself, so it can be driven with
//! any arguments and environment:
//!
//! ```
//! use ferrows::config::{Loaded, Settings};
//!
//! let args = ["--loops".to_owned(), "2".to_owned()];
//! let env = |name: &str| (name == "FERROWS_LISTEN").then(|| "127.0.0.1:0".to_owned());
//! let names = ["FERROWS_LISTEN".to_owned(), "HOME".to_owned()].into_iter();
//! let Loaded::Run(settings) = Settings::load(&args, &env, names)? else { unreachable!() };
//! assert_eq!(settings.loops(), Some(2));
//! assert_eq!(settings.listen(), ["127.0.0.1:0".parse()?]);
//! assert_eq!(settings.sources().to_string(), "environment FERROWS_LISTEN, flags");
//! assert_eq!(settings.server_config().max_connections, 20_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod convert;
mod error;
mod layers;
mod render;
mod table;
mod value;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Place};
pub use render::help;
pub use table::Setting;

use crate::app::RouteSpec;
use crate::runtime::OriginPolicy;
use layers::{Action, Layer};
use table::SETTINGS;
use value::Value;

/// The environment variable naming the configuration file when `--config` does not.
pub const CONFIG_ENV: &str = "FERROWS_CONFIG";

/// Every setting, in the order of `--help` and `--print-config`.
#[must_use]
pub fn settings() -> &'static [Setting] {
    SETTINGS
}

/// What the command line asks the binary to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// Run the server with these settings.
    Run(Settings),
    /// Print these settings as TOML ([`Settings::to_toml`]) and exit.
    PrintConfig(Settings),
    /// Print [`help()`] and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// Which layer gave a setting its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File,
    /// An environment variable (`RUST_LOG` too, for `log_level`).
    Env,
    /// A command-line flag.
    Flag,
}

/// The effective settings, every value checked.
///
/// Two settings are equal when every value is; where the values came from is not compared.
#[derive(Debug, Clone)]
pub struct Settings {
    values: Vec<Value>,
    sources: Vec<Source>,
    file: Option<PathBuf>,
    /// Environment variables that gave a value, in the order they were read.
    env_names: Vec<String>,
    // Typed forms of the list settings, made once.
    listen: Vec<SocketAddr>,
    tls_listen: Vec<SocketAddr>,
    routes: Vec<RouteSpec>,
    origins: OriginPolicy,
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::defaults()
    }
}

impl Settings {
    /// Every setting at its default.
    #[must_use]
    pub fn defaults() -> Self {
        let values = SETTINGS
            .iter()
            .map(|s| {
                // Invariant: every default parses; `table`'s tests load them all.
                value::parse_text(s.kind(), s.default_text())
                    .unwrap_or_else(|reason| panic!("the default of {} is bad: {reason}", s.key()))
            })
            .collect();
        Self::from_values(values, vec![Source::Default; SETTINGS.len()])
    }

    /// Reads the command line `args` (without the program name), the environment and the file.
    ///
    /// `env` looks up one variable; `env_names` are the names of all variables
    /// set, so that a mistyped `FERROWS_*` name is reported rather than ignored.
    /// The file is `--config PATH`, else `FERROWS_CONFIG`, else none. When no
    /// layer sets `log_level`, a non-empty `RUST_LOG` is used.
    ///
    /// # Errors
    ///
    /// An unknown flag, `FERROWS_*` variable or file key; a file that cannot be
    /// read or parsed; a value of the wrong form or out of range. The error names
    /// the flag, variable or file key.
    pub fn load(
        args: &[String],
        env: &dyn Fn(&str) -> Option<String>,
        env_names: impl Iterator<Item = String>,
    ) -> Result<Loaded, ConfigError> {
        let line = layers::parse_args(args)?;
        match line.action {
            Action::Help => return Ok(Loaded::Help),
            Action::Version => return Ok(Loaded::Version),
            Action::Run | Action::PrintConfig => {}
        }
        let env_layer = layers::parse_env(env, env_names)?;
        let file = line.config.or_else(|| env(CONFIG_ENV)).filter(|p| !p.is_empty()).map(PathBuf::from);
        let file_layer = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::File { path: path.clone(), message: format!("cannot read: {e}") })?;
                layers::parse_file(path, &text)?
            }
            None => Layer::default(),
        };
        let mut values = Self::defaults().values;
        let mut sources = vec![Source::Default; SETTINGS.len()];
        let mut env_names = Vec::new();
        for (layer, source) in [(file_layer, Source::File), (env_layer, Source::Env), (line.layer, Source::Flag)] {
            for (index, value) in layer.0.into_iter().enumerate() {
                if let Some(value) = value {
                    values[index] = value;
                    sources[index] = source;
                    if source == Source::Env {
                        env_names.push(SETTINGS[index].env_name());
                    }
                }
            }
        }
        if let Some(index) = table::index_of("log_level").filter(|i| sources[*i] == Source::Default) {
            // RUST_LOG is env_logger's own variable: it stands in for the default, unchecked.
            if let Some(filter) = env("RUST_LOG").filter(|f| !f.trim().is_empty()) {
                values[index] = Value::Text(filter);
                sources[index] = Source::Env;
                env_names.push("RUST_LOG".to_owned());
            }
        }
        let mut settings = Self::from_values(values, sources);
        settings.file = file;
        settings.env_names = env_names;
        settings.check_combinations()?;
        Ok(match line.action {
            Action::PrintConfig => Loaded::PrintConfig(settings),
            _ => Loaded::Run(settings),
        })
    }

    fn from_values(values: Vec<Value>, sources: Vec<Source>) -> Self {
        let mut settings = Settings {
            values,
            sources,
            file: None,
            env_names: Vec::new(),
            listen: Vec::new(),
            tls_listen: Vec::new(),
            routes: Vec::new(),
            origins: OriginPolicy::any(),
        };
        // Invariant: list entries were checked where they entered, by these same
        // parsers, and written back canonically; parsing them again cannot fail.
        settings.listen = settings.list("listen").iter().filter_map(|a| a.parse().ok()).collect();
        settings.tls_listen = settings.list("tls.listen").iter().filter_map(|a| a.parse().ok()).collect();
        settings.routes = settings.list("routes").iter().filter_map(|r| r.parse().ok()).collect();
        settings.origins = OriginPolicy::list(settings.list("allowed_origins"))
            .unwrap_or_else(|e| panic!("allowed_origins was checked entry by entry: {e}"));
        settings
    }

    /// The value of `key` in its flag and environment form (lists comma-separated),
    /// or `None` for a key that is no setting. `api_key` is not masked here.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<String> {
        table::index_of(key).map(|i| self.values[i].to_text())
    }

    /// Which layer gave `key` its value, or `None` for a key that is no setting.
    #[must_use]
    pub fn source(&self, key: &str) -> Option<Source> {
        table::index_of(key).map(|i| self.sources[i])
    }

    /// Where the values came from, for the start-up log: `file F, environment A, B, flags`, or `defaults`.
    #[must_use]
    pub fn sources(&self) -> Sources<'_> {
        Sources(self)
    }

    /// The addresses to listen on (at least one).
    #[must_use]
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The certificate chain and key files (`tls.cert`, `tls.key`), when TLS is on.
    #[must_use]
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        let (cert, key) = (self.text("tls.cert"), self.text("tls.key"));
        (!cert.is_empty() && !key.is_empty()).then(|| (Path::new(cert), Path::new(key)))
    }

    /// The addresses that serve `wss://`: `tls.listen`, or every `listen`
    /// address when that is empty. None without a certificate.
    #[must_use]
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        match (self.tls_files(), self.tls_listen.is_empty()) {
            (None, _) => &[],
            (Some(_), true) => &self.listen,
            (Some(_), false) => &self.tls_listen,
        }
    }

    /// The addresses that serve plain `ws://`: `listen`, unless every one of
    /// them serves `wss://` (a certificate and no `tls.listen`).
    #[must_use]
    pub fn plain_addrs(&self) -> &[SocketAddr] {
        if self.tls_files().is_some() && self.tls_listen.is_empty() {
            &[]
        } else {
            &self.listen
        }
    }

    /// The cluster's settings when `redis.url` is set (feature `redis`).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn cluster_config(&self) -> Option<crate::cluster::ClusterConfig> {
        let url = self.text("redis.url");
        if url.is_empty() {
            return None;
        }
        let mut config = crate::cluster::ClusterConfig::new(url);
        config.prefix = self.text("redis.prefix").to_owned();
        if !self.text("redis.node_id").is_empty() {
            config.node_id = self.text("redis.node_id").to_owned();
        }
        config.connect_timeout = self.duration("redis.connect_timeout");
        config.max_backoff = self.duration("redis.max_backoff");
        config.ping_interval = self.duration("redis.ping_interval");
        config.queue = self.usize("redis.queue");
        config.presence_ttl = self.duration("redis.presence_ttl");
        config.max_message = self.usize("limits.max_message_size").saturating_add(64 << 10);
        Some(config)
    }

    /// Whether `redis.url` is set: the node is to join a cluster.
    #[must_use]
    pub fn cluster_wanted(&self) -> bool {
        !self.text("redis.url").is_empty()
    }

    /// `tls.cert` and `tls.key` come together, and `tls.listen` needs them;
    /// a Redis URL must be one the bridge can use.
    fn check_combinations(&self) -> Result<(), ConfigError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = self.cluster_config() {
            cluster.check().map_err(|e| ConfigError::Conflict(format!("redis.url: {e}")))?;
        }
        let (cert, key) = (self.text("tls.cert"), self.text("tls.key"));
        if cert.is_empty() != key.is_empty() {
            return Err(ConfigError::Conflict(
                "tls.cert and tls.key go together: set both (FERROWS_TLS_CERT, FERROWS_TLS_KEY) or neither".into(),
            ));
        }
        if cert.is_empty() && !self.tls_listen.is_empty() {
            return Err(ConfigError::Conflict("tls.listen needs tls.cert and tls.key".into()));
        }
        Ok(())
    }

    /// The number of event loops, or `None` for one per available core.
    #[must_use]
    pub fn loops(&self) -> Option<usize> {
        Some(self.usize("loops")).filter(|n| *n > 0)
    }

    /// The log filter, in env_logger syntax.
    #[must_use]
    pub fn log_filter(&self) -> &str {
        self.text("log_level")
    }

    /// Whether permessage-deflate is to be negotiated (`deflate.enabled`),
    /// whether or not the `deflate` feature is compiled in.
    #[must_use]
    pub fn deflate_enabled(&self) -> bool {
        self.bool("deflate.enabled")
    }

    /// The value of a setting the code names; every name used is in the table.
    fn value(&self, key: &str) -> &Value {
        match table::index_of(key) {
            Some(index) => &self.values[index],
            // Invariant: the accessors name only keys of the table; the tests call every accessor.
            None => panic!("{key} is not in the settings table"),
        }
    }

    fn text(&self, key: &str) -> &str {
        match self.value(key) {
            Value::Text(text) => text,
            other => panic!("{key} is {other:?}, not text"),
        }
    }

    fn list(&self, key: &str) -> &[String] {
        match self.value(key) {
            Value::List(items) => items,
            other => panic!("{key} is {other:?}, not a list"),
        }
    }

    fn bool(&self, key: &str) -> bool {
        match self.value(key) {
            Value::Bool(b) => *b,
            other => panic!("{key} is {other:?}, not a bool"),
        }
    }

    /// A count or size, saturated to `usize` (ranges are checked on entry).
    fn usize(&self, key: &str) -> usize {
        match self.value(key) {
            Value::Count(n) | Value::Size(n) => usize::try_from(*n).unwrap_or(usize::MAX),
            other => panic!("{key} is {other:?}, not a number"),
        }
    }

    fn duration(&self, key: &str) -> std::time::Duration {
        match self.value(key) {
            Value::Duration(d) => *d,
            other => panic!("{key} is {other:?}, not a duration"),
        }
    }
}

/// Where settings came from; see [`Settings::sources`].
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a>(&'a Settings);

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = self.0;
        let mut parts = Vec::new();
        if let Some(path) = &settings.file {
            parts.push(format!("file {}", path.display()));
        }
        if !settings.env_names.is_empty() {
            parts.push(format!("environment {}", settings.env_names.join(", ")));
        }
        if settings.sources.contains(&Source::Flag) {
            parts.push("flags".to_owned());
        }
        if parts.is_empty() {
            f.write_str("defaults")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}
