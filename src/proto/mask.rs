//! The masking transform of RFC 6455 §5.3.
//!
//! Octet `i` of the payload is XORed with octet `i mod 4` of the masking key.
//! [`apply_mask`] does this a 64-bit word at a time, in safe code; the
//! compiler widens the word loop to vector registers where it can.
//! [`apply_mask_bytewise`] is the plain definition, kept as the reference the
//! fast version is checked against.

/// XORs `buf` with `mask`, starting at position `offset` of the key.
///
/// `offset` is how many payload bytes came before `buf` in the same frame
/// (only `offset % 4` matters), so a payload that arrives in pieces can be
/// unmasked piece by piece. Applying the same mask twice restores the input.
///
/// ```
/// use ferrows::proto::mask::apply_mask;
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let key = [mask[offset % 4], mask[(offset + 1) % 4], mask[(offset + 2) % 4], mask[(offset + 3) % 4]];
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole words are a multiple of 4 bytes, so the tail starts at key[0] again.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// The byte-at-a-time definition of [`apply_mask`], for reference and tests.
pub fn apply_mask_bytewise(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_version_matches_bytewise_for_every_length_and_offset() {
        let mask = [0x12, 0x9a, 0xfe, 0x01];
        let source: Vec<u8> = (0..300u32).map(|i| (i * 31 + 7) as u8).collect();
        for start in 0..8 {
            for len in 0..source.len() - start {
                for offset in 0..8 {
                    let mut fast = source[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, mask, offset);
                    apply_mask_bytewise(&mut slow, mask, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let mask = [1, 2, 3, 4];
        let source: Vec<u8> = (0..100u8).collect();
        let mut whole = source.clone();
        apply_mask(&mut whole, mask, 0);
        for split in 0..source.len() {
            let mut pieces = source.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, split);
            assert_eq!(pieces, whole, "split {split}");
        }
    }
}
