//! Lodging registration (ASM, "lưu trú"): hotels, homestays, overnight boats and long-distance buses declare
//! their guests to the police. Desk staff check guests in from the CCCD card's QR code (citizens) or a passport
//! (foreign guests) and check them out; police search the stays; the tourism office reads daily statistics.
//!
//! A citizen's check-in is compared with the active wanted entries: a hit becomes a candidate alert (source
//! `lodging`) for operators to review, and nothing in the answer to the desk differs, so the staff cannot tip
//! the guest off. Every check-in, check-out and search is audited with ids, never with the guest's data.
//!
//! The HTTP layer (`api::lodging`) checks roles and which establishment a staff account belongs to; the
//! functions here take already-authorised requests. Owns `lodging_establishments`, `lodging_staff` and
//! `lodging_stays`: establishments and their staff here, stays in `stays`, statistics in `stats`.

pub mod replay;
mod stats;
mod stays;

pub use stats::{stats, DayStats};
pub use stays::{check_in, check_in_as, check_out, current_guests, search, stay, Stay, StaySearch};

use checkpoint_identity::{normalize_name, parse_qr, validate_name, Gender, Passport};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::audit::AuditLog;
use crate::db::{Db, DbError};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Most stays one search returns.
pub const SEARCH_LIMIT: i64 = 500;
/// Longest statistics range, days.
pub const MAX_STATS_DAYS: i64 = 366;

#[derive(Debug, thiserror::Error)]
pub enum LodgingError {
    /// Bad input: the message says what to fix (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The state forbids it (HTTP 409); `code` is the API's stable code: `already_checked_in`,
    /// `already_checked_out`, `client_id_reused`.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for LodgingError {
    fn from(e: sqlx::Error) -> Self {
        LodgingError::Db(e.into())
    }
}

fn invalid(m: impl Into<String>) -> LodgingError {
    LodgingError::Invalid(m.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EstablishmentKind {
    Hotel,
    Homestay,
    OvernightBoat,
    /// A check-in is a passenger boarding.
    LongDistanceBus,
}

impl EstablishmentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EstablishmentKind::Hotel => "hotel",
            EstablishmentKind::Homestay => "homestay",
            EstablishmentKind::OvernightBoat => "overnight_boat",
            EstablishmentKind::LongDistanceBus => "long_distance_bus",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hotel" => EstablishmentKind::Hotel,
            "homestay" => EstablishmentKind::Homestay,
            "overnight_boat" => EstablishmentKind::OvernightBoat,
            "long_distance_bus" => EstablishmentKind::LongDistanceBus,
            _ => return None,
        })
    }
}

/// The stored `kind` column (for `#[sqlx(try_from = "String")]`).
impl TryFrom<String> for EstablishmentKind {
    type Error = String;

    fn try_from(kind: String) -> Result<Self, String> {
        EstablishmentKind::parse(&kind)
            .ok_or_else(|| format!("unknown establishment kind {kind:?}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Establishment {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: EstablishmentKind,
    /// The Checkpoint site it belongs to (statistics are per site).
    pub site: String,
    pub address: String,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewEstablishment {
    pub name: String,
    pub kind: EstablishmentKind,
    pub site: String,
    pub address: String,
}

/// A lodging_staff account and the establishment it acts for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StaffLink {
    pub username: String,
    pub establishment_id: String,
    pub linked_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestKind {
    /// Vietnamese nationality (CCCD card, or a VNM passport).
    Citizen,
    Foreign,
}

impl GuestKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            GuestKind::Citizen => "citizen",
            GuestKind::Foreign => "foreign",
        }
    }
}

/// The stored `guest_kind` column (for `#[sqlx(try_from = "String")]`): anything but `citizen` is foreign.
impl From<String> for GuestKind {
    fn from(kind: String) -> Self {
        if kind == "citizen" {
            GuestKind::Citizen
        } else {
            GuestKind::Foreign
        }
    }
}

/// A passport holder as typed at the desk.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct PassportGuest {
    pub number: String,
    /// ISO 3166-1 alpha-3 (`KOR`) or alpha-2 (`KR`).
    pub nationality: String,
    pub full_name: String,
    /// YYYY-MM-DD.
    pub date_of_birth: String,
    /// `male`/`female` (also `Nam`/`Nữ`, `M`/`F`).
    pub gender: String,
}

/// A check-in: the guest by the CCCD card's QR payload (citizens) or by passport, not both.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct CheckInRequest {
    pub establishment_id: String,
    /// Room, cabin or seat.
    pub room: Option<String>,
    /// The raw QR payload of a CCCD card: `id|old id|full name|ddmmyyyy|gender|address|issue ddmmyyyy`.
    pub qr: Option<String>,
    pub passport: Option<PassportGuest>,
    /// The desk browser's id for this check-in (8-64 of `A-Z a-z 0-9 -`, a UUID): sending it again returns the
    /// stay the first try made (200) instead of a second one.
    #[serde(default)]
    pub client_id: Option<String>,
    /// When the desk recorded the check-in, ms since the epoch, for one queued offline: becomes the check-in
    /// time. At most 7 days old, at most 5 minutes ahead of the hub's clock.
    #[serde(default)]
    pub recorded_ms: Option<i64>,
}

/// A validated guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    pub kind: GuestKind,
    pub cccd: Option<String>,
    pub passport_number: Option<String>,
    /// ISO 3166-1 alpha-3.
    pub nationality: String,
    /// NFC.
    pub full_name: String,
    pub date_of_birth: Date,
    pub gender: Gender,
    pub address: Option<String>,
}

impl Guest {
    /// One active stay per key and establishment.
    fn key(&self) -> String {
        match (&self.cccd, &self.passport_number) {
            (Some(c), _) => format!("cccd:{c}"),
            (None, Some(p)) => format!("passport:{}:{p}", self.nationality),
            (None, None) => unreachable!("a guest has a CCCD or a passport"),
        }
    }
}

/// Validates the guest part of a check-in. `today` is the local date (QR dates must not be in the future).
pub fn parse_guest(
    qr: Option<&str>,
    passport: Option<&PassportGuest>,
    today: Date,
) -> Result<Guest, LodgingError> {
    match (qr, passport) {
        (Some(payload), None) => {
            let card = parse_qr(payload, today).map_err(|e| invalid(e.to_string()))?;
            Ok(Guest {
                kind: GuestKind::Citizen,
                cccd: Some(card.cccd.as_str().to_string()),
                passport_number: None,
                nationality: "VNM".into(),
                full_name: card.full_name,
                date_of_birth: card.date_of_birth,
                gender: card.gender,
                address: Some(card.address),
            })
        }
        (None, Some(p)) => {
            let passport =
                Passport::parse(&p.number, &p.nationality).map_err(|e| invalid(e.to_string()))?;
            let full_name = validate_name(&p.full_name).map_err(|e| invalid(e.to_string()))?;
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let date_of_birth = Date::parse(p.date_of_birth.trim(), fmt).map_err(|_| {
                invalid(format!(
                    "date of birth {:?} is not a real date in the YYYY-MM-DD format",
                    p.date_of_birth.chars().take(40).collect::<String>()
                ))
            })?;
            if date_of_birth > today {
                return Err(invalid(format!(
                    "date of birth {date_of_birth} is in the future (today is {today})"
                )));
            }
            let gender: Gender = p
                .gender
                .parse()
                .map_err(|e: checkpoint_identity::GenderError| invalid(format!("gender: {e}")))?;
            let nationality = passport.nationality().to_string();
            Ok(Guest {
                kind: if nationality == "VNM" {
                    GuestKind::Citizen
                } else {
                    GuestKind::Foreign
                },
                cccd: None,
                passport_number: Some(passport.number().to_string()),
                nationality,
                full_name,
                date_of_birth,
                gender,
                address: None,
            })
        }
        (Some(_), Some(_)) => Err(invalid(
            "give either `qr` (CCCD card) or `passport`, not both",
        )),
        (None, None) => Err(invalid(
            "the guest is missing: give `qr` (the CCCD card's QR payload) or `passport`",
        )),
    }
}

/// The local date at `now_ms`, `utc_offset_hours` east of UTC.
pub fn local_date(now_ms: i64, utc_offset_hours: i8) -> Date {
    let off = UtcOffset::from_hms(utc_offset_hours, 0, 0).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from_unix_timestamp_nanos(now_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(off)
        .date()
}

/// First instant (ms) of the local day containing `t_ms`.
pub fn local_day_start(t_ms: i64, utc_offset_hours: i8) -> i64 {
    let off = utc_offset_hours as i64 * HOUR_MS;
    (t_ms + off).div_euclid(DAY_MS) * DAY_MS - off
}

/// Trims a free-text field; refuses empty (when `required`), control characters and over-long text.
fn clean_text(
    field: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, LodgingError> {
    let v = normalize_name(value);
    if required && v.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(invalid(format!("{field} is longer than {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(format!("{field} contains a control character")));
    }
    Ok(v)
}

pub async fn create_establishment(
    db: &Db,
    audit: &AuditLog,
    new: &NewEstablishment,
    actor: &str,
    now: i64,
) -> Result<Establishment, LodgingError> {
    let name = clean_text("name", &new.name, 200, true)?;
    let address = clean_text("address", &new.address, 500, true)?;
    let site = new.site.trim().to_string();
    if site.is_empty()
        || site.len() > 128
        || site
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '+' | '#'))
    {
        return Err(invalid(
            "site must be a Checkpoint site id: 1-128 characters without spaces, '/', '+' or '#'",
        ));
    }
    let e = Establishment {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        kind: new.kind,
        site,
        address,
        created_ms: now,
    };
    sqlx::query(
        "INSERT INTO lodging_establishments (id, name, kind, site, address, created_by, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&e.id)
    .bind(&e.name)
    .bind(e.kind.as_str())
    .bind(&e.site)
    .bind(&e.address)
    .bind(actor)
    .bind(now)
    .execute(&db.pool)
    .await?;
    audit
        .append(
            actor,
            "lodging.establishment_create",
            &e.id,
            &serde_json::json!({"kind": e.kind.as_str(), "site": e.site}).to_string(),
        )
        .await?;
    Ok(e)
}

/// Every establishment, by site and name.
pub async fn establishments(db: &Db) -> Result<Vec<Establishment>, LodgingError> {
    Ok(sqlx::query_as(
        "SELECT id, name, kind, site, address, created_ms FROM lodging_establishments \
         ORDER BY site, name, id",
    )
    .fetch_all(&db.pool)
    .await?)
}

pub async fn establishment(db: &Db, id: &str) -> Result<Option<Establishment>, LodgingError> {
    Ok(sqlx::query_as(
        "SELECT id, name, kind, site, address, created_ms FROM lodging_establishments WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?)
}

/// Links a lodging_staff user to an establishment (moving them if they were linked elsewhere).
pub async fn link_staff(
    db: &Db,
    audit: &AuditLog,
    establishment_id: &str,
    username: &str,
    actor: &str,
    now: i64,
) -> Result<StaffLink, LodgingError> {
    if establishment(db, establishment_id).await?.is_none() {
        return Err(LodgingError::NotFound(format!(
            "no establishment {establishment_id}"
        )));
    }
    let username = username.trim();
    let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?;
    let Some(role) = role else {
        return Err(invalid(format!("no user {username:?}")));
    };
    if role != "lodging_staff" {
        return Err(invalid(format!(
            "user {username} has the role {role}; only lodging_staff users work for an establishment"
        )));
    }
    sqlx::query(
        "INSERT INTO lodging_staff (username, establishment_id, linked_by, linked_ms) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO UPDATE SET \
         establishment_id = excluded.establishment_id, linked_by = excluded.linked_by, \
         linked_ms = excluded.linked_ms",
    )
    .bind(username)
    .bind(establishment_id)
    .bind(actor)
    .bind(now)
    .execute(&db.pool)
    .await?;
    audit
        .append(
            actor,
            "lodging.staff_link",
            username,
            &serde_json::json!({"establishment": establishment_id}).to_string(),
        )
        .await?;
    Ok(StaffLink {
        username: username.to_string(),
        establishment_id: establishment_id.to_string(),
        linked_ms: now,
    })
}

/// The establishment a lodging_staff user acts for, if linked.
pub async fn staff_establishment(db: &Db, username: &str) -> Result<Option<String>, LodgingError> {
    Ok(
        sqlx::query_scalar("SELECT establishment_id FROM lodging_staff WHERE username = $1")
            .bind(username)
            .fetch_optional(&db.pool)
            .await?,
    )
}

#[cfg(test)]
mod tests;
