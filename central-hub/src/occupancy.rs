//! Site occupancy, computed at the hub: the starting occupancy an admin or supervisor set for the site, plus
//! the entries and minus the exits over every site-boundary line of every camera of every agent of the
//! site, since the period began (the setting, or the last daily reset after it). Owns `occupancy_settings`,
//! `occupancy_crossings` and `occupancy_hours`.
//!
//! Why `line_crossing` events and not the agents' `count` events: a crossing carries its own instant, so it
//! falls on the right side of a reset however late it arrives, while a `count` covers an interval (10 s, or
//! hours once an agent's outbox has merged its backlog) that can straddle the reset and cannot be split;
//! and an agent's own running totals and occupancy start again from zero when it restarts. Each crossing
//! is stored once: ingest applies an event only when its id is new (`events` is keyed by the id, in the
//! same transaction), so a redelivered or replayed event changes nothing.
//!
//! A negative result is not a number of people: it is reported as a counting fault naming the lines whose
//! exits exceeded their entries since the period began.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db, DbError};

mod crossings;
pub use crossings::record_crossings;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The largest starting occupancy accepted (a town, not a typo of ten digits).
pub const MAX_STARTING: i64 = 10_000_000;
/// The most hours of history one request may ask for.
pub const MAX_HISTORY_HOURS: u32 = 168;

#[derive(Debug, thiserror::Error)]
pub enum OccupancyError {
    #[error("unknown site '{0}': no agent of this site is registered (`central-hub agent add`) or has reported")]
    UnknownSite(String),
    #[error("starting_occupancy must be a whole number from 0 to {MAX_STARTING}; got {0}")]
    BadStarting(i64),
    #[error("reset_time must be HH:MM local time (00:00 to 23:59), or null for no daily reset; got '{0}'")]
    BadResetTime(String),
    #[error(
        "utc_offset must be +HH:MM or -HH:MM, from -12:00 to +14:00 (Vietnam: +07:00); got '{0}'"
    )]
    BadUtcOffset(String),
    #[error("hours must be from 1 to {MAX_HISTORY_HOURS}; got {0}")]
    BadHours(u32),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for OccupancyError {
    fn from(e: sqlx::Error) -> Self {
        OccupancyError::Db(e.into())
    }
}

impl OccupancyError {
    /// The stable code the API reports with this refusal.
    pub fn code(&self) -> Option<&'static str> {
        Some(match self {
            OccupancyError::UnknownSite(_) => "unknown_site",
            OccupancyError::BadStarting(_) => "bad_starting_occupancy",
            OccupancyError::BadResetTime(_) => "bad_reset_time",
            OccupancyError::BadUtcOffset(_) => "bad_utc_offset",
            OccupancyError::BadHours(_) => "bad_hours",
            OccupancyError::Db(_) => return None,
        })
    }
}

/// One site's setting, as stored: in force from `set_ms` until the site's next setting.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Settings {
    #[sqlx(rename = "starting_occupancy")]
    pub starting: i64,
    /// Minutes after local midnight of the daily reset; None: no daily reset.
    pub reset_minute: Option<i64>,
    pub utc_offset_minutes: i64,
    pub set_by: String,
    pub set_ms: i64,
}

/// The stretch of time one occupancy figure sums over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start_ms: i64,
    /// The next daily reset; None: none is set.
    pub end_ms: Option<i64>,
}

impl Settings {
    /// The period `t_ms` falls in under this setting: from the later of the setting and the last reset at
    /// or before `t_ms`, to the next reset. None before the setting was made.
    pub fn period_at(&self, t_ms: i64) -> Option<Period> {
        if t_ms < self.set_ms {
            return None;
        }
        Some(match self.reset_minute {
            None => Period {
                start_ms: self.set_ms,
                end_ms: None,
            },
            Some(minute) => {
                let reset = last_reset(t_ms, minute, self.utc_offset_minutes);
                Period {
                    start_ms: reset.max(self.set_ms),
                    // A fixed offset has no daylight saving: every local day is 24 h long.
                    end_ms: Some(reset + DAY),
                }
            }
        })
    }
}

/// The last instant at or before `t_ms` whose local time (UTC + `offset_minutes`) is `minute` after
/// midnight.
pub fn last_reset(t_ms: i64, minute: i64, offset_minutes: i64) -> i64 {
    let off = offset_minutes * MINUTE;
    let local = t_ms + off;
    let mut reset = local.div_euclid(DAY) * DAY + minute * MINUTE;
    if reset > local {
        reset -= DAY;
    }
    reset - off
}

/// The start of the local hour (UTC + `offset_minutes`) containing `t_ms`.
pub fn local_hour_start(t_ms: i64, offset_minutes: i64) -> i64 {
    let off = offset_minutes * MINUTE;
    (t_ms + off).div_euclid(HOUR) * HOUR - off
}

/// Parses `HH:MM` (00:00 to 23:59) into minutes after midnight.
pub fn parse_reset_time(s: &str) -> Result<i64, OccupancyError> {
    let bad = || OccupancyError::BadResetTime(clip(s, 40));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Parses `+HH:MM` / `-HH:MM` (-12:00 to +14:00) into minutes east of UTC.
pub fn parse_utc_offset(s: &str) -> Result<i64, OccupancyError> {
    let bad = || OccupancyError::BadUtcOffset(clip(s, 40));
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if m >= 60 {
        return Err(bad());
    }
    let minutes = sign * (h * 60 + m);
    if !(-12 * 60..=14 * 60).contains(&minutes) {
        return Err(bad());
    }
    Ok(minutes)
}

/// At most `n` characters of what a client sent, for an error message.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// `+07:00` for 420.
pub fn format_utc_offset(minutes: i64) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `04:00` for 240.
pub fn format_reset_time(minute: i64) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A setting as the API takes it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// People on site at the moment the setting is saved (0 to 10,000,000). Counting starts again from it.
    pub starting_occupancy: i64,
    /// Daily reset, local time `HH:MM` (e.g. `04:00`): at that time every day occupancy goes back to
    /// `starting_occupancy`. Null or absent: no daily reset.
    #[serde(default)]
    pub reset_time: Option<String>,
    /// The site's local time as a fixed offset from UTC, `+HH:MM` or `-HH:MM` (Vietnam: `+07:00`; no
    /// daylight saving). Absent: the hub's `utc_offset_hours`.
    #[serde(default)]
    pub utc_offset: Option<String>,
}

/// A setting as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub starting_occupancy: i64,
    /// `HH:MM` local time, or null: no daily reset.
    pub reset_time: Option<String>,
    /// `+HH:MM`
    pub utc_offset: String,
    pub set_by: String,
    pub set_ms: i64,
}

impl From<&Settings> for SettingsView {
    fn from(s: &Settings) -> Self {
        SettingsView {
            starting_occupancy: s.starting,
            reset_time: s.reset_minute.map(format_reset_time),
            utc_offset: format_utc_offset(s.utc_offset_minutes),
            set_by: s.set_by.clone(),
            set_ms: s.set_ms,
        }
    }
}

/// Crossings of one line since the period began.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineCount {
    pub agent: String,
    pub camera: String,
    pub line: String,
    pub entries: i64,
    pub exits: i64,
    /// Some of these crossings came from an agent older than protocol 1.3, which does not say whether the
    /// line bounds the site: they were counted as boundary crossings (the agents' default).
    pub flag_missing: bool,
}

/// Why there is no occupancy figure although the site is set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Fault {
    /// `negative_occupancy`: more people left than were there (missed entries, or double-counted exits).
    pub code: String,
    /// What the sum came to: starting occupancy + entries - exits (below zero).
    pub value: i64,
    /// The lines whose exits exceeded their entries since the period began, with their counts.
    pub lines: Vec<LineCount>,
}

/// Occupancy at one instant of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryPoint {
    pub at_ms: i64,
    /// Null when the site was not set up then, or the count was faulty (`fault`).
    pub occupancy: Option<i64>,
    pub fault: bool,
}

/// A site's occupancy now.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SiteOccupancy {
    pub site: String,
    /// The setting in force; null: nobody has set the site up, and no occupancy is computed.
    pub settings: Option<SettingsView>,
    /// Since when crossings count: the setting, or the last daily reset after it.
    pub period_start_ms: Option<i64>,
    /// The next daily reset, if one is set.
    pub next_reset_ms: Option<i64>,
    /// People on site: starting occupancy + entries - exits over the boundary lines. Null when the site is
    /// not set up or the count is faulty: a negative sum is never shown as a number of people.
    pub occupancy: Option<i64>,
    /// Entries and exits over every boundary line since the period began.
    pub entries: i64,
    pub exits: i64,
    /// Per agent, camera and line.
    pub lines: Vec<LineCount>,
    pub fault: Option<Fault>,
    /// Hour by hour (local hours of the site), then now; only on the single-site route.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryPoint>,
    pub computed_ms: i64,
}

/// One line's crossings in one segment, as [`line_counts`] sums them.
#[derive(sqlx::FromRow)]
struct SegmentCount {
    agent: String,
    camera: String,
    line: String,
    /// 1 for crossings from agents that do not say whether the line bounds the site.
    flag_missing: i64,
    entries: i64,
    exits: i64,
}

/// How [`line_counts`] reads `[from, to)`: single crossings for partial hours, hourly sums for whole ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// Crossings with `ts_ms` in `[from, to)`.
    Raw(i64, i64),
    /// Hour sums with `hour_ms` in `[from, to)` (to None: no end); both ends on UTC hours.
    Hours(i64, Option<i64>),
}

fn ceil_hour(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR + if t.rem_euclid(HOUR) == 0 { 0 } else { HOUR }
}

fn segments(from: i64, to: Option<i64>) -> Vec<Segment> {
    let first_full = ceil_hour(from);
    let mut out = Vec::with_capacity(3);
    match to {
        Some(to) if to <= from => {}
        Some(to) => {
            let last_end = to.div_euclid(HOUR) * HOUR;
            if first_full >= last_end {
                out.push(Segment::Raw(from, to));
            } else {
                if from < first_full {
                    out.push(Segment::Raw(from, first_full));
                }
                out.push(Segment::Hours(first_full, Some(last_end)));
                if last_end < to {
                    out.push(Segment::Raw(last_end, to));
                }
            }
        }
        None => {
            if from < first_full {
                out.push(Segment::Raw(from, first_full));
            }
            out.push(Segment::Hours(first_full, None));
        }
    }
    out
}

/// Crossings of the site's boundary lines with timestamps in `[from, to)` (to None: no end), per line.
pub async fn line_counts(
    db: &Db,
    site: &str,
    from: i64,
    to: Option<i64>,
) -> Result<Vec<LineCount>, DbError> {
    let mut acc: BTreeMap<(String, String, String), LineCount> = BTreeMap::new();
    for seg in segments(from, to) {
        let rows: Vec<SegmentCount> = match seg {
            Segment::Raw(a, b) => {
                sqlx::query_as(
                    "SELECT agent, camera, line, flag_missing, \
                     CAST(SUM(CASE WHEN direction = 'in' THEN 1 ELSE 0 END) AS BIGINT) AS entries, \
                     CAST(SUM(CASE WHEN direction = 'out' THEN 1 ELSE 0 END) AS BIGINT) AS exits \
                     FROM occupancy_crossings WHERE site = $1 AND ts_ms >= $2 AND ts_ms < $3 \
                     GROUP BY agent, camera, line, flag_missing",
                )
                .bind(site)
                .bind(a)
                .bind(b)
                .fetch_all(&db.pool)
                .await?
            }
            Segment::Hours(a, b) => {
                sqlx::query_as(
                    "SELECT agent, camera, line, flag_missing, CAST(SUM(entries) AS BIGINT) AS entries, \
                     CAST(SUM(exits) AS BIGINT) AS exits FROM occupancy_hours \
                     WHERE site = $1 AND hour_ms >= $2 AND hour_ms < $3 \
                     GROUP BY agent, camera, line, flag_missing",
                )
                .bind(site)
                .bind(a)
                .bind(b.unwrap_or(i64::MAX))
                .fetch_all(&db.pool)
                .await?
            }
        };
        for r in rows {
            let key = (r.agent, r.camera, r.line);
            let e = acc.entry(key.clone()).or_insert_with(|| LineCount {
                agent: key.0,
                camera: key.1,
                line: key.2,
                ..Default::default()
            });
            e.entries += r.entries;
            e.exits += r.exits;
            e.flag_missing |= r.flag_missing == 1;
        }
    }
    Ok(acc.into_values().collect())
}

/// Entries minus exits over the boundary lines in `[from, to)`.
async fn net_between(db: &Db, site: &str, from: i64, to: i64) -> Result<i64, DbError> {
    Ok(line_counts(db, site, from, Some(to))
        .await?
        .iter()
        .map(|l| l.entries - l.exits)
        .sum())
}

/// Every setting the site has had, oldest first.
pub async fn settings_history(db: &Db, site: &str) -> Result<Vec<Settings>, DbError> {
    Ok(sqlx::query_as(
        "SELECT starting_occupancy, reset_minute, utc_offset_minutes, set_by, set_ms \
         FROM occupancy_settings WHERE site = $1 ORDER BY set_ms, id",
    )
    .bind(site)
    .fetch_all(&db.pool)
    .await?)
}

/// The setting in force at `t_ms`: the newest made at or before it.
fn setting_at(history: &[Settings], t_ms: i64) -> Option<&Settings> {
    history.iter().rev().find(|s| s.set_ms <= t_ms)
}

/// Sites the hub knows: agents that reported, agent accounts, and sites already set up.
pub async fn known_sites(db: &Db) -> Result<Vec<String>, DbError> {
    let mut sites: std::collections::BTreeSet<String> =
        crate::agents::sites(db).await?.into_iter().collect();
    let set_up: Vec<String> = sqlx::query_scalar("SELECT DISTINCT site FROM occupancy_settings")
        .fetch_all(&db.pool)
        .await?;
    sites.extend(set_up);
    // Agent accounts are named `<site>.<agent>` (ids have no dot).
    for username in crate::broker::agent_usernames(db, false).await? {
        if let Some((site, _)) = username.split_once('.') {
            sites.insert(site.to_string());
        }
    }
    Ok(sites.into_iter().collect())
}

async fn require_known(db: &Db, site: &str) -> Result<(), OccupancyError> {
    if checkpoint_protocol::valid_topic_id(site) && known_sites(db).await?.iter().any(|s| s == site)
    {
        Ok(())
    } else {
        Err(OccupancyError::UnknownSite(clip(site, 64)))
    }
}

/// Saves a new setting for `site`, in force from now: occupancy counts again from `starting_occupancy`.
pub async fn set(
    db: &Db,
    site: &str,
    change: &SettingsChange,
    default_offset_minutes: i64,
    by: &str,
) -> Result<Settings, OccupancyError> {
    if !(0..=MAX_STARTING).contains(&change.starting_occupancy) {
        return Err(OccupancyError::BadStarting(change.starting_occupancy));
    }
    let reset_minute = match change.reset_time.as_deref() {
        None | Some("") => None,
        Some(t) => Some(parse_reset_time(t)?),
    };
    let utc_offset_minutes = match change.utc_offset.as_deref() {
        None | Some("") => default_offset_minutes,
        Some(o) => parse_utc_offset(o)?,
    };
    require_known(db, site).await?;
    let settings = Settings {
        starting: change.starting_occupancy,
        reset_minute,
        utc_offset_minutes,
        set_by: by.to_string(),
        set_ms: now_ms(),
    };
    store_settings(db, site, &settings).await?;
    tracing::info!(%site, starting = settings.starting, reset = ?reset_minute.map(format_reset_time),
        utc_offset = %format_utc_offset(utc_offset_minutes), by, "occupancy setting saved");
    Ok(settings)
}

/// Appends `settings` to the site's history.
async fn store_settings(db: &Db, site: &str, settings: &Settings) -> Result<(), DbError> {
    // Two statements because sqlx's Any driver mistypes a NULL BIGINT for PostgreSQL's cached statements
    // (see ingest's camera fps); the reset minute is set separately when there is one.
    let id = uuid::Uuid::now_v7().to_string();
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO occupancy_settings (id, site, starting_occupancy, reset_minute, utc_offset_minutes, set_by, set_ms) \
         VALUES ($1, $2, $3, NULL, $4, $5, $6)",
    )
    .bind(&id)
    .bind(site)
    .bind(settings.starting)
    .bind(settings.utc_offset_minutes)
    .bind(&settings.set_by)
    .bind(settings.set_ms)
    .execute(&mut *tx)
    .await?;
    if let Some(m) = settings.reset_minute {
        sqlx::query("UPDATE occupancy_settings SET reset_minute = $1 WHERE id = $2")
            .bind(m)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Occupancy from `starting` and the lines' crossings, or, when that comes out below zero, the counting
/// fault it is, with the lines whose exits exceeded their entries.
pub fn judge(starting: i64, lines: &[LineCount]) -> (Option<i64>, Option<Fault>) {
    let value = starting + lines.iter().map(|l| l.entries - l.exits).sum::<i64>();
    if value >= 0 {
        return (Some(value), None);
    }
    let lines = lines
        .iter()
        .filter(|l| l.exits > l.entries)
        .cloned()
        .collect();
    (
        None,
        Some(Fault {
            code: "negative_occupancy".into(),
            value,
            lines,
        }),
    )
}

/// The site's occupancy now and, with `history_hours`, at the end of each of the last local hours and now.
/// `default_offset_minutes` places the hours of a site nobody has set up.
pub async fn site_now(
    db: &Db,
    site: &str,
    default_offset_minutes: i64,
    history_hours: Option<u32>,
) -> Result<SiteOccupancy, OccupancyError> {
    if let Some(h) = history_hours {
        if !(1..=MAX_HISTORY_HOURS).contains(&h) {
            return Err(OccupancyError::BadHours(h));
        }
    }
    require_known(db, site).await?;
    site_at(db, site, default_offset_minutes, history_hours, now_ms()).await
}

/// [`site_now`] as of `now`.
async fn site_at(
    db: &Db,
    site: &str,
    default_offset_minutes: i64,
    history_hours: Option<u32>,
    now: i64,
) -> Result<SiteOccupancy, OccupancyError> {
    let history = settings_history(db, site).await?;
    let mut out = SiteOccupancy {
        site: site.to_string(),
        settings: None,
        period_start_ms: None,
        next_reset_ms: None,
        occupancy: None,
        entries: 0,
        exits: 0,
        lines: Vec::new(),
        fault: None,
        history: Vec::new(),
        computed_ms: now,
    };
    if let Some(current) = history.last() {
        // A setting stamped after now (the hub's clock stepped back) still holds from its own instant.
        let period = current
            .period_at(now.max(current.set_ms))
            .unwrap_or(Period {
                start_ms: current.set_ms,
                end_ms: None,
            });
        // Up to the next reset, not up to now: an agent clock a little ahead of the hub's still counts in
        // this period, and what is stamped after the reset belongs to the next.
        let lines = line_counts(db, site, period.start_ms, period.end_ms).await?;
        let (occupancy, fault) = judge(current.starting, &lines);
        out.settings = Some(current.into());
        out.period_start_ms = Some(period.start_ms);
        out.next_reset_ms = period.end_ms;
        out.entries = lines.iter().map(|l| l.entries).sum();
        out.exits = lines.iter().map(|l| l.exits).sum();
        out.occupancy = occupancy;
        out.fault = fault;
        out.lines = lines;
    }
    if let Some(hours) = history_hours {
        let offset = history
            .last()
            .map_or(default_offset_minutes, |s| s.utc_offset_minutes);
        let this_hour = local_hour_start(now, offset);
        let mut points: Vec<i64> = (0..hours as i64)
            .rev()
            .map(|k| this_hour - k * HOUR)
            .collect();
        if points.last() != Some(&now) {
            points.push(now);
        }
        out.history = history_points(db, site, &history, &points).await?;
    }
    Ok(out)
}

/// Occupancy at each of `points` (ascending), each under the setting and period in force then. Points of
/// one period are walked from one to the next, so a long period is summed once.
async fn history_points(
    db: &Db,
    site: &str,
    history: &[Settings],
    points: &[i64],
) -> Result<Vec<HistoryPoint>, DbError> {
    let mut out = Vec::with_capacity(points.len());
    // (the previous point, its setting's instant, its period's start, entries minus exits up to it)
    let mut prev: Option<(i64, i64, i64, i64)> = None;
    for &at in points {
        let Some((s, period)) = setting_at(history, at).and_then(|s| Some((s, s.period_at(at)?)))
        else {
            out.push(HistoryPoint {
                at_ms: at,
                occupancy: None,
                fault: false,
            });
            prev = None;
            continue;
        };
        let net = match prev {
            Some((p_at, p_set, p_start, p_net))
                if p_set == s.set_ms && p_start == period.start_ms =>
            {
                p_net + net_between(db, site, p_at, at).await?
            }
            _ => net_between(db, site, period.start_ms, at).await?,
        };
        prev = Some((at, s.set_ms, period.start_ms, net));
        let value = s.starting + net;
        out.push(HistoryPoint {
            at_ms: at,
            occupancy: (value >= 0).then_some(value),
            fault: value < 0,
        });
    }
    Ok(out)
}

/// Every known site's occupancy now (no history).
pub async fn all_sites(
    db: &Db,
    default_offset_minutes: i64,
) -> Result<Vec<SiteOccupancy>, OccupancyError> {
    let now = now_ms();
    let mut out = Vec::new();
    for site in known_sites(db).await? {
        out.push(site_at(db, &site, default_offset_minutes, None, now).await?);
    }
    Ok(out)
}

/// Sets `checkpoint_hub_site_occupancy{site}` (only while there is a figure: a faulty or unset site has
/// none) and `checkpoint_hub_site_occupancy_fault{site}` (1 while the count is negative) for every site.
pub async fn refresh_gauges(
    db: &Db,
    metrics: &crate::metrics::Metrics,
    default_offset_minutes: i64,
) -> Result<(), OccupancyError> {
    for s in all_sites(db, default_offset_minutes).await? {
        let label = crate::metrics::SiteLabel { site: s.site };
        match s.occupancy {
            Some(n) => {
                metrics.site_occupancy.get_or_create(&label).set(n);
            }
            None => {
                metrics.site_occupancy.remove(&label);
            }
        }
        if s.settings.is_some() {
            metrics
                .site_occupancy_fault
                .get_or_create(&label)
                .set(i64::from(s.fault.is_some()));
        } else {
            metrics.site_occupancy_fault.remove(&label);
        }
    }
    Ok(())
}

/// Deletes crossings no figure needs any more: those before `keep_after_ms` (the hub's event retention)
/// and before every period a figure may still sum over: the current one (a site without a daily reset sums
/// from its setting on, however long ago) and those of the history the API serves (`MAX_HISTORY_HOURS`).
/// Returns the crossings deleted.
pub async fn prune(db: &Db, keep_after_ms: i64) -> Result<u64, OccupancyError> {
    let now = now_ms();
    let oldest_point = now - MAX_HISTORY_HOURS as i64 * HOUR;
    let mut deleted = 0;
    let sites: Vec<String> = sqlx::query_scalar("SELECT DISTINCT site FROM occupancy_hours")
        .fetch_all(&db.pool)
        .await?;
    for site in sites {
        let history = settings_history(db, &site).await?;
        let before = prune_before(&history, keep_after_ms, oldest_point, now);
        deleted += sqlx::query("DELETE FROM occupancy_crossings WHERE site = $1 AND ts_ms < $2")
            .bind(&site)
            .bind(before)
            .execute(&db.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM occupancy_hours WHERE site = $1 AND hour_ms < $2")
            .bind(&site)
            .bind(before)
            .execute(&db.pool)
            .await?;
    }
    Ok(deleted)
}

/// Where a site's crossings may be cut: on a whole UTC hour (so single crossings and hour sums always cover
/// the same hours) at or before `keep_after_ms` and the start of every period in force from `oldest_point`
/// to `now`. Period starts only move forward in time, so the one in force at `oldest_point` (or, if none
/// was, the first setting after it) is the earliest.
fn prune_before(history: &[Settings], keep_after_ms: i64, oldest_point: i64, now: i64) -> i64 {
    let needed = setting_at(history, oldest_point)
        .and_then(|s| s.period_at(oldest_point))
        .map(|p| p.start_ms)
        .or_else(|| {
            history
                .iter()
                .find(|s| s.set_ms > oldest_point && s.set_ms <= now)
                .map(|s| s.set_ms)
        })
        .unwrap_or(keep_after_ms);
    keep_after_ms.min(needed).min(oldest_point).div_euclid(HOUR) * HOUR
}

#[cfg(test)]
mod tests;
