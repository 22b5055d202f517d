//! Several hubs, one system: what hubs sharing one PostgreSQL coordinate through it, and nothing else.
//!
//! - **Jobs that must run once** (stale agents, watchlist expiry and push, retention, audit checkpoints) run
//!   on the hub that holds a session-level advisory lock ([`Leadership`]). A dead hub's connection closes
//!   and PostgreSQL releases its lock; the others try every [`TRY_EVERY`], so one takes over within
//!   seconds. The lock's connection asks for TCP keepalives, so a hub whose machine vanishes without
//!   closing its socket loses the lock within [`KEEPALIVE_LOSS`] too.
//! - **Writes that must be ordered across hubs** (the audit chain's next link) take a transaction-level
//!   advisory lock ([`lock_for_transaction`]).
//! - Live hints cross hubs through `LISTEN/NOTIFY` (`crate::live`).
//!
//! On SQLite there is one hub per database file: it leads, and `BEGIN IMMEDIATE` orders writers.
//!
//! Lock keys are derived from the deployment's scope (its schema), because advisory locks are server-wide:
//! two deployments on one PostgreSQL server, or parallel tests with a schema each, must not share them.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Any, Connection, Transaction};
use tokio::sync::watch;

use crate::db::{Backend, Db, DbError};
use crate::metrics::Metrics;

/// How often a hub that does not lead tries to take the jobs lock, and the leader checks it still holds it.
pub const TRY_EVERY: Duration = Duration::from_secs(2);

/// Idle seconds, probe interval and probe count of the leader connection's TCP keepalives: a silent
/// leader machine is dropped by PostgreSQL after about 4 + 2 x 2 = 8 s.
const KEEPALIVE: (u32, u32, u32) = (4, 2, 2);
pub const KEEPALIVE_LOSS: Duration = Duration::from_secs(8);

/// The advisory locks hubs take.
#[derive(Clone, Copy, Debug)]
pub enum Lock {
    /// Held by the hub that runs the periodic jobs.
    Jobs,
    /// Held while appending to the audit chain.
    AuditChain,
}

impl Lock {
    fn name(self) -> &'static str {
        match self {
            Lock::Jobs => "jobs",
            Lock::AuditChain => "audit-chain",
        }
    }

    /// The 64-bit key of this lock in `scope`: FNV-1a, so every hub (any build, any platform) derives the same.
    pub fn key(self, scope: &str) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in "checkpoint-hub/"
            .bytes()
            .chain(scope.bytes())
            .chain(std::iter::once(b'/'))
            .chain(self.name().bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h as i64
    }
}

/// Takes `lock` until `tx` ends (PostgreSQL); nothing on SQLite, where the write transaction is already
/// exclusive.
pub async fn lock_for_transaction(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    lock: Lock,
    scope: &str,
) -> Result<(), DbError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock.key(scope))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Whether this hub runs the jobs that must run once.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
    /// The sole leader's sender, kept so `changes()` waits instead of reporting a closed channel.
    _sole: Option<Arc<watch::Sender<bool>>>,
}

impl Leadership {
    /// A hub alone on its database (SQLite): it always leads.
    pub fn sole() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            rx,
            _sole: Some(Arc::new(tx)),
        }
    }

    /// On SQLite the sole leader; on PostgreSQL a task that contends for the jobs lock until `stop`.
    pub fn start(db: &Db, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) -> Self {
        if db.backend == Backend::Sqlite {
            metrics.leader.set(1);
            return Self::sole();
        }
        let (tx, rx) = watch::channel(false);
        tokio::spawn(contend(db.clone(), tx, metrics, stop));
        Self { rx, _sole: None }
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Changes of leadership, for a job loop that must start at once when this hub takes over.
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

async fn contend(
    db: Db,
    leading: watch::Sender<bool>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let key = Lock::Jobs.key(db.scope());
    let mut conn: Option<sqlx::AnyConnection> = None;
    loop {
        let was_leading = *leading.borrow();
        let held = match conn.as_mut() {
            Some(c) => holds_or_takes(c, key, was_leading).await,
            None => match open_lock_connection(&db).await {
                Ok(mut c) => {
                    let r = holds_or_takes(&mut c, key, false).await;
                    conn = Some(c);
                    r
                }
                Err(e) => Err(e),
            },
        };
        let now_leading = match held {
            Ok(h) => h,
            Err(e) => {
                // The connection (and with it the lock, if we held it) is gone or unusable: stop leading
                // at once, since another hub may already have taken over.
                tracing::warn!(error = %e, "jobs lock connection lost; contending again");
                conn = None;
                false
            }
        };
        if now_leading != was_leading {
            if now_leading {
                tracing::info!(
                    "this hub now runs the jobs (retention, watchlist push, stale agents, audit checkpoints)"
                );
            } else {
                tracing::warn!("this hub no longer runs the jobs");
            }
            let _ = leading.send(now_leading);
            metrics.leader.set(i64::from(now_leading));
        }
        tokio::select! {
            _ = tokio::time::sleep(TRY_EVERY) => {}
            _ = stop.changed() => break,
        }
    }
    // Closing the connection releases the lock for the next hub now rather than when PostgreSQL notices.
    if let Some(c) = conn {
        let _ = c.close().await;
    }
    let _ = leading.send(false);
    metrics.leader.set(0);
}

/// A connection of its own (not the pool's: a pooled connection would carry the lock back into the pool)
/// with TCP keepalives short enough that PostgreSQL drops a vanished leader quickly.
async fn open_lock_connection(db: &Db) -> Result<sqlx::AnyConnection, DbError> {
    let mut c = db.pool.acquire().await?.detach();
    let (idle, interval, count) = KEEPALIVE;
    // Built from constants only.
    let set = format!(
        "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval}; \
         SET tcp_keepalives_count = {count}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(set))
        .execute(&mut c)
        .await?;
    Ok(c)
}

/// The leader checks its connection still answers (its lock lives with it); a follower tries the lock.
async fn holds_or_takes(
    c: &mut sqlx::AnyConnection,
    key: i64,
    leading: bool,
) -> Result<bool, DbError> {
    if leading {
        sqlx::query("SELECT 1").execute(&mut *c).await?;
        return Ok(true);
    }
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *c)
        .await?;
    Ok(got)
}

#[cfg(test)]
mod tests;
