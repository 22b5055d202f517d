//! MQTT publishing: events leave the outbox in order, QoS 1, and are acknowledged back into it only when the
//! broker has them. Watchlist sync messages come in on the agent's own topic prefix.
//!
//! One thread owns the connection. On every (re)connect it starts a fresh session and replays everything the
//! outbox still holds, oldest first; a message the broker got but whose acknowledgement was lost is sent again
//! with the same event id, which is all QoS 1 promises and what the hub's idempotent ingest expects.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use serde::{Deserialize, Serialize};

/// `[mqtt]` in the site config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// Defaults to `<site>-<agent>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// File holding the password, so it need not sit in the config.
    pub password_file: Option<PathBuf>,
    /// TLS with the system roots, or with `ca_file` when given.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
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
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            tls: false,
            ca_file: None,
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
}

impl Topics {
    pub fn new(site: &str, agent: &str) -> Self {
        let prefix = format!("{}/{site}/{agent}", checkpoint_protocol::TOPIC_ROOT);
        Self {
            status: format!("{prefix}/agent_status"),
            subscribe: format!("{prefix}/watchlist/#"),
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
    let mut o = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
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
    let password = match (&cfg.password, &cfg.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("mqtt.password_file {}: {e}", f.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    if let Some(user) = &cfg.username {
        o.set_credentials(user.clone(), password.unwrap_or_default());
    }
    if cfg.tls {
        let tls = match &cfg.ca_file {
            Some(ca) => TlsConfiguration::SimpleNative {
                ca: std::fs::read(ca).map_err(|e| format!("mqtt.ca_file {}: {e}", ca.display()))?,
                client_auth: None,
            },
            None => TlsConfiguration::Native,
        };
        o.set_transport(Transport::tls_with_config(tls));
    }
    Ok(o)
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
                let busy = connected
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
                    tracing::info!(host = %cfg.host, port = cfg.port, "MQTT connected; replaying the outbox");
                    let _ = client.try_subscribe(topics.subscribe.clone(), QoS::AtLeastOnce);
                    if client
                        .try_publish(
                            topics.status.clone(),
                            QoS::AtLeastOnce,
                            true,
                            online.clone(),
                        )
                        .is_ok()
                    {
                        sent.push_back(None);
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
                            error = %reason, host = %cfg.host, port = cfg.port,
                            "MQTT broker unreachable; events wait in the outbox, retrying"
                        );
                    } else {
                        tracing::debug!(error = %reason, "MQTT broker still unreachable");
                    }
                    last_error = Some(reason);
                    stats.connected.store(false, Ordering::Relaxed);
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    break;
                }
            }
            if connected {
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
