//! Why a token or a key was refused.
//!
//! No value here carries any part of a token, not even in `Debug`: errors end
//! up in logs, and a token in a log is a credential anyone reading it can use.

use std::fmt;

/// Why [`Verifier::verify`](super::Verifier::verify) refused a token.
///
/// Every variant is a refusal; only [`reason`](Self::reason) sorts them, for
/// the `ferrows_auth_total{result=...}` counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// No key is configured: every token is refused.
    NoKey,
    /// Not three base64url parts separated by dots, a part that is not
    /// base64url without padding, or a header or payload that is not a JSON
    /// object (RFC 7515 §7.1, RFC 7519 §7.2).
    Malformed,
    /// Longer than [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN): refused before
    /// anything is decoded.
    TooLong,
    /// The header's `alg` is `none`, unknown, or not one the configured keys
    /// verify (an HMAC `alg` with only a public key, an RSA `alg` with an EC
    /// key, ...), or the HMAC secret is shorter than the `alg`'s hash
    /// (RFC 7518 §3.2).
    Algorithm,
    /// The header lists critical extensions (`crit`), none of which this
    /// verifier implements (RFC 7515 §4.1.11).
    Critical,
    /// The signature does not verify.
    Signature,
    /// `exp` is past, beyond the leeway.
    Expired,
    /// `nbf` is ahead, beyond the leeway.
    NotYetValid,
    /// An audience is configured and `aud` does not name it, or `aud` is
    /// present and no audience is configured (RFC 7519 §4.1.3).
    Audience,
    /// An issuer is configured and `iss` is missing or another.
    Issuer,
    /// A required claim is missing (or `null`).
    MissingClaim(&'static str),
    /// A claim has the wrong type or a value out of bounds (a grant too long,
    /// too many grants, an empty `sub`, ...).
    InvalidClaim(&'static str),
}

impl TokenError {
    /// The label of this outcome in `ferrows_auth_total{result=...}`:
    /// `"expired"` for [`Expired`](Self::Expired), `"invalid"` for every other.
    ///
    /// Only two labels, so that a peer sending junk cannot grow the metric's
    /// series; an expired token is worth its own because it is the one a
    /// well-behaved client fixes by refreshing.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Expired => "expired",
            _ => "invalid",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKey => f.write_str("no key is configured to verify tokens"),
            Self::Malformed => f.write_str("the token is not a well-formed JWS compact serialization"),
            Self::TooLong => f.write_str("the token is too long"),
            Self::Algorithm => f.write_str("the token's algorithm is refused for the configured keys"),
            Self::Critical => f.write_str("the token's header names critical extensions"),
            Self::Signature => f.write_str("the token's signature does not verify"),
            Self::Expired => f.write_str("the token has expired"),
            Self::NotYetValid => f.write_str("the token is not valid yet"),
            Self::Audience => f.write_str("the token's audience is not this server"),
            Self::Issuer => f.write_str("the token's issuer is not the configured one"),
            Self::MissingClaim(name) => write!(f, "the token has no `{name}` claim"),
            Self::InvalidClaim(name) => write!(f, "the token's `{name}` claim is invalid"),
        }
    }
}

impl std::error::Error for TokenError {}

/// Why [`Verifier::with_public_key_pem`](super::Verifier::with_public_key_pem)
/// or [`Verifier::with_hmac_secret`](super::Verifier::with_hmac_secret)
/// refused a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No `-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`
    /// block with its matching END line, or its body is not base64.
    NotPem,
    /// Longer than [`MAX_PEM_LEN`](super::MAX_PEM_LEN).
    TooLong,
    /// A private key where the public key belongs. Only the public half is
    /// needed to verify, and a private key in the server's configuration is a
    /// key more to leak.
    PrivateKey,
    /// A PEM block of another kind (a certificate, ...), or a public key of
    /// an algorithm or curve tokens are not verified with here (RSA, EC P-256
    /// and P-384, Ed25519 are).
    Unsupported,
    /// The DER inside is not the key it says it is.
    Malformed,
    /// An RSA modulus outside 2048–8192 bits (its size in bits).
    RsaKeySize(usize),
    /// An HMAC secret shorter than 32 bytes, the least that HS256 allows
    /// (RFC 7518 §3.2).
    ShortSecret,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPem => f.write_str("not a PEM public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)"),
            Self::TooLong => f.write_str("the PEM text is too long for a public key"),
            Self::PrivateKey => f.write_str("a private key where the public key belongs"),
            Self::Unsupported => f.write_str("unsupported key: RSA, EC P-256, EC P-384 and Ed25519 public keys are"),
            Self::Malformed => f.write_str("the key's DER is malformed"),
            Self::RsaKeySize(bits) => write!(f, "an RSA key of {bits} bits (2048 to 8192 are accepted)"),
            Self::ShortSecret => f.write_str("the HMAC secret is shorter than 32 bytes"),
        }
    }
}

impl std::error::Error for KeyError {}
