//! The payload of a verified token: the registered claims of RFC 7519 §4.1
//! that the server checks, and its own `topics` and `publish` grants.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::TokenError;
use super::grants::Grants;
use super::is_json_object;

/// Who a verified token names and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// The subject (`sub`, RFC 7519 §4.1.2): the user the connection acts as.
    pub sub: String,
    /// The expiry (`exp`, RFC 7519 §4.1.4), Unix seconds (a fractional
    /// expiry rounded down): the session ends then unless refreshed.
    pub exp: u64,
    /// The topics the token may subscribe to (`topics`); empty when absent.
    pub topics: Grants,
    /// The topics the token may publish to (`publish`); empty when absent.
    pub publish: Grants,
}

/// What [`Claims::check`] compares the payload with.
pub(super) struct Expected<'a> {
    pub(super) now: u64,
    pub(super) leeway: u64,
    pub(super) audience: Option<&'a str>,
    pub(super) issuer: Option<&'a str>,
}

/// The payload's claims, each left as raw JSON until its own type is checked,
/// so that a wrong type names its claim. Other claims are skipped unread.
/// Duplicate claims are refused (serde's derive does so): RFC 7519 §4 lets a
/// parser take the last one, but a token saying two things is refused here.
#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    sub: Option<&'a RawValue>,
    #[serde(borrow)]
    exp: Option<&'a RawValue>,
    #[serde(borrow)]
    nbf: Option<&'a RawValue>,
    #[serde(borrow)]
    iat: Option<&'a RawValue>,
    #[serde(borrow)]
    aud: Option<&'a RawValue>,
    #[serde(borrow)]
    iss: Option<&'a RawValue>,
    #[serde(borrow)]
    topics: Option<&'a RawValue>,
    #[serde(borrow)]
    publish: Option<&'a RawValue>,
}

/// `aud`: one string or an array of them (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    /// Parses a payload whose signature has been verified and checks it
    /// against `expected`.
    pub(super) fn check(payload: &[u8], expected: &Expected<'_>) -> Result<Self, TokenError> {
        // RFC 7519 §7.2 step 10: the claims set is a JSON object.
        if !is_json_object(payload) {
            return Err(TokenError::Malformed);
        }
        let raw: Raw<'_> = serde_json::from_slice(payload).map_err(|_| TokenError::Malformed)?;

        let sub: String = required(raw.sub, "sub")?;
        if sub.is_empty() {
            return Err(TokenError::InvalidClaim("sub"));
        }
        let exp = seconds(required(raw.exp, "exp")?, "exp", f64::floor)?;
        // RFC 7519 §4.1.5: not before `nbf`; a fractional second counts whole.
        let nbf = optional::<serde_json::Number>(raw.nbf, "nbf")?.map(|n| seconds(n, "nbf", f64::ceil)).transpose()?;
        optional::<serde_json::Number>(raw.iat, "iat")?;
        let aud: Option<Audience> = optional(raw.aud, "aud")?;
        let iss: Option<String> = optional(raw.iss, "iss")?;
        let topics: Option<Grants> = optional(raw.topics, "topics")?;
        let publish: Option<Grants> = optional(raw.publish, "publish")?;

        // RFC 7519 §4.1.4: expired once now is past exp (plus the leeway).
        if expected.now > exp.saturating_add(expected.leeway) {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > expected.now.saturating_add(expected.leeway)) {
            return Err(TokenError::NotYetValid);
        }
        // RFC 7519 §4.1.3: a token naming an audience is refused by a principal
        // that is not in it, and one with no audience configured is in none.
        match (expected.audience, &aud) {
            (None, None) => {}
            (Some(ours), Some(Audience::One(theirs))) if theirs == ours => {}
            (Some(ours), Some(Audience::Many(theirs))) if theirs.iter().any(|t| t == ours) => {}
            _ => return Err(TokenError::Audience),
        }
        if let Some(ours) = expected.issuer {
            if iss.as_deref() != Some(ours) {
                return Err(TokenError::Issuer);
            }
        }
        Ok(Self { sub, exp, topics: topics.unwrap_or_default(), publish: publish.unwrap_or_default() })
    }
}

/// A claim that must be there and not `null`, as a `T`.
fn required<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>, name: &'static str) -> Result<T, TokenError> {
    optional(raw, name)?.ok_or(TokenError::MissingClaim(name))
}

/// A claim that may be absent or `null`, as a `T` when there.
fn optional<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>, name: &'static str) -> Result<Option<T>, TokenError> {
    raw.map(|raw| serde_json::from_str(raw.get()).map_err(|_| TokenError::InvalidClaim(name))).transpose()
}

/// A NumericDate (RFC 7519 §2: seconds, possibly fractional) as whole Unix
/// seconds, fractions rounded by `round`; before 1970 counts as 0, past
/// `u64::MAX` as `u64::MAX` (where no clock will ever be).
fn seconds(number: serde_json::Number, name: &'static str, round: fn(f64) -> f64) -> Result<u64, TokenError> {
    if let Some(secs) = number.as_u64() {
        return Ok(secs);
    }
    if number.as_i64().is_some() {
        return Ok(0);
    }
    match number.as_f64() {
        // `as` saturates, and negatives become 0.
        Some(secs) if secs.is_finite() => Ok(round(secs) as u64),
        _ => Err(TokenError::InvalidClaim(name)),
    }
}
