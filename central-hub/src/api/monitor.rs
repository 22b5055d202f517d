//! What operators watch: agents and cameras, counts, health alerts, candidate alerts, and (for supervisors)
//! the audit log. Reading an alert or its snapshot is reading biometric data, so it is audited.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{ApiError, ApiResult, AppState, Session, AUDITORS, WATCHERS};
use crate::audit::{AuditEntry, ChainCheck};
use crate::db::opt_text;

/// A nullable DOUBLE PRECISION column.
fn opt_f64(r: &sqlx::any::AnyRow, col: &str) -> Option<f64> {
    r.try_get::<Option<f64>, _>(col).ok().flatten()
}

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

/// Agents with their cameras.
#[utoipa::path(get, path = "/api/agents", tag = "monitor", security(("bearer" = [])),
    responses((status = 200, body = [AgentHealth]), (status = 401, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody)))]
pub async fn agents(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<AgentHealth>>> {
    session.require(WATCHERS)?;
    let rows = sqlx::query(
        "SELECT site, agent, state, version, last_seen_ms, state_since_ms, watchlist_version, \
         watchlist_needs_full, watchlist_error FROM agents ORDER BY site, agent",
    )
    .fetch_all(&s.db.pool)
    .await?;
    let cams = sqlx::query(
        "SELECT site, agent, camera, state, fps, detail, reconnects, updated_ms, effective_fps, sampling_fps, \
         reliable_fps, degraded, degraded_reason, degraded_since_ms FROM cameras \
         ORDER BY site, agent, camera",
    )
    .fetch_all(&s.db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let site: String = r.try_get("site")?;
        let agent: String = r.try_get("agent")?;
        let cameras = cams
            .iter()
            .filter(|c| {
                c.try_get::<String, _>("site").ok().as_deref() == Some(site.as_str())
                    && c.try_get::<String, _>("agent").ok().as_deref() == Some(agent.as_str())
            })
            .map(|c| -> Result<CameraHealth, sqlx::Error> {
                Ok(CameraHealth {
                    camera: c.try_get("camera")?,
                    state: c.try_get("state")?,
                    fps: c.try_get::<Option<f64>, _>("fps").ok().flatten(),
                    detail: opt_text(c, "detail"),
                    reconnects: c.try_get("reconnects")?,
                    updated_ms: c.try_get("updated_ms")?,
                    effective_fps: opt_f64(c, "effective_fps"),
                    sampling_fps: opt_f64(c, "sampling_fps"),
                    reliable_fps: opt_f64(c, "reliable_fps"),
                    degraded: c.try_get::<i64, _>("degraded")? == 1,
                    degraded_reason: opt_text(c, "degraded_reason"),
                    degraded_since_ms: c
                        .try_get::<Option<i64>, _>("degraded_since_ms")
                        .ok()
                        .flatten(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(AgentHealth {
            state: r.try_get("state")?,
            version: r.try_get("version")?,
            last_seen_ms: r.try_get("last_seen_ms")?,
            state_since_ms: r.try_get("state_since_ms")?,
            watchlist_version: r.try_get("watchlist_version")?,
            watchlist_needs_full: r.try_get::<i64, _>("watchlist_needs_full")? == 1,
            watchlist_error: opt_text(r, "watchlist_error"),
            cameras,
            site,
            agent,
        });
    }
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CountQuery {
    /// `hour` or `day` (local days, see `utc_offset_hours`).
    pub bucket: Option<String>,
    /// From this instant (ms since the epoch), inclusive. Default: 7 days ago.
    pub from_ms: Option<i64>,
    /// To this instant, exclusive. Default: now.
    pub to_ms: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CountRow {
    pub camera: String,
    pub line: String,
    pub bucket_start_ms: i64,
    pub entries: i64,
    pub exits: i64,
    /// The camera was analysed below the rate counting needs for part of the bucket: these counts are
    /// unreliable (too low, as a rule).
    pub degraded: bool,
    /// How long, in the bucket, the camera was degraded (ms).
    pub degraded_ms: i64,
    /// The lowest effective analysis rate reported while it was.
    pub degraded_min_fps: Option<f64>,
}

/// A degraded period of a camera, as stored from its `camera_status` reports.
struct DegradedPeriod {
    camera: String,
    start_ms: i64,
    end_ms: Option<i64>,
    min_fps: Option<f64>,
}

/// The periods of `site` that overlap [from_ms, to_ms).
async fn degraded_periods(
    db: &crate::db::Db,
    site: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DegradedPeriod>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT camera, start_ms, end_ms, min_fps FROM camera_degraded \
         WHERE site = $1 AND start_ms < $2 AND (end_ms IS NULL OR end_ms > $3)",
    )
    .bind(site)
    .bind(to_ms)
    .bind(from_ms)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DegradedPeriod {
                camera: r.try_get("camera")?,
                start_ms: r.try_get("start_ms")?,
                end_ms: r.try_get::<Option<i64>, _>("end_ms").ok().flatten(),
                min_fps: Some(r.try_get::<f64, _>("min_fps")?).filter(|f| *f >= 0.0),
            })
        })
        .collect()
}

/// Marks `row` with the degraded periods of its camera that overlap its bucket [start, start + len).
fn mark_degraded(row: &mut CountRow, len_ms: i64, periods: &[DegradedPeriod], now_ms: i64) {
    let (start, end) = (row.bucket_start_ms, row.bucket_start_ms + len_ms);
    for p in periods.iter().filter(|p| p.camera == row.camera) {
        let p_end = p.end_ms.unwrap_or(now_ms).max(p.start_ms);
        // A period that began and ended in the same instant still touched the bucket it lies in.
        let touches = if p_end > p.start_ms {
            p.start_ms < end && p_end > start
        } else {
            (start..end).contains(&p.start_ms)
        };
        if !touches {
            continue;
        }
        let overlap = p_end.min(end) - p.start_ms.max(start);
        row.degraded = true;
        row.degraded_ms = (row.degraded_ms + overlap).min(len_ms);
        if let Some(f) = p.min_fps {
            row.degraded_min_fps = Some(row.degraded_min_fps.map_or(f, |m: f64| m.min(f)));
        }
    }
}

/// Entries and exits per line per hour or day; buckets during which the line's camera was analysed below the
/// rate counting needs are marked `degraded`.
#[utoipa::path(get, path = "/api/sites/{site}/counts", tag = "monitor", security(("bearer" = [])),
    params(("site" = String, Path), CountQuery),
    responses((status = 200, body = [CountRow]), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody)))]
pub async fn counts(
    State(s): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    Query(q): Query<CountQuery>,
) -> ApiResult<Json<Vec<CountRow>>> {
    session.require(WATCHERS)?;
    let bucket = q.bucket.as_deref().unwrap_or("hour");
    if bucket != "hour" && bucket != "day" {
        return Err(ApiError::bad_request("bucket must be `hour` or `day`"));
    }
    let to = q.to_ms.unwrap_or_else(crate::db::now_ms);
    let from = q.from_ms.unwrap_or(to - 7 * 86_400_000);
    if from > to {
        return Err(ApiError::bad_request("from_ms is after to_ms"));
    }
    let rows = sqlx::query(
        "SELECT camera, line, bucket_start_ms, entries, exits FROM counts \
         WHERE site = $1 AND bucket = $2 AND bucket_start_ms >= $3 AND bucket_start_ms < $4 \
         ORDER BY bucket_start_ms, camera, line",
    )
    .bind(&site)
    .bind(bucket)
    .bind(from)
    .bind(to)
    .fetch_all(&s.db.pool)
    .await?;
    let len_ms = if bucket == "day" {
        86_400_000
    } else {
        3_600_000
    };
    let periods = degraded_periods(&s.db, &site, from, to.saturating_add(len_ms)).await?;
    let now = crate::db::now_ms();
    let out = rows
        .iter()
        .map(|r| -> Result<CountRow, sqlx::Error> {
            let mut row = CountRow {
                camera: r.try_get("camera")?,
                line: r.try_get("line")?,
                bucket_start_ms: r.try_get("bucket_start_ms")?,
                entries: r.try_get("entries")?,
                exits: r.try_get("exits")?,
                degraded: false,
                degraded_ms: 0,
                degraded_min_fps: None,
            };
            mark_degraded(&mut row, len_ms, &periods, now);
            Ok(row)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(out))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LineNow {
    pub agent: String,
    pub camera: String,
    pub line: String,
    pub total_entries: i64,
    pub total_exits: i64,
    /// Site occupancy as the agent last reported it.
    pub occupancy: i64,
    pub ts_ms: i64,
    /// The line's camera is analysed below the rate counting needs now: its counts are unreliable.
    pub degraded: bool,
    /// The camera's effective analysis rate and the rate its counts need, as last reported.
    pub effective_fps: Option<f64>,
    pub reliable_fps: Option<f64>,
}

/// Totals per line now (since each agent started).
#[utoipa::path(get, path = "/api/sites/{site}/lines", tag = "monitor", security(("bearer" = [])),
    params(("site" = String, Path)),
    responses((status = 200, body = [LineNow]), (status = 403, body = super::ErrorBody)))]
pub async fn lines(
    State(s): State<AppState>,
    session: Session,
    Path(site): Path<String>,
) -> ApiResult<Json<Vec<LineNow>>> {
    session.require(WATCHERS)?;
    let rows = sqlx::query(
        "SELECT l.agent, l.camera, l.line, l.total_entries, l.total_exits, l.occupancy, l.ts_ms, \
         COALESCE(c.degraded, 0) AS degraded, c.effective_fps, c.reliable_fps FROM line_state l \
         LEFT JOIN cameras c ON c.site = l.site AND c.agent = l.agent AND c.camera = l.camera \
         WHERE l.site = $1 ORDER BY l.agent, l.camera, l.line",
    )
    .bind(&site)
    .fetch_all(&s.db.pool)
    .await?;
    let out = rows
        .iter()
        .map(|r| -> Result<LineNow, sqlx::Error> {
            Ok(LineNow {
                agent: r.try_get("agent")?,
                camera: r.try_get("camera")?,
                line: r.try_get("line")?,
                total_entries: r.try_get("total_entries")?,
                total_exits: r.try_get("total_exits")?,
                occupancy: r.try_get("occupancy")?,
                ts_ms: r.try_get("ts_ms")?,
                degraded: r.try_get::<i64, _>("degraded")? == 1,
                effective_fps: opt_f64(r, "effective_fps"),
                reliable_fps: opt_f64(r, "reliable_fps"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(out))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemAlert {
    pub id: String,
    pub kind: String,
    pub site: String,
    pub agent: String,
    pub detail: String,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
}

/// Health alerts the hub raised (agents gone silent), newest first.
#[utoipa::path(get, path = "/api/system-alerts", tag = "monitor", security(("bearer" = [])),
    responses((status = 200, body = [SystemAlert]), (status = 403, body = super::ErrorBody)))]
pub async fn system_alerts(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<SystemAlert>>> {
    session.require(WATCHERS)?;
    let rows = sqlx::query(
        "SELECT id, kind, site, agent, detail, raised_ms, cleared_ms FROM system_alerts \
         ORDER BY raised_ms DESC LIMIT 500",
    )
    .fetch_all(&s.db.pool)
    .await?;
    let out = rows
        .iter()
        .map(|r| -> Result<SystemAlert, sqlx::Error> {
            Ok(SystemAlert {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                site: r.try_get("site")?,
                agent: r.try_get("agent")?,
                detail: r.try_get("detail")?,
                raised_ms: r.try_get("raised_ms")?,
                cleared_ms: r.try_get::<Option<i64>, _>("cleared_ms").ok().flatten(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(out))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertSummary {
    pub id: String,
    pub site: String,
    pub agent: String,
    pub camera: String,
    pub track_id: i64,
    pub list: String,
    pub entry_id: String,
    pub similarity: f64,
    pub threshold: f64,
    pub votes: i64,
    pub faces_used: i64,
    pub watchlist_version: i64,
    pub ts_ms: i64,
    /// `candidate`, `confirmed_once` (one of the two confirmations), `confirmed` or `dismissed`.
    pub status: String,
    /// `camera` (a watchlist match at a camera) or `lodging` (a check-in of a wanted person).
    pub source: String,
    /// For lodging alerts, the stay id.
    pub detail: Option<String>,
    pub has_snapshot: bool,
    /// The watchlist entry's label (who the candidate may be), when the entry still exists.
    pub label: Option<String>,
    /// What the agent's decision rests on (absent for older agents and lodging alerts).
    pub evidence: Option<AlertEvidence>,
}

/// The calibrated evidence an agent sends with a candidate (protocol `MatchEvidence`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AlertEvidence {
    /// Mean quality (0..1) of the faces fused into the decision.
    pub face_quality: f32,
    /// The next most similar entry and its similarity.
    pub second_entry: Option<String>,
    pub second_similarity: Option<f32>,
    /// The label of that entry, when it still exists.
    #[serde(default)]
    pub second_label: Option<String>,
    /// Entries on the matched list at the agent.
    pub list_entries: u64,
    /// The list's target and expected false-alert rate per passer-by at its operating point.
    pub target_fpir: Option<f64>,
    pub expected_fpir: Option<f64>,
    /// Chance that one comparison with a stranger scores this high (model calibration).
    pub score_fmr: Option<f64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AlertQuery {
    /// One status or several, comma-separated (`candidate,confirmed_once`: still open).
    pub status: Option<String>,
    pub site: Option<String>,
    pub list: Option<String>,
    pub limit: Option<i64>,
}

/// The summary columns, as a macro so queries stay literal strings (sqlx refuses SQL built at run time).
macro_rules! alert_columns {
    () => {
        "id, site, agent, camera, track_id, list, entry_id, similarity, threshold, votes, faces_used, \
         watchlist_version, ts_ms, status, source, detail, \
         CASE WHEN snapshot IS NULL THEN 0 ELSE 1 END AS has_snapshot, \
         (SELECT label FROM watchlist_entries w WHERE w.id = alerts.entry_id) AS label, evidence"
    };
}

fn alert_row(r: &sqlx::any::AnyRow) -> Result<AlertSummary, sqlx::Error> {
    Ok(AlertSummary {
        id: r.try_get("id")?,
        site: r.try_get("site")?,
        agent: r.try_get("agent")?,
        camera: r.try_get("camera")?,
        track_id: r.try_get("track_id")?,
        list: r.try_get("list")?,
        entry_id: r.try_get("entry_id")?,
        similarity: r.try_get("similarity")?,
        threshold: r.try_get("threshold")?,
        votes: r.try_get("votes")?,
        faces_used: r.try_get("faces_used")?,
        watchlist_version: r.try_get("watchlist_version")?,
        ts_ms: r.try_get("ts_ms")?,
        status: r.try_get("status")?,
        source: r.try_get("source")?,
        detail: opt_text(r, "detail"),
        has_snapshot: r.try_get::<i64, _>("has_snapshot")? == 1,
        label: opt_text(r, "label"),
        evidence: opt_text(r, "evidence")
            .filter(|t| !t.is_empty())
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// Candidate alerts, newest first, filtered by status, site and list. Snapshots are fetched one by one
/// (and audited) through `/api/alerts/{id}/snapshot`.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = [AlertSummary]), (status = 403, body = super::ErrorBody)))]
pub async fn alerts(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Json<Vec<AlertSummary>>> {
    session.require(WATCHERS)?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE ($1 = '' OR (',' || $1 || ',') LIKE ('%,' || status || ',%')) AND ($2 = '' OR site = $2) \
         AND ($3 = '' OR list = $3) ORDER BY ts_ms DESC LIMIT $4"
    ))
    .bind(q.status.unwrap_or_default())
    .bind(q.site.unwrap_or_default())
    .bind(q.list.unwrap_or_default())
    .bind(q.limit.unwrap_or(100).clamp(1, 1000))
    .fetch_all(&s.db.pool)
    .await?;
    let mut out = rows.iter().map(alert_row).collect::<Result<Vec<_>, _>>()?;
    name_second_entries(&s.db, &mut out).await?;
    Ok(Json(out))
}

/// Fills in the label of each alert's runner-up entry, so reviewers read a name, not an id.
async fn name_second_entries(
    db: &crate::db::Db,
    alerts: &mut [AlertSummary],
) -> Result<(), sqlx::Error> {
    // A look-alike tends to come back across alerts: one query per distinct entry, not per alert.
    let mut labels: std::collections::HashMap<String, Option<String>> = Default::default();
    for a in alerts.iter_mut() {
        let Some(ev) = a.evidence.as_mut() else {
            continue;
        };
        let Some(id) = ev.second_entry.clone() else {
            continue;
        };
        if !labels.contains_key(&id) {
            let label = sqlx::query("SELECT label FROM watchlist_entries WHERE id = $1")
                .bind(&id)
                .fetch_optional(&db.pool)
                .await?
                .and_then(|r| r.try_get::<String, _>("label").ok());
            labels.insert(id.clone(), label);
        }
        ev.second_label = labels.get(&id).cloned().flatten();
    }
    Ok(())
}

/// One alert. Audited as `alert.view`.
#[utoipa::path(get, path = "/api/alerts/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = AlertSummary), (status = 404, body = super::ErrorBody)))]
pub async fn alert(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertSummary>> {
    session.require(WATCHERS)?;
    let row = sqlx::query(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE id = $1"
    ))
    .bind(&id)
    .fetch_optional(&s.db.pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    s.audit
        .append(&session.user.username, "alert.view", &id, "")
        .await?;
    let mut one = [alert_row(&row)?];
    name_second_entries(&s.db, &mut one).await?;
    let [one] = one;
    Ok(Json(one))
}

/// The face snapshot of an alert (JPEG). Audited as `alert.snapshot`. 404 once retention deleted it.
#[utoipa::path(get, path = "/api/alerts/{id}/snapshot", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>),
              (status = 404, body = super::ErrorBody)))]
pub async fn alert_snapshot(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    session.require(WATCHERS)?;
    let row = sqlx::query("SELECT snapshot FROM alerts WHERE id = $1")
        .bind(&id)
        .fetch_optional(&s.db.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    let jpeg: Option<Vec<u8>> = row.try_get("snapshot").ok().flatten();
    let jpeg = jpeg.ok_or_else(|| {
        ApiError::not_found("this alert's snapshot was deleted by the retention policy")
    })?;
    s.audit
        .append(&session.user.username, "alert.snapshot", &id, "")
        .await?;
    Ok(super::image_response(jpeg))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub actor: Option<String>,
    /// e.g. `alert.` for every alert action.
    pub action: Option<String>,
    /// Page backwards from this sequence number.
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// The audit log, newest first (supervisor, admin).
#[utoipa::path(get, path = "/api/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = [AuditEntry]), (status = 403, body = super::ErrorBody)))]
pub async fn audit(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    session.require(AUDITORS)?;
    Ok(Json(
        s.audit
            .list(
                q.actor.as_deref(),
                q.action.as_deref(),
                q.before,
                q.limit.unwrap_or(100),
            )
            .await?,
    ))
}

/// Recomputes the whole keyed hash chain, compares it with every checkpoint of its head, and reports the
/// first problem: an edited or recomputed entry, a moved switch-over, or entries deleted from the tail.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = ChainCheck), (status = 403, body = super::ErrorBody)))]
pub async fn audit_verify(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<ChainCheck>> {
    session.require(AUDITORS)?;
    let check = s.audit.verify().await.map_err(|e| match e {
        crate::audit::AuditError::Db(d) => ApiError::from(d),
        other => ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            other.to_string(),
        ),
    })?;
    s.audit
        .append(
            &session.user.username,
            "audit.verify",
            "",
            if check.ok { "ok" } else { "broken" },
        )
        .await?;
    Ok(Json(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(camera: &str, start: i64) -> CountRow {
        CountRow {
            camera: camera.into(),
            line: "l".into(),
            bucket_start_ms: start,
            entries: 3,
            exits: 1,
            degraded: false,
            degraded_ms: 0,
            degraded_min_fps: None,
        }
    }

    fn period(camera: &str, start_ms: i64, end_ms: Option<i64>, min_fps: f64) -> DegradedPeriod {
        DegradedPeriod {
            camera: camera.into(),
            start_ms,
            end_ms,
            min_fps: Some(min_fps).filter(|f| *f >= 0.0),
        }
    }

    #[test]
    fn buckets_are_marked_by_the_periods_of_their_own_camera_that_overlap_them() {
        const H: i64 = 3_600_000;
        let periods = [
            // 10 minutes at the end of hour 0 and into hour 1.
            period("gate", 50 * 60_000, Some(H + 5 * 60_000), 1.4),
            // Another camera, all of hour 1.
            period("hall", H, Some(2 * H), 0.9),
            // Open since the middle of hour 3 (now: 3.75 h).
            period("gate", 3 * H + H / 2, None, -1.0),
        ];
        let now = 3 * H + 3 * H / 4;
        let marked = |start: i64| {
            let mut r = row("gate", start);
            mark_degraded(&mut r, H, &periods, now);
            (r.degraded, r.degraded_ms, r.degraded_min_fps)
        };
        assert_eq!(marked(0), (true, 10 * 60_000, Some(1.4)));
        assert_eq!(marked(H), (true, 5 * 60_000, Some(1.4)));
        assert_eq!(marked(2 * H), (false, 0, None));
        assert_eq!(marked(3 * H), (true, H / 4, None));
        // A period ending exactly where a bucket starts does not touch it.
        let mut r = row("hall", 2 * H);
        mark_degraded(&mut r, H, &periods, now);
        assert!(!r.degraded);
    }
}
