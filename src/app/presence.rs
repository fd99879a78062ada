//! Presence: who is in each topic whose namespace keeps it (`presence =
//! true`), on this node: each subscriber's client id, its user (the token's
//! `sub`, when it showed one) and when it joined. Shared by every loop.
//!
//! A client id names a session on this node: the node's random prefix, the
//! loop and the session's slot (`3f9a0c1e-1-17.2`), unique for the node's life.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use super::pubsub_protocol::write_json_string;

/// One client in a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user id, when the session showed a token.
    pub user: Option<String>,
    /// When it joined, in seconds since 1970.
    pub since: u64,
}

/// Every presence topic's clients on this node.
#[derive(Debug, Default)]
pub struct Presence {
    topics: Mutex<HashMap<String, BTreeMap<String, Member>>>,
}

impl Presence {
    /// Records `client` in `topic`; returns its entry if it was not there yet.
    pub fn join(&self, topic: &str, client: &str, user: Option<&str>) -> Option<Member> {
        let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let clients = topics.entry(topic.to_owned()).or_default();
        if clients.contains_key(client) {
            return None;
        }
        let member = Member { user: user.map(str::to_owned), since };
        clients.insert(client.to_owned(), member.clone());
        Some(member)
    }

    /// Removes `client` from `topic`; returns the entry it had, if any.
    pub fn leave(&self, topic: &str, client: &str) -> Option<Member> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        let clients = topics.get_mut(topic)?;
        let left = clients.remove(client);
        if clients.is_empty() {
            topics.remove(topic);
        }
        left
    }

    /// The clients of `topic`, by client id.
    pub fn clients(&self, topic: &str) -> Vec<(String, Member)> {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics.get(topic).map(|c| c.iter().map(|(id, m)| (id.clone(), m.clone())).collect()).unwrap_or_default()
    }

    /// How many clients `topic` has.
    pub fn count(&self, topic: &str) -> usize {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics.get(topic).map_or(0, BTreeMap::len)
    }

    /// Entries held, all topics together.
    pub fn entries(&self) -> usize {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics.values().map(BTreeMap::len).sum()
    }
}

/// Appends `"clients":[{"client":"...","user":"...","since":N},...]` (`user` left out when unknown).
pub fn write_clients(out: &mut String, clients: &[(String, Member)]) {
    out.push_str(r#""clients":["#);
    for (i, (client, member)) in clients.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_client(out, client, member);
    }
    out.push(']');
}

/// One client as JSON: `{"client":"...","user":"...","since":N}`.
pub fn client_json(client: &str, member: &Member) -> String {
    let mut out = String::new();
    write_client(&mut out, client, member);
    out
}

fn write_client(out: &mut String, client: &str, member: &Member) {
    out.push_str(r#"{"client":"#);
    write_json_string(out, client);
    if let Some(user) = &member.user {
        out.push_str(r#","user":"#);
        write_json_string(out, user);
    }
    out.push_str(&format!(r#","since":{}}}"#, member.since));
}

/// Appends a join or leave event (`kind`): `{"type":"join","topic":"a","client":"...","user":"..."}`.
pub fn write_event(out: &mut String, kind: &str, topic: &str, client: &str, user: Option<&str>) {
    out.push_str(r#"{"type":""#);
    out.push_str(kind);
    out.push_str(r#"","topic":"#);
    write_json_string(out, topic);
    out.push_str(r#","client":"#);
    write_json_string(out, client);
    if let Some(user) = user {
        out.push_str(r#","user":"#);
        write_json_string(out, user);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_join_once_and_leave() {
        let presence = Presence::default();
        assert!(presence.join("t", "c1", Some("alice")).is_some());
        assert!(presence.join("t", "c1", Some("alice")).is_none(), "already there");
        assert!(presence.join("t", "c2", None).is_some());
        assert_eq!(presence.count("t"), 2);
        let clients = presence.clients("t");
        assert_eq!(clients.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
        assert_eq!(clients[0].1.user.as_deref(), Some("alice"));
        assert!(presence.leave("t", "c1").is_some());
        assert!(presence.leave("t", "c1").is_none());
        presence.leave("t", "c2");
        assert_eq!((presence.count("t"), presence.entries()), (0, 0));
        let mut out = String::from("{");
        write_clients(&mut out, &[("c\"".into(), Member { user: None, since: 7 })]);
        out.push('}');
        assert_eq!(out, r#"{"clients":[{"client":"c\"","since":7}]}"#);
    }
}
