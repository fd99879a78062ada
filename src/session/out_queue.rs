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
use crate::proto::{Spare, Spares};

/// The most chunks handed to one vectored write.
pub const MAX_IOVECS: usize = 64;
/// Appends smaller than this are copied into the last chunk instead of queued alone.
const PACK_LIMIT: usize = 16 << 10;
/// The largest written buffer kept as the queue's spare; a larger one is freed.
const KEPT_BUFFER: usize = 64 << 10;

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

/// The queue's memory. The front chunk is kept apart from the rest, so that
/// a queue of one chunk (most writes) needs no second allocation.
#[derive(Debug)]
pub struct Pending {
    /// Empty only when the whole queue is: then an owned buffer kept for reuse.
    front: Chunk,
    /// Bytes of the front chunk already written.
    written: usize,
    /// Never an empty chunk, except an owned one at the back while it is filled.
    rest: VecDeque<Chunk>,
    /// Bytes waiting, over all chunks.
    len: usize,
    /// A written owned buffer, kept empty for the next owned chunk.
    spare: Vec<u8>,
    /// Lent by a pool, and so given back to one rather than freed.
    pooled: bool,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            front: Chunk::Owned(Vec::new()),
            written: 0,
            rest: VecDeque::new(),
            len: 0,
            spare: Vec::new(),
            pooled: false,
        }
    }
}

impl Spare for Pending {
    fn held_bytes(&self) -> usize {
        let front = match &self.front {
            Chunk::Owned(bytes) => bytes.capacity(),
            Chunk::Shared(_) => 0,
        };
        std::mem::size_of::<Self>()
            + front
            + self.rest.capacity() * std::mem::size_of::<Chunk>()
            + self.spare.capacity()
    }

    /// Nothing to do: an empty queue has no chunk but an empty owned front,
    /// and keeps no buffer larger than it may.
    fn recycle(&mut self) {}

    fn mark_lent(&mut self) {
        self.pooled = true;
    }
}

impl Pending {
    /// Keeps a written owned buffer as the spare when it is the larger.
    fn recycle(&mut self, chunk: Chunk) {
        if let Chunk::Owned(mut bytes) = chunk {
            if bytes.capacity() > self.spare.capacity() && bytes.capacity() <= KEPT_BUFFER {
                bytes.clear();
                self.spare = bytes;
            }
        }
    }

    /// Puts `chunk` first in an empty queue, or last.
    fn append(&mut self, chunk: Chunk) {
        if self.len == 0 {
            let old = std::mem::replace(&mut self.front, chunk);
            self.written = 0;
            self.recycle(old);
        } else {
            self.rest.push_back(chunk);
        }
    }

    /// The owned chunk at the end to append to: the last one while it is
    /// small, else a new one made from the spare buffer.
    #[inline]
    fn tail(&mut self) -> &mut Vec<u8> {
        if self.len == 0 {
            if !matches!(self.front, Chunk::Owned(_)) {
                let spare = std::mem::take(&mut self.spare);
                self.append(Chunk::Owned(spare));
            }
        } else if !matches!(self.rest.back().unwrap_or(&self.front), Chunk::Owned(last) if last.len() < PACK_LIMIT) {
            self.rest.push_back(Chunk::Owned(std::mem::take(&mut self.spare)));
        }
        match self.rest.back_mut().unwrap_or(&mut self.front) {
            Chunk::Owned(last) => last,
            Chunk::Shared(_) => unreachable!("the back chunk was just made an owned one"),
        }
    }

    /// Drops `n` written bytes from the front, keeping a written owned buffer as the spare.
    fn consume(&mut self, mut n: usize) {
        // n never exceeds what the queue held.
        self.len -= n;
        loop {
            let left = self.front.as_slice().len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            match self.rest.pop_front() {
                Some(next) => {
                    let old = std::mem::replace(&mut self.front, next);
                    self.recycle(old);
                }
                None => {
                    // All written: the front stays, empty, as an owned buffer.
                    match &mut self.front {
                        Chunk::Owned(bytes) => bytes.clear(),
                        Chunk::Shared(_) => self.front = Chunk::Owned(std::mem::take(&mut self.spare)),
                    }
                    return;
                }
            }
        }
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
        if !self.is_empty() && bytes.len() < PACK_LIMIT {
            // Packed after what waits (the front chunk may be partly written: still in order).
            self.push_with(|last| last.extend_from_slice(&bytes));
            return;
        }
        let pending = self.pending();
        let len = bytes.len();
        pending.append(Chunk::Owned(bytes));
        pending.len += len;
    }

    /// Appends what `write` adds to the queue's last owned chunk (a new one,
    /// from the spare buffer, when the last is shared or large), and returns
    /// what `write` returns.
    #[inline]
    pub fn push_with<R>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let pending = self.pending();
        let last = pending.tail();
        let before = last.len();
        let result = write(last);
        let added = last.len() - before;
        pending.len += added;
        if added == 0 && pending.len > 0 {
            // Nothing written into a new chunk at the back: it goes back to being the spare.
            if pending.rest.back().is_some_and(|c| c.as_slice().is_empty()) {
                if let Some(Chunk::Owned(spare)) = pending.rest.pop_back() {
                    pending.spare = spare;
                }
            }
        }
        result
    }

    /// Appends bytes shared with other queues.
    pub fn push_shared(&mut self, bytes: SharedFrame) {
        if bytes.is_empty() {
            return;
        }
        let pending = self.pending();
        let len = bytes.len();
        pending.append(Chunk::Shared(bytes));
        pending.len += len;
    }

    /// Writes as much as the socket takes, until it would block or the queue is empty.
    ///
    /// Returns the bytes written. `WouldBlock` is not an error; any other error is.
    pub fn write_to(&mut self, socket: &mut impl Write) -> io::Result<usize> {
        let mut total = 0;
        while let Some(pending) = self.pending.as_mut().filter(|p| p.len > 0) {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            slices[0] = IoSlice::new(&pending.front.as_slice()[pending.written..]);
            let mut count = 1;
            for (slice, chunk) in slices[1..].iter_mut().zip(&pending.rest) {
                *slice = IoSlice::new(chunk.as_slice());
                count += 1;
            }
            // One chunk (most writes) goes by a plain write: on Linux a
            // `send`, which spares the vectored call's detour through the
            // file layer.
            let wrote = if count == 1 { socket.write(&slices[0]) } else { socket.write_vectored(&slices[..count]) };
            match wrote {
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
    #[inline]
    pub fn lend(&mut self, pool: &mut QueuePool) {
        if self.pending.is_none() {
            self.pending = Some(pool.take());
        }
    }

    /// Gives the queue's memory back to `pool` once everything is written
    /// (memory the queue allocated itself is freed instead: a pool only
    /// keeps what it lent, so that it grows with traffic, not with handshakes).
    pub fn give_back(&mut self, pool: &mut QueuePool) {
        if self.is_empty() {
            if let Some(pending) = self.pending.take().filter(|p| p.pooled) {
                pool.put(pending);
            }
        }
    }
}

/// Queue memory that idle sessions gave back, lent to the next session with
/// output.
pub type QueuePool = Spares<Pending>;

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

    #[test]
    fn a_lent_queue_keeps_its_order_and_goes_back_empty() {
        let mut pool = QueuePool::default();
        let mut expected = Vec::new();
        for round in 0..3u8 {
            let mut q = OutQueue::default();
            q.lend(&mut pool);
            for i in 0..20u8 {
                let bytes = vec![round, i, i];
                expected.extend_from_slice(&bytes);
                match i % 3 {
                    0 => q.push_shared(SharedFrame::from(bytes)),
                    1 => q.push(bytes),
                    _ => q.push_with(|buf| buf.extend_from_slice(&bytes)),
                }
                q.push_with(|_| {});
            }
            let mut sock = Trickle { taken: Vec::new(), per_call: 7, budget: usize::MAX };
            q.write_to(&mut sock).unwrap();
            assert!(q.is_empty());
            assert_eq!(sock.taken, expected);
            expected.clear();
            q.give_back(&mut pool);
            assert!(q.pending.is_none());
            assert_eq!(pool.len(), 1, "round {round}: the one queue's memory is back");
        }
        // A queue that allocated its own memory frees it instead.
        let mut q = OutQueue::default();
        q.push(vec![1]);
        q.write_to(&mut Trickle { taken: Vec::new(), per_call: 1, budget: 1 }).unwrap();
        q.give_back(&mut pool);
        assert_eq!(pool.len(), 1);
    }
}
