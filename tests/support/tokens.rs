//! Session tokens made in the tests: HS256 and EdDSA JWTs signed with ring.
#![allow(dead_code)]

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn signing_input(alg: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}")
}

/// An HS256 token with `claims`, signed with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    let input = signing_input("HS256", claims);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, input.as_bytes()));
    format!("{input}.{signature}")
}

/// An Ed25519 key pair made from `seed`, and its public key as a PEM SubjectPublicKeyInfo.
pub fn ed25519(seed: u8) -> (ring::signature::Ed25519KeyPair, String) {
    use ring::signature::KeyPair as _;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).expect("a 32-byte seed");
    // RFC 8410 §4: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING { key } }.
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend_from_slice(pair.public_key().as_ref());
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    (pair, format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"))
}

/// An EdDSA token with `claims`, signed with `pair`.
pub fn eddsa(pair: &ring::signature::Ed25519KeyPair, claims: &Value) -> String {
    let input = signing_input("EdDSA", claims);
    let signature = URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()));
    format!("{input}.{signature}")
}
