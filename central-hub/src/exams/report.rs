//! The session report: every registered candidate with their latest decision, and the counts.

use serde::Serialize;

use super::{get_session, ExamError, ExamSession, Method, Outcome};
use crate::db::{now_ms, Db};

/// A candidate's standing in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CandidateStatus {
    Verified,
    Rejected,
    /// No decision at all.
    Absent,
}

/// One candidate in the report: the current (latest) decision.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ReportLine {
    pub cccd: String,
    pub candidate_no: String,
    /// From the identity record (None if the record was removed since).
    pub full_name: Option<String>,
    pub status: CandidateStatus,
    pub result: Option<Outcome>,
    pub method: Option<Method>,
    pub similarity: Option<f32>,
    pub threshold: Option<f32>,
    pub reason: Option<String>,
    pub decided_by: Option<String>,
    pub at_ms: Option<i64>,
    /// How many decisions the candidate has (history).
    pub decisions: i64,
}

/// The session report. Counts use each candidate's latest decision.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ExamReport {
    pub session: ExamSession,
    pub registered: i64,
    /// Candidates with at least one decision (face check-in or manual).
    pub present: i64,
    /// Latest decision `verified` (face or manual).
    pub verified: i64,
    pub verified_face: i64,
    pub verified_manual: i64,
    /// Latest decision `rejected`.
    pub rejected: i64,
    /// Latest decision made manually (verified or rejected).
    pub manual: i64,
    /// No decision at all.
    pub absent: i64,
    pub candidates: Vec<ReportLine>,
    pub generated_ms: i64,
}

/// A registered candidate with their latest decision (all empty when none), as [`report`] reads it.
#[derive(sqlx::FromRow)]
struct ReportRow {
    cccd: String,
    candidate_no: String,
    full_name: Option<String>,
    result: Option<String>,
    method: Option<String>,
    similarity: Option<f64>,
    threshold: Option<f64>,
    reason: Option<String>,
    decided_by: Option<String>,
    at_ms: Option<i64>,
    decisions: i64,
}

/// The session report: every registered candidate with their latest decision, and the counts.
pub async fn report(
    db: &Db,
    session_id: &str,
    default_threshold: f32,
) -> Result<ExamReport, ExamError> {
    let session = get_session(db, session_id, default_threshold).await?;
    let rows: Vec<ReportRow> = sqlx::query_as(
        "SELECT c.cccd, c.candidate_no, p.full_name, k.result, k.method, k.similarity, k.threshold, \
         k.reason, k.decided_by, k.at_ms, \
         (SELECT COUNT(*) FROM exam_checkins a WHERE a.session_id = c.session_id AND a.cccd = c.cccd) AS decisions \
         FROM exam_candidates c \
         LEFT JOIN persons p ON p.cccd = c.cccd \
         LEFT JOIN exam_checkins k ON k.session_id = c.session_id AND k.cccd = c.cccd \
         AND k.seq = (SELECT MAX(m.seq) FROM exam_checkins m WHERE m.session_id = c.session_id AND m.cccd = c.cccd) \
         WHERE c.session_id = $1 ORDER BY c.candidate_no, c.cccd",
    )
    .bind(session_id)
    .fetch_all(&db.pool)
    .await?;
    let mut rep = ExamReport {
        session,
        registered: 0,
        present: 0,
        verified: 0,
        verified_face: 0,
        verified_manual: 0,
        rejected: 0,
        manual: 0,
        absent: 0,
        candidates: Vec::with_capacity(rows.len()),
        generated_ms: now_ms(),
    };
    for r in rows {
        let result = r.result.as_deref().and_then(Outcome::parse);
        let method = r.method.as_deref().and_then(Method::parse);
        let status = match result {
            Some(Outcome::Verified) => CandidateStatus::Verified,
            Some(Outcome::Rejected) => CandidateStatus::Rejected,
            None => CandidateStatus::Absent,
        };
        rep.registered += 1;
        match status {
            CandidateStatus::Verified => {
                rep.present += 1;
                rep.verified += 1;
                match method {
                    Some(Method::Manual) => rep.verified_manual += 1,
                    _ => rep.verified_face += 1,
                }
            }
            CandidateStatus::Rejected => {
                rep.present += 1;
                rep.rejected += 1;
            }
            CandidateStatus::Absent => rep.absent += 1,
        }
        if method == Some(Method::Manual) {
            rep.manual += 1;
        }
        rep.candidates.push(ReportLine {
            cccd: r.cccd,
            candidate_no: r.candidate_no,
            full_name: r.full_name,
            status,
            result,
            method,
            similarity: r.similarity.map(|x| x as f32),
            threshold: r.threshold.map(|x| x as f32),
            reason: r.reason,
            decided_by: r.decided_by,
            at_ms: r.at_ms,
            decisions: r.decisions,
        });
    }
    Ok(rep)
}
