//! The broker side of ingest: one task owns the MQTT event loop. On every connect it subscribes to the agents'
//! events; it hands each message to the writer; and while the broker has acknowledged that subscription on the
//! current connection it announces the hub's presence every second (`checkpoint_protocol::presence`), which is
//! what agents wait for after a reconnect before they send their outbox again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use checkpoint_protocol::presence::{HubPresence, HUB_PRESENCE_INTERVAL_MS, HUB_PRESENCE_TOPIC};
use checkpoint_protocol::TOPIC_ROOT;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Packet, Publish, QoS, Request,
    SubscribeReasonCode,
};
use tokio::sync::mpsc::UnboundedSender;

use super::IngestState;

/// The agents' events: through the shared subscription of `share_group` when set (several hubs: the broker
/// gives each event to one of them), else all of them. The persistent session keeps what it subscribed to
/// before, so a hub moved into a group drops its plain subscription, which would otherwise bring it every
/// event besides its share.
pub fn event_filter(share_group: &str) -> String {
    if share_group.is_empty() {
        format!("{TOPIC_ROOT}/+/+/+")
    } else {
        format!("$share/{share_group}/{TOPIC_ROOT}/+/+/+")
    }
}

async fn subscribe(client: &AsyncClient, share_group: &str) -> Result<(), rumqttc::ClientError> {
    if !share_group.is_empty() {
        client.unsubscribe(event_filter("")).await?;
    }
    client
        .subscribe(event_filter(share_group), QoS::AtLeastOnce)
        .await
}

pub(super) struct Reader {
    pub client: AsyncClient,
    pub share_group: String,
    /// The hub's MQTT client id, named in its presence messages.
    pub hub_id: String,
    pub state: Arc<IngestState>,
    pub tx: UnboundedSender<Publish>,
}

impl Reader {
    /// Reads the broker until the writer is gone, reconnecting for ever (the event loop does, on each poll).
    pub async fn run(self, mut eventloop: EventLoop) {
        let presence = HubPresence::new(&self.hub_id).to_bytes();
        let mut tick = tokio::time::interval(Duration::from_millis(HUB_PRESENCE_INTERVAL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut subscribed = false;
        let mut backoff = Duration::from_millis(250);
        loop {
            let event = {
                // The poll is never dropped before it completes: it may hold a request (an acknowledgement,
                // the subscription) taken off the client's queue and not yet written, which dropping would lose.
                let poll = eventloop.poll();
                tokio::pin!(poll);
                loop {
                    tokio::select! {
                        ev = &mut poll => break ev,
                        _ = tick.tick(), if subscribed => self.announce(&presence),
                    }
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    subscribed = false;
                    backoff = Duration::from_millis(250);
                    self.state.connected.store(true, Ordering::Relaxed);
                    tracing::info!("ingest connected to the broker");
                    if let Err(e) = subscribe(&self.client, &self.share_group).await {
                        tracing::error!(error = %e, "subscribing to agents' events");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    subscribed = ack
                        .return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                    if subscribed {
                        self.announce(&presence);
                    } else {
                        tracing::error!(
                            filter = %event_filter(&self.share_group),
                            "the broker refused the subscription to agents' events (its ACL must let this \
                             login read checkpoint/#); agents that know hubs hold their events until it is fixed"
                        );
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if self.tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    subscribed = false;
                    drop_stale_presence(&mut eventloop);
                    self.lost(&e);
                    tokio::time::sleep(backoff).await;
                    // Capped at 1 s: after a broker restart, agents hold their events until a hub has
                    // subscribed again.
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Presence is QoS 0: a lost one is replaced a second later.
    fn announce(&self, presence: &[u8]) {
        let _ = self.client.try_publish(
            HUB_PRESENCE_TOPIC,
            QoS::AtMostOnce,
            false,
            presence.to_vec(),
        );
    }

    fn lost(&self, e: &ConnectionError) {
        if self.state.connected.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "ingest lost the broker; reconnecting");
        } else {
            tracing::debug!(error = %e, "broker unreachable");
        }
    }
}

/// A presence queued before the connection failed would be sent first on the next one, ahead of the new
/// subscription: after a broker restart it would tell agents a hub is subscribed when none is yet. The event
/// loop moved everything still queued into `pending` when the poll failed, so removing it there is enough.
fn drop_stale_presence(eventloop: &mut EventLoop) {
    eventloop
        .pending
        .retain(|r| !matches!(r, Request::Publish(p) if p.topic == HUB_PRESENCE_TOPIC));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(event_filter(""), "checkpoint/+/+/+");
        assert_eq!(
            event_filter("checkpoint-hub"),
            "$share/checkpoint-hub/checkpoint/+/+/+"
        );
    }

    #[test]
    fn queued_presence_is_dropped_and_nothing_else() {
        let opts = rumqttc::MqttOptions::new("t", "127.0.0.1", 1);
        let (_client, mut eventloop) = AsyncClient::new(opts, 10);
        let publish =
            |topic: &str| Request::Publish(rumqttc::Publish::new(topic, QoS::AtLeastOnce, vec![1]));
        eventloop.pending.extend([
            publish(HUB_PRESENCE_TOPIC),
            publish("checkpoint/pier/a1/count"),
            publish(HUB_PRESENCE_TOPIC),
        ]);
        drop_stale_presence(&mut eventloop);
        assert_eq!(eventloop.pending.len(), 1);
        assert!(
            matches!(&eventloop.pending[0], Request::Publish(p) if p.topic == "checkpoint/pier/a1/count")
        );
    }
}
