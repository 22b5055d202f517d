use super::*;
use crate::db::ms;
use crate::db::testing;
use crate::ingest::{check, store_batch, Checked};
use checkpoint_protocol::{AgentState, AgentStatus, Direction, Envelope, EventKind, LineCrossing};
use sqlx::Row;
use time::macros::datetime;
use time::OffsetDateTime;

const VN: i64 = 7 * 60;

fn at(t: OffsetDateTime) -> i64 {
    ms(t)
}

fn settings(starting: i64, reset: Option<&str>, offset: i64, set: OffsetDateTime) -> Settings {
    Settings {
        starting,
        reset_minute: reset.map(|r| parse_reset_time(r).unwrap()),
        utc_offset_minutes: offset,
        set_by: "sup".into(),
        set_ms: at(set),
    }
}

#[test]
fn the_reset_falls_at_local_time_in_the_sites_offset() {
    // 04:00 in Vietnam (UTC+7) is 21:00 UTC the day before.
    let s = settings(0, Some("04:00"), VN, datetime!(2026-11-01 00:00 UTC));
    let just_before = at(datetime!(2026-11-24 20:59:59.999 UTC));
    let on_it = at(datetime!(2026-11-24 21:00 UTC));
    assert_eq!(
        s.period_at(just_before),
        Some(Period {
            start_ms: at(datetime!(2026-11-23 21:00 UTC)),
            end_ms: Some(on_it),
        })
    );
    assert_eq!(
        s.period_at(on_it),
        Some(Period {
            start_ms: on_it,
            end_ms: Some(at(datetime!(2026-11-25 21:00 UTC))),
        }),
        "a crossing stamped exactly at the reset belongs to the new period"
    );
    // The same instants at UTC+0: the reset is 04:00 UTC.
    let utc = Settings {
        utc_offset_minutes: 0,
        ..s.clone()
    };
    assert_eq!(
        utc.period_at(on_it).unwrap().start_ms,
        at(datetime!(2026-11-24 04:00 UTC))
    );
    // West of UTC, with minutes: 23:30 at UTC-03:30 is 03:00 UTC the next day.
    let west = settings(0, Some("23:30"), -210, datetime!(2026-11-01 00:00 UTC));
    assert_eq!(
        west.period_at(at(datetime!(2026-11-25 02:59 UTC)))
            .unwrap()
            .start_ms,
        at(datetime!(2026-11-24 03:00 UTC))
    );
    assert_eq!(
        west.period_at(at(datetime!(2026-11-25 03:00 UTC)))
            .unwrap()
            .start_ms,
        at(datetime!(2026-11-25 03:00 UTC))
    );
}

#[test]
fn a_period_starts_at_the_setting_until_the_first_reset_after_it() {
    let set = datetime!(2026-11-24 10:23:41.5 UTC); // 17:23 in Vietnam
    let s = settings(120, Some("04:00"), VN, set);
    assert_eq!(s.period_at(at(set) - 1), None, "before the setting");
    assert_eq!(
        s.period_at(at(datetime!(2026-11-24 20:00 UTC))),
        Some(Period {
            start_ms: at(set),
            end_ms: Some(at(datetime!(2026-11-24 21:00 UTC))),
        })
    );
    assert_eq!(
        s.period_at(at(datetime!(2026-11-24 22:00 UTC)))
            .unwrap()
            .start_ms,
        at(datetime!(2026-11-24 21:00 UTC))
    );
    let no_reset = settings(120, None, VN, set);
    assert_eq!(
        no_reset.period_at(at(datetime!(2027-03-01 00:00 UTC))),
        Some(Period {
            start_ms: at(set),
            end_ms: None
        })
    );
}

#[test]
fn times_and_offsets_parse_strictly() {
    assert_eq!(parse_reset_time("04:00").unwrap(), 240);
    assert_eq!(parse_reset_time("23:59").unwrap(), 1439);
    assert_eq!(parse_reset_time("00:00").unwrap(), 0);
    for bad in [
        "24:00", "4:00", "04:60", "0400", "", "04:00:00", "-1:00", "ab:cd",
    ] {
        assert!(
            matches!(parse_reset_time(bad), Err(OccupancyError::BadResetTime(_))),
            "{bad}"
        );
    }
    assert_eq!(parse_utc_offset("+07:00").unwrap(), 420);
    assert_eq!(parse_utc_offset("-03:30").unwrap(), -210);
    assert_eq!(parse_utc_offset("+14:00").unwrap(), 840);
    assert_eq!(parse_utc_offset("-12:00").unwrap(), -720);
    for bad in [
        "07:00", "+7", "+07", "+14:30", "-12:01", "+05:60", "UTC+7", "",
    ] {
        assert!(
            matches!(parse_utc_offset(bad), Err(OccupancyError::BadUtcOffset(_))),
            "{bad}"
        );
    }
    assert_eq!(format_utc_offset(420), "+07:00");
    assert_eq!(format_utc_offset(-210), "-03:30");
    assert_eq!(format_reset_time(240), "04:00");
    assert!(clip(&"é".repeat(100), 40).chars().count() == 41);
}

#[test]
fn ranges_split_into_partial_hours_and_whole_ones() {
    let h = HOUR;
    assert_eq!(segments(10, Some(20)), vec![Segment::Raw(10, 20)]);
    assert_eq!(segments(10, Some(10)), vec![]);
    assert_eq!(
        segments(h - 5, Some(3 * h + 7)),
        vec![
            Segment::Raw(h - 5, h),
            Segment::Hours(h, Some(3 * h)),
            Segment::Raw(3 * h, 3 * h + 7)
        ]
    );
    assert_eq!(
        segments(h, Some(2 * h)),
        vec![Segment::Hours(h, Some(2 * h))]
    );
    assert_eq!(
        segments(h + 1, None),
        vec![Segment::Raw(h + 1, 2 * h), Segment::Hours(2 * h, None)]
    );
    // Before 1970 too (div_euclid).
    assert_eq!(
        segments(-h - 1, Some(-h + 1)),
        vec![Segment::Raw(-h - 1, -h + 1)]
    );
}

#[test]
fn a_negative_sum_is_a_fault_naming_the_lines_that_lost_people() {
    let line = |agent: &str, line: &str, entries, exits| LineCount {
        agent: agent.into(),
        camera: "cam".into(),
        line: line.into(),
        entries,
        exits,
        flag_missing: false,
    };
    let lines = vec![line("a1", "gate", 2, 1), line("a2", "pier", 0, 3)];
    let (occ, fault) = judge(0, &lines);
    assert_eq!(occ, None);
    let fault = fault.unwrap();
    assert_eq!(
        (fault.code.as_str(), fault.value),
        ("negative_occupancy", -2)
    );
    assert_eq!(fault.lines, vec![line("a2", "pier", 0, 3)]);
    assert_eq!(judge(2, &lines), (Some(0), None), "zero people is a figure");
}

// ---- against the database, through ingest

fn crossing(
    site: &str,
    agent: &str,
    camera: &str,
    line: &str,
    dir: Direction,
    ts: i64,
    boundary: Option<bool>,
) -> Envelope {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ts as i128 * 1_000_000).unwrap();
    Envelope::new(
        site,
        agent,
        t,
        EventKind::LineCrossing(LineCrossing {
            camera: camera.into(),
            line: line.into(),
            direction: dir,
            track_id: 1,
            stream_time_s: 0.0,
            site_boundary: boundary,
        }),
    )
}

fn checked(events: &[Envelope]) -> Vec<Checked> {
    events
        .iter()
        .map(|e| {
            let topic = checkpoint_protocol::topic(&e.site, &e.agent, e.kind());
            check(&topic, e.to_json().as_bytes(), 1 << 20).unwrap()
        })
        .collect()
}

async fn ingest(db: &Db, events: &[Envelope]) -> Vec<bool> {
    store_batch(db, &checked(events), 7).await.unwrap()
}

/// Makes the site known to the hub the way an agent does: its status event.
async fn agent_online(db: &Db, site: &str, agent: &str) {
    let e = Envelope::new(
        site,
        agent,
        OffsetDateTime::now_utc(),
        EventKind::AgentStatus(AgentStatus {
            state: AgentState::Online,
            version: "1.3".into(),
            cameras: vec![],
        }),
    );
    ingest(db, &[e]).await;
}

async fn every_line_once_since_the_setting(db: Db) {
    let site = "pier";
    agent_online(&db, site, "a1").await;
    agent_online(&db, site, "a2").await;
    let now = now_ms();
    let set = now - 3 * HOUR - 17;
    store_settings(
        &db,
        site,
        &Settings {
            starting: 5,
            reset_minute: None,
            utc_offset_minutes: VN,
            set_by: "sup".into(),
            set_ms: set,
        },
    )
    .await
    .unwrap();
    use Direction::{In, Out};
    let before = crossing(site, "a1", "gate", "g", In, set - 1, Some(true));
    let in_hour_before = crossing(site, "a1", "gate", "g", In, set - HOUR, Some(true));
    let events = vec![
        before,
        in_hour_before,
        crossing(site, "a1", "gate", "g", In, set, Some(true)),
        crossing(site, "a1", "gate", "g", In, set + HOUR + 5, Some(true)),
        crossing(site, "a1", "gate2", "g", In, now - 10, Some(true)),
        // Another agent and camera of the site.
        crossing(site, "a2", "quay", "q", Out, now - 2 * HOUR, Some(true)),
        // An inner line: not a boundary, never counted.
        crossing(site, "a1", "hall", "inner", In, now - 5, Some(false)),
        crossing(site, "a1", "hall", "inner", In, now - 4, Some(false)),
        // An agent before 1.3: counted, and marked.
        crossing(site, "a2", "quay", "q", In, now - HOUR, None),
        // Another site.
        crossing("dock", "b1", "gate", "g", In, now - 5, Some(true)),
    ];
    assert!(ingest(&db, &events).await.iter().all(|new| *new));
    // Redelivered (a hub killed before its acks, an agent replaying its outbox): no effect.
    assert!(ingest(&db, &events).await.iter().all(|new| !*new));
    // A late event, stamped inside the period, arriving after later ones.
    let late = crossing(site, "a2", "quay", "q", Out, set + 30 * MINUTE, Some(true));
    ingest(&db, &[late.clone(), late]).await;

    let got = site_at(&db, site, VN, None, now).await.unwrap();
    // 5 + (a1/gate: 2 in) + (a1/gate2: 1 in) + (a2/quay: 1 in unflagged, 2 out)
    assert_eq!(got.occupancy, Some(7), "{got:?}");
    assert_eq!((got.entries, got.exits), (4, 2));
    assert_eq!(got.fault, None);
    assert_eq!(got.period_start_ms, Some(set));
    assert_eq!(got.next_reset_ms, None);
    let quay = got.lines.iter().find(|l| l.camera == "quay").unwrap();
    assert_eq!((quay.entries, quay.exits, quay.flag_missing), (1, 2, true));
    assert!(got.lines.iter().all(|l| l.line != "inner"));
    assert_eq!(got.lines.len(), 3);
    assert_eq!(got.settings.as_ref().unwrap().starting_occupancy, 5);

    // The hour sums and the single crossings agree for any range (the figures above use both).
    let all = line_counts(&db, site, set - 2 * HOUR, Some(now + 1))
        .await
        .unwrap();
    let brute: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM occupancy_crossings WHERE site = $1 AND ts_ms >= $2 AND ts_ms < $3",
    )
    .bind(site)
    .bind(set - 2 * HOUR)
    .bind(now + 1)
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .get("n");
    assert_eq!(all.iter().map(|l| l.entries + l.exits).sum::<i64>(), brute);

    // Retention has deleted the events' rows (older than event_days): a very late replay looks new to ingest
    // but still counts once.
    sqlx::query("DELETE FROM events")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(ingest(&db, &events).await.iter().all(|new| *new));
    let again = site_at(&db, site, VN, None, now).await.unwrap();
    assert_eq!(again.occupancy, Some(7), "{again:?}");

    // A site nobody set up has no figure, and an unknown one is refused.
    let dock = site_at(&db, "dock", VN, None, now).await.unwrap();
    assert_eq!((dock.occupancy, dock.settings.is_none()), (None, true));
    assert!(matches!(
        site_now(&db, "nowhere", VN, None).await,
        Err(OccupancyError::UnknownSite(_))
    ));
}

#[tokio::test]
async fn every_boundary_line_counts_once_since_the_setting_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    every_line_once_since_the_setting(db).await;
}

#[tokio::test]
async fn every_boundary_line_counts_once_since_the_setting_on_postgres() {
    if let Some(db) = testing::postgres().await {
        every_line_once_since_the_setting(db).await;
    }
}

async fn reset_and_history(db: Db) {
    let site = "island";
    agent_online(&db, site, "a1").await;
    // Fixed instants: the setting on the 23rd, reset at 04:00 Vietnam time (21:00 UTC).
    let set = at(datetime!(2026-11-23 12:00 UTC));
    let reset = at(datetime!(2026-11-24 21:00 UTC));
    let now = reset + 90 * MINUTE;
    store_settings(
        &db,
        site,
        &Settings {
            starting: 40,
            reset_minute: Some(240),
            utc_offset_minutes: VN,
            set_by: "admin".into(),
            set_ms: set,
        },
    )
    .await
    .unwrap();
    use Direction::{In, Out};
    let c = |dir, ts| crossing(site, "a1", "gate", "g", dir, ts, Some(true));
    ingest(
        &db,
        &[
            c(In, reset - 2 * HOUR),
            c(In, reset - 1),
            c(Out, reset),
            c(In, reset + 10 * MINUTE),
            c(In, reset + 70 * MINUTE),
        ],
    )
    .await;
    let got = site_at(&db, site, VN, Some(3), now).await.unwrap();
    // Since 04:00: 2 in, 1 out on top of 40.
    assert_eq!(got.period_start_ms, Some(reset));
    assert_eq!(got.next_reset_ms, Some(reset + DAY));
    assert_eq!(got.occupancy, Some(41));
    // History: local hour ends 03:00, 04:00, 05:00 (20:00, 21:00, 22:00 UTC) and now (22:30).
    let points: Vec<(i64, Option<i64>)> =
        got.history.iter().map(|p| (p.at_ms, p.occupancy)).collect();
    assert_eq!(
        points,
        vec![
            (reset - HOUR, Some(41)),
            (reset, Some(40)),
            (reset + HOUR, Some(40)),
            (now, Some(41)),
        ]
    );

    // A crossing stamped before the reset but delivered now belongs to yesterday's period: today's figure
    // does not move, yesterday's last hour does.
    ingest(&db, &[c(Out, reset - 5 * MINUTE)]).await;
    let got = site_at(&db, site, VN, Some(3), now).await.unwrap();
    assert_eq!(got.occupancy, Some(41));
    assert_eq!(got.history[0].occupancy, Some(41), "20:00 UTC is before it");
    // At the reset instant itself the new period begins at 40 again.
    assert_eq!(got.history[1].occupancy, Some(40));

    // Exits beyond what was there: a fault naming the line, never a number.
    ingest(
        &db,
        &(0..45)
            .map(|i| {
                crossing(
                    site,
                    "a1",
                    "stairs",
                    "s",
                    Out,
                    reset + i * MINUTE,
                    Some(true),
                )
            })
            .collect::<Vec<_>>(),
    )
    .await;
    let got = site_at(&db, site, VN, Some(3), now).await.unwrap();
    assert_eq!(got.occupancy, None);
    let fault = got.fault.unwrap();
    assert_eq!(fault.value, 40 + 2 - 1 - 45);
    assert_eq!(fault.lines.len(), 1);
    assert_eq!(
        (
            fault.lines[0].line.as_str(),
            fault.lines[0].entries,
            fault.lines[0].exits
        ),
        ("s", 0, 45)
    );
    let last = got.history.last().unwrap();
    assert_eq!((last.occupancy, last.fault), (None, true));

    // A new setting starts over from its own figure, at once.
    let later = now + MINUTE;
    store_settings(
        &db,
        site,
        &Settings {
            starting: 3,
            reset_minute: Some(240),
            utc_offset_minutes: VN,
            set_by: "sup".into(),
            set_ms: later,
        },
    )
    .await
    .unwrap();
    let got = site_at(&db, site, VN, Some(1), later + 1).await.unwrap();
    assert_eq!((got.occupancy, got.period_start_ms), (Some(3), Some(later)));
    assert_eq!(got.fault, None);
}

#[tokio::test]
async fn resets_late_events_and_faults_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    reset_and_history(db).await;
}

#[tokio::test]
async fn resets_late_events_and_faults_on_postgres() {
    if let Some(db) = testing::postgres().await {
        reset_and_history(db).await;
    }
}

#[tokio::test]
async fn sums_over_any_range_match_the_single_crossings() {
    let (db, _d) = testing::sqlite().await;
    let base = at(datetime!(2026-11-24 00:00 UTC));
    // A deterministic scatter over 30 hours, both directions, three lines.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut events = Vec::new();
    let mut stamps = Vec::new();
    for _ in 0..400 {
        let ts = base + (next() % (30 * HOUR as u64)) as i64;
        let dir = if next() % 3 == 0 {
            Direction::Out
        } else {
            Direction::In
        };
        let line = ["a", "b", "c"][(next() % 3) as usize];
        events.push(crossing("s", "a1", "cam", line, dir, ts, Some(true)));
        stamps.push((ts, dir));
    }
    ingest(&db, &events).await;
    for _ in 0..60 {
        let a = base - HOUR + (next() % (32 * HOUR as u64)) as i64;
        let b = a + (next() % (20 * HOUR as u64)) as i64;
        let got = line_counts(&db, "s", a, Some(b)).await.unwrap();
        let want_in = stamps
            .iter()
            .filter(|(t, d)| *t >= a && *t < b && *d == Direction::In)
            .count() as i64;
        let want_out = stamps
            .iter()
            .filter(|(t, d)| *t >= a && *t < b && *d == Direction::Out)
            .count() as i64;
        assert_eq!(
            (
                got.iter().map(|l| l.entries).sum::<i64>(),
                got.iter().map(|l| l.exits).sum::<i64>()
            ),
            (want_in, want_out),
            "[{a}, {b})"
        );
    }
    let open = line_counts(&db, "s", base + 5 * HOUR + 1, None)
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|l| l.entries + l.exits).sum::<i64>(),
        stamps.iter().filter(|(t, _)| *t > base + 5 * HOUR).count() as i64
    );
}

async fn pruning_keeps_what_a_figure_needs(db: Db) {
    agent_online(&db, "long", "a1").await;
    agent_online(&db, "unset", "a1").await;
    let now = now_ms();
    // Set up 30 days ago without a daily reset: every crossing since then still counts.
    store_settings(
        &db,
        "long",
        &Settings {
            starting: 0,
            reset_minute: None,
            utc_offset_minutes: VN,
            set_by: "admin".into(),
            set_ms: now - 30 * DAY,
        },
    )
    .await
    .unwrap();
    ingest(
        &db,
        &[
            crossing(
                "long",
                "a1",
                "c",
                "l",
                Direction::In,
                now - 20 * DAY,
                Some(true),
            ),
            crossing(
                "long",
                "a1",
                "c",
                "l",
                Direction::In,
                now - 40 * DAY,
                Some(true),
            ),
            crossing(
                "unset",
                "a1",
                "c",
                "l",
                Direction::In,
                now - 20 * DAY,
                Some(true),
            ),
            crossing(
                "unset",
                "a1",
                "c",
                "l",
                Direction::In,
                now - HOUR,
                Some(true),
            ),
        ],
    )
    .await;
    let deleted = prune(&db, now - DAY).await.unwrap();
    assert_eq!(
        deleted, 2,
        "the crossing before the setting, and the unset site's old one"
    );
    let got = site_now(&db, "long", VN, None).await.unwrap();
    assert_eq!(got.occupancy, Some(1));
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM occupancy_hours WHERE site = 'unset'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(left, 1);
}

#[tokio::test]
async fn pruning_keeps_what_a_figure_needs_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    pruning_keeps_what_a_figure_needs(db).await;
}

#[tokio::test]
async fn pruning_keeps_what_a_figure_needs_on_postgres() {
    if let Some(db) = testing::postgres().await {
        pruning_keeps_what_a_figure_needs(db).await;
    }
}

#[test]
fn pruning_stops_at_the_oldest_period_the_history_reaches() {
    let now = at(datetime!(2026-11-24 10:30 UTC));
    let oldest = now - MAX_HISTORY_HOURS as i64 * HOUR;
    // A daily reset: the period in force a week ago began at that day's reset.
    let daily = vec![settings(
        0,
        Some("04:00"),
        VN,
        datetime!(2026-01-01 00:00 UTC),
    )];
    let keep = now - 90 * DAY;
    let cut = prune_before(&daily, keep, oldest, now);
    assert_eq!(cut, keep.div_euclid(HOUR) * HOUR, "retention is longer");
    let cut = prune_before(&daily, now - DAY, oldest, now);
    assert_eq!(cut, last_reset(oldest, 240, VN));
    assert_eq!(cut % HOUR, 0);
    // A setting made after the oldest point: nothing before it is needed, but the week is kept.
    let recent = vec![settings(0, None, VN, datetime!(2026-11-23 10:30 UTC))];
    assert_eq!(
        prune_before(&recent, now - DAY, oldest, now),
        oldest.div_euclid(HOUR) * HOUR
    );
}
