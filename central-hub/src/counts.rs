//! People counts from the agents' `count` events: entries and exits per line per hour and per local day
//! (`counts`), and each line's running totals as its agent last reported them (`line_state`). Owns both.
//! Buckets are marked with the periods their camera was analysed too slowly to count reliably (kept by
//! `agents`).

use checkpoint_protocol::{Count, Envelope};
use serde::Serialize;
use sqlx::{Any, Transaction};

use crate::agents::DegradedPeriod;
use crate::db::{json_rows, ms, Backend, Col, Db, DbError};

/// Start of the hour and of the local day containing `t_ms`.
pub fn buckets(t_ms: i64, utc_offset_hours: i8) -> (i64, i64) {
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;
    let hour = t_ms.div_euclid(HOUR) * HOUR;
    let off = utc_offset_hours as i64 * HOUR;
    let day = (t_ms + off).div_euclid(DAY) * DAY - off;
    (hour, day)
}

/// Adds a batch's count intervals to their hours and days (summed in SQL, one statement), and takes each
/// line's running totals from its newest report when that is newer than what is stored.
pub(crate) async fn add_many(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    reports: &[(&Envelope, &Count)],
    utc_offset_hours: i8,
) -> Result<(), DbError> {
    if reports.is_empty() {
        return Ok(());
    }
    add_to_buckets(tx, backend, reports, utc_offset_hours).await?;
    take_line_totals(tx, backend, reports).await
}

async fn add_to_buckets(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    reports: &[(&Envelope, &Count)],
    utc_offset_hours: i8,
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct Row<'a> {
        site: &'a str,
        camera: &'a str,
        line: &'a str,
        bucket: &'static str,
        bucket_start_ms: i64,
        entries: i64,
        exits: i64,
    }
    let mut rows = Vec::with_capacity(reports.len() * 2);
    for (e, c) in reports {
        let (hour, day) = buckets(ms(c.interval_start), utc_offset_hours);
        for (bucket, start) in [("hour", hour), ("day", day)] {
            rows.push(Row {
                site: &e.site,
                camera: &c.camera,
                line: &c.line,
                bucket,
                bucket_start_ms: start,
                entries: c.entries as i64,
                exits: c.exits as i64,
            });
        }
    }
    use Col::{Int, Text};
    let source = json_rows(
        backend,
        1,
        &[
            ("site", Text),
            ("camera", Text),
            ("line", Text),
            ("bucket", Text),
            ("bucket_start_ms", Int),
            ("entries", Int),
            ("exits", Int),
        ],
    );
    // Built from constants only; the rows travel as the bound parameter. Grouped, so each bucket is
    // written once per batch; ordered, so hubs writing the same buckets lock them in the same order.
    let sql = format!(
        "INSERT INTO counts (site, camera, line, bucket, bucket_start_ms, entries, exits) \
         SELECT site, camera, line, bucket, bucket_start_ms, SUM(entries), SUM(exits) \
         FROM ({source}) AS r WHERE true \
         GROUP BY site, camera, line, bucket, bucket_start_ms \
         ORDER BY site, camera, line, bucket, bucket_start_ms \
         ON CONFLICT (site, camera, line, bucket, bucket_start_ms) DO UPDATE SET \
         entries = counts.entries + excluded.entries, exits = counts.exits + excluded.exits"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::json_param(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn take_line_totals(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    reports: &[(&Envelope, &Count)],
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct Row<'a> {
        site: &'a str,
        agent: &'a str,
        camera: &'a str,
        line: &'a str,
        total_entries: i64,
        total_exits: i64,
        occupancy: i64,
        ts_ms: i64,
    }
    // The newest report per line; of two equally new, the later in the batch (as applied one by one).
    let mut newest: std::collections::BTreeMap<(&str, &str, &str, &str), Row> = Default::default();
    for (e, c) in reports {
        let row = Row {
            site: &e.site,
            agent: &e.agent,
            camera: &c.camera,
            line: &c.line,
            total_entries: c.total_entries as i64,
            total_exits: c.total_exits as i64,
            occupancy: c.occupancy,
            ts_ms: ms(c.interval_end),
        };
        let key = (row.site, row.agent, row.camera, row.line);
        match newest.get(&key) {
            Some(kept) if kept.ts_ms > row.ts_ms => {}
            _ => {
                newest.insert(key, row);
            }
        }
    }
    let rows: Vec<Row> = newest.into_values().collect();
    use Col::{Int, Text};
    let source = json_rows(
        backend,
        1,
        &[
            ("site", Text),
            ("agent", Text),
            ("camera", Text),
            ("line", Text),
            ("total_entries", Int),
            ("total_exits", Int),
            ("occupancy", Int),
            ("ts_ms", Int),
        ],
    );
    // Built from constants only.
    let sql = format!(
        "INSERT INTO line_state (site, agent, camera, line, total_entries, total_exits, occupancy, ts_ms) \
         SELECT site, agent, camera, line, total_entries, total_exits, occupancy, ts_ms \
         FROM ({source}) AS r WHERE true \
         ON CONFLICT (site, agent, camera, line) DO UPDATE SET total_entries = excluded.total_entries, \
         total_exits = excluded.total_exits, occupancy = excluded.occupancy, ts_ms = excluded.ts_ms \
         WHERE line_state.ts_ms <= excluded.ts_ms"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::json_param(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A `counts` row; the degraded fields are not stored but marked from the camera's degraded periods.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct CountRow {
    pub camera: String,
    pub line: String,
    pub bucket_start_ms: i64,
    pub entries: i64,
    pub exits: i64,
    /// The camera was analysed below the rate counting needs for part of the bucket: these counts are
    /// unreliable (too low, as a rule).
    #[sqlx(skip)]
    pub degraded: bool,
    /// How long, in the bucket, the camera was degraded (ms).
    #[sqlx(skip)]
    pub degraded_ms: i64,
    /// The lowest effective analysis rate reported while it was.
    #[sqlx(skip)]
    pub degraded_min_fps: Option<f64>,
}

/// Marks `row` with the degraded periods of its camera that overlap its bucket [start, start + len).
fn mark_degraded(row: &mut CountRow, len_ms: i64, periods: &[DegradedPeriod], now_ms: i64) {
    let (start, end) = (row.bucket_start_ms, row.bucket_start_ms + len_ms);
    for p in periods.iter().filter(|p| p.camera == row.camera) {
        let p_end = p.end_ms.unwrap_or(now_ms).max(p.start_ms);
        // A period that began and ended in the same instant still touched the bucket it lies in.
        let touches = if p_end > p.start_ms {
            p.start_ms < end && p_end > start
        } else {
            (start..end).contains(&p.start_ms)
        };
        if !touches {
            continue;
        }
        let overlap = p_end.min(end) - p.start_ms.max(start);
        row.degraded = true;
        row.degraded_ms = (row.degraded_ms + overlap).min(len_ms);
        if let Some(f) = p.min_fps {
            row.degraded_min_fps = Some(row.degraded_min_fps.map_or(f, |m: f64| m.min(f)));
        }
    }
}

/// Entries and exits of `site` per line per `bucket` (`hour` or `day`) starting in [from, to), each marked
/// with the degraded periods of its camera.
pub async fn per_bucket(
    db: &Db,
    site: &str,
    bucket: &str,
    from: i64,
    to: i64,
) -> Result<Vec<CountRow>, DbError> {
    let mut rows: Vec<CountRow> = sqlx::query_as(
        "SELECT camera, line, bucket_start_ms, entries, exits FROM counts \
         WHERE site = $1 AND bucket = $2 AND bucket_start_ms >= $3 AND bucket_start_ms < $4 \
         ORDER BY bucket_start_ms, camera, line",
    )
    .bind(site)
    .bind(bucket)
    .bind(from)
    .bind(to)
    .fetch_all(&db.pool)
    .await?;
    let len_ms = if bucket == "day" {
        86_400_000
    } else {
        3_600_000
    };
    let periods =
        crate::agents::degraded_periods(db, site, from, to.saturating_add(len_ms)).await?;
    let now = crate::db::now_ms();
    for row in &mut rows {
        mark_degraded(row, len_ms, &periods, now);
    }
    Ok(rows)
}

/// A `line_state` row; the camera's rates come from `agents`.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LineNow {
    pub agent: String,
    pub camera: String,
    pub line: String,
    pub total_entries: i64,
    pub total_exits: i64,
    /// Site occupancy as the agent last reported it.
    pub occupancy: i64,
    pub ts_ms: i64,
    /// The line's camera is analysed below the rate counting needs now: its counts are unreliable.
    #[sqlx(skip)]
    pub degraded: bool,
    /// The camera's effective analysis rate and the rate its counts need, as last reported.
    #[sqlx(skip)]
    pub effective_fps: Option<f64>,
    #[sqlx(skip)]
    pub reliable_fps: Option<f64>,
}

/// Each line's totals of `site` now (since each agent started), with its camera's rates.
pub async fn lines(db: &Db, site: &str) -> Result<Vec<LineNow>, DbError> {
    let mut lines: Vec<LineNow> = sqlx::query_as(
        "SELECT agent, camera, line, total_entries, total_exits, occupancy, ts_ms FROM line_state \
         WHERE site = $1 ORDER BY agent, camera, line",
    )
    .bind(site)
    .fetch_all(&db.pool)
    .await?;
    let cameras = crate::agents::camera_rates(db, site).await?;
    for l in &mut lines {
        // A line whose camera never reported has no rates and is not degraded.
        if let Some(c) = cameras
            .iter()
            .find(|c| c.agent == l.agent && c.camera == l.camera)
        {
            l.degraded = c.degraded == 1;
            l.effective_fps = c.effective_fps;
            l.reliable_fps = c.reliable_fps;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn buckets_follow_local_days() {
        // 2026-11-24 18:30 UTC is 01:30 on the 25th in Vietnam (UTC+7).
        let t = ms(datetime!(2026-11-24 18:30 UTC));
        let (hour, day) = buckets(t, 7);
        assert_eq!(hour, ms(datetime!(2026-11-24 18:00 UTC)));
        assert_eq!(day, ms(datetime!(2026-11-24 17:00 UTC)));
        let (_, utc_day) = buckets(t, 0);
        assert_eq!(utc_day, ms(datetime!(2026-11-24 00:00 UTC)));
    }

    fn row(camera: &str, start: i64) -> CountRow {
        CountRow {
            camera: camera.into(),
            line: "l".into(),
            bucket_start_ms: start,
            entries: 3,
            exits: 1,
            degraded: false,
            degraded_ms: 0,
            degraded_min_fps: None,
        }
    }

    fn period(camera: &str, start_ms: i64, end_ms: Option<i64>, min_fps: f64) -> DegradedPeriod {
        DegradedPeriod {
            camera: camera.into(),
            start_ms,
            end_ms,
            min_fps: Some(min_fps).filter(|f| *f >= 0.0),
        }
    }

    #[test]
    fn buckets_are_marked_by_the_periods_of_their_own_camera_that_overlap_them() {
        const H: i64 = 3_600_000;
        let periods = [
            // 10 minutes at the end of hour 0 and into hour 1.
            period("gate", 50 * 60_000, Some(H + 5 * 60_000), 1.4),
            // Another camera, all of hour 1.
            period("hall", H, Some(2 * H), 0.9),
            // Open since the middle of hour 3 (now: 3.75 h).
            period("gate", 3 * H + H / 2, None, -1.0),
        ];
        let now = 3 * H + 3 * H / 4;
        let marked = |start: i64| {
            let mut r = row("gate", start);
            mark_degraded(&mut r, H, &periods, now);
            (r.degraded, r.degraded_ms, r.degraded_min_fps)
        };
        assert_eq!(marked(0), (true, 10 * 60_000, Some(1.4)));
        assert_eq!(marked(H), (true, 5 * 60_000, Some(1.4)));
        assert_eq!(marked(2 * H), (false, 0, None));
        assert_eq!(marked(3 * H), (true, H / 4, None));
        // A period ending exactly where a bucket starts does not touch it.
        let mut r = row("hall", 2 * H);
        mark_degraded(&mut r, H, &periods, now);
        assert!(!r.degraded);
    }
}
