//! The topics a token grants: exact names and `prefix*` patterns.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error as _, SeqAccess, Visitor};

/// The most grants one claim may list.
pub const MAX_GRANTS: usize = 256;
/// The longest grant, in bytes; the longest topic name the pub/sub protocol
/// accepts by default, plus the `*`.
pub const MAX_GRANT_LEN: usize = 257;

/// The topics one claim of a token (`topics`, `publish`) allows.
///
/// Each grant is an exact topic name, or a pattern ending in `*` that allows
/// every topic starting with what comes before the `*` (`"chat:*"` allows
/// `chat:x` and `chat:` itself); a lone `"*"` allows every topic. A `*`
/// anywhere else is part of a name.
///
/// ```
/// use ferrows::app::auth::Grants;
///
/// let grants = Grants::from_patterns(["news", "chat:*"]).unwrap();
/// assert!(grants.allows("news") && grants.allows("chat:lobby"));
/// assert!(!grants.allows("newsroom") && !grants.allows("chat"));
/// assert!(Grants::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Exact topic names, sorted and without duplicates.
    exact: Vec<String>,
    /// The prefixes of the `prefix*` patterns.
    prefixes: Vec<String>,
}

/// A grant was empty, too long, or one too many; the caller names the claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantError;

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grants are 1 to {MAX_GRANT_LEN} bytes each, at most {MAX_GRANTS} of them")
    }
}

impl std::error::Error for GrantError {}

impl Grants {
    /// Grants from patterns, with the limits a token's claim has: at most
    /// [`MAX_GRANTS`], each 1 to [`MAX_GRANT_LEN`] bytes.
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, GrantError> {
        let mut builder = Builder::default();
        for pattern in patterns {
            builder.push(pattern)?;
        }
        Ok(builder.finish())
    }

    /// Whether `topic` is one of the names or starts with one of the prefixes.
    #[must_use]
    pub fn allows(&self, topic: &str) -> bool {
        self.exact.binary_search_by(|name| name.as_str().cmp(topic)).is_ok()
            || self.prefixes.iter().any(|prefix| topic.starts_with(prefix.as_str()))
    }

    /// Whether no topic is allowed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }
}

/// Counts and checks grants as they come, so that a long list is refused at
/// its 257th entry rather than after all are held.
#[derive(Default)]
struct Builder {
    grants: Grants,
    count: usize,
}

impl Builder {
    fn push(&mut self, pattern: &str) -> Result<(), GrantError> {
        self.count += 1;
        if self.count > MAX_GRANTS || pattern.is_empty() || pattern.len() > MAX_GRANT_LEN {
            return Err(GrantError);
        }
        match pattern.strip_suffix('*') {
            Some(prefix) => self.grants.prefixes.push(prefix.to_owned()),
            None => self.grants.exact.push(pattern.to_owned()),
        }
        Ok(())
    }

    fn finish(mut self) -> Grants {
        self.grants.exact.sort_unstable();
        self.grants.exact.dedup();
        // A prefix that another prefix starts with adds nothing; `*` leaves
        // one empty prefix, which allows everything.
        self.grants.prefixes.sort_unstable();
        self.grants.prefixes.dedup();
        let mut kept: Vec<String> = Vec::with_capacity(self.grants.prefixes.len());
        for prefix in self.grants.prefixes {
            if !kept.iter().any(|k| prefix.starts_with(k.as_str())) {
                kept.push(prefix);
            }
        }
        self.grants.prefixes = kept;
        self.grants
    }
}

/// A JSON array of strings; each is checked as it is read.
impl<'de> Deserialize<'de> for Grants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GrantsVisitor;

        impl<'de> Visitor<'de> for GrantsVisitor {
            type Value = Grants;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of topic names and `prefix*` patterns")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Grants, A::Error> {
                let mut builder = Builder::default();
                while let Some(pattern) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    builder.push(&pattern).map_err(A::Error::custom)?;
                }
                Ok(builder.finish())
            }
        }

        deserializer.deserialize_seq(GrantsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(patterns: &[&str]) -> Grants {
        Grants::from_patterns(patterns.iter().copied()).unwrap()
    }

    #[test]
    fn exact_names_and_prefixes() {
        let g = grants(&["news", "chat:*", "a*b"]);
        for allowed in ["news", "chat:", "chat:x", "chat:x:y", "a*b"] {
            assert!(g.allows(allowed), "{allowed}");
        }
        for refused in ["", "new", "newsroom", "chat", "Chat:x", "ab", "a*bc", "x news"] {
            assert!(!g.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_lone_star_allows_everything() {
        let g = grants(&["*"]);
        for topic in ["", "a", "chat:x", "é"] {
            assert!(g.allows(topic));
        }
        // Narrower prefixes beside it add nothing.
        assert_eq!(grants(&["chat:*", "*", "news*"]), g);
    }

    #[test]
    fn empty_and_duplicates() {
        assert!(Grants::default().is_empty());
        assert!(!Grants::default().allows("a"));
        assert!(grants(&[]).is_empty());
        assert_eq!(grants(&["b", "a", "b", "c:*", "c:d*"]), grants(&["a", "b", "c:*"]));
    }

    #[test]
    fn limits() {
        assert_eq!(Grants::from_patterns([""]), Err(GrantError));
        let long = "x".repeat(MAX_GRANT_LEN);
        assert!(Grants::from_patterns([long.as_str()]).is_ok());
        let longer = "x".repeat(MAX_GRANT_LEN + 1);
        assert_eq!(Grants::from_patterns([longer.as_str()]), Err(GrantError));
        let names: Vec<String> = (0..=MAX_GRANTS).map(|i| i.to_string()).collect();
        assert!(Grants::from_patterns(names[..MAX_GRANTS].iter().map(String::as_str)).is_ok());
        assert_eq!(Grants::from_patterns(names.iter().map(String::as_str)), Err(GrantError));
    }

    #[test]
    fn from_json() {
        let g: Grants = serde_json::from_str(r#"["news", "chat:*", "t\u00e9"]"#).unwrap();
        assert!(g.allows("news") && g.allows("chat:1") && g.allows("té"));
        for refused in [r#""news""#, r#"[1]"#, r#"[null]"#, r#"{"a":1}"#, r#"[""]"#, r#"[["a"]]"#] {
            assert!(serde_json::from_str::<Grants>(refused).is_err(), "{refused}");
        }
    }
}
