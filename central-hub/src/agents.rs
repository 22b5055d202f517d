//! Agent and camera health: each agent's state (online, offline, stale) and the watchlist version it holds,
//! each camera's state and analysis rate, the periods its counts were degraded, and the health alerts the
//! hub raises for agents gone silent. Owns `agents`, `cameras`, `camera_degraded` and `system_alerts`.
//!
//! Ingest writes them from the agents' events (any event proves its agent alive; `agent_status`,
//! `camera_status` and `watchlist_status` say more); the periodic job marks silent agents stale.

use checkpoint_protocol::{AgentState, AgentStatus, CameraState, CameraStatus, Envelope};
use serde::Serialize;
use sqlx::{Any, Transaction};

use crate::db::{json_rows, ms, now_ms, Backend, Col, Db, DbError};

/// How a camera report updates its row: the newest report's state wins whatever order reports arrive in
/// (several hubs store one agent's reports side by side), while every report's reconnect still counts.
const CAMERA_UPSERT: &str = " ON CONFLICT (site, agent, camera) DO UPDATE SET \
    state = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.state ELSE cameras.state END, \
    fps = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.fps ELSE cameras.fps END, \
    detail = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.detail ELSE cameras.detail END, \
    reconnects = cameras.reconnects + excluded.reconnects, \
    effective_fps = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.effective_fps ELSE cameras.effective_fps END, \
    sampling_fps = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.sampling_fps ELSE cameras.sampling_fps END, \
    reliable_fps = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.reliable_fps ELSE cameras.reliable_fps END, \
    degraded = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.degraded ELSE cameras.degraded END, \
    degraded_reason = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.degraded_reason ELSE cameras.degraded_reason END, \
    degraded_since_ms = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.degraded_since_ms ELSE cameras.degraded_since_ms END, \
    updated_ms = CASE WHEN excluded.updated_ms >= cameras.updated_ms THEN excluded.updated_ms ELSE cameras.updated_ms END";

/// A camera state as stored in `cameras.state`.
fn camera_state_name(s: CameraState) -> &'static str {
    match s {
        CameraState::Starting => "starting",
        CameraState::Up => "up",
        CameraState::Reconnecting => "reconnecting",
        CameraState::Down => "down",
        CameraState::Ended => "ended",
    }
}

mod camera_batch;
pub(crate) use camera_batch::camera_statuses;

#[derive(Serialize, utoipa::ToSchema)]
pub struct CameraHealth {
    pub camera: String,
    pub state: String,
    /// Frames analysed per second (wall time).
    pub fps: Option<f64>,
    pub detail: Option<String>,
    pub reconnects: i64,
    pub updated_ms: i64,
    /// Frames analysed per second of stream time: the rate counting really sees (agents of protocol 1.3).
    pub effective_fps: Option<f64>,
    /// The rate the agent samples the camera at now (its analysis_fps, or less while it sheds load).
    pub sampling_fps: Option<f64>,
    /// The rate the camera's counts need to be reliable.
    pub reliable_fps: Option<f64>,
    /// Analysed below `reliable_fps`: its counts are unreliable while this holds.
    pub degraded: bool,
    /// `overload` (the agent cannot keep up), `configured` (analysis_fps too low) or `source` (the camera
    /// delivers too few frames).
    pub degraded_reason: Option<String>,
    pub degraded_since_ms: Option<i64>,
}

/// A `cameras` row as [`list`] reads it.
#[derive(sqlx::FromRow)]
struct CameraRow {
    site: String,
    agent: String,
    camera: String,
    state: String,
    fps: Option<f64>,
    detail: Option<String>,
    reconnects: i64,
    updated_ms: i64,
    effective_fps: Option<f64>,
    sampling_fps: Option<f64>,
    reliable_fps: Option<f64>,
    degraded: i64,
    degraded_reason: Option<String>,
    degraded_since_ms: Option<i64>,
}

impl From<CameraRow> for CameraHealth {
    fn from(c: CameraRow) -> Self {
        CameraHealth {
            camera: c.camera,
            state: c.state,
            fps: c.fps,
            detail: c.detail,
            reconnects: c.reconnects,
            updated_ms: c.updated_ms,
            effective_fps: c.effective_fps,
            sampling_fps: c.sampling_fps,
            reliable_fps: c.reliable_fps,
            degraded: c.degraded == 1,
            degraded_reason: c.degraded_reason,
            degraded_since_ms: c.degraded_since_ms,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentHealth {
    pub site: String,
    pub agent: String,
    /// `online`, `offline` (clean stop or last will) or `stale` (silent too long).
    pub state: String,
    pub version: String,
    pub last_seen_ms: i64,
    pub state_since_ms: i64,
    pub watchlist_version: i64,
    pub watchlist_needs_full: bool,
    pub watchlist_error: Option<String>,
    pub cameras: Vec<CameraHealth>,
}

/// An `agents` row as [`list`] reads it.
#[derive(sqlx::FromRow)]
struct AgentRow {
    site: String,
    agent: String,
    state: String,
    version: String,
    last_seen_ms: i64,
    state_since_ms: i64,
    watchlist_version: i64,
    watchlist_needs_full: i64,
    watchlist_error: Option<String>,
}

impl AgentRow {
    fn with_cameras(self, cameras: Vec<CameraHealth>) -> AgentHealth {
        AgentHealth {
            site: self.site,
            agent: self.agent,
            state: self.state,
            version: self.version,
            last_seen_ms: self.last_seen_ms,
            state_since_ms: self.state_since_ms,
            watchlist_version: self.watchlist_version,
            watchlist_needs_full: self.watchlist_needs_full == 1,
            watchlist_error: self.watchlist_error,
            cameras,
        }
    }
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SystemAlert {
    pub id: String,
    pub kind: String,
    pub site: String,
    pub agent: String,
    pub detail: String,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
}

/// Marks the agents that sent events as seen now: a stale one comes back online and its health alert is
/// cleared. One statement per table for the whole batch, in key order (hubs writing the same agents take
/// their row locks in the same order, so they cannot deadlock).
pub(crate) async fn seen_many(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    agents: &[(&str, &str)],
    now: i64,
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct Row<'a> {
        site: &'a str,
        agent: &'a str,
    }
    let mut agents = agents.to_vec();
    agents.sort_unstable();
    agents.dedup();
    if agents.is_empty() {
        return Ok(());
    }
    let rows: Vec<Row> = agents
        .iter()
        .map(|(site, agent)| Row { site, agent })
        .collect();
    let json = crate::db::json_param(&rows)?;
    let source = json_rows(backend, 1, &[("site", Col::Text), ("agent", Col::Text)]);
    // Built from constants only; the rows travel as the bound parameter.
    let upsert = format!(
        "INSERT INTO agents (site, agent, state, version, cameras, last_seen_ms, state_since_ms, \
         watchlist_version, watchlist_needs_full, watchlist_error) \
         SELECT site, agent, 'online', '', '[]', $2, $2, 0, 0, NULL FROM ({source}) AS r WHERE true \
         ORDER BY site, agent \
         ON CONFLICT (site, agent) DO UPDATE SET last_seen_ms = excluded.last_seen_ms, \
         state = CASE WHEN agents.state = 'stale' THEN 'online' ELSE agents.state END, \
         state_since_ms = CASE WHEN agents.state = 'stale' THEN excluded.state_since_ms ELSE agents.state_since_ms END"
    );
    sqlx::query(sqlx::AssertSqlSafe(upsert))
        .bind(&json)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let clear = format!(
        "UPDATE system_alerts SET cleared_ms = $2 \
         WHERE kind = 'stale_agent' AND cleared_ms IS NULL \
         AND (site, agent) IN (SELECT site, agent FROM ({source}) AS r)"
    );
    sqlx::query(sqlx::AssertSqlSafe(clear))
        .bind(&json)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An agent's own report: online or offline, its version and cameras.
pub(crate) async fn agent_status(
    tx: &mut Transaction<'_, Any>,
    e: &Envelope,
    s: &AgentStatus,
) -> Result<(), DbError> {
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
    Ok(())
}

/// The watchlist version an agent holds, whether it needs a full sync, and its last sync error.
pub(crate) async fn watchlist_status(
    tx: &mut Transaction<'_, Any>,
    e: &Envelope,
    s: &checkpoint_protocol::WatchlistStatus,
) -> Result<(), DbError> {
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
    Ok(())
}

/// A camera's state and analysis rate, and the degraded periods of its counts (protocol 1.3).
pub(crate) async fn camera_status(
    tx: &mut Transaction<'_, Any>,
    e: &Envelope,
    s: &CameraStatus,
) -> Result<(), DbError> {
    let state = camera_state_name(s.state);
    let reconnect = i64::from(s.state == CameraState::Reconnecting);
    let ts = ms(e.ts);
    let degraded = s.degraded == Some(true) && s.state == CameraState::Up;
    let since = degraded.then(|| s.degraded_since.map_or(ts, ms).min(ts));
    // sqlx's Any driver sends a NULL f64 to PostgreSQL with a type that poisons the cached statement for later
    // real values, so absent numbers travel as -1 and become NULL in SQL (no rate or time is negative).
    let absent = -1.0;
    sqlx::query(
        sqlx::AssertSqlSafe(format!(
        "{}{}",
        "INSERT INTO cameras (site, agent, camera, state, fps, detail, reconnects, updated_ms, effective_fps, \
         sampling_fps, reliable_fps, degraded, degraded_reason, degraded_since_ms) \
         VALUES ($1, $2, $3, $4, NULLIF($5, -1.0), $6, $7, $8, NULLIF($9, -1.0), NULLIF($10, -1.0), \
         NULLIF($11, -1.0), $12, $13, NULLIF($14, -1))",
        CAMERA_UPSERT
    ))
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

/// Marks agents that went silent and raises a health alert for each, once.
pub async fn mark_stale(db: &Db, stale_after_ms: i64) -> Result<Vec<(String, String)>, DbError> {
    let now = now_ms();
    let silent: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT site, agent, last_seen_ms FROM agents WHERE state = 'online' AND last_seen_ms < $1",
    )
    .bind(now - stale_after_ms)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for (site, agent, last) in silent {
        let mut tx = db.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE agents SET state = 'stale', state_since_ms = $1 \
             WHERE site = $2 AND agent = $3 AND state = 'online' AND last_seen_ms = $4",
        )
        .bind(now)
        .bind(&site)
        .bind(&agent)
        .bind(last)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query(
                "INSERT INTO system_alerts (id, kind, site, agent, detail, raised_ms, cleared_ms) \
                 VALUES ($1, 'stale_agent', $2, $3, $4, $5, NULL)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&site)
            .bind(&agent)
            .bind(format!("no event for {} s", (now - last) / 1000))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            out.push((site.clone(), agent.clone()));
        }
        tx.commit().await?;
        if changed == 1 {
            tracing::warn!(%site, %agent, silent_s = (now - last) / 1000, "agent went silent");
        }
    }
    Ok(out)
}

/// How many agents are in each state (`online`, `offline`, `stale`), for the gauges.
pub async fn count_by_state(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    Ok(
        sqlx::query_as("SELECT state, COUNT(*) AS n FROM agents GROUP BY state")
            .fetch_all(&db.pool)
            .await?,
    )
}

/// Agents with their cameras, by site and agent.
pub async fn list(db: &Db) -> Result<Vec<AgentHealth>, DbError> {
    let agents: Vec<AgentRow> = sqlx::query_as(
        "SELECT site, agent, state, version, last_seen_ms, state_since_ms, watchlist_version, \
         watchlist_needs_full, watchlist_error FROM agents ORDER BY site, agent",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut cams: Vec<CameraRow> = sqlx::query_as(
        "SELECT site, agent, camera, state, fps, detail, reconnects, updated_ms, effective_fps, sampling_fps, \
         reliable_fps, degraded, degraded_reason, degraded_since_ms FROM cameras \
         ORDER BY site, agent, camera",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(agents
        .into_iter()
        .map(|a| {
            let (mine, others): (Vec<_>, Vec<_>) = cams
                .drain(..)
                .partition(|c| c.site == a.site && c.agent == a.agent);
            cams = others;
            a.with_cameras(mine.into_iter().map(CameraHealth::from).collect())
        })
        .collect())
}

/// Health alerts the hub raised (agents gone silent), newest first, at most 500.
pub async fn system_alerts(db: &Db) -> Result<Vec<SystemAlert>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, kind, site, agent, detail, raised_ms, cleared_ms FROM system_alerts \
         ORDER BY raised_ms DESC LIMIT 500",
    )
    .fetch_all(&db.pool)
    .await?)
}

/// The sites of the agents that ever reported.
pub async fn sites(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT DISTINCT site FROM agents")
        .fetch_all(&db.pool)
        .await?)
}

/// The watchlist an agent holds, as it last reported it.
pub struct WatchlistHeld {
    pub site: String,
    pub agent: String,
    pub state: String,
    pub version: i64,
    pub needs_full: bool,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct HeldRow {
    site: String,
    agent: String,
    state: String,
    watchlist_version: i64,
    watchlist_needs_full: i64,
    watchlist_error: Option<String>,
}

impl From<HeldRow> for WatchlistHeld {
    fn from(r: HeldRow) -> Self {
        WatchlistHeld {
            site: r.site,
            agent: r.agent,
            state: r.state,
            version: r.watchlist_version,
            needs_full: r.watchlist_needs_full == 1,
            error: r.watchlist_error,
        }
    }
}

/// What every agent holds, by site and agent.
pub async fn watchlists_held(db: &Db) -> Result<Vec<WatchlistHeld>, DbError> {
    let rows: Vec<HeldRow> = sqlx::query_as(
        "SELECT site, agent, state, watchlist_version, watchlist_needs_full, watchlist_error FROM agents ORDER BY site, agent",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(WatchlistHeld::from).collect())
}

/// What the online agents hold: the ones the pusher sends to.
pub async fn watchlists_held_online(db: &Db) -> Result<Vec<WatchlistHeld>, DbError> {
    let rows: Vec<HeldRow> = sqlx::query_as(
        "SELECT site, agent, state, watchlist_version, watchlist_needs_full, watchlist_error FROM agents \
         WHERE state = 'online'",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(WatchlistHeld::from).collect())
}

/// A degraded period of a camera, as stored from its `camera_status` reports.
pub struct DegradedPeriod {
    pub camera: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub min_fps: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct DegradedRow {
    camera: String,
    start_ms: i64,
    end_ms: Option<i64>,
    /// -1 when no rate was reported.
    min_fps: f64,
}

impl From<DegradedRow> for DegradedPeriod {
    fn from(r: DegradedRow) -> Self {
        DegradedPeriod {
            camera: r.camera,
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            min_fps: Some(r.min_fps).filter(|f| *f >= 0.0),
        }
    }
}

/// The periods of `site` that overlap [from_ms, to_ms).
pub async fn degraded_periods(
    db: &Db,
    site: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DegradedPeriod>, DbError> {
    let rows: Vec<DegradedRow> = sqlx::query_as(
        "SELECT camera, start_ms, end_ms, min_fps FROM camera_degraded \
         WHERE site = $1 AND start_ms < $2 AND (end_ms IS NULL OR end_ms > $3)",
    )
    .bind(site)
    .bind(to_ms)
    .bind(from_ms)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(DegradedPeriod::from).collect())
}

/// A camera's analysis rates now, as its agent last reported them.
#[derive(sqlx::FromRow)]
pub struct CameraRates {
    pub agent: String,
    pub camera: String,
    /// 1 while its counts are unreliable.
    pub degraded: i64,
    pub effective_fps: Option<f64>,
    pub reliable_fps: Option<f64>,
}

/// The rates of every camera of `site`.
pub async fn camera_rates(db: &Db, site: &str) -> Result<Vec<CameraRates>, DbError> {
    Ok(sqlx::query_as(
        "SELECT agent, camera, degraded, effective_fps, reliable_fps FROM cameras WHERE site = $1",
    )
    .bind(site)
    .fetch_all(&db.pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use sqlx::Row;

    #[tokio::test]
    async fn silent_agents_go_stale_once_and_come_back() {
        let (db, _d) = testing::sqlite().await;
        let old = now_ms() - 600_000;
        sqlx::query(
            "INSERT INTO agents (site, agent, state, version, cameras, last_seen_ms, state_since_ms, \
             watchlist_version, watchlist_needs_full) VALUES ('pier', 'a1', 'online', '1', '[]', $1, $1, 0, 0)",
        )
        .bind(old)
        .execute(&db.pool)
        .await
        .unwrap();
        let stale = mark_stale(&db, 120_000).await.unwrap();
        assert_eq!(stale, vec![("pier".to_string(), "a1".to_string())]);
        assert!(mark_stale(&db, 120_000).await.unwrap().is_empty());
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM system_alerts WHERE kind = 'stale_agent' AND cleared_ms IS NULL",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
        assert_eq!(n, 1);
    }
}
