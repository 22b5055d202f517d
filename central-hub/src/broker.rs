//! Broker credentials for agents. Each agent gets its own MQTT username (`<site>.<agent>`) and a random
//! password, shown once. For an external Mosquitto, `central-hub broker-files` writes its `password_file`
//! (Mosquitto's own PBKDF2-SHA512 format) and an `acl_file` that lets each agent write only under
//! `checkpoint/<site>/<agent>/` and read only its own watchlist topics, and lets the hub read everything and
//! write the watchlist topics.

use base64::Engine as _;
use sha2::{Digest, Sha512};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::auth::{hash_password, verify_password, AuthError, Role};
use crate::db::{now_ms, Db};

/// Mosquitto's iteration count for `$7$` hashes (what `mosquitto_passwd` writes).
const ITERATIONS: u32 = 101;

fn hmac_sha512(key: &[u8], msg: &[&[u8]]) -> [u8; 64] {
    const BLOCK: usize = 128;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..64].copy_from_slice(&Sha512::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha512::new();
    inner.update(k.map(|b| b ^ 0x36));
    for m in msg {
        inner.update(m);
    }
    let mut outer = Sha512::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// PBKDF2-HMAC-SHA512, one 64-byte block (all Mosquitto asks for).
pub fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut u = hmac_sha512(password, &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha512(password, &[&u]);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// A Mosquitto `password_file` hash: `$7$101$<salt>$<hash>`.
pub fn mosquitto_hash(password: &str, salt: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "$7${ITERATIONS}${}${}",
        b64.encode(salt),
        b64.encode(pbkdf2_sha512(password.as_bytes(), salt, ITERATIONS))
    )
}

/// The broker username of an agent.
pub fn agent_username(site: &str, agent: &str) -> String {
    format!("{site}.{agent}")
}

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Creates (or replaces the password of) an agent's broker account; returns (username, password).
pub async fn add_agent(db: &Db, site: &str, agent: &str) -> Result<(String, String), AuthError> {
    if !valid_id(site) || !valid_id(agent) {
        return Err(AuthError::BadUsername);
    }
    let username = agent_username(site, agent);
    let password = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let salt = &uuid::Uuid::new_v4().into_bytes()[..12];
    sqlx::query(
        "INSERT INTO users (id, username, display_name, password_hash, role, active, created_ms, broker_hash) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7) ON CONFLICT (username) DO UPDATE SET \
         password_hash = excluded.password_hash, broker_hash = excluded.broker_hash, active = 1",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&username)
    .bind(format!("agent {agent} at {site}"))
    .bind(hash_password(&password)?)
    .bind(Role::Agent.as_str())
    .bind(now_ms())
    .bind(mosquitto_hash(&password, salt))
    .execute(&db.pool)
    .await?;
    Ok((username, password))
}

/// Mosquitto's `password_file` and `acl_file` for every active agent account, plus the hub's own account.
pub async fn mosquitto_files(
    db: &Db,
    hub_username: &str,
    hub_password: &str,
) -> Result<(String, String), AuthError> {
    let rows = sqlx::query(
        "SELECT username, broker_hash FROM users WHERE role = 'agent' AND active = 1 \
         AND broker_hash IS NOT NULL ORDER BY username",
    )
    .fetch_all(&db.pool)
    .await?;
    let salt = &uuid::Uuid::new_v4().into_bytes()[..12];
    let mut passwd = format!("{hub_username}:{}\n", mosquitto_hash(hub_password, salt));
    let mut acl = format!(
        "# Written by `central-hub broker-files`; regenerate after adding agents.\n\
         user {hub_username}\ntopic read checkpoint/#\ntopic write checkpoint/+/+/watchlist/#\n"
    );
    for r in &rows {
        let user: String = r.try_get("username")?;
        let hash: String = r.try_get("broker_hash")?;
        let Some((site, agent)) = user.split_once('.') else {
            continue;
        };
        passwd.push_str(&format!("{user}:{hash}\n"));
        acl.push_str(&format!(
            "\nuser {user}\ntopic write checkpoint/{site}/{agent}/#\ntopic read checkpoint/{site}/{agent}/watchlist/#\n"
        ));
    }
    Ok((passwd, acl))
}

/// Logins to the embedded broker: the hub's own session (a password made at start, never stored) and the
/// active agent accounts. Argon2 takes tens of milliseconds, so a verified login is remembered for a minute;
/// a deactivated account is refused once that minute is over.
pub struct BrokerAuth {
    db: Db,
    refused: Option<prometheus_client::metrics::counter::Counter>,
    hub_user: String,
    hub_password: String,
    verified: std::sync::Mutex<std::collections::HashMap<String, ([u8; 32], std::time::Instant)>>,
}

const VERIFIED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl BrokerAuth {
    pub fn new(db: Db, hub_user: String, hub_password: String) -> Self {
        Self {
            db,
            refused: None,
            hub_user,
            hub_password,
            verified: Default::default(),
        }
    }

    /// Counts refused logins on this counter.
    pub fn counting_refusals(mut self, c: prometheus_client::metrics::counter::Counter) -> Self {
        self.refused = Some(c);
        self
    }

    /// Whether `user`/`password` may connect.
    pub async fn check(&self, client_id: &str, user: &str, password: &str) -> bool {
        if user == self.hub_user {
            // Constant time, so a refused login does not tell how much of the password was right.
            let ok: bool = password
                .as_bytes()
                .ct_eq(self.hub_password.as_bytes())
                .into();
            if !ok {
                self.refuse(client_id, user);
            }
            return ok;
        }
        let digest: [u8; 32] = sha2::Sha256::digest(password.as_bytes()).into();
        if let Ok(map) = self.verified.lock() {
            if let Some((d, at)) = map.get(user) {
                if at.elapsed() < VERIFIED_FOR && bool::from(d.ct_eq(&digest)) {
                    return true;
                }
            }
        }
        let row = sqlx::query(
            "SELECT password_hash FROM users WHERE username = $1 AND role = 'agent' AND active = 1",
        )
        .bind(user)
        .fetch_optional(&self.db.pool)
        .await;
        let hash: Option<String> = match row {
            Ok(Some(r)) => r.try_get("password_hash").ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "broker login: account lookup failed");
                None
            }
        };
        let ok = match hash {
            Some(h) => {
                let pw = password.to_string();
                tokio::task::spawn_blocking(move || verify_password(&pw, &h))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if ok {
            if let Ok(mut map) = self.verified.lock() {
                map.insert(user.to_string(), (digest, std::time::Instant::now()));
            }
        } else {
            self.refuse(client_id, user);
        }
        ok
    }

    fn refuse(&self, client_id: &str, user: &str) {
        tracing::warn!(%client_id, %user, "embedded broker refused a login");
        if let Some(c) = &self.refused {
            c.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_mosquitto_passwd() {
        // `mosquitto_passwd -b -c pw user1 secret` (Mosquitto 2.0.11) wrote this line.
        let line = "$7$101$2yim8v5/Xv8ZGdBe$qNTwqBa+EnadRlQ1CBpP/2a2jxfbvV36ZHh6+T3+qXWwsaUuSSLFFi7E6Fe8nh7c4ojI6uz+NdgOqbXOLxl8tQ==";
        let salt = base64::engine::general_purpose::STANDARD
            .decode("2yim8v5/Xv8ZGdBe")
            .unwrap();
        assert_eq!(mosquitto_hash("secret", &salt), line);
        assert_ne!(mosquitto_hash("secret2", &salt), line);
    }

    #[tokio::test]
    async fn agent_accounts_and_acl() {
        let (db, _d) = crate::db::testing::sqlite().await;
        let (user, pw) = add_agent(&db, "pier", "a1").await.unwrap();
        assert_eq!(user, "pier.a1");
        assert_eq!(pw.len(), 64);
        assert!(add_agent(&db, "Pier!", "a1").await.is_err());
        let (passwd, acl) = mosquitto_files(&db, "checkpoint-hub", "hubpw")
            .await
            .unwrap();
        assert!(passwd.lines().any(|l| l.starts_with("pier.a1:$7$101$")));
        assert!(passwd
            .lines()
            .any(|l| l.starts_with("checkpoint-hub:$7$101$")));
        assert!(acl.contains("user pier.a1\ntopic write checkpoint/pier/a1/#\ntopic read checkpoint/pier/a1/watchlist/#"));
        // A new password replaces the old one.
        let (_, pw2) = add_agent(&db, "pier", "a1").await.unwrap();
        assert_ne!(pw, pw2);
    }

    #[tokio::test]
    async fn embedded_broker_logins() {
        let (db, _d) = crate::db::testing::sqlite().await;
        let (user, pw) = add_agent(&db, "pier", "a1").await.unwrap();
        let auth = BrokerAuth::new(db.clone(), "hub".into(), "hub-secret".into());
        assert!(auth.check("c", "hub", "hub-secret").await);
        assert!(!auth.check("c", "hub", "hub-secre").await);
        assert!(auth.check("c", &user, &pw).await);
        assert!(auth.check("c", &user, &pw).await, "remembered login");
        assert!(!auth.check("c", &user, "wrong").await);
        assert!(!auth.check("c", "pier.a2", &pw).await, "unknown account");
        assert!(!auth.check("c", "", "").await, "anonymous");
        // Operators' accounts are for the web, not the broker.
        let a = crate::auth::Auth::new(db.clone(), 8, 5);
        a.create_user(
            "op1",
            "Op",
            "operator password",
            crate::auth::Role::Operator,
        )
        .await
        .unwrap();
        assert!(!auth.check("c", "op1", "operator password").await);
    }
}
