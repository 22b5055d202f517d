//! Sign-in, sessions and user administration.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiJson, ApiResult, AppState, Session};
use crate::auth::access::{self, ADMINS};
use crate::auth::{AuthError, Role, User};
use crate::http_server::ClientAddr;

/// Largest login request body, bytes: room for the longest username and password, JSON-escaped. Bodies
/// beyond it are cut off as they arrive (413), never buffered.
pub const LOGIN_BODY_LIMIT: usize = 8 * 1024;

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

/// Signs in. Failed attempts are limited per account, per address and per account and address, with
/// waits that double (429 with `Retry-After`, code `login_throttled`); usernames over 64 bytes and passwords
/// over 1024 are refused unread (400, `input_too_long`), bodies over 8 KiB too (413, `body_too_large`).
/// Agent accounts cannot sign in (403, `agent_account`). Refusals are summed into the audit log.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400, body = super::ErrorBody),
              (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
              (status = 413, body = super::ErrorBody), (status = 429, body = super::ErrorBody),
              (status = 503, body = super::ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ClientAddr(from): ClientAddr,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> ApiResult<Json<LoginResponse>> {
    let Json(req) = body.map_err(login_body_error)?;
    match s.auth.login(&req.username, &req.password, from).await {
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
        Err(e) => Err(refuse_login(&s, &req.username, from, e)),
    }
}

fn login_body_error(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a login request is at most {LOGIN_BODY_LIMIT} bytes"),
        )
        .with_code("body_too_large")
    } else {
        super::body_rejection(r)
    }
}

/// Counts a refused login on the metrics and in the pending audit summary.
fn refuse_login(s: &AppState, username: &str, from: std::net::IpAddr, e: AuthError) -> ApiError {
    let reason = e.refusal_reason();
    if let AuthError::Throttled(t) = &e {
        s.metrics
            .logins_throttled
            .get_or_create(&crate::metrics::ScopeLabel {
                scope: t.scope.as_str().into(),
            })
            .inc();
    }
    if reason != "error" {
        s.metrics.login_refused(reason);
        s.refused_logins.record(username, from, reason);
        tracing::info!(%from, reason, "login refused");
    }
    e.into()
}

/// Ends the current session.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = super::ErrorBody)))]
pub async fn logout(State(s): State<AppState>, session: Session) -> ApiResult<StatusCode> {
    s.auth.logout(&session.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user and what the web UI may show them. The hub maps roles to rights in one place
/// (`central-hub/src/auth/access.rs`): the UI opens the pages listed here and asks `groups` before showing a
/// form.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    #[serde(flatten)]
    pub user: User,
    /// The web UI's pages this user may open, in navigation order (of `alerts`, `dashboard`, `watchlists`,
    /// `records`, `lodging`, `exams`, `audit`, `users`).
    pub pages: Vec<&'static str>,
    /// The page they start on.
    pub home: Option<&'static str>,
    /// The role groups they belong to, which name what they may do (`watchers`, `alert_reviewers`,
    /// `watchlist_owners`, ...): each is the set of roles some routes require.
    pub groups: Vec<&'static str>,
}

/// The signed-in user, with the pages and role groups the web UI goes by.
#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = super::ErrorBody)))]
pub async fn me(session: Session) -> Json<Me> {
    let role = session.user.role;
    Json(Me {
        user: session.user,
        pages: access::pages_for(role),
        home: access::home(role),
        groups: access::groups_of(role),
    })
}

/// All users (admin).
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [User]), (status = 403, body = super::ErrorBody)))]
pub async fn list_users(State(s): State<AppState>, session: Session) -> ApiResult<Json<Vec<User>>> {
    session.require(ADMINS)?;
    Ok(Json(s.auth.users().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
}

/// Creates a user (admin). Role `agent` is refused (400, `role_agent_not_allowed`): agent accounts are
/// made with `central-hub agent add`. Audited.
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn create_user(
    State(s): State<AppState>,
    session: Session,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    session.require(ADMINS)?;
    if req.role == Role::Agent {
        return Err(AuthError::AgentRole.into());
    }
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

/// Changes a user's role, active flag, display name or password (admin). Of an agent account only `active`
/// can change (deactivation turns its broker login off; other fields: 400, `agent_account_fields`); agents
/// are created, and given a new password, with `central-hub agent add`. An admin cannot deactivate or
/// demote their own account. Audited.
#[utoipa::path(patch, path = "/api/users/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = UserChange,
    responses((status = 200, body = User), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)))]
pub async fn update_user(
    State(s): State<AppState>,
    session: Session,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<UserChange>,
) -> ApiResult<Json<User>> {
    session.require(ADMINS)?;
    if username == session.user.username
        && (req.active == Some(false) || req.role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::bad_request(
            "you cannot deactivate or demote your own account; ask another admin",
        ));
    }
    if req.role == Some(Role::Agent) {
        return Err(AuthError::AgentRole.into());
    }
    let target = s
        .auth
        .user(&username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {username}")))?;
    if target.role == Role::Agent {
        return update_agent(&s, &session, target, &req).await.map(Json);
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

/// An agent account: only its `active` flag is the web's to change.
async fn update_agent(
    s: &AppState,
    session: &Session,
    agent: User,
    req: &UserChange,
) -> ApiResult<User> {
    let Some(active) = req.active else {
        return Err(agent_fields_error());
    };
    if req.role.is_some() || req.display_name.is_some() || req.password.is_some() {
        return Err(agent_fields_error());
    }
    if !s.auth.set_agent_active(&agent.username, active).await? {
        return Err(ApiError::not_found(format!("no agent {}", agent.username)));
    }
    let action = if active {
        "agent.activate"
    } else {
        "agent.deactivate"
    };
    s.audit
        .append(&session.user.username, action, &agent.username, "")
        .await?;
    Ok(User { active, ..agent })
}

fn agent_fields_error() -> ApiError {
    ApiError::bad_request(
        "of an agent account only `active` can change here; `central-hub agent add` gives it a new password",
    )
    .with_code("agent_account_fields")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `/api/me` keeps the user's fields at the top level, as before, beside what the UI goes by; the OpenAPI
    /// document describes exactly that.
    #[test]
    fn me_is_the_user_with_its_pages_and_groups() {
        let me = Me {
            user: User {
                id: "u1".into(),
                username: "op1".into(),
                display_name: "Op".into(),
                role: Role::Operator,
                active: true,
            },
            pages: access::pages_for(Role::Operator),
            home: access::home(Role::Operator),
            groups: access::groups_of(Role::Operator),
        };
        let v = serde_json::to_value(&me).unwrap();
        assert_eq!(v["username"], "op1");
        assert_eq!(v["role"], "operator");
        assert_eq!(v["home"], "alerts");
        assert_eq!(
            v["pages"],
            serde_json::json!(["alerts", "dashboard", "watchlists", "records", "lodging"])
        );
        assert_eq!(
            v["groups"],
            serde_json::json!(["watchers", "alert_reviewers", "record_verifiers"])
        );

        let doc = serde_json::to_value(super::super::openapi()).unwrap();
        let body =
            &doc["paths"]["/api/me"]["get"]["responses"]["200"]["content"]["application/json"];
        assert_eq!(body["schema"]["$ref"], "#/components/schemas/Me", "{body}");
        let schema = doc["components"]["schemas"]["Me"].to_string();
        for part in [
            "\"pages\"",
            "\"home\"",
            "\"groups\"",
            "#/components/schemas/User",
        ] {
            assert!(schema.contains(part), "Me's schema lacks {part}: {schema}");
        }
    }
}
