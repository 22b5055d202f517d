//! Lodging (ASM) API: routes and OpenAPI paths of this domain.
//!
//! Who may do what:
//! - establishments: admin and supervisor create; admin, supervisor and operator list (a lodging_staff
//!   account sees its own establishment only); admin links lodging_staff accounts to one establishment;
//! - check-in, check-out, current guests: the establishment's own staff, supervisors and admins;
//! - search and statistics: operators, supervisors and admins.
//!
//! A wanted person's check-in raises a candidate alert (see `crate::lodging`) and answers exactly like any other
//! check-in.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::OpenApi;

use super::{ApiError, ApiJson, ApiResult, AppState, ErrorBody, Session};
use crate::auth::access::{ADMINS, LODGING_DESK, LODGING_MANAGERS, WATCHERS};
use crate::auth::Role;
use crate::db::now_ms;
use crate::lodging::{
    self, replay, CheckInRequest, DayStats, Establishment, EstablishmentKind, GuestKind,
    LodgingError, NewEstablishment, PassportGuest, StaffLink, Stay, StaySearch,
};

impl From<LodgingError> for ApiError {
    fn from(e: LodgingError) -> Self {
        match e {
            LodgingError::Invalid(m) => ApiError::bad_request(m),
            LodgingError::NotFound(m) => ApiError::not_found(m),
            LodgingError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, message).with_code(code)
            }
            LodgingError::Db(d) => d.into(),
        }
    }
}

/// Refuses (403) a lodging_staff user acting for another establishment than their own.
async fn require_desk(s: &AppState, session: &Session, establishment_id: &str) -> ApiResult<()> {
    session.require(LODGING_DESK)?;
    if session.user.role != Role::LodgingStaff {
        return Ok(());
    }
    match lodging::staff_establishment(&s.db, &session.user.username).await? {
        Some(own) if own == establishment_id => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "you may act only for your own establishment",
        )),
        None => Err(ApiError::forbidden(
            "your account is not linked to an establishment; ask an administrator",
        )),
    }
}

async fn find_establishment(s: &AppState, id: &str) -> ApiResult<Establishment> {
    lodging::establishment(&s.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no establishment {id}")))
}

/// Establishments, by site and name (admin, supervisor, operator; a lodging_staff account gets its own).
#[utoipa::path(get, path = "/api/lodging/establishments", tag = "lodging", security(("bearer" = [])),
    responses((status = 200, body = [Establishment]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn list_establishments(
    State(s): State<AppState>,
    session: Session,
) -> ApiResult<Json<Vec<Establishment>>> {
    if session.user.role == Role::LodgingStaff {
        let own = lodging::staff_establishment(&s.db, &session.user.username).await?;
        let mut out = Vec::new();
        if let Some(id) = own {
            out.extend(lodging::establishment(&s.db, &id).await?);
        }
        return Ok(Json(out));
    }
    session.require(WATCHERS)?;
    Ok(Json(lodging::establishments(&s.db).await?))
}

/// Creates an establishment (admin, supervisor). Audited as `lodging.establishment_create`.
#[utoipa::path(post, path = "/api/lodging/establishments", tag = "lodging", security(("bearer" = [])),
    request_body = NewEstablishment,
    responses((status = 201, body = Establishment), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_establishment(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<NewEstablishment>,
) -> ApiResult<(StatusCode, Json<Establishment>)> {
    session.require(LODGING_MANAGERS)?;
    let e = lodging::create_establishment(&s.db, &s.audit, &req, &session.user.username, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StaffRequest {
    /// A user with the role lodging_staff.
    pub username: String,
}

/// Links a lodging_staff account to this establishment (admin); a linked account moves. 400 when the user
/// does not exist or is not lodging_staff. Audited as `lodging.staff_link`.
#[utoipa::path(post, path = "/api/lodging/establishments/{id}/staff", tag = "lodging",
    security(("bearer" = [])), params(("id" = String, Path, description = "establishment id")),
    request_body = StaffRequest,
    responses((status = 200, body = StaffLink), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn link_staff(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<StaffRequest>,
) -> ApiResult<Json<StaffLink>> {
    session.require(ADMINS)?;
    Ok(Json(
        lodging::link_staff(
            &s.db,
            &s.audit,
            &id,
            &req.username,
            &session.user.username,
            now_ms(),
        )
        .await?,
    ))
}

/// Guests checked in now, oldest first (the establishment's staff, supervisor, admin).
#[utoipa::path(get, path = "/api/lodging/establishments/{id}/guests", tag = "lodging",
    security(("bearer" = [])), params(("id" = String, Path, description = "establishment id")),
    responses((status = 200, body = [Stay]), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn guests(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Stay>>> {
    require_desk(&s, &session, &id).await?;
    find_establishment(&s, &id).await?;
    Ok(Json(lodging::current_guests(&s.db, &id).await?))
}

/// Checks a guest in: `qr` (the CCCD card's QR payload) for citizens, or `passport` (foreign guests; a VNM
/// passport is accepted too). 400 with the reason when the card or passport does not validate, 409 when the
/// guest is already checked in here. Audited as `lodging.checkin`. A check-in queued offline carries its
/// `client_id` and `recorded_ms`: sent again, it answers 200 with the stay the first try made.
#[utoipa::path(post, path = "/api/lodging/stays", tag = "lodging", security(("bearer" = [])),
    request_body = CheckInRequest,
    responses((status = 201, body = Stay), (status = 200, description = "a check-in sent again with the same client_id: the stay it made", body = Stay),
              (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn check_in(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<CheckInRequest>,
) -> ApiResult<(StatusCode, Json<Stay>)> {
    session.require(LODGING_DESK)?;
    require_desk(&s, &session, &req.establishment_id).await?;
    let est = find_establishment(&s, &req.establishment_id).await?;
    let at = replay::checkin_time(req.recorded_ms, now_ms())?;
    let guest = lodging::parse_guest(
        req.qr.as_deref(),
        req.passport.as_ref(),
        lodging::local_date(at, s.cfg.utc_offset_hours),
    )?;
    let client_id = req.client_id.as_deref();
    if let Some(cid) = client_id {
        replay::check_client_id(cid)?;
        if let Some(done) = earlier_try(&s, cid, &est, &guest).await? {
            return Ok((StatusCode::OK, Json(done)));
        }
    }
    let made = lodging::check_in_as(
        &s.db,
        &s.audit,
        &est,
        &guest,
        req.room.as_deref(),
        &session.user.username,
        at,
        client_id,
    )
    .await;
    let stay = match (made, client_id) {
        (Ok(stay), _) => stay,
        // Two tries at once: the other one made the stay.
        (Err(conflict @ LodgingError::Conflict { .. }), Some(cid)) => {
            return match earlier_try(&s, cid, &est, &guest).await? {
                Some(done) => Ok((StatusCode::OK, Json(done))),
                None => Err(conflict.into()),
            }
        }
        (Err(e), _) => return Err(e.into()),
    };
    // A wanted person's check-in raised candidate alerts: tell the operators' screens now.
    for id in crate::alerts::raised_by_stay(&s.db, &stay.id).await? {
        crate::live::announce(
            &s.db,
            &s.ingest,
            crate::live::Live {
                kind: "alert",
                site: est.site.clone(),
                agent: String::new(),
                id: Some(id),
            },
        )
        .await;
    }
    Ok((StatusCode::CREATED, Json(stay)))
}

/// The stay an earlier try of this check-in made, if it is the same guest at the same place.
async fn earlier_try(
    s: &AppState,
    client_id: &str,
    est: &Establishment,
    guest: &lodging::Guest,
) -> ApiResult<Option<Stay>> {
    match replay::stay_by_client_id(&s.db, client_id).await? {
        Some(stay) => {
            replay::same_check_in(&stay, est, guest)?;
            Ok(Some(stay))
        }
        None => Ok(None),
    }
}

/// Checks a guest out (the establishment's staff, supervisor, admin). 409 when already checked out. Audited
/// as `lodging.checkout`.
#[utoipa::path(post, path = "/api/lodging/stays/{id}/checkout", tag = "lodging",
    security(("bearer" = [])), params(("id" = String, Path, description = "stay id")),
    responses((status = 200, body = Stay), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn check_out(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<Stay>> {
    session.require(LODGING_DESK)?;
    let stay = lodging::stay(&s.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no stay {id}")))?;
    require_desk(&s, &session, &stay.establishment_id).await?;
    Ok(Json(
        lodging::check_out(&s.db, &s.audit, &id, &session.user.username, now_ms()).await?,
    ))
}

/// Police search of stays, newest check-in first, at most 500 (operator, supervisor, admin). The name is
/// matched without diacritics or case, as a substring. Audited as `lodging.search` with the criteria.
#[utoipa::path(get, path = "/api/lodging/stays", tag = "lodging", security(("bearer" = [])),
    params(StaySearch),
    responses((status = 200, body = [Stay]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn search(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<StaySearch>,
) -> ApiResult<Json<Vec<Stay>>> {
    session.require(WATCHERS)?;
    Ok(Json(
        lodging::search(&s.db, &s.audit, &q, &session.user.username).await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// One site; all sites when absent.
    pub site: Option<String>,
    /// From this instant (ms since the epoch); widened to the start of its local day. Default: 30 days ago.
    pub from_ms: Option<i64>,
    /// To this instant, exclusive; widened to the end of its local day. Default: now. At most 366 days.
    pub to_ms: Option<i64>,
}

/// Tourism statistics per site and local day (`utc_offset_hours`): check-ins, domestic (VNM) and foreign
/// guests, and guests who stayed the night (operator, supervisor, admin).
#[utoipa::path(get, path = "/api/lodging/stats", tag = "lodging", security(("bearer" = [])),
    params(StatsQuery),
    responses((status = 200, body = [DayStats]), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stats(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<Vec<DayStats>>> {
    session.require(WATCHERS)?;
    let now = now_ms();
    let to = q.to_ms.unwrap_or(now);
    let from = q.from_ms.unwrap_or(to.saturating_sub(30 * 86_400_000));
    Ok(Json(
        lodging::stats(
            &s.db,
            q.site.as_deref(),
            from,
            to,
            s.cfg.utc_offset_hours,
            now,
        )
        .await?,
    ))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_establishments,
        create_establishment,
        link_staff,
        guests,
        check_in,
        check_out,
        search,
        stats,
    ),
    components(schemas(
        Establishment,
        EstablishmentKind,
        NewEstablishment,
        StaffRequest,
        StaffLink,
        CheckInRequest,
        PassportGuest,
        GuestKind,
        Stay,
        DayStats,
        ErrorBody,
    )),
    tags((name = "lodging", description = "Lodging registration (ASM): establishments, guest check-in and check-out, police search, tourism statistics"))
)]
pub struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/lodging/establishments",
            get(list_establishments).post(create_establishment),
        )
        .route("/api/lodging/establishments/{id}/staff", post(link_staff))
        .route("/api/lodging/establishments/{id}/guests", get(guests))
        .route("/api/lodging/stays", get(search).post(check_in))
        .route("/api/lodging/stays/{id}/checkout", post(check_out))
        .route("/api/lodging/stats", get(stats))
}
