//! The hub's HTTP API: JSON over HTTP, bearer-token sessions, roles checked per route, every access to
//! biometric data audited. The OpenAPI document at `/api/openapi.json` is generated from these handlers.

pub mod exams;
pub mod faces;
mod health;
mod live;
pub mod lodging;
mod monitor;
pub mod occupancy;
pub mod records;
mod users;
pub mod watchlists;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;

use crate::audit::AuditLog;
use crate::auth::{Auth, AuthError, Role, User};
use crate::config::HubConfig;
use crate::db::{Db, DbError};
use crate::ingest::IngestState;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub auth: Arc<Auth>,
    pub audit: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    pub ingest: Arc<IngestState>,
    pub cfg: Arc<HubConfig>,
    /// Wakes the watchlist pusher after a change.
    pub watchlist_push: Arc<tokio::sync::Notify>,
    /// Face models; None when they could not be loaded (face features then answer 503).
    pub faces: Option<Arc<crate::faces::FaceEngine>>,
    /// Refused logins waiting to be summed into the audit log.
    pub refused_logins: Arc<crate::login_audit::RefusedLogins>,
}

impl AppState {
    /// The face engine, or a 503 that says how to fix it.
    pub fn faces(&self) -> ApiResult<&Arc<crate::faces::FaceEngine>> {
        self.faces.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "face models are not loaded on this hub: run `python3 models/fetch.py` and restart it",
            )
            .with_code("faces_unavailable")
        })
    }
}

/// An error as the API reports it: a status, a message a person can act on and, where a client must tell
/// one refusal from another, a stable machine-readable code.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub code: Option<&'static str>,
    /// Values the message is made of, for interfaces that word it themselves (see `ErrorBody::details`).
    pub details: Option<serde_json::Value>,
    /// Seconds, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in English, for people and logs. Interfaces translate `code`, never this text.
    pub error: String,
    /// Stable machine-readable code; messages may change, codes do not. By status: `bad_request`,
    /// `unauthorized`, `forbidden`, `not_found`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `unprocessable`, `too_many_requests`, `unavailable`, `internal`. Specific refusals: `bad_request_body`
    /// (a body that is not the JSON the route takes), `body_too_large`, `login_throttled`, `login_busy`,
    /// `bad_credentials`, `input_too_long`, `bad_username`, `weak_password`, `username_taken`, `agent_account`,
    /// `agent_account_fields`, `role_agent_not_allowed`, `image_too_large`, `unreadable_image`, `no_face`,
    /// `several_faces`, `face_too_small`, `face_not_frontal`, `face_analysis_failed`, `no_template`,
    /// `faces_unavailable`, `enroller_cannot_confirm`, `note_required`, `alert_not_dismissed`,
    /// `exam_not_assigned`, `live_capture_required`, `already_checked_in`, `already_checked_out`,
    /// `client_id_reused`.
    pub code: String,
    /// The numbers a translated message needs, for the codes that have them: for a refused photo `index` (which
    /// photo of a request, from 0), and `px` and `min` (`face_too_small`), `frontalness` and `min`
    /// (`face_not_frontal`), `faces` (`several_faces`); `min` for `weak_password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// A refused photo as the API's error: 413 for one too large to read, otherwise 422, with the refusal's code and
/// its numbers in `details` (`index` when the request carried several photos).
pub fn photo_error(
    e: &checkpoint_vision::enrol::EnrolError,
    message: String,
    index: Option<usize>,
) -> ApiError {
    use checkpoint_vision::enrol::{EnrolError, MIN_ENROL_FACE_PX, MIN_FRONTALNESS};
    let mut details = match e {
        EnrolError::TooSmall(px) => {
            serde_json::json!({ "px": px.round(), "min": MIN_ENROL_FACE_PX })
        }
        EnrolError::NotFrontal(f) => {
            serde_json::json!({ "frontalness": (f * 100.0).round() / 100.0, "min": MIN_FRONTALNESS })
        }
        EnrolError::SeveralFaces(n) => serde_json::json!({ "faces": n }),
        _ => serde_json::json!({}),
    };
    if let (Some(i), Some(map)) = (index, details.as_object_mut()) {
        map.insert("index".into(), i.into());
    }
    let status = match e {
        EnrolError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut err = ApiError::new(status, message).with_code(e.code());
    err.details = Some(details);
    err
}

/// The code of an error that has no more specific one.
fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal",
    }
}

/// A JSON request body. Unlike axum's `Json`, a body that is not JSON, does not fit the route's type or is too
/// large is refused with the API's error body and a code (`bad_request_body`, `body_too_large`,
/// `unsupported_media_type`), so clients handle it like any other refusal.
pub struct ApiJson<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for ApiJson<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(body_rejection(r)),
        }
    }
}

/// A refused JSON body as the API's error: 413 `body_too_large`, 415 `unsupported_media_type`, and 400
/// `bad_request_body` for a body that is not JSON or not the JSON the route takes (axum answers 422 for the
/// latter; one status for both is simpler for clients, and it is what the routes document).
pub fn body_rejection(r: JsonRejection) -> ApiError {
    let (status, code) = match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        _ => (StatusCode::BAD_REQUEST, "bad_request_body"),
    };
    ApiError::new(status, r.body_text()).with_code(code)
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
            details: None,
            retry_after: None,
        }
    }
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    /// 413 for an image whose header declares more pixels (or a file more bytes) than accepted.
    pub fn image_too_large(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, m).with_code("image_too_large")
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                code: self
                    .code
                    .unwrap_or(status_code_name(self.status))
                    .to_string(),
                details: self.details,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        resp
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "database error in a request");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not available; try again",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let msg = e.to_string();
        match e {
            AuthError::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, msg).with_code("bad_credentials")
            }
            AuthError::Throttled(t) => ApiError {
                retry_after: Some(t.retry_after.as_secs_f64().ceil().max(1.0) as u64),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg).with_code("login_throttled")
            },
            AuthError::TooLong { .. } => ApiError::bad_request(msg).with_code("input_too_long"),
            AuthError::AgentAccount => {
                ApiError::new(StatusCode::FORBIDDEN, msg).with_code("agent_account")
            }
            AuthError::AgentRole => ApiError::bad_request(msg).with_code("role_agent_not_allowed"),
            AuthError::Busy => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg).with_code("login_busy")
            },
            AuthError::BadUsername => ApiError::bad_request(msg).with_code("bad_username"),
            AuthError::WeakPassword(min) => {
                let mut err = ApiError::bad_request(msg).with_code("weak_password");
                err.details = Some(serde_json::json!({ "min": min }));
                err
            }
            AuthError::Taken(_) => {
                ApiError::new(StatusCode::CONFLICT, msg).with_code("username_taken")
            }
            AuthError::Hash(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg),
            AuthError::Db(d) => d.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A face image as a response: PNG or JPEG by its signature, never cached by the browser (biometric data).
pub fn image_response(bytes: Vec<u8>) -> Response {
    let ct = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        "image/png"
    } else {
        "image/jpeg"
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

/// The signed-in user. Extracting it refuses requests without a live session (401).
pub struct Session {
    pub user: User,
    pub token: String,
}

impl Session {
    /// Refuses (403) unless the user has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> ApiResult<()> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not do this",
                self.user.role.as_str()
            )))
        }
    }
}

pub fn bearer(parts: &Parts) -> Option<String> {
    let h = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    h.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "sign in first (Authorization: Bearer <token>)",
            ));
        };
        match state.auth.session(&token).await? {
            Some(user) => Ok(Session { user, token }),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session expired or unknown; sign in again",
            )),
        }
    }
}

// The role groups live in auth::access; these two are named here for monitor.rs.
pub use crate::auth::access::{AUDITORS, WATCHERS};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Checkpoint central hub",
        description = "Events from the edge agents, identity records, watchlists, alert review, lodging, exams and the audit log. Authenticate with POST /api/auth/login and send the token as `Authorization: Bearer <token>`."
    ),
    paths(
        health::healthz,
        metrics_text,
        openapi_json,
        users::login,
        users::logout,
        users::me,
        users::settings,
        users::list_users,
        users::create_user,
        users::update_user,
        monitor::agents,
        monitor::counts,
        monitor::lines,
        monitor::system_alerts,
        monitor::alerts,
        monitor::alert,
        monitor::alert_snapshot,
        monitor::audit,
        monitor::audit_verify,
        live::live,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole document: this module's paths plus each domain module's.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(faces::Doc::openapi());
    doc.merge(records::Doc::openapi());
    doc.merge(watchlists::Doc::openapi());
    doc.merge(lodging::Doc::openapi());
    doc.merge(exams::Doc::openapi());
    doc.merge(occupancy::Doc::openapi());
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3 document of every route", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    Json(openapi())
}

/// Prometheus metrics: ingest, refused messages by reason, agents by state, HTTP responses by status.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn count_status(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let resp = next.run(req).await;
    s.metrics
        .http_requests
        .get_or_create(&crate::metrics::RouteLabel {
            status: resp.status().as_u16().to_string(),
        })
        .inc();
    resp
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/openapi.json", get(openapi_json))
        .route(
            "/api/auth/login",
            post(users::login).layer(axum::extract::DefaultBodyLimit::max(
                users::LOGIN_BODY_LIMIT,
            )),
        )
        .route("/api/auth/logout", post(users::logout))
        .route("/api/me", get(users::me))
        .route("/api/settings", get(users::settings))
        .route(
            "/api/users",
            get(users::list_users).post(users::create_user),
        )
        .route(
            "/api/users/{username}",
            axum::routing::patch(users::update_user),
        )
        .route("/api/agents", get(monitor::agents))
        .route("/api/sites/{site}/counts", get(monitor::counts))
        .route("/api/sites/{site}/lines", get(monitor::lines))
        .route("/api/system-alerts", get(monitor::system_alerts))
        .route("/api/alerts", get(monitor::alerts))
        .route("/api/alerts/{id}", get(monitor::alert))
        .route("/api/alerts/{id}/snapshot", get(monitor::alert_snapshot))
        .route("/api/audit", get(monitor::audit))
        .route("/api/audit/verify", get(monitor::audit_verify))
        .route("/api/live", get(live::live))
        .merge(faces::routes())
        .merge(records::routes())
        .merge(watchlists::routes())
        .merge(lodging::routes())
        .merge(exams::routes())
        .merge(occupancy::routes())
        .merge(crate::web::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_status,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    /// (method, path) of every `.route(...)` in the API's sources.
    fn routes_in_source() -> Vec<(String, String)> {
        let sources = [
            include_str!("mod.rs"),
            include_str!("faces.rs"),
            include_str!("records.rs"),
            include_str!("watchlists.rs"),
            include_str!("lodging.rs"),
            include_str!("exams.rs"),
            include_str!("occupancy.rs"),
        ];
        let mut out = Vec::new();
        for src in sources {
            // Not this test's own text.
            let mut rest = src.split("#[cfg(test)]").next().unwrap_or(src);
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                // The call's text, up to its closing parenthesis.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .expect("balanced .route(");
                let call = &rest[..end];
                let Some(path) = call.split('"').nth(1) else {
                    continue; // this function's own text, not a route
                };
                let handlers = &call[call.find(',').expect("route has handlers")..];
                for m in ["get", "post", "put", "delete", "patch"] {
                    let called = handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                        i == 0
                            || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                                && handlers.as_bytes()[i - 1] != b'_'
                    });
                    if called {
                        out.push((m.to_string(), path.to_string()));
                    }
                }
            }
        }
        out
    }

    /// Every error code the hub can send is listed in the OpenAPI document's `ErrorBody.code`, where clients
    /// (and the web UI's translations) learn them.
    #[test]
    fn every_error_code_is_in_the_openapi_document() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("users.rs"),
            include_str!("records.rs"),
            include_str!("watchlists.rs"),
            include_str!("lodging.rs"),
            include_str!("exams.rs"),
            include_str!("occupancy.rs"),
            include_str!("monitor.rs"),
            include_str!("faces.rs"),
        ];
        let mut codes: Vec<String> = Vec::new();
        for src in sources {
            let src = src.split("#[cfg(test)]").next().unwrap_or(src);
            let marker = "with_code(\"";
            for (at, _) in src.match_indices(marker) {
                let rest = &src[at + marker.len()..];
                if let Some(end) = rest.find('"') {
                    codes.push(rest[..end].to_string());
                }
            }
        }
        use checkpoint_vision::enrol::EnrolError as E;
        for e in [
            E::Unreadable(String::new()),
            E::TooLarge(String::new()),
            E::NoFace,
            E::SeveralFaces(2),
            E::TooSmall(1.0),
            E::NotFrontal(0.1),
            E::Model(String::new()),
        ] {
            codes.push(e.code().to_string());
        }
        for status in [400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 500] {
            codes.push(
                super::status_code_name(axum::http::StatusCode::from_u16(status).unwrap()).into(),
            );
        }
        assert!(codes.len() > 30, "found only {codes:?}");
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let listed = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let missing: Vec<_> = codes
            .iter()
            .filter(|c| !listed.contains(&format!("`{c}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "codes sent but not in ErrorBody.code's description: {missing:?}"
        );
    }

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let routes = routes_in_source();
        assert!(
            routes.len() > 40,
            "found only {} routes: {routes:?}",
            routes.len()
        );
        let missing: Vec<_> = routes
            .iter()
            .filter(|(m, p)| doc["paths"][p.as_str()][m.as_str()].is_null())
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document: {missing:?}"
        );
        // And nothing documented that is not served.
        let documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.clone(), p.clone()))
            })
            .filter(|(m, _)| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
            .collect();
        let stale: Vec<_> = documented.iter().filter(|r| !routes.contains(r)).collect();
        assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    }
}
