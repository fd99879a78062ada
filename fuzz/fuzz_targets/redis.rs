//! What the cluster bridge does with bytes from Redis: RESP replies read
//! whole or cut anywhere must read the same, within the limits, a message
//! from another node passes only as one whole, final, unmasked data frame,
//! and a record message passes only if it encodes back to the same bytes.
#![no_main]

use ferrows::cluster::fuzzing::{envelope_frame, record_message, resp_values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let _ = resp_values(rest, usize::from(split));
    let _ = envelope_frame(rest);
    let _ = record_message(rest);
});
