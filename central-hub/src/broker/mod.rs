//! The MQTT broker's side of security: agent accounts, the files that confine every login to its topics, and
//! the Mosquitto the hub runs itself when `[mqtt] embedded = true`.
//!
//! Each agent gets its own login (`<site>.<agent>`, a random password shown once). The users table is the one
//! source of truth: the hub's own broker reloads its password and ACL files from it within seconds of a
//! change, and `central-hub broker-files` writes the same files for an external Mosquitto.

pub mod managed;
pub mod mosquitto;

use checkpoint_protocol::valid_topic_id;

use crate::auth::{hash_password, AuthError, Role};
use crate::db::{now_ms, Db, DbError};

/// An active agent account as the broker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentAccount {
    pub site: String,
    pub agent: String,
    /// Mosquitto's `$7$` hash of the password.
    pub broker_hash: String,
}

impl AgentAccount {
    pub fn username(&self) -> String {
        agent_username(&self.site, &self.agent)
    }
}

/// The broker username of an agent. Agent usernames always hold a dot and hub usernames never do, so
/// neither can be registered as the other.
pub fn agent_username(site: &str, agent: &str) -> String {
    format!("{site}.{agent}")
}

/// Creates (or replaces the password of, and reactivates) an agent's broker account; returns (username,
/// password).
pub async fn add_agent(db: &Db, site: &str, agent: &str) -> Result<(String, String), AuthError> {
    if !valid_topic_id(site) || !valid_topic_id(agent) {
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
    .bind(mosquitto::mosquitto_hash(&password, salt))
    .execute(&db.pool)
    .await?;
    Ok((username, password))
}

/// The usernames (`<site>.<agent>`) of the agent accounts; only the active ones with `active_only`.
pub async fn agent_usernames(db: &Db, active_only: bool) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT username FROM users WHERE role = 'agent' AND ($1 = 0 OR active = 1)",
    )
    .bind(i64::from(active_only))
    .fetch_all(&db.pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn agent_accounts_are_named_for_site_and_agent() {
        let (db, _d) = crate::db::testing::sqlite().await;
        let (user, pw) = add_agent(&db, "pier", "a1").await.unwrap();
        assert_eq!(user, "pier.a1");
        assert_eq!(pw.len(), 64);
        assert!(add_agent(&db, "Pier!", "a1").await.is_err());
        assert!(
            add_agent(&db, "pier", "a.1").await.is_err(),
            "a dot would make usernames ambiguous"
        );
        // A new password replaces the old one.
        let (_, pw2) = add_agent(&db, "pier", "a1").await.unwrap();
        assert_ne!(pw, pw2);
        assert_eq!(mosquitto::agent_accounts(&db).await.unwrap().len(), 1);
    }
}
