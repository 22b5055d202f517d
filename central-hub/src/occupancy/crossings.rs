//! Crossings of a batch into `occupancy_crossings` and their hours, set-based.

use checkpoint_protocol::{Direction, Envelope, LineCrossing};
use serde::Serialize;
use sqlx::{Any, Transaction};

use super::HOUR;
use crate::db::{json_rows, ms, Backend, DbError};

/// Stores a batch's crossings for occupancy, inside ingest's transaction (ingest passes only events it has
/// not seen: their ids are new), and adds the ones not kept before to their hours. Lines the agent marks as
/// not bounding the site are not kept.
pub async fn record_crossings(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    crossings: &[(&Envelope, &LineCrossing)],
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct Row<'a> {
        event_id: String,
        site: &'a str,
        agent: &'a str,
        camera: &'a str,
        line: &'a str,
        flag_missing: i64,
        direction: &'static str,
        ts_ms: i64,
        hour_ms: i64,
        entries: i64,
        exits: i64,
    }
    let rows: Vec<Row> = crossings
        .iter()
        .filter(|(_, c)| c.site_boundary != Some(false))
        .map(|(env, c)| {
            let ts = ms(env.ts);
            let (direction, entries, exits) = match c.direction {
                Direction::In => ("in", 1, 0),
                Direction::Out => ("out", 0, 1),
            };
            Row {
                event_id: env.id.to_string(),
                site: &env.site,
                agent: &env.agent,
                camera: &c.camera,
                line: &c.line,
                flag_missing: i64::from(c.site_boundary.is_none()),
                direction,
                ts_ms: ts,
                hour_ms: ts.div_euclid(HOUR) * HOUR,
                entries,
                exits,
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    use crate::db::Col::{Int, Text};
    let cols = [
        ("event_id", Text),
        ("site", Text),
        ("agent", Text),
        ("camera", Text),
        ("line", Text),
        ("flag_missing", Int),
        ("direction", Text),
        ("ts_ms", Int),
        ("hour_ms", Int),
        ("entries", Int),
        ("exits", Int),
    ];
    let source = json_rows(backend, 1, &cols);
    // Keyed by the event id as well: once retention has deleted the event's row from `events`, a very late
    // replay of it would look new to ingest, but not here (crossings of a current period are never pruned).
    // Built from constants only; the rows travel as the bound parameter.
    let insert = format!(
        "INSERT INTO occupancy_crossings (event_id, site, agent, camera, line, flag_missing, direction, ts_ms) \
         SELECT event_id, site, agent, camera, line, flag_missing, direction, ts_ms FROM ({source}) AS r \
         WHERE true ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    );
    let kept: std::collections::HashSet<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(insert))
        .bind(crate::db::json_param(&rows)?)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
    let new: Vec<&Row> = rows.iter().filter(|r| kept.contains(&r.event_id)).collect();
    if new.is_empty() {
        return Ok(());
    }
    // Summed in SQL per hour, in key order (hubs writing the same hours lock them in the same order).
    let hours = format!(
        "INSERT INTO occupancy_hours (site, agent, camera, line, flag_missing, hour_ms, entries, exits) \
         SELECT site, agent, camera, line, flag_missing, hour_ms, SUM(entries), SUM(exits) \
         FROM ({source}) AS r WHERE true \
         GROUP BY site, agent, camera, line, flag_missing, hour_ms \
         ORDER BY site, agent, camera, line, flag_missing, hour_ms \
         ON CONFLICT (site, agent, camera, line, flag_missing, hour_ms) DO UPDATE SET \
         entries = occupancy_hours.entries + excluded.entries, exits = occupancy_hours.exits + excluded.exits"
    );
    sqlx::query(sqlx::AssertSqlSafe(hours))
        .bind(crate::db::json_param(&new)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
