//! The key and accept values of RFC 6455 §4.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID that RFC 6455 §1.3 appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
///
/// RFC 6455 §4.2.2: base64 of the SHA-1 of the key (as sent, after trimming)
/// concatenated with [`WEBSOCKET_GUID`].
///
/// ```
/// use ferrows::proto::handshake::accept_key;
///
/// // The example of RFC 6455 §1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

/// The `Sec-WebSocket-Key` a client sends for a 16-byte nonce.
///
/// RFC 6455 §4.1: the nonce is "a randomly selected 16-byte value"; the
/// caller draws it, since this module draws no randomness.
///
/// ```
/// use ferrows::proto::handshake::client_key;
///
/// assert_eq!(client_key(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
/// ```
pub fn client_key(nonce: &[u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of exactly 16 bytes.
pub(crate) fn is_valid_key(key: &[u8]) -> bool {
    // RFC 6455 §4.2.1: the key "when decoded, is 16 bytes in length"; 16
    // bytes always encode to 24 characters, so anything else is rejected
    // before decoding and the decode buffer stays on the stack.
    if key.len() != 24 {
        return false;
    }
    let mut decoded = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_1_3_example_accept_value() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn rfc6455_4_1_key_is_base64_of_nonce() {
        let key = client_key(&[7; 16]);
        assert!(is_valid_key(key.as_bytes()));
    }

    #[test]
    fn rfc6455_4_2_1_key_must_decode_to_16_bytes() {
        assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_key(STANDARD.encode([1u8; 15]).as_bytes()));
        assert!(!is_valid_key(STANDARD.encode([1u8; 17]).as_bytes()));
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!is_valid_key(b"!!!!!!!!!!!!!!!!!!!!!!=="));
        // Non-zero bits after the last byte are not canonical base64.
        assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZR=="));
    }
}
