//! Exams: sessions (a subject at a school or a driving-test centre, in a shift), the candidates registered
//! for them by CCCD number and candidate number (SBD), check-in at the door by 1:1 face verification against
//! the candidate's identity record, manual decisions where the camera cannot settle it (twins, injuries, bad
//! light), and the session report.
//!
//! Every decision is a row in `exam_checkins`, numbered per candidate; the highest number is the candidate's
//! current decision and the earlier ones stay as history. The live photo taken at the door is compared and
//! dropped: only the result, the similarity and the threshold are stored.
//!
//! Owns `exam_sessions`, `exam_session_staff`, `exam_candidates` and `exam_checkins`: sessions and their staff
//! here, registration in `candidates`, check-in decisions in `decisions`, the report in `report`.

mod candidates;
mod decisions;
mod report;

pub use candidates::{
    candidate, register, CandidateEntry, FailedCandidate, RegisteredCandidate, Registration,
};
pub use decisions::{check_in, decide, history, record, ExamDecision, NewDecision};
pub use report::{report, CandidateStatus, ExamReport, ReportLine};

use checkpoint_identity::Cccd;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db, DbError};
use crate::records::RecordError;

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
    /// Check-in photos only from the desk's live camera (the page offers no file upload, and the hub refuses
    /// a check-in that does not say `capture: "live"`). Default false.
    #[serde(default)]
    pub live_capture_required: bool,
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
    /// Check-in photos only from the live camera.
    pub live_capture_required: bool,
    pub created_by: String,
    pub created_ms: i64,
    /// Registered candidates.
    pub candidates: i64,
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
         s.live_capture_required, s.created_by, s.created_ms, \
         (SELECT COUNT(*) FROM exam_candidates c WHERE c.session_id = s.id) AS candidates \
         FROM exam_sessions s "
    };
}

/// An `exam_sessions` row as [`session_select`] reads it.
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    venue_kind: String,
    venue: String,
    subject: String,
    shift: String,
    starts_ms: i64,
    verify_threshold: Option<f64>,
    live_capture_required: i64,
    created_by: String,
    created_ms: i64,
    candidates: i64,
}

impl SessionRow {
    /// The session as the API shows it; `default_threshold` (the hub's) where it has none of its own.
    fn into_session(self, default_threshold: f32) -> Result<ExamSession, ExamError> {
        let kind = self.venue_kind;
        let own = self.verify_threshold.map(|t| t as f32);
        Ok(ExamSession {
            id: self.id,
            venue_kind: VenueKind::parse(&kind).ok_or_else(|| {
                ExamError::Invalid(format!("stored venue_kind {kind:?} is not known"))
            })?,
            venue: self.venue,
            subject: self.subject,
            shift: self.shift,
            starts_ms: self.starts_ms,
            verify_threshold: own,
            threshold: own.unwrap_or(default_threshold),
            live_capture_required: self.live_capture_required != 0,
            created_by: self.created_by,
            created_ms: self.created_ms,
            candidates: self.candidates,
        })
    }
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
             created_ms, live_capture_required, verify_threshold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
    } else {
        sqlx::query(
            "INSERT INTO exam_sessions (id, venue_kind, venue, subject, shift, starts_ms, created_by, \
             created_ms, live_capture_required, verify_threshold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
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
        .bind(now_ms())
        .bind(i64::from(new.live_capture_required));
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
    let r: SessionRow = sqlx::query_as(concat!(session_select!(), "WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| ExamError::SessionNotFound(id.into()))?;
    r.into_session(default_threshold)
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
    let rows: Vec<SessionRow> = sqlx::query_as(concat!(
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
    rows.into_iter()
        .map(|r| r.into_session(default_threshold))
        .collect()
}

/// Whether `username` runs the session: created it, or was assigned to it by an organiser. Exam staff act
/// only on the sessions they run, so a door account cannot compare faces with arbitrary citizens.
pub async fn runs_session(db: &Db, session_id: &str, username: &str) -> Result<bool, ExamError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) AS n FROM exam_sessions s WHERE s.id = $1 AND (s.created_by = $2 OR EXISTS \
         (SELECT 1 FROM exam_session_staff x WHERE x.session_id = s.id AND x.username = $2))",
    )
    .bind(session_id)
    .bind(username)
    .fetch_one(&db.pool)
    .await?;
    Ok(n > 0)
}

/// The exam staff assigned to a session, by username.
pub async fn staff(db: &Db, session_id: &str) -> Result<Vec<String>, ExamError> {
    get_session(db, session_id, 0.0).await?;
    Ok(sqlx::query_scalar(
        "SELECT username FROM exam_session_staff WHERE session_id = $1 ORDER BY username",
    )
    .bind(session_id)
    .fetch_all(&db.pool)
    .await?)
}

/// Assigns an active exam_staff user to a session (idempotent).
pub async fn assign_staff(
    db: &Db,
    session_id: &str,
    username: &str,
    assigned_by: &str,
) -> Result<Vec<String>, ExamError> {
    get_session(db, session_id, 0.0).await?;
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM users WHERE username = $1 AND active = 1")
            .bind(username)
            .fetch_optional(&db.pool)
            .await?;
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

#[cfg(test)]
mod tests;
