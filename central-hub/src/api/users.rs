//! Sign-in, sessions and user administration.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, AppState, Session};
use crate::auth::{Role, User};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: User,
    pub expires_ms: i64,
}

/// Signs in. Failed attempts are rate limited per username.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = super::ErrorBody),
              (status = 429, body = super::ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    match s.auth.login(&req.username, &req.password).await {
        Ok((token, user, expires_ms)) => {
            s.audit
                .append(&user.username, "auth.login", &user.username, "")
                .await?;
            Ok(Json(LoginResponse {
                token,
                user,
                expires_ms,
            }))
        }
        Err(e) => {
            s.metrics.logins_refused.inc();
            s.audit
                .append(
                    &format!(
                        "anonymous:{}",
                        req.username.chars().take(64).collect::<String>()
                    ),
                    "auth.login_refused",
                    "",
                    &e.to_string(),
                )
                .await?;
            Err(e.into())
        }
    }
}

/// Ends the current session.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = super::ErrorBody)))]
pub async fn logout(State(s): State<AppState>, session: Session) -> ApiResult<StatusCode> {
    s.auth.logout(&session.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = super::ErrorBody)))]
pub async fn me(session: Session) -> Json<User> {
    Json(session.user)
}

/// All users (admin).
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 403, body = super::ErrorBody)))]
pub async fn list_users(State(s): State<AppState>, session: Session) -> ApiResult<Json<Vec<User>>> {
    session.require(&[Role::Admin])?;
    Ok(Json(s.auth.users().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
}

/// Creates a user (admin). Audited.
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_user(
    State(s): State<AppState>,
    session: Session,
    Json(req): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    session.require(&[Role::Admin])?;
    if req.display_name.trim().is_empty() {
        return Err(ApiError::bad_request("display_name must not be empty"));
    }
    let user = s
        .auth
        .create_user(
            &req.username,
            req.display_name.trim(),
            &req.password,
            req.role,
        )
        .await?;
    s.audit
        .append(
            &session.user.username,
            "user.create",
            &user.username,
            req.role.as_str(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserChange {
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub display_name: Option<String>,
    /// A new password (at least 10 characters); the user's sessions end.
    pub password: Option<String>,
}

/// Changes a user's role, active flag, display name or password (admin). Agent accounts are managed with
/// `central-hub agent add`. An admin cannot deactivate or demote their own account. Audited.
#[utoipa::path(patch, path = "/api/users/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = UserChange,
    responses((status = 200, body = User), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    session: Session,
    Path(username): Path<String>,
    Json(req): Json<UserChange>,
) -> ApiResult<Json<User>> {
    session.require(&[Role::Admin])?;
    if username == session.user.username
        && (req.active == Some(false) || req.role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::bad_request(
            "you cannot deactivate or demote your own account; ask another admin",
        ));
    }
    if req.role == Some(Role::Agent) {
        return Err(ApiError::bad_request(
            "agent accounts are created with `central-hub agent add`",
        ));
    }
    let display = req.display_name.as_deref().map(str::trim);
    if display.is_some_and(str::is_empty) {
        return Err(ApiError::bad_request("display_name must not be empty"));
    }
    let found = s
        .auth
        .update_user(
            &username,
            req.role,
            display,
            req.password.as_deref(),
            req.active,
        )
        .await?;
    if !found {
        return Err(ApiError::not_found(format!("no user {username}")));
    }
    let mut what = Vec::new();
    if let Some(r) = req.role {
        what.push(format!("role={}", r.as_str()));
    }
    if let Some(a) = req.active {
        what.push(format!("active={a}"));
    }
    if display.is_some() {
        what.push("display_name".into());
    }
    if req.password.is_some() {
        what.push("password reset".into());
    }
    s.audit
        .append(
            &session.user.username,
            "user.update",
            &username,
            &what.join(" "),
        )
        .await?;
    let user = s
        .auth
        .user(&username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {username}")))?;
    Ok(Json(user))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Settings {
    /// The hub's local time, hours east of UTC: daily counts and dates are in this time.
    pub utc_offset_hours: i8,
    pub version: String,
    /// Shortest password the hub accepts.
    pub min_password_length: usize,
}

/// What a client needs to present the hub's data (no sign-in needed: nothing here is private).
#[utoipa::path(get, path = "/api/settings", tag = "auth", responses((status = 200, body = Settings)))]
pub async fn settings(State(s): State<AppState>) -> Json<Settings> {
    Json(Settings {
        utc_offset_hours: s.cfg.utc_offset_hours,
        version: env!("CARGO_PKG_VERSION").to_string(),
        min_password_length: crate::auth::MIN_PASSWORD,
    })
}
