//! Users, roles, passwords and sessions.
//!
//! Passwords are hashed with Argon2id (PHC strings, so parameters can be raised later without breaking old
//! hashes). A session is a random bearer token; only its SHA-256 is stored. Failed logins are rate limited
//! per username so a guessed name cannot be brute-forced from the browser.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::{now_ms, Db, DbError};

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
    #[error("too many failed logins for this user; try again in {0} s")]
    RateLimited(u64),
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

pub const MIN_PASSWORD: usize = 10;
const WINDOW: Duration = Duration::from_secs(15 * 60);

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
    (3..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub struct Auth {
    db: Db,
    session_ms: i64,
    max_failures: usize,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Auth {
    pub fn new(db: Db, session_hours: u64, max_failures: u32) -> Self {
        Self {
            db,
            session_ms: session_hours as i64 * 3_600_000,
            max_failures: max_failures as usize,
            failures: Mutex::new(HashMap::new()),
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
        if password.chars().count() < MIN_PASSWORD {
            return Err(AuthError::WeakPassword(MIN_PASSWORD));
        }
        let hash = hash_password(password)?;
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

    pub async fn set_active(&self, username: &str, active: bool) -> Result<bool, AuthError> {
        let r = sqlx::query("UPDATE users SET active = $1 WHERE username = $2")
            .bind(i64::from(active))
            .bind(username)
            .execute(&self.db.pool)
            .await?;
        if !active {
            sqlx::query(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = $1)",
            )
            .bind(username)
            .execute(&self.db.pool)
            .await?;
        }
        Ok(r.rows_affected() == 1)
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
        if let Some(p) = password {
            if p.chars().count() < MIN_PASSWORD {
                return Err(AuthError::WeakPassword(MIN_PASSWORD));
            }
        }
        let hash = password.map(hash_password).transpose()?;
        let mut tx = self.db.pool.begin().await?;
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

    /// Checks the password and opens a session: `(token, user, expires_ms)`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(String, User, i64), AuthError> {
        let key = username.to_ascii_lowercase();
        {
            let mut f = self.failures.lock();
            let list = f.entry(key.clone()).or_default();
            list.retain(|t| t.elapsed() < WINDOW);
            if list.len() >= self.max_failures {
                let wait = WINDOW.saturating_sub(list[0].elapsed()).as_secs().max(1);
                return Err(AuthError::RateLimited(wait));
            }
        }
        let row = sqlx::query(
            "SELECT id, username, display_name, role, active, password_hash FROM users WHERE username = $1",
        )
        .bind(&key)
        .fetch_optional(&self.db.pool)
        .await?;
        let user = row.as_ref().and_then(|r| {
            let phc: String = r.try_get("password_hash").ok()?;
            let u = row_user(r)?;
            (u.active && verify_password(password, &phc)).then_some(u)
        });
        let Some(user) = user else {
            self.failures
                .lock()
                .entry(key)
                .or_default()
                .push(Instant::now());
            return Err(AuthError::BadCredentials);
        };
        self.failures.lock().remove(&key);
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
        .bind(&user.id)
        .bind(now)
        .bind(expires)
        .execute(&self.db.pool)
        .await?;
        Ok((token, user, expires))
    }

    /// The user of a live session.
    pub async fn session(&self, token: &str) -> Result<Option<User>, AuthError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.active FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_ms > $2",
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

    pub async fn purge_expired_sessions(&self) -> Result<u64, AuthError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
            .bind(now_ms())
            .execute(&self.db.pool)
            .await?
            .rows_affected())
    }
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
        let (token, user, _) = auth.login("alice", "correct horse battery").await.unwrap();
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
                auth.login("alice", "wrong").await,
                Err(AuthError::BadCredentials)
            ));
        }
        // Even the right password is refused until the window passes.
        assert!(matches!(
            auth.login("alice", "correct horse battery").await,
            Err(AuthError::RateLimited(_))
        ));

        // A disabled user's sessions end.
        auth.create_user("bob", "Bob", "another good pw", Role::Supervisor)
            .await
            .unwrap();
        let (t, _, _) = auth.login("bob", "another good pw").await.unwrap();
        auth.set_active("bob", false).await.unwrap();
        assert!(auth.session(&t).await.unwrap().is_none());
        assert!(matches!(
            auth.login("bob", "another good pw").await,
            Err(AuthError::BadCredentials)
        ));
    }
}
