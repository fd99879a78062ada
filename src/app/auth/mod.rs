//! The identity layer's token check: a JWT (RFC 7519) in the JWS compact
//! serialization (RFC 7515 §7.1), verified with a configured key and checked
//! against the clock it is given.
//!
//! This module is pure: no clock (the time comes in as Unix seconds), no I/O
//! (a public key comes in as PEM bytes the caller has read), no key fetched
//! from anything a token names (`jku`, `x5u`, `jwk` and `kid` are ignored).
//!
//! What a token must be, in the order it is checked:
//!
//! 1. At most [`MAX_TOKEN_LEN`](crate::app::auth::MAX_TOKEN_LEN) bytes, before anything is decoded.
//! 2. Three base64url parts without padding, separated by dots; the header a
//!    JSON object with an `alg` and no `crit`.
//! 3. An `alg` that a configured key verifies: `HS256`, `HS384`, `HS512` with
//!    the HMAC secret; `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`
//!    with an RSA public key; `ES256` with a P-256 key, `ES384` with a P-384
//!    key; `EdDSA` (or `Ed25519`, RFC 9864) with an Ed25519 key. `none` never
//!    verifies, and neither does an `alg` of another key's type: an HMAC token
//!    is not checked against a public key's text (the algorithm confusion of
//!    RFC 8725 §2.1).
//! 4. A good signature. Only then is the payload parsed.
//! 5. A payload that is a JSON object with `sub` (a non-empty string) and
//!    `exp` (a number, fractions allowed); `nbf` and `iat` numbers if
//!    present; `exp` not past and `nbf` not ahead beyond the leeway; `aud`
//!    naming the configured audience, `iss` the configured issuer; `topics`
//!    and `publish`, if present, arrays of [`Grants`](crate::app::auth::Grants).
//!
//! ```
//! use ferrows::app::auth::{TokenError, Verifier};
//!
//! let verifier = Verifier::new()
//!     .with_hmac_secret(b"an example secret of 32 bytes...")?
//!     .with_audience("ferrows");
//! // {"alg":"HS256","typ":"JWT"} . {"sub":"alice","exp":1700000060,"aud":"ferrows","topics":["chat:*"]}
//! let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
//!     eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDA2MCwiYXVkIjoiZmVycm93cyIsInRvcGljcyI6WyJjaGF0OioiXX0.\
//!     abCEtsTCwUAa_OL-wtr0hSkL3ardI8PekA-gzNMitnE";
//! let claims = verifier.verify(token, 1_700_000_000)?;
//! assert_eq!(claims.sub, "alice");
//! assert!(claims.topics.allows("chat:lobby") && claims.publish.is_empty());
//! assert_eq!(verifier.verify(token, 1_700_000_100), Err(TokenError::Expired));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod claims;
mod der;
mod error;
mod grants;
mod key;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_public;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{hmac, signature};
use serde::de::IgnoredAny;
use serde::Deserialize;

pub use claims::Claims;
pub use error::{KeyError, TokenError};
pub use grants::{GrantError, Grants, MAX_GRANTS, MAX_GRANT_LEN};
pub use key::MAX_PEM_LEN;

use claims::Expected;
use key::PublicKey;

/// The longest token accepted, in bytes. A token travels in an HTTP header or
/// a subprotocol name; 8 KiB is the header size many servers and proxies stop
/// at, and far more than a few claims and an RSA-8192 signature need.
pub const MAX_TOKEN_LEN: usize = 8 << 10;

/// The leeway of a new [`Verifier`], in seconds: clocks of the issuer and of
/// this server may disagree by that much.
pub const DEFAULT_LEEWAY: u64 = 5;

/// The shortest HMAC secret accepted: HS256's hash length (RFC 7518 §3.2).
const MIN_HMAC_SECRET: usize = 32;

/// Verifies tokens: the keys and the expected audience, issuer and leeway.
///
/// Cloning is cheap (one `Arc`), so every event loop can hold one. `Debug`
/// shows which keys are configured, never the secret.
#[derive(Clone, Default)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    hmac: Option<HmacKeys>,
    public: Option<PublicKey>,
    audience: Option<String>,
    issuer: Option<String>,
    leeway: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Self { hmac: None, public: None, audience: None, issuer: None, leeway: DEFAULT_LEEWAY }
    }
}

/// One secret, keyed for each HMAC hash.
#[derive(Clone)]
struct HmacKeys {
    len: usize,
    sha256: hmac::Key,
    sha384: hmac::Key,
    sha512: hmac::Key,
}

/// The header's parameters that matter here (RFC 7515 §4.1); the others,
/// `typ` included, are skipped. A duplicated one is refused (serde's derive
/// does so), as RFC 7515 §4 allows.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    crit: Option<IgnoredAny>,
}

impl Verifier {
    /// A verifier with no key, which refuses every token with
    /// [`TokenError::NoKey`], the default leeway and no audience or issuer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the HMAC secret for `HS256`, `HS384` and `HS512`.
    ///
    /// RFC 7518 §3.2 wants a secret at least as long as the hash: shorter than
    /// 32 bytes is refused here ([`KeyError::ShortSecret`]), and a token of
    /// `HS384` (`HS512`) needs a secret of 48 (64) bytes or is refused with
    /// [`TokenError::Algorithm`].
    pub fn with_hmac_secret(mut self, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_HMAC_SECRET {
            return Err(KeyError::ShortSecret);
        }
        self.inner_mut().hmac = Some(HmacKeys {
            len: secret.len(),
            sha256: hmac::Key::new(hmac::HMAC_SHA256, secret),
            sha384: hmac::Key::new(hmac::HMAC_SHA384, secret),
            sha512: hmac::Key::new(hmac::HMAC_SHA512, secret),
        });
        Ok(self)
    }

    /// Adds the public key in `pem`: a `-----BEGIN PUBLIC KEY-----` block
    /// (RSA, EC P-256, EC P-384 or Ed25519) or a `-----BEGIN RSA PUBLIC
    /// KEY-----` block (PKCS#1). It replaces a public key added before; an
    /// HMAC secret stays beside it, and each token's `alg` picks between them.
    pub fn with_public_key_pem(mut self, pem: &[u8]) -> Result<Self, KeyError> {
        self.inner_mut().public = Some(PublicKey::from_pem(pem)?);
        Ok(self)
    }

    /// Requires `aud` to name `audience` (RFC 7519 §4.1.3). Without one, a
    /// token that has an `aud` is refused: it is meant for someone else.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.inner_mut().audience = Some(audience.into());
        self
    }

    /// Requires `iss` to be `issuer` (RFC 7519 §4.1.1).
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.inner_mut().issuer = Some(issuer.into());
        self
    }

    /// How far, in seconds, `exp` may be past and `nbf` ahead
    /// ([`DEFAULT_LEEWAY`] unless set).
    #[must_use]
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.inner_mut().leeway = secs;
        self
    }

    /// Whether a key is configured: without one, every token is refused.
    #[must_use]
    pub fn has_key(&self) -> bool {
        self.inner.hmac.is_some() || self.inner.public.is_some()
    }

    /// Verifies `token` at `now_unix` (Unix seconds) and returns its claims.
    ///
    /// The signature is verified before anything in the payload is read; the
    /// error says why a token was refused, and never contains any of it.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        if !self.has_key() {
            return Err(TokenError::NoKey);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        // RFC 7515 §7.1: header . payload . signature, and the signature covers
        // the first two as they are written.
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let signed = &token[..header.len() + 1 + payload.len()];

        let header = base64url(header)?;
        if !is_json_object(&header) {
            return Err(TokenError::Malformed);
        }
        let header: Header<'_> = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
        // RFC 7515 §4.1.11: extensions marked critical must be understood,
        // and none is here.
        if header.crit.is_some() {
            return Err(TokenError::Critical);
        }
        let check = self.signature_check(&header.alg)?;
        let signature = base64url(signature)?;
        let payload = base64url(payload)?;
        check.verify(signed.as_bytes(), &signature)?;

        let expected = Expected {
            now: now_unix,
            leeway: self.inner.leeway,
            audience: self.inner.audience.as_deref(),
            issuer: self.inner.issuer.as_deref(),
        };
        Claims::check(&payload, &expected)
    }

    /// The check that `alg` names, if a configured key of its type is there
    /// (RFC 7518 §3.1's names; RFC 8037 §3.1's `EdDSA`).
    fn signature_check(&self, alg: &str) -> Result<SignatureCheck<'_>, TokenError> {
        use signature as sig;
        let inner = &*self.inner;
        let hmac = |min_len: usize, key: fn(&HmacKeys) -> &hmac::Key| match &inner.hmac {
            Some(keys) if keys.len >= min_len => Ok(SignatureCheck::Hmac(key(keys))),
            _ => Err(TokenError::Algorithm),
        };
        let public =
            |algorithm: &'static dyn sig::VerificationAlgorithm, fits: fn(&PublicKey) -> Option<&[u8]>| match inner
                .public
                .as_ref()
                .and_then(fits)
            {
                Some(key) => Ok(SignatureCheck::Public(sig::UnparsedPublicKey::new(algorithm, key))),
                None => Err(TokenError::Algorithm),
            };
        let rsa: fn(&PublicKey) -> Option<&[u8]> = |key| match key {
            PublicKey::Rsa(der) => Some(der.as_slice()),
            _ => None,
        };
        match alg {
            "HS256" => hmac(32, |k| &k.sha256),
            "HS384" => hmac(48, |k| &k.sha384),
            "HS512" => hmac(64, |k| &k.sha512),
            "RS256" => public(&sig::RSA_PKCS1_2048_8192_SHA256, rsa),
            "RS384" => public(&sig::RSA_PKCS1_2048_8192_SHA384, rsa),
            "RS512" => public(&sig::RSA_PKCS1_2048_8192_SHA512, rsa),
            "PS256" => public(&sig::RSA_PSS_2048_8192_SHA256, rsa),
            "PS384" => public(&sig::RSA_PSS_2048_8192_SHA384, rsa),
            "PS512" => public(&sig::RSA_PSS_2048_8192_SHA512, rsa),
            // RFC 7518 §3.4: the signature is R || S, fixed-width.
            "ES256" => public(&sig::ECDSA_P256_SHA256_FIXED, |key| match key {
                PublicKey::EcP256(point) => Some(point),
                _ => None,
            }),
            "ES384" => public(&sig::ECDSA_P384_SHA384_FIXED, |key| match key {
                PublicKey::EcP384(point) => Some(point),
                _ => None,
            }),
            "EdDSA" | "Ed25519" => public(&sig::ED25519, |key| match key {
                PublicKey::Ed25519(raw) => Some(raw),
                _ => None,
            }),
            // `none` (RFC 7518 §3.6) and every name not above.
            _ => Err(TokenError::Algorithm),
        }
    }

    /// The inner state to change, copied first if another clone shares it.
    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Verifier")
            .field("hmac_secret", &inner.hmac.as_ref().map(|_| "<set>"))
            .field("public_key", &inner.public.as_ref().map(PublicKey::kind))
            .field("audience", &inner.audience)
            .field("issuer", &inner.issuer)
            .field("leeway", &inner.leeway)
            .finish()
    }
}

/// The key and algorithm a token's `alg` picked.
enum SignatureCheck<'a> {
    Hmac(&'a hmac::Key),
    Public(signature::UnparsedPublicKey<&'a [u8]>),
}

impl SignatureCheck<'_> {
    fn verify(&self, signed: &[u8], signature: &[u8]) -> Result<(), TokenError> {
        let verified = match self {
            // Constant-time comparison of the tag.
            Self::Hmac(key) => hmac::verify(key, signed, signature),
            Self::Public(key) => key.verify(signed, signature),
        };
        verified.map_err(|_| TokenError::Signature)
    }
}

/// One part of a token: base64url without padding (RFC 7515 §2), and in its
/// one canonical form (the unused bits of the last character zero), so that
/// no two spellings of a signature both verify.
fn base64url(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)
}

/// Whether `json` starts, after whitespace, with `{`: serde's derive reads a
/// struct from an array too, and RFC 7515 §4 / RFC 7519 §7.2 want an object.
fn is_json_object(json: &[u8]) -> bool {
    json.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{')
}
