//! Namespaces: options per topic prefix.
//!
//! A topic belongs to the namespace of the longest configured prefix it
//! starts with (`chat:` for `chat:lobby`), or to the default namespace. The
//! namespace says who may subscribe and publish, and how many may subscribe.
//!
//! In the TOML file the default namespace's options are the `[topics]`
//! table and every other namespace is a `[[namespaces]]` table; in flags and
//! the environment a namespace is one list entry,
//! `PREFIX [OPTION=VALUE ...]` with the options of [`NamespaceOptions`]:
//!
//! ```
//! use ferrows::app::{Namespace, Namespaces, NamespaceOptions};
//!
//! let news: Namespace = "news: anonymous=true client_publish=false".parse().unwrap();
//! let namespaces = Namespaces::new(NamespaceOptions::default(), vec![news]).unwrap();
//! assert!(!namespaces.of("news:today").client_publish);
//! assert!(namespaces.of("chat:lobby").client_publish);
//! assert_eq!(namespaces.prefix_of("news:today"), Some("news:"));
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// `500ms`, `10s`, `5m`, `1h`, or a whole number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let millis = match &text[digits..] {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

/// What a namespace allows. Options a namespace does not give take the
/// defaults below, not the default namespace's.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceOptions {
    /// Whether clients without a token may subscribe to (or join) its topics
    /// when the server checks tokens (default false). Without a key
    /// configured every client is anonymous and allowed.
    pub anonymous: bool,
    /// Whether clients may publish to its topics (`/pubsub` publish, a room
    /// member's message); when false only the backend's HTTP API may (default true).
    pub client_publish: bool,
    /// Most subscribers of one topic on this node, room members and `/pubsub`
    /// subscribers together (0, the default: no limit). Past it a room answers
    /// 503 and a subscribe gets the error `topic_full`.
    pub max_subscribers: usize,
    /// Most publications kept per topic, for the `history` request and the
    /// `GET /api/history/{topic}` call (0, the default: no history, and the
    /// topic's messages carry no position).
    pub history_size: usize,
    /// How long a topic's history outlives its last publication (default 300 s).
    pub history_ttl: Duration,
    /// Whether the node keeps who subscribes to each topic (client id, user,
    /// since when), for the `presence` request and `GET /api/presence/{topic}`.
    pub presence: bool,
    /// Whether subscribers get `{"type":"join",...}` and `{"type":"leave",...}`
    /// as others come and go (needs `presence`).
    pub join_leave: bool,
}

impl Default for NamespaceOptions {
    fn default() -> Self {
        Self {
            anonymous: false,
            client_publish: true,
            max_subscribers: 0,
            history_size: 0,
            history_ttl: Duration::from_secs(300),
            presence: false,
            join_leave: false,
        }
    }
}

/// A configured namespace: a prefix and its options.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The topic prefix, such as `news:`: 1 to 256 bytes without whitespace,
    /// commas or control characters.
    pub prefix: String,
    /// What its topics allow.
    pub options: NamespaceOptions,
}

impl Namespace {
    /// A namespace of `prefix` with `options`.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::BadPrefix`] for a prefix outside the rule of [`prefix`](Self::prefix).
    pub fn new(prefix: &str, options: NamespaceOptions) -> Result<Self, NamespaceError> {
        let valid = (1..=256).contains(&prefix.len())
            && !prefix.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',');
        if !valid {
            return Err(NamespaceError::BadPrefix);
        }
        Ok(Self { prefix: prefix.to_owned(), options })
    }
}

/// Why a namespace entry was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceError {
    /// A prefix that is empty, too long, or holds whitespace, a comma or a control character.
    BadPrefix,
    /// An option that is none of those of [`NamespaceOptions`].
    UnknownOption(String),
    /// An option's value of the wrong form.
    BadValue(String),
    /// Two namespaces with the same prefix.
    Duplicate(String),
}

impl fmt::Display for NamespaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPrefix => {
                f.write_str("a namespace prefix is 1 to 256 bytes without whitespace, commas or control characters")
            }
            Self::UnknownOption(name) => {
                write!(
                    f,
                    "unknown namespace option {name:?} (expected anonymous, client_publish, max_subscribers, \
                     history_size, history_ttl, presence or join_leave)"
                )
            }
            Self::BadValue(name) => write!(f, "bad value for the namespace option {name:?}"),
            Self::Duplicate(prefix) => write!(f, "the namespace prefix {prefix:?} is given twice"),
        }
    }
}

impl std::error::Error for NamespaceError {}

impl NamespaceOptions {
    /// Sets the option `name` from its text form.
    ///
    /// # Errors
    ///
    /// An unknown option, or a value of the wrong form.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), NamespaceError> {
        let bad = || NamespaceError::BadValue(name.to_owned());
        let flag = |value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad()),
        };
        match name {
            "anonymous" => self.anonymous = flag(value)?,
            "client_publish" => self.client_publish = flag(value)?,
            "max_subscribers" => self.max_subscribers = value.parse().map_err(|_| bad())?,
            "history_size" => self.history_size = value.parse().map_err(|_| bad())?,
            "history_ttl" => self.history_ttl = parse_duration(value).ok_or_else(bad)?,
            "presence" => self.presence = flag(value)?,
            "join_leave" => self.join_leave = flag(value)?,
            _ => return Err(NamespaceError::UnknownOption(name.to_owned())),
        }
        Ok(())
    }
}

impl FromStr for Namespace {
    type Err = NamespaceError;

    /// `PREFIX [OPTION=VALUE ...]`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut words = text.split_whitespace();
        let prefix = words.next().ok_or(NamespaceError::BadPrefix)?;
        let mut options = NamespaceOptions::default();
        for word in words {
            let (name, value) = word.split_once('=').ok_or_else(|| NamespaceError::BadValue(word.to_owned()))?;
            options.set(name, value)?;
        }
        Self::new(prefix, options)
    }
}

impl fmt::Display for Namespace {
    /// The canonical text form, every option written out; it parses back to the same namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NamespaceOptions {
            anonymous,
            client_publish,
            max_subscribers,
            history_size,
            history_ttl,
            presence,
            join_leave,
        } = &self.options;
        let ttl = history_ttl.as_millis();
        let ttl = if ttl % 1000 == 0 { format!("{}s", ttl / 1000) } else { format!("{ttl}ms") };
        write!(
            f,
            "{} anonymous={anonymous} client_publish={client_publish} max_subscribers={max_subscribers} \
             history_size={history_size} history_ttl={ttl} presence={presence} join_leave={join_leave}",
            self.prefix
        )
    }
}

/// The default namespace's options and the configured namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    default: NamespaceOptions,
    /// Longest prefix first, so the first match is the longest.
    prefixed: Vec<Namespace>,
}

impl Namespaces {
    /// The default namespace's options and the others.
    ///
    /// # Errors
    ///
    /// [`NamespaceError::Duplicate`] when two namespaces have the same prefix.
    pub fn new(default: NamespaceOptions, mut prefixed: Vec<Namespace>) -> Result<Self, NamespaceError> {
        prefixed.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then_with(|| a.prefix.cmp(&b.prefix)));
        if let Some(pair) = prefixed.windows(2).find(|pair| pair[0].prefix == pair[1].prefix) {
            return Err(NamespaceError::Duplicate(pair[0].prefix.clone()));
        }
        Ok(Self { default, prefixed })
    }

    /// The options of `topic`'s namespace.
    #[must_use]
    pub fn of(&self, topic: &str) -> &NamespaceOptions {
        self.find(topic).map_or(&self.default, |ns| &ns.options)
    }

    /// Whether any namespace keeps history.
    #[must_use]
    pub fn keep_history(&self) -> bool {
        self.default.history_size > 0 || self.prefixed.iter().any(|ns| ns.options.history_size > 0)
    }

    /// The prefix of `topic`'s namespace; `None` for the default namespace.
    #[must_use]
    pub fn prefix_of(&self, topic: &str) -> Option<&str> {
        self.find(topic).map(|ns| ns.prefix.as_str())
    }

    fn find(&self, topic: &str) -> Option<&Namespace> {
        self.prefixed.iter().find(|ns| topic.starts_with(&ns.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(text: &str) -> Namespace {
        text.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins() {
        let namespaces = Namespaces::new(
            NamespaceOptions { max_subscribers: 7, ..NamespaceOptions::default() },
            vec![ns("chat: max_subscribers=1"), ns("chat:vip: max_subscribers=2"), ns("c max_subscribers=3")],
        )
        .unwrap();
        let max = |topic| namespaces.of(topic).max_subscribers;
        assert_eq!(max("chat:vip:lounge"), 2);
        assert_eq!(max("chat:lobby"), 1);
        assert_eq!(max("cat"), 3);
        assert_eq!(max("news"), 7, "the default namespace");
        assert_eq!(namespaces.prefix_of("chat:vip:x"), Some("chat:vip:"));
        assert_eq!(namespaces.prefix_of("news"), None);
    }

    #[test]
    fn entries_parse_and_print_back() {
        let news = ns("news: anonymous=true client_publish=false");
        assert_eq!(news.prefix, "news:");
        assert!(news.options.anonymous && !news.options.client_publish);
        assert_eq!(news.options.max_subscribers, 0);
        assert_eq!(ns(&news.to_string()), news);
        assert_eq!(
            news.to_string(),
            "news: anonymous=true client_publish=false max_subscribers=0 history_size=0 history_ttl=300s \
             presence=false join_leave=false"
        );
        let kept = ns("chat: history_size=50 history_ttl=90m");
        assert_eq!((kept.options.history_size, kept.options.history_ttl), (50, Duration::from_secs(5400)));
        assert_eq!(ns(&kept.to_string()), kept);
        assert_eq!(ns("x history_ttl=1500ms").options.history_ttl, Duration::from_millis(1500));
        assert_eq!(ns(&ns("x history_ttl=1500ms").to_string()).options.history_ttl, Duration::from_millis(1500));
        assert_eq!("x history_ttl=5d".parse::<Namespace>(), Err(NamespaceError::BadValue("history_ttl".into())));
        for (bad, error) in [
            ("", NamespaceError::BadPrefix),
            ("news: colour=red", NamespaceError::UnknownOption("colour".into())),
            ("news: anonymous=yes", NamespaceError::BadValue("anonymous".into())),
            ("news: max_subscribers=-1", NamespaceError::BadValue("max_subscribers".into())),
            ("news: anonymous", NamespaceError::BadValue("anonymous".into())),
        ] {
            assert_eq!(bad.parse::<Namespace>(), Err(error), "{bad:?}");
        }
        assert_eq!(Namespace::new("a,b", NamespaceOptions::default()), Err(NamespaceError::BadPrefix));
        let twice = Namespaces::new(NamespaceOptions::default(), vec![ns("a:"), ns("a: anonymous=true")]);
        assert_eq!(twice, Err(NamespaceError::Duplicate("a:".into())));
    }
}
