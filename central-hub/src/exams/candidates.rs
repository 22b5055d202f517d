//! Registration of candidates for a session, by CCCD number and candidate number (SBD).

use serde::{Deserialize, Serialize};

use super::{get_session, parse_cccd, text, ExamError, MAX_CANDIDATES_PER_REQUEST};
use crate::db::{now_ms, Db};
use crate::records::{self, RecordError};

/// One candidate to register.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct CandidateEntry {
    /// 12-digit CCCD number of an existing identity record.
    pub cccd: String,
    /// Candidate number (SBD), e.g. "HN-0001": unique within the session.
    pub candidate_no: String,
}

/// A registered candidate.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RegisteredCandidate {
    pub cccd: String,
    pub candidate_no: String,
    pub full_name: String,
    /// Face templates on the identity record; 0 means face check-in will refuse (422) until a photo is
    /// enrolled, so fix it before the exam day.
    pub templates: i64,
}

/// A list item that was not registered.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FailedCandidate {
    /// Position in the request's list, from 0.
    pub index: usize,
    pub cccd: String,
    pub candidate_no: String,
    /// 400 (malformed CCCD or candidate number), 404 (no identity record), 409 (the CCCD is registered under
    /// another candidate number, or the number belongs to another CCCD).
    pub status: u16,
    pub error: String,
}

/// The outcome of a registration request: items are handled one by one.
#[derive(Clone, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Registration {
    /// Newly registered.
    pub registered: Vec<RegisteredCandidate>,
    /// Already registered with the same candidate number: ignored, so a list can be sent again.
    pub already_registered: Vec<RegisteredCandidate>,
    /// Not registered, with the reason; fix these and send them again.
    pub failed: Vec<FailedCandidate>,
}

/// Registers candidates one by one: each item is registered or reported in `failed` with a status and the
/// reason; an item already registered with the same number is ignored. Only a missing session or an empty or
/// oversized list fails the whole request.
pub async fn register(
    db: &Db,
    session_id: &str,
    items: &[CandidateEntry],
    registered_by: &str,
) -> Result<Registration, ExamError> {
    // The session must exist (the threshold does not matter here).
    get_session(db, session_id, 0.0).await?;
    if items.is_empty() {
        return Err(ExamError::Invalid("the candidate list is empty".into()));
    }
    if items.len() > MAX_CANDIDATES_PER_REQUEST {
        return Err(ExamError::Invalid(format!(
            "at most {MAX_CANDIDATES_PER_REQUEST} candidates per request; send the list in parts"
        )));
    }
    let mut out = Registration::default();
    for (index, item) in items.iter().enumerate() {
        let fail = |status: u16, error: String| FailedCandidate {
            index,
            cccd: item.cccd.clone(),
            candidate_no: item.candidate_no.clone(),
            status,
            error,
        };
        let cccd = match parse_cccd(&item.cccd) {
            Ok(c) => c,
            Err(e) => {
                out.failed.push(fail(400, e.to_string()));
                continue;
            }
        };
        let number = match text("candidate_no", &item.candidate_no, 32) {
            Ok(n) => n,
            Err(e) => {
                out.failed.push(fail(400, e.to_string()));
                continue;
            }
        };
        let person = match records::get(db, &cccd).await {
            Ok(p) => p,
            Err(RecordError::NotFound(_)) => {
                out.failed.push(fail(
                    404,
                    format!("no identity record for CCCD {cccd}: create the record first"),
                ));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let candidate = RegisteredCandidate {
            cccd: cccd.clone(),
            candidate_no: number.clone(),
            full_name: person.full_name,
            templates: person.templates,
        };
        // Both unique keys (CCCD, candidate number) are covered: a clash inserts nothing.
        let n = sqlx::query(
            "INSERT INTO exam_candidates (session_id, cccd, candidate_no, registered_by, registered_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(session_id)
        .bind(&cccd)
        .bind(&number)
        .bind(registered_by)
        .bind(now_ms())
        .execute(&db.pool)
        .await?
        .rows_affected();
        if n == 1 {
            out.registered.push(candidate);
            continue;
        }
        let existing: Vec<(String, String)> = sqlx::query_as(
            "SELECT cccd, candidate_no FROM exam_candidates WHERE session_id = $1 AND (cccd = $2 OR candidate_no = $3)",
        )
        .bind(session_id)
        .bind(&cccd)
        .bind(&number)
        .fetch_all(&db.pool)
        .await?;
        let mut clash = None;
        let mut same = false;
        for (c, no) in existing {
            if c == cccd && no == number {
                same = true;
            } else if c == cccd {
                clash = Some(format!(
                    "CCCD {cccd} is already registered for this session as candidate {no}"
                ));
            } else {
                clash = Some(format!(
                    "candidate number {number} already belongs to CCCD {c} in this session"
                ));
            }
        }
        match (same, clash) {
            (true, _) => out.already_registered.push(candidate),
            (false, Some(why)) => out.failed.push(fail(409, why)),
            // Gone between the insert and the look-up (nothing deletes candidates today): say so.
            (false, None) => out.failed.push(fail(
                409,
                "registration clashed with a concurrent change; send it again".into(),
            )),
        }
    }
    Ok(out)
}

/// A registered candidate: (candidate number, full name from the record if it still exists).
pub async fn candidate(
    db: &Db,
    session_id: &str,
    cccd: &str,
) -> Result<(String, Option<String>), ExamError> {
    sqlx::query_as(
        "SELECT c.candidate_no, p.full_name FROM exam_candidates c LEFT JOIN persons p ON p.cccd = c.cccd \
         WHERE c.session_id = $1 AND c.cccd = $2",
    )
    .bind(session_id)
    .bind(cccd)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ExamError::NotRegistered {
        session: session_id.into(),
        cccd: cccd.into(),
    })
}
