//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! Compiled with the cargo feature `deflate` (on by default).

mod codec;
pub mod negotiate;

pub(crate) use codec::{Deflater, Inflater};
pub use negotiate::{
    accept_server_response, client_offer, negotiate_server, DeflateConfig, DeflateNegotiationError, DeflateParams,
    DirectionParams,
};
