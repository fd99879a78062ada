//! Who a session is: the token settings, the keys loaded from them, and the
//! user a valid token names.
//!
//! With a key configured (`auth.hmac_secret` or `auth.public_key`), sessions
//! show a JWT that the application's backend signed ([`auth`](super::auth)
//! checks it); without one every session is anonymous and every topic open,
//! as the namespaces allow. A token is never written to a log, a metric or
//! an error message.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
#[cfg(feature = "jwt")]
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::runtime::Upgrade;

/// The token settings (the `auth` section of the configuration).
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// The HMAC secret of HS256, HS384 and HS512 tokens (at least 32 bytes).
    pub hmac_secret: Option<String>,
    /// A PEM file with the public key of RS*, PS*, ES256, ES384 or EdDSA
    /// tokens, read at start and again by [`Identity::reload`] (SIGHUP).
    pub public_key: Option<PathBuf>,
    /// The `aud` tokens must name; tokens with an `aud` are refused without one.
    pub audience: Option<String>,
    /// The `iss` tokens must have.
    pub issuer: Option<String>,
    /// How far the clocks of the issuer and of this server may disagree.
    pub leeway: Duration,
}

impl Default for AuthSettings {
    /// No key; a leeway of 5 s.
    fn default() -> Self {
        Self { hmac_secret: None, public_key: None, audience: None, issuer: None, leeway: Duration::from_secs(5) }
    }
}

impl AuthSettings {
    /// Whether a key is configured: sessions then need tokens where their
    /// topics' namespaces are not anonymous.
    #[must_use]
    pub fn has_key(&self) -> bool {
        self.hmac_secret.is_some() || self.public_key.is_some()
    }
}

impl fmt::Debug for AuthSettings {
    /// Never shows the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("hmac_secret", &self.hmac_secret.as_ref().map(|_| "(set)"))
            .field("public_key", &self.public_key)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// Why the keys could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum IdentityError {
    /// The public key file could not be read.
    Read(PathBuf, std::io::Error),
    /// A key was refused (its text is never quoted).
    Key(String),
    /// A key is configured, but this build has no `jwt` feature.
    NoJwtFeature,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(path, e) => write!(f, "cannot read auth.public_key {}: {e}", path.display()),
            Self::Key(reason) => write!(f, "auth key refused: {reason}"),
            Self::NoJwtFeature => f.write_str("auth keys need the `jwt` cargo feature, which this build lacks"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// Authentication outcomes, the labels of `ferrows_auth_total{result}`.
pub(super) const OUTCOMES: [&str; 5] = ["ok", "missing", "invalid", "expired", "forbidden"];

/// An authentication outcome, an index into [`OUTCOMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "jwt"), allow(dead_code))]
pub(super) enum Outcome {
    Ok = 0,
    Missing = 1,
    Invalid = 2,
    Expired = 3,
    Forbidden = 4,
}

/// The keys in use and what they decided, shared by every loop.
pub struct Identity {
    settings: AuthSettings,
    #[cfg(feature = "jwt")]
    verifier: RwLock<Option<super::auth::Verifier>>,
    outcomes: [AtomicU64; 5],
}

impl Default for Identity {
    /// No key: every session anonymous.
    fn default() -> Self {
        Self::unloaded(&AuthSettings::default())
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads the keys of `settings` (reading the public key file).
    ///
    /// # Errors
    ///
    /// A key that cannot be read or is refused; a key in a build without `jwt`.
    pub fn load(settings: &AuthSettings) -> Result<Self, IdentityError> {
        let identity = Self::unloaded(settings);
        identity.reload()?;
        Ok(identity)
    }

    /// The settings with no key loaded yet: every token is refused (a key
    /// that failed to load closes the door rather than opening it).
    pub(super) fn unloaded(settings: &AuthSettings) -> Self {
        Self {
            settings: settings.clone(),
            #[cfg(feature = "jwt")]
            verifier: RwLock::new(None),
            outcomes: Default::default(),
        }
    }

    /// Reads the keys again (the public key file may have changed); on an
    /// error the keys in use stay.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn reload(&self) -> Result<(), IdentityError> {
        if !self.settings.has_key() {
            return Ok(());
        }
        #[cfg(feature = "jwt")]
        {
            let settings = &self.settings;
            let key_error = |e: super::auth::KeyError| IdentityError::Key(e.to_string());
            let mut verifier = super::auth::Verifier::new().with_leeway(settings.leeway.as_secs());
            if let Some(secret) = &settings.hmac_secret {
                verifier = verifier.with_hmac_secret(secret.as_bytes()).map_err(key_error)?;
            }
            if let Some(path) = &settings.public_key {
                let pem = std::fs::read(path).map_err(|e| IdentityError::Read(path.clone(), e))?;
                verifier = verifier.with_public_key_pem(&pem).map_err(key_error)?;
            }
            if let Some(audience) = &settings.audience {
                verifier = verifier.with_audience(audience.clone());
            }
            if let Some(issuer) = &settings.issuer {
                verifier = verifier.with_issuer(issuer.clone());
            }
            *self.verifier.write().unwrap_or_else(PoisonError::into_inner) = Some(verifier);
            Ok(())
        }
        #[cfg(not(feature = "jwt"))]
        Err(IdentityError::NoJwtFeature)
    }

    /// Whether a public key file is configured (what a reload reads again).
    #[must_use]
    pub fn has_public_key(&self) -> bool {
        self.settings.public_key.is_some()
    }

    /// Whether sessions need tokens (a key is configured).
    pub(super) fn required(&self) -> bool {
        self.settings.has_key()
    }

    /// Counts an outcome for the metrics.
    pub(super) fn count(&self, outcome: Outcome) -> Outcome {
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        outcome
    }

    /// The outcomes so far, by label.
    pub(super) fn outcomes(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        OUTCOMES.iter().zip(&self.outcomes).map(|(label, n)| (*label, n.load(Ordering::Relaxed)))
    }

    /// Checks `token` now; counts a failure (the caller counts what it decides on success).
    pub(super) fn authenticate(&self, token: &str) -> Result<User, Outcome> {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        #[cfg(feature = "jwt")]
        {
            let verifier = self.verifier.read().unwrap_or_else(PoisonError::into_inner).clone();
            let Some(verifier) = verifier else {
                return Err(self.count(Outcome::Invalid));
            };
            match verifier.verify(token, now) {
                Ok(claims) => {
                    let valid_for = claims.exp.saturating_add(self.settings.leeway.as_secs()).saturating_sub(now);
                    Ok(User(Arc::new(Checked { claims, valid_for: Duration::from_secs(valid_for) })))
                }
                Err(super::auth::TokenError::Expired) => Err(self.count(Outcome::Expired)),
                Err(_) => Err(self.count(Outcome::Invalid)),
            }
        }
        #[cfg(not(feature = "jwt"))]
        {
            let _ = (token, now);
            Err(self.count(Outcome::Invalid))
        }
    }
}

/// The user a session's valid token names, with the token's grants. Cheap
/// to clone; `Debug` shows the user id only.
#[derive(Clone)]
pub struct User(Arc<Checked>);

struct Checked {
    #[cfg(feature = "jwt")]
    claims: super::auth::Claims,
    /// How long the token stays valid from when it was checked.
    valid_for: Duration,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("User").field(&self.id()).finish()
    }
}

impl User {
    /// The user id (the token's `sub`).
    #[must_use]
    pub fn id(&self) -> &str {
        #[cfg(feature = "jwt")]
        return &self.0.claims.sub;
        #[cfg(not(feature = "jwt"))]
        ""
    }

    /// When the session must end unless the token is refreshed, from `now`
    /// (when it was checked); `None` past what the clock can say (an `exp`
    /// centuries away): no deadline.
    pub(super) fn expires(&self, now: Instant) -> Option<Instant> {
        now.checked_add(self.0.valid_for)
    }

    /// Whether the token lets its user subscribe to `topic` (or join it as a room).
    pub(super) fn may_read(&self, topic: &str) -> bool {
        self.grants(false, topic)
    }

    /// Whether the token lets its user publish to `topic`.
    pub(super) fn may_publish(&self, topic: &str) -> bool {
        self.grants(true, topic)
    }

    /// Whether the token's grants (to publish, or to read) name `topic`;
    /// without the `jwt` feature no token is ever accepted, so none.
    fn grants(&self, publish: bool, topic: &str) -> bool {
        #[cfg(feature = "jwt")]
        return if publish { &self.0.claims.publish } else { &self.0.claims.topics }.allows(topic);
        #[cfg(not(feature = "jwt"))]
        {
            let _ = (publish, topic);
            false
        }
    }
}

/// The token an upgrade request carries: `Authorization: Bearer <JWT>`, or a
/// `Sec-WebSocket-Protocol` entry `bearer.<JWT>` (browsers cannot set headers).
pub(super) fn token_of<'a>(request: &Upgrade<'a>) -> Option<&'a str> {
    let header = request.request().headers().get("Authorization").and_then(|value| std::str::from_utf8(value).ok());
    let bearer = header.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        // RFC 9110 §11.1: the scheme is case-insensitive.
        scheme.eq_ignore_ascii_case("Bearer").then(|| token.trim())
    });
    bearer.or_else(|| request.protocols().iter().find_map(|p| p.strip_prefix(BEARER_PROTOCOL)))
}

/// The prefix of a subprotocol entry that carries a token. The server never selects one.
pub(super) const BEARER_PROTOCOL: &str = "bearer.";

/// The subprotocol to answer when the offer carries a token: the first other
/// entry, so that a browser (which fails a handshake that selects none of a
/// non-empty offer) gets one; `None` when there is no other.
pub(super) fn protocol_beside_token(request: &Upgrade<'_>) -> Option<String> {
    let offered = request.protocols();
    if !offered.iter().any(|p| p.starts_with(BEARER_PROTOCOL)) {
        return None;
    }
    offered.iter().find(|p| !p.starts_with(BEARER_PROTOCOL)).cloned()
}
