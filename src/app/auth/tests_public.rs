//! The verifier with public keys: the PEM and DER forms a key comes in, RSA,
//! ECDSA and Ed25519 signatures, and each `alg` held to its key's type.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};

use super::der::{BIT_STRING, NULL, OID, SEQUENCE};
use super::tests::{b64, hmac_token, NOW, SECRET};
use super::*;

/// An RSA-2048 public key (the private half was discarded once the tokens
/// below were signed with PyJWT).
const RSA_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs6x6cod1myL4ZE9kZWzB
D845SegwgjZZ9GNieGUHNHHsn0SrFNnnWMFmPpAQXcGbG1JxyOW68YVkN9/cuHv+
+qo6jxxPaZqlKb7McjDCVDNGAwzu13cZzddEqn+shpfMqlyKi6r7k+erFUI+74aD
V55EtkZULcJ1GmQWDccCMJnP16U75QoOQKQM0f/210WVm9b72WvVMTc8o+Cy644L
2rIovkDH1hNCOotyvEesK7a8vCfaUBTW0PTSxxdbp6+n5Q8B9fwqfTSEjF9kw8yh
zPNhliTNF+jmrfT4SlgiptpXR06HDJ+oOrz64eIYeaQhDTr2+VMnvMVJljijVZfW
+QIDAQAB
-----END PUBLIC KEY-----
";

/// The same key as PKCS#1's RSAPublicKey.
const RSA_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAs6x6cod1myL4ZE9kZWzBD845SegwgjZZ9GNieGUHNHHsn0SrFNnn
WMFmPpAQXcGbG1JxyOW68YVkN9/cuHv++qo6jxxPaZqlKb7McjDCVDNGAwzu13cZ
zddEqn+shpfMqlyKi6r7k+erFUI+74aDV55EtkZULcJ1GmQWDccCMJnP16U75QoO
QKQM0f/210WVm9b72WvVMTc8o+Cy644L2rIovkDH1hNCOotyvEesK7a8vCfaUBTW
0PTSxxdbp6+n5Q8B9fwqfTSEjF9kw8yhzPNhliTNF+jmrfT4SlgiptpXR06HDJ+o
Orz64eIYeaQhDTr2+VMnvMVJljijVZfW+QIDAQAB
-----END RSA PUBLIC KEY-----
";

/// `{"sub":"rsa-user","exp":2000000000,"topics":["a"]}` signed with the key
/// above by each RSA algorithm.
const RSA_TOKENS: [(&str, &str); 6] = [
    ("RS256", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6MjAwMDAwMDAwMCwidG9waWNzIjpbImEiXX0.BPO9o3HU6s17PkzBbnPU3dnbox658aNwNATR2Bt24l-RiGiD6kvtJk8XfkCgSNPIDxaB7DT6jieUfYK3UcGQGsEkxtuogPLEhMQXVpTTbChnEoMNgh0wpqkBNwEZhcoOxVxD_kcySthQEv7SVPK-mmr1jBrbjtLtHgSHA2ZG45Z3yLKmL7Jug2bs4HnFgLSeXv0l982OgzmxIYGyvke99CMLI3hkdguQDh1aNsZVANj2CRAmyf6MZrgSrI5HLO7GYI8ZevHy_O1SUl5TiZdEh25CromQDbQu9ZmGQ3hpCfQDw1bcpMutjnQnH567JOR7wHlHErtfF3t72QW4cc2BxA"),
    ("RS384", "eyJhbGciOiJSUzM4NCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6MjAwMDAwMDAwMCwidG9waWNzIjpbImEiXX0.pqLeo8Ymps0a-Spn02SSakKQvidEa5f4W61AOwG0c2CzUXo_6c0vpU3up1IA9UbL4Isln-bgGnPMdRhoiFVCyEOwZEysizOsYrWsWqbMJ3aCb6qtPrwPtV7cpABqtOo0Bv9_XVlQsBbdErrm9XalO-tA7_ozHjt8xpDrEaGHvcf7uJ1BcSH76u13VF4zRG3X7lF05uVS7SbquxnUUd3R-LH45veX25kKkr-v7INWXnSvnH6jdPt9hbZHgWvPwaUKLFvNByRznBMQvfya62t_-b_QDLDcFQWKMtmZMsSE0MdYF5U4lsov-oFZhw786Ft0FLDDuFRqAlmF5huTKOdXnw"),
    ("RS512", "eyJhbGciOiJSUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6MjAwMDAwMDAwMCwidG9waWNzIjpbImEiXX0.JB6tXinsg2W_gqYbdNtazkWouDgogIpqqRKC4TUv4bMowi8ssCDlQJVt8DHu9LR5W2lD_IP_zRkpqZGzMwYE78-QACmCqyKKK-W6mFBuxMCkTJyy1z954Ojxs_8QBRxoIUM94r0GD5VnVLVNQdtaH1mDN3_fHgcpWpP-Jw4ny1lJyK5rbsCarmWjnlt2C_rwijkmYz_GY9NKmI3-4iSPsKQzRIneDPGDKxhCMlFN8UZZEGyUDX1d3r0_FEvTmLt-J9Eaj_Sft-Q9lCJv0WDbr5QZ6WgtLCGqVtrhPFSpotN9VHgB_xK8HJqjOpPEeGi93DDbx2qIqPc2OwkVKDwn4Q"),
    ("PS256", "eyJhbGciOiJQUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6MjAwMDAwMDAwMCwidG9waWNzIjpbImEiXX0.CxeQkXGcwDV7o-S2I9kTgoaaqvi_lIcpN7Xp96vHK5D1Et-ypFuuqjQW8PwwookfW7CKbSvI3rZK8xblXZmX5NmWzTWTAgb5G_9-h7rp5TNUg-tXGOBf1wgL9JeoGMZjdcjKL5oVJ1jDjxdnGCSNZWemMzjOD9uePTtq_fw7FzM_x0mZhUkRBv4EBNVakHIXf21ESO0Yjla36MM63fwid45cm-GEzVvc3SBYXVVCAvhF-O0XjssCqktm-Pyzw-klIzMYu81_EoGP_vr1Ttv3wQmGvu6f5DQ_RLpScIOeNOkVeJHzvDm7seAN_SlOsumC8npfFpqKPxYF3Ylixn1qiQ"),
    ("PS384", "eyJhbGciOiJQUzM4NCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6MjAwMDAwMDAwMCwidG9waWNzIjpbImEiXX0.XUe3tPGLEDq9sQB4Z2OTkKY7Z59_nKNNJ9BsDSsDp58RVXhWjFkHEzyMG0TLfsJuXHtY3RxlBlF_otRU_Ecte4Ec-GFe0SXDCGLAHoVHIeq2S4BydrGN6VUbodavTtPqLdOKtjh_Bv7ON2487lNjU05HXYN-X8jt2x5-GHgN5X7f8bX6XTunKAuX3PfN43SEYwP3yz-PshoM75uZXoGw_w0gXSuElZN1NdvNp_9Rk7Q3PHViT6l0IddXi3lD__3KecTRYHkBz826kIrKtPd4cv5MXujO4fmV37426g77OUYG3vTdwynN6Wc6LnUk12c3HEzsbtW2b_rcBdPFAl7PAQ"),
    ("PS512", "eyJhbGciOiJQUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6MjAwMDAwMDAwMCwidG9waWNzIjpbImEiXX0.Kj77xDq-wUO8z-N90Cjn8TUhDNHsNXpygK4F7boTAfplHMBhxkkNIeZ7VYMnttYE_KcrDJpPOyu9VlehAu8pptUS8xS_XaB5NzKJL-tTJUF3ioqhM0cfn1wm-eAjAXjpL6Y2dA7lCr1QzqDDQiw6VwuffZZgYlNQ_6OHs0QG-sbdaPgIflFMgqBGSELzzSAkHSr7lmY1I_6RDvHc7seL7K_KT5QYoQ2JS9mLgyF82-Xl_Swf61VYMkMxKy-oQwPOh4z1I1FTlo7YvJeuH_w_NDvLqyoDfn3_tPYCXeB1QH-JGoYYZw5RbY7H4EVrQHoVJa273BffMwKPJ_Cbvf_Wvw"),
];

/// Before the RSA tokens' `exp`.
const RSA_NOW: u64 = 1_999_999_000;

/// An RSA-1024 public key: too small.
const RSA_1024: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDJecucN8E48B04FVmtpDJY1+Um
DyOydBeS1+AaSV/O5Ux3R/515XpH0R85Qbp5fJrewckhfj4f9bgjlkaIeEkE3ZuU
shmoeoQ09Da+q1vp5C6Uyqgxnby9Fp8dceMqjpNc7C3jD1NfS82AmYw8U97u/mMZ
xOBXozyrWiPWFoRzEwIDAQAB
-----END PUBLIC KEY-----
";

/// An EC P-521 public key: a curve tokens are not verified with here.
const EC_P521: &str = "-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQA9zhOb0/m8o0wDmehvI4ErVbabFWO
RQtx3j+NSYqFXA8BED6dPhPEk+n9ufG4ZQFVY7gHAX9WrqgNfaK4UFyjNQgBztmZ
i7ZQhMfhT0/1g4uRlU/d7yInMSKiukcYVERC9Zb5YfJIfA+RV+bHlpUGijYmn4M0
xXAGl3lPoFtnaSqLGAk=
-----END PUBLIC KEY-----
";

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const SECP384R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// One DER value.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match contents.len() {
        len @ 0..=0x7f => out.push(len as u8),
        len @ 0x80..=0xff => out.extend([0x81, len as u8]),
        len => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend(contents);
    out
}

/// A SubjectPublicKeyInfo of `algorithm` (the AlgorithmIdentifier's contents) and `key`.
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0];
    bits.extend(key);
    tlv(SEQUENCE, &[tlv(SEQUENCE, algorithm), tlv(BIT_STRING, &bits)].concat())
}

fn ec_algorithm(curve: &[u8]) -> Vec<u8> {
    [tlv(OID, EC_PUBLIC_KEY), tlv(OID, curve)].concat()
}

fn pem(label: &str, der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// `header.payload` signed by `sign`.
fn signed_token(alg: &str, payload: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let signed = format!("{}.{}", b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)), b64(payload));
    let signature = sign(signed.as_bytes());
    format!("{signed}.{}", b64(signature))
}

fn payload() -> String {
    format!(r#"{{"sub":"key-user","exp":{},"publish":["*"]}}"#, NOW + 60)
}

/// A fresh key of `alg`, its PEM, and a signer.
fn ecdsa(alg: &'static sig::EcdsaSigningAlgorithm) -> (String, impl Fn(&[u8]) -> Vec<u8>) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let curve = if pair.public_key().as_ref().len() == 65 { PRIME256V1 } else { SECP384R1 };
    let pem = pem("PUBLIC KEY", &spki(&ec_algorithm(curve), pair.public_key().as_ref()));
    (pem, move |msg: &[u8]| pair.sign(&rng, msg).unwrap().as_ref().to_vec())
}

fn ed25519() -> (String, impl Fn(&[u8]) -> Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let pem = pem("PUBLIC KEY", &spki(&tlv(OID, ED25519), pair.public_key().as_ref()));
    (pem, move |msg: &[u8]| pair.sign(msg).as_ref().to_vec())
}

fn with_pem(pem: &str) -> Verifier {
    Verifier::new().with_public_key_pem(pem.as_bytes()).unwrap()
}

#[test]
fn rsa_tokens_from_spki_and_pkcs1() {
    for pem in [RSA_SPKI, RSA_PKCS1] {
        let v = with_pem(pem);
        for (alg, token) in RSA_TOKENS {
            let claims = v.verify(token, RSA_NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!((claims.sub.as_str(), claims.exp), ("rsa-user", 2_000_000_000));
            assert!(claims.topics.allows("a"));
            assert_eq!(v.verify(token, 2_000_000_010), Err(TokenError::Expired), "{alg}");
        }
    }
}

#[test]
fn rsa_tampering_and_swapped_padding() {
    let v = with_pem(RSA_SPKI);
    let (alg, token) = RSA_TOKENS[0];
    let (head, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged = format!("{head}.{}.{signature}", b64(r#"{"sub":"root","exp":2000000000,"topics":["*"]}"#));
    assert_eq!(v.verify(&forged, RSA_NOW), Err(TokenError::Signature), "{alg}");
    // A PKCS#1 v1.5 signature presented as PSS, and the other way round.
    let as_pss = format!("{}.{rest}", b64(r#"{"alg":"PS256","typ":"JWT"}"#));
    assert_eq!(v.verify(&as_pss, RSA_NOW), Err(TokenError::Signature));
    let as_pkcs1 = format!("{}.{}", b64(r#"{"alg":"RS256","typ":"JWT"}"#), RSA_TOKENS[3].1.split_once('.').unwrap().1);
    assert_eq!(v.verify(&as_pkcs1, RSA_NOW), Err(TokenError::Signature));
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    // Algorithm confusion (RFC 8725 §2.1): the PEM text is public, so an HMAC
    // keyed with it proves nothing.
    for pem in [RSA_SPKI, RSA_PKCS1] {
        for (alg, name) in [(hmac::HMAC_SHA256, "HS256"), (hmac::HMAC_SHA512, "HS512")] {
            let token = hmac_token(alg, pem.as_bytes(), &format!(r#"{{"alg":"{name}"}}"#), &payload());
            assert_eq!(with_pem(pem).verify(&token, NOW), Err(TokenError::Algorithm), "{name}");
            // Beside an HMAC secret of its own, the PEM text is still no secret.
            let both = with_pem(pem).with_hmac_secret(SECRET).unwrap();
            assert_eq!(both.verify(&token, NOW), Err(TokenError::Signature), "{name}");
        }
    }
}

#[test]
fn both_kinds_of_key_side_by_side() {
    let (pem, sign) = ed25519();
    let v = with_pem(&pem).with_hmac_secret(SECRET).unwrap();
    assert!(v.verify(&signed_token("EdDSA", &payload(), &sign), NOW).is_ok());
    let hs = hmac_token(hmac::HMAC_SHA256, SECRET, r#"{"alg":"HS256"}"#, &payload());
    assert!(v.verify(&hs, NOW).is_ok());
    assert_eq!(v.verify(RSA_TOKENS[0].1, RSA_NOW), Err(TokenError::Algorithm));
    assert!(format!("{v:?}").contains("Ed25519"));
}

#[test]
fn ecdsa_and_ed25519() {
    let (p256, sign256) = ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING);
    let (p384, sign384) = ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING);
    let (ed, sign_ed) = ed25519();
    let cases = [
        ("ES256", &p256, &sign256 as &dyn Fn(&[u8]) -> Vec<u8>),
        ("ES384", &p384, &sign384),
        ("EdDSA", &ed, &sign_ed),
        ("Ed25519", &ed, &sign_ed),
    ];
    for (alg, pem, sign) in cases {
        let v = with_pem(pem);
        let token = signed_token(alg, &payload(), sign);
        let claims = v.verify(&token, NOW).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert!(claims.publish.allows("anything") && claims.topics.is_empty());
        // Another payload under the same signature.
        let (head, rest) = token.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let forged = format!("{head}.{}.{signature}", b64(r#"{"sub":"root","exp":9999999999}"#));
        assert_eq!(v.verify(&forged, NOW), Err(TokenError::Signature), "{alg}");
        // Every alg of another key type, and none, is refused before any signature check.
        for other in ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA", "none"] {
            let same_family = other == alg || (alg == "Ed25519" && other == "EdDSA");
            if !same_family {
                let token = signed_token(other, &payload(), sign);
                assert_eq!(v.verify(&token, NOW), Err(TokenError::Algorithm), "{other} against a key for {alg}");
            }
        }
    }
    // JWS wants ECDSA's R || S (RFC 7518 §3.4), not the DER of X.509.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let pem = pem("PUBLIC KEY", &spki(&ec_algorithm(PRIME256V1), pair.public_key().as_ref()));
    let der_signed = signed_token("ES256", &payload(), |msg| pair.sign(&rng, msg).unwrap().as_ref().to_vec());
    assert_eq!(with_pem(&pem).verify(&der_signed, NOW), Err(TokenError::Signature));
}

#[test]
fn pem_forms() {
    let (ed, _) = ed25519();
    let spki_der = STANDARD.decode(ed.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
    let accepted = [
        format!("an explanatory line\n{ed}"),
        ed.replace('\n', "\r\n"),
        format!("-----BEGIN PUBLIC KEY-----\n  {}  \n-----END PUBLIC KEY-----", STANDARD.encode(&spki_der)),
        format!("{ed}-----BEGIN PUBLIC KEY-----\nnot read\n-----END PUBLIC KEY-----\n"),
    ];
    for pem in &accepted {
        assert!(Verifier::new().with_public_key_pem(pem.as_bytes()).is_ok(), "{pem}");
    }
    let body = STANDARD.encode(&spki_der);
    let refused = [
        (String::new(), KeyError::NotPem),
        (body.clone(), KeyError::NotPem),
        (format!("-----BEGIN PUBLIC KEY-----\n{body}\n"), KeyError::NotPem),
        (format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END RSA PUBLIC KEY-----\n"), KeyError::NotPem),
        (format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY"), KeyError::NotPem),
        (format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", &body[1..]), KeyError::NotPem),
        (
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", body.replace('A', "*")),
            KeyError::NotPem,
        ),
        ("-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n".into(), KeyError::PrivateKey),
        ("-----BEGIN EC PRIVATE KEY-----\nMIGHAgEA\n-----END EC PRIVATE KEY-----\n".into(), KeyError::PrivateKey),
        (format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"), KeyError::Unsupported),
        (format!("{ed}{}", " ".repeat(MAX_PEM_LEN)), KeyError::TooLong),
        (RSA_1024.into(), KeyError::RsaKeySize(1024)),
        (EC_P521.into(), KeyError::Unsupported),
        // The SPKI of Ed25519 read as PKCS#1.
        (format!("-----BEGIN RSA PUBLIC KEY-----\n{body}\n-----END RSA PUBLIC KEY-----\n"), KeyError::Malformed),
    ];
    for (pem, expected) in refused {
        assert_eq!(Verifier::new().with_public_key_pem(pem.as_bytes()).err(), Some(expected), "{pem}");
    }
}

#[test]
fn key_der_shapes() {
    let point = |len: usize| {
        let mut p = vec![4];
        p.resize(len, 7);
        p
    };
    let rsa = STANDARD.decode(RSA_PKCS1.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
    let rsa_null = [tlv(OID, RSA_ENCRYPTION), tlv(NULL, &[])].concat();
    let mut trailing = spki(&tlv(OID, ED25519), &[1; 32]);
    trailing.push(0);
    let mut compressed = point(33);
    compressed[0] = 2;
    let cases: Vec<(Vec<u8>, Result<&str, KeyError>)> = vec![
        (spki(&rsa_null, &rsa), Ok("RSA")),
        (spki(&tlv(OID, RSA_ENCRYPTION), &rsa), Err(KeyError::Malformed)),
        (spki(&[tlv(OID, RSA_ENCRYPTION), tlv(NULL, &[0])].concat(), &rsa), Err(KeyError::Malformed)),
        (spki(&rsa_null, &rsa[..rsa.len() - 1]), Err(KeyError::Malformed)),
        (spki(&ec_algorithm(PRIME256V1), &point(65)), Ok("EC P-256")),
        (spki(&ec_algorithm(SECP384R1), &point(97)), Ok("EC P-384")),
        (spki(&ec_algorithm(PRIME256V1), &point(97)), Err(KeyError::Malformed)),
        (spki(&ec_algorithm(SECP384R1), &point(65)), Err(KeyError::Malformed)),
        (spki(&ec_algorithm(PRIME256V1), &compressed), Err(KeyError::Malformed)),
        (spki(&tlv(OID, EC_PUBLIC_KEY), &point(65)), Err(KeyError::Malformed)),
        (spki(&[ec_algorithm(PRIME256V1), tlv(NULL, &[])].concat(), &point(65)), Err(KeyError::Malformed)),
        (spki(&tlv(OID, ED25519), &[1; 32]), Ok("Ed25519")),
        (spki(&tlv(OID, ED25519), &[1; 31]), Err(KeyError::Malformed)),
        (spki(&[tlv(OID, ED25519), tlv(NULL, &[])].concat(), &[1; 32]), Err(KeyError::Malformed)),
        (spki(&tlv(OID, &[0x2b, 0x65, 0x71]), &[1; 57]), Err(KeyError::Unsupported)),
        (trailing, Err(KeyError::Malformed)),
    ];
    for (der, expected) in cases {
        let got = key::PublicKey::from_pem(pem("PUBLIC KEY", &der).as_bytes());
        assert_eq!(got.as_ref().map(key::PublicKey::kind).map_err(|e| *e), expected, "{der:02x?}");
    }
    // The RSA sizes ring verifies, and the moduli DER allows.
    let rsa_key = |modulus: &[u8]| tlv(SEQUENCE, &[tlv(0x02, modulus), tlv(0x02, &[1, 0, 1])].concat());
    let with_bits = |bits: usize| {
        let mut n = vec![0xff; bits.div_ceil(8)];
        n[0] = 0xff >> ((8 - bits % 8) % 8);
        if n[0] & 0x80 != 0 {
            n.insert(0, 0);
        }
        key::PublicKey::from_pem(pem("RSA PUBLIC KEY", &rsa_key(&n)).as_bytes()).map(|k| k.kind())
    };
    assert_eq!(with_bits(2047), Err(KeyError::RsaKeySize(2047)));
    assert_eq!(with_bits(2048), Ok("RSA"));
    assert_eq!(with_bits(4097), Ok("RSA"));
    assert_eq!(with_bits(8192), Ok("RSA"));
    assert_eq!(with_bits(8193), Err(KeyError::RsaKeySize(8193)));
    let negative = rsa_key(&[0x80; 256]);
    assert_eq!(key::PublicKey::from_pem(pem("RSA PUBLIC KEY", &negative).as_bytes()).err(), Some(KeyError::Malformed));
}

#[test]
fn no_key_input_panics() {
    // Every prefix and every one-byte change of real keys' DER is refused or
    // accepted, never a panic.
    let (ed, _) = ed25519();
    let (p256, _) = ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING);
    for (label, text) in
        [("PUBLIC KEY", RSA_SPKI), ("RSA PUBLIC KEY", RSA_PKCS1), ("PUBLIC KEY", &ed), ("PUBLIC KEY", &p256)]
    {
        let der = STANDARD.decode(text.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
        for len in 0..der.len() {
            assert!(key::PublicKey::from_pem(pem(label, &der[..len]).as_bytes()).is_err(), "{label} cut at {len}");
        }
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut changed = der.clone();
                changed[i] ^= flip;
                let _ = key::PublicKey::from_pem(pem(label, &changed).as_bytes());
            }
        }
    }
}
