//! Tokens minted by an independent implementation, Python's PyJWT with
//! `cryptography` (`pip install pyjwt cryptography`), checked by
//! [`Verifier`]: every algorithm accepted with its key (HS256/384/512,
//! RS256/384/512, PS256/384/512, ES256, ES384, EdDSA; RSA keys as
//! SubjectPublicKeyInfo and PKCS#1), and the refusals: tampered payloads and
//! signatures, expired, not yet valid, wrong audience and issuer, missing
//! claims, `alg: none`, an `alg` of another key's type, and HS256 keyed with
//! the public key's PEM text.
//!
//! A missing `python3`, PyJWT or `cryptography` fails the test with
//! instructions: it is never skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrows::app::auth::Verifier;
use serde_json::Value;

const INSTALL: &str = "install Python 3 and its JWT packages: `pip install pyjwt cryptography`";

/// The time the tokens are minted around and verified at.
const NOW: u64 = 1_750_000_000;

/// Fails with instructions unless `python3` can import PyJWT and `cryptography`.
fn require_pyjwt() {
    match Command::new("python3").args(["-c", "import jwt, cryptography"]).output() {
        Err(e) => panic!("cannot run `python3` ({e}): {INSTALL}"),
        Ok(out) if !out.status.success() => {
            panic!("PyJWT or cryptography is missing: {INSTALL}\n{}", String::from_utf8_lossy(&out.stderr))
        }
        Ok(_) => {}
    }
}

/// A directory of its own for this run's public keys.
fn key_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("auth_tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the key directory");
    dir
}

/// The cases `tests/python/mint_tokens.py` prints.
fn mint(dir: &Path) -> Vec<Value> {
    require_pyjwt();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mint_tokens.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg(NOW.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(out.status.success(), "{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON case per line"))
        .collect()
}

/// The verifier a case asks for.
fn verifier(case: &Value) -> Verifier {
    let mut verifier = Verifier::new();
    if let Some(secret) = case["secret"].as_str() {
        verifier = verifier.with_hmac_secret(secret.as_bytes()).expect("a long enough secret");
    }
    if let Some(path) = case["pem_path"].as_str() {
        let pem = std::fs::read(path).expect("read the public key");
        verifier = verifier.with_public_key_pem(&pem).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    if let Some(audience) = case["audience"].as_str() {
        verifier = verifier.with_audience(audience);
    }
    if let Some(issuer) = case["issuer"].as_str() {
        verifier = verifier.with_issuer(issuer);
    }
    verifier
}

/// What went wrong with one case, if anything; tokens are left out of the
/// message, as the verifier's errors leave them out.
fn check(case: &Value) -> Option<String> {
    let name = case["name"].as_str().unwrap_or("?");
    let token = case["token"].as_str()?;
    let expect = case["expect"].as_str()?;
    let strings = |key: &str| -> Vec<String> {
        case[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    match (verifier(case).verify(token, NOW), expect) {
        (Ok(claims), "ok") => {
            if let Some(sub) = case["sub"].as_str() {
                if claims.sub != sub {
                    return Some(format!("{name}: sub {:?}, expected {sub:?}", claims.sub));
                }
            }
            if let Some(topic) = strings("allows").iter().find(|t| !claims.topics.allows(t)) {
                return Some(format!("{name}: topics should allow {topic:?}"));
            }
            if let Some(topic) = strings("denies").iter().find(|t| claims.topics.allows(t)) {
                return Some(format!("{name}: topics should not allow {topic:?}"));
            }
            None
        }
        (Ok(_), _) => Some(format!("{name}: accepted, expected {expect}")),
        (Err(e), "ok") => Some(format!("{name}: refused with {e:?} ({e}), expected to be accepted")),
        (Err(e), _) if format!("{e:?}") == expect => None,
        (Err(e), _) => Some(format!("{name}: refused with {e:?}, expected {expect}")),
    }
}

#[test]
fn pyjwt_tokens() {
    let dir = key_dir();
    let cases = mint(&dir);
    let failures: Vec<String> = cases.iter().filter_map(check).collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // The script covered every algorithm, accepted and refused.
    let accepted: BTreeSet<&str> =
        cases.iter().filter(|c| c["expect"] == "ok").filter_map(|c| c["alg"].as_str()).collect();
    let all =
        ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
    assert_eq!(accepted, all.into_iter().collect(), "algorithms accepted");
    let refusals: BTreeSet<&str> = cases.iter().filter_map(|c| c["expect"].as_str()).filter(|e| *e != "ok").collect();
    for kind in ["Signature", "Expired", "NotYetValid", "Audience", "Issuer", "Algorithm", "MissingClaim(\"sub\")"] {
        assert!(refusals.contains(kind), "no case expects {kind}");
    }
}
