//! The incremental UTF-8 validator against `std::str::from_utf8`, with the
//! input cut at fuzz-chosen points.
#![no_main]

use ferrows::proto::utf8::Utf8Validator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&plan, bytes)) = data.split_first() else {
        return;
    };
    let expected = std::str::from_utf8(bytes);
    let mut validator = Utf8Validator::new();
    let mut out = String::new();
    let mut ok = true;
    let mut seen = 0;
    for (i, piece) in bytes.chunks(1 + usize::from(plan % 7)).enumerate() {
        let piece_plan = plan.rotate_left(i as u32);
        // Some pieces are cut once more, at a point chosen from the plan.
        let cut = usize::from(piece_plan) % (piece.len() + 1);
        for part in [&piece[..cut], &piece[cut..]] {
            if validator.push(part, &mut out).is_err() {
                ok = false;
                break;
            }
            seen += part.len();
        }
        if !ok {
            break;
        }
    }
    let ok = ok && validator.finish().is_ok();
    assert_eq!(ok, expected.is_ok());
    match expected {
        Ok(text) => assert_eq!(out, text),
        Err(e) => {
            // Everything appended was valid, and rejection came before the byte that showed the sequence was bad.
            assert!(out.len() <= e.valid_up_to());
            if let Some(bad) = e.error_len() {
                assert!(seen <= e.valid_up_to() + bad);
            }
        }
    }
});
