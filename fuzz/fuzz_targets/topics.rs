//! Subscribe, unsubscribe, publish and disconnect in fuzz-chosen order against
//! a loop's topic table, checked against a plain model: no subscription
//! outlives its session, a topic with no subscribers leaves no trace, and the
//! first and last subscribers of a topic are reported as such.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use ferrows::runtime::Topics;
use libfuzzer_sys::fuzz_target;

const TOPICS: [&str; 6] = ["a", "b", "news", "room/x", "topic/é", ""];

fuzz_target!(|data: &[u8]| {
    let mut table: Topics<u8> = Topics::default();
    let mut model: BTreeMap<&str, BTreeSet<u8>> = BTreeMap::new();
    for op in data.chunks_exact(2) {
        let session = op[1] & 0x0f;
        let topic = TOPICS[usize::from(op[1] >> 4) % TOPICS.len()];
        match op[0] % 4 {
            0 => {
                let first = table.subscribe(session, topic);
                let set = model.entry(topic).or_default();
                let was_empty = set.is_empty();
                let added = set.insert(session);
                assert_eq!(first.is_some(), added, "a new subscription of {topic:?}");
                assert_eq!(first.is_some_and(|(_, first)| first), was_empty && added, "first subscriber of {topic:?}");
            }
            1 => {
                let last = table.unsubscribe(session, topic);
                let removed = model.get_mut(topic).is_some_and(|s| s.remove(&session));
                let now_empty = model.get(topic).is_some_and(BTreeSet::is_empty);
                if now_empty {
                    model.remove(topic);
                }
                assert_eq!(last.is_some(), removed, "an ended subscription of {topic:?}");
                assert_eq!(last.is_some_and(|(_, last)| last), removed && now_empty, "last subscriber of {topic:?}");
            }
            2 => {
                // A publish reaches exactly the current subscribers.
                let got: BTreeSet<u8> = table.subscribers(topic).collect();
                assert_eq!(got, model.get(topic).cloned().unwrap_or_default());
            }
            _ => {
                let left = table.remove_session(session);
                let emptied: BTreeSet<String> =
                    left.iter().filter(|(_, last)| *last).map(|(t, _)| t.to_string()).collect();
                let mut expected = BTreeSet::new();
                model.retain(|t, set| {
                    set.remove(&session);
                    if set.is_empty() {
                        expected.insert((*t).to_owned());
                        false
                    } else {
                        true
                    }
                });
                // Exactly the topics the session was the last subscriber of are reported.
                assert_eq!(emptied, expected);
                assert!(table.of_session(session).is_empty(), "no subscription outlives its session");
                for t in TOPICS {
                    assert!(table.subscribers(t).all(|s| s != session));
                }
            }
        }
        let subscriptions: usize = model.values().map(BTreeSet::len).sum();
        assert_eq!(table.counts(), (model.len(), subscriptions));
    }
});
