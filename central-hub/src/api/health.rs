//! `GET /healthz`: whether the hub can do its job (database reachable, ingest connected to the broker).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `degraded`.
    pub status: String,
    pub database: String,
    /// `connected` or `disconnected`.
    pub mqtt: String,
    pub version: String,
}

/// Liveness and readiness in one: 200 when the database answers and ingest is connected, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<Health>) {
    let db_ok = s.db.ping().await.is_ok();
    let mqtt_ok = s.ingest.connected.load(Ordering::Relaxed);
    let ok = db_ok && mqtt_ok;
    (
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ok { "ok" } else { "degraded" }.into(),
            database: if db_ok { "ok" } else { "unreachable" }.into(),
            mqtt: if mqtt_ok { "connected" } else { "disconnected" }.into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }),
    )
}
