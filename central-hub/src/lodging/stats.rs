//! The tourism office's daily statistics: check-ins by nationality and overnight guests, per site and local
//! day.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{invalid, local_date, local_day_start, LodgingError, DAY_MS, HOUR_MS, MAX_STATS_DAYS};
use crate::db::Db;

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
    // (site, nationality, check-in, check-out)
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
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
    for (site, nationality, checkin, checkout) in rows {
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
