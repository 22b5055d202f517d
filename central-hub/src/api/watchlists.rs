//! Watchlists and alert review API. Entries are managed by supervisors and admins; operators and
//! supervisors review alerts (two different people confirm). Every read of enrolled photos, every
//! enrolment and every decision is audited.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::{ApiError, ApiJson, ApiResult, AppState, Session};
use crate::auth::access::{ADMINS, ALERT_REOPENERS, ALERT_REVIEWERS, WATCHERS, WATCHLIST_OWNERS};
use crate::policies::{self, ListOverview, PolicyChange, PolicyError};
use crate::review::{self, Decision, Review, ReviewError};
use crate::watchlists::{self, Entry, NewEntry, WatchlistError};

#[derive(OpenApi)]
#[openapi(paths(
    list_entries,
    create_entry,
    one_entry,
    withdraw_entry,
    entry_photo,
    sync_status,
    list_policies,
    set_policy,
    review_alert,
    reopen_alert,
    alert_reviews
))]
pub struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/watchlists/entries",
            get(list_entries).post(create_entry),
        )
        .route("/api/watchlists/entries/{id}", get(one_entry))
        .route(
            "/api/watchlists/entries/{id}/withdraw",
            post(withdraw_entry),
        )
        .route(
            "/api/watchlists/entries/{id}/photos/{photo}",
            get(entry_photo),
        )
        .route("/api/watchlists/status", get(sync_status))
        .route("/api/watchlists/policies", get(list_policies))
        .route("/api/watchlists/policies/{list}", put(set_policy))
        .route("/api/alerts/{id}/review", post(review_alert))
        .route("/api/alerts/{id}/reopen", post(reopen_alert))
        .route("/api/alerts/{id}/reviews", get(alert_reviews))
}

impl From<WatchlistError> for ApiError {
    fn from(e: WatchlistError) -> Self {
        match e {
            WatchlistError::Invalid(_) => ApiError::bad_request(e.to_string()),
            WatchlistError::NotFound(_) => ApiError::not_found(e.to_string()),
            WatchlistError::Photo { index, code, .. } => {
                let mut err =
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).with_code(code);
                err.details = Some(serde_json::json!({ "index": index }));
                err
            }
            WatchlistError::Face { index, ref error } => {
                super::photo_error(error, e.to_string(), Some(index))
            }
            WatchlistError::Db(d) => d.into(),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::UnknownList(_) => ApiError::not_found(e.to_string()),
            PolicyError::Invalid(_) => ApiError::bad_request(e.to_string()),
            PolicyError::Db(d) => d.into(),
            PolicyError::Revision(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::NotFound(_) => ApiError::not_found(e.to_string()),
            ReviewError::NoNote => ApiError::bad_request(e.to_string()).with_code("note_required"),
            ReviewError::Enroller => {
                ApiError::forbidden(e.to_string()).with_code("enroller_cannot_confirm")
            }
            ReviewError::NotDismissed(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string()).with_code("alert_not_dismissed")
            }
            ReviewError::Final(_) | ReviewError::SamePerson | ReviewError::Conflict => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ReviewError::Db(d) => d.into(),
        }
    }
}

/// Each list's size, policy, the threshold agents apply for that size, and what it costs: expected false
/// candidates per 1,000 passers-by and expected share of listed people missed (operator, supervisor, admin).
#[utoipa::path(get, path = "/api/watchlists/policies", tag = "watchlists", security(("bearer" = [])),
    responses((status = 200, body = [ListOverview]), (status = 403, body = super::ErrorBody)))]
pub async fn list_policies(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<ListOverview>>> {
    session.require(WATCHERS)?;
    Ok(Json(policy_overview(&s).await?))
}

/// Sets a list's target false-alert rate and tolerated miss rate (admin). Audited as `watchlist.policy`;
/// agents get it with their next sync and re-derive their thresholds.
#[utoipa::path(put, path = "/api/watchlists/policies/{list}", tag = "watchlists", security(("bearer" = [])),
    params(("list" = String, Path, description = "wanted or missing")), request_body = PolicyChange,
    responses((status = 200, body = [ListOverview]), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn set_policy(
    State(s): State<AppState>,
    session: Session,
    Path(list): Path<String>,
    ApiJson(change): ApiJson<PolicyChange>,
) -> ApiResult<Json<Vec<ListOverview>>> {
    session.require(ADMINS)?;
    policies::set(&s.db, &list, change, &session.user.username).await?;
    s.audit
        .append(
            &session.user.username,
            "watchlist.policy",
            &list,
            &format!(
                "target_fpir={} max_fnir={}",
                change.target_fpir, change.max_fnir
            ),
        )
        .await?;
    s.watchlist_push.notify_one();
    Ok(Json(policy_overview(&s).await?))
}

/// The lists' overview with hub.toml's policies as defaults and its floors.
async fn policy_overview(s: &AppState) -> Result<Vec<ListOverview>, PolicyError> {
    let w = &s.cfg.watchlist;
    policies::overview(&s.db, w.policies(), w.thresholds()).await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Include withdrawn and expired entries.
    pub all: Option<bool>,
}

/// Watchlist entries, newest first (operator, supervisor, admin).
#[utoipa::path(get, path = "/api/watchlists/entries", tag = "watchlists", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = [Entry]), (status = 403, body = super::ErrorBody)))]
pub async fn list_entries(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Entry>>> {
    session.require(WATCHERS)?;
    Ok(Json(watchlists::list(&s.db, q.all.unwrap_or(false)).await?))
}

/// Creates an entry from photos and/or a linked identity record (supervisor, admin). Every photo must show
/// one usable face, or nothing is stored (422 names the photo and why). Audited as `watchlist.enrol`; the
/// agents of the covered sites receive it at once.
#[utoipa::path(post, path = "/api/watchlists/entries", tag = "watchlists", security(("bearer" = [])), request_body = NewEntry,
    responses((status = 201, body = Entry), (status = 400, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn create_entry(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<NewEntry>,
) -> ApiResult<(StatusCode, Json<Entry>)> {
    session.require(WATCHLIST_OWNERS)?;
    let (entry, version) =
        watchlists::create(&s.db, s.faces.as_ref(), req, &session.user.username).await?;
    s.audit
        .append(
            &session.user.username,
            "watchlist.enrol",
            &entry.id,
            &format!(
                "list={} case={} legal_basis={} templates={} version={version}",
                entry.list, entry.case_ref, entry.legal_basis, entry.templates
            ),
        )
        .await?;
    s.watchlist_push.notify_one();
    Ok((StatusCode::CREATED, Json(entry)))
}

/// One entry (operator, supervisor, admin).
#[utoipa::path(get, path = "/api/watchlists/entries/{id}", tag = "watchlists", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Entry), (status = 404, body = super::ErrorBody)))]
pub async fn one_entry(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<Entry>> {
    session.require(WATCHERS)?;
    Ok(Json(watchlists::get(&s.db, &id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct WithdrawRequest {
    /// Why (case closed, order lifted, person found).
    pub reason: String,
}

/// Withdraws an entry (supervisor, admin); agents drop it at the next sync. Audited as `watchlist.withdraw`.
#[utoipa::path(post, path = "/api/watchlists/entries/{id}/withdraw", tag = "watchlists", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = WithdrawRequest,
    responses((status = 200, body = Entry), (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn withdraw_entry(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WithdrawRequest>,
) -> ApiResult<Json<Entry>> {
    session.require(WATCHLIST_OWNERS)?;
    if req.reason.trim().is_empty() {
        return Err(ApiError::bad_request("a reason is required"));
    }
    let version = watchlists::withdraw(&s.db, &id, "remove").await?;
    s.audit
        .append(
            &session.user.username,
            "watchlist.withdraw",
            &id,
            &format!("{} (version {version})", req.reason.trim()),
        )
        .await?;
    s.watchlist_push.notify_one();
    Ok(Json(watchlists::get(&s.db, &id).await?))
}

/// An enrolled photo (operator, supervisor, admin), for comparison with an alert's snapshot. Audited as
/// `watchlist.photo`.
#[utoipa::path(get, path = "/api/watchlists/entries/{id}/photos/{photo}", tag = "watchlists", security(("bearer" = [])),
    params(("id" = String, Path), ("photo" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 404, body = super::ErrorBody)))]
pub async fn entry_photo(
    State(s): State<AppState>,
    session: Session,
    Path((id, photo)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    session.require(WATCHERS)?;
    let bytes = watchlists::photo(&s.db, &id, &photo).await?;
    s.audit
        .append(&session.user.username, "watchlist.photo", &id, &photo)
        .await?;
    Ok(super::image_response(bytes))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentSync {
    pub site: String,
    pub agent: String,
    pub state: String,
    pub held_version: i64,
    pub in_sync: bool,
    pub needs_full: bool,
    pub last_error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    pub version: i64,
    pub agents: Vec<AgentSync>,
}

/// The hub's watchlist version and which version each agent holds.
#[utoipa::path(get, path = "/api/watchlists/status", tag = "watchlists", security(("bearer" = [])),
    responses((status = 200, body = SyncStatus), (status = 403, body = super::ErrorBody)))]
pub async fn sync_status(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<SyncStatus>> {
    session.require(WATCHERS)?;
    let version = watchlists::current_version(&s.db).await?;
    let agents = crate::agents::watchlists_held(&s.db)
        .await?
        .into_iter()
        .map(|a| AgentSync {
            in_sync: a.version == version,
            site: a.site,
            agent: a.agent,
            state: a.state,
            held_version: a.version,
            needs_full: a.needs_full,
            last_error: a.error,
        })
        .collect();
    Ok(Json(SyncStatus { version, agents }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReviewRequest {
    pub decision: Decision,
    /// Required: what was compared and why.
    pub note: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ReviewResult {
    /// `confirmed_once` (waiting for a second person), `confirmed`, `dismissed`, or `candidate` after a
    /// reopening.
    pub status: String,
}

/// Confirms or dismisses a candidate alert (operator, supervisor). A confirmation becomes final only when a
/// second, different person confirms too (409 for the same person); the user who enrolled the watchlist
/// entry cannot confirm its alerts (403, code `enroller_cannot_confirm`). The note must have visible text
/// (400, code `note_required`: blanks and zero-width characters do not count). A dismissal keeps the same
/// track from raising this entry again until a supervisor reopens it. Audited as `alert.review`.
#[utoipa::path(post, path = "/api/alerts/{id}/review", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReviewRequest,
    responses((status = 200, body = ReviewResult), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody, description = "Not a reviewer, or the entry's enroller confirming (code `enroller_cannot_confirm`)"),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn review_alert(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReviewRequest>,
) -> ApiResult<Json<ReviewResult>> {
    session.require(ALERT_REVIEWERS)?;
    let status =
        review::review(&s.db, &id, &session.user.username, req.decision, &req.note).await?;
    s.audit
        .append(
            &session.user.username,
            "alert.review",
            &id,
            &format!("{:?} -> {status}: {}", req.decision, req.note.trim()),
        )
        .await?;
    live_review(&s, &id).await?;
    Ok(Json(ReviewResult { status }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReopenRequest {
    /// Required, with visible text: why the dismissal is being questioned.
    pub reason: String,
}

/// Sends a dismissed alert back to review (supervisor): it becomes `candidate` again, needs two new
/// confirmations to become final, and its track may raise the entry again. 409 (code `alert_not_dismissed`)
/// for an alert that is not dismissed; 400 (code `note_required`) without a visible reason. Audited as
/// `alert.reopen` with the reason.
#[utoipa::path(post, path = "/api/alerts/{id}/reopen", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = ReopenRequest,
    responses((status = 200, body = ReviewResult), (status = 400, body = super::ErrorBody),
              (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn reopen_alert(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReopenRequest>,
) -> ApiResult<Json<ReviewResult>> {
    session.require(ALERT_REOPENERS)?;
    let status = review::reopen(&s.db, &id, &session.user.username, &req.reason).await?;
    s.audit
        .append(
            &session.user.username,
            "alert.reopen",
            &id,
            &format!("dismissed -> {status}: {}", req.reason.trim()),
        )
        .await?;
    live_review(&s, &id).await?;
    Ok(Json(ReviewResult { status }))
}

/// Tells live clients that an alert's review changed.
async fn live_review(s: &AppState, id: &str) -> ApiResult<()> {
    if let Some((site, agent)) = crate::alerts::origin(&s.db, id).await? {
        crate::live::announce(
            &s.db,
            &s.ingest,
            crate::live::Live {
                kind: "review",
                site,
                agent,
                id: Some(id.to_string()),
            },
        )
        .await;
    }
    Ok(())
}

/// The review history of an alert (operator, supervisor, admin).
#[utoipa::path(get, path = "/api/alerts/{id}/reviews", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = [Review]), (status = 403, body = super::ErrorBody)))]
pub async fn alert_reviews(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Review>>> {
    session.require(WATCHERS)?;
    Ok(Json(review::reviews(&s.db, &id).await?))
}
