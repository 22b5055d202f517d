//! Exams: sessions (a subject at a school or a driving-test centre, in a shift), the candidates registered
//! for them by CCCD number and candidate number (SBD), check-in at the door by 1:1 face verification against
//! the candidate's identity record, manual decisions where the camera cannot settle it (twins, injuries, bad
//! light), and the session report.
//!
//! Every decision is a row in `exam_checkins`, numbered per candidate; the highest number is the candidate's
//! current decision and the earlier ones stay as history. The live photo taken at the door is compared and
//! dropped: only the result, the similarity and the threshold are stored.

use std::sync::Arc;

use checkpoint_identity::Cccd;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::{now_ms, opt_text, Db, DbError};
use crate::faces::FaceEngine;
use crate::records::{self, RecordError};

/// Bounds of a session's own verification threshold (the same as the hub-wide setting's).
pub const THRESHOLD_RANGE: std::ops::RangeInclusive<f32> = 0.2..=0.95;
/// Most candidates accepted in one registration request.
pub const MAX_CANDIDATES_PER_REQUEST: usize = 5000;
/// Longest manual-decision reason, characters.
pub const MAX_REASON_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ExamError {
    #[error("{0}")]
    Invalid(String),
    #[error("no exam session {0}")]
    SessionNotFound(String),
    #[error("CCCD {cccd} is not registered for exam session {session}")]
    NotRegistered { session: String, cccd: String },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ExamError {
    fn from(e: sqlx::Error) -> Self {
        ExamError::Db(e.into())
    }
}

/// Where the exam takes place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VenueKind {
    /// A school (e.g. the national high-school graduation exam).
    School,
    /// A driving-test centre (theory or practical test).
    DrivingCentre,
}

impl VenueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VenueKind::School => "school",
            VenueKind::DrivingCentre => "driving_centre",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "school" => Some(VenueKind::School),
            "driving_centre" => Some(VenueKind::DrivingCentre),
            _ => None,
        }
    }
}

/// A check-in decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The person at the door is the registered candidate: let in.
    Verified,
    /// Not confirmed: not let in (unless a later decision says otherwise).
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "verified" => Some(Outcome::Verified),
            "rejected" => Some(Outcome::Rejected),
            _ => None,
        }
    }
}

/// How a decision was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// 1:1 comparison of a live photo with the identity record's templates.
    Face,
    /// A person decided, with a reason.
    Manual,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Face => "face",
            Method::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "face" => Some(Method::Face),
            "manual" => Some(Method::Manual),
            _ => None,
        }
    }
}

/// What a new session needs; checked by [`create_session`].
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewSession {
    /// `school` or `driving_centre`.
    pub venue_kind: String,
    /// The venue's name, e.g. "THPT Chu Văn An".
    pub venue: String,
    /// e.g. "Toán", "Sát hạch lý thuyết hạng B".
    pub subject: String,
    /// e.g. "Ca 1 (7:30)".
    pub shift: String,
    /// Start, milliseconds since the epoch.
    pub starts_ms: i64,
    /// This session's cosine threshold for face check-in (0.2-0.95); absent: the hub's
    /// `[faces] verify_threshold`.
    pub verify_threshold: Option<f32>,
}

/// An exam session as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ExamSession {
    pub id: String,
    pub venue_kind: VenueKind,
    pub venue: String,
    pub subject: String,
    pub shift: String,
    pub starts_ms: i64,
    /// The session's own threshold, if it has one.
    pub verify_threshold: Option<f32>,
    /// The threshold face check-in uses now: the session's own, else the hub's.
    pub threshold: f32,
    pub created_by: String,
    pub created_ms: i64,
    /// Registered candidates.
    pub candidates: i64,
}

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

/// A trimmed, non-empty, single-line text of at most `max` characters.
fn text(field: &str, value: &str, max: usize) -> Result<String, ExamError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ExamError::Invalid(format!("{field} is required")));
    }
    if v.chars().count() > max {
        return Err(ExamError::Invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(ExamError::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(v.to_string())
}

/// A CCCD as typed: 12 digits with a known province code.
pub fn parse_cccd(s: &str) -> Result<String, ExamError> {
    Cccd::parse(s)
        .map(|c| c.as_str().to_string())
        .map_err(|e| ExamError::Invalid(e.to_string()))
}

fn check_threshold(t: Option<f32>) -> Result<Option<f32>, ExamError> {
    match t {
        Some(t) if !THRESHOLD_RANGE.contains(&t) => Err(ExamError::Invalid(format!(
            "verify_threshold must be between {} and {}",
            THRESHOLD_RANGE.start(),
            THRESHOLD_RANGE.end()
        ))),
        t => Ok(t),
    }
}

macro_rules! session_select {
    () => {
        "SELECT s.id, s.venue_kind, s.venue, s.subject, s.shift, s.starts_ms, s.verify_threshold, \
         s.created_by, s.created_ms, \
         (SELECT COUNT(*) FROM exam_candidates c WHERE c.session_id = s.id) AS candidates \
         FROM exam_sessions s "
    };
}

fn row_session(r: &AnyRow, default_threshold: f32) -> Result<ExamSession, ExamError> {
    let kind: String = r.try_get("venue_kind")?;
    let own = r
        .try_get::<Option<f64>, _>("verify_threshold")?
        .map(|t| t as f32);
    Ok(ExamSession {
        id: r.try_get("id")?,
        venue_kind: VenueKind::parse(&kind).ok_or_else(|| {
            ExamError::Invalid(format!("stored venue_kind {kind:?} is not known"))
        })?,
        venue: r.try_get("venue")?,
        subject: r.try_get("subject")?,
        shift: r.try_get("shift")?,
        starts_ms: r.try_get("starts_ms")?,
        verify_threshold: own,
        threshold: own.unwrap_or(default_threshold),
        created_by: r.try_get("created_by")?,
        created_ms: r.try_get("created_ms")?,
        candidates: r.try_get("candidates")?,
    })
}

/// Checks and stores a new session. `default_threshold` is the hub's, shown where the session has none.
pub async fn create_session(
    db: &Db,
    new: &NewSession,
    created_by: &str,
    default_threshold: f32,
) -> Result<ExamSession, ExamError> {
    let kind = VenueKind::parse(&new.venue_kind).ok_or_else(|| {
        ExamError::Invalid(format!(
            "venue_kind {:?} is not known: use school or driving_centre",
            new.venue_kind
        ))
    })?;
    let venue = text("venue", &new.venue, 200)?;
    let subject = text("subject", &new.subject, 200)?;
    let shift = text("shift", &new.shift, 100)?;
    if new.starts_ms <= 0 {
        return Err(ExamError::Invalid(
            "starts_ms must be a time in milliseconds since the epoch".into(),
        ));
    }
    let threshold = check_threshold(new.verify_threshold)?;
    let id = uuid::Uuid::now_v7().to_string();
    // A NULL and a number are written by two statements rather than one with an Option<f64>: sqlx 0.9's Any
    // driver sends a NULL f64 to PostgreSQL typed as REAL (it swaps REAL and DOUBLE for NULLs), and its
    // statement cache then refuses a DOUBLE value in the same statement later.
    let q = if threshold.is_some() {
        sqlx::query(
            "INSERT INTO exam_sessions (id, venue_kind, venue, subject, shift, starts_ms, created_by, \
             created_ms, verify_threshold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
    } else {
        sqlx::query(
            "INSERT INTO exam_sessions (id, venue_kind, venue, subject, shift, starts_ms, created_by, \
             created_ms, verify_threshold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
        )
    };
    let q = q
        .bind(&id)
        .bind(kind.as_str())
        .bind(&venue)
        .bind(&subject)
        .bind(&shift)
        .bind(new.starts_ms)
        .bind(created_by)
        .bind(now_ms());
    match threshold {
        Some(t) => q.bind(f64::from(t)),
        None => q,
    }
    .execute(&db.pool)
    .await?;
    get_session(db, &id, default_threshold).await
}

pub async fn get_session(
    db: &Db,
    id: &str,
    default_threshold: f32,
) -> Result<ExamSession, ExamError> {
    let r = sqlx::query(concat!(session_select!(), "WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ExamError::SessionNotFound(id.into()))?;
    row_session(&r, default_threshold)
}

/// Sessions starting in `[from_ms, to_ms)`, latest first, at most `limit`; with `run_by`, only the sessions
/// that user runs (see [`runs_session`]).
pub async fn list_sessions(
    db: &Db,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: i64,
    default_threshold: f32,
    run_by: Option<&str>,
) -> Result<Vec<ExamSession>, ExamError> {
    let rows = sqlx::query(concat!(
        session_select!(),
        "WHERE s.starts_ms >= $1 AND s.starts_ms < $2 AND ($4 = '' OR s.created_by = $4 OR EXISTS \
         (SELECT 1 FROM exam_session_staff x WHERE x.session_id = s.id AND x.username = $4)) \
         ORDER BY s.starts_ms DESC, s.id DESC LIMIT $3"
    ))
    .bind(from_ms.unwrap_or(i64::MIN))
    .bind(to_ms.unwrap_or(i64::MAX))
    .bind(limit.clamp(1, 1000))
    .bind(run_by.unwrap_or(""))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| row_session(r, default_threshold))
        .collect()
}

/// Whether `username` runs the session: created it, or was assigned to it by an organiser. Exam staff act
/// only on the sessions they run, so a door account cannot compare faces with arbitrary citizens.
pub async fn runs_session(db: &Db, session_id: &str, username: &str) -> Result<bool, ExamError> {
    let n: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM exam_sessions s WHERE s.id = $1 AND (s.created_by = $2 OR EXISTS \
         (SELECT 1 FROM exam_session_staff x WHERE x.session_id = s.id AND x.username = $2))",
    )
    .bind(session_id)
    .bind(username)
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    Ok(n > 0)
}

/// The exam staff assigned to a session, by username.
pub async fn staff(db: &Db, session_id: &str) -> Result<Vec<String>, ExamError> {
    get_session(db, session_id, 0.0).await?;
    let rows = sqlx::query(
        "SELECT username FROM exam_session_staff WHERE session_id = $1 ORDER BY username",
    )
    .bind(session_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("username"))
        .collect::<Result<_, _>>()?)
}

/// Assigns an active exam_staff user to a session (idempotent).
pub async fn assign_staff(
    db: &Db,
    session_id: &str,
    username: &str,
    assigned_by: &str,
) -> Result<Vec<String>, ExamError> {
    get_session(db, session_id, 0.0).await?;
    let role = sqlx::query("SELECT role FROM users WHERE username = $1 AND active = 1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<String, _>("role"))
        .transpose()?;
    if role.as_deref() != Some("exam_staff") {
        return Err(ExamError::Invalid(format!(
            "{username:?} is not an active exam_staff user"
        )));
    }
    sqlx::query(
        "INSERT INTO exam_session_staff (session_id, username, assigned_by, assigned_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, username) DO NOTHING",
    )
    .bind(session_id)
    .bind(username)
    .bind(assigned_by)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    staff(db, session_id).await
}

/// Takes a user off a session (idempotent).
pub async fn unassign_staff(
    db: &Db,
    session_id: &str,
    username: &str,
) -> Result<Vec<String>, ExamError> {
    get_session(db, session_id, 0.0).await?;
    sqlx::query("DELETE FROM exam_session_staff WHERE session_id = $1 AND username = $2")
        .bind(session_id)
        .bind(username)
        .execute(&db.pool)
        .await?;
    staff(db, session_id).await
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
        let existing = sqlx::query(
            "SELECT cccd, candidate_no FROM exam_candidates WHERE session_id = $1 AND (cccd = $2 OR candidate_no = $3)",
        )
        .bind(session_id)
        .bind(&cccd)
        .bind(&number)
        .fetch_all(&db.pool)
        .await?;
        let mut clash = None;
        let mut same = false;
        for r in &existing {
            let (c, no): (String, String) = (r.try_get("cccd")?, r.try_get("candidate_no")?);
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
    let r = sqlx::query(
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
    })?;
    Ok((r.try_get("candidate_no")?, opt_text(&r, "full_name")))
}

macro_rules! decision_cols {
    () => {
        "id, session_id, cccd, seq, result, method, similarity, threshold, reason, decided_by, at_ms"
    };
}

fn row_decision(r: &AnyRow) -> Result<ExamDecision, ExamError> {
    let result: String = r.try_get("result")?;
    let method: String = r.try_get("method")?;
    Ok(ExamDecision {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        cccd: r.try_get("cccd")?,
        seq: r.try_get("seq")?,
        result: Outcome::parse(&result)
            .ok_or_else(|| ExamError::Invalid(format!("stored result {result:?} is not known")))?,
        method: Method::parse(&method)
            .ok_or_else(|| ExamError::Invalid(format!("stored method {method:?} is not known")))?,
        similarity: r.try_get::<Option<f64>, _>("similarity")?.map(|x| x as f32),
        threshold: r.try_get::<Option<f64>, _>("threshold")?.map(|x| x as f32),
        reason: opt_text(r, "reason"),
        decided_by: r.try_get("decided_by")?,
        at_ms: r.try_get("at_ms")?,
    })
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
    let r = sqlx::query(concat!(
        "SELECT ",
        decision_cols!(),
        " FROM exam_checkins WHERE id = $1"
    ))
    .bind(&id)
    .fetch_one(&db.pool)
    .await?;
    row_decision(&r)
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
    let rows = sqlx::query(concat!(
        "SELECT ",
        decision_cols!(),
        " FROM exam_checkins WHERE session_id = $1 AND cccd = $2 ORDER BY seq"
    ))
    .bind(session_id)
    .bind(cccd)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(row_decision).collect()
}

/// The session report: every registered candidate with their latest decision, and the counts.
pub async fn report(
    db: &Db,
    session_id: &str,
    default_threshold: f32,
) -> Result<ExamReport, ExamError> {
    let session = get_session(db, session_id, default_threshold).await?;
    let rows = sqlx::query(
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
    for r in &rows {
        let result = opt_text(r, "result").and_then(|s| Outcome::parse(&s));
        let method = opt_text(r, "method").and_then(|s| Method::parse(&s));
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
            cccd: r.try_get("cccd")?,
            candidate_no: r.try_get("candidate_no")?,
            full_name: opt_text(r, "full_name"),
            status,
            result,
            method,
            similarity: r.try_get::<Option<f64>, _>("similarity")?.map(|x| x as f32),
            threshold: r.try_get::<Option<f64>, _>("threshold")?.map(|x| x as f32),
            reason: opt_text(r, "reason"),
            decided_by: opt_text(r, "decided_by"),
            at_ms: r.try_get::<Option<i64>, _>("at_ms")?,
            decisions: r.try_get("decisions")?,
        });
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use crate::faces::to_bytes;

    const HUB_DEFAULT: f32 = 0.363;

    fn session_req() -> NewSession {
        NewSession {
            venue_kind: "school".into(),
            venue: "THPT Chu Văn An".into(),
            subject: "Toán".into(),
            shift: "Ca 1 (7:30)".into(),
            starts_ms: 1_782_000_000_000,
            verify_threshold: None,
        }
    }

    /// A person row and, with `template`, one template row, written directly.
    async fn person(db: &Db, cccd: &str, name: &str, dob: &str, gender: &str, template: bool) {
        sqlx::query(
            "INSERT INTO persons (cccd, full_name, name_folded, date_of_birth, gender, address, photo, \
             created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $7)",
        )
        .bind(cccd)
        .bind(name)
        .bind(checkpoint_identity::fold_for_search(name))
        .bind(dob)
        .bind(gender)
        .bind("Hà Nội")
        .bind(now_ms())
        .execute(&db.pool)
        .await
        .unwrap();
        if template {
            let mut v = vec![0f32; 128];
            v[0] = 1.0;
            sqlx::query(
                "INSERT INTO person_templates (id, cccd, embedding, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(cccd)
            .bind(to_bytes(&v))
            .bind(now_ms())
            .execute(&db.pool)
            .await
            .unwrap();
        }
    }

    fn entry(cccd: &str, no: &str) -> CandidateEntry {
        CandidateEntry {
            cccd: cccd.into(),
            candidate_no: no.into(),
        }
    }

    fn face(result: Outcome, similarity: f32, by: &str) -> NewDecision {
        NewDecision {
            result,
            method: Method::Face,
            similarity: Some(similarity),
            threshold: Some(HUB_DEFAULT),
            reason: None,
            decided_by: by.into(),
        }
    }

    const AN: &str = "001085012345";
    const BINH: &str = "079190000123";
    const CHI: &str = "001305004321";
    const DUNG: &str = "001200000777";

    async fn sessions_are_checked_and_stored(db: Db) {
        for (spoil, want) in [
            (
                NewSession {
                    venue_kind: "market".into(),
                    ..session_req()
                },
                "venue_kind",
            ),
            (
                NewSession {
                    venue: "  ".into(),
                    ..session_req()
                },
                "venue is required",
            ),
            (
                NewSession {
                    subject: "".into(),
                    ..session_req()
                },
                "subject",
            ),
            (
                NewSession {
                    shift: "Ca 1\n(7:30)".into(),
                    ..session_req()
                },
                "control",
            ),
            (
                NewSession {
                    starts_ms: 0,
                    ..session_req()
                },
                "starts_ms",
            ),
            (
                NewSession {
                    verify_threshold: Some(0.1),
                    ..session_req()
                },
                "0.2",
            ),
            (
                NewSession {
                    verify_threshold: Some(0.99),
                    ..session_req()
                },
                "0.95",
            ),
            (
                NewSession {
                    verify_threshold: Some(f32::NAN),
                    ..session_req()
                },
                "verify_threshold",
            ),
        ] {
            let e = create_session(&db, &spoil, "sup1", HUB_DEFAULT)
                .await
                .unwrap_err();
            assert!(matches!(e, ExamError::Invalid(_)), "{e:?}");
            assert!(e.to_string().contains(want), "{e} should mention {want}");
        }

        let plain = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
            .await
            .unwrap();
        assert_eq!(plain.venue_kind, VenueKind::School);
        assert_eq!(plain.verify_threshold, None);
        assert_eq!(plain.threshold, HUB_DEFAULT);
        assert_eq!(plain.created_by, "sup1");
        assert_eq!(plain.candidates, 0);
        let strict = create_session(
            &db,
            &NewSession {
                venue_kind: "driving_centre".into(),
                venue: " Trung tâm sát hạch Sóc Sơn ".into(),
                subject: "Lý thuyết hạng B".into(),
                starts_ms: session_req().starts_ms + 3_600_000,
                verify_threshold: Some(0.5),
                ..session_req()
            },
            "admin",
            HUB_DEFAULT,
        )
        .await
        .unwrap();
        assert_eq!(strict.venue, "Trung tâm sát hạch Sóc Sơn");
        assert_eq!(strict.verify_threshold, Some(0.5));
        assert_eq!(strict.threshold, 0.5);
        // The hub's default is applied when read, so changing the setting applies to sessions without their own.
        assert_eq!(
            get_session(&db, &plain.id, 0.4).await.unwrap().threshold,
            0.4
        );
        assert_eq!(
            get_session(&db, &strict.id, 0.4).await.unwrap().threshold,
            0.5
        );
        assert!(matches!(
            get_session(&db, "nope", HUB_DEFAULT).await,
            Err(ExamError::SessionNotFound(_))
        ));
        let all = list_sessions(&db, None, None, 10, HUB_DEFAULT, None)
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            [strict.id.as_str(), plain.id.as_str()],
            "latest start first"
        );
        let early = list_sessions(&db, None, Some(strict.starts_ms), 10, HUB_DEFAULT, None)
            .await
            .unwrap();
        assert_eq!(early.len(), 1);
        assert_eq!(early[0].id, plain.id);
    }

    async fn registration_reports_each_item(db: Db) {
        person(&db, AN, "Nguyễn Văn An", "1985-03-02", "male", true).await;
        person(&db, BINH, "Trần Thị Bình", "1990-07-01", "female", true).await;
        person(&db, CHI, "Lê Minh Chi", "2005-01-09", "female", false).await;
        let s = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
            .await
            .unwrap();
        let reg = register(
            &db,
            &s.id,
            &[
                entry(AN, "HN-0001"),
                entry(" 079190000123 ", "HN-0002"),
                entry(CHI, "HN-0003"),
                entry("12345", "HN-0004"),
                entry("001085099999", "HN-0005"),
                entry(AN, "HN-0001"),
                entry(AN, "HN-0009"),
                entry(DUNG, "HN-0002"),
                entry(DUNG, " "),
            ],
            "sup1",
        )
        .await
        .unwrap();
        assert_eq!(
            reg.registered
                .iter()
                .map(|c| (c.cccd.as_str(), c.candidate_no.as_str(), c.templates))
                .collect::<Vec<_>>(),
            [
                (AN, "HN-0001", 1),
                (BINH, "HN-0002", 1),
                (CHI, "HN-0003", 0)
            ]
        );
        assert_eq!(reg.registered[1].full_name, "Trần Thị Bình");
        assert_eq!(reg.already_registered.len(), 1);
        assert_eq!(reg.already_registered[0].cccd, AN);
        let failed: Vec<(usize, u16)> = reg.failed.iter().map(|f| (f.index, f.status)).collect();
        // DUNG has no record: 404 before the clash with HN-0002 could matter.
        assert_eq!(failed, [(3, 400), (4, 404), (6, 409), (7, 404), (8, 400)]);
        assert!(
            reg.failed[0].error.contains("12 digits"),
            "{:?}",
            reg.failed[0]
        );
        assert!(
            reg.failed[2].error.contains("HN-0001"),
            "{:?}",
            reg.failed[2]
        );

        // With a record, the taken number is a 409 naming its holder.
        person(&db, DUNG, "Phạm Dũng", "2000-05-05", "male", true).await;
        let again = register(&db, &s.id, &[entry(DUNG, "HN-0002")], "sup1")
            .await
            .unwrap();
        assert_eq!(again.failed.len(), 1);
        assert_eq!(again.failed[0].status, 409);
        assert!(
            again.failed[0].error.contains(BINH),
            "{:?}",
            again.failed[0]
        );

        assert_eq!(
            get_session(&db, &s.id, HUB_DEFAULT)
                .await
                .unwrap()
                .candidates,
            3
        );
        assert!(matches!(
            register(&db, &s.id, &[], "sup1").await,
            Err(ExamError::Invalid(_))
        ));
        assert!(matches!(
            register(&db, "nope", &[entry(AN, "X")], "sup1").await,
            Err(ExamError::SessionNotFound(_))
        ));
        // The same CCCD may sit another session with its own number.
        let other = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
            .await
            .unwrap();
        let r = register(&db, &other.id, &[entry(AN, "HN-0001")], "sup1")
            .await
            .unwrap();
        assert_eq!(r.registered.len(), 1);
    }

    async fn decisions_and_report(db: Db) {
        person(&db, AN, "Nguyễn Văn An", "1985-03-02", "male", true).await;
        person(&db, BINH, "Trần Thị Bình", "1990-07-01", "female", true).await;
        person(&db, CHI, "Lê Minh Chi", "2005-01-09", "female", true).await;
        person(&db, DUNG, "Phạm Dũng", "2000-05-05", "male", true).await;
        let s = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
            .await
            .unwrap();
        register(
            &db,
            &s.id,
            &[
                entry(AN, "HN-0001"),
                entry(BINH, "HN-0002"),
                entry(CHI, "HN-0003"),
                entry(DUNG, "HN-0004"),
            ],
            "sup1",
        )
        .await
        .unwrap();

        // Nothing is recorded for someone not registered, or in an unknown session.
        let e = record(
            &db,
            &s.id,
            "001190000001",
            &face(Outcome::Verified, 0.9, "gv1"),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ExamError::NotRegistered { .. }), "{e:?}");
        assert!(matches!(
            record(&db, "nope", AN, &face(Outcome::Verified, 0.9, "gv1")).await,
            Err(ExamError::NotRegistered { .. })
        ));

        // A face decision without its similarity, or a manual one without a reason, is refused.
        for spoilt in [
            NewDecision {
                similarity: None,
                ..face(Outcome::Verified, 0.9, "gv1")
            },
            NewDecision {
                method: Method::Manual,
                ..face(Outcome::Verified, 0.9, "gv1")
            },
        ] {
            assert!(matches!(
                record(&db, &s.id, AN, &spoilt).await,
                Err(ExamError::Invalid(_))
            ));
        }

        // An: rejected by the camera, then verified on a second try: the latest counts, history kept.
        let first = record(&db, &s.id, AN, &face(Outcome::Rejected, 0.21, "gv1"))
            .await
            .unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(first.similarity, Some(0.21));
        assert_eq!(first.threshold, Some(HUB_DEFAULT));
        let second = record(&db, &s.id, AN, &face(Outcome::Verified, 0.74, "gv2"))
            .await
            .unwrap();
        assert_eq!(second.seq, 2);
        assert_eq!(second.decided_by, "gv2");

        // Binh: rejected by the camera (twin sister?), then verified by hand with a reason.
        record(&db, &s.id, BINH, &face(Outcome::Rejected, 0.30, "gv1"))
            .await
            .unwrap();
        for (result, reason) in [("verified", "  "), ("maybe", "twin")] {
            assert!(matches!(
                decide(&db, &s.id, BINH, result, reason, "sup1").await,
                Err(ExamError::Invalid(_))
            ));
        }
        let manual = decide(
            &db,
            &s.id,
            BINH,
            "verified",
            " twin sister; checked the card ",
            "sup1",
        )
        .await
        .unwrap();
        assert_eq!(manual.method, Method::Manual);
        assert_eq!(manual.result, Outcome::Verified);
        assert_eq!(
            manual.reason.as_deref(),
            Some("twin sister; checked the card")
        );
        assert_eq!(manual.similarity, None);
        assert_eq!(manual.seq, 2);

        // Dung: verified by the camera, then rejected by hand.
        record(&db, &s.id, DUNG, &face(Outcome::Verified, 0.8, "gv1"))
            .await
            .unwrap();
        decide(
            &db,
            &s.id,
            DUNG,
            "rejected",
            "sent the brother in his place",
            "sup1",
        )
        .await
        .unwrap();

        let h = history(&db, &s.id, AN).await.unwrap();
        assert_eq!(h.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(h[0].result, Outcome::Rejected);
        assert_eq!(h[1], second);
        assert!(history(&db, &s.id, "001190000001").await.is_err());

        let rep = report(&db, &s.id, HUB_DEFAULT).await.unwrap();
        assert_eq!(
            (
                rep.registered,
                rep.present,
                rep.verified,
                rep.verified_face,
                rep.verified_manual,
                rep.rejected,
                rep.manual,
                rep.absent
            ),
            (4, 3, 2, 1, 1, 1, 2, 1)
        );
        assert_eq!(rep.session.id, s.id);
        let line = |c: &str| rep.candidates.iter().find(|l| l.cccd == c).unwrap().clone();
        let an = line(AN);
        assert_eq!(an.candidate_no, "HN-0001");
        assert_eq!(an.full_name.as_deref(), Some("Nguyễn Văn An"));
        assert_eq!(an.status, CandidateStatus::Verified);
        assert_eq!(an.method, Some(Method::Face));
        assert_eq!(an.similarity, Some(0.74));
        assert_eq!(an.decided_by.as_deref(), Some("gv2"));
        assert_eq!(an.at_ms, Some(second.at_ms));
        assert_eq!(an.decisions, 2);
        let binh = line(BINH);
        assert_eq!(binh.method, Some(Method::Manual));
        assert_eq!(
            binh.reason.as_deref(),
            Some("twin sister; checked the card")
        );
        assert_eq!(binh.similarity, None);
        assert_eq!(line(DUNG).status, CandidateStatus::Rejected);
        let chi = line(CHI);
        assert_eq!(chi.status, CandidateStatus::Absent);
        assert_eq!(
            (chi.result, chi.method, chi.at_ms, chi.decisions),
            (None, None, None, 0)
        );
        assert_eq!(
            rep.candidates
                .iter()
                .map(|l| l.candidate_no.as_str())
                .collect::<Vec<_>>(),
            ["HN-0001", "HN-0002", "HN-0003", "HN-0004"]
        );
        assert!(matches!(
            report(&db, "nope", HUB_DEFAULT).await,
            Err(ExamError::SessionNotFound(_))
        ));
    }

    /// Decisions for one candidate made at the same time all land, each with its own number.
    async fn concurrent_decisions_get_distinct_numbers(db: Db) {
        person(&db, AN, "Nguyễn Văn An", "1985-03-02", "male", true).await;
        let s = create_session(&db, &session_req(), "sup1", HUB_DEFAULT)
            .await
            .unwrap();
        register(&db, &s.id, &[entry(AN, "HN-0001")], "sup1")
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..6 {
            let db = db.clone();
            let id = s.id.clone();
            tasks.push(tokio::spawn(async move {
                record(
                    &db,
                    &id,
                    AN,
                    &face(Outcome::Verified, 0.5, &format!("gv{i}")),
                )
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let seqs: Vec<i64> = history(&db, &s.id, AN)
            .await
            .unwrap()
            .iter()
            .map(|d| d.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn exam_sessions_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        sessions_are_checked_and_stored(db).await;
    }

    #[tokio::test]
    async fn exam_sessions_on_postgres() {
        if let Some(db) = testing::postgres().await {
            sessions_are_checked_and_stored(db).await;
        }
    }

    #[tokio::test]
    async fn exam_registration_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        registration_reports_each_item(db).await;
    }

    #[tokio::test]
    async fn exam_registration_on_postgres() {
        if let Some(db) = testing::postgres().await {
            registration_reports_each_item(db).await;
        }
    }

    #[tokio::test]
    async fn exam_decisions_and_report_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        decisions_and_report(db).await;
    }

    #[tokio::test]
    async fn exam_decisions_and_report_on_postgres() {
        if let Some(db) = testing::postgres().await {
            decisions_and_report(db).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exam_concurrent_decisions_on_sqlite() {
        let (db, _d) = testing::sqlite().await;
        concurrent_decisions_get_distinct_numbers(db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exam_concurrent_decisions_on_postgres() {
        if let Some(db) = testing::postgres().await {
            concurrent_decisions_get_distinct_numbers(db).await;
        }
    }

    #[test]
    fn exam_enums_round_trip_as_text() {
        for k in [VenueKind::School, VenueKind::DrivingCentre] {
            assert_eq!(VenueKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        for o in [Outcome::Verified, Outcome::Rejected] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::json!(o.as_str())
            );
        }
        for m in [Method::Face, Method::Manual] {
            assert_eq!(Method::parse(m.as_str()), Some(m));
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::json!(m.as_str())
            );
        }
        assert_eq!(parse_cccd(" 001085012345 ").unwrap(), "001085012345");
        assert!(parse_cccd("999085012345").is_err());
    }
}
