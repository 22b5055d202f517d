//! Two-person review of candidate alerts. A match is only a candidate until people confirm it: the first
//! confirmation moves it to `confirmed_once`, and only a second, different person makes it `confirmed`. Any
//! dismissal ends it as `dismissed`, and a dismissed camera alert puts its (entry, track) on the negative
//! list so the same mistake is not raised again for that track.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::db::{now_ms, Db, DbError};

/// How long a dismissal suppresses the same (entry, camera, track). Track numbers restart when an agent
/// restarts, so a dismissal must not silence a different person who later gets the same number.
pub const NEGATIVE_TTL_MS: i64 = 12 * 3_600_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Confirm,
    Dismiss,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no alert {0}")]
    NotFound(String),
    #[error("a note is required: say what you compared and why you decided")]
    NoNote,
    #[error("this alert is already final ({0})")]
    Final(String),
    #[error("you confirmed this alert already: a second, different person must confirm it")]
    SamePerson,
    #[error("the alert changed while you reviewed it; reload and review again")]
    Conflict,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ReviewError {
    fn from(e: sqlx::Error) -> Self {
        ReviewError::Db(e.into())
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Review {
    pub seq: i64,
    pub reviewer: String,
    pub decision: Decision,
    pub note: String,
    pub at_ms: i64,
}

/// Applies one reviewer's decision; returns the alert's new status.
pub async fn review(
    db: &Db,
    alert_id: &str,
    reviewer: &str,
    decision: Decision,
    note: &str,
) -> Result<String, ReviewError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(ReviewError::NoNote);
    }
    let mut tx = db.pool.begin().await?;
    let row = sqlx::query(
        "SELECT status, source, entry_id, site, agent, camera, track_id FROM alerts WHERE id = $1",
    )
    .bind(alert_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ReviewError::NotFound(alert_id.into()))?;
    let status: String = row.try_get("status")?;
    let prior = sqlx::query(
        "SELECT seq, reviewer, decision FROM alert_reviews WHERE alert_id = $1 ORDER BY seq",
    )
    .bind(alert_id)
    .fetch_all(&mut *tx)
    .await?;
    let next = match (status.as_str(), decision) {
        ("confirmed" | "dismissed" | "suppressed", _) => return Err(ReviewError::Final(status)),
        ("candidate", Decision::Confirm) => "confirmed_once",
        ("confirmed_once", Decision::Confirm) => {
            let confirmed_by_me = prior.iter().any(|r| {
                r.try_get::<String, _>("reviewer").ok().as_deref() == Some(reviewer)
                    && r.try_get::<String, _>("decision").ok().as_deref() == Some("confirm")
            });
            if confirmed_by_me {
                return Err(ReviewError::SamePerson);
            }
            "confirmed"
        }
        (_, Decision::Dismiss) => "dismissed",
        _ => return Err(ReviewError::Final(status)),
    };
    let now = now_ms();
    // Only moves from the status read above: a concurrent review makes this update miss, not double-apply.
    let moved = sqlx::query("UPDATE alerts SET status = $1 WHERE id = $2 AND status = $3")
        .bind(next)
        .bind(alert_id)
        .bind(&status)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if moved != 1 {
        return Err(ReviewError::Conflict);
    }
    sqlx::query(
        "INSERT INTO alert_reviews (alert_id, seq, reviewer, decision, note, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(alert_id)
    .bind(prior.len() as i64 + 1)
    .bind(reviewer)
    .bind(match decision {
        Decision::Confirm => "confirm",
        Decision::Dismiss => "dismiss",
    })
    .bind(note)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if next == "dismissed" && row.try_get::<String, _>("source")? == "camera" {
        sqlx::query(
            "INSERT INTO alert_negatives (entry_id, site, agent, camera, track_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (entry_id, site, agent, camera, track_id) \
             DO UPDATE SET created_ms = excluded.created_ms",
        )
        .bind(row.try_get::<String, _>("entry_id")?)
        .bind(row.try_get::<String, _>("site")?)
        .bind(row.try_get::<String, _>("agent")?)
        .bind(row.try_get::<String, _>("camera")?)
        .bind(row.try_get::<i64, _>("track_id")?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(next.to_string())
}

pub async fn reviews(db: &Db, alert_id: &str) -> Result<Vec<Review>, ReviewError> {
    let rows = sqlx::query(
        "SELECT seq, reviewer, decision, note, at_ms FROM alert_reviews WHERE alert_id = $1 ORDER BY seq",
    )
    .bind(alert_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Review {
                seq: r.try_get("seq")?,
                reviewer: r.try_get("reviewer")?,
                decision: if r.try_get::<String, _>("decision")? == "confirm" {
                    Decision::Confirm
                } else {
                    Decision::Dismiss
                },
                note: r.try_get("note")?,
                at_ms: r.try_get("at_ms")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    async fn alert(db: &Db, id: &str, track: i64) {
        sqlx::query(
            "INSERT INTO alerts (id, site, agent, camera, track_id, list, entry_id, similarity, threshold, votes, \
             faces_used, watchlist_version, ts_ms, stream_time_s, models, snapshot, status, created_ms) \
             VALUES ($1, 'pier', 'a1', 'gate', $2, 'wanted', 'W1', 0.6, 0.43, 2, 3, 1, 0, 1.0, '[]', NULL, 'candidate', 0)",
        )
        .bind(id)
        .bind(track)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    async fn two_person_rule(db: Db) {
        alert(&db, "a", 1).await;
        assert!(matches!(
            review(&db, "a", "op1", Decision::Confirm, " ").await,
            Err(ReviewError::NoNote)
        ));
        assert_eq!(
            review(&db, "a", "op1", Decision::Confirm, "same scar, same ears")
                .await
                .unwrap(),
            "confirmed_once"
        );
        assert!(matches!(
            review(&db, "a", "op1", Decision::Confirm, "again").await,
            Err(ReviewError::SamePerson)
        ));
        assert_eq!(
            review(&db, "a", "sup1", Decision::Confirm, "agree")
                .await
                .unwrap(),
            "confirmed"
        );
        assert!(matches!(
            review(&db, "a", "op2", Decision::Dismiss, "late").await,
            Err(ReviewError::Final(_))
        ));
        assert_eq!(reviews(&db, "a").await.unwrap().len(), 2);

        alert(&db, "b", 7).await;
        assert_eq!(
            review(
                &db,
                "b",
                "op1",
                Decision::Dismiss,
                "different person, older"
            )
            .await
            .unwrap(),
            "dismissed"
        );
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM alert_negatives WHERE entry_id = 'W1' AND track_id = 7",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
        assert_eq!(n, 1);
        assert!(matches!(
            review(&db, "nope", "op1", Decision::Confirm, "x").await,
            Err(ReviewError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn two_person_rule_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        two_person_rule(db).await;
    }

    #[tokio::test]
    async fn two_person_rule_on_postgres() {
        if let Some(db) = testing::postgres().await {
            two_person_rule(db).await;
        }
    }
}
