//! Exams API: sessions, candidate registration, check-in by 1:1 face verification, manual decisions and the
//! session report. Every check-in, manual decision, history read and report read is audited; the live photo
//! taken at the door is never stored.
//!
//! Roles: supervisors and admins set sessions up (create, register candidates, assign exam staff);
//! exam staff, supervisors and admins list and read sessions, check candidates in, take manual decisions and
//! read the report. Exam staff do so only for the sessions they run (created or were assigned to): anything
//! else is refused with 403 `exam_not_assigned`, the same answer whether the session exists or not.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::{ApiError, ApiJson, ApiResult, AppState, ErrorBody, Session};
use crate::auth::access::{EXAM_ORGANISERS, EXAM_STAFF};
use crate::auth::Role;
use crate::exams::{
    self, CandidateEntry, CandidateStatus, ExamDecision, ExamError, ExamReport, ExamSession,
    FailedCandidate, Method, NewSession, Outcome, RegisteredCandidate, Registration, ReportLine,
    VenueKind,
};

#[derive(OpenApi)]
#[openapi(
    paths(
        create_session,
        list_sessions,
        get_session,
        register_candidates,
        checkin,
        decision,
        history,
        report,
        list_staff,
        assign_staff,
        unassign_staff
    ),
    components(schemas(
        NewSession,
        ExamSession,
        VenueKind,
        RegisterRequest,
        CandidateEntry,
        Registration,
        RegisteredCandidate,
        FailedCandidate,
        CheckinRequest,
        CheckinResponse,
        DecisionRequest,
        ExamDecision,
        Outcome,
        Method,
        ExamReport,
        ReportLine,
        CandidateStatus,
        StaffRequest,
        ErrorBody
    )),
    tags((name = "exams", description = "Exam sessions, candidates, check-in by face and the session report"))
)]
pub struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/exams/sessions",
            get(list_sessions).post(create_session),
        )
        .route("/api/exams/sessions/{id}", get(get_session))
        .route(
            "/api/exams/sessions/{id}/candidates",
            post(register_candidates),
        )
        .route("/api/exams/sessions/{id}/checkin", post(checkin))
        .route(
            "/api/exams/sessions/{id}/candidates/{cccd}/decision",
            post(decision),
        )
        .route(
            "/api/exams/sessions/{id}/candidates/{cccd}/history",
            get(history),
        )
        .route("/api/exams/sessions/{id}/report", get(report))
        .route(
            "/api/exams/sessions/{id}/staff",
            get(list_staff).post(assign_staff),
        )
        .route(
            "/api/exams/sessions/{id}/staff/{username}",
            axum::routing::delete(unassign_staff),
        )
}

/// Refuses exam staff who do not run session `id`. One answer for a session that does not exist and one they
/// are not assigned to, so the route cannot be used to probe for sessions.
pub async fn require_runs(s: &AppState, session: &Session, id: &str) -> ApiResult<()> {
    if session.user.role != Role::ExamStaff
        || exams::runs_session(&s.db, id, &session.user.username).await?
    {
        return Ok(());
    }
    Err(
        ApiError::forbidden("you are not assigned to this exam session; ask its supervisor")
            .with_code("exam_not_assigned"),
    )
}

impl From<ExamError> for ApiError {
    fn from(e: ExamError) -> Self {
        match e {
            ExamError::Invalid(_) => ApiError::bad_request(e.to_string()),
            ExamError::SessionNotFound(_) | ExamError::NotRegistered { .. } => {
                ApiError::not_found(e.to_string())
            }
            ExamError::Record(r) => r.into(),
            ExamError::Db(d) => d.into(),
        }
    }
}

/// Creates an exam session (supervisor, admin). Audited as `exam.session_create`.
#[utoipa::path(post, path = "/api/exams/sessions", tag = "exams", security(("bearer" = [])),
    request_body = NewSession,
    responses((status = 201, body = ExamSession), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_session(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<NewSession>,
) -> ApiResult<(StatusCode, Json<ExamSession>)> {
    session.require(EXAM_ORGANISERS)?;
    let created = exams::create_session(
        &s.db,
        &req,
        &session.user.username,
        s.cfg.faces.verify_threshold,
    )
    .await?;
    s.audit
        .append(
            &session.user.username,
            "exam.session_create",
            &created.id,
            &serde_json::json!({
                "venue_kind": created.venue_kind.as_str(),
                "venue": created.venue,
                "subject": created.subject,
                "shift": created.shift,
                "starts_ms": created.starts_ms,
                "verify_threshold": created.verify_threshold,
            })
            .to_string(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Sessions starting at or after this time (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Sessions starting before this time (ms since the epoch).
    pub to_ms: Option<i64>,
    /// At most this many (1-1000, default 100).
    pub limit: Option<i64>,
}

/// Exam sessions, latest start first (exam staff, supervisor, admin); exam staff see the sessions they run.
#[utoipa::path(get, path = "/api/exams/sessions", tag = "exams", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = [ExamSession]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_sessions(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ExamSession>>> {
    session.require(EXAM_STAFF)?;
    Ok(Json(
        exams::list_sessions(
            &s.db,
            q.from_ms,
            q.to_ms,
            q.limit.unwrap_or(100),
            s.cfg.faces.verify_threshold,
            (session.user.role == Role::ExamStaff).then_some(session.user.username.as_str()),
        )
        .await?,
    ))
}

/// One exam session (exam staff, supervisor, admin).
#[utoipa::path(get, path = "/api/exams/sessions/{id}", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = ExamSession), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<ExamSession>> {
    session.require(EXAM_STAFF)?;
    require_runs(&s, &session, &id).await?;
    Ok(Json(
        exams::get_session(&s.db, &id, s.cfg.faces.verify_threshold).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    /// 1 to 5000 candidates.
    pub candidates: Vec<CandidateEntry>,
}

/// Registers candidates by CCCD and candidate number (supervisor, admin). Items are handled one by one:
/// valid ones are registered, the others are listed in `failed` with a status (400 malformed CCCD or
/// number, 404 no identity record, 409 the CCCD holds another number in this session or the number belongs
/// to another CCCD) and the reason. An item already registered with the same number is ignored (listed in
/// `already_registered`), so a corrected list can be sent again whole. The answer is 200 whenever the
/// session exists and the list is 1-5000 items long, even if items failed. Audited as `exam.register`.
#[utoipa::path(post, path = "/api/exams/sessions/{id}/candidates", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")), request_body = RegisterRequest,
    responses((status = 200, body = Registration), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn register_candidates(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<Json<Registration>> {
    session.require(EXAM_ORGANISERS)?;
    let reg = exams::register(&s.db, &id, &req.candidates, &session.user.username).await?;
    s.audit
        .append(
            &session.user.username,
            "exam.register",
            &id,
            &serde_json::json!({
                "registered": reg.registered.iter().map(|c| &c.cccd).collect::<Vec<_>>(),
                "already_registered": reg.already_registered.len(),
                "failed": reg.failed.len(),
            })
            .to_string(),
        )
        .await?;
    Ok(Json(reg))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CheckinRequest {
    /// The candidate's CCCD number.
    pub cccd: String,
    /// Live photo taken at the door, JPEG or PNG, base64. Compared and dropped, never stored.
    pub photo_jpeg_b64: String,
    /// Where the photo came from, as the desk's page says: `live` (its camera) or `upload` (a file). A
    /// session with `live_capture_required` refuses anything but `live` (422 `live_capture_required`).
    /// This is the desk's policy, not proof: a page can be made to say `live`.
    #[serde(default)]
    pub capture: Option<String>,
}

/// A check-in's decision with the candidate it is about.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckinResponse {
    pub candidate_no: String,
    pub full_name: Option<String>,
    #[serde(flatten)]
    pub decision: ExamDecision,
}

/// Checks a registered candidate in by 1:1 face verification against their identity record, at the
/// session's threshold (exam staff, supervisor, admin). Records `verified` or `rejected` with the
/// similarity; a later check-in or manual decision replaces it in the report (history is kept). A photo
/// without one usable face, or a record without an enrolled photo, is refused (422) and nothing is
/// recorded. The photo is not stored. Audited as `exam.checkin`.
#[utoipa::path(post, path = "/api/exams/sessions/{id}/checkin", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")), request_body = CheckinRequest,
    responses((status = 200, body = CheckinResponse, description = "Decided: see `result`"),
              (status = 400, body = ErrorBody, description = "Malformed CCCD or photo not base64"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such session, or the CCCD is not registered for it"),
              (status = 422, body = ErrorBody, description = "Photo refused (no face, several faces, too small, turned) or no enrolled photo on the record"),
              (status = 503, body = ErrorBody, description = "Face models not loaded")))]
pub async fn checkin(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CheckinRequest>,
) -> ApiResult<Json<CheckinResponse>> {
    session.require(EXAM_STAFF)?;
    require_runs(&s, &session, &id).await?;
    let exam = exams::get_session(&s.db, &id, s.cfg.faces.verify_threshold).await?;
    let cccd = exams::parse_cccd(&req.cccd)?;
    let (candidate_no, full_name) = exams::candidate(&s.db, &id, &cccd).await?;
    if exam.live_capture_required && req.capture.as_deref() != Some("live") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this session takes check-in photos only from the desk's live camera",
        )
        .with_code("live_capture_required"));
    }
    let photo = base64::engine::general_purpose::STANDARD
        .decode(req.photo_jpeg_b64.trim().as_bytes())
        .map_err(|e| ApiError::bad_request(format!("photo_jpeg_b64 is not base64: {e}")))?;
    let d = exams::check_in(
        &s.db,
        s.faces()?,
        &exam,
        &cccd,
        photo,
        &session.user.username,
    )
    .await?;
    s.audit
        .append(
            &session.user.username,
            "exam.checkin",
            &cccd,
            &serde_json::json!({
                "session": id,
                "candidate_no": candidate_no,
                "result": d.result.as_str(),
                "similarity": d.similarity,
                "threshold": d.threshold,
            })
            .to_string(),
        )
        .await?;
    Ok(Json(CheckinResponse {
        candidate_no,
        full_name,
        decision: d,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DecisionRequest {
    /// `verified` or `rejected`.
    pub result: String,
    /// Why the camera's answer is set aside or why no camera check was possible (twins, injury, poor light).
    /// Required.
    pub reason: String,
}

/// A manual decision for a registered candidate, with a reason, for what the camera cannot settle
/// (exam staff at the door, supervisor, admin; who decided is recorded). It becomes the candidate's current decision (method `manual`); history is kept.
/// Audited as `exam.decision` with the reason.
#[utoipa::path(post, path = "/api/exams/sessions/{id}/candidates/{cccd}/decision", tag = "exams",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), ("cccd" = String, Path, description = "Candidate's CCCD")),
    request_body = DecisionRequest,
    responses((status = 200, body = ExamDecision),
              (status = 400, body = ErrorBody, description = "Unknown result, empty reason or malformed CCCD"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "No such session, or the CCCD is not registered for it")))]
pub async fn decision(
    State(s): State<AppState>,
    session: Session,
    Path((id, cccd)): Path<(String, String)>,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> ApiResult<Json<ExamDecision>> {
    session.require(EXAM_STAFF)?;
    require_runs(&s, &session, &id).await?;
    exams::get_session(&s.db, &id, s.cfg.faces.verify_threshold).await?;
    let cccd = exams::parse_cccd(&cccd)?;
    let d = exams::decide(
        &s.db,
        &id,
        &cccd,
        &req.result,
        &req.reason,
        &session.user.username,
    )
    .await?;
    s.audit
        .append(
            &session.user.username,
            "exam.decision",
            &cccd,
            &serde_json::json!({
                "session": id,
                "result": d.result.as_str(),
                "reason": d.reason,
            })
            .to_string(),
        )
        .await?;
    Ok(Json(d))
}

/// A candidate's decisions in this session, oldest first (exam staff, supervisor, admin). Audited as
/// `exam.history`.
#[utoipa::path(get, path = "/api/exams/sessions/{id}/candidates/{cccd}/history", tag = "exams",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), ("cccd" = String, Path, description = "Candidate's CCCD")),
    responses((status = 200, body = [ExamDecision]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn history(
    State(s): State<AppState>,
    session: Session,
    Path((id, cccd)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ExamDecision>>> {
    session.require(EXAM_STAFF)?;
    require_runs(&s, &session, &id).await?;
    exams::get_session(&s.db, &id, s.cfg.faces.verify_threshold).await?;
    let cccd = exams::parse_cccd(&cccd)?;
    let h = exams::history(&s.db, &id, &cccd).await?;
    s.audit
        .append(
            &session.user.username,
            "exam.history",
            &cccd,
            &serde_json::json!({"session": id, "decisions": h.len()}).to_string(),
        )
        .await?;
    Ok(Json(h))
}

/// The session report: counts (registered, present, verified by face or by hand, rejected, manual, absent)
/// from each candidate's latest decision, and one line per candidate (exam staff, supervisor, admin).
/// Audited as `exam.report`.
#[utoipa::path(get, path = "/api/exams/sessions/{id}/report", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = ExamReport), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn report(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<ExamReport>> {
    session.require(EXAM_STAFF)?;
    require_runs(&s, &session, &id).await?;
    let rep = exams::report(&s.db, &id, s.cfg.faces.verify_threshold).await?;
    s.audit
        .append(
            &session.user.username,
            "exam.report",
            &id,
            &serde_json::json!({
                "registered": rep.registered,
                "present": rep.present,
                "verified": rep.verified,
                "rejected": rep.rejected,
                "manual": rep.manual,
                "absent": rep.absent,
            })
            .to_string(),
        )
        .await?;
    Ok(Json(rep))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StaffRequest {
    /// An active user with the exam_staff role.
    pub username: String,
}

/// The exam staff assigned to a session (supervisor, admin).
#[utoipa::path(get, path = "/api/exams/sessions/{id}/staff", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = [String]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_staff(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    session.require(EXAM_ORGANISERS)?;
    Ok(Json(exams::staff(&s.db, &id).await?))
}

/// Assigns an exam_staff user to a session (supervisor, admin): they may then read it, check its
/// candidates in and decide for them. Returns the session's staff. Audited as `exam.staff_assign`.
#[utoipa::path(post, path = "/api/exams/sessions/{id}/staff", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")), request_body = StaffRequest,
    responses((status = 200, body = [String]), (status = 400, body = ErrorBody, description = "Not an active exam_staff user"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn assign_staff(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<StaffRequest>,
) -> ApiResult<Json<Vec<String>>> {
    session.require(EXAM_ORGANISERS)?;
    let username = req.username.trim();
    let staff = exams::assign_staff(&s.db, &id, username, &session.user.username).await?;
    s.audit
        .append(
            &session.user.username,
            "exam.staff_assign",
            &id,
            &serde_json::json!({ "username": username }).to_string(),
        )
        .await?;
    Ok(Json(staff))
}

/// Takes a user off a session (supervisor, admin). Returns the session's staff. Audited as
/// `exam.staff_unassign`.
#[utoipa::path(delete, path = "/api/exams/sessions/{id}/staff/{username}", tag = "exams", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id"), ("username" = String, Path)),
    responses((status = 200, body = [String]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unassign_staff(
    State(s): State<AppState>,
    session: Session,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<Json<Vec<String>>> {
    session.require(EXAM_ORGANISERS)?;
    let staff = exams::unassign_staff(&s.db, &id, &username).await?;
    s.audit
        .append(
            &session.user.username,
            "exam.staff_unassign",
            &id,
            &serde_json::json!({ "username": username }).to_string(),
        )
        .await?;
    Ok(Json(staff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exams_openapi_documents_every_route_with_auth_and_errors() {
        let doc = Doc::openapi();
        let want = [
            ("/api/exams/sessions", &["get", "post"][..]),
            ("/api/exams/sessions/{id}", &["get"]),
            ("/api/exams/sessions/{id}/candidates", &["post"]),
            ("/api/exams/sessions/{id}/checkin", &["post"]),
            (
                "/api/exams/sessions/{id}/candidates/{cccd}/decision",
                &["post"],
            ),
            (
                "/api/exams/sessions/{id}/candidates/{cccd}/history",
                &["get"],
            ),
            ("/api/exams/sessions/{id}/report", &["get"]),
            ("/api/exams/sessions/{id}/staff", &["get", "post"]),
            ("/api/exams/sessions/{id}/staff/{username}", &["delete"]),
        ];
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["paths"].as_object().unwrap().len(), want.len());
        for (path, methods) in want {
            for m in methods {
                let op = &v["paths"][path][m];
                assert!(op.is_object(), "{m} {path} documented");
                assert_eq!(
                    op["security"][0]["bearer"],
                    serde_json::json!([]),
                    "{m} {path}"
                );
                for status in ["401", "403"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{m} {path} documents {status}"
                    );
                }
            }
        }
        for schema in [
            "ExamSession",
            "ExamReport",
            "ExamDecision",
            "Registration",
            "CheckinResponse",
        ] {
            assert!(v["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }
}
