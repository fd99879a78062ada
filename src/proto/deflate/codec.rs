//! The per-message codec of permessage-deflate (RFC 7692 §7.2).
//!
//! Compression and decompression state (zlib's, through flate2 with the
//! pure-Rust zlib-rs backend) is the big per-connection cost: about 256 KiB
//! for a compressor and 40 KiB for a decompressor with a 15-bit window. A
//! direction without context takeover needs its state only while one message
//! is being processed, so it borrows it from a small per-thread cache and
//! gives it back (reset) at the end of the message: an idle connection then
//! holds none. With an event loop per thread, that is one cache per loop.
//! A direction with context takeover keeps its state for the connection's
//! life, sized by the negotiated window.

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
    no_context_takeover: bool,
    state: Option<Box<Decompress>>,
    /// The peer ended its stream with a final block inside this message.
    ended: bool,
}

impl Inflater {
    pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Self { window_bits, no_context_takeover, state: None, ended: false }
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
        let window_bits = self.window_bits;
        let state = self.state.get_or_insert_with(|| take_decompressor(window_bits));
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

    /// Ends a message: inflates the removed tail, then releases or keeps the state.
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
        let ended = std::mem::take(&mut self.ended);
        if let Some(state) = self.state.take() {
            if self.no_context_takeover || ended {
                give_decompressor(self.window_bits, state);
            } else {
                // With context takeover the window carries over to the next message.
                self.state = Some(state);
            }
        }
    }

    /// Bytes of state held between messages (an estimate of zlib's allocation).
    pub(crate) fn held_bytes(&self) -> usize {
        self.state.as_ref().map_or(0, |_| decompressor_bytes(self.window_bits))
    }
}

/// zlib's deflate state: window (2 × 2^bits), prev (2 × 2^bits), head (2 × 2^15 for memLevel 8), pending (4 × 2^14).
fn compressor_bytes(bits: u8) -> usize {
    let window = 1usize << zlib_bits(bits);
    4 * window + (2 << 15) + (4 << 14)
}

/// zlib's inflate state: the window plus about 7 KiB of tables.
fn decompressor_bytes(bits: u8) -> usize {
    (1usize << zlib_bits(bits)) + (7 << 10)
}
