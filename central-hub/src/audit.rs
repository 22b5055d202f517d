//! The audit log: every read of biometric data, every search, enrolment and review decision, append-only
//! and hash-chained. Row `n` stores `hash = sha256(prev_hash, seq, ts_ms, actor, action, target, detail)`
//! with `prev_hash` the hash of row `n - 1` (64 zeros for the first), so changing, deleting or re-ordering
//! any row breaks every hash after it, which `verify` reports with the first bad sequence number.

use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::sync::Mutex;

use crate::db::{now_ms, Db, DbError};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub ts_ms: i64,
    /// Username, or `agent:<site>/<agent>`, or `system`.
    pub actor: String,
    /// e.g. `alert.view`, `alert.review`, `person.search`, `watchlist.enrol`, `user.create`.
    pub action: String,
    pub target: String,
    /// Free text or JSON with the specifics (never biometric data itself).
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

fn field(h: &mut Sha256, s: &[u8]) {
    // Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    h.update((s.len() as u64).to_be_bytes());
    h.update(s);
}

pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    ts_ms: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    field(&mut h, prev_hash.as_bytes());
    field(&mut h, &seq.to_be_bytes());
    field(&mut h, &ts_ms.to_be_bytes());
    field(&mut h, actor.as_bytes());
    field(&mut h, action.as_bytes());
    field(&mut h, target.as_bytes());
    field(&mut h, detail.as_bytes());
    hex::encode(h.finalize())
}

/// The result of checking the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChainCheck {
    pub entries: i64,
    pub ok: bool,
    /// First row whose hash or link does not match, when not ok.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
    /// Hash of the last row: keep it somewhere else to detect truncation of the tail.
    pub head: String,
}

/// Appends to the chain. One hub process writes the log; the lock keeps its appends in sequence, and the
/// primary key on `seq` makes a second writer fail loudly instead of forking the chain.
pub struct AuditLog {
    db: Db,
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            lock: Mutex::new(()),
        }
    }

    pub async fn append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, DbError> {
        let _g = self.lock.lock().await;
        // SQLite refuses, without waiting, a transaction that read and then wants to write while another
        // connection (ingest, or a `central-hub` command in another process) is writing: try again shortly.
        let mut wait = std::time::Duration::from_millis(20);
        for _ in 0..12 {
            match self.try_append(actor, action, target, detail).await {
                Err(e) if crate::db::is_busy(&e) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
        self.try_append(actor, action, target, detail).await
    }

    async fn try_append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<AuditEntry, DbError> {
        let mut tx = self.db.pool.begin().await?;
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (prev_seq, prev_hash) = match last {
            Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
            None => (0, GENESIS.to_string()),
        };
        let seq = prev_seq + 1;
        let ts_ms = now_ms();
        let hash = entry_hash(&prev_hash, seq, ts_ms, actor, action, target, detail);
        sqlx::query(
            "INSERT INTO audit_log (seq, ts_ms, actor, action, target, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(ts_ms)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditEntry {
            seq,
            ts_ms,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
            prev_hash,
            hash,
        })
    }

    /// Newest first, optionally filtered by actor and action prefix.
    pub async fn list(
        &self,
        actor: Option<&str>,
        action_prefix: Option<&str>,
        before_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit_log \
             WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR action LIKE $3) AND seq < $4 \
             ORDER BY seq DESC LIMIT $5",
        )
        .bind(actor.unwrap_or(""))
        .bind(action_prefix.unwrap_or(""))
        .bind(format!("{}%", action_prefix.unwrap_or("")))
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(row_entry).collect()
    }

    /// Walks the whole chain in order, in pages, recomputing every hash.
    pub async fn verify(&self) -> Result<ChainCheck, DbError> {
        let mut prev_hash = GENESIS.to_string();
        let mut expect_seq = 1i64;
        let mut entries = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT seq, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit_log \
                 WHERE seq >= $1 ORDER BY seq LIMIT 1000",
            )
            .bind(expect_seq)
            .fetch_all(&self.db.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let e = row_entry(r)?;
                let bad = |problem: String| ChainCheck {
                    entries,
                    ok: false,
                    first_bad_seq: Some(e.seq),
                    problem: Some(problem),
                    head: prev_hash.clone(),
                };
                if e.seq != expect_seq {
                    return Ok(ChainCheck {
                        first_bad_seq: Some(expect_seq),
                        ..bad(format!("entry {expect_seq} is missing (next is {})", e.seq))
                    });
                }
                if e.prev_hash != prev_hash {
                    return Ok(bad(format!(
                        "entry {} does not link to entry {}",
                        e.seq,
                        e.seq - 1
                    )));
                }
                let h = entry_hash(
                    &e.prev_hash,
                    e.seq,
                    e.ts_ms,
                    &e.actor,
                    &e.action,
                    &e.target,
                    &e.detail,
                );
                if h != e.hash {
                    return Ok(bad(format!(
                        "entry {} was altered: its content does not match its hash",
                        e.seq
                    )));
                }
                prev_hash = e.hash;
                expect_seq += 1;
                entries += 1;
            }
        }
        Ok(ChainCheck {
            entries,
            ok: true,
            first_bad_seq: None,
            problem: None,
            head: prev_hash,
        })
    }
}

fn row_entry(r: &sqlx::any::AnyRow) -> Result<AuditEntry, DbError> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        ts_ms: r.try_get("ts_ms")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    async fn tamper_cases(db: Db) {
        let log = AuditLog::new(db.clone());
        for i in 0..5 {
            log.append("alice", "alert.view", &format!("alert-{i}"), "{}")
                .await
                .unwrap();
        }
        let ok = log.verify().await.unwrap();
        assert!(ok.ok && ok.entries == 5, "{ok:?}");
        assert_eq!(
            log.list(Some("alice"), Some("alert."), None, 10)
                .await
                .unwrap()
                .len(),
            5
        );

        // Editing a row's content.
        sqlx::query("UPDATE audit_log SET target = 'alert-x' WHERE seq = 3")
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = log.verify().await.unwrap();
        assert!(!bad.ok);
        assert_eq!(bad.first_bad_seq, Some(3));
        assert!(bad.problem.unwrap().contains("altered"));

        // Re-hashing the edited row does not help: the next row no longer links to it.
        let r = sqlx::query("SELECT * FROM audit_log WHERE seq = 3")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let e = row_entry(&r).unwrap();
        let h = entry_hash(
            &e.prev_hash,
            3,
            e.ts_ms,
            &e.actor,
            &e.action,
            &e.target,
            &e.detail,
        );
        sqlx::query("UPDATE audit_log SET hash = $1 WHERE seq = 3")
            .bind(&h)
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = log.verify().await.unwrap();
        assert_eq!(bad.first_bad_seq, Some(4), "{bad:?}");

        // Deleting a row.
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&db.pool)
            .await
            .unwrap();
        let bad = log.verify().await.unwrap();
        assert_eq!(bad.first_bad_seq, Some(2), "{bad:?}");
        assert!(bad.problem.unwrap().contains("missing"));
    }

    #[tokio::test]
    async fn tampering_is_detected_on_sqlite() {
        let (db, _dir) = testing::sqlite().await;
        tamper_cases(db).await;
    }

    #[tokio::test]
    async fn tampering_is_detected_on_postgres() {
        if let Some(db) = testing::postgres().await {
            tamper_cases(db).await;
        }
    }

    #[tokio::test]
    async fn append_waits_out_another_writer_on_sqlite() {
        let (db, dir) = testing::sqlite().await;
        let log = AuditLog::new(db.clone());
        log.append("alice", "seed", "", "").await.unwrap();
        // Another connection, as a `central-hub` command in another process, holds the write lock a moment.
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
        let other = Db::open(&url, 1).await.unwrap();
        let mut conn = other.pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO ingest_rejects (id, topic, reason, bytes, received_ms) VALUES ('x', 't', 'r', 1, 1)",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let waiting = tokio::spawn(async move { log.append("bob", "alert.view", "a1", "").await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
        let e = waiting.await.unwrap().unwrap();
        assert_eq!(e.seq, 2);
        assert!(AuditLog::new(db).verify().await.unwrap().ok);
    }

    #[test]
    fn fields_are_length_prefixed() {
        assert_ne!(
            entry_hash(GENESIS, 1, 0, "ab", "c", "", ""),
            entry_hash(GENESIS, 1, 0, "a", "bc", "", "")
        );
    }
}
