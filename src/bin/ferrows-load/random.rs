//! Masking keys and handshake nonces from the OS random source, drawn in bulk.

use std::sync::{Arc, Mutex, PoisonError};

/// How many random bytes one draw from the OS fetches: 1,024 masking keys.
const POOL_BYTES: usize = 4096;

/// Random bytes from the OS, handed out a few at a time and never twice.
///
/// RFC 6455 §5.3 wants masking keys "derived from a strong source of entropy";
/// drawing them in bulk saves a system call per frame without making them any
/// more predictable.
#[derive(Debug)]
pub struct RandomPool {
    /// The current draw.
    bytes: Box<[u8; POOL_BYTES]>,
    /// How many bytes of the draw were handed out.
    used: usize,
}

impl RandomPool {
    /// A pool with its first draw made.
    ///
    /// # Errors
    ///
    /// The OS random source failed.
    pub fn new() -> Result<Self, getrandom::Error> {
        let mut pool = RandomPool { bytes: Box::new([0; POOL_BYTES]), used: 0 };
        getrandom::fill(&mut pool.bytes[..])?;
        Ok(pool)
    }

    /// The next `N` random bytes.
    fn take<const N: usize>(&mut self) -> [u8; N] {
        if self.used + N > POOL_BYTES {
            // The source answered at start-up; if it fails later there is no
            // safe fallback, and a predictable key must never be used.
            getrandom::fill(&mut self.bytes[..]).expect("the OS random source failed");
            self.used = 0;
        }
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[self.used..self.used + N]);
        self.used += N;
        out
    }
}

/// One thread's pool, shared by its connections' mask sources.
///
/// The masks closure must be `Send`, so the pool sits behind a mutex; only
/// one thread ever locks it, so the lock is never contended.
#[derive(Debug, Clone)]
pub struct SharedPool(Arc<Mutex<RandomPool>>);

impl SharedPool {
    /// A new pool for one thread.
    ///
    /// # Errors
    ///
    /// The OS random source failed.
    pub fn new() -> Result<Self, getrandom::Error> {
        Ok(SharedPool(Arc::new(Mutex::new(RandomPool::new()?))))
    }

    /// The 16 random bytes behind a `Sec-WebSocket-Key` (RFC 6455 §4.1).
    pub fn nonce(&self) -> [u8; 16] {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The masking key source for one client connection.
    pub fn masks(&self) -> impl FnMut() -> [u8; 4] + Send + 'static {
        let pool = Arc::clone(&self.0);
        move || pool.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_across_refills() {
        let pool = SharedPool::new().unwrap();
        let mut masks = pool.masks();
        let keys: Vec<[u8; 4]> = (0..3 * POOL_BYTES / 4).map(|_| masks()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        // 3,072 draws of 32 bits: a repeat is possible but very unlikely to be common.
        assert!(distinct.len() > keys.len() - 8);
        assert_ne!(pool.nonce(), pool.nonce());
    }
}
