//! The per-message codec of permessage-deflate (RFC 7692 §7.2).
//!
//! Compression and decompression state (zlib's, through flate2 with the
//! pure-Rust zlib-rs backend) is the big per-connection cost: zlib-rs 0.6
//! allocates about 370 KiB for a compressor with a 15-bit window (245 KiB
//! with 9 bits) and 47 KiB for a decompressor whatever its window, since it
//! always allocates a 32 KiB one. So no connection keeps a decompressor
//! between messages, nor a compressor without context takeover: each borrows
//! one from a small per-thread cache for a message and gives it back (reset)
//! at its end. With an event loop per thread, that is one cache per loop.
//!
//! With context takeover, all an inflater needs to go on with the next
//! message is the last 2^bits bytes it produced, since a message ends at a
//! block boundary (the sender's sync flush): it keeps those and primes the
//! borrowed decompressor with them, so the negotiated window is what a
//! connection costs. A compressor with context takeover keeps its state for
//! the connection's life.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::proto::error::ProtocolError;

/// What a sync flush ends with: removed from each compressed message (RFC 7692 §7.2.1)
/// and appended again before inflating its last fragment (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Cached states kept per thread and kind; more are simply dropped.
const CACHE_SIZE: usize = 4;
/// Inflated bytes are produced in pieces of this size.
const INFLATE_PIECE: usize = 16 << 10;

/// zlib cannot make a raw deflate stream with an 8-bit window; a 9-bit
/// window inflates any stream made with 8 bits (RFC 7692 §7.1.2.2 allows a
/// larger window on the receiving side).
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

thread_local! {
    static COMPRESSORS: RefCell<Vec<(u32, u8, Box<Compress>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSORS: RefCell<Vec<(u8, Box<Decompress>)>> = const { RefCell::new(Vec::new()) };
}

fn take_compressor(level: u32, bits: u8) -> Box<Compress> {
    COMPRESSORS
        .with(|cache| {
            let mut cache = cache.borrow_mut();
            let at = cache.iter().position(|(l, b, _)| *l == level && *b == bits)?;
            Some(cache.swap_remove(at).2)
        })
        .unwrap_or_else(|| Box::new(Compress::new_with_window_bits(Compression::new(level), false, zlib_bits(bits))))
}

fn give_compressor(level: u32, bits: u8, mut state: Box<Compress>) {
    state.reset();
    COMPRESSORS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < CACHE_SIZE {
            cache.push((level, bits, state));
        }
    });
}

fn take_decompressor(bits: u8) -> Box<Decompress> {
    DECOMPRESSORS
        .with(|cache| {
            let mut cache = cache.borrow_mut();
            let at = cache.iter().position(|(b, _)| *b == bits)?;
            Some(cache.swap_remove(at).1)
        })
        .unwrap_or_else(|| Box::new(Decompress::new_with_window_bits(false, zlib_bits(bits))))
}

fn give_decompressor(bits: u8, mut state: Box<Decompress>) {
    state.reset(false);
    DECOMPRESSORS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < CACHE_SIZE {
            cache.push((bits, state));
        }
    });
}

/// Compresses outgoing messages.
#[derive(Debug)]
pub(crate) struct Deflater {
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
    /// Kept between messages only with context takeover.
    state: Option<Box<Compress>>,
}

impl Deflater {
    pub(crate) fn new(level: u32, window_bits: u8, no_context_takeover: bool) -> Self {
        Self { level: level.min(9), window_bits, no_context_takeover, state: None }
    }

    /// Appends the compressed form of one whole message to `out`.
    pub(crate) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut state = self.state.take().unwrap_or_else(|| take_compressor(self.level, self.window_bits));
        let start = out.len();
        let before = state.total_in();
        loop {
            let taken = usize::try_from(state.total_in() - before).unwrap_or(data.len()).min(data.len());
            out.reserve((data.len() - taken) / 2 + 64);
            // Compressing memory to memory with a valid state cannot fail;
            // zlib-rs reports only misuse here.
            if state.compress_vec(&data[taken..], out, FlushCompress::Sync).is_err() {
                break;
            }
            let taken = usize::try_from(state.total_in() - before).unwrap_or(data.len());
            // The flush is complete once all input is in and the output was not filled.
            if taken >= data.len() && out.len() < out.capacity() {
                break;
            }
        }
        // RFC 7692 §7.2.1: remove the 0x00 0x00 0xff 0xff the sync flush ends with.
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if self.no_context_takeover {
            give_compressor(self.level, self.window_bits, state);
        } else {
            self.state = Some(state);
        }
    }

    /// Bytes of state held between messages (an estimate of zlib's allocation).
    pub(crate) fn held_bytes(&self) -> usize {
        self.state.as_ref().map_or(0, |_| compressor_bytes(self.window_bits))
    }
}

/// Decompresses incoming messages, never producing more than a limit.
#[derive(Debug)]
pub(crate) struct Inflater {
    window_bits: u8,
    /// Borrowed while a message is being inflated.
    state: Option<Box<Decompress>>,
    /// The last bytes inflated, up to the window (none without context takeover).
    history: History,
    /// The peer ended its stream with a final block inside this message.
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        // Without context takeover nothing carries over.
        let limit = if no_context_takeover { 0 } else { 1 << zlib_bits(window_bits) };
        Self { window_bits, state: None, history: History::new(limit), ended: false }
    }

    /// Inflates a piece of a compressed message, handing the output to `sink`
    /// in pieces, and fails with 1009 as soon as `produced` passes `limit`,
    /// before the excess reaches the sink.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        produced: &mut usize,
        limit: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        if self.ended {
            // Nothing may follow a final block within the message.
            return if input.iter().all(|&b| b == 0) { Ok(()) } else { Err(ProtocolError::InvalidCompressedData) };
        }
        let state = match &mut self.state {
            Some(state) => state,
            slot @ None => {
                let mut state = take_decompressor(self.window_bits);
                if !self.history.bytes.is_empty() {
                    // RFC 7692 §7.2.2: with context takeover the peer may refer
                    // to data of earlier messages, up to its window back.
                    state.set_dictionary(&self.history.bytes).map_err(|_| ProtocolError::InvalidCompressedData)?;
                }
                slot.insert(state)
            }
        };
        let mut piece = [0u8; INFLATE_PIECE];
        let mut input = input;
        loop {
            let (in_before, out_before) = (state.total_in(), state.total_out());
            let status = state
                .decompress(input, &mut piece, FlushDecompress::None)
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            let used = usize::try_from(state.total_in() - in_before).unwrap_or(input.len()).min(input.len());
            let made = usize::try_from(state.total_out() - out_before).unwrap_or(piece.len()).min(piece.len());
            input = &input[used..];
            if made > 0 {
                *produced += made;
                // RFC 7692 §8.1 and RFC 6455 §10.4: bounded while it runs, so
                // a few bytes that inflate to gigabytes stop at the limit.
                if *produced > limit {
                    return Err(ProtocolError::MessageTooLarge { max: limit });
                }
                sink(&piece[..made])?;
                self.history.push(&piece[..made]);
            }
            if status == Status::StreamEnd {
                self.ended = true;
                return if input.iter().all(|&b| b == 0) { Ok(()) } else { Err(ProtocolError::InvalidCompressedData) };
            }
            if (input.is_empty() && made < piece.len()) || (used == 0 && made == 0) {
                return Ok(());
            }
        }
    }

    /// Ends a message: inflates the removed tail, then gives the state back.
    pub(crate) fn finish(
        &mut self,
        produced: &mut usize,
        limit: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        // RFC 7692 §7.2.2: append 0x00 0x00 0xff 0xff to the payload of the message.
        let result = if self.ended { Ok(()) } else { self.inflate(&TAIL, produced, limit, sink) };
        self.end_message();
        result
    }

    /// Drops what a message in progress left (after a failure, or at its end).
    pub(crate) fn end_message(&mut self) {
        if std::mem::take(&mut self.ended) {
            // A final block ended the peer's stream: the next message starts a new one.
            self.history.bytes.clear();
        }
        if let Some(state) = self.state.take() {
            give_decompressor(self.window_bits, state);
        }
    }

    /// Bytes held: the window kept between messages, and zlib's state while a
    /// message is in progress (its allocation).
    pub(crate) fn held_bytes(&self) -> usize {
        self.history.bytes.capacity() + self.state.as_ref().map_or(0, |_| DECOMPRESSOR_BYTES)
    }
}

/// The last bytes of a stream, up to a limit: the LZ77 window a stream with
/// context takeover carries over to its next message.
#[derive(Debug)]
struct History {
    bytes: Vec<u8>,
    limit: usize,
}

impl History {
    fn new(limit: usize) -> Self {
        Self { bytes: Vec::new(), limit }
    }

    /// Appends `data`, keeping the last `limit` bytes, and never allocates past the limit.
    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(self.limit)..];
        let excess = (self.bytes.len() + data.len()).saturating_sub(self.limit);
        self.bytes.drain(..excess);
        let needed = self.bytes.len() + data.len();
        if needed > self.bytes.capacity() {
            let grown = (2 * self.bytes.capacity()).clamp(needed, self.limit.max(needed));
            self.bytes.reserve_exact(grown - self.bytes.len());
        }
        self.bytes.extend_from_slice(data);
    }
}

/// zlib-rs's deflate allocation: window (2 × 2^bits), prev (2 × 2^bits), head
/// (2 × 2^16), pending and symbol buffers (7 × 2^14 at memory level 8) and
/// the state itself (measured with zlib-rs 0.6.8: 251,152 bytes with 9 bits,
/// 380,176 with 15).
fn compressor_bytes(bits: u8) -> usize {
    4 * (1usize << zlib_bits(bits)) + (2 << 16) + (7 << 14) + 3_344
}

/// zlib-rs's inflate allocation, whatever the window bits: it always
/// allocates a 32 KiB window beside its state (measured with zlib-rs 0.6.8).
const DECOMPRESSOR_BYTES: usize = 47_704;
