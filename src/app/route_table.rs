//! The routing table: URL paths mapped to built-in handlers with their options.
//!
//! A route is written `PATH = HANDLER [OPTION=VALUE ...]`, the same in the
//! configuration file, the environment and on the command line:
//!
//! ```
//! use ferrows::app::{RouteHandler, RouteSpec};
//!
//! let route: RouteSpec = "/rooms/{name} = room echo_to_sender=false".parse().unwrap();
//! assert_eq!(route.path(), "/rooms/{name}");
//! assert_eq!(route.handler(), RouteHandler::Room { echo_to_sender: false });
//! assert_eq!(route.to_string(), "/rooms/{name} = room echo_to_sender=false");
//! ```
//!
//! A path is exact (`/echo`) or ends in one parameter segment (`/rooms/{name}`),
//! which `room` and `publish` need and the other handlers refuse.

use std::fmt;
use std::str::FromStr;

/// What a route leads to.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteHandler {
    /// `demo`: the demo chat page (GET).
    Demo,
    /// `echo`: WebSocket echo.
    Echo,
    /// `room`: WebSocket room named by the path parameter; every message goes
    /// to every member (and back to the sender when `echo_to_sender`, the default).
    Room {
        /// Whether a member's message comes back to that member too.
        echo_to_sender: bool,
    },
    /// `pubsub`: WebSocket, the JSON pub/sub protocol.
    PubSub,
    /// `publish`: `POST` publishes the body to the topic named by the path parameter.
    Publish,
    /// `api`: the backend's HTTP API, the call named by the path parameter
    /// (`broadcast`, `disconnect`, `topics`).
    Api,
    /// `history`: `GET` the topic named by the path parameter's position and kept publications.
    History,
    /// `presence`: `GET` who subscribes to the topic named by the path parameter.
    Presence,
    /// `metrics`: `GET` the server's metrics in the Prometheus text format.
    Metrics,
    /// `health`: `GET` answers 200 while the server accepts, 503 while it drains.
    Health,
}

impl RouteHandler {
    /// The handler's name in a route.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Demo => "demo",
            Self::Echo => "echo",
            Self::Room { .. } => "room",
            Self::PubSub => "pubsub",
            Self::Publish => "publish",
            Self::Api => "api",
            Self::History => "history",
            Self::Presence => "presence",
            Self::Metrics => "metrics",
            Self::Health => "health",
        }
    }

    /// Whether the handler takes the path's parameter segment (and needs one).
    #[must_use]
    pub fn takes_parameter(self) -> bool {
        matches!(self, Self::Room { .. } | Self::Publish | Self::Api | Self::History | Self::Presence)
    }

    /// Whether the handler speaks WebSocket (rather than plain HTTP).
    #[must_use]
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Echo | Self::Room { .. } | Self::PubSub)
    }
}

/// One route: a path pattern and its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    path: String,
    /// Where the parameter starts in `path` (the `{`), if the path has one.
    parameter_at: Option<usize>,
    handler: RouteHandler,
}

/// A route that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError(String);

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouteError {}

const FORM: &str = "expected `PATH = HANDLER [OPTION=VALUE ...]` with HANDLER one of \
                    demo, echo, room, pubsub, publish, metrics, health";

impl RouteSpec {
    /// A route from `path` to `handler`.
    ///
    /// # Errors
    ///
    /// The path does not start with `/`, has a parameter anywhere but in its
    /// last segment, or has (or lacks) the parameter the handler needs.
    pub fn new(path: &str, handler: RouteHandler) -> Result<Self, RouteError> {
        let fail = |why: &str| Err(RouteError(format!("route {path:?} -> {}: {why}", handler.name())));
        if !path.starts_with('/') || path.contains(['?', '#', ' ', '\t']) {
            return fail("the path must start with `/` and hold no query, fragment or space");
        }
        let parameter_at = match path.find('{') {
            None if path.contains('}') => return fail("unbalanced `}`"),
            None => None,
            Some(at) => {
                let param = &path[at..];
                let well_formed = path[..at].ends_with('/')
                    && param.ends_with('}')
                    && param.len() > 2
                    && param[1..param.len() - 1].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !well_formed {
                    return fail("a parameter is a whole last segment, like `/rooms/{name}`");
                }
                Some(at)
            }
        };
        match (handler.takes_parameter(), parameter_at.is_some()) {
            (true, false) => fail("this handler needs a parameter segment, like `/rooms/{name}`"),
            (false, true) => fail("this handler takes no parameter"),
            _ => Ok(Self { path: path.to_owned(), parameter_at, handler }),
        }
    }

    /// The path pattern.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The handler.
    #[must_use]
    pub fn handler(&self) -> RouteHandler {
        self.handler
    }

    /// Matches a request path: `Some(parameter)` (empty without a parameter) when it fits.
    #[must_use]
    pub fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self.parameter_at {
            None => (path == self.path).then_some(""),
            Some(at) => {
                let value = path.strip_prefix(&self.path[..at])?;
                (!value.is_empty() && !value.contains('/')).then_some(value)
            }
        }
    }

    /// The built-in table: `/` demo, `/echo`, `/rooms/{name}`, `/pubsub`,
    /// `/publish/{topic}`, `/metrics`, `/healthz`.
    #[must_use]
    pub fn defaults() -> Vec<RouteSpec> {
        [
            ("/", RouteHandler::Demo),
            ("/echo", RouteHandler::Echo),
            ("/rooms/{name}", RouteHandler::Room { echo_to_sender: true }),
            ("/pubsub", RouteHandler::PubSub),
            ("/publish/{topic}", RouteHandler::Publish),
            ("/api/history/{topic}", RouteHandler::History),
            ("/api/presence/{topic}", RouteHandler::Presence),
            ("/api/{call}", RouteHandler::Api),
            ("/metrics", RouteHandler::Metrics),
            ("/healthz", RouteHandler::Health),
        ]
        .into_iter()
        // The table above is well-formed; `new` accepts each entry.
        .filter_map(|(path, handler)| RouteSpec::new(path, handler).ok())
        .collect()
    }
}

impl FromStr for RouteSpec {
    type Err = RouteError;

    fn from_str(s: &str) -> Result<Self, RouteError> {
        let fail = |why: String| RouteError(format!("route {s:?}: {why}; {FORM}"));
        let (path, rest) = s.split_once('=').ok_or_else(|| fail("no `=`".into()))?;
        let mut words = rest.split_whitespace();
        let name = words.next().ok_or_else(|| fail("no handler".into()))?;
        let mut handler = match name {
            "demo" => RouteHandler::Demo,
            "echo" => RouteHandler::Echo,
            "room" => RouteHandler::Room { echo_to_sender: true },
            "pubsub" => RouteHandler::PubSub,
            "publish" => RouteHandler::Publish,
            "api" => RouteHandler::Api,
            "history" => RouteHandler::History,
            "presence" => RouteHandler::Presence,
            "metrics" => RouteHandler::Metrics,
            "health" => RouteHandler::Health,
            other => return Err(fail(format!("unknown handler {other:?}"))),
        };
        for option in words {
            let (key, value) = option.split_once('=').ok_or_else(|| fail(format!("option {option:?} has no `=`")))?;
            match (&mut handler, key) {
                (RouteHandler::Room { echo_to_sender }, "echo_to_sender") => {
                    *echo_to_sender =
                        value.parse().map_err(|_| fail(format!("echo_to_sender is true or false, not {value:?}")))?;
                }
                _ => return Err(fail(format!("handler {name} has no option {key:?}"))),
            }
        }
        RouteSpec::new(path.trim(), handler)
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.path, self.handler.name())?;
        if let RouteHandler::Room { echo_to_sender } = self.handler {
            if !echo_to_sender {
                f.write_str(" echo_to_sender=false")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["/ = demo", "/echo = echo", "/rooms/{name} = room", "/r/{n} = room echo_to_sender=false"] {
            let route: RouteSpec = text.parse().unwrap();
            assert_eq!(route.to_string(), text);
        }
        let route: RouteSpec = "/x=echo".parse().unwrap();
        assert_eq!(route.to_string(), "/x = echo");
    }

    #[test]
    fn matching() {
        let room: RouteSpec = "/rooms/{name} = room".parse().unwrap();
        assert_eq!(room.matches("/rooms/lobby"), Some("lobby"));
        assert_eq!(room.matches("/rooms/"), None);
        assert_eq!(room.matches("/rooms/a/b"), None);
        assert_eq!(room.matches("/roomsx"), None);
        let echo: RouteSpec = "/echo = echo".parse().unwrap();
        assert_eq!(echo.matches("/echo"), Some(""));
        assert_eq!(echo.matches("/echo/"), None);
    }

    #[test]
    fn refusals_name_the_route() {
        for bad in [
            "echo",
            "/x = ",
            "/x = nope",
            "x = echo",
            "/rooms = room",
            "/echo/{p} = echo",
            "/a/{p}/b = room",
            "/a{p} = room",
            "/a/{} = room",
            "/r/{n} = room echo_to_sender=maybe",
            "/r/{n} = room loud=true",
            "/e = echo echo_to_sender=false",
        ] {
            let err = bad.parse::<RouteSpec>().unwrap_err().to_string();
            assert!(err.contains("route"), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_all_there() {
        let names: Vec<String> = RouteSpec::defaults().iter().map(ToString::to_string).collect();
        assert_eq!(names.len(), 10, "{names:?}");
    }
}
