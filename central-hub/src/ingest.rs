//! Ingest: every agent's events from the broker into the database, exactly once in effect.
//!
//! The hub holds a persistent MQTT session (clean session off) and acknowledges each message only after the
//! transaction holding it has committed. A hub killed mid-batch therefore loses nothing (the broker
//! redelivers what was not acknowledged) and duplicates nothing (events are keyed by their id and a
//! redelivered one is a no-op, its effects included). Messages are validated with the protocol crate; a
//! refused one is counted, logged and recorded in `ingest_rejects`, then acknowledged so it cannot block
//! the session.
//!
//! Owns `events` and `ingest_rejects`. What a new event changes besides is in `apply` (one function per
//! event kind, calling the modules that own those tables); this file checks, stores and acknowledges.

mod apply;
mod reader;

pub use reader::event_filter;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use checkpoint_protocol::{Envelope, EventKind, TOPIC_ROOT};
use rumqttc::{AsyncClient, MqttOptions, Publish};
use tokio::sync::mpsc;

use crate::config::{HubConfig, IngestConfig};
use crate::db::{ms, now_ms, Db, DbError};
use crate::live::Live;
use crate::metrics::Metrics;

/// Why a message was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Reject {
    #[error("topic {0:?} is not checkpoint/<site>/<agent>/<kind>")]
    Topic(String),
    #[error("payload is {size} bytes, over the {max}-byte limit")]
    Oversized { size: usize, max: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("envelope is from {site}/{agent} ({kind}) but was published on {topic}: an agent may publish only as itself")]
    Mismatch {
        site: String,
        agent: String,
        kind: String,
        topic: String,
    },
    #[error("alert snapshot is not valid base64 JPEG: {0}")]
    Snapshot(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error(
        "{site}/{agent} is not a registered agent (no active account: `central-hub agent add`)"
    )]
    UnknownAgent { site: String, agent: String },
}

impl Reject {
    pub fn label(&self) -> &'static str {
        match self {
            Reject::Topic(_) => "topic",
            Reject::Oversized { .. } => "oversized",
            Reject::Invalid(_) => "invalid",
            Reject::Mismatch { .. } => "mismatch",
            Reject::Snapshot(_) => "snapshot",
            Reject::OutOfRange(_) => "out_of_range",
            Reject::UnknownAgent { .. } => "unknown_agent",
        }
    }
}

/// An event that passed validation, ready to store.
#[derive(Clone)]
pub struct Checked {
    pub env: Envelope,
    /// The alert snapshot, decoded, taken out of the stored payload.
    pub snapshot: Option<Vec<u8>>,
    /// The JSON kept in `events.payload` (without the snapshot).
    pub stored_json: String,
}

/// Validates one message. Pure, so it is tested without a broker.
pub fn check(topic: &str, payload: &[u8], max_bytes: usize) -> Result<Checked, Reject> {
    let parts: Vec<&str> = topic.split('/').collect();
    let [root, site, agent, kind] = parts.as_slice() else {
        return Err(Reject::Topic(truncate(topic, 200)));
    };
    if *root != TOPIC_ROOT {
        return Err(Reject::Topic(truncate(topic, 200)));
    }
    if payload.len() > max_bytes {
        return Err(Reject::Oversized {
            size: payload.len(),
            max: max_bytes,
        });
    }
    let mut env =
        Envelope::from_json(payload).map_err(|e| Reject::Invalid(truncate(&e.to_string(), 500)))?;
    if env.site != *site || env.agent != *agent || env.kind() != *kind {
        return Err(Reject::Mismatch {
            site: truncate(&env.site, 64),
            agent: truncate(&env.agent, 64),
            kind: env.kind().into(),
            topic: truncate(topic, 200),
        });
    }
    env.event
        .check_ranges()
        .map_err(|e| Reject::OutOfRange(truncate(&e, 300)))?;
    let mut snapshot = None;
    if let EventKind::WatchlistMatch(m) = &mut env.event {
        if !m.snapshot_jpeg_b64.is_empty() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(m.snapshot_jpeg_b64.as_bytes())
                .map_err(|e| Reject::Snapshot(e.to_string()))?;
            if !bytes.starts_with(&[0xFF, 0xD8]) {
                return Err(Reject::Snapshot("not a JPEG (no SOI marker)".into()));
            }
            snapshot = Some(bytes);
            m.snapshot_jpeg_b64.clear();
        }
    }
    let stored_json = env.to_json();
    Ok(Checked {
        env,
        snapshot,
        stored_json,
    })
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Stores one batch in one transaction and returns, per event, whether it was new (a redelivered event, or
/// the same event twice in the batch, is not).
///
/// Set-based: the events go in with one statement, and each table the new ones change gets one statement
/// per batch (`apply`), so the cost per event is a row, not a round trip. On PostgreSQL the batch's live
/// hints are sent in the same transaction (`crate::live`), delivered to every hub when it commits.
pub async fn store_batch(
    db: &Db,
    events: &[Checked],
    utc_offset_hours: i8,
) -> Result<Vec<bool>, DbError> {
    let now = now_ms();
    let ids: Vec<String> = events.iter().map(|c| c.env.id.to_string()).collect();
    let mut tx = db.begin_write().await?;
    let inserted = insert_events(&mut tx, db.backend, events, &ids, now).await?;
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let fresh: Vec<bool> = ids
        .iter()
        .map(|id| inserted.contains(id) && seen.insert(id.as_str()))
        .collect();
    let new: Vec<&Checked> = events
        .iter()
        .zip(&fresh)
        .filter(|(_, f)| **f)
        .map(|(c, _)| c)
        .collect();
    apply::apply_batch(&mut tx, db.backend, &new, now, utc_offset_hours).await?;
    crate::live::notify_in(&mut tx, db, new.iter().map(|c| hint_of(&c.env))).await?;
    tx.commit().await?;
    Ok(fresh)
}

/// Inserts the events not stored yet; returns the ids it inserted.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: crate::db::Backend,
    events: &[Checked],
    ids: &[String],
    now: i64,
) -> Result<std::collections::HashSet<String>, DbError> {
    use crate::db::Col::{Int, Text};
    if events.is_empty() {
        return Ok(Default::default());
    }
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        site: &'a str,
        agent: &'a str,
        kind: &'a str,
        ts_ms: i64,
        payload: &'a str,
    }
    let rows: Vec<Row> = events
        .iter()
        .zip(ids)
        .map(|(c, id)| Row {
            id,
            site: &c.env.site,
            agent: &c.env.agent,
            kind: c.env.kind(),
            ts_ms: ms(c.env.ts),
            payload: &c.stored_json,
        })
        .collect();
    let source = crate::db::json_rows(
        backend,
        1,
        &[
            ("id", Text),
            ("site", Text),
            ("agent", Text),
            ("kind", Text),
            ("ts_ms", Int),
            ("payload", Text),
        ],
    );
    // Built from constants and column names only; the rows travel as the bound parameter.
    let sql = format!(
        "INSERT INTO events (id, site, agent, kind, ts_ms, received_ms, payload) \
         SELECT id, site, agent, kind, ts_ms, $2, payload FROM ({source}) AS r WHERE true \
         ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::json_param(&rows)?)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?;
    Ok(ids.into_iter().collect())
}

async fn record_reject(db: &Db, topic: &str, reason: &Reject, bytes: usize) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO ingest_rejects (id, topic, reason, bytes, received_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(truncate(topic, 256))
    .bind(truncate(&reason.to_string(), 1000))
    .bind(bytes as i64)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Deletes the raw events and the refused-message records from before `before_ms` (retention); returns how
/// many events were deleted.
pub async fn prune(db: &Db, before_ms: i64) -> Result<u64, DbError> {
    let events = sqlx::query("DELETE FROM events WHERE ts_ms < $1")
        .bind(before_ms)
        .execute(&db.pool)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM ingest_rejects WHERE received_ms < $1")
        .bind(before_ms)
        .execute(&db.pool)
        .await?;
    Ok(events)
}

/// Broker connection options for the hub's ingest session.
pub fn mqtt_options(cfg: &HubConfig) -> anyhow::Result<MqttOptions> {
    let (host, port) = if cfg.mqtt.embedded {
        let addr: std::net::SocketAddr = cfg.mqtt.listen.parse()?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        (host, addr.port())
    } else {
        (cfg.mqtt.connection.host.clone(), cfg.mqtt.connection.port)
    };
    let endpoint = checkpoint_mqtt::Connection {
        host,
        port,
        ..cfg.mqtt.connection.clone()
    };
    let mut o = endpoint.options(&cfg.mqtt.client_id, Duration::from_secs(15))?;
    // Persistent session, manual acks: see the module documentation.
    o.set_clean_session(false);
    o.set_manual_acks(true);
    // Bigger than any accepted event, so an oversized one reaches `check` and is refused with a reason
    // instead of breaking the connection.
    let limit = (cfg.mqtt.max_event_bytes * 4).max(16 << 20);
    o.set_max_packet_size(limit, limit);
    o.set_inflight(200);
    Ok(o)
}

/// Connection state other parts of the hub report (health, metrics).
#[derive(Default)]
pub struct IngestState {
    pub connected: std::sync::atomic::AtomicBool,
    /// What just happened, for the web UI's live stream (`GET /api/live`). Nobody listening is fine.
    pub live: crate::live::LiveBus,
}

/// The live hint for a new event.
fn hint_of(env: &Envelope) -> Live {
    let kind = match &env.event {
        EventKind::WatchlistMatch(_) => "alert",
        EventKind::Count(_) | EventKind::LineCrossing(_) => "count",
        EventKind::CameraStatus(_) => "camera",
        _ => "agent",
    };
    Live {
        kind,
        site: env.site.clone(),
        agent: env.agent.clone(),
        id: (kind == "alert").then(|| env.id.to_string()),
    }
}

/// The agents allowed to send events: the active agent accounts, re-read every few seconds. With no agent
/// account at all (an external broker that confines clients itself and no accounts made here), every agent
/// the broker lets through is accepted, as before accounts existed.
pub struct Registered {
    agents: std::collections::HashSet<String>,
    read: Option<std::time::Instant>,
}

const REGISTERED_FOR: Duration = Duration::from_secs(3);

impl Registered {
    pub fn new() -> Self {
        Self {
            agents: Default::default(),
            read: None,
        }
    }

    async fn refresh(&mut self, db: &Db) {
        if self.read.is_some_and(|at| at.elapsed() < REGISTERED_FOR) {
            return;
        }
        match crate::broker::agent_usernames(db, true).await {
            Ok(names) => {
                self.agents = names.into_iter().collect();
                self.read = Some(std::time::Instant::now());
            }
            // Keep the last list: refusing every agent because of a database hiccup would lose nothing (the
            // broker redelivers) but stall everything.
            Err(e) => tracing::error!(error = %e, "reading the agent accounts for ingest"),
        }
    }

    /// Whether `site`/`agent` may send events.
    pub fn allows(&self, site: &str, agent: &str) -> bool {
        self.agents.is_empty()
            || self
                .agents
                .contains(&crate::broker::agent_username(site, agent))
    }
}

impl Default for Registered {
    fn default() -> Self {
        Self::new()
    }
}

/// Refused messages are logged and recorded in the database at most this many per minute; beyond that they
/// are only counted (a hostile client could otherwise fill the disk with its own refusals).
const REFUSALS_LOGGED_PER_MINUTE: u32 = 30;

struct RefusalBudget {
    window: std::time::Instant,
    used: u32,
    suppressed: u64,
}

impl RefusalBudget {
    fn new() -> Self {
        Self {
            window: std::time::Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether this refusal gets a log line and a database row.
    fn take(&mut self) -> bool {
        if self.window.elapsed() >= Duration::from_secs(60) {
            if self.suppressed > 0 {
                tracing::warn!(
                    refused = self.suppressed,
                    "more messages were refused in the last minute than were logged (see checkpoint_hub_events_rejected_total)"
                );
            }
            *self = Self::new();
        }
        if self.used < REFUSALS_LOGGED_PER_MINUTE {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// How long without a new message ends a batch before `batch_ms`.
const QUIET_GAP: Duration = Duration::from_millis(5);

/// Runs ingest until `shutdown` fires: one task reads the broker, this one writes batches and acknowledges.
pub async fn run(
    cfg: HubConfig,
    db: Db,
    metrics: Arc<Metrics>,
    state: Arc<IngestState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let opts = mqtt_options(&cfg)?;
    let (client, eventloop) = AsyncClient::new(opts, 1000);
    // Unbounded on purpose: the reader must never stop polling the event loop, which also carries our acks
    // to the broker (a bounded queue deadlocked here: reader waiting for room, writer waiting to ack). What it
    // holds is bounded anyway: the broker sends at most its in-flight window of unacknowledged messages.
    let (tx, mut rx) = mpsc::unbounded_channel::<Publish>();
    let reader = tokio::spawn(
        reader::Reader {
            client: client.clone(),
            share_group: cfg.mqtt.share_group.clone(),
            hub_id: cfg.mqtt.client_id.clone(),
            state: state.clone(),
            tx,
        }
        .run(eventloop),
    );

    let writers = cfg.ingest.writers_for(db.backend);
    let IngestConfig {
        batch_size,
        batch_ms,
        ..
    } = cfg.ingest.clone();
    // Batches being stored, oldest first. Their messages are acknowledged in the order they arrived (MQTT
    // asks a receiver for PUBACKs in order), each batch once it and every batch before it committed.
    let mut writing: std::collections::VecDeque<tokio::task::JoinHandle<Vec<Publish>>> =
        Default::default();
    let max_bytes = cfg.mqtt.max_event_bytes;
    let mut registered = Registered::new();
    let mut budget = RefusalBudget::new();
    loop {
        let next = tokio::select! {
            p = rx.recv() => p.map_or(Next::Stop, Next::Message),
            stored = async { writing.front_mut().expect("guarded by the condition").await }, if !writing.is_empty() => {
                Next::Stored(stored.unwrap_or_default())
            }
            _ = shutdown.changed() => Next::Stop,
        };
        let first = match next {
            Next::Message(p) => p,
            Next::Stored(messages) => {
                writing.pop_front();
                ack_all(&client, &messages).await;
                continue;
            }
            Next::Stop => break,
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(batch_ms);
        // A quiet gap ends the batch early: the broker sends only so many unacknowledged messages (its
        // inflight window: 20 by default in Mosquitto), so once the window is in hand, waiting for the
        // deadline would only stall the stream until we store and acknowledge.
        while batch.len() < batch_size {
            let gap = (tokio::time::Instant::now() + QUIET_GAP).min(deadline);
            match tokio::time::timeout_at(gap, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                _ => break,
            }
        }
        let started = std::time::Instant::now();
        let mut good = Vec::with_capacity(batch.len());
        let mut bad = Vec::new();
        registered.refresh(&db).await;
        for p in &batch {
            match check(&p.topic, &p.payload, max_bytes) {
                Ok(c) if !registered.allows(&c.env.site, &c.env.agent) => {
                    let r = Reject::UnknownAgent {
                        site: c.env.site,
                        agent: c.env.agent,
                    };
                    bad.push((p.topic.clone(), r, p.payload.len()))
                }
                Ok(c) => good.push(c),
                Err(r) => bad.push((p.topic.clone(), r, p.payload.len())),
            }
        }
        for (topic, reason, size) in &bad {
            metrics.rejected(reason.label());
            if !budget.take() {
                continue;
            }
            tracing::warn!(topic = %truncate(topic, 200), %reason, bytes = size, "event refused");
            if let Err(e) = record_reject(&db, topic, reason, *size).await {
                tracing::error!(error = %e, "recording a refused event");
            }
        }
        // Up to `writers` batches are stored at once: one is validated and encoded here while another waits
        // for the database, which a lone writer leaves idle between its statements.
        while writing.len() >= writers {
            if let Some(oldest) = writing.pop_front() {
                ack_all(&client, &oldest.await.unwrap_or_default()).await;
            }
        }
        writing.push_back(tokio::spawn(store(
            db.clone(),
            good,
            batch,
            cfg.utc_offset_hours,
            metrics.clone(),
            state.clone(),
            started,
        )));
    }
    // What is being stored is acknowledged before the connection closes (else the broker sends it again).
    while let Some(oldest) = writing.pop_front() {
        ack_all(&client, &oldest.await.unwrap_or_default()).await;
    }
    reader.abort();
    let _ = client.disconnect().await;
    Ok(())
}

/// What the ingest loop waits for next.
enum Next {
    Message(Publish),
    /// The oldest batch being stored committed: these messages may be acknowledged.
    Stored(Vec<Publish>),
    Stop,
}

/// Stores a batch, retrying until it commits (acknowledging before that could lose events); returns the
/// batch's messages (refused ones included) for the loop to acknowledge.
async fn store(
    db: Db,
    good: Vec<Checked>,
    messages: Vec<Publish>,
    utc_offset_hours: i8,
    metrics: Arc<Metrics>,
    state: Arc<IngestState>,
    started: std::time::Instant,
) -> Vec<Publish> {
    let mut wait = Duration::from_millis(200);
    let fresh = loop {
        match store_batch(&db, &good, utc_offset_hours).await {
            Ok(f) => break f,
            Err(e) => {
                tracing::error!(error = %e, events = good.len(), "storing events failed; retrying");
                metrics.ingest_errors.inc();
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    };
    let committed = time::OffsetDateTime::now_utc();
    for (c, new) in good.iter().zip(&fresh) {
        metrics.ingested(c.env.kind(), *new);
        if *new {
            metrics
                .ingest_lag_seconds
                .observe((committed - c.env.ts).as_seconds_f64().max(0.0));
        }
    }
    // PostgreSQL delivered the hints to every hub at commit (`crate::live::relay`); a lone SQLite hub passes
    // them to its own pages. Nobody watching: skip building them.
    if db.backend == crate::db::Backend::Sqlite && state.live.has_listeners() {
        let hints = good
            .iter()
            .zip(&fresh)
            .filter(|(_, new)| **new)
            .map(|(c, _)| hint_of(&c.env));
        crate::live::send_local(&state, crate::live::dedupe(hints));
    }
    metrics
        .ingest_batch_seconds
        .observe(started.elapsed().as_secs_f64());
    messages
}

async fn ack_all(client: &AsyncClient, messages: &[Publish]) {
    for p in messages {
        if let Err(e) = client.ack(p).await {
            tracing::warn!(error = %e, "acknowledging an event; the broker will send it again");
        }
    }
}

#[cfg(test)]
mod tests;
