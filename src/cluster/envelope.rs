//! What a node publishes to Redis: the encoded WebSocket frame, wrapped with
//! where it came from and its place in that node's sequence.
//!
//! ```text
//! "FRW1" | run: u64 | seq: u64 | node id length: u8 | node id | frame
//! ```
//!
//! `run` is drawn at random when a node starts (and when its sequence table
//! is reset), so a node never mistakes its own messages for another's, and a
//! restarted node's sequence is not compared with its last life's. `seq`
//! counts the node's publishes per channel, from 1. The frame is the
//! server-to-client frame every local subscriber got, so a receiving node
//! queues the same bytes without encoding them again.

use crate::runtime::read_carried;

const MAGIC: &[u8; 4] = b"FRW1";
const FIXED: usize = 4 + 8 + 8 + 1;

/// A message from Redis, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub(crate) run: u64,
    pub(crate) seq: u64,
    pub(crate) node: &'a str,
    pub(crate) frame: &'a [u8],
}

/// The longest header: the fixed part and a node id of 255 bytes.
pub(crate) const MAX_HEADER: usize = FIXED + 255;

/// Writes the header that goes before a frame into `buf`; returns it.
pub(crate) fn header<'b>(run: u64, seq: u64, node: &str, buf: &'b mut [u8; MAX_HEADER]) -> &'b [u8] {
    // The node id was checked to fit when the bridge was configured.
    let node = &node.as_bytes()[..node.len().min(255)];
    buf[..4].copy_from_slice(MAGIC);
    buf[4..12].copy_from_slice(&run.to_be_bytes());
    buf[12..20].copy_from_slice(&seq.to_be_bytes());
    buf[20] = node.len() as u8;
    buf[FIXED..FIXED + node.len()].copy_from_slice(node);
    &buf[..FIXED + node.len()]
}

/// Wraps `frame` for publishing, header and frame in one buffer.
pub(crate) fn encode(run: u64, seq: u64, node: &str, frame: &[u8]) -> Vec<u8> {
    let mut buf = [0; MAX_HEADER];
    let mut out = header(run, seq, node, &mut buf).to_vec();
    out.extend_from_slice(frame);
    out
}

/// Reads an envelope and checks that it carries exactly one whole, final,
/// unmasked text or binary frame, or a Close for a topic's subscribers;
/// anything else is refused (`None`), so that nothing but a well-formed
/// message reaches a subscriber's socket.
pub(crate) fn decode(bytes: &[u8]) -> Option<Envelope<'_>> {
    if bytes.len() < FIXED || &bytes[..4] != MAGIC {
        return None;
    }
    let run = u64::from_be_bytes(bytes[4..12].try_into().ok()?);
    let seq = u64::from_be_bytes(bytes[12..20].try_into().ok()?);
    let node_len = usize::from(bytes[20]);
    let node = std::str::from_utf8(bytes.get(FIXED..FIXED + node_len)?).ok()?;
    let frame = &bytes[FIXED + node_len..];
    read_carried(frame).map(|_| Envelope { run, seq, node, frame })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode_frame;
    use crate::proto::OpCode;

    fn text_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        encode_frame(true, 0, OpCode::Text, payload, None, &mut frame);
        frame
    }

    #[test]
    fn an_envelope_reads_back() {
        let frame = text_frame(b"hello");
        let bytes = encode(7, 42, "node-a", &frame);
        assert_eq!(decode(&bytes), Some(Envelope { run: 7, seq: 42, node: "node-a", frame: &frame }));
    }

    #[test]
    fn anything_but_one_whole_data_frame_is_refused() {
        let frame = text_frame(b"hello");
        assert_eq!(decode(b"FRW1"), None);
        assert_eq!(decode(&encode(1, 1, "n", &frame[..frame.len() - 1])), None, "cut short");
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert_eq!(decode(&encode(1, 1, "n", &two)), None, "two frames");
        let mut masked = Vec::new();
        encode_frame(true, 0, OpCode::Text, b"x", Some([1, 2, 3, 4]), &mut masked);
        assert_eq!(decode(&encode(1, 1, "n", &masked)), None, "masked");
        let mut ping = Vec::new();
        encode_frame(true, 0, OpCode::Ping, b"x", None, &mut ping);
        assert_eq!(decode(&encode(1, 1, "n", &ping)), None, "a control frame");
        let mut bytes = encode(1, 1, "n", &frame);
        bytes[0] = b'X';
        assert_eq!(decode(&bytes), None, "another magic");
        for len in 0..bytes.len() {
            let _ = decode(&bytes[..len]);
        }
    }
}
