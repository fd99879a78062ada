//! A session's queue of bytes waiting for the socket.
//!
//! Frames are appended as byte chunks; small ones are packed into the last
//! chunk so that a burst of small messages becomes one write. A write hands
//! the socket up to [`MAX_IOVECS`] chunks at once (vectored), and a partial
//! write keeps its place inside the front chunk. A chunk may be shared
//! (`Arc`): one frame published to a topic sits in every subscriber's queue
//! without a copy.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// The most chunks handed to one vectored write.
pub const MAX_IOVECS: usize = 64;
/// Appends smaller than this are copied into the last chunk instead of queued alone.
const PACK_LIMIT: usize = 16 << 10;

/// Bytes to send: this queue's own, or shared with other queues.
#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Owned(bytes) => bytes,
            Self::Shared(bytes) => bytes,
        }
    }
}

/// The queue.
#[derive(Debug, Default)]
pub struct OutQueue {
    /// `None` while empty: the queue of an idle session is one word.
    pending: Option<Box<Pending>>,
}

/// What a non-empty queue holds. The front chunk is kept apart from the
/// rest, so that a queue of one chunk (most writes) needs no second allocation.
#[derive(Debug)]
struct Pending {
    front: Chunk,
    /// Bytes of the front chunk already written.
    written: usize,
    rest: VecDeque<Chunk>,
    /// Bytes waiting, over all chunks.
    len: usize,
}

impl OutQueue {
    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.len)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_none()
    }

    /// Appends owned bytes, packing small ones into the last chunk.
    pub fn push(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let Some(pending) = self.pending.as_mut() else {
            self.start(Chunk::Owned(bytes));
            return;
        };
        pending.len += bytes.len();
        if let Chunk::Owned(last) = pending.rest.back_mut().unwrap_or(&mut pending.front) {
            // The front chunk may be partly written; packing after it is still in order.
            if bytes.len() < PACK_LIMIT && last.len() + bytes.len() <= PACK_LIMIT.max(last.capacity()) {
                last.extend_from_slice(&bytes);
                return;
            }
        }
        pending.rest.push_back(Chunk::Owned(bytes));
    }

    /// Appends bytes shared with other queues.
    pub fn push_shared(&mut self, bytes: Arc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        let Some(pending) = self.pending.as_mut() else {
            self.start(Chunk::Shared(bytes));
            return;
        };
        pending.len += bytes.len();
        pending.rest.push_back(Chunk::Shared(bytes));
    }

    /// Starts an empty queue with a chunk (never empty: the pushes leave empty ones out).
    fn start(&mut self, chunk: Chunk) {
        let len = chunk.as_slice().len();
        self.pending = Some(Box::new(Pending { front: chunk, written: 0, rest: VecDeque::new(), len }));
    }

    /// Writes as much as the socket takes, until it would block or the queue is empty.
    ///
    /// Returns the bytes written. `WouldBlock` is not an error; any other error is.
    pub fn write_to(&mut self, socket: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        while let Some(pending) = &self.pending {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            slices[0] = IoSlice::new(&pending.front.as_slice()[pending.written..]);
            let mut count = 1;
            for (slice, chunk) in slices[1..].iter_mut().zip(&pending.rest) {
                *slice = IoSlice::new(chunk.as_slice());
                count += 1;
            }
            match socket.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    fn consume(&mut self, mut n: usize) {
        let Some(pending) = self.pending.as_mut() else { return };
        // n never exceeds what the queue held.
        pending.len -= n;
        loop {
            let left = pending.front.as_slice().len() - pending.written;
            if n < left {
                pending.written += n;
                return;
            }
            n -= left;
            let Some(next) = pending.rest.pop_front() else {
                // Give the memory back: an idle session holds no buffers.
                self.pending = None;
                return;
            };
            pending.front = next;
            pending.written = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `per_call` bytes per write, then blocks after `budget`.
    struct Trickle {
        taken: Vec<u8>,
        per_call: usize,
        budget: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.per_call - n).min(self.budget);
                self.taken.extend_from_slice(&buf[..take]);
                n += take;
                self.budget -= take;
                if n == self.per_call || self.budget == 0 {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_their_place() {
        let mut q = OutQueue::default();
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let chunk: Vec<u8> = (0..(i as usize * 997 % 40_000)).map(|j| (j as u8).wrapping_add(i)).collect();
            expected.extend_from_slice(&chunk);
            if i % 3 == 0 {
                q.push_shared(chunk.into());
            } else {
                q.push(chunk);
            }
        }
        assert_eq!(q.len(), expected.len());
        let mut sock = Trickle { taken: Vec::new(), per_call: 7_777, budget: 100_000 };
        let n = q.write_to(&mut sock).unwrap();
        assert_eq!(n, 100_000);
        assert_eq!(q.len(), expected.len() - 100_000);
        sock.budget = usize::MAX;
        q.write_to(&mut sock).unwrap();
        assert!(q.is_empty());
        assert_eq!(sock.taken, expected);
    }

    #[test]
    fn small_pushes_are_packed_into_one_chunk() {
        let mut q = OutQueue::default();
        for _ in 0..100 {
            q.push(vec![1u8; 10]);
        }
        assert!(q.pending.as_ref().is_some_and(|p| p.rest.is_empty()));
        assert_eq!(q.len(), 1000);
    }
}
