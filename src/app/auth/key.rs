//! Public keys from PEM: the SubjectPublicKeyInfo of RFC 5280 §4.1.2.7
//! (`BEGIN PUBLIC KEY`, RSA, EC, Ed25519) and PKCS#1's RSAPublicKey
//! (`BEGIN RSA PUBLIC KEY`, RFC 8017 §A.1.1), turned into what ring verifies
//! with: the RSAPublicKey DER, the uncompressed EC point, the raw Ed25519 key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::der::{DerError, Reader, NULL, OID};
use super::error::KeyError;

/// The longest PEM text accepted, checked before decoding: an 8192-bit RSA
/// key is about 1.5 KB of PEM, and a key file may carry some text around it.
pub const MAX_PEM_LEN: usize = 16 << 10;

/// rsaEncryption, 1.2.840.113549.1.1.1 (RFC 3279 §2.3.1).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// id-ecPublicKey, 1.2.840.10045.2.1 (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (P-256), 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 (P-384), 1.3.132.0.34 (RFC 5480 §2.1.1.1).
const SECP384R1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// id-Ed25519, 1.3.101.112 (RFC 8410 §3).
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The RSA moduli ring's `RSA_*_2048_8192_*` verification accepts.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// A public key, in the form ring verifies with; which variant it is decides
/// which `alg` values it verifies.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum PublicKey {
    /// An RSAPublicKey DER (RFC 8017 §A.1.1): RS256/384/512, PS256/384/512.
    Rsa(Vec<u8>),
    /// An uncompressed P-256 point (SEC 1 §2.3.3): ES256.
    EcP256(Vec<u8>),
    /// An uncompressed P-384 point: ES384.
    EcP384(Vec<u8>),
    /// The 32-byte Ed25519 key (RFC 8032 §5.1.5): EdDSA.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// The kind of key, for `Debug` output.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "RSA",
            Self::EcP256(_) => "EC P-256",
            Self::EcP384(_) => "EC P-384",
            Self::Ed25519(_) => "Ed25519",
        }
    }

    /// Reads the first PEM block of `pem` as a public key.
    pub(super) fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        if pem.len() > MAX_PEM_LEN {
            return Err(KeyError::TooLong);
        }
        let (label, der) = pem_block(pem)?;
        match label {
            b"PUBLIC KEY" => Self::from_spki(&der),
            b"RSA PUBLIC KEY" => Self::from_rsa_public_key(&der),
            _ if label.ends_with(b"PRIVATE KEY") => Err(KeyError::PrivateKey),
            _ => Err(KeyError::Unsupported),
        }
    }

    /// A SubjectPublicKeyInfo (RFC 5280 §4.1.2.7):
    /// `SEQUENCE { SEQUENCE { algorithm OID, parameters ANY OPTIONAL }, BIT STRING }`.
    fn from_spki(der: &[u8]) -> Result<Self, KeyError> {
        let malformed = |_: DerError| KeyError::Malformed;
        let mut outer = Reader::new(der);
        let mut spki = outer.sequence().map_err(malformed)?;
        let mut algorithm = spki.sequence().map_err(malformed)?;
        let key = spki.bit_string().map_err(malformed)?;
        if !outer.is_empty() || !spki.is_empty() {
            return Err(KeyError::Malformed);
        }
        let oid = algorithm.read(OID).map_err(malformed)?;
        let key = match oid {
            RSA_ENCRYPTION => {
                // RFC 3279 §2.3.1: the parameters MUST be NULL.
                algorithm.read(NULL).ok().filter(|p| p.is_empty()).ok_or(KeyError::Malformed)?;
                Self::from_rsa_public_key(key)?
            }
            EC_PUBLIC_KEY => {
                // RFC 5480 §2.1.1: namedCurve; implicit and specified curves are not allowed.
                let curve = algorithm.read(OID).map_err(malformed)?;
                // SEC 1 §2.3.3: 0x04 then X and Y; ring takes no compressed point.
                match curve {
                    PRIME256V1 if key.len() == 65 && key[0] == 0x04 => Self::EcP256(key.to_vec()),
                    SECP384R1 if key.len() == 97 && key[0] == 0x04 => Self::EcP384(key.to_vec()),
                    PRIME256V1 | SECP384R1 => return Err(KeyError::Malformed),
                    _ => return Err(KeyError::Unsupported),
                }
            }
            // RFC 8410 §3: no parameters; §4: the key is the 32 raw bytes.
            ED25519 if key.len() == 32 => Self::Ed25519(key.to_vec()),
            ED25519 => return Err(KeyError::Malformed),
            _ => return Err(KeyError::Unsupported),
        };
        if !algorithm.is_empty() {
            return Err(KeyError::Malformed);
        }
        Ok(key)
    }

    /// An RSAPublicKey (RFC 8017 §A.1.1): `SEQUENCE { modulus INTEGER,
    /// publicExponent INTEGER }`, kept as is for ring once its size is known.
    fn from_rsa_public_key(der: &[u8]) -> Result<Self, KeyError> {
        let malformed = |_: DerError| KeyError::Malformed;
        let mut outer = Reader::new(der);
        let mut key = outer.sequence().map_err(malformed)?;
        let modulus = key.positive_integer().map_err(malformed)?;
        key.positive_integer().map_err(malformed)?;
        if !outer.is_empty() || !key.is_empty() {
            return Err(KeyError::Malformed);
        }
        // positive_integer strips the sign octet: the first byte is not zero.
        let top_bits = modulus.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
        let bits = (modulus.len() - 1) * 8 + top_bits;
        if !RSA_BITS.contains(&bits) {
            return Err(KeyError::RsaKeySize(bits));
        }
        Ok(Self::Rsa(der.to_vec()))
    }
}

/// The label and the decoded body of the first PEM block in `pem`
/// (RFC 7468 §2): text before it is allowed, whitespace in the body is
/// skipped, the END line must repeat the label.
fn pem_block(pem: &[u8]) -> Result<(&[u8], Vec<u8>), KeyError> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const DASHES: &[u8] = b"-----";
    let start = find(pem, BEGIN).ok_or(KeyError::NotPem)? + BEGIN.len();
    let label_len = find(&pem[start..], DASHES).ok_or(KeyError::NotPem)?;
    let label = &pem[start..start + label_len];
    let body_start = start + label_len + DASHES.len();
    let body_len = find(&pem[body_start..], END).ok_or(KeyError::NotPem)?;
    let body = &pem[body_start..body_start + body_len];
    let end_label = &pem[body_start + body_len + END.len()..];
    if !end_label.starts_with(label) || !end_label[label.len()..].starts_with(DASHES) {
        return Err(KeyError::NotPem);
    }
    let text: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(text).map_err(|_| KeyError::NotPem)?;
    Ok((label, der))
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
