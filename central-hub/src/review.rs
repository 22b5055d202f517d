//! Two-person review of candidate alerts. A match is only a candidate until people confirm it: the first
//! confirmation moves it to `confirmed_once`, and only a second, different person makes it `confirmed`. The
//! person who enrolled the watchlist entry confirms none of its alerts: they are the one most likely to see
//! what they expect. A dismissal ends it as `dismissed`, and a dismissed camera alert puts its (entry, track)
//! on the negative list so the same mistake is not raised again for that track; a supervisor can reopen a
//! dismissal (it goes back to `candidate` and the negative is lifted), so one person's dismissal is not
//! beyond review. Notes and reasons must have visible text. Owns `alert_reviews` and `alert_negatives`; the
//! alerts themselves belong to `alerts`.

use checkpoint_protocol::{Envelope, WatchlistMatch};
use serde::{Deserialize, Serialize};

use crate::alerts::{self, ForReview};
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

/// A line of an alert's review history: a reviewer's decision, or a supervisor's reopening of a dismissal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    Confirm,
    Dismiss,
    Reopen,
}

impl ReviewAction {
    fn as_str(self) -> &'static str {
        match self {
            ReviewAction::Confirm => "confirm",
            ReviewAction::Dismiss => "dismiss",
            ReviewAction::Reopen => "reopen",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "confirm" => ReviewAction::Confirm,
            "reopen" => ReviewAction::Reopen,
            _ => ReviewAction::Dismiss,
        }
    }
}

/// The stored `decision` column (for `#[sqlx(try_from = "String")]`).
impl From<String> for ReviewAction {
    fn from(s: String) -> Self {
        ReviewAction::parse(&s)
    }
}

impl From<Decision> for ReviewAction {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Confirm => ReviewAction::Confirm,
            Decision::Dismiss => ReviewAction::Dismiss,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no alert {0}")]
    NotFound(String),
    #[error("a note is required: say what you compared and why you decided")]
    NoNote,
    #[error(
        "you enrolled this watchlist entry: its alerts must be confirmed by people who did not"
    )]
    Enroller,
    #[error("only a dismissed alert can be reopened (this one is {0})")]
    NotDismissed(String),
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

#[derive(Clone, Debug, Serialize, PartialEq, sqlx::FromRow, utoipa::ToSchema)]
pub struct Review {
    pub seq: i64,
    pub reviewer: String,
    #[sqlx(try_from = "String")]
    pub decision: ReviewAction,
    pub note: String,
    pub at_ms: i64,
}

/// An earlier line of the alert's review history, as the next decision weighs it.
#[derive(sqlx::FromRow)]
struct PriorDecision {
    reviewer: String,
    decision: String,
}

/// The alert's row as review and reopening need it, inside their transaction.
async fn alert_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    alert_id: &str,
) -> Result<ForReview, ReviewError> {
    alerts::for_review(tx, alert_id)
        .await?
        .ok_or_else(|| ReviewError::NotFound(alert_id.into()))
}

/// Whether a reviewer dismissed this match's entry for this very track within [`NEGATIVE_TTL_MS`].
pub(crate) async fn dismissed_track(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    e: &Envelope,
    m: &WatchlistMatch,
    now: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "SELECT created_ms FROM alert_negatives WHERE entry_id = $1 AND site = $2 AND agent = $3 \
         AND camera = $4 AND track_id = $5 AND created_ms > $6",
    )
    .bind(&m.entry_id)
    .bind(&e.site)
    .bind(&e.agent)
    .bind(&m.camera)
    .bind(m.track_id as i64)
    .bind(now - NEGATIVE_TTL_MS)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
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
    if !crate::text::has_visible_text(note) {
        return Err(ReviewError::NoNote);
    }
    let mut tx = db.begin_write().await?;
    let row = alert_row(&mut tx, alert_id).await?;
    let status = row.status.clone();
    let prior: Vec<PriorDecision> = sqlx::query_as(
        "SELECT seq, reviewer, decision FROM alert_reviews WHERE alert_id = $1 ORDER BY seq",
    )
    .bind(alert_id)
    .fetch_all(&mut *tx)
    .await?;
    if decision == Decision::Confirm
        && crate::watchlists::enrolled_by(&mut tx, &row.entry_id)
            .await?
            .as_deref()
            == Some(reviewer)
    {
        return Err(ReviewError::Enroller);
    }
    // Confirmations made before the last reopening belong to a closed round.
    let round = prior
        .iter()
        .rposition(|r| r.decision == "reopen")
        .map_or(&prior[..], |i| &prior[i + 1..]);
    let next = match (status.as_str(), decision) {
        ("confirmed" | "dismissed" | "suppressed", _) => return Err(ReviewError::Final(status)),
        ("candidate", Decision::Confirm) => "confirmed_once",
        ("confirmed_once", Decision::Confirm) => {
            let confirmed_by_me = round
                .iter()
                .any(|r| r.reviewer == reviewer && r.decision == "confirm");
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
    if !alerts::move_status(&mut tx, alert_id, &status, next).await? {
        return Err(ReviewError::Conflict);
    }
    sqlx::query(
        "INSERT INTO alert_reviews (alert_id, seq, reviewer, decision, note, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(alert_id)
    .bind(prior.len() as i64 + 1)
    .bind(reviewer)
    .bind(ReviewAction::from(decision).as_str())
    .bind(note)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if next == "dismissed" && row.source == "camera" {
        sqlx::query(
            "INSERT INTO alert_negatives (entry_id, site, agent, camera, track_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (entry_id, site, agent, camera, track_id) \
             DO UPDATE SET created_ms = excluded.created_ms",
        )
        .bind(&row.entry_id)
        .bind(&row.site)
        .bind(&row.agent)
        .bind(&row.camera)
        .bind(row.track_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(next.to_string())
}

/// A supervisor sends a dismissed alert back to review: status `candidate`, a new round of two-person
/// review, and the dismissal's negative (entry, track) lifted. The reason is kept in the review history.
pub async fn reopen(
    db: &Db,
    alert_id: &str,
    supervisor: &str,
    reason: &str,
) -> Result<String, ReviewError> {
    let reason = reason.trim();
    if !crate::text::has_visible_text(reason) {
        return Err(ReviewError::NoNote);
    }
    let mut tx = db.begin_write().await?;
    let row = alert_row(&mut tx, alert_id).await?;
    if row.status != "dismissed" {
        return Err(ReviewError::NotDismissed(row.status));
    }
    if !alerts::move_status(&mut tx, alert_id, "dismissed", "candidate").await? {
        return Err(ReviewError::Conflict);
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) AS n FROM alert_reviews WHERE alert_id = $1")
        .bind(alert_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO alert_reviews (alert_id, seq, reviewer, decision, note, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(alert_id)
    .bind(n + 1)
    .bind(supervisor)
    .bind(ReviewAction::Reopen.as_str())
    .bind(reason)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if row.source == "camera" {
        sqlx::query(
            "DELETE FROM alert_negatives WHERE entry_id = $1 AND site = $2 AND agent = $3 AND camera = $4 \
             AND track_id = $5",
        )
        .bind(&row.entry_id)
        .bind(&row.site)
        .bind(&row.agent)
        .bind(&row.camera)
        .bind(row.track_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok("candidate".to_string())
}

pub async fn reviews(db: &Db, alert_id: &str) -> Result<Vec<Review>, ReviewError> {
    Ok(sqlx::query_as(
        "SELECT seq, reviewer, decision, note, at_ms FROM alert_reviews WHERE alert_id = $1 ORDER BY seq",
    )
    .bind(alert_id)
    .fetch_all(&db.pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use sqlx::Row;

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

    async fn entry(db: &Db, id: &str, created_by: &str) {
        sqlx::query(
            "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, \
             expires_ms, sites, case_retention_days, created_by, created_ms, withdrawn_ms) \
             VALUES ($1, 'wanted', NULL, 'x', 'c', 'l', 'i', 4102444800000, '*', 365, $2, 0, NULL)",
        )
        .bind(id)
        .bind(created_by)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    /// Finding 15: the enroller confirms nothing, invisible notes are no notes, a dismissal can be reopened.
    async fn enroller_invisible_notes_and_reopen(db: Db) {
        entry(&db, "W1", "sup1").await;
        alert(&db, "a", 1).await;
        for note in [
            "\u{200B}\u{200B}\u{200B}",
            "\u{2060}\u{FEFF}",
            "\u{00A0}\u{200D}\t",
        ] {
            assert!(
                matches!(
                    review(&db, "a", "op1", Decision::Confirm, note).await,
                    Err(ReviewError::NoNote)
                ),
                "{note:?}"
            );
        }
        assert!(matches!(
            review(&db, "a", "sup1", Decision::Confirm, "it is him").await,
            Err(ReviewError::Enroller)
        ));
        review(&db, "a", "op1", Decision::Confirm, "same scar")
            .await
            .unwrap();
        assert!(matches!(
            review(&db, "a", "sup1", Decision::Confirm, "agree").await,
            Err(ReviewError::Enroller)
        ));
        assert_eq!(
            review(&db, "a", "sup2", Decision::Confirm, "agree")
                .await
                .unwrap(),
            "confirmed"
        );

        alert(&db, "b", 7).await;
        review(&db, "b", "op1", Decision::Dismiss, "not him")
            .await
            .unwrap();
        assert!(matches!(
            reopen(&db, "b", "sup2", "\u{200B}").await,
            Err(ReviewError::NoNote)
        ));
        assert!(matches!(
            reopen(&db, "a", "sup2", "look again").await,
            Err(ReviewError::NotDismissed(_))
        ));
        assert_eq!(
            reopen(&db, "b", "sup2", "the ear shape matches; review again")
                .await
                .unwrap(),
            "candidate"
        );
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM alert_negatives WHERE track_id = 7")
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(n, 0, "the dismissal's negative is lifted");
        let h = reviews(&db, "b").await.unwrap();
        assert_eq!(h.last().unwrap().decision, ReviewAction::Reopen);
        assert_eq!(
            review(&db, "b", "op1", Decision::Confirm, "yes, on a second look")
                .await
                .unwrap(),
            "confirmed_once"
        );
    }

    #[tokio::test]
    async fn enroller_invisible_notes_and_reopen_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        enroller_invisible_notes_and_reopen(db).await;
    }

    #[tokio::test]
    async fn enroller_invisible_notes_and_reopen_on_postgres() {
        if let Some(db) = testing::postgres().await {
            enroller_invisible_notes_and_reopen(db).await;
        }
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
