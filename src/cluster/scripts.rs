//! The two Lua scripts that keep records in Redis, how a call to one is
//! written, and how their answers are read.
//!
//! Per topic T, `{prefix}h:{T}` is a hash (`epoch`, `offset`) and
//! `{prefix}h:{T}:l` a list of `<offset> <data>` entries, the most recent
//! last. A script runs whole in Redis, so an offset is given once, the
//! record is kept, and it is published on the topic's channel in one step:
//! every node sees a topic's records in offset order.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::record::{epoch_str, parse_offset};
use super::resp::{encode_command, Value};
use crate::runtime::{Keep, Kept, Position, Read, Topic};

/// APPEND. KEYS: the hash, the list. ARGV: the channel, the data, the size
/// kept, the TTL in ms, an epoch for a topic without one, the message header.
/// Returns `{offset, epoch}`.
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  -- Nothing kept any more (expired, flushed): a new epoch, and a list left without its hash is stale.
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
  redis.call('DEL', KEYS[2])
end
local offset = string.format('%d', redis.call('HINCRBY', KEYS[1], 'offset', 1))
redis.call('RPUSH', KEYS[2], offset .. ' ' .. ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], ARGV[6] .. offset .. ' ' .. epoch .. ' ' .. ARGV[2])
return {tonumber(offset), epoch}
";

/// READ. KEYS: the hash, the list. ARGV: an epoch for a topic without one,
/// how long that position lasts in ms, the most entries returned, the
/// offset after which they are wanted (empty: the last ones), the most
/// bytes of entries past the first (from the oldest wanted on; without an
/// offset, from the newest back). Returns `{epoch, offset, entries}`.
///
/// The list holds consecutive offsets, the last one the hash's, so an
/// offset's entry is found by its index.
const READ: &str = r"
local limit = tonumber(ARGV[3])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  -- A subscriber's read (a position, or what follows one) keeps a position
  -- for the first record to follow, under the epoch it will keep; a read of
  -- the last records (a history request) leaves nothing behind.
  if limit == 0 or ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    redis.call('DEL', KEYS[2])
  else
    return {epoch, '0', {}}
  end
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
local max_bytes = tonumber(ARGV[5])
local entries = {}
local first = offset - redis.call('LLEN', KEYS[2]) + 1
local from = math.max(first, offset - limit + 1)
if ARGV[4] ~= '' then
  from = math.max(first, tonumber(ARGV[4]) + 1)
end
local to = math.min(offset, from + limit - 1)
if limit > 0 and to >= from then
  local got = redis.call('LRANGE', KEYS[2], from - first, to - first)
  local bytes = 0
  if ARGV[4] ~= '' then
    for _, entry in ipairs(got) do
      bytes = bytes + #entry
      if bytes > max_bytes and #entries > 0 then break end
      entries[#entries + 1] = entry
    end
  else
    local newest = {}
    for i = #got, 1, -1 do
      bytes = bytes + #got[i]
      if bytes > max_bytes and #newest > 0 then break end
      newest[#newest + 1] = got[i]
    end
    for i = #newest, 1, -1 do
      entries[#entries + 1] = newest[i]
    end
  end
end
return {epoch, string.format('%d', offset), entries}
";

/// JOIN. KEYS: the members' hash, their expiry set. ARGV: how long the
/// members last in ms, then member and value pairs. Each member is in the
/// hash with its value, and in the set scored with the moment it expires
/// (Redis's clock); both keys last that long too. Returns the pairs' count.
const JOIN: &str = r"
local time = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local expires = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + ttl
for i = 2, #ARGV - 1, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], expires, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return (#ARGV - 1) / 2
";

/// MEMBERS. KEYS: the members' hash, their expiry set. ARGV: the most
/// members listed (0: none). Drops the members whose time passed (their
/// node stopped refreshing them), and returns how many are left and the
/// first ones (by member id) as `{count, member, value, ...}`.
const MEMBERS: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, member in ipairs(gone) do
  redis.call('HDEL', KEYS[1], member)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local out = {redis.call('ZCARD', KEYS[2])}
local limit = tonumber(ARGV[1])
if limit > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, limit - 1)) do
    local value = redis.call('HGET', KEYS[1], member)
    if value then
      out[#out + 1] = member
      out[#out + 1] = value
    end
  end
end
return out
";

/// Entries one read returns at most: the RESP reader takes no longer array.
pub(crate) const MAX_READ: usize = super::resp::MAX_ARRAY;
/// The longest TTL sent (about 34 years): PEXPIRE refuses one that overflows Redis's clock.
const MAX_TTL_MS: u64 = 1 << 40;
/// The most records kept per topic: Lua writes larger numbers in a form LTRIM refuses.
const MAX_SIZE: usize = 1 << 31;

/// Which script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    /// Keeps a record and publishes it.
    Append,
    /// Reads what is kept of a topic.
    Read,
    /// Adds or refreshes a node's members of a topic.
    Join,
    /// Reads a topic's members on every node.
    Members,
}

/// The scripts' SHA1s in lowercase hex, as EVALSHA and SCRIPT LOAD name them.
static SHAS: LazyLock<[String; 4]> =
    LazyLock::new(|| [sha1_hex(APPEND), sha1_hex(READ), sha1_hex(JOIN), sha1_hex(MEMBERS)]);

fn sha1_hex(source: &str) -> String {
    Sha1::digest(source.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Script {
    /// All, in the order they are loaded.
    pub(crate) const ALL: [Script; 4] = [Script::Append, Script::Read, Script::Join, Script::Members];

    /// The Lua source.
    pub(crate) fn source(self) -> &'static str {
        match self {
            Script::Append => APPEND,
            Script::Read => READ,
            Script::Join => JOIN,
            Script::Members => MEMBERS,
        }
    }

    /// The SHA1 of the source, in lowercase hex.
    pub(crate) fn sha(self) -> &'static str {
        &SHAS[self as usize]
    }

    /// Appends `SCRIPT LOAD` of this script to `out`.
    pub(crate) fn encode_load(self, out: &mut Vec<u8>) {
        encode_command(&[b"SCRIPT", b"LOAD", self.source().as_bytes()], out);
    }
}

/// One call of a script, kept until its answer comes, so that a `NOSCRIPT`
/// answer to EVALSHA can be sent again as EVAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScriptCall {
    pub(crate) script: Script,
    /// KEYS (two), then ARGV.
    args: Vec<Vec<u8>>,
    /// Sent by SHA (EVALSHA); false once sent with its source (EVAL).
    pub(crate) by_sha: bool,
}

/// The topic's hash and list keys.
fn keys(prefix: &str, topic: &Topic) -> [Vec<u8>; 2] {
    [format!("{prefix}h:{topic}").into_bytes(), format!("{prefix}h:{topic}:l").into_bytes()]
}

/// A topic's members' hash and expiry set keys.
pub(crate) fn member_keys(prefix: &str, topic: &str) -> [Vec<u8>; 2] {
    [format!("{prefix}p:{topic}").into_bytes(), format!("{prefix}p:{topic}:z").into_bytes()]
}

/// The MEMBERS script's answer, `{count, member, value, ...}`: the members
/// listed, by member id, and their number; `None` for another shape.
pub(crate) fn members(value: &Value) -> Option<(Vec<(String, String)>, usize)> {
    let Value::Array(Some(items)) = value else { return None };
    let (Value::Integer(count), items) = items.split_first()? else { return None };
    let count = usize::try_from(*count).ok()?;
    let mut members: Vec<(String, String)> = items
        .chunks(2)
        .filter_map(|pair| match pair {
            [member, value] => Some((
                String::from_utf8(member.bytes()?.to_vec()).ok()?,
                String::from_utf8(value.bytes()?.to_vec()).ok()?,
            )),
            _ => None,
        })
        .collect();
    members.sort_unstable();
    Some((members, count))
}

/// A duration in whole milliseconds, in decimal: at least 1, at most [`MAX_TTL_MS`].
fn millis(ttl: Duration) -> Vec<u8> {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MS).to_string().into_bytes()
}

impl ScriptCall {
    /// An APPEND of `data` to `topic`, published on `channel` after `header`.
    pub(crate) fn append(
        prefix: &str,
        topic: &Topic,
        channel: Vec<u8>,
        data: Vec<u8>,
        keep: Keep,
        epoch: &str,
        header: &[u8],
    ) -> Self {
        let [hash, list] = keys(prefix, topic);
        let size = keep.size.clamp(1, MAX_SIZE).to_string().into_bytes();
        let args = vec![hash, list, channel, data, size, millis(keep.ttl), epoch.as_bytes().to_vec(), header.to_vec()];
        Self { script: Script::Append, args, by_sha: true }
    }

    /// A READ of `read`, at most [`MAX_READ`] entries.
    pub(crate) fn read(prefix: &str, read: &Read, epoch: &str) -> Self {
        let [hash, list] = keys(prefix, &read.topic);
        let limit = read.limit.min(MAX_READ).to_string().into_bytes();
        let after = read.after.map(|a| a.to_string().into_bytes()).unwrap_or_default();
        // Lua's numbers are doubles: past 2^53 a byte count means nothing more.
        let max_bytes = u64::try_from(read.max_bytes).unwrap_or(u64::MAX).min(1 << 53).to_string().into_bytes();
        let args = vec![hash, list, epoch.as_bytes().to_vec(), millis(read.ttl), limit, after, max_bytes];
        Self { script: Script::Read, args, by_sha: true }
    }

    /// A JOIN of `members` (`(member, value)`) to `topic`, lasting `ttl`.
    pub(crate) fn join<'m>(
        prefix: &str,
        topic: &str,
        members: impl Iterator<Item = (&'m str, &'m str)>,
        ttl: Duration,
    ) -> Self {
        let [hash, set] = member_keys(prefix, topic);
        let mut args = vec![hash, set, millis(ttl)];
        for (member, value) in members {
            args.push(member.as_bytes().to_vec());
            args.push(value.as_bytes().to_vec());
        }
        Self { script: Script::Join, args, by_sha: true }
    }

    /// A MEMBERS read of `topic`, listing at most `limit` (held to what the reader takes).
    pub(crate) fn members(prefix: &str, topic: &str, limit: usize) -> Self {
        let [hash, set] = member_keys(prefix, topic);
        let limit = limit.min(MAX_READ / 2 - 1).to_string().into_bytes();
        Self { script: Script::Members, args: vec![hash, set, limit], by_sha: true }
    }

    /// Appends the call to `out`: EVALSHA, or EVAL after a `NOSCRIPT`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let (command, script): (&[u8], &[u8]) = if self.by_sha {
            (b"EVALSHA", self.script.sha().as_bytes())
        } else {
            (b"EVAL", self.script.source().as_bytes())
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(3 + self.args.len());
        parts.extend([command, script, b"2"]);
        parts.extend(self.args.iter().map(Vec::as_slice));
        encode_command(&parts, out);
    }

    /// The bytes the call holds while it waits for its answer.
    pub(crate) fn held(&self) -> usize {
        self.args.iter().map(Vec::len).sum()
    }
}

/// Whether an error reply says the script is not in Redis's cache.
pub(crate) fn is_noscript(message: &[u8]) -> bool {
    message.starts_with(b"NOSCRIPT")
}

/// The APPEND script's answer, `{offset, epoch}`: the record's position.
pub(crate) fn appended(value: &Value) -> Option<Position> {
    let Value::Array(Some(items)) = value else { return None };
    let [Value::Integer(offset), epoch] = items.as_slice() else { return None };
    let offset = u64::try_from(*offset).ok().filter(|o| *o > 0)?;
    let epoch = epoch_str(epoch.bytes()?).filter(|e| !e.is_empty())?;
    Some(Position { offset, epoch: epoch.to_owned() })
}

/// The READ script's answer, `{epoch, offset, entries}`. An entry whose
/// offset does not parse is skipped and counted in `invalid`; an answer of
/// another shape is `None`.
pub(crate) fn kept(value: &Value, invalid: &mut u64) -> Option<Kept> {
    let Value::Array(Some(items)) = value else { return None };
    let [epoch, offset, Value::Array(Some(entries))] = items.as_slice() else { return None };
    let epoch = epoch_str(epoch.bytes()?).filter(|e| !e.is_empty())?;
    let offset = parse_offset(offset.bytes()?)?;
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let record = entry.bytes().and_then(|bytes| {
            let space = bytes.iter().position(|&b| b == b' ')?;
            let at = parse_offset(&bytes[..space]).filter(|at| *at > 0)?;
            Some((at, Arc::<[u8]>::from(&bytes[space + 1..])))
        });
        match record {
            Some(record) => records.push(record),
            None => *invalid += 1,
        }
    }
    Some(Kept { position: Position { offset, epoch: epoch.to_owned() }, records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::resp::Reader;

    fn bulk(bytes: &[u8]) -> Value {
        Value::Bulk(Some(bytes.to_vec()))
    }

    #[test]
    fn shas_are_the_sources_sha1_in_lowercase_hex() {
        for script in Script::ALL {
            let sha = script.sha();
            assert_eq!(sha.len(), 40);
            assert!(sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{sha}");
            assert_eq!(sha, sha1_hex(script.source()));
        }
        assert_ne!(Script::Append.sha(), Script::Read.sha());
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn a_call_goes_by_sha_then_by_source() {
        let mut read = Read::last(Topic::from("stream/x"), 100_000, Duration::from_secs(60));
        read.after = Some(41);
        read.max_bytes = 4096;
        let mut call = ScriptCall::read("p:", &read, "0a1b2c3d");
        let mut out = Vec::new();
        call.encode(&mut out);
        let sha = Script::Read.sha();
        let expected = format!(
            "*10\r\n$7\r\nEVALSHA\r\n$40\r\n{sha}\r\n$1\r\n2\r\n$12\r\np:h:stream/x\r\n$14\r\np:h:stream/x:l\r\n\
             $8\r\n0a1b2c3d\r\n$5\r\n60000\r\n$5\r\n65536\r\n$2\r\n41\r\n$4\r\n4096\r\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected, "the limit is held to what the reader takes");
        call.by_sha = false;
        let mut out = Vec::new();
        call.encode(&mut out);
        let mut reader = Reader::new(1 << 20);
        reader.feed(&out);
        let Some(Value::Array(Some(parts))) = reader.next_value().unwrap() else { panic!("not a command") };
        assert_eq!(parts[0], bulk(b"EVAL"));
        assert_eq!(parts[1], bulk(READ.as_bytes()));
        assert_eq!(parts.len(), 10);

        let keep = Keep { size: 0, ttl: Duration::ZERO };
        let call = ScriptCall::append("p:", &Topic::from("t"), b"p:t:t".to_vec(), b"data".to_vec(), keep, "e", b"H");
        assert_eq!(call.args[4..6], [b"1".to_vec(), b"1".to_vec()], "a size and a TTL of at least 1");
        assert_eq!(call.held(), "p:h:tp:h:t:lp:t:tdata11eH".len());
        let keep = Keep { size: usize::MAX, ttl: Duration::MAX };
        let call = ScriptCall::append("p:", &Topic::from("t"), vec![], vec![], keep, "e", b"H");
        assert_eq!(call.args[4..6], [b"2147483648".to_vec(), b"1099511627776".to_vec()], "numbers Redis takes");
    }

    #[test]
    fn answers_read_back() {
        let answer = Value::Array(Some(vec![Value::Integer(7), bulk(b"0a1b2c3d")]));
        assert_eq!(appended(&answer), Some(Position { offset: 7, epoch: "0a1b2c3d".into() }));
        assert_eq!(appended(&Value::Array(Some(vec![Value::Integer(0), bulk(b"e")]))), None);
        assert_eq!(appended(&Value::Simple(b"OK".to_vec())), None);

        let entries = vec![bulk(b"3 three"), bulk(b"x bad"), bulk(b"4 "), bulk(b"nospace"), Value::Integer(5)];
        let answer = Value::Array(Some(vec![bulk(b"ep"), bulk(b"4"), Value::Array(Some(entries))]));
        let mut invalid = 0;
        let kept = kept(&answer, &mut invalid).unwrap();
        assert_eq!(kept.position, Position { offset: 4, epoch: "ep".into() });
        let records: Vec<(u64, &[u8])> = kept.records.iter().map(|(o, d)| (*o, &d[..])).collect();
        assert_eq!(records, [(3, &b"three"[..]), (4, &b""[..])]);
        assert_eq!(invalid, 3);

        let empty = Value::Array(Some(vec![bulk(b"ep"), bulk(b"0"), Value::Array(Some(vec![]))]));
        assert_eq!(super::kept(&empty, &mut invalid).unwrap().position.offset, 0);
        for bad in [
            Value::Array(Some(vec![bulk(b""), bulk(b"0"), Value::Array(Some(vec![]))])),
            Value::Array(Some(vec![bulk(b"ep"), bulk(b"-1"), Value::Array(Some(vec![]))])),
            Value::Array(Some(vec![bulk(b"ep"), bulk(b"0")])),
            Value::Error(b"ERR".to_vec()),
        ] {
            assert_eq!(super::kept(&bad, &mut invalid), None, "{bad:?}");
        }
        let listed = vec![Value::Integer(5), bulk(b"b"), bulk(b"{}"), bulk(b"a"), bulk(b"{\"x\":1}"), bulk(b"odd")];
        let (read, count) = members(&Value::Array(Some(listed))).unwrap();
        assert_eq!(read, [("a".to_owned(), "{\"x\":1}".to_owned()), ("b".to_owned(), "{}".to_owned())]);
        assert_eq!(count, 5);
        assert_eq!(members(&Value::Error(b"ERR".to_vec())), None);
        let call = ScriptCall::join("p:", "t", [("m", "v")].into_iter(), Duration::from_secs(15));
        assert_eq!(
            call.args,
            [b"p:p:t".to_vec(), b"p:p:t:z".to_vec(), b"15000".to_vec(), b"m".to_vec(), b"v".to_vec()]
        );
        assert!(is_noscript(b"NOSCRIPT No matching script. Please use EVAL."));
        assert!(!is_noscript(b"ERR x"));
    }
}
