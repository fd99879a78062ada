//! The identity layer's token verifier and public key parser on arbitrary
//! input. The first byte picks what the rest is:
//!
//! - 0: a token, as text, verified by an HMAC verifier and by verifiers with
//!   fixed EC P-256, EC P-384 and Ed25519 public keys (generated once; their
//!   private halves were discarded);
//! - 1: a header and a payload (split at the first newline), signed here with
//!   the HMAC secret, so that the claims behind a good signature are reached;
//! - 2: a PEM public key.
//!
//! Nothing may panic; an error never shows the token; a token accepted has
//! claims within the rules (a subject, an expiry not past).
#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ferrows::app::auth::{TokenError, Verifier};
use libfuzzer_sys::fuzz_target;
use ring::hmac;

const NOW: u64 = 1_700_000_000;
const LEEWAY: u64 = 5;
const SECRET: &[u8] = b"the fuzz target's HMAC secret, sixty-four bytes long, for HS512.";

const EC_P256: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEj6ayxk0Xphm1VJtTGzb6ugsdgIW3
l1WM9Atj7t0AZ5RW75f3jsqBZq+wAqtZwtx4ycM+D5zWh0qF4KWN6VYpUg==
-----END PUBLIC KEY-----
";

const EC_P384: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEaWihO4mio9NLSKW4Lx/IM0aZeOX5RsOc
Kj/3Wc1C+SewCJjU1WdXtNu0173dDnLhHUbqKGWw1+8GTr/ag1aRGRAX4FlpoMLm
kX3mBzYsq/FBolP+5meKXYgZRSzTDK+f
-----END PUBLIC KEY-----
";

const ED25519: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAdutSO+KxlHQwOlJplND7d6KXHiCatPv08yMSh6z6wMQ=
-----END PUBLIC KEY-----
";

static VERIFIERS: LazyLock<Vec<Verifier>> = LazyLock::new(|| {
    let hmac = Verifier::new().with_hmac_secret(SECRET).expect("a 64-byte secret").with_leeway(LEEWAY);
    let public = |pem: &str| Verifier::new().with_public_key_pem(pem.as_bytes()).expect("a fixed key");
    vec![
        hmac.clone(),
        hmac.with_audience("ferrows").with_issuer("https://id.example"),
        public(EC_P256).with_hmac_secret(SECRET).expect("a 64-byte secret"),
        public(EC_P384),
        public(ED25519),
    ]
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                for verifier in VERIFIERS.iter() {
                    check(verifier, token);
                }
            }
        }
        1 => {
            let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (&br#"{"alg":"HS256"}"#[..], rest),
            };
            let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
            for alg in [hmac::HMAC_SHA256, hmac::HMAC_SHA384, hmac::HMAC_SHA512] {
                let tag = hmac::sign(&hmac::Key::new(alg, SECRET), signed.as_bytes());
                let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag));
                check(&VERIFIERS[0], &token);
                check(&VERIFIERS[1], &token);
            }
        }
        2 => {
            if let Ok(verifier) = Verifier::new().with_public_key_pem(rest) {
                assert!(verifier.has_key());
            }
        }
        _ => {}
    }
});

/// Verifies `token` and checks what comes back.
fn check(verifier: &Verifier, token: &str) {
    match verifier.verify(token, NOW) {
        Ok(claims) => {
            assert!(!claims.sub.is_empty());
            assert!(claims.exp.saturating_add(LEEWAY) >= NOW);
            let _ = (claims.topics.allows("chat:x"), claims.publish.is_empty());
        }
        Err(e) => {
            assert!(matches!(e.reason(), "expired" | "invalid"));
            if e == TokenError::Expired {
                assert_eq!(e.reason(), "expired");
            }
            // No message has a dot: one containing a token with a dot in it
            // would be repeating the token.
            if token.contains('.') {
                for text in [e.to_string(), format!("{e:?}")] {
                    assert!(!text.contains(token), "{e:?} repeats the token");
                }
            }
        }
    }
}
