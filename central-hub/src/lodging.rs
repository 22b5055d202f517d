//! Lodging registration (ASM, "lưu trú"): hotels, homestays, overnight boats and long-distance buses declare
//! their guests to the police. Desk staff check guests in from the CCCD card's QR code (citizens) or a passport
//! (foreign guests) and check them out; police search the stays; the tourism office reads daily statistics.
//!
//! A citizen's check-in is compared with the active wanted entries: a hit becomes a candidate alert (source
//! `lodging`) for operators to review, and nothing in the answer to the desk differs, so the staff cannot tip
//! the guest off. Every check-in, check-out and search is audited with ids, never with the guest's data.
//!
//! The HTTP layer (`api::lodging`) checks roles and which establishment a staff account belongs to; the
//! functions here take already-authorised requests.

use std::collections::BTreeMap;

use checkpoint_identity::{
    fold_for_search, normalize_name, parse_qr, validate_name, Cccd, Gender, Passport,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::{Date, OffsetDateTime, UtcOffset};

use crate::audit::AuditLog;
use crate::db::{opt_text, Db, DbError};

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
    /// The state forbids it: already checked in, already checked out (HTTP 409).
    #[error("{0}")]
    Conflict(String),
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Establishment {
    pub id: String,
    pub name: String,
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

/// A stay (for a bus: a journey), with its establishment's name and site.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stay {
    pub id: String,
    pub establishment_id: String,
    pub establishment_name: String,
    pub site: String,
    pub guest_kind: GuestKind,
    pub cccd: Option<String>,
    pub passport_number: Option<String>,
    /// ISO 3166-1 alpha-3; VNM for citizens.
    pub nationality: String,
    pub full_name: String,
    /// YYYY-MM-DD.
    pub date_of_birth: String,
    /// `male` or `female`.
    pub gender: String,
    pub address: Option<String>,
    pub room: Option<String>,
    pub checkin_ms: i64,
    /// None while the guest is checked in.
    pub checkout_ms: Option<i64>,
    pub created_by: String,
    pub checked_out_by: Option<String>,
}

/// The stay columns, as a macro so queries stay literal strings (sqlx refuses SQL built at run time).
macro_rules! stay_select {
    () => {
        "SELECT s.id, s.establishment_id, e.name AS establishment_name, e.site AS site, s.guest_kind, \
         s.cccd, s.passport_number, s.nationality, s.full_name, s.date_of_birth, s.gender, s.address, \
         s.room, s.checkin_ms, s.checkout_ms, s.created_by, s.checked_out_by \
         FROM lodging_stays s JOIN lodging_establishments e ON e.id = s.establishment_id "
    };
}

fn stay_row(r: &sqlx::any::AnyRow) -> Result<Stay, sqlx::Error> {
    let kind: String = r.try_get("guest_kind")?;
    Ok(Stay {
        id: r.try_get("id")?,
        establishment_id: r.try_get("establishment_id")?,
        establishment_name: r.try_get("establishment_name")?,
        site: r.try_get("site")?,
        guest_kind: if kind == "citizen" {
            GuestKind::Citizen
        } else {
            GuestKind::Foreign
        },
        cccd: opt_text(r, "cccd"),
        passport_number: opt_text(r, "passport_number"),
        nationality: r.try_get("nationality")?,
        full_name: r.try_get("full_name")?,
        date_of_birth: r.try_get("date_of_birth")?,
        gender: r.try_get("gender")?,
        address: opt_text(r, "address"),
        room: opt_text(r, "room"),
        checkin_ms: r.try_get("checkin_ms")?,
        checkout_ms: r.try_get::<Option<i64>, _>("checkout_ms").ok().flatten(),
        created_by: r.try_get("created_by")?,
        checked_out_by: opt_text(r, "checked_out_by"),
    })
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

fn establishment_row(r: &sqlx::any::AnyRow) -> Result<Establishment, sqlx::Error> {
    let kind: String = r.try_get("kind")?;
    Ok(Establishment {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        kind: EstablishmentKind::parse(&kind).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown establishment kind {kind:?}").into())
        })?,
        site: r.try_get("site")?,
        address: r.try_get("address")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// Every establishment, by site and name.
pub async fn establishments(db: &Db) -> Result<Vec<Establishment>, LodgingError> {
    let rows = sqlx::query(
        "SELECT id, name, kind, site, address, created_ms FROM lodging_establishments \
         ORDER BY site, name, id",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(establishment_row)
        .collect::<Result<_, _>>()?)
}

pub async fn establishment(db: &Db, id: &str) -> Result<Option<Establishment>, LodgingError> {
    let row = sqlx::query(
        "SELECT id, name, kind, site, address, created_ms FROM lodging_establishments WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.as_ref().map(establishment_row).transpose()?)
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
    let row = sqlx::query("SELECT role FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Err(invalid(format!("no user {username:?}")));
    };
    let role: String = row.try_get("role")?;
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
    let row = sqlx::query("SELECT establishment_id FROM lodging_staff WHERE username = $1")
        .bind(username)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("establishment_id"))
        .transpose()?)
}

/// Checks a guest in at `est`. For a citizen, any active wanted entry for the CCCD becomes a candidate alert
/// in the same transaction; the returned stay is the same either way.
pub async fn check_in(
    db: &Db,
    audit: &AuditLog,
    est: &Establishment,
    guest: &Guest,
    room: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<Stay, LodgingError> {
    let room = match room {
        Some(r) => Some(clean_text("room", r, 32, false)?).filter(|r| !r.is_empty()),
        None => None,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let stay = Stay {
        id: id.clone(),
        establishment_id: est.id.clone(),
        establishment_name: est.name.clone(),
        site: est.site.clone(),
        guest_kind: guest.kind,
        cccd: guest.cccd.clone(),
        passport_number: guest.passport_number.clone(),
        nationality: guest.nationality.clone(),
        full_name: guest.full_name.clone(),
        date_of_birth: guest.date_of_birth.to_string(),
        gender: guest.gender.to_string(),
        address: guest.address.clone(),
        room,
        checkin_ms: now,
        checkout_ms: None,
        created_by: actor.to_string(),
        checked_out_by: None,
    };
    let mut tx = db.pool.begin().await?;
    // The partial unique index on (establishment_id, guest_key) of active stays makes a second one a no-op.
    let inserted = sqlx::query(
        "INSERT INTO lodging_stays (id, establishment_id, guest_kind, guest_key, cccd, passport_number, \
         nationality, full_name, name_folded, date_of_birth, gender, address, room, checkin_ms, \
         checkout_ms, created_by, checked_out_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, $15, NULL) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&stay.id)
    .bind(&stay.establishment_id)
    .bind(guest.kind.as_str())
    .bind(guest.key())
    .bind(stay.cccd.clone())
    .bind(stay.passport_number.clone())
    .bind(&stay.nationality)
    .bind(&stay.full_name)
    .bind(fold_for_search(&stay.full_name))
    .bind(&stay.date_of_birth)
    .bind(&stay.gender)
    .bind(stay.address.clone())
    .bind(stay.room.clone())
    .bind(now)
    .bind(actor)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(LodgingError::Conflict(
            "this guest is already checked in here; check them out first".into(),
        ));
    }
    let mut hits = Vec::new();
    if let Some(cccd) = &guest.cccd {
        let entries = sqlx::query(
            "SELECT id FROM watchlist_entries WHERE list = 'wanted' AND person_cccd = $1 \
             AND withdrawn_ms IS NULL AND expires_ms > $2 ORDER BY id",
        )
        .bind(cccd)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for e in &entries {
            let entry_id: String = e.try_get("id")?;
            let alert_id = uuid::Uuid::now_v7().to_string();
            sqlx::query(
                "INSERT INTO alerts (id, site, agent, camera, track_id, list, entry_id, similarity, \
                 threshold, votes, faces_used, watchlist_version, ts_ms, stream_time_s, models, snapshot, \
                 status, created_ms, source, detail) \
                 VALUES ($1, $2, '', $3, 0, 'wanted', $4, $5, $6, 0, 0, 0, $7, $8, '[]', NULL, \
                 'candidate', $9, 'lodging', $10)",
            )
            .bind(&alert_id)
            .bind(&est.site)
            .bind(&est.id)
            .bind(&entry_id)
            .bind(1.0f64)
            .bind(1.0f64)
            .bind(now)
            .bind(0.0f64)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            hits.push((alert_id, entry_id));
        }
    }
    tx.commit().await?;
    audit
        .append(
            actor,
            "lodging.checkin",
            &id,
            &serde_json::json!({"establishment": est.id, "guest_kind": guest.kind.as_str()})
                .to_string(),
        )
        .await?;
    for (alert_id, entry_id) in hits {
        tracing::warn!(alert = %alert_id, "lodging check-in of a wanted person: candidate alert raised");
        // The alert is stored; a failure to audit it must not change what the desk sees (no tipping-off).
        if let Err(e) = audit
            .append(
                "system",
                "lodging.wanted_hit",
                &alert_id,
                &serde_json::json!({"stay": id, "entry": entry_id}).to_string(),
            )
            .await
        {
            tracing::error!(error = %e, alert = %alert_id, "auditing a lodging wanted hit failed");
        }
    }
    Ok(stay)
}

pub async fn stay(db: &Db, id: &str) -> Result<Option<Stay>, LodgingError> {
    let row = sqlx::query(concat!(stay_select!(), "WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.as_ref().map(stay_row).transpose()?)
}

/// Checks a guest out. 404 when there is no such stay, 409 when it already ended.
pub async fn check_out(
    db: &Db,
    audit: &AuditLog,
    stay_id: &str,
    actor: &str,
    now: i64,
) -> Result<Stay, LodgingError> {
    // Never before the check-in, whatever the clocks say.
    let done = sqlx::query(
        "UPDATE lodging_stays SET checkout_ms = CASE WHEN checkin_ms > $1 THEN checkin_ms ELSE $1 END, \
         checked_out_by = $2 WHERE id = $3 AND checkout_ms IS NULL",
    )
    .bind(now)
    .bind(actor)
    .bind(stay_id)
    .execute(&db.pool)
    .await?
    .rows_affected();
    let Some(s) = stay(db, stay_id).await? else {
        return Err(LodgingError::NotFound(format!("no stay {stay_id}")));
    };
    if done == 0 {
        return Err(LodgingError::Conflict(format!(
            "this guest was already checked out (at {} ms)",
            s.checkout_ms.unwrap_or_default()
        )));
    }
    audit
        .append(
            actor,
            "lodging.checkout",
            stay_id,
            &serde_json::json!({"establishment": s.establishment_id}).to_string(),
        )
        .await?;
    Ok(s)
}

/// Guests checked in now at an establishment, oldest check-in first.
pub async fn current_guests(db: &Db, establishment_id: &str) -> Result<Vec<Stay>, LodgingError> {
    let rows = sqlx::query(concat!(
        stay_select!(),
        "WHERE s.establishment_id = $1 AND s.checkout_ms IS NULL ORDER BY s.checkin_ms, s.id"
    ))
    .bind(establishment_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(stay_row).collect::<Result<_, _>>()?)
}

/// A police search of the stays. At least one of `cccd`, `passport`, `name`, `establishment` is required.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StaySearch {
    /// Exact CCCD number (12 digits).
    pub cccd: Option<String>,
    /// Exact passport number (any nationality).
    pub passport: Option<String>,
    /// Part of the full name, with or without diacritics ("nguyen van an" finds "Nguyễn Văn An").
    pub name: Option<String>,
    /// Establishment id.
    pub establishment: Option<String>,
    /// Check-ins from this instant (ms since the epoch), inclusive.
    pub from_ms: Option<i64>,
    /// Check-ins before this instant, exclusive.
    pub to_ms: Option<i64>,
    /// At most this many stays, newest check-in first (default and maximum 500).
    pub limit: Option<i64>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Runs a search and audits it (`lodging.search`, with the criteria and the number of results).
pub async fn search(
    db: &Db,
    audit: &AuditLog,
    q: &StaySearch,
    actor: &str,
) -> Result<Vec<Stay>, LodgingError> {
    let cccd = match non_empty(&q.cccd) {
        Some(c) => Cccd::parse(c)
            .map_err(|e| invalid(e.to_string()))?
            .as_str()
            .to_string(),
        None => String::new(),
    };
    let passport = non_empty(&q.passport)
        .map(str::to_ascii_uppercase)
        .unwrap_or_default();
    if passport.len() > 20 {
        return Err(invalid("passport number is longer than 20 characters"));
    }
    let name = match non_empty(&q.name) {
        Some(n) => {
            let folded = fold_for_search(n);
            if folded.chars().count() > 200 {
                return Err(invalid("name is longer than 200 characters"));
            }
            folded
        }
        None => String::new(),
    };
    let establishment = non_empty(&q.establishment).unwrap_or("").to_string();
    if cccd.is_empty() && passport.is_empty() && name.is_empty() && establishment.is_empty() {
        return Err(invalid(
            "give at least one of cccd, passport, name or establishment",
        ));
    }
    let from = q.from_ms.unwrap_or(i64::MIN);
    let to = q.to_ms.unwrap_or(i64::MAX);
    if from > to {
        return Err(invalid("from_ms is after to_ms"));
    }
    let pattern = format!(
        "%{}%",
        name.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let limit = q.limit.unwrap_or(SEARCH_LIMIT).clamp(1, SEARCH_LIMIT);
    let rows = sqlx::query(concat!(
        stay_select!(),
        "WHERE ($1 = '' OR s.cccd = $1) AND ($2 = '' OR s.passport_number = $2) \
         AND ($3 = '' OR s.name_folded LIKE $4 ESCAPE '\\') AND ($5 = '' OR s.establishment_id = $5) \
         AND s.checkin_ms >= $6 AND s.checkin_ms < $7 ORDER BY s.checkin_ms DESC, s.id LIMIT $8"
    ))
    .bind(&cccd)
    .bind(&passport)
    .bind(&name)
    .bind(&pattern)
    .bind(&establishment)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let out: Vec<Stay> = rows.iter().map(stay_row).collect::<Result<_, _>>()?;
    let mut detail = serde_json::Map::new();
    for (k, v) in [
        ("cccd", &cccd),
        ("passport", &passport),
        ("name", &name),
        ("establishment", &establishment),
    ] {
        if !v.is_empty() {
            detail.insert(k.into(), v.as_str().into());
        }
    }
    if let Some(f) = q.from_ms {
        detail.insert("from_ms".into(), f.into());
    }
    if let Some(t) = q.to_ms {
        detail.insert("to_ms".into(), t.into());
    }
    detail.insert("results".into(), out.len().into());
    audit
        .append(
            actor,
            "lodging.search",
            "",
            &serde_json::Value::Object(detail).to_string(),
        )
        .await?;
    Ok(out)
}

/// Guests of one site on one local day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DayStats {
    pub site: String,
    /// Local date, YYYY-MM-DD.
    pub day: String,
    /// First instant of that local day, ms since the epoch.
    pub day_start_ms: i64,
    /// Check-ins (bus boardings) that day.
    pub checkins: i64,
    /// Check-ins of Vietnamese nationals.
    pub domestic: i64,
    /// Check-ins of foreign nationals.
    pub foreign: i64,
    /// Guests checked in at the end of that day (local midnight): they stayed the night. For tonight, the
    /// guests checked in now.
    pub overnight: i64,
}

/// Statistics per site and local day over the local days that `[from_ms, to_ms)` touches. Days without any
/// guest are left out.
pub async fn stats(
    db: &Db,
    site: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    utc_offset_hours: i8,
    now: i64,
) -> Result<Vec<DayStats>, LodgingError> {
    if from_ms >= to_ms {
        return Err(invalid("from_ms must be before to_ms"));
    }
    let first = local_day_start(from_ms, utc_offset_hours);
    let end = local_day_start(to_ms - 1, utc_offset_hours) + DAY_MS;
    if (end - first) / DAY_MS > MAX_STATS_DAYS {
        return Err(invalid(format!(
            "at most {MAX_STATS_DAYS} days of statistics at a time"
        )));
    }
    // Midnights after tonight have not happened: no overnight guests counted there.
    let last_midnight = end.min(local_day_start(now, utc_offset_hours) + DAY_MS);
    let rows = sqlx::query(
        "SELECT e.site AS site, s.nationality, s.checkin_ms, s.checkout_ms FROM lodging_stays s \
         JOIN lodging_establishments e ON e.id = s.establishment_id \
         WHERE ($1 = '' OR e.site = $1) AND s.checkin_ms < $2 \
         AND (s.checkout_ms IS NULL OR s.checkout_ms > $3)",
    )
    .bind(site.map(str::trim).unwrap_or(""))
    .bind(end)
    .bind(first)
    .fetch_all(&db.pool)
    .await?;
    // (site, day start) -> [checkins, domestic, foreign, overnight]
    let mut days: BTreeMap<(String, i64), [i64; 4]> = BTreeMap::new();
    for r in &rows {
        let site: String = r.try_get("site")?;
        let nationality: String = r.try_get("nationality")?;
        let checkin: i64 = r.try_get("checkin_ms")?;
        let checkout = r.try_get::<Option<i64>, _>("checkout_ms").ok().flatten();
        let day0 = local_day_start(checkin, utc_offset_hours);
        if checkin >= first {
            let c = days.entry((site.clone(), day0)).or_default();
            c[0] += 1;
            c[if nationality == "VNM" { 1 } else { 2 }] += 1;
        }
        // Every midnight in range that the guest was still checked in at.
        let mut midnight = (day0 + DAY_MS).max(first + DAY_MS);
        while midnight <= last_midnight && checkout.is_none_or(|out| out > midnight) {
            days.entry((site.clone(), midnight - DAY_MS)).or_default()[3] += 1;
            midnight += DAY_MS;
        }
    }
    Ok(days
        .into_iter()
        .map(
            |((site, start), [checkins, domestic, foreign, overnight])| DayStats {
                site,
                // Noon of that day is safely inside it whatever the offset.
                day: local_date(start + 12 * HOUR_MS, utc_offset_hours).to_string(),
                day_start_ms: start,
                checkins,
                domestic,
                foreign,
                overnight,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use time::macros::date;

    const AN: &str = "001085012345|123456789|Nguyễn Văn An|02031985|Nam|Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội|15082021\r\n";
    const HA: &str = "079195004321||Trần Thị Thu Hà|17111995|Nữ|12 Nguyễn Huệ, Bến Nghé, Quận 1, TP. Hồ Chí Minh|03042022";
    const TODAY: Date = date!(2025 - 06 - 01);
    /// 2025-06-01 10:00 in Vietnam (UTC+7).
    const T0: i64 = 1_748_746_800_000;

    fn kim() -> PassportGuest {
        PassportGuest {
            number: "m12345678".into(),
            nationality: "KR".into(),
            full_name: "Kim Min-jun".into(),
            date_of_birth: "1990-04-12".into(),
            gender: "male".into(),
        }
    }

    async fn add_user(db: &Db, username: &str, role: &str) {
        sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, active, created_ms) \
             VALUES ($1, $2, $2, 'x', $3, 1, 0)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(username)
        .bind(role)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    async fn audit_actions(db: &Db, action: &str) -> Vec<(String, String, String)> {
        sqlx::query("SELECT actor, target, detail FROM audit_log WHERE action = $1 ORDER BY seq")
            .bind(action)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get("actor").unwrap(),
                    r.try_get("target").unwrap(),
                    r.try_get("detail").unwrap(),
                )
            })
            .collect()
    }

    async fn scenario(db: Db) {
        let audit = AuditLog::with_key(db.clone(), crate::audit::AuditKey::generate().unwrap())
            .await
            .unwrap();
        let hotel = create_establishment(
            &db,
            &audit,
            &NewEstablishment {
                name: "  Khách sạn   Sông Hàn ".into(),
                kind: EstablishmentKind::Hotel,
                site: "da-nang-pier".into(),
                address: "36 Bạch Đằng, Hải Châu, Đà Nẵng".into(),
            },
            "admin",
            T0 - DAY_MS,
        )
        .await
        .unwrap();
        assert_eq!(hotel.name, "Khách sạn Sông Hàn");
        let bus = create_establishment(
            &db,
            &audit,
            &NewEstablishment {
                name: "Xe khách Hoàng Long".into(),
                kind: EstablishmentKind::LongDistanceBus,
                site: "giap-bat".into(),
                address: "Bến xe Giáp Bát, Hà Nội".into(),
            },
            "admin",
            T0 - DAY_MS,
        )
        .await
        .unwrap();
        let bad_site = NewEstablishment {
            name: "X".into(),
            kind: EstablishmentKind::Homestay,
            site: "a/b".into(),
            address: "Hội An".into(),
        };
        assert!(matches!(
            create_establishment(&db, &audit, &bad_site, "admin", T0).await,
            Err(LodgingError::Invalid(_))
        ));
        assert_eq!(
            establishments(&db).await.unwrap(),
            vec![hotel.clone(), bus.clone()]
        );

        // Staff links: only lodging_staff users.
        add_user(&db, "desk.songhan", "lodging_staff").await;
        add_user(&db, "op1", "operator").await;
        link_staff(&db, &audit, &hotel.id, "desk.songhan", "admin", T0)
            .await
            .unwrap();
        assert_eq!(
            staff_establishment(&db, "desk.songhan").await.unwrap(),
            Some(hotel.id.clone())
        );
        let e = link_staff(&db, &audit, &hotel.id, "op1", "admin", T0)
            .await
            .unwrap_err();
        assert!(
            matches!(e, LodgingError::Invalid(ref m) if m.contains("operator")),
            "{e}"
        );
        assert!(matches!(
            link_staff(&db, &audit, &hotel.id, "nobody", "admin", T0).await,
            Err(LodgingError::Invalid(_))
        ));
        assert!(matches!(
            link_staff(&db, &audit, "no-such-id", "desk.songhan", "admin", T0).await,
            Err(LodgingError::NotFound(_))
        ));
        assert_eq!(staff_establishment(&db, "op1").await.unwrap(), None);

        // Check-in by QR.
        let an = parse_guest(Some(AN), None, TODAY).unwrap();
        assert_eq!(an.kind, GuestKind::Citizen);
        let s1 = check_in(&db, &audit, &hotel, &an, Some(" 301 "), "desk.songhan", T0)
            .await
            .unwrap();
        assert_eq!(s1.full_name, "Nguyễn Văn An");
        assert_eq!(s1.cccd.as_deref(), Some("001085012345"));
        assert_eq!(s1.nationality, "VNM");
        assert_eq!(s1.date_of_birth, "1985-03-02");
        assert_eq!(s1.gender, "male");
        assert_eq!(s1.room.as_deref(), Some("301"));
        assert_eq!(stay(&db, &s1.id).await.unwrap().unwrap(), s1);

        // The same guest twice at once: 409; elsewhere (a bus) is fine.
        assert!(matches!(
            check_in(&db, &audit, &hotel, &an, None, "desk.songhan", T0 + 1).await,
            Err(LodgingError::Conflict(_))
        ));
        let on_bus = check_in(&db, &audit, &bus, &an, Some("A12"), "admin", T0 + 2)
            .await
            .unwrap();

        // Check-in by passport.
        let kim_guest = parse_guest(None, Some(&kim()), TODAY).unwrap();
        assert_eq!(kim_guest.kind, GuestKind::Foreign);
        assert_eq!(kim_guest.nationality, "KOR");
        assert_eq!(kim_guest.passport_number.as_deref(), Some("M12345678"));
        let s2 = check_in(
            &db,
            &audit,
            &hotel,
            &kim_guest,
            Some("502"),
            "desk.songhan",
            T0 + HOUR_MS,
        )
        .await
        .unwrap();
        assert_eq!(s2.guest_kind, GuestKind::Foreign);
        assert!(matches!(
            check_in(
                &db,
                &audit,
                &hotel,
                &kim_guest,
                None,
                "desk.songhan",
                T0 + HOUR_MS
            )
            .await,
            Err(LodgingError::Conflict(_))
        ));
        // A Vietnamese passport is a citizen's.
        let vn = PassportGuest {
            number: "C1234567".into(),
            nationality: "VNM".into(),
            full_name: "Lê Minh Tuấn".into(),
            date_of_birth: "1979-12-30".into(),
            gender: "Nam".into(),
        };
        assert_eq!(
            parse_guest(None, Some(&vn), TODAY).unwrap().kind,
            GuestKind::Citizen
        );

        // Bad input says what is wrong.
        let forged = AN.replace("|Nam|", "|Nữ|");
        let e = parse_guest(Some(&forged), None, TODAY).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CCCD number does not match the card: digit 4 says male, record says female"
        );
        assert!(matches!(
            parse_guest(Some("garbage"), None, TODAY),
            Err(LodgingError::Invalid(_))
        ));
        assert!(matches!(
            parse_guest(None, None, TODAY),
            Err(LodgingError::Invalid(_))
        ));
        assert!(matches!(
            parse_guest(Some(AN), Some(&kim()), TODAY),
            Err(LodgingError::Invalid(_))
        ));
        for (field, value, says) in [
            ("number", "M-123", "passport number"),
            ("nationality", "XX", "nationality"),
            ("full_name", "K1m", "full name"),
            ("date_of_birth", "1990-02-30", "date of birth"),
            ("date_of_birth", "2030-01-01", "future"),
            ("gender", "x", "gender"),
        ] {
            let mut p = kim();
            match field {
                "number" => p.number = value.into(),
                "nationality" => p.nationality = value.into(),
                "full_name" => p.full_name = value.into(),
                "date_of_birth" => p.date_of_birth = value.into(),
                _ => p.gender = value.into(),
            }
            let e = parse_guest(None, Some(&p), TODAY).unwrap_err();
            assert!(e.to_string().contains(says), "{field}: {e}");
        }

        // Current guests.
        let now_in = current_guests(&db, &hotel.id).await.unwrap();
        assert_eq!(
            now_in.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            vec![s1.id.as_str(), s2.id.as_str()]
        );

        // Police search by folded name, CCCD, passport; a date range; criteria required.
        let found = search(
            &db,
            &audit,
            &StaySearch {
                name: Some("NGUYEN van an".into()),
                ..Default::default()
            },
            "op1",
        )
        .await
        .unwrap();
        assert_eq!(
            found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            vec![on_bus.id.as_str(), s1.id.as_str()]
        );
        let found = search(
            &db,
            &audit,
            &StaySearch {
                name: Some("văn".into()),
                establishment: Some(hotel.id.clone()),
                ..Default::default()
            },
            "op1",
        )
        .await
        .unwrap();
        assert_eq!(found.len(), 1);
        let by_cccd = StaySearch {
            cccd: Some("001085012345".into()),
            from_ms: Some(T0 + 1),
            ..Default::default()
        };
        assert_eq!(search(&db, &audit, &by_cccd, "op1").await.unwrap().len(), 1);
        let by_passport = StaySearch {
            passport: Some("m12345678".into()),
            ..Default::default()
        };
        assert_eq!(
            search(&db, &audit, &by_passport, "op1").await.unwrap()[0].id,
            s2.id
        );
        // LIKE wildcards typed by the user are literal.
        let wild = StaySearch {
            name: Some("%".into()),
            ..Default::default()
        };
        assert!(search(&db, &audit, &wild, "op1").await.unwrap().is_empty());
        assert!(matches!(
            search(&db, &audit, &StaySearch::default(), "op1").await,
            Err(LodgingError::Invalid(_))
        ));
        let bad = StaySearch {
            cccd: Some("12345".into()),
            ..Default::default()
        };
        assert!(matches!(
            search(&db, &audit, &bad, "op1").await,
            Err(LodgingError::Invalid(_))
        ));
        let searches = audit_actions(&db, "lodging.search").await;
        assert_eq!(searches.len(), 5);
        assert!(
            searches[0].2.contains("\"name\":\"nguyen van an\""),
            "{:?}",
            searches[0]
        );
        assert!(searches[0].2.contains("\"results\":2"), "{:?}", searches[0]);

        // Check-out, twice.
        let out = check_out(&db, &audit, &s1.id, "desk.songhan", T0 + DAY_MS + HOUR_MS)
            .await
            .unwrap();
        assert_eq!(out.checkout_ms, Some(T0 + DAY_MS + HOUR_MS));
        assert_eq!(out.checked_out_by.as_deref(), Some("desk.songhan"));
        assert!(matches!(
            check_out(
                &db,
                &audit,
                &s1.id,
                "desk.songhan",
                T0 + DAY_MS + 2 * HOUR_MS
            )
            .await,
            Err(LodgingError::Conflict(_))
        ));
        assert!(matches!(
            check_out(&db, &audit, "nope", "desk.songhan", T0).await,
            Err(LodgingError::NotFound(_))
        ));
        assert_eq!(current_guests(&db, &hotel.id).await.unwrap().len(), 1);
        // Checked out, the guest can come back.
        let again = check_in(
            &db,
            &audit,
            &hotel,
            &an,
            None,
            "desk.songhan",
            T0 + 2 * DAY_MS,
        )
        .await
        .unwrap();
        assert_ne!(again.id, s1.id);
        assert_eq!(current_guests(&db, &hotel.id).await.unwrap().len(), 2);

        // Statistics: hotel site, 3 local days from 2025-06-01.
        // An: in day 1 10:00, out day 2 11:00 (1 night), back day 3. Kim: in day 1 11:00, still in.
        let st = stats(
            &db,
            Some("da-nang-pier"),
            T0,
            T0 + 2 * DAY_MS + 1,
            7,
            T0 + 2 * DAY_MS + HOUR_MS,
        )
        .await
        .unwrap();
        let day1 = local_day_start(T0, 7);
        assert_eq!(
            st,
            vec![
                DayStats {
                    site: "da-nang-pier".into(),
                    day: "2025-06-01".into(),
                    day_start_ms: day1,
                    checkins: 2,
                    domestic: 1,
                    foreign: 1,
                    overnight: 2,
                },
                DayStats {
                    site: "da-nang-pier".into(),
                    day: "2025-06-02".into(),
                    day_start_ms: day1 + DAY_MS,
                    checkins: 0,
                    domestic: 0,
                    foreign: 0,
                    overnight: 1,
                },
                DayStats {
                    site: "da-nang-pier".into(),
                    day: "2025-06-03".into(),
                    day_start_ms: day1 + 2 * DAY_MS,
                    checkins: 1,
                    domestic: 1,
                    foreign: 0,
                    overnight: 2,
                },
            ]
        );
        // All sites: the bus boarding is counted on its own site.
        let all = stats(&db, None, T0, T0 + 1, 7, T0 + 3 * DAY_MS)
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[1].site.as_str(), all[1].checkins), ("giap-bat", 1));
        assert!(stats(&db, None, T0, T0, 7, T0).await.is_err());
        assert!(stats(&db, None, 0, T0, 7, T0).await.is_err());

        // A wanted citizen: a candidate alert, the same answer to the desk.
        add_wanted(&db, "w-active", "079195004321", T0 + 30 * DAY_MS, None).await;
        add_wanted(&db, "w-expired", "079195004321", T0 - 1, None).await;
        add_wanted(
            &db,
            "w-withdrawn",
            "079195004321",
            T0 + 30 * DAY_MS,
            Some(T0 - 1),
        )
        .await;
        let ha = parse_guest(Some(HA), None, TODAY).unwrap();
        let s3 = check_in(
            &db,
            &audit,
            &hotel,
            &ha,
            Some("207"),
            "desk.songhan",
            T0 + 3 * DAY_MS,
        )
        .await
        .unwrap();
        assert_eq!(s3.full_name, "Trần Thị Thu Hà");
        let alerts = sqlx::query(
            "SELECT site, agent, camera, list, entry_id, similarity, status, source, detail, snapshot \
             FROM alerts",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.try_get::<String, _>("site").unwrap(), "da-nang-pier");
        assert_eq!(a.try_get::<String, _>("agent").unwrap(), "");
        assert_eq!(a.try_get::<String, _>("camera").unwrap(), hotel.id);
        assert_eq!(a.try_get::<String, _>("list").unwrap(), "wanted");
        assert_eq!(a.try_get::<String, _>("entry_id").unwrap(), "w-active");
        assert_eq!(a.try_get::<f64, _>("similarity").unwrap(), 1.0);
        assert_eq!(a.try_get::<String, _>("status").unwrap(), "candidate");
        assert_eq!(a.try_get::<String, _>("source").unwrap(), "lodging");
        assert_eq!(opt_text(a, "detail").as_deref(), Some(s3.id.as_str()));
        assert!(a
            .try_get::<Option<Vec<u8>>, _>("snapshot")
            .unwrap()
            .is_none());
        let hits = audit_actions(&db, "lodging.wanted_hit").await;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].0, "system");
        assert!(hits[0].2.contains(&s3.id) && hits[0].2.contains("w-active"));
        // Nobody else on the list raised anything.
        assert_eq!(
            sqlx::query("SELECT COUNT(*) AS n FROM alerts")
                .fetch_one(&db.pool)
                .await
                .unwrap()
                .try_get::<i64, _>("n")
                .unwrap(),
            1
        );

        // The audit trail: ids and kinds, never names or numbers of guests.
        let checkins = audit_actions(&db, "lodging.checkin").await;
        assert_eq!(checkins.len(), 5);
        assert_eq!(checkins[0].1, s1.id);
        for (_, _, detail) in &checkins {
            assert!(
                !detail.contains("Nguy") && !detail.contains("001085012345"),
                "{detail}"
            );
        }
        assert_eq!(audit_actions(&db, "lodging.checkout").await.len(), 1);
        assert!(audit.verify().await.unwrap().ok);
    }

    async fn add_wanted(db: &Db, id: &str, cccd: &str, expires_ms: i64, withdrawn_ms: Option<i64>) {
        sqlx::query(
            "INSERT INTO watchlist_entries (id, list, person_cccd, label, case_ref, legal_basis, issued_by, \
             expires_ms, sites, case_retention_days, created_by, created_ms, withdrawn_ms) \
             VALUES ($1, 'wanted', $2, 'Đối tượng truy nã', 'QĐ-123/2025', 'Điều 231 BLTTHS', \
             'Công an TP. Đà Nẵng', $3, '*', 365, 'sup1', 0, $4)",
        )
        .bind(id)
        .bind(cccd)
        .bind(expires_ms)
        .bind(withdrawn_ms)
        .execute(&db.pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn lodging_on_sqlite() {
        let (db, _dir) = testing::sqlite().await;
        scenario(db).await;
    }

    #[tokio::test]
    async fn lodging_on_postgres() {
        if let Some(db) = testing::postgres().await {
            scenario(db).await;
        }
    }

    #[test]
    fn local_days_follow_the_offset() {
        // 2025-06-01 23:30 in Vietnam is 16:30 UTC the same day.
        let t = T0 + 13 * HOUR_MS + 30 * 60_000;
        assert_eq!(local_date(t, 7), date!(2025 - 06 - 01));
        assert_eq!(local_date(t + HOUR_MS, 7), date!(2025 - 06 - 02));
        assert_eq!(local_day_start(t, 7), T0 - 10 * HOUR_MS);
        assert_eq!(
            local_day_start(t, 0),
            local_day_start(t, 0) / DAY_MS * DAY_MS
        );
    }
}
