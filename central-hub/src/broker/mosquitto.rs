//! Mosquitto's files: the `password_file` (Mosquitto's own PBKDF2-SHA512 format), the `acl_file` and the
//! settings that make them hold. The hub writes them for the broker it runs itself (see [`super::managed`])
//! and, through `central-hub broker-files`, for an external Mosquitto.
//!
//! What each login may do:
//! - an agent (`<site>.<agent>`) publishes only its events and status (`checkpoint/<site>/<agent>/<kind>`)
//!   and reads only its own watchlist topics; it cannot publish on its own sync topic;
//! - an agent also reads the hubs' presence (`checkpoint/hubs/presence`), and cannot publish it;
//! - the hub's ingest login reads `checkpoint/#` and publishes only its presence;
//! - the hub's sync login (`<hub>-sync`) publishes only on the agents' sync topics and reads nothing.
//!
//! `use_username_as_clientid` makes the client id the login's username, so no login can take over another's
//! session (the hub's persistent session included) by choosing its client id.

use base64::Engine as _;
use sha2::{Digest, Sha512};

use checkpoint_protocol::presence::HUB_PRESENCE_TOPIC;

use super::AgentAccount;
use crate::auth::AuthError;
use crate::db::Db;

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

/// A login the hub itself uses.
pub struct HubLogin<'a> {
    pub username: &'a str,
    pub password_hash: String,
}

/// The hub's two logins: ingest (`user`) and sync (`user-sync`), both with `password`.
pub fn hub_logins<'a>(user: &'a str, sync_user: &'a str, password: &str) -> [HubLogin<'a>; 2] {
    let salt = || uuid::Uuid::new_v4().into_bytes();
    [
        HubLogin {
            username: user,
            password_hash: mosquitto_hash(password, &salt()[..12]),
        },
        HubLogin {
            username: sync_user,
            password_hash: mosquitto_hash(password, &salt()[..12]),
        },
    ]
}

/// The username the hub's watchlist pusher logs in with.
pub fn sync_username(hub_user: &str) -> String {
    format!("{hub_user}-sync")
}

/// The active agent accounts that can log in to the broker, by username.
pub async fn agent_accounts(db: &Db) -> Result<Vec<AgentAccount>, AuthError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT username, broker_hash FROM users WHERE role = 'agent' AND active = 1 \
         AND broker_hash IS NOT NULL ORDER BY username",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (username, broker_hash) in rows {
        let Some((site, agent)) = username.split_once('.') else {
            continue;
        };
        out.push(AgentAccount {
            site: site.to_string(),
            agent: agent.to_string(),
            broker_hash,
        });
    }
    Ok(out)
}

/// `password_file` text.
pub fn password_file(hub: &[HubLogin<'_>], agents: &[AgentAccount]) -> String {
    let mut out = String::new();
    for h in hub {
        out.push_str(&format!("{}:{}\n", h.username, h.password_hash));
    }
    for a in agents {
        out.push_str(&format!("{}:{}\n", a.username(), a.broker_hash));
    }
    out
}

/// `acl_file` text. Anything not granted here is refused, `$SYS` included.
pub fn acl_file(hub_user: &str, sync_user: &str, agents: &[AgentAccount]) -> String {
    let mut acl = format!(
        "# Written by central-hub; regenerated when agent accounts change. Edits are overwritten.\n\
         user {hub_user}\ntopic read checkpoint/#\ntopic write {HUB_PRESENCE_TOPIC}\n\n\
         user {sync_user}\ntopic write checkpoint/+/+/watchlist/sync\n"
    );
    for a in agents {
        let (site, agent) = (&a.site, &a.agent);
        acl.push_str(&format!(
            "\nuser {user}\ntopic write checkpoint/{site}/{agent}/+\ntopic read checkpoint/{site}/{agent}/watchlist/#\n\
             topic read {HUB_PRESENCE_TOPIC}\n",
            user = a.username()
        ));
    }
    acl
}

/// The settings every Mosquitto serving Checkpoint needs, whatever else its configuration holds.
pub fn required_settings(password_file: &str, acl_file: &str) -> String {
    format!(
        "allow_anonymous false\n\
         use_username_as_clientid true\n\
         password_file {password_file}\n\
         acl_file {acl_file}\n"
    )
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
    async fn each_login_gets_only_its_own_topics() {
        let (db, _d) = crate::db::testing::sqlite().await;
        super::super::add_agent(&db, "pier", "a1").await.unwrap();
        super::super::add_agent(&db, "dock", "a2").await.unwrap();
        let agents = agent_accounts(&db).await.unwrap();
        let hub = hub_logins("checkpoint-hub", "checkpoint-hub-sync", "hubpw");
        let passwd = password_file(&hub, &agents);
        for user in [
            "pier.a1",
            "dock.a2",
            "checkpoint-hub",
            "checkpoint-hub-sync",
        ] {
            assert!(
                passwd
                    .lines()
                    .any(|l| l.starts_with(&format!("{user}:$7$101$"))),
                "{user} in {passwd}"
            );
        }
        let acl = acl_file("checkpoint-hub", "checkpoint-hub-sync", &agents);
        assert!(acl.contains(
            "user pier.a1\ntopic write checkpoint/pier/a1/+\ntopic read checkpoint/pier/a1/watchlist/#\n\
             topic read checkpoint/hubs/presence\n"
        ));
        assert!(acl.contains(
            "user checkpoint-hub\ntopic read checkpoint/#\ntopic write checkpoint/hubs/presence\n\n"
        ));
        assert!(
            acl.contains("user checkpoint-hub-sync\ntopic write checkpoint/+/+/watchlist/sync\n")
        );
        // A deactivated agent leaves both files.
        sqlx::query("UPDATE users SET active = 0 WHERE username = 'dock.a2'")
            .execute(&db.pool)
            .await
            .unwrap();
        let agents = agent_accounts(&db).await.unwrap();
        assert_eq!(agents.len(), 1);
        assert!(!password_file(&hub, &agents).contains("dock.a2"));
        assert!(!acl_file("h", "h-sync", &agents).contains("dock"));
    }
}
