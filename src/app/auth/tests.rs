//! The verifier with an HMAC secret: the token's form, each refusal, the
//! claims, and errors that never repeat a token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;

use super::*;

/// 64 bytes: enough for HS512.
pub(super) const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub(super) const NOW: u64 = 1_700_000_000;
const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload` and its HMAC signature with `secret`, as `alg` names.
pub(super) fn hmac_token(alg: hmac::Algorithm, secret: &[u8], header: &str, payload: &str) -> String {
    let signed = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(&hmac::Key::new(alg, secret), signed.as_bytes());
    format!("{signed}.{}", b64(tag))
}

fn hs256(payload: &str) -> String {
    hmac_token(hmac::HMAC_SHA256, SECRET, HS256, payload)
}

fn verifier() -> Verifier {
    Verifier::new().with_hmac_secret(SECRET).unwrap()
}

fn good_payload() -> String {
    format!(r#"{{"sub":"alice","exp":{},"topics":["chat:*","news"],"publish":["chat:lobby"]}}"#, NOW + 60)
}

#[test]
fn accepts_each_hmac_algorithm() {
    for (alg, name) in [(hmac::HMAC_SHA256, "HS256"), (hmac::HMAC_SHA384, "HS384"), (hmac::HMAC_SHA512, "HS512")] {
        let token = hmac_token(alg, SECRET, &format!(r#"{{"alg":"{name}"}}"#), &good_payload());
        let claims = verifier().verify(&token, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.exp, NOW + 60);
        assert!(claims.topics.allows("chat:x") && claims.topics.allows("news") && !claims.topics.allows("x"));
        assert!(claims.publish.allows("chat:lobby") && !claims.publish.allows("chat:other"));
    }
}

#[test]
fn no_key_refuses_everything() {
    let none = Verifier::new();
    assert!(!none.has_key());
    assert_eq!(none.verify(&hs256(&good_payload()), NOW), Err(TokenError::NoKey));
    assert_eq!(none.verify("", NOW), Err(TokenError::NoKey));
    assert!(verifier().has_key());
}

#[test]
fn too_long_is_refused_before_decoding() {
    // Not even base64: the length alone decides.
    let junk = "!".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(verifier().verify(&junk, NOW), Err(TokenError::TooLong));
    // At the limit it is read (and found malformed).
    assert_eq!(verifier().verify(&junk[1..], NOW), Err(TokenError::Malformed));
    let padded = hs256(&format!(r#"{{"sub":"a","exp":{},"pad":"{}"}}"#, NOW + 60, "x".repeat(6200)));
    assert!(padded.len() > MAX_TOKEN_LEN);
    assert_eq!(verifier().verify(&padded, NOW), Err(TokenError::TooLong));
}

#[test]
fn malformed_forms() {
    let good = hs256(&good_payload());
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let cases = [
        String::new(),
        "a".into(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}."),
        format!(".{p}.{s}"),
        // RFC 7515 §2: base64url without padding.
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}.{s}="),
        // The standard alphabet's characters are not base64url.
        format!("{h}.{p}.+{}", &s[1..]),
        format!("{h}.{p}./{}", &s[1..]),
        format!("{h}+.{p}.{s}"),
        format!("{h}.{p}.{s} "),
        // A length no base64 has.
        format!("{h}.{p}.{s}AA"),
    ];
    for token in &cases {
        assert_eq!(verifier().verify(token, NOW), Err(TokenError::Malformed), "{token:?}");
    }
    // A signature spelled with non-zero unused bits (32 bytes leave 2 in the
    // last character): the same bytes, another text, refused rather than
    // decoded leniently.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = ALPHABET.iter().position(|&c| s.ends_with(c as char)).unwrap();
    let lenient = format!("{h}.{p}.{}{}", &s[..s.len() - 1], ALPHABET[last | 1] as char);
    assert_eq!(verifier().verify(&lenient, NOW), Err(TokenError::Malformed));
}

#[test]
fn headers_that_are_not_an_object_with_alg() {
    for header in [
        "not json",
        r#"["HS256"]"#,
        r#""HS256""#,
        "{}",
        r#"{"typ":"JWT"}"#,
        r#"{"alg":256}"#,
        r#"{"alg":null}"#,
        r#"{"alg":"HS256","alg":"HS256"}"#,
        r#"{"alg":"HS256"} x"#,
    ] {
        let token = hmac_token(hmac::HMAC_SHA256, SECRET, header, &good_payload());
        assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Malformed), "{header}");
    }
    // Whitespace and unknown parameters are fine; `typ` is not checked.
    let token = hmac_token(
        hmac::HMAC_SHA256,
        SECRET,
        r#" { "typ" : "at+jwt", "kid":"k1", "alg" : "HS\u0032\u0035\u0036" } "#,
        &good_payload(),
    );
    assert!(verifier().verify(&token, NOW).is_ok());
}

#[test]
fn algorithm_none_and_unknown_names_are_refused() {
    let payload = good_payload();
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&payload));
    assert_eq!(verifier().verify(&unsigned, NOW), Err(TokenError::Algorithm));
    for alg in ["none", "None", "NONE", "hs256", "HS256 ", "HS1", "", "RS256", "ES256", "EdDSA"] {
        let token = hmac_token(hmac::HMAC_SHA256, SECRET, &format!(r#"{{"alg":"{alg}"}}"#), &payload);
        assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Algorithm), "{alg:?}");
    }
}

#[test]
fn critical_extensions_are_refused() {
    let token = hmac_token(hmac::HMAC_SHA256, SECRET, r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &good_payload());
    assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Critical));
}

#[test]
fn tampering_breaks_the_signature() {
    let good = hs256(&good_payload());
    let (h, rest) = good.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let forged_payload = format!(r#"{{"sub":"mallory","exp":{},"topics":["*"]}}"#, NOW + 60);
    assert_eq!(verifier().verify(&format!("{h}.{}.{s}", b64(&forged_payload)), NOW), Err(TokenError::Signature));

    let mut tag = URL_SAFE_NO_PAD.decode(s).unwrap();
    for i in [0, tag.len() / 2, tag.len() - 1] {
        tag[i] ^= 1;
        let token = format!("{}.{}", &good[..good.len() - s.len() - 1], b64(&tag));
        assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Signature), "byte {i}");
        tag[i] ^= 1;
    }
    let short = format!("{}.{}", &good[..good.len() - s.len() - 1], b64(&tag[..31]));
    assert_eq!(verifier().verify(&short, NOW), Err(TokenError::Signature));
    let empty = &good[..good.len() - s.len()];
    assert_eq!(verifier().verify(empty, NOW), Err(TokenError::Signature));
    // Another secret; and the header's alg swapped for another HMAC.
    let other = hmac_token(hmac::HMAC_SHA256, &[7; 64], HS256, &good_payload());
    assert_eq!(verifier().verify(&other, NOW), Err(TokenError::Signature));
    let swapped = format!("{}.{}", b64(r#"{"alg":"HS512","typ":"JWT"}"#), &good[h.len() + 1..]);
    assert_eq!(verifier().verify(&swapped, NOW), Err(TokenError::Signature));
}

#[test]
fn the_payload_of_a_forged_token_is_never_read() {
    // Neither JSON nor claims: a bad signature is all the verifier says.
    for payload in ["not json", "[1,2]", r#"{"sub":1}"#, r#"{"sub":"a","exp":1}"#] {
        let token = hmac_token(hmac::HMAC_SHA256, &[7; 64], HS256, payload);
        assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Signature), "{payload}");
    }
}

#[test]
fn hmac_secrets_as_long_as_the_hash() {
    assert_eq!(Verifier::new().with_hmac_secret(&SECRET[..31]).err(), Some(KeyError::ShortSecret));
    assert_eq!(Verifier::new().with_hmac_secret(b"").err(), Some(KeyError::ShortSecret));
    let short = Verifier::new().with_hmac_secret(&SECRET[..32]).unwrap();
    let payload = good_payload();
    let hs256 = hmac_token(hmac::HMAC_SHA256, &SECRET[..32], HS256, &payload);
    assert!(short.verify(&hs256, NOW).is_ok());
    for (alg, name) in [(hmac::HMAC_SHA384, "HS384"), (hmac::HMAC_SHA512, "HS512")] {
        let token = hmac_token(alg, &SECRET[..32], &format!(r#"{{"alg":"{name}"}}"#), &payload);
        assert_eq!(short.verify(&token, NOW), Err(TokenError::Algorithm), "{name}");
    }
    let hs384 = hmac_token(hmac::HMAC_SHA384, &SECRET[..48], r#"{"alg":"HS384"}"#, &payload);
    assert!(Verifier::new().with_hmac_secret(&SECRET[..48]).unwrap().verify(&hs384, NOW).is_ok());
}

#[test]
fn expiry_and_not_before_with_leeway() {
    let exp = NOW;
    let token = hs256(&format!(r#"{{"sub":"a","exp":{exp}}}"#));
    let v = verifier();
    assert!(v.verify(&token, exp).is_ok());
    assert!(v.verify(&token, exp + DEFAULT_LEEWAY).is_ok());
    assert_eq!(v.verify(&token, exp + DEFAULT_LEEWAY + 1), Err(TokenError::Expired));
    let strict = verifier().with_leeway(0);
    assert_eq!(strict.verify(&token, exp + 1), Err(TokenError::Expired));
    assert!(verifier().with_leeway(100).verify(&token, exp + 100).is_ok());

    let nbf = NOW + 100;
    let token = hs256(&format!(r#"{{"sub":"a","exp":{},"nbf":{nbf}}}"#, NOW + 1000));
    assert_eq!(v.verify(&token, nbf - DEFAULT_LEEWAY - 1), Err(TokenError::NotYetValid));
    assert!(v.verify(&token, nbf - DEFAULT_LEEWAY).is_ok());
    assert!(v.verify(&token, nbf).is_ok());
    assert_eq!(strict.verify(&token, nbf - 1), Err(TokenError::NotYetValid));
}

#[test]
fn numeric_dates_may_be_fractional() {
    let v = verifier().with_leeway(0);
    let token = hs256(&format!(r#"{{"sub":"a","exp":{}.5,"nbf":{}.5,"iat":{}.25}}"#, NOW, NOW - 10, NOW - 10));
    assert_eq!(v.verify(&token, NOW).map(|c| c.exp), Ok(NOW));
    assert_eq!(v.verify(&token, NOW + 1), Err(TokenError::Expired));
    assert_eq!(v.verify(&token, NOW - 10), Err(TokenError::NotYetValid), "nbf x.5 is not reached at x");
    assert!(v.verify(&token, NOW - 9).is_ok());
    // Before 1970 is long expired; far past u64 is never.
    let old = hs256(r#"{"sub":"a","exp":-1}"#);
    assert_eq!(v.verify(&old, NOW), Err(TokenError::Expired));
    let far = hs256(r#"{"sub":"a","exp":1e300}"#);
    assert_eq!(v.verify(&far, NOW).map(|c| c.exp), Ok(u64::MAX));
    let exponent = hs256(&format!(r#"{{"sub":"a","exp":{}e0}}"#, NOW + 60));
    assert!(v.verify(&exponent, NOW).is_ok());
}

#[test]
fn required_claims_and_their_types() {
    let exp = NOW + 60;
    let cases: &[(String, TokenError)] = &[
        (format!(r#"{{"exp":{exp}}}"#), TokenError::MissingClaim("sub")),
        (format!(r#"{{"sub":null,"exp":{exp}}}"#), TokenError::MissingClaim("sub")),
        (r#"{"sub":"a"}"#.into(), TokenError::MissingClaim("exp")),
        (r#"{"sub":"a","exp":null}"#.into(), TokenError::MissingClaim("exp")),
        (format!(r#"{{"sub":42,"exp":{exp}}}"#), TokenError::InvalidClaim("sub")),
        (format!(r#"{{"sub":"","exp":{exp}}}"#), TokenError::InvalidClaim("sub")),
        (format!(r#"{{"sub":"a","exp":"{exp}"}}"#), TokenError::InvalidClaim("exp")),
        (format!(r#"{{"sub":"a","exp":{exp},"nbf":"0"}}"#), TokenError::InvalidClaim("nbf")),
        (format!(r#"{{"sub":"a","exp":{exp},"iat":[]}}"#), TokenError::InvalidClaim("iat")),
        (format!(r#"{{"sub":"a","exp":{exp},"iss":7}}"#), TokenError::InvalidClaim("iss")),
        (format!(r#"{{"sub":"a","exp":{exp},"aud":[7]}}"#), TokenError::InvalidClaim("aud")),
        (format!(r#"{{"sub":"a","exp":{exp},"aud":{{}}}}"#), TokenError::InvalidClaim("aud")),
        (format!(r#"{{"sub":"a","exp":{exp},"topics":"chat"}}"#), TokenError::InvalidClaim("topics")),
        (format!(r#"{{"sub":"a","exp":{exp},"topics":[""]}}"#), TokenError::InvalidClaim("topics")),
        (format!(r#"{{"sub":"a","exp":{exp},"publish":[1]}}"#), TokenError::InvalidClaim("publish")),
        (format!(r#"{{"sub":"a","sub":"b","exp":{exp}}}"#), TokenError::Malformed),
        (format!(r#"[{{"sub":"a","exp":{exp}}}]"#), TokenError::Malformed),
        (r#"["a", 1700000060]"#.into(), TokenError::Malformed),
        (format!(r#"{{"sub":"a","exp":{exp}}} trailing"#), TokenError::Malformed),
        ("not json".into(), TokenError::Malformed),
    ];
    for (payload, expected) in cases {
        assert_eq!(verifier().verify(&hs256(payload), NOW).as_ref(), Err(expected), "{payload}");
    }
    // Claims this server does not know are skipped; null grants are none.
    let extra = hs256(&format!(r#"{{"sub":"a","exp":{exp},"jti":"x","scope":{{"a":[1]}},"topics":null}}"#));
    let claims = verifier().verify(&extra, NOW).unwrap();
    assert!(claims.topics.is_empty() && claims.publish.is_empty());
}

#[test]
fn grants_are_bounded() {
    let many: Vec<String> = (0..=MAX_GRANTS).map(|i| format!("\"t{i}\"")).collect();
    let exp = NOW + 60;
    let at_limit = hs256(&format!(r#"{{"sub":"a","exp":{exp},"topics":[{}]}}"#, many[..MAX_GRANTS].join(",")));
    assert!(verifier().verify(&at_limit, NOW).is_ok());
    let over = hs256(&format!(r#"{{"sub":"a","exp":{exp},"topics":[{}]}}"#, many.join(",")));
    assert_eq!(verifier().verify(&over, NOW), Err(TokenError::InvalidClaim("topics")));
    let long = hs256(&format!(r#"{{"sub":"a","exp":{exp},"publish":["{}"]}}"#, "x".repeat(MAX_GRANT_LEN + 1)));
    assert_eq!(verifier().verify(&long, NOW), Err(TokenError::InvalidClaim("publish")));
}

#[test]
fn audience_and_issuer() {
    let exp = NOW + 60;
    let v = verifier().with_audience("ferrows").with_issuer("https://id.example");
    let token = |extra: &str| hs256(&format!(r#"{{"sub":"a","exp":{exp}{extra}}}"#));
    let ok = r#","aud":"ferrows","iss":"https://id.example""#;
    assert!(v.verify(&token(ok), NOW).is_ok());
    assert!(v.verify(&token(r#","aud":["x","ferrows"],"iss":"https://id.example""#), NOW).is_ok());
    for (extra, expected) in [
        (r#","aud":"other","iss":"https://id.example""#, TokenError::Audience),
        (r#","aud":["x","y"],"iss":"https://id.example""#, TokenError::Audience),
        (r#","aud":[],"iss":"https://id.example""#, TokenError::Audience),
        (r#","aud":"Ferrows","iss":"https://id.example""#, TokenError::Audience),
        (r#","iss":"https://id.example""#, TokenError::Audience),
        (r#","aud":"ferrows","iss":"https://evil.example""#, TokenError::Issuer),
        (r#","aud":"ferrows""#, TokenError::Issuer),
    ] {
        assert_eq!(v.verify(&token(extra), NOW), Err(expected), "{extra}");
    }
    // RFC 7519 §4.1.3: with no audience configured, a token naming one is
    // not for this server; without `aud` it is, and `iss` is not checked.
    assert_eq!(verifier().verify(&token(r#","aud":"ferrows""#), NOW), Err(TokenError::Audience));
    assert!(verifier().verify(&token(r#","iss":"anyone""#), NOW).is_ok());
}

#[test]
fn reasons_are_two_metric_labels() {
    assert_eq!(TokenError::Expired.reason(), "expired");
    for e in all_errors() {
        if e != TokenError::Expired {
            assert_eq!(e.reason(), "invalid", "{e:?}");
        }
    }
}

/// Every variant, listed by a match without a wildcard so that a new one
/// must be added here.
fn all_errors() -> Vec<TokenError> {
    let all = vec![
        TokenError::NoKey,
        TokenError::Malformed,
        TokenError::TooLong,
        TokenError::Algorithm,
        TokenError::Critical,
        TokenError::Signature,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::Audience,
        TokenError::Issuer,
        TokenError::MissingClaim("sub"),
        TokenError::InvalidClaim("topics"),
    ];
    for e in &all {
        match e {
            TokenError::NoKey
            | TokenError::Malformed
            | TokenError::TooLong
            | TokenError::Algorithm
            | TokenError::Critical
            | TokenError::Signature
            | TokenError::Expired
            | TokenError::NotYetValid
            | TokenError::Audience
            | TokenError::Issuer
            | TokenError::MissingClaim(_)
            | TokenError::InvalidClaim(_) => {}
        }
    }
    all
}

#[test]
fn errors_never_contain_the_token() {
    let exp = NOW + 60;
    let v = verifier().with_audience("ferrows").with_issuer("iss");
    let tokens = [
        hs256(&format!(r#"{{"sub":"alice-secret-subject","exp":{exp},"aud":"ferrows","iss":"iss"}}"#)),
        hs256(&format!(r#"{{"sub":"alice-secret-subject","exp":{}}}"#, NOW - 3600)),
        hs256(&format!(r#"{{"sub":"alice-secret-subject","exp":{exp},"aud":"elsewhere"}}"#)),
        hs256(r#"{"subject":"alice-secret-subject"}"#),
        hmac_token(hmac::HMAC_SHA256, &[9; 32], HS256, r#"{"sub":"alice-secret-subject"}"#),
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(r#"{"sub":"alice-secret-subject"}"#)),
    ];
    for token in &tokens {
        let token = token.as_str();
        let parts: Vec<&str> = token.split('.').filter(|p| !p.is_empty()).collect();
        // What verify says about this token, and every other variant beside it.
        let mut errors = all_errors();
        errors.extend(v.verify(token, NOW).err());
        errors.extend(Verifier::new().verify(token, NOW).err());
        errors.extend(v.verify(&format!("{token}.{token}"), NOW).err());
        for e in errors {
            for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
                for part in &parts {
                    assert!(!text.contains(part), "{e:?} shows a part of the token");
                }
                assert!(!text.contains("alice-secret-subject"), "{e:?} shows a claim");
            }
        }
    }
    // The verifier's own Debug shows no secret either.
    let debug = format!("{v:?}");
    assert!(!debug.contains("0123456789") && debug.contains("<set>"), "{debug}");
}

#[test]
fn clones_share_until_changed() {
    // Every event loop holds a clone.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Verifier>();
    let base = verifier();
    let stricter = base.clone().with_audience("ferrows");
    let token = hs256(&good_payload());
    assert!(base.verify(&token, NOW).is_ok());
    assert_eq!(stricter.verify(&token, NOW), Err(TokenError::Audience));
}
