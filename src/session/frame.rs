//! Frames shared by many output queues (a publish), and the pool that
//! recycles their buffers.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use crate::proto::POOL_BYTES;

/// An encoded frame that many sessions' queues hold at once, without a copy.
///
/// Made by a [`FramePool`], its buffer goes back to the pool once every
/// queue has written it and dropped its handle; made from a `Vec`, it is
/// freed as usual.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedFrame(Arc<Vec<u8>>);

impl Deref for SharedFrame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SharedFrame {
    fn from(bytes: Vec<u8>) -> Self {
        Self(Arc::new(bytes))
    }
}

impl From<&[u8]> for SharedFrame {
    fn from(bytes: &[u8]) -> Self {
        Self(Arc::new(bytes.to_vec()))
    }
}

/// The frames a driver made, watched until every holder dropped them, and
/// their buffers kept for the next frames: a publish to a topic allocates
/// nothing in steady traffic. It keeps at most 1 MiB of spare buffers and
/// watches at most 4096 frames (past that, frames are freed as
/// usual rather than recycled).
#[derive(Debug, Default)]
pub struct FramePool {
    /// Frames handed out, oldest first.
    watched: VecDeque<Arc<Vec<u8>>>,
    spare: Vec<Arc<Vec<u8>>>,
    /// What the spares hold.
    bytes: usize,
}

/// Frames watched for their return at most.
const MAX_WATCHED: usize = 4096;
/// The largest buffer kept.
const KEPT_FRAME: usize = 64 << 10;

impl FramePool {
    /// A frame holding what `write` puts in an empty buffer.
    pub fn frame(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> SharedFrame {
        let mut frame = self.spare.pop().unwrap_or_default();
        match Arc::get_mut(&mut frame) {
            // Spares are held by the pool alone.
            Some(buf) => {
                self.bytes -= buf.capacity();
                buf.clear();
                write(buf);
            }
            None => {
                let mut buf = Vec::new();
                write(&mut buf);
                frame = Arc::new(buf);
            }
        }
        if self.watched.len() < MAX_WATCHED {
            self.watched.push_back(frame.clone());
        }
        SharedFrame(frame)
    }

    /// Takes back the oldest frames that no one else holds any more (call it
    /// after the queues were written).
    pub fn reclaim(&mut self) {
        // Oldest first: a frame still queued for a slow reader holds back the newer ones.
        while self.watched.front().is_some_and(|f| Arc::strong_count(f) == 1) {
            let Some(frame) = self.watched.pop_front() else { break };
            let capacity = frame.capacity();
            if capacity <= KEPT_FRAME && self.bytes + capacity <= POOL_BYTES {
                self.bytes += capacity;
                self.spare.push(frame);
            }
        }
    }

    /// Spare buffers held.
    pub fn spares(&self) -> usize {
        self.spare.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_comes_back_once_every_holder_dropped_it() {
        let mut pool = FramePool::default();
        let a = pool.frame(|b| b.extend_from_slice(b"first"));
        let held = a.clone();
        drop(a);
        pool.reclaim();
        assert_eq!(pool.spares(), 0, "still held");
        drop(held);
        pool.reclaim();
        assert_eq!(pool.spares(), 1);
        let b = pool.frame(|b| b.extend_from_slice(b"second"));
        assert_eq!(&*b, b"second");
        assert_eq!(pool.spares(), 0, "the spare was used");
    }

    #[test]
    fn an_old_frame_still_held_holds_back_the_newer_ones() {
        let mut pool = FramePool::default();
        let slow = pool.frame(|b| b.push(1));
        drop(pool.frame(|b| b.push(2)));
        pool.reclaim();
        assert_eq!(pool.spares(), 0);
        drop(slow);
        pool.reclaim();
        assert_eq!(pool.spares(), 2);
    }
}
