//! permessage-deflate negotiation (RFC 7692 §5–7).

use crate::proto::Role;

/// What this endpoint is willing to do.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Whether to negotiate at all.
    pub enabled: bool,
    /// Compression level, 0 to 9.
    pub level: u32,
    /// The largest window our compressor uses as a server.
    pub server_max_window_bits: u8,
    /// The largest window we ask the client's compressor to use.
    pub client_max_window_bits: u8,
    /// Reset our compressor between messages.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor between messages.
    pub client_no_context_takeover: bool,
    /// Messages below this size are sent uncompressed.
    pub min_message_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            level: 6,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            min_message_size: 64,
        }
    }
}

/// The agreed parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor between messages.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor between messages.
    pub client_no_context_takeover: bool,
    /// The server's compressor window.
    pub server_max_window_bits: u8,
    /// The client's compressor window.
    pub client_max_window_bits: u8,
}

/// The parameters of each direction, seen from one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionParams {
    /// Our compressor's window.
    pub compress_window_bits: u8,
    /// Reset our compressor between messages.
    pub compress_no_context_takeover: bool,
    /// The window the peer compresses with.
    pub inflate_window_bits: u8,
    /// The peer resets its compressor between messages.
    pub inflate_no_context_takeover: bool,
}

impl DeflateParams {
    /// Each direction's parameters from `role`'s side.
    pub fn for_role(&self, role: Role) -> DirectionParams {
        match role {
            Role::Server => DirectionParams {
                compress_window_bits: self.server_max_window_bits,
                compress_no_context_takeover: self.server_no_context_takeover,
                inflate_window_bits: self.client_max_window_bits,
                inflate_no_context_takeover: self.client_no_context_takeover,
            },
            Role::Client => DirectionParams {
                compress_window_bits: self.client_max_window_bits,
                compress_no_context_takeover: self.client_no_context_takeover,
                inflate_window_bits: self.server_max_window_bits,
                inflate_no_context_takeover: self.server_no_context_takeover,
            },
        }
    }
}
