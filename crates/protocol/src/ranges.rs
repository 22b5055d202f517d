//! The ranges every numeric field of an event must lie in. JSON numbers and Rust's `u64` allow values no
//! camera can produce; stored as they are, two counts of `i64::MAX` overflowed every sum over their site and
//! `u64::MAX` became -1 in the database. A receiver checks these before it stores anything.

use crate::watchlist::MAX_VERSION;
use crate::{EventKind, MatchEvidence};

/// Crossings of one line in one count interval: thousands per second for an hour is still far below.
pub const MAX_INTERVAL_COUNT: u64 = 10_000_000;
/// Crossings since an agent started, and occupancy either way.
pub const MAX_TOTAL_COUNT: u64 = 1_000_000_000_000;
/// Watchlist sizes, templates and refusal counters.
pub const MAX_LIST_COUNT: u64 = 1_000_000_000;
/// Votes, ranks and faces of one track.
pub const MAX_TRACK_COUNT: u32 = 1_000_000;
/// Track ids are stored as signed 64-bit integers.
pub const MAX_TRACK_ID: u64 = i64::MAX as u64;
/// Frame rates in `camera_status`: far above any camera.
pub const MAX_FPS: f64 = 10_000.0;
/// Seconds into a stream: a century.
pub const MAX_STREAM_TIME_S: f64 = 3.2e9;

fn at_most<T: PartialOrd + std::fmt::Display>(field: &str, v: T, max: T) -> Result<(), String> {
    if v > max {
        return Err(format!("`{field}` = {v} is out of range (at most {max})"));
    }
    Ok(())
}

fn unit_score(field: &str, v: f32) -> Result<(), String> {
    if !v.is_finite() || !(-1.0..=1.0).contains(&v) {
        return Err(format!("`{field}` = {v} is out of range ([-1, 1])"));
    }
    Ok(())
}

fn rate(field: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(r) if !r.is_finite() || !(0.0..=1.0).contains(&r) => {
            Err(format!("`{field}` = {r} is out of range ([0, 1])"))
        }
        _ => Ok(()),
    }
}

/// Frames per second: finite, 0 to [`MAX_FPS`].
fn frame_rate(field: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(f) if !f.is_finite() || !(0.0..=MAX_FPS).contains(&f) => {
            Err(format!("`{field}` = {f} is out of range"))
        }
        _ => Ok(()),
    }
}

fn stream_time(v: f64) -> Result<(), String> {
    if !v.is_finite() || !(0.0..=MAX_STREAM_TIME_S).contains(&v) {
        return Err(format!("`stream_time_s` = {v} is out of range"));
    }
    Ok(())
}

fn evidence(e: &MatchEvidence) -> Result<(), String> {
    unit_score("evidence.face_quality", e.face_quality)?;
    if let Some(s) = e.second_similarity {
        unit_score("evidence.second_similarity", s)?;
    }
    at_most("evidence.list_entries", e.list_entries, MAX_LIST_COUNT)?;
    rate("evidence.target_fpir", e.target_fpir)?;
    rate("evidence.expected_fpir", e.expected_fpir)?;
    rate("evidence.score_fmr", e.score_fmr)
}

impl EventKind {
    /// The first numeric field out of its range, described.
    pub fn check_ranges(&self) -> Result<(), String> {
        match self {
            EventKind::LineCrossing(c) => {
                at_most("track_id", c.track_id, MAX_TRACK_ID)?;
                stream_time(c.stream_time_s)
            }
            EventKind::Count(c) => {
                at_most("entries", c.entries, MAX_INTERVAL_COUNT)?;
                at_most("exits", c.exits, MAX_INTERVAL_COUNT)?;
                at_most("total_entries", c.total_entries, MAX_TOTAL_COUNT)?;
                at_most("total_exits", c.total_exits, MAX_TOTAL_COUNT)?;
                at_most("|occupancy|", c.occupancy.unsigned_abs(), MAX_TOTAL_COUNT)?;
                if c.interval_end < c.interval_start {
                    return Err("`interval_end` is before `interval_start`".into());
                }
                Ok(())
            }
            EventKind::CameraStatus(s) => {
                for (field, v) in [
                    ("fps", s.fps),
                    ("effective_fps", s.effective_fps),
                    ("sampling_fps", s.sampling_fps),
                    ("reliable_fps", s.reliable_fps),
                ] {
                    frame_rate(field, v)?;
                }
                Ok(())
            }
            EventKind::AgentStatus(_) => Ok(()),
            EventKind::WatchlistMatch(m) => {
                at_most("track_id", m.track_id, MAX_TRACK_ID)?;
                at_most("watchlist_version", m.watchlist_version, MAX_VERSION)?;
                unit_score("similarity", m.similarity)?;
                unit_score("threshold", m.threshold)?;
                at_most("votes", m.votes, MAX_TRACK_COUNT)?;
                at_most("rank", m.rank, MAX_TRACK_COUNT)?;
                at_most("faces_used", m.faces_used, MAX_TRACK_COUNT)?;
                stream_time(m.stream_time_s)?;
                m.evidence.as_ref().map_or(Ok(()), evidence)
            }
            EventKind::WatchlistStatus(s) => {
                at_most("version", s.version, MAX_VERSION)?;
                at_most("wanted", s.wanted, MAX_LIST_COUNT)?;
                at_most("missing", s.missing, MAX_LIST_COUNT)?;
                at_most("templates", s.templates, MAX_LIST_COUNT)?;
                at_most("rejected", s.rejected, u64::from(u32::MAX) * 1000)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Count, WatchlistStatus};
    use time::macros::datetime;

    fn count(entries: u64, total: u64, occupancy: i64) -> EventKind {
        EventKind::Count(Count {
            camera: "c".into(),
            line: "l".into(),
            interval_start: datetime!(2026-12-06 00:00 UTC),
            interval_end: datetime!(2026-12-06 00:01 UTC),
            entries,
            exits: 0,
            total_entries: total,
            total_exits: 0,
            occupancy,
        })
    }

    #[test]
    fn values_no_camera_produces_are_refused_and_named() {
        assert!(count(12, 3_000, 4).check_ranges().is_ok());
        // Issue 12, finding 9: i64::MAX overflowed the hub's sums; u64::MAX was stored as -1.
        for bad in [
            count(i64::MAX as u64, 0, 0),
            count(u64::MAX, 0, 0),
            count(1, u64::MAX, 0),
            count(1, 1, i64::MIN),
        ] {
            let e = bad.check_ranges().unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
        // Finding 3: a status claiming a version near i64::MAX.
        let status = |version| {
            EventKind::WatchlistStatus(WatchlistStatus {
                version,
                wanted: 1,
                missing: 0,
                templates: 2,
                needs_full_sync: false,
                last_error: None,
                rejected: 0,
                expired: vec![],
            })
        };
        assert!(status(1_800_000_000_000).check_ranges().is_ok());
        let e = status(9_223_372_036_854_775_806)
            .check_ranges()
            .unwrap_err();
        assert!(e.contains("`version`"), "{e}");
    }
}
