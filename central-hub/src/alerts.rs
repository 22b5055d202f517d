//! Candidate alerts: a watchlist match at a camera (stored by ingest) or a wanted person's check-in (raised by
//! lodging), listed and read by operators, moved through two-person review, their snapshots deleted by
//! retention. Owns `alerts`; the review history and the negative list belong to `review`, which moves an
//! alert's status through [`for_review`] and [`move_status`].

use checkpoint_protocol::{Envelope, WatchlistMatch};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use crate::db::{ms, Db, DbError};

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertSummary {
    pub id: String,
    pub site: String,
    pub agent: String,
    pub camera: String,
    pub track_id: i64,
    pub list: String,
    pub entry_id: String,
    pub similarity: f64,
    pub threshold: f64,
    pub votes: i64,
    pub faces_used: i64,
    pub watchlist_version: i64,
    pub ts_ms: i64,
    /// `candidate`, `confirmed_once` (one of the two confirmations), `confirmed` or `dismissed`.
    pub status: String,
    /// `camera` (a watchlist match at a camera) or `lodging` (a check-in of a wanted person).
    pub source: String,
    /// For lodging alerts, the stay id.
    pub detail: Option<String>,
    pub has_snapshot: bool,
    /// The watchlist entry's label (who the candidate may be), when the entry still exists.
    pub label: Option<String>,
    /// What the agent's decision rests on (absent for older agents and lodging alerts).
    pub evidence: Option<AlertEvidence>,
}

/// The calibrated evidence an agent sends with a candidate (protocol `MatchEvidence`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AlertEvidence {
    /// Mean quality (0..1) of the faces fused into the decision.
    pub face_quality: f32,
    /// The next most similar entry and its similarity.
    pub second_entry: Option<String>,
    pub second_similarity: Option<f32>,
    /// The label of that entry, when it still exists.
    #[serde(default)]
    pub second_label: Option<String>,
    /// Entries on the matched list at the agent.
    pub list_entries: u64,
    /// The list's target and expected false-alert rate per passer-by at its operating point.
    pub target_fpir: Option<f64>,
    pub expected_fpir: Option<f64>,
    /// Chance that one comparison with a stranger scores this high (model calibration).
    pub score_fmr: Option<f64>,
}

/// Stores a watchlist match from a camera with `status` (`candidate`, or `suppressed` when a reviewer
/// dismissed this entry for this very track). The alert's id is the event's.
pub(crate) async fn insert_camera_match(
    tx: &mut Transaction<'_, Any>,
    e: &Envelope,
    m: &WatchlistMatch,
    status: &str,
    snapshot: Option<&Vec<u8>>,
    now: i64,
) -> Result<(), DbError> {
    let list = m.list.as_str();
    sqlx::query(
        "INSERT INTO alerts (id, site, agent, camera, track_id, list, entry_id, similarity, threshold, \
         votes, faces_used, watchlist_version, ts_ms, stream_time_s, models, snapshot, status, created_ms, \
         evidence) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, $17, $16, $18)",
    )
    .bind(e.id.to_string())
    .bind(&e.site)
    .bind(&e.agent)
    .bind(&m.camera)
    .bind(m.track_id as i64)
    .bind(list)
    .bind(&m.entry_id)
    .bind(m.similarity as f64)
    .bind(m.threshold as f64)
    .bind(m.votes as i64)
    .bind(m.faces_used as i64)
    .bind(m.watchlist_version as i64)
    .bind(ms(e.ts))
    .bind(m.stream_time_s)
    .bind(serde_json::to_string(&m.models).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .bind(status)
    .bind(
        m.evidence
            .as_ref()
            .and_then(|ev| serde_json::to_string(ev).ok())
            .unwrap_or_default(),
    )
    .execute(&mut **tx)
    .await?;
    // Set separately: a NULL BYTEA through the Any driver has the same typing trap as a NULL f64.
    if let Some(jpeg) = snapshot {
        sqlx::query("UPDATE alerts SET snapshot = $1 WHERE id = $2")
            .bind(jpeg.clone())
            .bind(e.id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Raises a candidate alert (source `lodging`, detail the stay id) for a check-in at establishment
/// `establishment_id` of `site` of the person on wanted entry `entry_id`; returns the alert's id.
pub(crate) async fn insert_lodging_hit(
    tx: &mut Transaction<'_, Any>,
    site: &str,
    establishment_id: &str,
    entry_id: &str,
    stay_id: &str,
    now: i64,
) -> Result<String, DbError> {
    let alert_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO alerts (id, site, agent, camera, track_id, list, entry_id, similarity, \
         threshold, votes, faces_used, watchlist_version, ts_ms, stream_time_s, models, snapshot, \
         status, created_ms, source, detail) \
         VALUES ($1, $2, '', $3, 0, 'wanted', $4, $5, $6, 0, 0, 0, $7, $8, '[]', NULL, \
         'candidate', $9, 'lodging', $10)",
    )
    .bind(&alert_id)
    .bind(site)
    .bind(establishment_id)
    .bind(entry_id)
    .bind(1.0f64)
    .bind(1.0f64)
    .bind(now)
    .bind(0.0f64)
    .bind(now)
    .bind(stay_id)
    .execute(&mut **tx)
    .await?;
    Ok(alert_id)
}

/// The ids of the alerts a stay's check-in raised.
pub async fn raised_by_stay(db: &Db, stay_id: &str) -> Result<Vec<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM alerts WHERE source = 'lodging' AND detail = $1")
            .bind(stay_id)
            .fetch_all(&db.pool)
            .await?,
    )
}

/// The summary columns, as a macro so queries stay literal strings (sqlx refuses SQL built at run time).
macro_rules! alert_columns {
    () => {
        "id, site, agent, camera, track_id, list, entry_id, similarity, threshold, votes, faces_used, \
         watchlist_version, ts_ms, status, source, detail, \
         CASE WHEN snapshot IS NULL THEN 0 ELSE 1 END AS has_snapshot, \
         (SELECT label FROM watchlist_entries w WHERE w.id = alerts.entry_id) AS label, evidence"
    };
}

/// An `alerts` row as [`alert_columns`] selects it.
#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    site: String,
    agent: String,
    camera: String,
    track_id: i64,
    list: String,
    entry_id: String,
    similarity: f64,
    threshold: f64,
    votes: i64,
    faces_used: i64,
    watchlist_version: i64,
    ts_ms: i64,
    status: String,
    source: String,
    detail: Option<String>,
    has_snapshot: i64,
    label: Option<String>,
    /// JSON, empty for older agents and lodging alerts.
    evidence: Option<String>,
}

impl From<AlertRow> for AlertSummary {
    fn from(r: AlertRow) -> Self {
        AlertSummary {
            id: r.id,
            site: r.site,
            agent: r.agent,
            camera: r.camera,
            track_id: r.track_id,
            list: r.list,
            entry_id: r.entry_id,
            similarity: r.similarity,
            threshold: r.threshold,
            votes: r.votes,
            faces_used: r.faces_used,
            watchlist_version: r.watchlist_version,
            ts_ms: r.ts_ms,
            status: r.status,
            source: r.source,
            detail: r.detail,
            has_snapshot: r.has_snapshot == 1,
            label: r.label,
            evidence: r
                .evidence
                .filter(|t| !t.is_empty())
                .and_then(|t| serde_json::from_str(&t).ok()),
        }
    }
}

/// Alerts, newest first: `status` is one status or several, comma-separated; an empty filter matches all.
/// The runner-up entries are named (see [`name_second_entries`]).
pub async fn list(
    db: &Db,
    status: &str,
    site: &str,
    list: &str,
    limit: i64,
) -> Result<Vec<AlertSummary>, DbError> {
    let rows: Vec<AlertRow> = sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE ($1 = '' OR (',' || $1 || ',') LIKE ('%,' || status || ',%')) AND ($2 = '' OR site = $2) \
         AND ($3 = '' OR list = $3) ORDER BY ts_ms DESC LIMIT $4"
    ))
    .bind(status)
    .bind(site)
    .bind(list)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let mut out: Vec<AlertSummary> = rows.into_iter().map(AlertSummary::from).collect();
    name_second_entries(db, &mut out).await?;
    Ok(out)
}

/// One alert, its runner-up not yet named (the caller audits the reading first).
pub async fn get(db: &Db, id: &str) -> Result<Option<AlertSummary>, DbError> {
    let row: Option<AlertRow> = sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(AlertSummary::from))
}

/// Fills in the label of each alert's runner-up entry, so reviewers read a name, not an id.
pub async fn name_second_entries(db: &Db, alerts: &mut [AlertSummary]) -> Result<(), DbError> {
    // A look-alike tends to come back across alerts: one query per distinct entry, not per alert.
    let mut labels: std::collections::HashMap<String, Option<String>> = Default::default();
    for a in alerts.iter_mut() {
        let Some(ev) = a.evidence.as_mut() else {
            continue;
        };
        let Some(id) = ev.second_entry.clone() else {
            continue;
        };
        if !labels.contains_key(&id) {
            let label = crate::watchlists::label(db, &id).await?;
            labels.insert(id.clone(), label);
        }
        ev.second_label = labels.get(&id).cloned().flatten();
    }
    Ok(())
}

/// An alert's snapshot as retention left it.
pub enum Snapshot {
    NoAlert,
    /// Deleted by the retention policy.
    Deleted,
    Jpeg(Vec<u8>),
}

pub async fn snapshot(db: &Db, id: &str) -> Result<Snapshot, DbError> {
    let row: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT snapshot FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(match row {
        None => Snapshot::NoAlert,
        Some(None) => Snapshot::Deleted,
        Some(Some(jpeg)) => Snapshot::Jpeg(jpeg),
    })
}

/// The site and agent an alert came from (for live hints), if it exists.
pub async fn origin(db: &Db, id: &str) -> Result<Option<(String, String)>, DbError> {
    Ok(
        sqlx::query_as("SELECT site, agent FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?,
    )
}

/// An alert as review and reopening need it.
#[derive(sqlx::FromRow)]
pub(crate) struct ForReview {
    pub status: String,
    pub source: String,
    pub entry_id: String,
    pub site: String,
    pub agent: String,
    pub camera: String,
    pub track_id: i64,
}

/// The alert's row as review and reopening need it, inside their transaction.
pub(crate) async fn for_review(
    tx: &mut Transaction<'_, Any>,
    alert_id: &str,
) -> Result<Option<ForReview>, DbError> {
    Ok(sqlx::query_as(
        "SELECT status, source, entry_id, site, agent, camera, track_id FROM alerts WHERE id = $1",
    )
    .bind(alert_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Moves an alert from status `from` to `to`; false when it is no longer in `from` (a concurrent review).
pub(crate) async fn move_status(
    tx: &mut Transaction<'_, Any>,
    alert_id: &str,
    from: &str,
    to: &str,
) -> Result<bool, DbError> {
    let moved = sqlx::query("UPDATE alerts SET status = $1 WHERE id = $2 AND status = $3")
        .bind(to)
        .bind(alert_id)
        .bind(from)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(moved == 1)
}

/// Deletes the snapshots retention says must go: unconfirmed alerts' from before `unconfirmed_before_ms`,
/// confirmed alerts' after their case's retention. Returns how many were deleted.
pub async fn expire_snapshots(
    db: &Db,
    now: i64,
    unconfirmed_before_ms: i64,
) -> Result<u64, DbError> {
    // Confirmed alerts follow their case's retention and are not touched here.
    let snaps = sqlx::query(
        "UPDATE alerts SET snapshot = NULL, snapshot_deleted_ms = $1 \
         WHERE snapshot IS NOT NULL AND status <> 'confirmed' AND ts_ms < $2",
    )
    .bind(now)
    .bind(unconfirmed_before_ms)
    .execute(&db.pool)
    .await?
    .rows_affected();
    // Confirmed alerts keep their snapshot for their case's retention (365 days if the entry is gone).
    let snaps = snaps
        + sqlx::query(
            "UPDATE alerts SET snapshot = NULL, snapshot_deleted_ms = $1 \
             WHERE snapshot IS NOT NULL AND status = 'confirmed' AND ts_ms < $1 - 86400000 * \
             COALESCE((SELECT w.case_retention_days FROM watchlist_entries w WHERE w.id = alerts.entry_id), 365)",
        )
        .bind(now)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(snaps)
}

/// Alerts waiting for a reviewer: (status, how many, when the oldest was created), for `candidate` and
/// `confirmed_once`.
pub async fn awaiting_review(db: &Db) -> Result<Vec<(String, i64, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT status, COUNT(*), MIN(created_ms) FROM alerts \
         WHERE status IN ('candidate', 'confirmed_once') GROUP BY status",
    )
    .fetch_all(&db.pool)
    .await?)
}
