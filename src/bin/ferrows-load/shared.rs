//! What the threads share: the phase of the run, live counters, the error log.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// Where the run stands; only the leading thread moves it forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Connections are being opened (echo, idle).
    #[default]
    Opening,
    /// Load runs but is not measured.
    Warmup,
    /// Load runs and is measured (idle: connections are held).
    Measuring,
    /// Every connection is being closed with a Close frame.
    Closing,
    /// Over: threads drop what is left and return.
    Done,
}

impl Phase {
    /// The phase stored as `n` by [`Shared::set_phase`].
    fn from_u8(n: u8) -> Phase {
        match n {
            0 => Phase::Opening,
            1 => Phase::Warmup,
            2 => Phase::Measuring,
            3 => Phase::Closing,
            _ => Phase::Done,
        }
    }
}

/// How many distinct error descriptions are tallied before the rest are lumped together.
const MAX_KINDS: usize = 64;
/// How many errors are printed as they happen.
const MAX_PRINTED: u64 = 10;

/// Counters and state every thread reads and updates.
#[derive(Debug)]
pub struct Shared {
    /// The current [`Phase`].
    phase: AtomicU8,
    /// Set by Ctrl-C: stop early but still report.
    pub interrupted: Arc<AtomicBool>,
    /// Set by a mode that cannot go on (a stalled room, a lost publisher):
    /// stop early and report; the mode has counted the error.
    pub stop: AtomicBool,
    /// Connections in TCP connect or handshake now.
    pub pending: AtomicU64,
    /// Connections open now (handshake done, not yet ended).
    pub open: AtomicU64,
    /// Handshakes completed, all phases (with `--send-once`, first echoes received).
    pub opened: AtomicU64,
    /// Of `opened`, the connections that use permessage-deflate.
    pub deflated: AtomicU64,
    /// Connections that never opened (refused, timed out, handshake refused).
    pub failed: AtomicU64,
    /// Errors of any kind, failed opens included.
    pub errors: AtomicU64,
    /// Messages received, all phases (for the progress line).
    pub messages: AtomicU64,
    /// Payload bytes received, all phases (for the progress line).
    pub bytes: AtomicU64,
    /// Publishes acknowledged, all phases (fanout).
    pub publishes: AtomicU64,
    /// Messages a subscriber never got, seen as gaps in its sequence (fanout).
    pub dropped: AtomicU64,
    /// Rounds completed while measuring (room).
    pub rounds: AtomicU64,
    /// Error descriptions and how often each occurred.
    kinds: Mutex<BTreeMap<String, u64>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            phase: AtomicU8::new(Phase::Opening as u8),
            interrupted: Arc::new(AtomicBool::new(false)),
            stop: AtomicBool::new(false),
            pending: AtomicU64::new(0),
            open: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            deflated: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            kinds: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Shared {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Relaxed))
    }

    /// Moves the run to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Relaxed);
    }

    /// Counts an error and keeps its description; the first few are printed at once.
    pub fn error(&self, what: &str, detail: impl Display) {
        self.errors_of(1, what, detail);
    }

    /// Counts `count` errors of one description (one line printed at most).
    pub fn errors_of(&self, count: u64, what: &str, detail: impl Display) {
        if count == 0 {
            return;
        }
        let n = self.errors.fetch_add(count, Relaxed) + 1;
        let description = format!("{what}: {detail}");
        if n <= MAX_PRINTED {
            eprintln!("error: {description}");
            if n == MAX_PRINTED {
                eprintln!("(further errors are only counted; the summary lists them by kind)");
            }
        }
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if kinds.len() < MAX_KINDS || kinds.contains_key(&description) {
            description
        } else {
            "other errors".to_owned()
        };
        *kinds.entry(key).or_insert(0) += count;
    }

    /// Every error description with its count, most frequent first.
    pub fn error_kinds(&self) -> Vec<(String, u64)> {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<_> = kinds.iter().map(|(kind, n)| (kind.clone(), *n)).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list
    }
}

/// Counts gathered by one thread and added to the shared ones in batches,
/// so that no atomic is touched per message.
#[derive(Debug, Default)]
pub struct LocalCounts {
    /// Messages not yet added to [`Shared::messages`].
    pub messages: u64,
    /// Bytes not yet added to [`Shared::bytes`].
    pub bytes: u64,
    /// Publishes not yet added to [`Shared::publishes`].
    pub publishes: u64,
    /// Dropped messages not yet added to [`Shared::dropped`].
    pub dropped: u64,
}

impl LocalCounts {
    /// Adds the batch to the shared counters and starts a new one.
    pub fn flush(&mut self, shared: &Shared) {
        if self.messages > 0 {
            shared.messages.fetch_add(self.messages, Relaxed);
            shared.bytes.fetch_add(self.bytes, Relaxed);
        }
        if self.publishes > 0 {
            shared.publishes.fetch_add(self.publishes, Relaxed);
        }
        if self.dropped > 0 {
            shared.dropped.fetch_add(self.dropped, Relaxed);
        }
        *self = LocalCounts::default();
    }
}
