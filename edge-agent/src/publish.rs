//! MQTT publishing: events leave the outbox in order, QoS 1, and are acknowledged back into it only when the
//! broker has them. Watchlist sync messages come in on the agent's own topic prefix.
//!
//! One thread owns the connection. On every (re)connect it starts a fresh session and replays everything the
//! outbox still holds, oldest first; a message the broker got but whose acknowledgement was lost is sent again
//! with the same event id, which is all QoS 1 promises and what the hub's idempotent ingest expects.
//!
//! A PUBACK says only that the broker has a message, not that a hub will get it: after a restart, Mosquitto 2.0
//! delivers nothing to the hubs' shared subscription until a hub subscribes again. So once the agent has heard a
//! hub's presence (`checkpoint/hubs/presence`, see [`HubGate`]), it holds the outbox after every reconnect until
//! it hears one again. Against hubs that never announce themselves (before protocol revision 1.4) nothing is held.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use checkpoint_protocol::presence::{HubPresence, HUB_PRESENCE_TOPIC};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};

/// `[mqtt]` in the site config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `host`, `port`, the login and TLS: the keys the hub's `[mqtt]` has too.
    #[serde(flatten)]
    pub connection: checkpoint_mqtt::Connection,
    /// Defaults to `<site>-<agent>`.
    pub client_id: Option<String>,
    pub keep_alive_s: u64,
    /// Unacknowledged messages on the wire at once.
    pub max_inflight: u16,
    /// Largest incoming message (watchlist sync), bytes.
    pub max_incoming_bytes: usize,
    /// On a clean stop, how long the agent keeps sending what is still in the outbox (its final counts and
    /// offline status) before it exits. Whatever is left stays in the outbox for the next start.
    pub shutdown_drain_s: f64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            connection: checkpoint_mqtt::Connection::default(),
            client_id: None,
            keep_alive_s: 15,
            max_inflight: 32,
            max_incoming_bytes: 16 << 20,
            shutdown_drain_s: 5.0,
        }
    }
}

/// What the publisher needs from the outbox.
pub trait EventQueue: Send + Sync {
    /// Up to `limit` unacknowledged records after `after` (all from the oldest when `None`), in order:
    /// (seq, topic, payload).
    fn pending_after(&self, after: Option<u64>, limit: usize) -> Vec<(u64, String, Vec<u8>)>;
    fn ack(&self, seq: u64);
}

/// Messages arriving on the agent's subscriptions (watchlist sync).
pub type IncomingHandler = Box<dyn Fn(&str, &[u8]) + Send + Sync>;

/// Live publisher state for metrics and tests.
#[derive(Default)]
pub struct PublisherStats {
    pub connected: AtomicBool,
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub reconnects: AtomicU64,
    /// Connected, holding the outbox until a hub is present (see [`HubGate`]).
    pub waiting_for_hub: AtomicBool,
}

pub struct Publisher {
    stop: Arc<AtomicBool>,
    /// Set with `stop` for a draining stop: keep sending until the outbox is empty or this instant passes.
    drain_until: Arc<Mutex<Option<Instant>>>,
    wake: Arc<tokio::sync::Notify>,
    pub stats: Arc<PublisherStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct Topics {
    pub prefix: String,
    pub status: String,
    pub subscribe: String,
    /// Where hubs announce they are subscribed.
    pub presence: String,
}

impl Topics {
    pub fn new(site: &str, agent: &str) -> Self {
        let prefix = format!("{}/{site}/{agent}", checkpoint_protocol::TOPIC_ROOT);
        Self {
            status: format!("{prefix}/agent_status"),
            subscribe: format!("{prefix}/watchlist/#"),
            presence: HUB_PRESENCE_TOPIC.to_string(),
            prefix,
        }
    }
}

impl Publisher {
    /// Starts the connection thread. `online` and `offline` are the retained `agent_status` payloads: the first
    /// is published on every connect, the second is the broker-held last will.
    pub fn start(
        cfg: MqttConfig,
        client_id: String,
        topics: Topics,
        online: Vec<u8>,
        offline: Vec<u8>,
        queue: Arc<dyn EventQueue>,
        incoming: IncomingHandler,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let drain_until = Arc::new(Mutex::new(None));
        let wake = Arc::new(tokio::sync::Notify::new());
        let stats = Arc::new(PublisherStats::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let link = Link {
            cfg,
            client_id,
            topics,
            online,
            offline,
            queue,
            incoming,
        };
        let (s, d, w, st) = (
            stop.clone(),
            drain_until.clone(),
            wake.clone(),
            stats.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || rt.block_on(run(link, s, d, w, st)))?;
        Ok(Self {
            stop,
            drain_until,
            wake,
            stats,
            thread: Some(thread),
        })
    }

    /// A handle producers use to wake the publisher when they add records.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Stops after sending what the outbox holds, waiting at most `grace` (and not at all while disconnected).
    pub fn stop_draining(&mut self, grace: Duration) {
        *self.drain_until.lock() = Some(Instant::now() + grace);
        self.stop();
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn options(
    cfg: &MqttConfig,
    client_id: &str,
    will_topic: &str,
    offline: &[u8],
) -> Result<MqttOptions, String> {
    let mut o = cfg
        .connection
        .options(client_id, Duration::from_secs(cfg.keep_alive_s.max(5)))
        .map_err(|e| e.to_string())?;
    // A fresh session each connect: the outbox, not the client library, decides what is re-sent.
    o.set_clean_session(true);
    o.set_inflight(cfg.max_inflight.max(1));
    o.set_max_packet_size(cfg.max_incoming_bytes.max(1024), 8 << 20);
    o.set_last_will(LastWill::new(
        will_topic,
        offline.to_vec(),
        QoS::AtLeastOnce,
        true,
    ));
    Ok(o)
}

/// Whether the outbox may flow on the current connection. No I/O: the connection loop reports connects and
/// presence messages, and asks.
///
/// An agent that has heard a hub since it started holds the outbox after each (re)connect until a hub's
/// presence arrives on the new connection: the hub publishes it only after the broker acknowledged its
/// subscription on that connection, so whatever the agent publishes afterwards has a subscriber. An agent
/// that has never heard one (hubs before revision 1.4, or none up since the agent started) is not held,
/// which is how agents behaved before.
#[derive(Debug, Default)]
pub struct HubGate {
    heard_since_start: bool,
    open: bool,
}

impl HubGate {
    /// A new connection: held if a hub was heard before.
    pub fn connected(&mut self) {
        self.open = !self.heard_since_start;
    }

    /// A hub's presence arrived on this connection. Returns whether this opened the gate.
    pub fn presence(&mut self) -> bool {
        self.heard_since_start = true;
        !std::mem::replace(&mut self.open, true)
    }

    pub fn is_open(&self) -> bool {
        self.open
    }
}

/// Everything the connection thread owns for its lifetime.
struct Link {
    cfg: MqttConfig,
    client_id: String,
    topics: Topics,
    online: Vec<u8>,
    offline: Vec<u8>,
    queue: Arc<dyn EventQueue>,
    incoming: IncomingHandler,
}

async fn run(
    link: Link,
    stop: Arc<AtomicBool>,
    drain_until: Arc<Mutex<Option<Instant>>>,
    wake: Arc<tokio::sync::Notify>,
    stats: Arc<PublisherStats>,
) {
    let Link {
        cfg,
        client_id,
        topics,
        online,
        offline,
        queue,
        incoming,
    } = link;
    let mut backoff = Duration::from_millis(250);
    // A refused TLS handshake or login repeats every few seconds until someone fixes the config: say it once
    // (and again when the reason changes), not at every retry.
    let mut last_error: Option<String> = None;
    let mut gate = HubGate::default();
    while !stop.load(Ordering::Relaxed) {
        let opts = match options(&cfg, &client_id, &topics.status, &offline) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "MQTT configuration unusable; events stay in the outbox");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        let (client, mut eventloop) = AsyncClient::new(opts, cfg.max_inflight as usize * 2 + 8);
        // Records handed to the client, in order, until the event loop says which packet id each got.
        let mut sent: VecDeque<Option<u64>> = VecDeque::new();
        let mut by_pkid: HashMap<u16, u64> = HashMap::new();
        let mut last_sent: Option<u64> = None;
        let mut connected = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                // Held for a hub counts as disconnected: nothing could be sent in the grace anyway.
                let busy = connected
                    && gate.is_open()
                    && (!by_pkid.is_empty()
                        || !sent.is_empty()
                        || !queue.pending_after(last_sent, 1).is_empty());
                let grace = drain_until.lock().is_some_and(|d| Instant::now() < d);
                if !(busy && grace) {
                    if busy {
                        tracing::warn!("stopping with events still unsent; they wait in the outbox for the next start");
                    }
                    let _ = client.try_disconnect();
                    return;
                }
            }
            let event = tokio::select! {
                ev = eventloop.poll() => Some(ev),
                _ = wake.notified() => None,
                _ = tokio::time::sleep(Duration::from_millis(250)) => None,
            };
            match event {
                Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    connected = true;
                    backoff = Duration::from_millis(250);
                    last_error = None;
                    stats.connected.store(true, Ordering::Relaxed);
                    let _ = client.try_subscribe(topics.subscribe.clone(), QoS::AtLeastOnce);
                    let _ = client.try_subscribe(topics.presence.clone(), QoS::AtMostOnce);
                    gate.connected();
                    stats
                        .waiting_for_hub
                        .store(!gate.is_open(), Ordering::Relaxed);
                    if gate.is_open() {
                        tracing::info!(host = %cfg.connection.host, port = cfg.connection.port, "MQTT connected; replaying the outbox");
                        announce_online(&client, &topics, &online, &mut sent);
                    } else {
                        tracing::info!(host = %cfg.connection.host, port = cfg.connection.port, "MQTT connected; holding the outbox until a hub is subscribed again");
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == topics.presence => {
                    match HubPresence::parse(&p.payload) {
                        None => {
                            tracing::debug!(
                                bytes = p.payload.len(),
                                "not a hub presence message; ignored"
                            )
                        }
                        Some(hub) if gate.presence() => {
                            stats.waiting_for_hub.store(false, Ordering::Relaxed);
                            tracing::info!(hub = %hub.hub, "hub present; replaying the outbox");
                            announce_online(&client, &topics, &online, &mut sent);
                        }
                        Some(_) => {}
                    }
                }
                Some(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(Some(seq)) = sent.pop_front() {
                        by_pkid.insert(pkid, seq);
                        stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some(seq) = by_pkid.remove(&ack.pkid) {
                        queue.ack(seq);
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(p)))) => incoming(&p.topic, &p.payload),
                Some(Ok(_)) | None => {}
                Some(Err(e)) => {
                    let reason = e.to_string();
                    if connected {
                        tracing::warn!(error = %reason, "MQTT connection lost; events wait in the outbox");
                    } else if last_error.as_deref() != Some(reason.as_str()) {
                        tracing::warn!(
                            error = %reason, host = %cfg.connection.host, port = cfg.connection.port,
                            "MQTT broker unreachable; events wait in the outbox, retrying"
                        );
                    } else {
                        tracing::debug!(error = %reason, "MQTT broker still unreachable");
                    }
                    last_error = Some(reason);
                    stats.connected.store(false, Ordering::Relaxed);
                    stats.waiting_for_hub.store(false, Ordering::Relaxed);
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
            }
            if connected && gate.is_open() {
                // Keep the window full: what is on the wire plus what the client still holds.
                let in_flight = by_pkid.len() + sent.len();
                let room = (cfg.max_inflight as usize).saturating_sub(in_flight);
                if room > 0 {
                    for (seq, topic, payload) in queue.pending_after(last_sent, room) {
                        if client
                            .try_publish(topic, QoS::AtLeastOnce, false, payload)
                            .is_err()
                        {
                            break;
                        }
                        sent.push_back(Some(seq));
                        last_sent = Some(seq);
                    }
                }
            }
        }
    }
}

/// The retained `online` status, published once the outbox may flow on a connection: a hub's shared
/// subscription is not sent retained messages, so one published before a hub is back would reach no hub.
fn announce_online(
    client: &AsyncClient,
    topics: &Topics,
    online: &[u8],
    sent: &mut VecDeque<Option<u64>>,
) {
    if client
        .try_publish(
            topics.status.clone(),
            QoS::AtLeastOnce,
            true,
            online.to_vec(),
        )
        .is_ok()
    {
        sent.push_back(None);
    }
}

#[cfg(test)]
mod tests {
    use super::HubGate;

    #[test]
    fn gate_holds_only_after_a_hub_was_heard() {
        let mut g = HubGate::default();
        // Never heard a hub: flows, before and after reconnects.
        g.connected();
        assert!(g.is_open());
        g.connected();
        assert!(g.is_open());
        // Heard one on an open connection: nothing to open.
        assert!(!g.presence());
        assert!(g.is_open());
        // From now on every reconnect holds until a presence arrives on it.
        g.connected();
        assert!(!g.is_open());
        assert!(g.presence());
        assert!(g.is_open());
        assert!(!g.presence(), "a second presence opens nothing");
        g.connected();
        assert!(!g.is_open());
    }
}
