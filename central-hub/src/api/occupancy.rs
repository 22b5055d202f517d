//! Site occupancy: each site's figure computed at the hub (operators, supervisors, admins) and its starting
//! occupancy and daily reset (set by supervisors and admins, audited as `occupancy.settings`). The
//! arithmetic lives in `crate::occupancy`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::OpenApi;

use super::{ApiError, ApiJson, ApiResult, AppState, Session};
use crate::auth::access::{OCCUPANCY_SETTERS, WATCHERS};
use crate::occupancy::{self, OccupancyError, SettingsChange, SiteOccupancy};

#[derive(OpenApi)]
#[openapi(paths(all_sites, one_site, set_settings))]
pub struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/occupancy", get(all_sites))
        .route("/api/sites/{site}/occupancy", get(one_site))
        .route("/api/sites/{site}/occupancy/settings", put(set_settings))
}

impl From<OccupancyError> for ApiError {
    fn from(e: OccupancyError) -> Self {
        match e {
            OccupancyError::Db(d) => d.into(),
            other => {
                let status = match other {
                    OccupancyError::UnknownSite(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError {
                    code: other.code(),
                    ..ApiError::new(status, other.to_string())
                }
            }
        }
    }
}

/// The hub's offset for sites nobody has set up, in minutes.
fn default_offset(s: &AppState) -> i64 {
    i64::from(s.cfg.utc_offset_hours) * 60
}

/// Every site's occupancy now: starting occupancy plus entries minus exits over its boundary lines since
/// the last reset, or a counting fault (operator, supervisor, admin).
#[utoipa::path(get, path = "/api/occupancy", tag = "monitor", security(("bearer" = [])),
    responses((status = 200, body = [SiteOccupancy]), (status = 401, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody)))]
pub async fn all_sites(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<SiteOccupancy>>> {
    session.require(WATCHERS)?;
    Ok(Json(occupancy::all_sites(&s.db, default_offset(&s)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Hours of history (1 to 168; default 24): the occupancy at the end of each local hour, then now.
    pub hours: Option<u32>,
}

/// One site's occupancy now, per line, with the hour-by-hour history (operator, supervisor, admin).
/// `occupancy` is null when the site is not set up (`settings` null) or when the count came out negative:
/// then `fault` names the lines whose exits exceeded their entries.
#[utoipa::path(get, path = "/api/sites/{site}/occupancy", tag = "monitor", security(("bearer" = [])),
    params(("site" = String, Path), HistoryQuery),
    responses((status = 200, body = SiteOccupancy),
              (status = 400, description = "`bad_hours`", body = super::ErrorBody),
              (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
              (status = 404, description = "`unknown_site`", body = super::ErrorBody)))]
pub async fn one_site(
    State(s): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<SiteOccupancy>> {
    session.require(WATCHERS)?;
    Ok(Json(
        occupancy::site_now(
            &s.db,
            &site,
            default_offset(&s),
            Some(q.hours.unwrap_or(24)),
        )
        .await?,
    ))
}

/// Sets a site's starting occupancy, daily reset (local `HH:MM`, or null for none) and UTC offset
/// (supervisor, admin). Counting starts again from the starting occupancy at once. Audited as
/// `occupancy.settings`.
#[utoipa::path(put, path = "/api/sites/{site}/occupancy/settings", tag = "monitor", security(("bearer" = [])),
    params(("site" = String, Path)), request_body = SettingsChange,
    responses((status = 200, body = SiteOccupancy),
              (status = 400, description = "`bad_starting_occupancy`, `bad_reset_time` or `bad_utc_offset`", body = super::ErrorBody),
              (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
              (status = 404, description = "`unknown_site`", body = super::ErrorBody)))]
pub async fn set_settings(
    State(s): State<AppState>,
    session: Session,
    Path(site): Path<String>,
    ApiJson(change): ApiJson<SettingsChange>,
) -> ApiResult<Json<SiteOccupancy>> {
    session.require(OCCUPANCY_SETTERS)?;
    let set = occupancy::set(
        &s.db,
        &site,
        &change,
        default_offset(&s),
        &session.user.username,
    )
    .await?;
    let view = occupancy::SettingsView::from(&set);
    s.audit
        .append(
            &session.user.username,
            "occupancy.settings",
            &site,
            &format!(
                "starting_occupancy={} reset_time={} utc_offset={}",
                view.starting_occupancy,
                view.reset_time.as_deref().unwrap_or("none"),
                view.utc_offset
            ),
        )
        .await?;
    // Open dashboards reload the site's figures.
    crate::live::announce(
        &s.db,
        &s.ingest,
        crate::live::Live {
            kind: "count",
            site: site.clone(),
            agent: String::new(),
            id: None,
        },
    )
    .await;
    if let Err(e) = occupancy::refresh_gauges(&s.db, &s.metrics, default_offset(&s)).await {
        tracing::error!(error = %e, "occupancy gauges");
    }
    let now = occupancy::site_now(&s.db, &site, default_offset(&s), Some(24)).await?;
    Ok(Json(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_codes_and_statuses() {
        let cases = [
            (
                OccupancyError::UnknownSite("x".into()),
                StatusCode::NOT_FOUND,
                "unknown_site",
            ),
            (
                OccupancyError::BadStarting(-1),
                StatusCode::BAD_REQUEST,
                "bad_starting_occupancy",
            ),
            (
                OccupancyError::BadResetTime("25:00".into()),
                StatusCode::BAD_REQUEST,
                "bad_reset_time",
            ),
            (
                OccupancyError::BadUtcOffset("7".into()),
                StatusCode::BAD_REQUEST,
                "bad_utc_offset",
            ),
            (
                OccupancyError::BadHours(0),
                StatusCode::BAD_REQUEST,
                "bad_hours",
            ),
        ];
        for (e, status, code) in cases {
            let a = ApiError::from(e);
            assert_eq!((a.status, a.code), (status, Some(code)));
        }
    }
}
