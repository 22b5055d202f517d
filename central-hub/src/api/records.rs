//! Identity records API: create, import, search, photos, and 1:1 verification. Reads of records and photos
//! and every comparison are audited.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;

use super::{ApiError, ApiJson, ApiResult, AppState, Session};
use crate::auth::access::{RECORD_EDITORS, RECORD_VERIFIERS, WATCHERS};
use crate::auth::Role;
use crate::records::{self, NewPerson, Person, RecordError, Verification};

#[derive(OpenApi)]
#[openapi(paths(create, import_csv, parse_qr, search, one, photo, add_photo, verify))]
pub struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/persons", get(search).post(create))
        .route("/api/persons/import", post(import_csv))
        .route("/api/persons/qr", post(parse_qr))
        .route("/api/persons/{cccd}", get(one))
        .route("/api/persons/{cccd}/photo", get(photo))
        .route("/api/persons/{cccd}/photos", post(add_photo))
        .route("/api/persons/{cccd}/verify", post(verify))
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Invalid(_) => ApiError::bad_request(e.to_string()),
            RecordError::NotFound(_) => ApiError::not_found(e.to_string()),
            RecordError::Exists(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            RecordError::Photo(ref p) => super::photo_error(p, e.to_string(), None),
            RecordError::NoTemplate(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                    .with_code("no_template")
            }
            RecordError::Db(d) => d.into(),
        }
    }
}

fn decode_photo(b64: &str) -> ApiResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim().as_bytes())
        .map_err(|e| ApiError::bad_request(format!("photo_jpeg_b64 is not base64: {e}")))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreatePerson {
    #[serde(flatten)]
    pub person: NewPerson,
    /// Optional face photo (JPEG or PNG, base64): enrolled as the record's first template.
    pub photo_jpeg_b64: Option<String>,
}

/// Creates a record (supervisor, admin). With a photo, the photo must show one usable face or nothing is saved.
#[utoipa::path(post, path = "/api/persons", tag = "records", security(("bearer" = [])), request_body = CreatePerson,
    responses((status = 201, body = Person), (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<CreatePerson>,
) -> ApiResult<(StatusCode, Json<Person>)> {
    session.require(RECORD_EDITORS)?;
    let rec = records::validate(&req.person)?;
    // Check the photo before anything is stored, so a refused photo leaves no half record.
    let photo = match &req.photo_jpeg_b64 {
        Some(b) => {
            let bytes = decode_photo(b)?;
            s.faces()?
                .enrol(bytes.clone())
                .await
                .map_err(RecordError::from)?;
            Some(bytes)
        }
        None => None,
    };
    records::upsert(&s.db, &rec, false).await?;
    if let Some(bytes) = photo {
        records::add_photo(&s.db, s.faces()?, rec.cccd.as_str(), bytes).await?;
    }
    s.audit
        .append(
            &session.user.username,
            "person.create",
            rec.cccd.as_str(),
            "",
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(records::get(&s.db, rec.cccd.as_str()).await?),
    ))
}

/// Imports records from CSV (header `cccd,full_name,date_of_birth,gender,address`; dates dd/mm/yyyy or
/// yyyy-mm-dd; comma, semicolon or tab separated). Existing records are updated. Bad rows are reported by
/// line and skipped; the rest are imported (supervisor, admin). Photos cannot travel in CSV: add them per
/// record (`POST /api/persons/{cccd}/photos`) or import with `central-hub person import --photos DIR`.
#[utoipa::path(post, path = "/api/persons/import", tag = "records", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = records::ImportOutcome), (status = 400, body = records::ImportOutcome),
              (status = 403, body = super::ErrorBody)))]
pub async fn import_csv(
    State(s): State<AppState>,
    session: Session,
    body: String,
) -> ApiResult<(StatusCode, Json<records::ImportOutcome>)> {
    session.require(RECORD_EDITORS)?;
    let out = records::import_csv(&s.db, None, body.as_bytes(), None).await?;
    s.audit
        .append(
            &session.user.username,
            "person.import",
            "",
            &format!(
                "{} imported, {} updated, {} rows rejected",
                out.imported,
                out.updated,
                out.rejected.len()
            ),
        )
        .await?;
    let status = if out.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct QrRequest {
    /// The card's QR payload: `id|old id|full name|ddmmyyyy|gender|address|issue ddmmyyyy`.
    pub payload: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct QrParsed {
    pub cccd: String,
    pub old_id: Option<String>,
    pub full_name: String,
    pub date_of_birth: String,
    pub gender: String,
    pub address: String,
    pub issued_on: String,
    pub province: String,
}

/// Parses and checks a CCCD card QR payload (nothing is stored).
#[utoipa::path(post, path = "/api/persons/qr", tag = "records", security(("bearer" = [])), request_body = QrRequest,
    responses((status = 200, body = QrParsed), (status = 400, body = super::ErrorBody)))]
pub async fn parse_qr(
    State(s): State<AppState>,
    _session: Session,
    ApiJson(req): ApiJson<QrRequest>,
) -> ApiResult<Json<QrParsed>> {
    let today = local_today(s.cfg.utc_offset_hours);
    let q = checkpoint_identity::parse_qr(&req.payload, today)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Ok(Json(QrParsed {
        province: q.cccd.province_name().to_string(),
        cccd: q.cccd.as_str().to_string(),
        old_id: q.old_id,
        full_name: q.full_name,
        date_of_birth: q.date_of_birth.format(fmt).unwrap_or_default(),
        gender: match q.gender {
            checkpoint_identity::Gender::Male => "male".into(),
            checkpoint_identity::Gender::Female => "female".into(),
        },
        address: q.address,
        issued_on: q.issued_on.format(fmt).unwrap_or_default(),
    }))
}

/// Today's date at the hub's configured UTC offset.
pub fn local_today(utc_offset_hours: i8) -> time::Date {
    let off = time::UtcOffset::from_hms(utc_offset_hours, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::now_utc().to_offset(off).date()
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    pub cccd: Option<String>,
    /// With or without diacritics; substring.
    pub name: Option<String>,
    pub limit: Option<i64>,
}

/// Searches records by CCCD or name (operator, supervisor, admin). Audited as `person.search`.
#[utoipa::path(get, path = "/api/persons", tag = "records", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = [Person]), (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)))]
pub async fn search(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Vec<Person>>> {
    session.require(WATCHERS)?;
    let found = records::search(
        &s.db,
        q.cccd.as_deref(),
        q.name.as_deref(),
        q.limit.unwrap_or(50),
    )
    .await?;
    s.audit
        .append(
            &session.user.username,
            "person.search",
            "",
            &serde_json::json!({"cccd": q.cccd, "name": q.name, "results": found.len()})
                .to_string(),
        )
        .await?;
    Ok(Json(found))
}

/// One record (operator, supervisor, admin). Audited as `person.view`.
#[utoipa::path(get, path = "/api/persons/{cccd}", tag = "records", security(("bearer" = [])),
    params(("cccd" = String, Path)),
    responses((status = 200, body = Person), (status = 404, body = super::ErrorBody)))]
pub async fn one(
    State(s): State<AppState>,
    session: Session,
    Path(cccd): Path<String>,
) -> ApiResult<Json<Person>> {
    session.require(WATCHERS)?;
    let p = records::get(&s.db, &cccd).await?;
    s.audit
        .append(&session.user.username, "person.view", &cccd, "")
        .await?;
    Ok(Json(p))
}

/// The record's photo (operator, supervisor, admin). Audited as `person.photo`.
#[utoipa::path(get, path = "/api/persons/{cccd}/photo", tag = "records", security(("bearer" = [])),
    params(("cccd" = String, Path)),
    responses((status = 200, content_type = "image/jpeg", body = Vec<u8>), (status = 404, body = super::ErrorBody)))]
pub async fn photo(
    State(s): State<AppState>,
    session: Session,
    Path(cccd): Path<String>,
) -> ApiResult<impl IntoResponse> {
    session.require(WATCHERS)?;
    let bytes = records::photo(&s.db, &cccd)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("record {cccd} has no photo")))?;
    s.audit
        .append(&session.user.username, "person.photo", &cccd, "")
        .await?;
    Ok(super::image_response(bytes))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PhotoRequest {
    /// JPEG or PNG, base64.
    pub photo_jpeg_b64: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PhotoAdded {
    pub cccd: String,
    pub templates: i64,
    /// 1 for a frontal face; enrolment refuses below 0.5.
    pub frontalness: f32,
}

/// Adds a face photo (one usable face) and its template to a record (supervisor, admin). Audited as
/// `person.enrol`.
#[utoipa::path(post, path = "/api/persons/{cccd}/photos", tag = "records", security(("bearer" = [])),
    params(("cccd" = String, Path)), request_body = PhotoRequest,
    responses((status = 201, body = PhotoAdded), (status = 404, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn add_photo(
    State(s): State<AppState>,
    session: Session,
    Path(cccd): Path<String>,
    ApiJson(req): ApiJson<PhotoRequest>,
) -> ApiResult<(StatusCode, Json<PhotoAdded>)> {
    session.require(RECORD_EDITORS)?;
    let bytes = decode_photo(&req.photo_jpeg_b64)?;
    let frontalness = records::add_photo(&s.db, s.faces()?, &cccd, bytes).await?;
    s.audit
        .append(&session.user.username, "person.enrol", &cccd, "")
        .await?;
    let p = records::get(&s.db, &cccd).await?;
    Ok((
        StatusCode::CREATED,
        Json(PhotoAdded {
            cccd,
            templates: p.templates,
            frontalness,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest {
    /// The live photo, JPEG or PNG, base64.
    pub photo_jpeg_b64: String,
    /// The exam session the comparison is for; required for exam staff, who may compare only candidates
    /// registered in a session they run. With a session, its threshold applies.
    pub exam_session_id: Option<String>,
}

/// 1:1: is the person in the live photo the record's person? (operator, supervisor, admin; exam staff only
/// for a candidate of a session they run, named in `exam_session_id`: otherwise 403 `exam_not_assigned`, or
/// 404 for a CCCD not registered in it, whether or not a record exists). Audited as `person.verify` with
/// the result. The live photo is not stored.
#[utoipa::path(post, path = "/api/persons/{cccd}/verify", tag = "records", security(("bearer" = [])),
    params(("cccd" = String, Path)), request_body = VerifyRequest,
    responses((status = 200, body = Verification), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 413, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody), (status = 503, body = super::ErrorBody)))]
pub async fn verify(
    State(s): State<AppState>,
    session: Session,
    Path(cccd): Path<String>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<Verification>> {
    session.require(RECORD_VERIFIERS)?;
    let threshold = match &req.exam_session_id {
        Some(id) => exam_scope(&s, &session, id, &cccd).await?,
        None if session.user.role == Role::ExamStaff => {
            return Err(ApiError::forbidden(
                "exam staff compare faces only for a candidate of their exam session: give exam_session_id",
            )
            .with_code("exam_not_assigned"))
        }
        None => s.cfg.faces.verify_threshold,
    };
    let bytes = decode_photo(&req.photo_jpeg_b64)?;
    let v = records::verify(&s.db, s.faces()?, &cccd, bytes, threshold).await?;
    s.audit
        .append(
            &session.user.username,
            "person.verify",
            &cccd,
            &format!(
                "matched={} similarity={:.3} exam_session={}",
                v.matched,
                v.similarity,
                req.exam_session_id.as_deref().unwrap_or("-")
            ),
        )
        .await?;
    Ok(Json(v))
}

/// Checks that the caller may compare `cccd` within exam session `id` (a registered candidate of a session
/// exam staff run); returns the session's threshold.
async fn exam_scope(s: &AppState, session: &Session, id: &str, cccd: &str) -> ApiResult<f32> {
    super::exams::require_runs(s, session, id).await?;
    let exam = crate::exams::get_session(&s.db, id, s.cfg.faces.verify_threshold).await?;
    let cccd = crate::exams::parse_cccd(cccd)?;
    crate::exams::candidate(&s.db, id, &cccd).await?;
    Ok(exam.threshold)
}
