//! What operators watch: agents and cameras, counts, health alerts, candidate alerts, and (for supervisors)
//! the audit log. Reading an alert or its snapshot is reading biometric data, so it is audited. The handlers
//! check the role and call the owners: `agents` (health), `counts`, `alerts`, `audit`.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiResult, AppState, Session, AUDITORS, WATCHERS};
use crate::agents::{AgentHealth, SystemAlert};
use crate::alerts::{self, AlertSummary, Snapshot};
use crate::audit::{AuditEntry, ChainCheck};
use crate::counts::{CountRow, LineNow};

/// Agents with their cameras.
#[utoipa::path(get, path = "/api/agents", tag = "monitor", security(("bearer" = [])),
    responses((status = 200, body = [AgentHealth]), (status = 401, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody)))]
pub async fn agents(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<AgentHealth>>> {
    session.require(WATCHERS)?;
    Ok(Json(crate::agents::list(&s.db).await?))
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
    Ok(Json(
        crate::counts::per_bucket(&s.db, &site, bucket, from, to).await?,
    ))
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
    Ok(Json(crate::counts::lines(&s.db, &site).await?))
}

/// Health alerts the hub raised (agents gone silent), newest first.
#[utoipa::path(get, path = "/api/system-alerts", tag = "monitor", security(("bearer" = [])),
    responses((status = 200, body = [SystemAlert]), (status = 403, body = super::ErrorBody)))]
pub async fn system_alerts(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<SystemAlert>>> {
    session.require(WATCHERS)?;
    Ok(Json(crate::agents::system_alerts(&s.db).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AlertQuery {
    /// One status or several, comma-separated (`candidate,confirmed_once`: still open).
    pub status: Option<String>,
    pub site: Option<String>,
    pub list: Option<String>,
    pub limit: Option<i64>,
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
    Ok(Json(
        alerts::list(
            &s.db,
            &q.status.unwrap_or_default(),
            &q.site.unwrap_or_default(),
            &q.list.unwrap_or_default(),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?,
    ))
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
    let one = alerts::get(&s.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    s.audit
        .append(&session.user.username, "alert.view", &id, "")
        .await?;
    let mut one = [one];
    alerts::name_second_entries(&s.db, &mut one).await?;
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
    let jpeg = match alerts::snapshot(&s.db, &id).await? {
        Snapshot::NoAlert => return Err(ApiError::not_found(format!("no alert {id}"))),
        Snapshot::Deleted => {
            return Err(ApiError::not_found(
                "this alert's snapshot was deleted by the retention policy",
            ))
        }
        Snapshot::Jpeg(jpeg) => jpeg,
    };
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
