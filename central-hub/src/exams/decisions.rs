//! Check-in decisions: face verification at the door, manual decisions, and each candidate's history.

use std::sync::Arc;

use serde::Serialize;

use super::{candidate, ExamError, ExamSession, Method, Outcome, MAX_REASON_CHARS};
use crate::db::{now_ms, Db};
use crate::faces::FaceEngine;
use crate::records;

/// One decision about a candidate (a check-in or a manual decision).
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ExamDecision {
    pub id: String,
    pub session_id: String,
    pub cccd: String,
    /// 1, 2, ... per candidate; the highest is the current decision.
    pub seq: i64,
    pub result: Outcome,
    pub method: Method,
    /// Face check-in: best cosine similarity with the record's templates.
    pub similarity: Option<f32>,
    /// Face check-in: the threshold it was judged at.
    pub threshold: Option<f32>,
    /// Manual decision: why.
    pub reason: Option<String>,
    /// Username of who checked the candidate in or decided.
    pub decided_by: String,
    pub at_ms: i64,
}

/// A decision to record.
#[derive(Clone, Debug)]
pub struct NewDecision {
    pub result: Outcome,
    pub method: Method,
    pub similarity: Option<f32>,
    pub threshold: Option<f32>,
    pub reason: Option<String>,
    pub decided_by: String,
}

macro_rules! decision_cols {
    () => {
        "id, session_id, cccd, seq, result, method, similarity, threshold, reason, decided_by, at_ms"
    };
}

/// An `exam_checkins` row as [`decision_cols`] selects it.
#[derive(sqlx::FromRow)]
struct DecisionRow {
    id: String,
    session_id: String,
    cccd: String,
    seq: i64,
    result: String,
    method: String,
    similarity: Option<f64>,
    threshold: Option<f64>,
    reason: Option<String>,
    decided_by: String,
    at_ms: i64,
}

impl TryFrom<DecisionRow> for ExamDecision {
    type Error = ExamError;

    fn try_from(r: DecisionRow) -> Result<Self, ExamError> {
        let (result, method) = (r.result, r.method);
        Ok(ExamDecision {
            id: r.id,
            session_id: r.session_id,
            cccd: r.cccd,
            seq: r.seq,
            result: Outcome::parse(&result).ok_or_else(|| {
                ExamError::Invalid(format!("stored result {result:?} is not known"))
            })?,
            method: Method::parse(&method).ok_or_else(|| {
                ExamError::Invalid(format!("stored method {method:?} is not known"))
            })?,
            similarity: r.similarity.map(|x| x as f32),
            threshold: r.threshold.map(|x| x as f32),
            reason: r.reason,
            decided_by: r.decided_by,
            at_ms: r.at_ms,
        })
    }
}

/// Records a decision for a registered candidate as the next in their history.
pub async fn record(
    db: &Db,
    session_id: &str,
    cccd: &str,
    d: &NewDecision,
) -> Result<ExamDecision, ExamError> {
    candidate(db, session_id, cccd).await?;
    let id = uuid::Uuid::now_v7().to_string();
    // The next number is taken in the insert itself; two decisions racing for the same number make one of
    // them fail the unique index, and that one simply takes the number after.
    // Face decisions carry a similarity and a threshold, manual ones a reason: one statement each, so no
    // float is ever bound as NULL (see create_session).
    enum Extra<'a> {
        Face(f64, f64),
        Manual(&'a str),
    }
    let extra = match (d.method, d.similarity, d.threshold, &d.reason) {
        (Method::Face, Some(sim), Some(thr), None) => Extra::Face(f64::from(sim), f64::from(thr)),
        (Method::Manual, None, None, Some(reason)) => Extra::Manual(reason),
        _ => {
            return Err(ExamError::Invalid(
                "a face decision has a similarity and a threshold, a manual one a reason".into(),
            ))
        }
    };
    let mut tries = 0;
    loop {
        let q = match extra {
            Extra::Face(..) => sqlx::query(concat!(
                "INSERT INTO exam_checkins (",
                decision_cols!(),
                ") SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $8, $9, NULL, $6, $7 \
                 FROM exam_checkins WHERE session_id = $2 AND cccd = $3"
            )),
            Extra::Manual(_) => sqlx::query(concat!(
                "INSERT INTO exam_checkins (",
                decision_cols!(),
                ") SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, NULL, NULL, $8, $6, $7 \
                 FROM exam_checkins WHERE session_id = $2 AND cccd = $3"
            )),
        }
        .bind(&id)
        .bind(session_id)
        .bind(cccd)
        .bind(d.result.as_str())
        .bind(d.method.as_str())
        .bind(&d.decided_by)
        .bind(now_ms());
        let q = match extra {
            Extra::Face(sim, thr) => q.bind(sim).bind(thr),
            Extra::Manual(reason) => q.bind(reason),
        };
        match q.execute(&db.pool).await {
            Ok(_) => break,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && tries < 20 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
    let r: DecisionRow = sqlx::query_as(concat!(
        "SELECT ",
        decision_cols!(),
        " FROM exam_checkins WHERE id = $1"
    ))
    .bind(&id)
    .fetch_one(&db.pool)
    .await?;
    r.try_into()
}

/// Face check-in: compares the live photo with the candidate's identity record at the session's threshold
/// and records the result. The photo is not kept. A photo without one usable face, or a record without a
/// face template, is an error and records nothing.
pub async fn check_in(
    db: &Db,
    faces: &Arc<FaceEngine>,
    session: &ExamSession,
    cccd: &str,
    live_photo: Vec<u8>,
    decided_by: &str,
) -> Result<ExamDecision, ExamError> {
    candidate(db, &session.id, cccd).await?;
    let v = records::verify(db, faces, cccd, live_photo, session.threshold).await?;
    record(
        db,
        &session.id,
        cccd,
        &NewDecision {
            result: if v.matched {
                Outcome::Verified
            } else {
                Outcome::Rejected
            },
            method: Method::Face,
            similarity: Some(v.similarity),
            threshold: Some(v.threshold),
            reason: None,
            decided_by: decided_by.into(),
        },
    )
    .await
}

/// A manual decision: `result` is `verified` or `rejected`; the reason is required.
pub async fn decide(
    db: &Db,
    session_id: &str,
    cccd: &str,
    result: &str,
    reason: &str,
    decided_by: &str,
) -> Result<ExamDecision, ExamError> {
    let result = Outcome::parse(result).ok_or_else(|| {
        ExamError::Invalid(format!(
            "result {result:?} is not known: use verified or rejected"
        ))
    })?;
    let reason = reason.trim();
    if !crate::text::has_visible_text(reason) {
        return Err(ExamError::Invalid(
            "a manual decision needs a reason (e.g. twin, injury, poor light)".into(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ExamError::Invalid(format!(
            "reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    record(
        db,
        session_id,
        cccd,
        &NewDecision {
            result,
            method: Method::Manual,
            similarity: None,
            threshold: None,
            reason: Some(reason.to_string()),
            decided_by: decided_by.into(),
        },
    )
    .await
}

/// A candidate's decisions, oldest first.
pub async fn history(
    db: &Db,
    session_id: &str,
    cccd: &str,
) -> Result<Vec<ExamDecision>, ExamError> {
    candidate(db, session_id, cccd).await?;
    let rows: Vec<DecisionRow> = sqlx::query_as(concat!(
        "SELECT ",
        decision_cols!(),
        " FROM exam_checkins WHERE session_id = $1 AND cccd = $2 ORDER BY seq"
    ))
    .bind(session_id)
    .bind(cccd)
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter().map(ExamDecision::try_from).collect()
}
