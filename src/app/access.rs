//! Who may do what to a topic: its namespace's options and, with a key
//! configured, the session's token.
//!
//! | | no key configured | key configured |
//! |---|---|---|
//! | subscribe, join a room | every session | a namespace with `anonymous = true`, or a token whose `topics` grants the topic |
//! | publish, speak in a room | `client_publish` | `client_publish` and a token whose `publish` grants the topic |
//!
//! A room's upgrade that fails these is answered 401 (no valid token) or
//! 403 (a valid token without the grant); a `/pubsub` request gets the error
//! `forbidden` and the session stays.

use std::sync::Arc;

use super::identity::{protocol_beside_token, token_of, Outcome, User};
use super::routes::{App, Member};
use super::topics;
use crate::proto::handshake::StatusCode;
use crate::runtime::{Decision, Upgrade};

/// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3).
const CHALLENGE: &str = r#"Bearer error="invalid_token""#;
pub(super) const TOPIC_FULL: &str = "the topic has as many subscribers as its namespace allows";

impl App {
    /// Whether a session of `user` (`None`: anonymous) may subscribe to `topic` or join it.
    pub(super) fn may_read(&self, user: Option<&User>, topic: &str) -> bool {
        !self.identity.required()
            || self.config.namespaces.of(topic).anonymous
            || user.is_some_and(|u| u.may_read(topic))
    }

    /// Whether a session of `user` may publish to `topic`.
    pub(super) fn may_publish(&self, user: Option<&User>, topic: &str) -> bool {
        self.config.namespaces.of(topic).client_publish
            && (!self.identity.required() || user.is_some_and(|u| u.may_publish(topic)))
    }

    /// The user of an upgrade's token: `Ok(None)` without one, the refusal
    /// (401) for a token that does not verify. Without a key every session is anonymous.
    pub(super) fn user_of(&self, request: &Upgrade<'_>) -> Result<Option<User>, Decision<Member>> {
        if !self.identity.required() {
            return Ok(None);
        }
        match token_of(request) {
            None => Ok(None),
            Some(token) => self.identity.authenticate(token).map(Some).map_err(|_| unauthorized("invalid token")),
        }
    }

    /// Decides a room's upgrade: the token, the grant, the namespace's room.
    pub(super) fn admit_to_room(&self, request: &Upgrade<'_>, name: &str, echo_to_sender: bool) -> Decision<Member> {
        let user = match self.user_of(request) {
            Ok(user) => user,
            Err(refused) => return refused,
        };
        if !self.may_read(user.as_ref(), name) {
            return match user {
                None => {
                    self.identity.count(Outcome::Missing);
                    unauthorized("a token is needed")
                }
                Some(_) => {
                    self.identity.count(Outcome::Forbidden);
                    Decision::refuse(StatusCode::FORBIDDEN, "the token does not grant this room")
                }
            };
        }
        if user.is_some() {
            self.identity.count(Outcome::Ok);
        }
        let max = self.config.namespaces.of(name).max_subscribers;
        if max > 0 && topics::subscribers(name, |k| request.subscribers(k)) >= max {
            return Decision::refuse(StatusCode::SERVICE_UNAVAILABLE, TOPIC_FULL);
        }
        accept(request, Member::Room { name: Arc::new(name.to_owned()), echo_to_sender, user })
    }

    /// Decides a `/pubsub` upgrade: a token, if there is one, must verify.
    pub(super) fn admit_to_pubsub(&self, request: &Upgrade<'_>) -> Decision<Member> {
        match self.user_of(request) {
            Ok(user) => {
                if user.is_some() {
                    self.identity.count(Outcome::Ok);
                }
                let greeted = user.is_some() || !self.identity.required();
                accept(request, Member::PubSub { user, greeted })
            }
            Err(refused) => refused,
        }
    }
}

/// Accepts with `state`, answering a subprotocol beside a `bearer.` entry if there is one.
fn accept(request: &Upgrade<'_>, state: Member) -> Decision<Member> {
    Decision::Accept { protocol: protocol_beside_token(request), state }
}

/// 401 with the Bearer challenge (RFC 6750 §3.1: `invalid_token`).
fn unauthorized(reason: &str) -> Decision<Member> {
    let challenge = vec![("WWW-Authenticate".to_owned(), CHALLENGE.to_owned())];
    Decision::refuse_with_headers(StatusCode::UNAUTHORIZED, reason, challenge)
}
