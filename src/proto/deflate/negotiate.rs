//! permessage-deflate negotiation (RFC 7692 §5–§7), for both roles.
//!
//! Everything here is a pure function of the parsed `Sec-WebSocket-Extensions`
//! elements and a [`DeflateConfig`]:
//!
//! - a server calls [`negotiate_server`] with the client's offers and gets the
//!   agreed [`DeflateParams`] and the response value, or `None` to go on
//!   uncompressed;
//! - a client sends [`client_offer`] and checks the server's answer with
//!   [`accept_server_response`], which fails the connection on an invalid one.
//!
//! Both sides reach the same [`DeflateParams`]; [`DeflateParams::for_role`]
//! turns them into what this endpoint's compressor and decompressor use.
//!
//! ```
//! use ferrows::proto::deflate::negotiate::{accept_server_response, client_offer, negotiate_server, DeflateConfig};
//! use ferrows::proto::handshake::parse_extensions;
//!
//! let mut client = DeflateConfig::default();
//! client.client_no_context_takeover = true;
//! let offer = client_offer(&client);
//! assert_eq!(offer, "permessage-deflate; client_no_context_takeover; client_max_window_bits");
//!
//! let mut server = DeflateConfig::default();
//! server.server_max_window_bits = 12;
//! let (params, response) = negotiate_server(&parse_extensions(offer.as_bytes())?, &server).unwrap();
//! assert_eq!(response, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
//!
//! let agreed = accept_server_response(&parse_extensions(response.as_bytes())?, &client).unwrap();
//! assert_eq!(agreed, Some(params));
//! # Ok::<(), ferrows::proto::handshake::ExtensionError>(())
//! ```

use std::fmt;

use crate::proto::handshake::{ExtensionOffer, ExtensionParam};
use crate::proto::Role;

/// The extension token of RFC 7692 §7.
const EXTENSION_NAME: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The largest LZ77 window, 32 KiB, and the one assumed when none is named.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window zlib's raw deflate compressor accepts. RFC 7692 allows
/// 8, but zlib cannot compress with it, so 8 is never agreed for a window this
/// end compresses with.
const MIN_COMPRESS_WINDOW_BITS: u8 = 9;
/// The window [`DeflateConfig::server`] asks of clients: 8 KiB kept per
/// connection, a compression ratio close to 32 KiB's on chat traffic
/// (0.206 against 0.169 on the corpus of `benches/deflate.rs`).
const SERVER_DEFAULT_CLIENT_WINDOW_BITS: u8 = 13;

/// What this endpoint is willing to do with permessage-deflate.
///
/// The same settings serve both roles: a server answers offers with them and
/// a client builds its offer from them. Window sizes are base-2 logarithms of
/// the LZ77 window; values outside `9..=15` are clamped into that range when
/// negotiating.
///
/// The defaults differ by role. [`DeflateConfig::default`] is RFC 7692's own
/// (context takeover, 32 KiB windows both ways), what a client offers: it
/// asks nothing of the server. [`DeflateConfig::server`] is what a server
/// runs with by default (`ServerConfig::deflate` and the binary): no context
/// takeover for its compressor and an 8 KiB window asked of the client's, so
/// that a connection keeps at most 8 KiB of codec state between messages.
///
/// ```
/// use ferrows::proto::deflate::negotiate::DeflateConfig;
///
/// let mut config = DeflateConfig::server();
/// config.server_max_window_bits = 10;
/// assert!(config.enabled && config.server_no_context_takeover);
/// assert_eq!(config.client_max_window_bits, 13);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Whether to negotiate permessage-deflate at all. Default `true`.
    pub enabled: bool,
    /// Compression level, `0..=9`, for the codec; not negotiated. Default 6.
    pub level: u32,
    /// The largest window the server's compressor uses, `9..=15`. As a
    /// server: the window this end compresses with at most. As a client: the
    /// limit asked of the server (offered only when below 15). Default 15.
    pub server_max_window_bits: u8,
    /// The largest window asked of the client's compressor, `9..=15`. As a
    /// server: applied only when the client's offer lets the server choose
    /// (RFC 7692 §7.1.2.2); it is also what this end keeps of the client's
    /// stream between messages with context takeover (2^bits bytes). As a
    /// client: the window this end compresses with at most. Default 15; 13
    /// in [`DeflateConfig::server`].
    pub client_max_window_bits: u8,
    /// Reset the server's compressor after every message. As a server: always
    /// do so and say it (then one compressor per thread serves every
    /// connection, borrowed for a message); as a client: ask the server to.
    /// Default `false`; `true` in [`DeflateConfig::server`].
    pub server_no_context_takeover: bool,
    /// Reset the client's compressor after every message. As a server: ask
    /// the client to; as a client: always do so and say it. Default `false`.
    pub client_no_context_takeover: bool,
    /// As a server: ask `client_no_context_takeover` (RFC 7692 §7.1.1.2) of a
    /// client whose offer has no `client_max_window_bits`, when
    /// `client_max_window_bits` is below 15. Such a client compresses with up
    /// to 32 KiB, which this end would otherwise keep per connection. Off,
    /// such clients keep context takeover with their 32 KiB window. Not used
    /// as a client. Default `false`; `true` in [`DeflateConfig::server`].
    pub client_no_context_takeover_fallback: bool,
    /// Messages shorter than this are sent uncompressed; for the codec, not
    /// negotiated. Default 64.
    pub min_message_size: usize,
}

/// RFC 7692's defaults, what a client offers: context takeover and 15-bit
/// windows both ways, nothing asked of the server.
impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            level: 6,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            client_no_context_takeover_fallback: false,
            min_message_size: 64,
        }
    }
}

impl DeflateConfig {
    /// A server's defaults: the [`Default`] ones, but the server resets its
    /// compressor after every message (`server_no_context_takeover`), asks a
    /// 13-bit window of a client that lets it choose (a browser's bare
    /// `client_max_window_bits`), and asks `client_no_context_takeover` of a
    /// client that does not.
    ///
    /// An idle connection then holds at most 8 KiB of codec state, the
    /// client's window, where [`Default`]'s context takeover both ways keeps
    /// a 32 KiB window and zlib's 370 KiB compressor; browsers' messages keep
    /// most of the compression a 32 KiB window gives (the measurements are in
    /// `docs/deflate.md`).
    ///
    /// ```
    /// use ferrows::proto::deflate::negotiate::{negotiate_server, DeflateConfig};
    /// use ferrows::proto::handshake::parse_extensions;
    ///
    /// let browser = parse_extensions(b"permessage-deflate; client_max_window_bits")?;
    /// let (_, response) = negotiate_server(&browser, &DeflateConfig::server()).unwrap();
    /// assert_eq!(response, "permessage-deflate; server_no_context_takeover; client_max_window_bits=13");
    /// # Ok::<(), ferrows::proto::handshake::ExtensionError>(())
    /// ```
    #[must_use]
    pub fn server() -> Self {
        DeflateConfig {
            client_max_window_bits: SERVER_DEFAULT_CLIENT_WINDOW_BITS,
            server_no_context_takeover: true,
            client_no_context_takeover_fallback: true,
            ..DeflateConfig::default()
        }
    }

    fn server_window_limit(&self) -> u8 {
        self.server_max_window_bits.clamp(MIN_COMPRESS_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    fn client_window_limit(&self) -> u8 {
        self.client_max_window_bits.clamp(MIN_COMPRESS_WINDOW_BITS, MAX_WINDOW_BITS)
    }
}

/// The permessage-deflate parameters agreed for one connection, the same on
/// both ends.
///
/// Window bits are `8..=15` as agreed. A window this end compresses with is
/// never 8 (zlib cannot use it); a window this end inflates with may be 8,
/// and the codec inflates with `max(bits, 9)`, since a larger window inflates
/// a stream made with a smaller one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The window the server compresses with at most; the client inflates
    /// with it.
    pub server_max_window_bits: u8,
    /// The window the client compresses with at most; the server inflates
    /// with it.
    pub client_max_window_bits: u8,
}

/// [`DeflateParams`] seen from one end: what its compressor and its
/// decompressor use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectionParams {
    /// The window this end compresses with, `9..=15`.
    pub compress_window_bits: u8,
    /// This end resets its compressor after every message.
    pub compress_no_context_takeover: bool,
    /// The window the peer compresses with, `8..=15`; inflate with
    /// `max(bits, 9)`.
    pub inflate_window_bits: u8,
    /// The peer resets its compressor after every message, so this end may
    /// reset its decompressor too.
    pub inflate_no_context_takeover: bool,
}

impl DeflateParams {
    /// The window bits and context takeover for each direction from the
    /// point of view of `role`.
    ///
    /// ```
    /// use ferrows::proto::deflate::negotiate::DeflateParams;
    /// use ferrows::proto::Role;
    ///
    /// let params = DeflateParams {
    ///     server_no_context_takeover: true,
    ///     client_no_context_takeover: false,
    ///     server_max_window_bits: 10,
    ///     client_max_window_bits: 15,
    /// };
    /// let server = params.for_role(Role::Server);
    /// assert_eq!((server.compress_window_bits, server.compress_no_context_takeover), (10, true));
    /// let client = params.for_role(Role::Client);
    /// assert_eq!((client.inflate_window_bits, client.inflate_no_context_takeover), (10, true));
    /// ```
    pub fn for_role(&self, role: Role) -> DirectionParams {
        let server = (self.server_max_window_bits, self.server_no_context_takeover);
        let client = (self.client_max_window_bits, self.client_no_context_takeover);
        let (compress, inflate) = match role {
            Role::Server => (server, client),
            Role::Client => (client, server),
        };
        DirectionParams {
            compress_window_bits: compress.0,
            compress_no_context_takeover: compress.1,
            inflate_window_bits: inflate.0,
            inflate_no_context_takeover: inflate.1,
        }
    }
}

/// Why a server's permessage-deflate response cannot be accepted; the client
/// must fail the connection (RFC 7692 §5, §7).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeflateNegotiationError {
    /// The response holds more than one permessage-deflate element.
    MultipleResponses,
    /// The server accepted permessage-deflate, which this end did not offer.
    NotOffered,
    /// A parameter RFC 7692 does not define.
    UnknownParameter(String),
    /// A parameter named twice.
    RepeatedParameter(&'static str),
    /// A value on a parameter that takes none.
    UnexpectedValue(&'static str),
    /// A parameter without the value it needs.
    MissingValue(&'static str),
    /// A window size that is not a decimal integer in `8..=15`.
    InvalidWindowBits {
        /// The parameter.
        parameter: &'static str,
        /// Its value, as received.
        value: String,
    },
    /// `server_max_window_bits` above the limit offered.
    ServerWindowTooLarge {
        /// The limit in the offer.
        offered: u8,
        /// The value in the response.
        accepted: u8,
    },
    /// A `server_max_window_bits` offer answered without the parameter.
    ServerWindowMissing {
        /// The limit in the offer.
        offered: u8,
    },
    /// A `server_no_context_takeover` offer answered without the parameter.
    ServerContextTakeoverKept,
    /// `client_max_window_bits` above the limit offered.
    ClientWindowTooLarge {
        /// The limit in the offer (15 when offered without a value).
        offered: u8,
        /// The value in the response.
        accepted: u8,
    },
    /// A `client_max_window_bits` this end's compressor cannot use (8).
    ClientWindowUnsupported {
        /// The value in the response.
        bits: u8,
    },
}

impl fmt::Display for DeflateNegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeflateNegotiationError::MultipleResponses => {
                f.write_str("more than one permessage-deflate element in the response")
            }
            DeflateNegotiationError::NotOffered => f.write_str("permessage-deflate accepted but not offered"),
            DeflateNegotiationError::UnknownParameter(name) => write!(f, "unknown permessage-deflate parameter {name}"),
            DeflateNegotiationError::RepeatedParameter(name) => write!(f, "parameter {name} repeated"),
            DeflateNegotiationError::UnexpectedValue(name) => write!(f, "parameter {name} takes no value"),
            DeflateNegotiationError::MissingValue(name) => write!(f, "parameter {name} needs a value"),
            DeflateNegotiationError::InvalidWindowBits { parameter, value } => {
                write!(f, "{parameter}={value} is not a window size from 8 to 15")
            }
            DeflateNegotiationError::ServerWindowTooLarge { offered, accepted } => {
                write!(f, "server_max_window_bits={accepted} exceeds the {offered} offered")
            }
            DeflateNegotiationError::ServerWindowMissing { offered } => {
                write!(f, "server_max_window_bits={offered} offered but not in the response")
            }
            DeflateNegotiationError::ServerContextTakeoverKept => {
                f.write_str("server_no_context_takeover offered but not in the response")
            }
            DeflateNegotiationError::ClientWindowTooLarge { offered, accepted } => {
                write!(f, "client_max_window_bits={accepted} exceeds the {offered} offered")
            }
            DeflateNegotiationError::ClientWindowUnsupported { bits } => {
                write!(f, "client_max_window_bits={bits} is too small to compress with")
            }
        }
    }
}

impl std::error::Error for DeflateNegotiationError {}

/// Server side: picks the first acceptable `permessage-deflate` offer.
///
/// Returns the agreed parameters and the `Sec-WebSocket-Extensions` value to
/// answer with, or `None` when no offer is acceptable (or `config.enabled` is
/// off) and the connection goes on uncompressed. Offers of other extensions
/// are skipped. The response lists its parameters in a fixed order:
/// `server_no_context_takeover`, `client_no_context_takeover`,
/// `server_max_window_bits`, `client_max_window_bits`.
///
/// ```
/// use ferrows::proto::deflate::negotiate::{negotiate_server, DeflateConfig};
/// use ferrows::proto::handshake::parse_extensions;
///
/// // The first offer asks for a window zlib cannot compress with, so the second is taken.
/// let offers = parse_extensions(b"permessage-deflate; server_max_window_bits=8, permessage-deflate")?;
/// let (params, response) = negotiate_server(&offers, &DeflateConfig::default()).unwrap();
/// assert_eq!(response, "permessage-deflate");
/// assert_eq!(params.server_max_window_bits, 15);
/// # Ok::<(), ferrows::proto::handshake::ExtensionError>(())
/// ```
pub fn negotiate_server(offers: &[ExtensionOffer], config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    if !config.enabled {
        return None;
    }
    // RFC 7692 §5: "An element preceding another element has higher
    // preference." The first offer this end can honour wins.
    offers.iter().filter(|offer| is_deflate(offer)).find_map(|offer| {
        // RFC 7692 §7: "A server MUST decline an extension negotiation offer
        // for this extension if any of the following conditions are met" —
        // an undefined parameter, an invalid value, a repeated parameter, or a
        // configuration the server does not support. Declining one offer
        // moves on to the next.
        let element = Element::parse(offer, Side::Offer).ok()?;
        accept_offer(&element, config)
    })
}

/// The response to one valid offer, or `None` when this end cannot honour it.
fn accept_offer(offer: &Element, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let server_limit = config.server_window_limit();
    let server_max_window_bits = match offer.server_max_window_bits {
        // RFC 7692 §7.1.2.1: the server accepts the offer "by including the
        // "server_max_window_bits" extension parameter in the extension
        // negotiation response to send back to the client with the same or
        // smaller value as the offer".
        Some(offered) => {
            let bits = offered.min(server_limit);
            // zlib cannot compress with a window of 8: "The server doesn't
            // support the offered configuration" (§7), so decline.
            if bits < MIN_COMPRESS_WINDOW_BITS {
                return None;
            }
            bits
        }
        None => server_limit,
    };
    // RFC 7692 §7.1.2.1: the server "MAY include the "server_max_window_bits"
    // extension parameter in an extension negotiation response even if the
    // extension negotiation offer being accepted by the response didn't
    // include" it; say so whenever this end limits itself.
    let answer_server_window = offer.server_max_window_bits.is_some() || server_max_window_bits < MAX_WINDOW_BITS;

    let (client_max_window_bits, answer_client_window) = match offer.client_max_window_bits {
        // RFC 7692 §7.1.2.2: "If a received extension negotiation offer
        // doesn't have the "client_max_window_bits" extension parameter, the
        // corresponding extension negotiation response to the offer MUST NOT
        // include the "client_max_window_bits" extension parameter." The
        // client then compresses with up to 32 KiB, whatever our config says.
        None => (MAX_WINDOW_BITS, false),
        // RFC 7692 §7.1.2.2: the server may answer with "a value equal to or
        // smaller than the received value"; a bare parameter allows up to 15.
        // A value in the offer binds the client anyway, so it is echoed
        // (possibly lowered) to leave no doubt. An offered 8 is kept: this end
        // inflates with a window of 9, which covers it.
        Some(hint) => {
            let bits = hint.unwrap_or(MAX_WINDOW_BITS).min(config.client_window_limit());
            (bits, hint.is_some() || bits < MAX_WINDOW_BITS)
        }
    };

    // RFC 7692 §7.1.1.2 lets the server ask `client_no_context_takeover`
    // whether or not it was offered: where the offer gives no way to lower
    // the client's window to what this end keeps, that is the way left.
    let unbounded_client_window = offer.client_max_window_bits.is_none()
        && config.client_window_limit() < MAX_WINDOW_BITS
        && config.client_no_context_takeover_fallback;

    let params = DeflateParams {
        // RFC 7692 §7.1.1.1: the server accepts the parameter by including it
        // and "MAY include the "server_no_context_takeover" extension
        // parameter in an extension negotiation response even if the
        // extension negotiation offer being accepted by the extension
        // negotiation response didn't include" it.
        server_no_context_takeover: offer.server_no_context_takeover || config.server_no_context_takeover,
        // RFC 7692 §7.1.1.2: the server may include `client_no_context_takeover`
        // in the response whether or not it was offered. In an offer it is the
        // client's hint that it will not take over context; answering it makes
        // that binding, so both ends record the same thing.
        client_no_context_takeover: offer.client_no_context_takeover
            || config.client_no_context_takeover
            || unbounded_client_window,
        server_max_window_bits,
        client_max_window_bits,
    };
    let response = Element {
        server_no_context_takeover: params.server_no_context_takeover,
        client_no_context_takeover: params.client_no_context_takeover,
        server_max_window_bits: answer_server_window.then_some(server_max_window_bits),
        client_max_window_bits: answer_client_window.then_some(Some(client_max_window_bits)),
    };
    Some((params, response.to_string()))
}

/// Client side: the `Sec-WebSocket-Extensions` value that offers
/// permessage-deflate as `config` describes.
///
/// `client_max_window_bits` is always offered, so that a server may limit
/// this end's window; its value is given when `config.client_max_window_bits`
/// is below 15. `server_max_window_bits` is offered when
/// `config.server_max_window_bits` is below 15. `config.enabled` is not
/// consulted: a caller with deflate disabled offers nothing.
///
/// ```
/// use ferrows::proto::deflate::negotiate::{client_offer, DeflateConfig};
///
/// let mut config = DeflateConfig::default();
/// assert_eq!(client_offer(&config), "permessage-deflate; client_max_window_bits");
/// config.server_max_window_bits = 10;
/// config.client_max_window_bits = 12;
/// assert_eq!(
///     client_offer(&config),
///     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
/// );
/// ```
pub fn client_offer(config: &DeflateConfig) -> String {
    Element {
        server_no_context_takeover: config.server_no_context_takeover,
        client_no_context_takeover: config.client_no_context_takeover,
        server_max_window_bits: offered_server_window(config),
        client_max_window_bits: Some(offered_client_window(config)),
    }
    .to_string()
}

/// The `server_max_window_bits` value [`client_offer`] sends, if any.
fn offered_server_window(config: &DeflateConfig) -> Option<u8> {
    Some(config.server_window_limit()).filter(|&bits| bits < MAX_WINDOW_BITS)
}

/// The `client_max_window_bits` value [`client_offer`] sends (`None`: bare).
fn offered_client_window(config: &DeflateConfig) -> Option<u8> {
    Some(config.client_window_limit()).filter(|&bits| bits < MAX_WINDOW_BITS)
}

/// Client side: checks the extensions the server accepted against the offer
/// [`client_offer`] made from the same `config`.
///
/// Returns `Ok(None)` when the server accepted no permessage-deflate, the
/// agreed parameters when it accepted a valid one, and an error when the
/// response is invalid, in which case the client must fail the connection
/// (RFC 7692 §5, §7). Elements of other extensions are skipped.
///
/// ```
/// use ferrows::proto::deflate::negotiate::{accept_server_response, DeflateConfig, DeflateNegotiationError};
/// use ferrows::proto::handshake::parse_extensions;
///
/// let config = DeflateConfig::default();
/// let accepted = parse_extensions(b"permessage-deflate; client_max_window_bits=10")?;
/// let params = accept_server_response(&accepted, &config).unwrap().unwrap();
/// assert_eq!(params.client_max_window_bits, 10);
///
/// let invalid = parse_extensions(b"permessage-deflate; client_max_window_bits=8")?;
/// assert_eq!(
///     accept_server_response(&invalid, &config),
///     Err(DeflateNegotiationError::ClientWindowUnsupported { bits: 8 })
/// );
/// # Ok::<(), ferrows::proto::handshake::ExtensionError>(())
/// ```
pub fn accept_server_response(
    accepted: &[ExtensionOffer],
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
    let mut elements = accepted.iter().filter(|element| is_deflate(element));
    let Some(element) = elements.next() else {
        // RFC 7692 §5: with no PMCE element in the response, both ends go on
        // without per-message compression.
        return Ok(None);
    };
    // Two elements would both claim RSV1 (RFC 7692 §5), and only one offer
    // can have been accepted.
    if elements.next().is_some() {
        return Err(DeflateNegotiationError::MultipleResponses);
    }
    // RFC 6455 §9.1: the server may only accept extensions the client offered.
    if !config.enabled {
        return Err(DeflateNegotiationError::NotOffered);
    }
    // RFC 7692 §7: "A client MUST _Fail the WebSocket Connection_ if the peer
    // server accepted an extension negotiation offer for this extension with
    // an extension negotiation response meeting any of the following
    // conditions" — an undefined parameter, an invalid value, a repeated
    // parameter, or a configuration the client does not support.
    let response = Element::parse(element, Side::Response)?;

    let server_max_window_bits = match (offered_server_window(config), response.server_max_window_bits) {
        // RFC 7692 §7.1.2.1: "with the same or smaller value as the offer".
        (Some(offered), Some(accepted)) if accepted > offered => {
            return Err(DeflateNegotiationError::ServerWindowTooLarge { offered, accepted });
        }
        // The same sentence: the server accepts the parameter by including it.
        // Without it the server would use up to 32 KiB, which was refused.
        (Some(offered), None) => return Err(DeflateNegotiationError::ServerWindowMissing { offered }),
        // RFC 7692 §7.1.2.1 lets the server name a limit nobody asked for.
        (_, Some(accepted)) => accepted,
        (None, None) => MAX_WINDOW_BITS,
    };

    // RFC 7692 §7.1.1.1: "A server accepts an extension negotiation offer
    // that includes the "server_no_context_takeover" extension parameter by
    // including the "server_no_context_takeover" extension parameter in the
    // corresponding extension negotiation response".
    if config.server_no_context_takeover && !response.server_no_context_takeover {
        return Err(DeflateNegotiationError::ServerContextTakeoverKept);
    }

    // `client_max_window_bits` is always in our offer, so the server may name
    // it (RFC 7692 §7.1.2.2); a response carries it with a value.
    let offered_client = config.client_window_limit();
    let client_max_window_bits = match response.client_max_window_bits.flatten() {
        // RFC 7692 §7.1.2.2: "a value equal to or smaller than the received
        // value", a bare offer standing for 15.
        Some(accepted) if accepted > offered_client => {
            return Err(DeflateNegotiationError::ClientWindowTooLarge { offered: offered_client, accepted });
        }
        // "The client does not support the configuration that the response
        // represents" (§7): zlib cannot compress with a window of 8.
        Some(bits) if bits < MIN_COMPRESS_WINDOW_BITS => {
            return Err(DeflateNegotiationError::ClientWindowUnsupported { bits });
        }
        Some(bits) => bits,
        // A value in the offer binds this end even when the server ignores
        // it (RFC 7692 §7.1.2.2).
        None => offered_client,
    };

    Ok(Some(DeflateParams {
        server_no_context_takeover: response.server_no_context_takeover,
        // RFC 7692 §7.1.1.2: the server's `client_no_context_takeover` binds
        // this end; so does its own offer of it.
        client_no_context_takeover: response.client_no_context_takeover || config.client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    }))
}

/// Whether an element names permessage-deflate (tokens compare
/// case-insensitively, as [`ExtensionOffer::param`] does).
fn is_deflate(element: &ExtensionOffer) -> bool {
    element.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

/// Which message an element is in: the grammar differs only in whether
/// `client_max_window_bits` may be bare.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Offer,
    Response,
}

/// The parameters of one permessage-deflate element, checked.
#[derive(Debug, Default)]
struct Element {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: named without a value, allowed in an offer only.
    client_max_window_bits: Option<Option<u8>>,
}

impl Element {
    /// Checks every parameter of `element` (RFC 7692 §7's list of reasons to
    /// decline an offer or fail on a response).
    fn parse(element: &ExtensionOffer, side: Side) -> Result<Element, DeflateNegotiationError> {
        let mut parsed = Element::default();
        for param in &element.params {
            let name = param.name.as_str();
            if name.eq_ignore_ascii_case(SERVER_NO_CONTEXT_TAKEOVER) {
                // RFC 7692 §7.1.1.1: "This extension parameter has no value."
                set_flag(&mut parsed.server_no_context_takeover, SERVER_NO_CONTEXT_TAKEOVER, param)?;
            } else if name.eq_ignore_ascii_case(CLIENT_NO_CONTEXT_TAKEOVER) {
                // RFC 7692 §7.1.1.2: "This extension parameter has no value."
                set_flag(&mut parsed.client_no_context_takeover, CLIENT_NO_CONTEXT_TAKEOVER, param)?;
            } else if name.eq_ignore_ascii_case(SERVER_MAX_WINDOW_BITS) {
                if parsed.server_max_window_bits.is_some() {
                    return Err(DeflateNegotiationError::RepeatedParameter(SERVER_MAX_WINDOW_BITS));
                }
                // RFC 7692 §7.1.2.1: `server-max-window-bits = 1*DIGIT`, in
                // offers and responses alike.
                let Some(value) = &param.value else {
                    return Err(DeflateNegotiationError::MissingValue(SERVER_MAX_WINDOW_BITS));
                };
                parsed.server_max_window_bits = Some(window_bits(SERVER_MAX_WINDOW_BITS, value)?);
            } else if name.eq_ignore_ascii_case(CLIENT_MAX_WINDOW_BITS) {
                if parsed.client_max_window_bits.is_some() {
                    return Err(DeflateNegotiationError::RepeatedParameter(CLIENT_MAX_WINDOW_BITS));
                }
                // RFC 7692 §7.1.2.2: in an offer, "This parameter has no
                // value or a decimal integer value"; a response limits the
                // client's window, so it needs the value.
                let bits = match (&param.value, side) {
                    (Some(value), _) => Some(window_bits(CLIENT_MAX_WINDOW_BITS, value)?),
                    (None, Side::Offer) => None,
                    (None, Side::Response) => {
                        return Err(DeflateNegotiationError::MissingValue(CLIENT_MAX_WINDOW_BITS))
                    }
                };
                parsed.client_max_window_bits = Some(bits);
            } else {
                // RFC 7692 §7: "an extension parameter not defined for use in
                // an offer" (or in a response).
                return Err(DeflateNegotiationError::UnknownParameter(param.name.clone()));
            }
        }
        Ok(parsed)
    }
}

/// Sets a no-value flag, refusing a repeat or a value.
fn set_flag(flag: &mut bool, name: &'static str, param: &ExtensionParam) -> Result<(), DeflateNegotiationError> {
    // RFC 7692 §7: "multiple extension parameters with the same name".
    if *flag {
        return Err(DeflateNegotiationError::RepeatedParameter(name));
    }
    if param.value.is_some() {
        return Err(DeflateNegotiationError::UnexpectedValue(name));
    }
    *flag = true;
    Ok(())
}

/// A window size: RFC 7692 §7.1.2.1, "a decimal integer value without
/// leading zeroes between 8 to 15, inclusive". A quoted value arrives here
/// already unquoted.
fn window_bits(parameter: &'static str, value: &str) -> Result<u8, DeflateNegotiationError> {
    let canonical = !value.starts_with('0') && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u8>() {
        Ok(bits) if canonical && (8..=MAX_WINDOW_BITS).contains(&bits) => Ok(bits),
        _ => Err(DeflateNegotiationError::InvalidWindowBits { parameter, value: value.to_owned() }),
    }
}

/// Writes the element in header syntax, parameters in a fixed order.
impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut params = Vec::new();
        let flag = |name: &str| ExtensionParam { name: name.into(), value: None };
        let bits =
            |name: &str, value: Option<u8>| ExtensionParam { name: name.into(), value: value.map(|b| b.to_string()) };
        if self.server_no_context_takeover {
            params.push(flag(SERVER_NO_CONTEXT_TAKEOVER));
        }
        if self.client_no_context_takeover {
            params.push(flag(CLIENT_NO_CONTEXT_TAKEOVER));
        }
        if let Some(value) = self.server_max_window_bits {
            params.push(bits(SERVER_MAX_WINDOW_BITS, Some(value)));
        }
        if let Some(value) = self.client_max_window_bits {
            params.push(bits(CLIENT_MAX_WINDOW_BITS, value));
        }
        ExtensionOffer { name: EXTENSION_NAME.into(), params }.fmt(f)
    }
}
