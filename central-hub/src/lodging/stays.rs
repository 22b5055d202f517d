//! Stays: check-in (with the wanted-person check), check-out, the guests in now, and the police search.

use checkpoint_identity::{fold_for_search, Cccd};
use serde::{Deserialize, Serialize};

use super::{clean_text, invalid, Establishment, Guest, GuestKind, LodgingError, SEARCH_LIMIT};
use crate::audit::AuditLog;
use crate::db::Db;

/// A stay (for a bus: a journey), with its establishment's name and site.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Stay {
    pub id: String,
    pub establishment_id: String,
    pub establishment_name: String,
    pub site: String,
    #[sqlx(try_from = "String")]
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
    check_in_as(db, audit, est, guest, room, actor, now, None).await
}

/// [`check_in`] under the id the desk's browser gave it (`client_id`, unique among stays), so a check-in the
/// desk queued offline and sends again is stored once (see `super::replay`).
#[allow(clippy::too_many_arguments)]
pub async fn check_in_as(
    db: &Db,
    audit: &AuditLog,
    est: &Establishment,
    guest: &Guest,
    room: Option<&str>,
    actor: &str,
    now: i64,
    client_id: Option<&str>,
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
    let mut tx = db.begin_write().await?;
    // The partial unique index on (establishment_id, guest_key) of active stays makes a second one a no-op.
    let inserted = sqlx::query(
        "INSERT INTO lodging_stays (id, establishment_id, guest_kind, guest_key, cccd, passport_number, \
         nationality, full_name, name_folded, date_of_birth, gender, address, room, checkin_ms, \
         checkout_ms, created_by, checked_out_by, client_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, $15, NULL, $16) \
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
    .bind(client_id.map(str::to_string))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(LodgingError::Conflict {
            code: "already_checked_in",
            message: "this guest is already checked in here; check them out first".into(),
        });
    }
    let mut hits = Vec::new();
    if let Some(cccd) = &guest.cccd {
        for entry_id in crate::watchlists::wanted_for_cccd(&mut tx, cccd, now).await? {
            let alert_id =
                crate::alerts::insert_lodging_hit(&mut tx, &est.site, &est.id, &entry_id, &id, now)
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
            &serde_json::json!({
                "establishment": est.id,
                "guest_kind": guest.kind.as_str(),
                "client_id": client_id,
            })
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
    Ok(sqlx::query_as(concat!(stay_select!(), "WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?)
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
        return Err(LodgingError::Conflict {
            code: "already_checked_out",
            message: format!(
                "this guest was already checked out (at {} ms)",
                s.checkout_ms.unwrap_or_default()
            ),
        });
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
    Ok(sqlx::query_as(concat!(
        stay_select!(),
        "WHERE s.establishment_id = $1 AND s.checkout_ms IS NULL ORDER BY s.checkin_ms, s.id"
    ))
    .bind(establishment_id)
    .fetch_all(&db.pool)
    .await?)
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
    let out: Vec<Stay> = sqlx::query_as(concat!(
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
