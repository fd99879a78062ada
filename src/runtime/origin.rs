//! Which browser origins may open a WebSocket.
//!
//! Browsers send `Origin` with every WebSocket upgrade (RFC 6455 §10.2) and
//! let any page connect anywhere; the server is what stops a page from a
//! foreign site from opening a session with the visitor's cookies. Clients
//! that are not browsers may send any `Origin` or none, so the policy is a
//! defence for browser users, not an authentication.

use std::fmt;

/// The origins allowed to upgrade: all, or a list of exact origins and
/// `*.example.com` wildcards.
///
/// An entry is `scheme://host[:port]` (`https://chat.example.com`), or a
/// host pattern without a scheme (`chat.example.com:8443`), which any scheme
/// matches. A leading `*.` matches one or more labels in front of the rest
/// (`*.example.com` matches `a.example.com` and `a.b.example.com`, not
/// `example.com`). Comparison ignores ASCII case. A request without `Origin`
/// (a client that is not a browser) is allowed.
///
/// ```
/// use ferrows::runtime::OriginPolicy;
///
/// let policy = OriginPolicy::list(["https://example.com", "*.example.com"]).unwrap();
/// assert!(policy.allows(Some("https://example.com")));
/// assert!(policy.allows(Some("http://chat.example.com")));
/// assert!(!policy.allows(Some("https://example.com.evil.test")));
/// assert!(!policy.allows(Some("null")));
/// assert!(policy.allows(None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginPolicy {
    /// Empty: every origin is allowed.
    entries: Vec<OriginPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginPattern {
    /// The entry as written (for messages and printing).
    text: String,
    /// Lowercase scheme, if the entry names one.
    scheme: Option<String>,
    /// Lowercase host, without the `*.` of a wildcard.
    host: String,
    wildcard: bool,
    /// The port as written, if any.
    port: Option<u16>,
}

/// An entry of an origin list that is not an origin or a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPatternError {
    entry: String,
    reason: &'static str,
}

impl fmt::Display for OriginPatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an origin ({}); expected `https://host[:port]`, `host[:port]` or `*.host`",
            self.entry, self.reason
        )
    }
}

impl std::error::Error for OriginPatternError {}

impl OriginPolicy {
    /// Every origin is allowed (the default).
    #[must_use]
    pub fn any() -> Self {
        Self::default()
    }

    /// Only the listed origins; an empty list allows every origin.
    ///
    /// # Errors
    ///
    /// The first entry that is not an origin or a pattern.
    pub fn list<I, S>(entries: I) -> Result<Self, OriginPatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let entries = entries.into_iter().map(|e| OriginPattern::parse(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Whether every origin is allowed.
    #[must_use]
    pub fn allows_any(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as written.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.text.as_str())
    }

    /// Whether a request with this `Origin` (or none) may upgrade.
    #[must_use]
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.entries.is_empty() {
            return true;
        }
        // RFC 6454 §7: `scheme "://" host [ ":" port ]`, or "null" for an opaque origin.
        let Some((scheme, rest)) = origin.split_once("://") else { return false };
        let Some((host, port)) = split_host_port(rest) else { return false };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
            None => None,
        };
        self.entries.iter().any(|e| e.matches(scheme, host, port))
    }
}

impl OriginPattern {
    fn parse(text: &str) -> Result<Self, OriginPatternError> {
        let fail = |reason| OriginPatternError { entry: text.to_owned(), reason };
        let trimmed = text.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                if scheme.is_empty()
                    || !scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                {
                    return Err(fail("bad scheme"));
                }
                (Some(scheme.to_ascii_lowercase()), rest)
            }
            None => (None, trimmed),
        };
        let (host, port) = split_host_port(rest).ok_or_else(|| fail("bad host"))?;
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| fail("bad port"))?),
            None => None,
        };
        let (host, wildcard) = match host.strip_prefix("*.") {
            Some(host) => (host, true),
            None => (host, false),
        };
        let valid_host = !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'));
        if !valid_host {
            return Err(fail("bad host"));
        }
        Ok(Self { text: trimmed.to_owned(), scheme, host: host.to_ascii_lowercase(), wildcard, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if self.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case(scheme)) || self.port != port {
            return false;
        }
        if !self.wildcard {
            return host.eq_ignore_ascii_case(&self.host);
        }
        // `*.example.com`: at least one label, then `.example.com`.
        host.len() > self.host.len() + 1
            && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
            && host[host.len() - self.host.len()..].eq_ignore_ascii_case(&self.host)
    }
}

/// `host[:port]`, with `[v6]` hosts; `None` when a path, query or userinfo follows.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.is_empty() || s.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => rest.strip_prefix(':').map(|p| (host, Some(p))),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let p = OriginPolicy::list(["https://Example.com", "http://localhost:8080"]).unwrap();
        assert!(p.allows(Some("https://example.com")));
        assert!(p.allows(Some("HTTPS://EXAMPLE.COM")));
        assert!(!p.allows(Some("http://example.com")));
        assert!(!p.allows(Some("https://example.com:443")));
        assert!(p.allows(Some("http://localhost:8080")));
        assert!(!p.allows(Some("http://localhost")));
        assert!(!p.allows(Some("http://localhost:80800")));
        assert!(!p.allows(Some("https://sub.example.com")));
        assert!(!p.allows(Some("null")));
        assert!(!p.allows(Some("")));
        assert!(!p.allows(Some("https://example.com/path")));
        assert!(!p.allows(Some("https://user@example.com")));
        assert!(p.allows(None));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let p = OriginPolicy::list(["*.example.com", "https://*.chat.test:8443"]).unwrap();
        assert!(p.allows(Some("https://a.example.com")));
        assert!(p.allows(Some("http://a.b.example.com")));
        assert!(!p.allows(Some("https://example.com")));
        assert!(!p.allows(Some("https://aexample.com")));
        assert!(!p.allows(Some("https://example.com.evil.test")));
        assert!(!p.allows(Some("https://.example.com")));
        assert!(p.allows(Some("https://x.chat.test:8443")));
        assert!(!p.allows(Some("http://x.chat.test:8443")));
        assert!(!p.allows(Some("https://x.chat.test")));
    }

    #[test]
    fn an_empty_list_allows_everything() {
        let p = OriginPolicy::list(Vec::<String>::new()).unwrap();
        assert!(p.allows_any());
        assert!(p.allows(Some("https://anything.test")));
        assert!(p.allows(Some("null")));
    }

    #[test]
    fn ipv6_hosts() {
        let p = OriginPolicy::list(["http://[::1]:9001"]).unwrap();
        assert!(p.allows(Some("http://[::1]:9001")));
        assert!(!p.allows(Some("http://[::1]")));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for bad in ["", "https://", "https://exa mple.com", "https://example.com/x", "://x", "x:99999", "*."] {
            let err = OriginPolicy::list([bad]).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
