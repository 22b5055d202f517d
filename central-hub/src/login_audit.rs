//! Refused logins in the audit log, summed: one row per (username, address) per flush interval with a count
//! by reason, instead of one row per attempt. A guessing run then costs the chain a row a minute, not a row
//! a request, and the log still says who was tried, from where, how often and why it was refused.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::audit::AuditLog;
use crate::db::{now_ms, DbError};

/// Distinct (username, address) pairs held between flushes; past it, attempts are summed under one
/// overflow row so a flood of made-up names cannot grow memory.
const MAX_PAIRS: usize = 10_000;
const OVERFLOW: &str = "(other usernames)";

#[derive(Default)]
struct Tally {
    first_ms: i64,
    last_ms: i64,
    by_reason: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
pub struct RefusedLogins {
    pending: Mutex<HashMap<(String, IpAddr), Tally>>,
}

/// One audit row's worth.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub username: String,
    pub address: IpAddr,
    pub count: u64,
    pub detail: String,
}

impl RefusedLogins {
    /// Counts one refusal. `username` is cut to 64 characters (longer ones were refused for their length).
    pub fn record(&self, username: &str, address: IpAddr, reason: &'static str) {
        let now = now_ms();
        let name: String = username.chars().take(64).collect();
        let mut p = self.pending.lock();
        let key = if p.contains_key(&(name.clone(), address)) || p.len() < MAX_PAIRS {
            (name, address)
        } else {
            (OVERFLOW.to_string(), address)
        };
        let t = p.entry(key).or_insert_with(|| Tally {
            first_ms: now,
            ..Default::default()
        });
        t.last_ms = now;
        *t.by_reason.entry(reason).or_default() += 1;
    }

    /// Takes what was counted since the last call.
    pub fn drain(&self) -> Vec<Summary> {
        let pending = std::mem::take(&mut *self.pending.lock());
        let mut out: Vec<Summary> = pending
            .into_iter()
            .map(|((username, address), t)| {
                let count = t.by_reason.values().sum();
                let reasons = t
                    .by_reason
                    .iter()
                    .map(|(r, n)| format!("{r} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Summary {
                    detail: format!(
                        "{count} refused logins from {address} ({reasons}) between {} and {}",
                        t.first_ms, t.last_ms
                    ),
                    username,
                    address,
                    count,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.username, a.address).cmp(&(&b.username, b.address)));
        out
    }

    /// Writes the summaries since the last flush to the audit log.
    pub async fn flush(&self, audit: &AuditLog) -> Result<usize, DbError> {
        let rows = self.drain();
        for s in &rows {
            audit
                .append(
                    &format!("anonymous@{}", s.address),
                    "auth.login_refused",
                    &s.username,
                    &s.detail,
                )
                .await?;
        }
        Ok(rows.len())
    }

    /// Flushes every `interval` until `stop`, and once more then.
    pub fn spawn_flusher(
        self: Arc<Self>,
        audit: Arc<AuditLog>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stop.changed() => true,
                };
                if let Err(e) = self.flush(&audit).await {
                    tracing::error!(error = %e, "writing refused logins to the audit log");
                }
                if last {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_guessing_run_is_one_row_with_its_count() {
        let (db, _d) = crate::db::testing::sqlite().await;
        let audit = AuditLog::with_key(db, crate::audit::AuditKey::generate().unwrap())
            .await
            .unwrap();
        let r = RefusedLogins::default();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..5 {
            r.record("admin", a, "bad_credentials");
        }
        for _ in 0..95 {
            r.record("admin", a, "throttled");
        }
        r.record("op1", a, "bad_credentials");
        assert_eq!(r.flush(&audit).await.unwrap(), 2);
        let rows = audit.list(None, None, None, 100).await.unwrap();
        let admin = rows.iter().find(|e| e.target == "admin").unwrap();
        assert_eq!(admin.action, "auth.login_refused");
        assert_eq!(admin.actor, "anonymous@192.0.2.7");
        assert!(
            admin
                .detail
                .starts_with("100 refused logins from 192.0.2.7 (bad_credentials 5, throttled 95)"),
            "{}",
            admin.detail
        );
        assert_eq!(r.flush(&audit).await.unwrap(), 0, "drained");
    }

    #[test]
    fn a_flood_of_names_is_bounded() {
        let r = RefusedLogins::default();
        let a: IpAddr = "192.0.2.8".parse().unwrap();
        for i in 0..(MAX_PAIRS + 500) {
            r.record(&format!("u{i}"), a, "bad_credentials");
        }
        let rows = r.drain();
        assert_eq!(rows.len(), MAX_PAIRS + 1);
        assert_eq!(
            rows.iter().find(|s| s.username == OVERFLOW).unwrap().count,
            500
        );
    }
}
