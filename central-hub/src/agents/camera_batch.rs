//! A batch's camera reports, applied set-based where that gives the same tables as one by one
//! (`super::camera_status`).

use checkpoint_protocol::{CameraState, CameraStatus, Envelope};
use serde::Serialize;
use sqlx::{Any, Transaction};

use super::{camera_status, CAMERA_UPSERT};
use crate::db::{json_rows, ms, Backend, Col, DbError};

/// One camera report: its envelope and its status.
type Report<'a> = (&'a Envelope, &'a CameraStatus);

/// The camera reports of a batch, in its order. A camera whose reports are all plain (no degraded period
/// opening or going on) is applied set-based: its last report's state, the batch's reconnects added up, and
/// any open degraded period closed at its first report that closes one; the others report by report
/// (`camera_status`), which keeps the periods' bookkeeping exact.
pub(crate) async fn camera_statuses(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    reports: &[(&Envelope, &CameraStatus)],
) -> Result<(), DbError> {
    use std::collections::BTreeMap;
    let mut by_camera: BTreeMap<(&str, &str, &str), Vec<Report>> = BTreeMap::new();
    for (e, s) in reports {
        by_camera
            .entry((e.site.as_str(), e.agent.as_str(), s.camera.as_str()))
            .or_default()
            .push((e, s));
    }
    let mut plain = Vec::new();
    for reports in by_camera.into_values() {
        if reports.iter().any(|(_, s)| opens_or_extends_degraded(s)) {
            for (e, s) in reports {
                camera_status(tx, e, s).await?;
            }
        } else {
            plain.push(reports);
        }
    }
    upsert_plain_cameras(tx, backend, &plain).await?;
    close_degraded_many(tx, backend, &plain).await
}

/// A report that opens a degraded period or keeps one going.
fn opens_or_extends_degraded(s: &CameraStatus) -> bool {
    s.degraded == Some(true) && s.state == CameraState::Up
}

/// A plain report closes the camera's open degraded period, except a running camera's report from an
/// agent that says nothing about degradation (protocol 1.2).
fn closes_degraded(s: &CameraStatus) -> bool {
    !(s.state == CameraState::Up && s.degraded.is_none())
}

async fn upsert_plain_cameras(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    cameras: &[Vec<(&Envelope, &CameraStatus)>],
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct Row<'a> {
        site: &'a str,
        agent: &'a str,
        camera: &'a str,
        state: &'static str,
        fps: Option<f64>,
        detail: Option<&'a str>,
        reconnects: i64,
        updated_ms: i64,
        effective_fps: Option<f64>,
        sampling_fps: Option<f64>,
        reliable_fps: Option<f64>,
    }
    let rows: Vec<Row> = cameras
        .iter()
        .filter_map(|reports| {
            let (e, s) = reports.last()?;
            Some(Row {
                site: &e.site,
                agent: &e.agent,
                camera: &s.camera,
                state: super::camera_state_name(s.state),
                fps: s.fps,
                detail: s.detail.as_deref(),
                reconnects: reports
                    .iter()
                    .filter(|(_, s)| s.state == CameraState::Reconnecting)
                    .count() as i64,
                updated_ms: ms(e.ts),
                effective_fps: s.effective_fps,
                sampling_fps: s.sampling_fps,
                reliable_fps: s.reliable_fps,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    use Col::{Int, Real, Text};
    let source = json_rows(
        backend,
        1,
        &[
            ("site", Text),
            ("agent", Text),
            ("camera", Text),
            ("state", Text),
            ("fps", Real),
            ("detail", Text),
            ("reconnects", Int),
            ("updated_ms", Int),
            ("effective_fps", Real),
            ("sampling_fps", Real),
            ("reliable_fps", Real),
        ],
    );
    // Built from constants only; the rows travel as the bound parameter. Rows come sorted by camera (the
    // map's order), so hubs lock them in the same order.
    let sql = format!(
        "INSERT INTO cameras (site, agent, camera, state, fps, detail, reconnects, updated_ms, effective_fps, \
         sampling_fps, reliable_fps, degraded, degraded_reason, degraded_since_ms) \
         SELECT site, agent, camera, state, fps, detail, reconnects, updated_ms, effective_fps, \
         sampling_fps, reliable_fps, 0, NULL, NULL FROM ({source}) AS r WHERE true{CAMERA_UPSERT}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::json_param(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Closes the open degraded period of each plain camera whose reports close one, at the first that does
/// (later reports find it closed, as they would one by one).
async fn close_degraded_many(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    cameras: &[Vec<(&Envelope, &CameraStatus)>],
) -> Result<(), DbError> {
    #[derive(Serialize)]
    struct Row<'a> {
        site: &'a str,
        agent: &'a str,
        camera: &'a str,
        at_ms: i64,
    }
    let rows: Vec<Row> = cameras
        .iter()
        .filter_map(|reports| {
            let (e, s) = reports.iter().find(|(_, s)| closes_degraded(s))?;
            Some(Row {
                site: &e.site,
                agent: &e.agent,
                camera: &s.camera,
                at_ms: ms(e.ts),
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let source = json_rows(
        backend,
        1,
        &[
            ("site", Col::Text),
            ("agent", Col::Text),
            ("camera", Col::Text),
            ("at_ms", Col::Int),
        ],
    );
    // Built from constants only.
    let sql = format!(
        "UPDATE camera_degraded SET end_ms = CASE WHEN start_ms > r.at_ms THEN start_ms ELSE r.at_ms END \
         FROM ({source}) AS r WHERE camera_degraded.site = r.site AND camera_degraded.agent = r.agent \
         AND camera_degraded.camera = r.camera AND camera_degraded.end_ms IS NULL"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::json_param(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
