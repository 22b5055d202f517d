//! Ingest: every agent's events from the broker into the database, exactly once in effect.
//!
//! The hub holds a persistent MQTT session (clean session off) and acknowledges each message only after the
//! transaction holding it has committed. A hub killed mid-batch therefore loses nothing (the broker
//! redelivers what was not acknowledged) and duplicates nothing (events are keyed by their id and a
//! redelivered one is a no-op, its effects included). Messages are validated with the protocol crate; a
//! refused one is counted, logged and recorded in `ingest_rejects`, then acknowledged so it cannot block
//! the session.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use checkpoint_protocol::{AgentState, CameraState, CameraStatus, Envelope, EventKind, TOPIC_ROOT};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, Transport};
use sqlx::{Any, Transaction};
use tokio::sync::mpsc;

use crate::config::{HubConfig, IngestConfig};
use crate::db::{ms, now_ms, Db, DbError};
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

/// Start of the hour and of the local day containing `t_ms`.
pub fn buckets(t_ms: i64, utc_offset_hours: i8) -> (i64, i64) {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let hour = t_ms.div_euclid(HOUR) * HOUR;
    let off = utc_offset_hours as i64 * HOUR;
    let day = (t_ms + off).div_euclid(DAY) * DAY - off;
    (hour, day)
}

/// Stores one batch in one transaction. Returns, per event, whether it was new.
pub async fn store_batch(
    db: &Db,
    events: &[Checked],
    utc_offset_hours: i8,
) -> Result<Vec<bool>, DbError> {
    let mut tx = db.pool.begin().await?;
    let now = now_ms();
    let mut fresh = Vec::with_capacity(events.len());
    for c in events {
        let e = &c.env;
        let inserted = sqlx::query(
            "INSERT INTO events (id, site, agent, kind, ts_ms, received_ms, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(e.id.to_string())
        .bind(&e.site)
        .bind(&e.agent)
        .bind(e.kind())
        .bind(ms(e.ts))
        .bind(now)
        .bind(&c.stored_json)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        fresh.push(inserted);
        if inserted {
            apply(&mut tx, c, now, utc_offset_hours).await?;
        }
    }
    tx.commit().await?;
    Ok(fresh)
}

/// The effects of a new event: rollups, health, alerts.
async fn apply(
    tx: &mut Transaction<'_, Any>,
    c: &Checked,
    now: i64,
    utc_offset_hours: i8,
) -> Result<(), DbError> {
    let e = &c.env;
    // Any event proves the agent is alive; a stale one comes back online.
    sqlx::query(
        "INSERT INTO agents (site, agent, state, version, cameras, last_seen_ms, state_since_ms, \
         watchlist_version, watchlist_needs_full, watchlist_error) \
         VALUES ($1, $2, 'online', '', '[]', $3, $3, 0, 0, NULL) \
         ON CONFLICT (site, agent) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, \
         state = CASE WHEN agents.state = 'stale' THEN 'online' ELSE agents.state END, \
         state_since_ms = CASE WHEN agents.state = 'stale' THEN excluded.state_since_ms ELSE agents.state_since_ms END",
    )
    .bind(&e.site)
    .bind(&e.agent)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE system_alerts SET cleared_ms = $1 \
         WHERE kind = 'stale_agent' AND site = $2 AND agent = $3 AND cleared_ms IS NULL",
    )
    .bind(now)
    .bind(&e.site)
    .bind(&e.agent)
    .execute(&mut **tx)
    .await?;

    match &e.event {
        EventKind::Count(cnt) => {
            let t = ms(cnt.interval_start);
            let (hour, day) = buckets(t, utc_offset_hours);
            for (bucket, start) in [("hour", hour), ("day", day)] {
                sqlx::query(
                    "INSERT INTO counts (site, camera, line, bucket, bucket_start_ms, entries, exits) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (site, camera, line, bucket, bucket_start_ms) DO UPDATE SET \
                     entries = counts.entries + excluded.entries, exits = counts.exits + excluded.exits",
                )
                .bind(&e.site)
                .bind(&cnt.camera)
                .bind(&cnt.line)
                .bind(bucket)
                .bind(start)
                .bind(cnt.entries as i64)
                .bind(cnt.exits as i64)
                .execute(&mut **tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO line_state (site, agent, camera, line, total_entries, total_exits, occupancy, ts_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (site, agent, camera, line) DO UPDATE SET total_entries = excluded.total_entries, \
                 total_exits = excluded.total_exits, occupancy = excluded.occupancy, ts_ms = excluded.ts_ms \
                 WHERE line_state.ts_ms <= excluded.ts_ms",
            )
            .bind(&e.site)
            .bind(&e.agent)
            .bind(&cnt.camera)
            .bind(&cnt.line)
            .bind(cnt.total_entries as i64)
            .bind(cnt.total_exits as i64)
            .bind(cnt.occupancy)
            .bind(ms(cnt.interval_end))
            .execute(&mut **tx)
            .await?;
        }
        EventKind::AgentStatus(s) => {
            let state = match s.state {
                AgentState::Online => "online",
                AgentState::Offline => "offline",
            };
            let cameras = serde_json::to_string(&s.cameras).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "UPDATE agents SET state = $1, version = $2, cameras = $3, state_since_ms = $4 \
                 WHERE site = $5 AND agent = $6",
            )
            .bind(state)
            .bind(&s.version)
            .bind(cameras)
            .bind(ms(e.ts))
            .bind(&e.site)
            .bind(&e.agent)
            .execute(&mut **tx)
            .await?;
            if s.state == AgentState::Offline {
                // An agent that stopped analyses nothing: its cameras' counts are missing, not unreliable.
                end_degraded(tx, &e.site, &e.agent, None, ms(e.ts)).await?;
            }
        }
        EventKind::CameraStatus(s) => camera_status(tx, e, s).await?,
        EventKind::WatchlistStatus(s) => {
            sqlx::query(
                "UPDATE agents SET watchlist_version = $1, watchlist_needs_full = $2, watchlist_error = $3 \
                 WHERE site = $4 AND agent = $5",
            )
            .bind(s.version as i64)
            .bind(i64::from(s.needs_full_sync))
            .bind(s.last_error.clone())
            .bind(&e.site)
            .bind(&e.agent)
            .execute(&mut **tx)
            .await?;
        }
        EventKind::WatchlistMatch(m) => {
            let list = m.list.as_str();
            // A reviewer dismissed this entry for this very track: record it, but not as a new candidate.
            let dismissed = sqlx::query(
                "SELECT created_ms FROM alert_negatives WHERE entry_id = $1 AND site = $2 AND agent = $3 \
                 AND camera = $4 AND track_id = $5 AND created_ms > $6",
            )
            .bind(&m.entry_id)
            .bind(&e.site)
            .bind(&e.agent)
            .bind(&m.camera)
            .bind(m.track_id as i64)
            .bind(now - crate::review::NEGATIVE_TTL_MS)
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
            let status = if dismissed { "suppressed" } else { "candidate" };
            sqlx::query(
                "INSERT INTO alerts (id, site, agent, camera, track_id, list, entry_id, similarity, threshold, \
                 votes, faces_used, watchlist_version, ts_ms, stream_time_s, models, snapshot, status, created_ms, \
                 evidence) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, $17, $16, $18)",
            )
            .bind(e.id.to_string())
            .bind(&e.site)
            .bind(&e.agent)
            .bind(&m.camera)
            .bind(m.track_id as i64)
            .bind(list)
            .bind(&m.entry_id)
            .bind(m.similarity as f64)
            .bind(m.threshold as f64)
            .bind(m.votes as i64)
            .bind(m.faces_used as i64)
            .bind(m.watchlist_version as i64)
            .bind(ms(e.ts))
            .bind(m.stream_time_s)
            .bind(serde_json::to_string(&m.models).unwrap_or_else(|_| "[]".into()))
            .bind(now)
            .bind(status)
            .bind(
                m.evidence
                    .as_ref()
                    .and_then(|ev| serde_json::to_string(ev).ok())
                    .unwrap_or_default(),
            )
            .execute(&mut **tx)
            .await?;
            // Set separately: a NULL BYTEA through the Any driver has the same typing trap as a NULL f64.
            if let Some(jpeg) = &c.snapshot {
                sqlx::query("UPDATE alerts SET snapshot = $1 WHERE id = $2")
                    .bind(jpeg.clone())
                    .bind(e.id.to_string())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        EventKind::LineCrossing(lc) => crate::occupancy::record_crossing(tx, e, lc).await?,
    }
    Ok(())
}

/// A camera's state and analysis rate, and the degraded periods of its counts (protocol 1.3).
async fn camera_status(
    tx: &mut Transaction<'_, Any>,
    e: &Envelope,
    s: &CameraStatus,
) -> Result<(), DbError> {
    let state = match s.state {
        CameraState::Starting => "starting",
        CameraState::Up => "up",
        CameraState::Reconnecting => "reconnecting",
        CameraState::Down => "down",
        CameraState::Ended => "ended",
    };
    let reconnect = i64::from(s.state == CameraState::Reconnecting);
    let ts = ms(e.ts);
    let degraded = s.degraded == Some(true) && s.state == CameraState::Up;
    let since = degraded.then(|| s.degraded_since.map_or(ts, ms).min(ts));
    // sqlx's Any driver sends a NULL f64 to PostgreSQL with a type that poisons the cached statement for later
    // real values, so absent numbers travel as -1 and become NULL in SQL (no rate or time is negative).
    let absent = -1.0;
    sqlx::query(
        "INSERT INTO cameras (site, agent, camera, state, fps, detail, reconnects, updated_ms, effective_fps, \
         sampling_fps, reliable_fps, degraded, degraded_reason, degraded_since_ms) \
         VALUES ($1, $2, $3, $4, NULLIF($5, -1.0), $6, $7, $8, NULLIF($9, -1.0), NULLIF($10, -1.0), \
         NULLIF($11, -1.0), $12, $13, NULLIF($14, -1)) \
         ON CONFLICT (site, agent, camera) DO UPDATE SET state = excluded.state, fps = excluded.fps, \
         detail = excluded.detail, reconnects = cameras.reconnects + excluded.reconnects, \
         updated_ms = excluded.updated_ms, effective_fps = excluded.effective_fps, \
         sampling_fps = excluded.sampling_fps, reliable_fps = excluded.reliable_fps, \
         degraded = excluded.degraded, degraded_reason = excluded.degraded_reason, \
         degraded_since_ms = excluded.degraded_since_ms",
    )
    .bind(&e.site)
    .bind(&e.agent)
    .bind(&s.camera)
    .bind(state)
    .bind(s.fps.unwrap_or(absent))
    .bind(s.detail.clone())
    .bind(reconnect)
    .bind(ts)
    .bind(s.effective_fps.unwrap_or(absent))
    .bind(s.sampling_fps.unwrap_or(absent))
    .bind(s.reliable_fps.unwrap_or(absent))
    .bind(i64::from(degraded))
    .bind(
        s.degraded_reason
            .filter(|_| degraded)
            .map(|r| r.as_str().to_string()),
    )
    .bind(since.unwrap_or(-1))
    .execute(&mut **tx)
    .await?;

    match (since, s.degraded) {
        (Some(start), _) => {
            let reason = s
                .degraded_reason
                .unwrap_or(checkpoint_protocol::DegradedReason::Source)
                .as_str();
            let fps = s.effective_fps.unwrap_or(absent);
            // The period in progress goes on (its lowest rate kept); else this report opens one.
            let extended = sqlx::query(
                "UPDATE camera_degraded SET reason = $4, \
                 min_fps = CASE WHEN $5 >= 0.0 AND (min_fps < 0.0 OR $5 < min_fps) THEN $5 ELSE min_fps END \
                 WHERE site = $1 AND agent = $2 AND camera = $3 AND end_ms IS NULL",
            )
            .bind(&e.site)
            .bind(&e.agent)
            .bind(&s.camera)
            .bind(reason)
            .bind(fps)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if extended == 0 {
                sqlx::query(
                    "INSERT INTO camera_degraded (site, agent, camera, start_ms, end_ms, reason, min_fps) \
                     VALUES ($1, $2, $3, $4, NULL, $5, $6) ON CONFLICT (site, agent, camera, start_ms) DO NOTHING",
                )
                .bind(&e.site)
                .bind(&e.agent)
                .bind(&s.camera)
                .bind(start)
                .bind(reason)
                .bind(fps)
                .execute(&mut **tx)
                .await?;
            }
        }
        // An agent of 1.2 says nothing either way while the camera runs: leave the periods alone.
        (None, None) if s.state == CameraState::Up => {}
        (None, _) => end_degraded(tx, &e.site, &e.agent, Some(&s.camera), ts).await?,
    }
    Ok(())
}

/// Closes the open degraded periods of one camera (or of every camera of the agent) at `at_ms`.
async fn end_degraded(
    tx: &mut Transaction<'_, Any>,
    site: &str,
    agent: &str,
    camera: Option<&str>,
    at_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE camera_degraded SET end_ms = CASE WHEN start_ms > $4 THEN start_ms ELSE $4 END \
         WHERE site = $1 AND agent = $2 AND ($3 = '' OR camera = $3) AND end_ms IS NULL",
    )
    .bind(site)
    .bind(agent)
    .bind(camera.unwrap_or(""))
    .bind(at_ms)
    .execute(&mut **tx)
    .await?;
    if camera.is_none() {
        sqlx::query(
            "UPDATE cameras SET degraded = 0, degraded_reason = NULL, degraded_since_ms = NULL \
             WHERE site = $1 AND agent = $2",
        )
        .bind(site)
        .bind(agent)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
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
        (cfg.mqtt.host.clone(), cfg.mqtt.port)
    };
    let mut o = MqttOptions::new(cfg.mqtt.client_id.clone(), host, port);
    o.set_keep_alive(Duration::from_secs(15));
    // Persistent session, manual acks: see the module documentation.
    o.set_clean_session(false);
    o.set_manual_acks(true);
    // Bigger than any accepted event, so an oversized one reaches `check` and is refused with a reason
    // instead of breaking the connection.
    let limit = (cfg.mqtt.max_event_bytes * 4).max(16 << 20);
    o.set_max_packet_size(limit, limit);
    o.set_inflight(200);
    if let Some(user) = &cfg.mqtt.username {
        o.set_credentials(user.clone(), cfg.mqtt_password()?.unwrap_or_default());
    }
    if cfg.mqtt.tls {
        let tls = match &cfg.mqtt.ca_file {
            Some(ca) => rumqttc::TlsConfiguration::SimpleNative {
                ca: std::fs::read(ca)?,
                client_auth: None,
            },
            None => rumqttc::TlsConfiguration::Native,
        };
        o.set_transport(Transport::tls_with_config(tls));
    }
    Ok(o)
}

/// Connection state other parts of the hub report (health, metrics).
pub struct IngestState {
    pub connected: std::sync::atomic::AtomicBool,
    /// What just happened, for the web UI's live stream (`GET /api/live`). Nobody listening is fine.
    pub live: tokio::sync::broadcast::Sender<Live>,
}

impl Default for IngestState {
    fn default() -> Self {
        Self {
            connected: Default::default(),
            live: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

/// A hint that something changed, sent after it is committed; clients fetch the details through the API,
/// where roles and the audit log apply.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Live {
    /// `alert` (a new watchlist match), `review` (an alert's status changed), `count`, `agent`, `camera`.
    pub kind: &'static str,
    pub site: String,
    pub agent: String,
    /// The alert's id for `alert` and `review`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Live {
    fn of(env: &Envelope) -> Live {
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
        match sqlx::query("SELECT username FROM users WHERE role = 'agent' AND active = 1")
            .fetch_all(&db.pool)
            .await
        {
            Ok(rows) => {
                self.agents = rows
                    .iter()
                    .filter_map(|r| sqlx::Row::try_get::<String, _>(r, "username").ok())
                    .collect();
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
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    // Unbounded on purpose: the reader must never stop polling the event loop, which also carries our acks
    // to the broker (a bounded queue deadlocked here: reader waiting for room, writer waiting to ack). What it
    // holds is bounded anyway: the broker sends at most its in-flight window of unacknowledged messages.
    let (tx, mut rx) = mpsc::unbounded_channel::<Publish>();
    let st = state.clone();
    let sub_client = client.clone();
    let reader = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(250);
                    st.connected
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!("ingest connected to the broker");
                    if let Err(e) = sub_client
                        .subscribe(format!("{TOPIC_ROOT}/+/+/+"), QoS::AtLeastOnce)
                        .await
                    {
                        tracing::error!(error = %e, "subscribing to agents' events");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if st
                        .connected
                        .swap(false, std::sync::atomic::Ordering::Relaxed)
                    {
                        tracing::warn!(error = %e, "ingest lost the broker; reconnecting");
                    } else {
                        tracing::debug!(error = %e, "broker unreachable");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });

    let IngestConfig {
        batch_size,
        batch_ms,
    } = cfg.ingest.clone();
    let max_bytes = cfg.mqtt.max_event_bytes;
    let mut registered = Registered::new();
    let mut budget = RefusalBudget::new();
    loop {
        let first = tokio::select! {
            p = rx.recv() => match p { Some(p) => p, None => break },
            _ = shutdown.changed() => break,
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
        // Retry the same batch until it commits: acknowledging before that could lose events.
        let mut wait = Duration::from_millis(200);
        let fresh = loop {
            match store_batch(&db, &good, cfg.utc_offset_hours).await {
                Ok(f) => break f,
                Err(e) => {
                    tracing::error!(error = %e, events = good.len(), "storing events failed; retrying");
                    metrics.ingest_errors.inc();
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        };
        for (c, new) in good.iter().zip(&fresh) {
            metrics.ingested(c.env.kind(), *new);
            // Nobody watching (no web UI open): skip building the hint.
            if *new && state.live.receiver_count() > 0 {
                let _ = state.live.send(Live::of(&c.env));
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
        metrics
            .ingest_batch_seconds
            .observe(started.elapsed().as_secs_f64());
        for p in &batch {
            if let Err(e) = client.ack(p).await {
                tracing::warn!(error = %e, "acknowledging an event; the broker will send it again");
            }
        }
    }
    reader.abort();
    let _ = client.disconnect().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use checkpoint_protocol::{Count, ListKind, WatchlistMatch};
    use time::macros::datetime;

    fn count_event(site: &str, entries: u64, start: time::OffsetDateTime) -> Envelope {
        Envelope::new(
            site,
            "a1",
            start,
            EventKind::Count(Count {
                camera: "gate".into(),
                line: "l1".into(),
                interval_start: start,
                interval_end: start + time::Duration::seconds(10),
                entries,
                exits: 1,
                total_entries: entries,
                total_exits: 1,
                occupancy: entries as i64 - 1,
            }),
        )
    }

    fn topic_of(e: &Envelope) -> String {
        checkpoint_protocol::topic(&e.site, &e.agent, e.kind())
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let e = count_event("pier", 3, datetime!(2026-11-24 03:00 UTC));
        let ok = e.to_json();
        assert!(check(&topic_of(&e), ok.as_bytes(), 1 << 20).is_ok());
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("checkpoint/pier/a1", ok.clone().into_bytes(), "topic"),
            ("other/pier/a1/count", ok.clone().into_bytes(), "topic"),
            ("checkpoint/pier/a1/count", b"{not json".to_vec(), "invalid"),
            (
                "checkpoint/pier/a2/count",
                ok.clone().into_bytes(),
                "mismatch",
            ),
            (
                "checkpoint/pier/a1/agent_status",
                ok.clone().into_bytes(),
                "mismatch",
            ),
            ("checkpoint/pier/a1/count", vec![b' '; 2 << 20], "oversized"),
            (
                "checkpoint/pier/a1/count",
                ok.replace("\"v\":1", "\"v\":7").into_bytes(),
                "invalid",
            ),
            // Issue 12, finding 9: i64::MAX crossings overflowed the site's sums; u64::MAX was stored as -1.
            (
                "checkpoint/pier/a1/count",
                ok.replace("\"entries\":3", "\"entries\":9223372036854775807")
                    .into_bytes(),
                "out_of_range",
            ),
            (
                "checkpoint/pier/a1/count",
                ok.replace("\"entries\":3", "\"entries\":18446744073709551615")
                    .into_bytes(),
                "out_of_range",
            ),
        ];
        for (topic, payload, label) in cases {
            let r = check(topic, &payload, 1 << 20).err().expect(topic);
            assert_eq!(r.label(), label, "{topic}: {r}");
        }
    }

    #[tokio::test]
    async fn once_agents_have_accounts_only_they_are_ingested() {
        let (db, _d) = testing::sqlite().await;
        let mut r = Registered::new();
        r.refresh(&db).await;
        assert!(r.allows("pier", "a1"), "no accounts: the broker decides");
        crate::broker::add_agent(&db, "pier", "a1").await.unwrap();
        let mut r = Registered::new();
        r.refresh(&db).await;
        assert!(r.allows("pier", "a1"));
        assert!(!r.allows("pier", "a2"));
        assert!(!r.allows("dock", "a1"));
        sqlx::query("UPDATE users SET active = 0 WHERE username = 'pier.a1'")
            .execute(&db.pool)
            .await
            .unwrap();
        let mut r = Registered::new();
        r.refresh(&db).await;
        assert!(
            r.allows("pier", "a1"),
            "no active account left: as before accounts"
        );
    }

    #[test]
    fn buckets_follow_local_days() {
        // 2026-11-24 18:30 UTC is 01:30 on the 25th in Vietnam (UTC+7).
        let t = ms(datetime!(2026-11-24 18:30 UTC));
        let (hour, day) = buckets(t, 7);
        assert_eq!(hour, ms(datetime!(2026-11-24 18:00 UTC)));
        assert_eq!(day, ms(datetime!(2026-11-24 17:00 UTC)));
        let (_, utc_day) = buckets(t, 0);
        assert_eq!(utc_day, ms(datetime!(2026-11-24 00:00 UTC)));
    }

    async fn idempotent(db: Db) {
        let t0 = datetime!(2026-11-24 03:00 UTC);
        let events: Vec<Envelope> = (0..6)
            .map(|i| count_event("pier", 2, t0 + time::Duration::minutes(20 * i)))
            .collect();
        let checked = |evs: &[Envelope]| -> Vec<Checked> {
            evs.iter()
                .map(|e| check(&topic_of(e), e.to_json().as_bytes(), 1 << 20).unwrap())
                .collect()
        };
        let f = store_batch(&db, &checked(&events), 7).await.unwrap();
        assert!(f.iter().all(|x| *x));
        // Redelivery of the whole batch (a hub killed before its acks): nothing changes.
        let f = store_batch(&db, &checked(&events), 7).await.unwrap();
        assert!(f.iter().all(|x| !*x));
        let rows = sqlx::query(
            "SELECT bucket, bucket_start_ms, entries, exits FROM counts WHERE site = 'pier' ORDER BY bucket, bucket_start_ms",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let got: Vec<(String, i64, i64)> = rows
            .iter()
            .map(|r| {
                use sqlx::Row;
                (
                    r.get::<String, _>("bucket"),
                    r.get::<i64, _>("entries"),
                    r.get::<i64, _>("exits"),
                )
            })
            .collect();
        // 6 intervals of 2 entries 20 minutes apart: hours 03, 04 (3 each... 03:00, 03:20, 03:40 | 04:00..)
        assert_eq!(
            got,
            vec![
                ("day".into(), 12, 6),
                ("hour".into(), 6, 3),
                ("hour".into(), 6, 3)
            ]
        );

        let mut m = Envelope::new(
            "pier",
            "a1",
            t0,
            EventKind::WatchlistMatch(WatchlistMatch {
                camera: "gate".into(),
                track_id: 4,
                list: ListKind::Wanted,
                entry_id: "W1".into(),
                watchlist_version: 3,
                similarity: 0.61,
                threshold: 0.43,
                votes: 2,
                rank: 1,
                faces_used: 3,
                snapshot_jpeg_b64: base64::engine::general_purpose::STANDARD
                    .encode([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]),
                stream_time_s: 12.5,
                models: vec!["sface.onnx".into()],
                evidence: None,
            }),
        );
        let c = check(&topic_of(&m), m.to_json().as_bytes(), 1 << 20).unwrap();
        assert!(!c.stored_json.contains("/9j/") && c.snapshot.is_some());
        store_batch(&db, &[c], 7).await.unwrap();
        use sqlx::Row;
        let r = sqlx::query("SELECT status, snapshot, entry_id FROM alerts WHERE id = $1")
            .bind(m.id.to_string())
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(r.get::<String, _>("status"), "candidate");
        assert_eq!(r.get::<Vec<u8>, _>("snapshot")[..2], [0xFF, 0xD8]);
        // The same alert again (QoS 1 redelivery) is not a second alert.
        m.ts = t0;
        let c = check(&topic_of(&m), m.to_json().as_bytes(), 1 << 20).unwrap();
        assert_eq!(store_batch(&db, &[c], 7).await.unwrap(), vec![false]);
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM alerts")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(n, 1);
    }

    fn status(
        camera: &str,
        ts: time::OffsetDateTime,
        degraded: Option<bool>,
        fps: Option<f64>,
    ) -> Checked {
        use checkpoint_protocol::{CameraStatus, DegradedReason};
        let on = degraded == Some(true);
        let e = Envelope::new(
            "pier",
            "a1",
            ts,
            EventKind::CameraStatus(CameraStatus {
                camera: camera.into(),
                state: CameraState::Up,
                fps,
                effective_fps: fps,
                sampling_fps: fps,
                reliable_fps: degraded.map(|_| 2.0),
                degraded,
                degraded_reason: on.then_some(DegradedReason::Overload),
                degraded_since: on.then(|| ts - time::Duration::seconds(3)),
                ..Default::default()
            }),
        );
        check(&topic_of(&e), e.to_json().as_bytes(), 1 << 20).unwrap()
    }

    async fn degraded_periods(db: Db) {
        use sqlx::Row;
        let t0 = datetime!(2026-11-24 03:50 UTC);
        let at = |s: i64| t0 + time::Duration::seconds(s);
        // An agent of 1.2 (no `degraded`), then a 1.3 camera that degrades, stays so with a lower rate,
        // recovers, degrades again and is stopped with its agent.
        let batch = vec![
            status("old", at(0), None, Some(5.0)),
            status("gate", at(0), Some(false), Some(5.0)),
            status("gate", at(10), Some(true), Some(1.6)),
            status("gate", at(20), Some(true), Some(1.2)),
            // Without a rate (the meter restarted): the lowest stays.
            status("gate", at(25), Some(true), None),
            status("gate", at(30), Some(false), Some(2.4)),
            status("gate", at(600), Some(true), Some(1.5)),
        ];
        store_batch(&db, &batch, 7).await.unwrap();
        let periods = |db: &Db| {
            let pool = db.pool.clone();
            async move {
                sqlx::query(
                    "SELECT camera, start_ms, end_ms, reason, min_fps FROM camera_degraded ORDER BY start_ms",
                )
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r.get::<String, _>("camera"),
                        r.get::<i64, _>("start_ms"),
                        r.try_get::<Option<i64>, _>("end_ms").ok().flatten(),
                        r.get::<String, _>("reason"),
                        r.get::<f64, _>("min_fps"),
                    )
                })
                .collect::<Vec<_>>()
            }
        };
        let got = periods(&db).await;
        assert_eq!(
            got,
            vec![
                (
                    "gate".into(),
                    ms(at(7)),
                    Some(ms(at(30))),
                    "overload".into(),
                    1.2
                ),
                ("gate".into(), ms(at(597)), None, "overload".into(), 1.5),
            ]
        );
        let cam = sqlx::query(
            "SELECT degraded, degraded_reason, degraded_since_ms, effective_fps, reliable_fps FROM cameras \
             WHERE camera = 'gate'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(cam.get::<i64, _>("degraded"), 1);
        assert_eq!(cam.get::<String, _>("degraded_reason"), "overload");
        assert_eq!(cam.get::<i64, _>("degraded_since_ms"), ms(at(597)));
        assert_eq!(cam.get::<f64, _>("effective_fps"), 1.5);
        let old =
            sqlx::query("SELECT degraded, effective_fps, fps FROM cameras WHERE camera = 'old'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(old.get::<i64, _>("degraded"), 0);
        assert_eq!(
            old.try_get::<Option<f64>, _>("effective_fps")
                .ok()
                .flatten(),
            Some(5.0)
        );
        // The agent stops: its open period ends, its cameras are no longer degraded.
        let off = Envelope::new(
            "pier",
            "a1",
            at(700),
            EventKind::AgentStatus(checkpoint_protocol::AgentStatus {
                state: AgentState::Offline,
                version: "t".into(),
                cameras: vec!["gate".into()],
            }),
        );
        let off = check(&topic_of(&off), off.to_json().as_bytes(), 1 << 20).unwrap();
        store_batch(&db, &[off], 7).await.unwrap();
        assert_eq!(periods(&db).await[1].2, Some(ms(at(700))));
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM cameras WHERE degraded = 1")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn degraded_periods_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        degraded_periods(db).await;
    }

    #[tokio::test]
    async fn degraded_periods_on_postgres() {
        if let Some(db) = testing::postgres().await {
            degraded_periods(db).await;
        }
    }

    #[tokio::test]
    async fn storing_is_idempotent_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        idempotent(db).await;
    }

    #[tokio::test]
    async fn storing_is_idempotent_on_postgres() {
        if let Some(db) = testing::postgres().await {
            idempotent(db).await;
        }
    }
}
