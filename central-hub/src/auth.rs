//! Users, roles, passwords and sessions.
//!
//! Passwords are hashed with Argon2id (PHC strings, so parameters can be raised later without breaking old
//! hashes). A session is a random bearer token; only its SHA-256 is stored. Guessing is slowed per account,
//! per address and per pair ([`crate::login_limit`]); hashes run off the async workers, a bounded number at
//! once ([`crate::hashing`]). Agent accounts hold broker credentials only: they never get a web session.

use std::net::IpAddr;
use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{now_ms, Db, DbError};
use crate::hashing::Hasher;
use crate::login_limit::{LoginLimiter, LoginLimits, Throttled};

pub mod access;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users and settings.
    Admin,
    /// Second reviewer, audit reader, watchlist owner.
    Supervisor,
    /// Reviews alerts, watches counts.
    Operator,
    /// Checks guests in and out at an establishment.
    LodgingStaff,
    /// Runs exam check-in.
    ExamStaff,
    /// An edge agent (broker credentials; no web access).
    Agent,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
            Role::LodgingStaff => "lodging_staff",
            Role::ExamStaff => "exam_staff",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "supervisor" => Role::Supervisor,
            "operator" => Role::Operator,
            "lodging_staff" => Role::LodgingStaff,
            "exam_staff" => Role::ExamStaff,
            "agent" => Role::Agent,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed logins; try again in {} s", .0.retry_after.as_secs().max(1))]
    Throttled(Throttled),
    #[error("{field} is longer than {max} bytes")]
    TooLong { field: &'static str, max: usize },
    #[error("agent accounts hold broker credentials only and cannot sign in to the web API")]
    AgentAccount,
    #[error("agent accounts are created with `central-hub agent add`, not as users")]
    AgentRole,
    #[error("too many sign-ins in progress; try again shortly")]
    Busy,
    #[error("username must be 3-64 characters of a-z, 0-9, '.', '-' or '_'")]
    BadUsername,
    #[error("password must be at least {0} characters")]
    WeakPassword(usize),
    #[error("username {0} is taken")]
    Taken(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Db(e.into())
    }
}

impl AuthError {
    /// The label of a refused login on metrics and in the audit log.
    pub fn refusal_reason(&self) -> &'static str {
        match self {
            AuthError::BadCredentials => "bad_credentials",
            AuthError::Throttled(_) => "throttled",
            AuthError::TooLong { .. } => "too_long",
            AuthError::AgentAccount => "agent_account",
            AuthError::Busy => "busy",
            _ => "error",
        }
    }
}

pub const MIN_PASSWORD: usize = 10;
/// Longest username accepted anywhere, bytes (longer ones are refused before any other work).
pub const MAX_USERNAME: usize = 64;
/// Longest password accepted, bytes: far beyond any passphrase, short enough that hashing it is cheap.
pub const MAX_PASSWORD: usize = 1024;

/// Refuses a password too short or too long to set.
fn check_new_password(password: &str) -> Result<(), AuthError> {
    if password.len() > MAX_PASSWORD {
        return Err(AuthError::TooLong {
            field: "password",
            max: MAX_PASSWORD,
        });
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::WeakPassword(MIN_PASSWORD));
    }
    Ok(())
}

/// Refuses login input longer than any account could have, before it is hashed or remembered.
fn check_login_input(username: &str, password: &str) -> Result<(), AuthError> {
    if username.len() > MAX_USERNAME {
        return Err(AuthError::TooLong {
            field: "username",
            max: MAX_USERNAME,
        });
    }
    if password.len() > MAX_PASSWORD {
        return Err(AuthError::TooLong {
            field: "password",
            max: MAX_PASSWORD,
        });
    }
    Ok(())
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_username(u: &str) -> bool {
    (3..=MAX_USERNAME).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub struct Auth {
    db: Db,
    session_ms: i64,
    pub limiter: LoginLimiter,
    pub hasher: Hasher,
}

impl Auth {
    /// Default limits with `login_attempts` free failures per account and address; hashing on
    /// [`crate::hashing::default_permits`] threads.
    pub fn new(db: Db, session_hours: u64, login_attempts: u32) -> Self {
        let limits = LoginLimits {
            per_account_address: login_attempts,
            ..LoginLimits::default()
        };
        Self::with_limits(db, session_hours, limits, crate::hashing::default_permits())
    }

    /// `hash_permits`: password hashes run at once at most (see [`crate::hashing`]).
    pub fn with_limits(
        db: Db,
        session_hours: u64,
        limits: LoginLimits,
        hash_permits: usize,
    ) -> Self {
        Self {
            db,
            session_ms: session_hours as i64 * 3_600_000,
            limiter: LoginLimiter::new(limits),
            hasher: Hasher::new(hash_permits),
        }
    }

    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AuthError> {
        if !valid_username(username) {
            return Err(AuthError::BadUsername);
        }
        if role == Role::Agent {
            return Err(AuthError::AgentRole);
        }
        check_new_password(password)?;
        let hash = self.hasher.hash(password).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let r = sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, active, created_ms) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) ON CONFLICT (username) DO NOTHING",
        )
        .bind(&id)
        .bind(username)
        .bind(display_name)
        .bind(hash)
        .bind(role.as_str())
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(AuthError::Taken(username.into()));
        }
        Ok(User {
            id,
            username: username.into(),
            display_name: display_name.into(),
            role,
            active: true,
        })
    }

    pub async fn users(&self) -> Result<Vec<User>, AuthError> {
        let rows = sqlx::query(
            "SELECT id, username, display_name, role, active FROM users ORDER BY username",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().filter_map(row_user).collect())
    }

    /// Changes a user's role, display name, password or active flag in one transaction; a new role or
    /// password, or deactivation, ends their open sessions, so a demoted user loses the old role's rights at
    /// once. Agent accounts are not changed here. Returns false for an unknown user.
    pub async fn update_user(
        &self,
        username: &str,
        role: Option<Role>,
        display_name: Option<&str>,
        password: Option<&str>,
        active: Option<bool>,
    ) -> Result<bool, AuthError> {
        if role == Some(Role::Agent) {
            return Err(AuthError::AgentRole);
        }
        let hash = match password {
            Some(p) => {
                check_new_password(p)?;
                Some(self.hasher.hash(p).await?)
            }
            None => None,
        };
        let mut tx = self.db.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE users SET role = COALESCE($1, role), display_name = COALESCE($2, display_name), \
             password_hash = COALESCE($3, password_hash), active = COALESCE($4, active) \
             WHERE username = $5 AND role <> 'agent'",
        )
        .bind(role.map(|r| r.as_str()))
        .bind(display_name)
        .bind(hash)
        .bind(active.map(i64::from))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        if role.is_some() || password.is_some() || active == Some(false) {
            sqlx::query(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
            )
            .bind(username)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// One user, by name.
    pub async fn user(&self, username: &str) -> Result<Option<User>, AuthError> {
        let row = sqlx::query(
            "SELECT id, username, display_name, role, active FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().and_then(row_user))
    }

    pub async fn user_count(&self) -> Result<i64, AuthError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?)
    }

    /// Checks the password and opens a session: `(token, user, expires_ms)`. `from` is the client's
    /// address, for the per-address limits. The attempt is counted before the password is checked, and an
    /// unknown username costs a hash like a known one, so neither concurrency nor timing tells more.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<(String, User, i64), AuthError> {
        check_login_input(username, password)?;
        let key = username.to_ascii_lowercase();
        self.limiter
            .begin(&key, from, Instant::now())
            .map_err(AuthError::Throttled)?;
        let row = sqlx::query(
            "SELECT id, username, display_name, role, active, password_hash FROM users WHERE username = $1",
        )
        .bind(&key)
        .fetch_optional(&self.db.pool)
        .await?;
        let phc = row
            .as_ref()
            .and_then(|r| r.try_get::<String, _>("password_hash").ok());
        let verified = self.hasher.verify(password, phc).await?;
        let user = match row.as_ref().and_then(row_user) {
            Some(u) if verified && u.role == Role::Agent => return Err(AuthError::AgentAccount),
            Some(u) if verified && u.active => u,
            _ => return Err(AuthError::BadCredentials),
        };
        self.limiter.succeeded(&key, from);
        let (token, expires) = self.open_session(&user.id).await?;
        Ok((token, user, expires))
    }

    async fn open_session(&self, user_id: &str) -> Result<(String, i64), AuthError> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = now_ms();
        let expires = now + self.session_ms;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(&token))
        .bind(user_id)
        .bind(now)
        .bind(expires)
        .execute(&self.db.pool)
        .await?;
        Ok((token, expires))
    }

    /// The user of a live session. An agent account's session (left from before agents were refused at
    /// login) is worth nothing.
    pub async fn session(&self, token: &str) -> Result<Option<User>, AuthError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.active FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_ms > $2 \
             AND u.role <> 'agent'",
        )
        .bind(token_hash(token))
        .bind(now_ms())
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().and_then(row_user).filter(|u| u.active))
    }

    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Turns an agent account's broker login on or off. The `users` row stays the one record of the account:
    /// the broker's login check and `central-hub broker-files` read `active` from it. False for no such
    /// agent.
    pub async fn set_agent_active(&self, username: &str, active: bool) -> Result<bool, AuthError> {
        set_agent_active(&self.db, username, active).await
    }

    /// Deletes sessions past their expiry (they are refused already; this keeps the table from growing). Run by
    /// the hub's retention job.
    pub async fn purge_expired_sessions(&self) -> Result<u64, AuthError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
            .bind(now_ms())
            .execute(&self.db.pool)
            .await?
            .rows_affected())
    }
}

/// See [`Auth::set_agent_active`]; also for the command line, which has no `Auth`.
pub async fn set_agent_active(db: &Db, username: &str, active: bool) -> Result<bool, AuthError> {
    let r = sqlx::query("UPDATE users SET active = $1 WHERE username = $2 AND role = 'agent'")
        .bind(i64::from(active))
        .bind(username)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

fn row_user(r: &sqlx::any::AnyRow) -> Option<User> {
    Some(User {
        id: r.try_get("id").ok()?,
        username: r.try_get("username").ok()?,
        display_name: r.try_get("display_name").ok()?,
        role: Role::parse(&r.try_get::<String, _>("role").ok()?)?,
        active: r.try_get::<i64, _>("active").ok()? == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    #[tokio::test]
    async fn login_sessions_and_rate_limit() {
        let (db, _d) = testing::sqlite().await;
        let auth = Auth::new(db, 1, 3);
        assert!(matches!(
            auth.create_user("al", "x", "long enough pw", Role::Admin)
                .await,
            Err(AuthError::BadUsername)
        ));
        assert!(matches!(
            auth.create_user("alice", "Alice", "short", Role::Admin)
                .await,
            Err(AuthError::WeakPassword(_))
        ));
        auth.create_user(
            "alice",
            "Alice Nguyễn",
            "correct horse battery",
            Role::Operator,
        )
        .await
        .unwrap();
        assert!(matches!(
            auth.create_user("alice", "A", "correct horse battery", Role::Admin)
                .await,
            Err(AuthError::Taken(_))
        ));
        let (token, user, _) = auth
            .login("alice", "correct horse battery", here())
            .await
            .unwrap();
        assert_eq!(user.role, Role::Operator);
        assert_eq!(
            auth.session(&token).await.unwrap().unwrap().username,
            "alice"
        );
        assert!(auth.session("forged").await.unwrap().is_none());
        auth.logout(&token).await.unwrap();
        assert!(auth.session(&token).await.unwrap().is_none());

        for _ in 0..3 {
            assert!(matches!(
                auth.login("alice", "wrong", here()).await,
                Err(AuthError::BadCredentials)
            ));
        }
        // Even the right password is refused from that address until its wait has passed...
        assert!(matches!(
            auth.login("alice", "correct horse battery", here()).await,
            Err(AuthError::Throttled(_))
        ));
        // ...but the guesser has not locked the account: its owner elsewhere signs in.
        auth.login("alice", "correct horse battery", elsewhere())
            .await
            .unwrap();

        // A disabled user's sessions end.
        auth.create_user("bob", "Bob", "another good pw", Role::Supervisor)
            .await
            .unwrap();
        let (t, _, _) = auth.login("bob", "another good pw", here()).await.unwrap();
        assert!(auth
            .update_user("bob", None, None, None, Some(false))
            .await
            .unwrap());
        assert!(auth.session(&t).await.unwrap().is_none());
        assert!(matches!(
            auth.login("bob", "another good pw", here()).await,
            Err(AuthError::BadCredentials)
        ));
    }

    fn here() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    fn elsewhere() -> IpAddr {
        "198.51.100.2".parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_guesses_get_no_more_checks_than_sequential_ones() {
        let (db, _d) = testing::sqlite().await;
        let auth = std::sync::Arc::new(Auth::new(db, 1, 5));
        auth.create_user("admin", "Admin", "the right password", Role::Admin)
            .await
            .unwrap();
        let before = auth.hasher.verifications.get();
        let guesses: Vec<_> = (0..60)
            .map(|i| {
                let auth = auth.clone();
                tokio::spawn(async move {
                    let pw = if i == 59 {
                        "the right password".to_string()
                    } else {
                        format!("wrong guess {i}")
                    };
                    auth.login("admin", &pw, here()).await
                })
            })
            .collect();
        let mut checked = 0;
        for g in guesses {
            match g.await.unwrap() {
                Err(AuthError::Throttled(_)) => {}
                Err(AuthError::BadCredentials) | Ok(_) => checked += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // The burst takes far less than the 1 s wait after the fifth failure; a slow machine could let
        // a few more through as waits pass, never more than a handful.
        assert!(
            checked <= 8,
            "{checked} of 60 concurrent guesses were checked"
        );
        assert_eq!(auth.hasher.verifications.get() - before, checked as u64);
    }

    #[tokio::test]
    async fn expired_sessions_are_purged_and_live_ones_kept() {
        let (db, _d) = testing::sqlite().await;
        let auth = Auth::new(db.clone(), 1, 5);
        auth.create_user("carol", "C", "a long enough pw", Role::Operator)
            .await
            .unwrap();
        let (old, _, _) = auth
            .login("carol", "a long enough pw", here())
            .await
            .unwrap();
        let (live, _, _) = auth
            .login("carol", "a long enough pw", here())
            .await
            .unwrap();
        // Ages one session past its expiry, as an idle browser tab's would be.
        sqlx::query("UPDATE sessions SET expires_ms = 0 WHERE token_hash = (SELECT MIN(token_hash) FROM sessions)")
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(auth.purge_expired_sessions().await.unwrap(), 1);
        let kept = [
            auth.session(&old).await.unwrap(),
            auth.session(&live).await.unwrap(),
        ];
        assert_eq!(
            kept.iter().filter(|s| s.is_some()).count(),
            1,
            "the live session stays"
        );
        assert_eq!(auth.purge_expired_sessions().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn oversized_input_is_refused_before_it_is_hashed_or_remembered() {
        let (db, _d) = testing::sqlite().await;
        let auth = Auth::new(db, 1, 5);
        let huge = "a".repeat(10 << 20);
        for (user, pw) in [(huge.as_str(), "pw"), ("alice", huge.as_str())] {
            assert!(matches!(
                auth.login(user, pw, here()).await,
                Err(AuthError::TooLong { .. })
            ));
        }
        assert!(auth.limiter.is_empty(), "nothing remembered");
        assert_eq!(auth.hasher.verifications.get(), 0, "nothing hashed");
        assert!(matches!(
            auth.create_user("alice", "A", &huge, Role::Operator).await,
            Err(AuthError::TooLong { .. })
        ));
    }

    #[tokio::test]
    async fn unknown_usernames_cost_the_same_hash_as_known_ones() {
        let (db, _d) = testing::sqlite().await;
        let auth = Auth::new(db, 1, 5);
        auth.create_user("known", "K", "the right password", Role::Operator)
            .await
            .unwrap();
        let before = auth.hasher.verifications.get();
        assert!(matches!(
            auth.login("known", "wrong password", here()).await,
            Err(AuthError::BadCredentials)
        ));
        assert_eq!(auth.hasher.verifications.get(), before + 1);
        assert!(matches!(
            auth.login("nobody", "wrong password", here()).await,
            Err(AuthError::BadCredentials)
        ));
        assert_eq!(
            auth.hasher.verifications.get(),
            before + 2,
            "an unknown name is checked against the dummy hash"
        );
    }

    async fn agents_have_no_web_access(db: Db) {
        let auth = Auth::new(db.clone(), 1, 5);
        assert!(matches!(
            auth.create_user("pier.a9", "A", "agent password 1", Role::Agent)
                .await,
            Err(AuthError::AgentRole)
        ));
        let (user, pw) = crate::broker::add_agent(&db, "pier", "a1").await.unwrap();
        assert!(matches!(
            auth.login(&user, &pw, here()).await,
            Err(AuthError::AgentAccount)
        ));
        assert!(matches!(
            auth.login(&user, "not the password", here()).await,
            Err(AuthError::BadCredentials)
        ));
        // A session row left from before: worthless.
        let id: String = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(&user)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get("id")
            .unwrap();
        let (token, _) = auth.open_session(&id).await.unwrap();
        assert!(auth.session(&token).await.unwrap().is_none());
        // Deactivation flips `active`, which the broker's login check reads.
        assert!(auth.set_agent_active(&user, false).await.unwrap());
        assert!(!auth.user(&user).await.unwrap().unwrap().active);
        assert!(!auth.set_agent_active("pier.nobody", false).await.unwrap());
        auth.create_user("op1", "Op", "operator password", Role::Operator)
            .await
            .unwrap();
        assert!(
            !auth.set_agent_active("op1", false).await.unwrap(),
            "only agent accounts"
        );
        assert!(matches!(
            auth.update_user("op1", Some(Role::Agent), None, None, None)
                .await,
            Err(AuthError::AgentRole)
        ));
    }

    #[tokio::test]
    async fn agents_have_no_web_access_sqlite() {
        let (db, _d) = testing::sqlite().await;
        agents_have_no_web_access(db).await;
    }

    #[tokio::test]
    async fn agents_have_no_web_access_postgres() {
        if let Some(db) = testing::postgres().await {
            agents_have_no_web_access(db).await;
        }
    }
}
