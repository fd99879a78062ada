//! Masking keys and handshake nonces from the operating system's random
//! source, drawn a kilobyte at a time.
//!
//! RFC 6455 §5.3: the masking key "MUST be derived from a strong source of
//! entropy", and §4.1 wants the nonce "randomly selected". Drawing 1 KiB at
//! once (256 masking keys) saves a system call per frame and makes the keys
//! no more predictable: every byte still comes from the OS and none is used
//! twice.
//!
//! The pool is per thread, so that a mio loop driving thousands of
//! connections shares one kilobyte among them and takes no lock.

use std::cell::RefCell;

/// How many bytes one draw from the OS fetches.
const POOL_BYTES: usize = 1024;

/// Random bytes from the OS, handed out a few at a time and never twice.
struct Pool {
    bytes: [u8; POOL_BYTES],
    /// How many bytes of the current draw were handed out.
    used: usize,
}

impl Pool {
    /// The next `N` random bytes, drawing again from the OS when the pool is spent.
    fn take<const N: usize>(&mut self) -> Result<[u8; N], getrandom::Error> {
        if self.used + N > POOL_BYTES {
            getrandom::fill(&mut self.bytes)?;
            self.used = 0;
        }
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[self.used..self.used + N]);
        self.used += N;
        Ok(out)
    }
}

thread_local! {
    /// Starts spent, so that the first use draws.
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; POOL_BYTES], used: POOL_BYTES }) };
}

fn take<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    POOL.with(|pool| pool.borrow_mut().take())
}

/// The 16 random bytes behind a `Sec-WebSocket-Key` (RFC 6455 §4.1).
pub(crate) fn nonce() -> Result<[u8; 16], getrandom::Error> {
    take()
}

/// A masking key source for one client connection (RFC 6455 §5.3).
///
/// The pool belongs to whichever thread calls it, so the source may move
/// between threads with its connection.
pub(crate) fn masks() -> impl FnMut() -> [u8; 4] + Send + 'static {
    || {
        // The source answered when this connection drew its nonce. Should it
        // fail later there is no safe fallback: a predictable masking key
        // must never be sent, so stop here.
        take().expect("the OS random source failed")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_differ_across_refills() {
        let mut masks = masks();
        // Three pools' worth: the refill path runs twice.
        let keys: Vec<[u8; 4]> = (0..3 * POOL_BYTES / 4).map(|_| masks()).collect();
        let distinct: HashSet<_> = keys.iter().collect();
        // 768 draws of 32 bits: a repeat is possible but a handful is not.
        assert!(distinct.len() > keys.len() - 4, "{} distinct of {}", distinct.len(), keys.len());
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }

    #[test]
    fn a_nonce_spanning_the_end_of_a_draw_is_drawn_afresh() {
        let mut pool = Pool { bytes: [7; POOL_BYTES], used: POOL_BYTES - 8 };
        let nonce: [u8; 16] = pool.take().unwrap();
        assert_eq!(pool.used, 16);
        assert_eq!(&nonce[..], &pool.bytes[..16]);
    }
}
