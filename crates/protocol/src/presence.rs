//! Hub presence (revision 1.4): every hub whose event subscription the broker has acknowledged says so on
//! [`HUB_PRESENCE_TOPIC`] once a second. Agents that have heard a hub since they started hold their outbox
//! after a reconnect until a hub is heard again on the new connection.
//!
//! Why: Mosquitto 2.0 restores a persistent session's *shared* subscription only when its member subscribes
//! again, and acknowledges (PUBACK) what agents publish in between while delivering it to no one. An agent
//! cannot tell that from a delivered event; a presence message it receives proves that some hub's subscription
//! was in place before the message was published, because the hub publishes it on the same connection after
//! the broker's SUBACK.

use serde::{Deserialize, Serialize};

/// `checkpoint/hubs/presence`: three levels, so no event filter (`checkpoint/+/+/+`) matches it.
pub const HUB_PRESENCE_TOPIC: &str = "checkpoint/hubs/presence";

/// How often a subscribed hub publishes its presence.
pub const HUB_PRESENCE_INTERVAL_MS: u64 = 1000;

/// Largest presence payload a receiver reads; anything bigger is not a presence message.
pub const MAX_HUB_PRESENCE_BYTES: usize = 512;

/// The payload on [`HUB_PRESENCE_TOPIC`], QoS 0, not retained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPresence {
    /// Presence schema version: 1.
    pub v: u32,
    /// The hub's MQTT client id, for logs.
    pub hub: String,
}

impl HubPresence {
    pub fn new(hub: &str) -> Self {
        Self {
            v: 1,
            hub: hub.to_string(),
        }
    }

    /// The payload if it is a presence message this version understands. Unknown fields are ignored, so a
    /// later revision may add some.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        if payload.len() > MAX_HUB_PRESENCE_BYTES {
            return None;
        }
        serde_json::from_slice::<Self>(payload)
            .ok()
            .filter(|p| p.v == 1 && valid_label(&p.hub))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A client id fit for a log line: 1-128 printable ASCII characters.
fn valid_label(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let p = HubPresence::new("hub-1");
        assert_eq!(HubPresence::parse(&p.to_bytes()), Some(p));
        assert!(HubPresence::parse(br#"{"v":1,"hub":"h","later":true}"#).is_some());
        for bad in [
            &br#"{"v":2,"hub":"h"}"#[..],
            br#"{"v":1}"#,
            br#"{"v":1,"hub":""}"#,
            br#"{"v":1,"hub":"a\u0000b"}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(
                HubPresence::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!(r#"{{"v":1,"hub":"{}"}}"#, "h".repeat(600));
        assert_eq!(HubPresence::parse(big.as_bytes()), None);
    }

    #[test]
    fn no_event_filter_matches_the_topic() {
        assert_eq!(HUB_PRESENCE_TOPIC.split('/').count(), 3);
        assert!(HUB_PRESENCE_TOPIC.starts_with(crate::TOPIC_ROOT));
    }
}
