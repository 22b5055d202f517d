//! The effects of a batch's new events, inside the transaction that stores them. The frequent kinds (counts,
//! crossings, camera status) and the agents' health are applied set-based, one statement per table per
//! batch, by the modules owning those tables; the rare kinds (agent and watchlist status, watchlist
//! matches) one by one, in the batch's order.
//!
//! Applying a batch set-based gives the same tables as applying its events one by one: the count rollups
//! add up, the latest line totals and camera states win, and a camera whose batch holds a degraded report
//! (a period opening, going on or closing) is applied report by report.

use checkpoint_protocol::{Envelope, EventKind, WatchlistMatch};
use sqlx::{Any, Transaction};

use super::Checked;
use crate::db::{Backend, DbError};
use crate::{agents, alerts, counts, occupancy, review};

/// The effects of the new events of a batch: rollups, health, alerts.
pub(super) async fn apply_batch(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    new: &[&Checked],
    now: i64,
    utc_offset_hours: i8,
) -> Result<(), DbError> {
    if new.is_empty() {
        return Ok(());
    }
    // Any event proves its agent alive; a stale one comes back online.
    let agents_seen: Vec<(&str, &str)> = new
        .iter()
        .map(|c| (c.env.site.as_str(), c.env.agent.as_str()))
        .collect();
    agents::seen_many(tx, backend, &agents_seen, now).await?;

    let mut count_events = Vec::new();
    let mut crossings = Vec::new();
    let mut cameras = Vec::new();
    let mut one_by_one = Vec::new();
    for c in new {
        match &c.env.event {
            EventKind::Count(cnt) => count_events.push((&c.env, cnt)),
            EventKind::LineCrossing(lc) => crossings.push((&c.env, lc)),
            EventKind::CameraStatus(s) => cameras.push((&c.env, s)),
            _ => one_by_one.push(*c),
        }
    }
    counts::add_many(tx, backend, &count_events, utc_offset_hours).await?;
    occupancy::record_crossings(tx, backend, &crossings).await?;
    agents::camera_statuses(tx, backend, &cameras).await?;
    for c in one_by_one {
        apply_one(tx, c, now).await?;
    }
    Ok(())
}

/// The effects of one event of a kind applied one by one.
async fn apply_one(tx: &mut Transaction<'_, Any>, c: &Checked, now: i64) -> Result<(), DbError> {
    let e = &c.env;
    match &e.event {
        EventKind::AgentStatus(s) => agents::agent_status(tx, e, s).await,
        EventKind::WatchlistStatus(s) => agents::watchlist_status(tx, e, s).await,
        EventKind::WatchlistMatch(m) => watchlist_match(tx, e, m, c.snapshot.as_ref(), now).await,
        // Applied set-based by `apply_batch`.
        EventKind::Count(_) | EventKind::LineCrossing(_) | EventKind::CameraStatus(_) => Ok(()),
    }
}

/// A watchlist match becomes a candidate alert, unless a reviewer dismissed this entry for this very track:
/// then it is recorded, but not as a new candidate.
async fn watchlist_match(
    tx: &mut Transaction<'_, Any>,
    e: &Envelope,
    m: &WatchlistMatch,
    snapshot: Option<&Vec<u8>>,
    now: i64,
) -> Result<(), DbError> {
    let dismissed = review::dismissed_track(tx, e, m, now).await?;
    let status = if dismissed { "suppressed" } else { "candidate" };
    alerts::insert_camera_match(tx, e, m, status, snapshot, now).await
}
