//! A session's queue of bytes waiting for the socket.
//!
//! Frames are appended as byte chunks; small ones are packed into the last
//! chunk so that a burst of small messages becomes one write. A write hands
//! the socket up to [`MAX_IOVECS`] chunks at once (vectored), and a partial
//! write keeps its place inside the front chunk. A chunk may be shared
//! ([`SharedFrame`]): one frame published to a topic sits in every subscriber's queue
//! without a copy.
//!
//! The queue's memory (its chunk list and a spare buffer) is lent by a
//! [`QueuePool`] while the session has output and given back once it is
//! written, so that an idle session's queue is one word and steady traffic
//! allocates nothing.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use super::SharedFrame;

/// The most chunks handed to one vectored write.
pub const MAX_IOVECS: usize = 64;
/// Appends smaller than this are copied into the last chunk instead of queued alone.
const PACK_LIMIT: usize = 16 << 10;
/// The largest written buffer kept as the queue's spare; a larger one is freed.
const KEPT_BUFFER: usize = 64 << 10;
/// What a pool keeps, over all its spares.
const POOL_BYTES: usize = 1 << 20;

/// Bytes to send: this queue's own, or shared with other queues.
#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(SharedFrame),
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
    /// `None` while idle and given back: the queue of an idle session is one word.
    pending: Option<Box<Pending>>,
}

/// The queue's memory.
#[derive(Debug, Default)]
struct Pending {
    /// Never an empty chunk, except an owned one at the back while it is filled.
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    written: usize,
    /// Bytes waiting, over all chunks.
    len: usize,
    /// A written owned buffer, kept empty for the next owned chunk.
    spare: Vec<u8>,
}

impl Pending {
    /// Its size with the buffers it keeps.
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.chunks.capacity() * std::mem::size_of::<Chunk>() + self.spare.capacity()
    }
}

impl OutQueue {
    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.len)
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_with(Box::default)
    }

    /// Appends owned bytes, packing small ones into the last chunk.
    pub fn push(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let pending = self.pending();
        pending.len += bytes.len();
        if let Some(Chunk::Owned(last)) = pending.chunks.back_mut() {
            // The front chunk may be partly written; packing after it is still in order.
            if bytes.len() < PACK_LIMIT && last.len() + bytes.len() <= PACK_LIMIT.max(last.capacity()) {
                last.extend_from_slice(&bytes);
                return;
            }
        }
        pending.chunks.push_back(Chunk::Owned(bytes));
    }

    /// Appends what `write` adds to the queue's last owned chunk (a new one,
    /// from the spare buffer, when the last is shared or large).
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let pending = self.pending();
        if !matches!(pending.chunks.back(), Some(Chunk::Owned(last)) if last.len() < PACK_LIMIT) {
            let spare = std::mem::take(&mut pending.spare);
            pending.chunks.push_back(Chunk::Owned(spare));
        }
        let Some(Chunk::Owned(last)) = pending.chunks.back_mut() else { return };
        let before = last.len();
        write(last);
        pending.len += last.len() - before;
        if last.is_empty() {
            // Nothing written into a new chunk: it goes back to being the spare.
            if let Some(Chunk::Owned(spare)) = pending.chunks.pop_back() {
                pending.spare = spare;
            }
        }
    }

    /// Appends bytes shared with other queues.
    pub fn push_shared(&mut self, bytes: SharedFrame) {
        if bytes.is_empty() {
            return;
        }
        let pending = self.pending();
        pending.len += bytes.len();
        pending.chunks.push_back(Chunk::Shared(bytes));
    }

    /// Writes as much as the socket takes, until it would block or the queue is empty.
    ///
    /// Returns the bytes written. `WouldBlock` is not an error; any other error is.
    pub fn write_to(&mut self, socket: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        while let Some(pending) = self.pending.as_mut().filter(|p| p.len > 0) {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in pending.chunks.iter().take(MAX_IOVECS).enumerate() {
                let skip = if i == 0 { pending.written } else { 0 };
                slices[i] = IoSlice::new(&chunk.as_slice()[skip..]);
                count += 1;
            }
            match socket.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    pending.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Lends the queue memory from `pool` for output about to come, unless it holds some.
    pub fn lend(&mut self, pool: &mut QueuePool) {
        if self.pending.is_none() {
            if let Some(pending) = pool.spare.pop() {
                pool.bytes -= pending.held_bytes();
                self.pending = Some(pending);
            }
        }
    }

    /// Gives the queue's memory back to `pool` once everything is written.
    pub fn give_back(&mut self, pool: &mut QueuePool) {
        if self.is_empty() {
            if let Some(pending) = self.pending.take() {
                pool.put(pending);
            }
        }
    }
}

impl Pending {
    /// Drops `n` written bytes from the front, keeping a written owned buffer as the spare.
    fn consume(&mut self, mut n: usize) {
        // n never exceeds what the queue held.
        self.len -= n;
        while let Some(front) = self.chunks.front() {
            let left = front.as_slice().len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            if let Some(Chunk::Owned(mut bytes)) = self.chunks.pop_front() {
                if bytes.capacity() > self.spare.capacity() && bytes.capacity() <= KEPT_BUFFER {
                    bytes.clear();
                    self.spare = bytes;
                }
            }
        }
    }
}

/// Queue memory that idle sessions gave back, lent to the next session with
/// output. It keeps at most 1 MiB.
#[derive(Debug, Default)]
pub struct QueuePool {
    // Boxed: a spare moves to a connection and back as the box it lives in, never reallocated.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Pending>>,
    /// What the spares hold, counted as they were put back.
    bytes: usize,
}

impl QueuePool {
    fn put(&mut self, mut pending: Box<Pending>) {
        pending.chunks.clear();
        pending.written = 0;
        let held = pending.held_bytes();
        if self.bytes + held <= POOL_BYTES {
            self.bytes += held;
            self.spare.push(pending);
        }
    }

    /// Spares held.
    pub fn len(&self) -> usize {
        self.spare.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.spare.is_empty()
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
        assert!(q.pending.as_ref().is_some_and(|p| p.chunks.len() == 1));
        assert_eq!(q.len(), 1000);
    }
}
