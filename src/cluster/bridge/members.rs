//! The bridge's side of members (the application's presence): this node's
//! members of each topic, written to Redis as they change and refreshed
//! every third of [`ClusterConfig::presence_ttl`](crate::cluster::ClusterConfig::presence_ttl),
//! so that the members of a node that stopped (killed, cut off) expire
//! within that time; and reads of a topic's members on every node.
//!
//! Per topic T, `{prefix}p:{T}` is a hash of member and value, and
//! `{prefix}p:{T}:z` a sorted set of member and the moment (Redis's clock,
//! in ms) it expires. A reader drops the expired ones (the MEMBERS script).
//! The node keeps its own members, so that a Redis that restarted empty has
//! them again at the next refresh.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::records::Expected;
use super::{Bridge, Link, PUBLISHER};
use crate::cluster::resp::encode_command_parts;
use crate::cluster::scripts::{member_keys, ScriptCall};
use crate::runtime::{MemberChange, MembersAnswer, MembersRequest, Topic};

/// Members written in one JOIN call at most.
const JOIN_BATCH: usize = 256;

/// This node's members, and when they are next refreshed.
#[derive(Debug, Default)]
pub(super) struct Membership {
    own: HashMap<Topic, BTreeMap<String, String>>,
    refresh_at: Option<Instant>,
}

impl Membership {
    /// When the members are next refreshed, if there are any.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.refresh_at.filter(|_| !self.own.is_empty())
    }

    /// Refresh at once (a new publishing connection: Redis may have lost them).
    pub(super) fn refresh_now(&mut self, now: Instant) {
        self.refresh_at = Some(now);
    }
}

impl Bridge {
    /// A change to this node's members: kept, and written to Redis when the
    /// publishing connection is up (else the next refresh writes it).
    pub(super) fn forward_members(&mut self, change: MemberChange) {
        match change {
            MemberChange::Add { topic, member, value } => {
                let call = ScriptCall::join(
                    &self.config.prefix,
                    &topic,
                    std::iter::once((member.as_str(), value.as_str())),
                    self.config.presence_ttl,
                );
                self.membership.own.entry(topic).or_default().insert(member, value);
                if self.publisher_has_room() {
                    self.write_call(Expected::Join(call));
                }
            }
            MemberChange::Remove { topic, member } => {
                if let Some(members) = self.membership.own.get_mut(&topic) {
                    members.remove(&member);
                    if members.is_empty() {
                        self.membership.own.remove(&topic);
                    }
                }
                if !self.publisher_has_room() {
                    // Its entry expires on its own within the TTL.
                    return;
                }
                let [hash, set] = member_keys(&self.config.prefix, &topic);
                let Link::Up(conn) = &mut self.links[PUBLISHER].link else { return };
                encode_command_parts(&[&[b"HDEL"], &[&hash], &[member.as_bytes()]], &mut conn.out);
                conn.expected.push_back(Expected::Tolerated);
                encode_command_parts(&[&[b"ZREM"], &[&set], &[member.as_bytes()]], &mut conn.out);
                conn.expected.push_back(Expected::Tolerated);
            }
        }
    }

    /// Writes every member of this node again with a new expiry, when it is time.
    pub(super) fn refresh_members(&mut self, now: Instant) {
        if self.membership.refresh_at.is_some_and(|at| now < at) || !matches!(self.links[PUBLISHER].link, Link::Up(_)) {
            return;
        }
        self.membership.refresh_at = Some(now + self.config.presence_ttl / 3);
        let mut calls = Vec::new();
        for (topic, members) in &self.membership.own {
            let pairs: Vec<(&str, &str)> = members.iter().map(|(m, v)| (m.as_str(), v.as_str())).collect();
            for batch in pairs.chunks(JOIN_BATCH) {
                let batch = batch.iter().copied();
                calls.push(ScriptCall::join(&self.config.prefix, topic, batch, self.config.presence_ttl));
            }
        }
        for call in calls {
            self.write_call(Expected::Join(call));
        }
    }

    /// A loop's read of a topic's members: a MEMBERS call, or an answer of
    /// nothing at once when the publishing connection cannot take it.
    pub(super) fn read_members(&mut self, request: MembersRequest) {
        let MembersRequest { loop_index, ticket, topic, limit } = request;
        if !self.publisher_has_room() {
            return self.answer_members(loop_index, ticket, None);
        }
        let call = ScriptCall::members(&self.config.prefix, &topic, limit);
        self.write_call(Expected::Members { call, loop_index, ticket });
    }

    pub(super) fn answer_members(
        &self,
        loop_index: usize,
        ticket: u64,
        members: Option<(Vec<(String, String)>, usize)>,
    ) {
        if !self.inlet.answer_members(loop_index, MembersAnswer { ticket, members }) {
            log::debug!("cluster: loop {loop_index} could not take the answer to its presence read {ticket}");
        }
    }
}
