use super::*;
use crate::db::testing;
use checkpoint_protocol::{AgentState, CameraState, Count, ListKind, WatchlistMatch};
use time::macros::datetime;

fn count_event(site: &str, entries: u64, start: time::OffsetDateTime) -> Envelope {
    Envelope::new(
        site,
        "a1",
        start,
        EventKind::Count(Count {
            camera: "gate".into(),
            line: "l1".into(),
            interval_start: start,
            interval_end: start + time::Duration::seconds(10),
            entries,
            exits: 1,
            total_entries: entries,
            total_exits: 1,
            occupancy: entries as i64 - 1,
        }),
    )
}

fn topic_of(e: &Envelope) -> String {
    checkpoint_protocol::topic(&e.site, &e.agent, e.kind())
}

#[test]
fn bad_messages_are_refused_with_a_reason() {
    let e = count_event("pier", 3, datetime!(2026-11-24 03:00 UTC));
    let ok = e.to_json();
    assert!(check(&topic_of(&e), ok.as_bytes(), 1 << 20).is_ok());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("checkpoint/pier/a1", ok.clone().into_bytes(), "topic"),
        ("other/pier/a1/count", ok.clone().into_bytes(), "topic"),
        ("checkpoint/pier/a1/count", b"{not json".to_vec(), "invalid"),
        (
            "checkpoint/pier/a2/count",
            ok.clone().into_bytes(),
            "mismatch",
        ),
        (
            "checkpoint/pier/a1/agent_status",
            ok.clone().into_bytes(),
            "mismatch",
        ),
        ("checkpoint/pier/a1/count", vec![b' '; 2 << 20], "oversized"),
        (
            "checkpoint/pier/a1/count",
            ok.replace("\"v\":1", "\"v\":7").into_bytes(),
            "invalid",
        ),
        // Issue 12, finding 9: i64::MAX crossings overflowed the site's sums; u64::MAX was stored as -1.
        (
            "checkpoint/pier/a1/count",
            ok.replace("\"entries\":3", "\"entries\":9223372036854775807")
                .into_bytes(),
            "out_of_range",
        ),
        (
            "checkpoint/pier/a1/count",
            ok.replace("\"entries\":3", "\"entries\":18446744073709551615")
                .into_bytes(),
            "out_of_range",
        ),
    ];
    for (topic, payload, label) in cases {
        let r = check(topic, &payload, 1 << 20).err().expect(topic);
        assert_eq!(r.label(), label, "{topic}: {r}");
    }
}

#[tokio::test]
async fn once_agents_have_accounts_only_they_are_ingested() {
    let (db, _d) = testing::sqlite().await;
    let mut r = Registered::new();
    r.refresh(&db).await;
    assert!(r.allows("pier", "a1"), "no accounts: the broker decides");
    crate::broker::add_agent(&db, "pier", "a1").await.unwrap();
    let mut r = Registered::new();
    r.refresh(&db).await;
    assert!(r.allows("pier", "a1"));
    assert!(!r.allows("pier", "a2"));
    assert!(!r.allows("dock", "a1"));
    sqlx::query("UPDATE users SET active = 0 WHERE username = 'pier.a1'")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut r = Registered::new();
    r.refresh(&db).await;
    assert!(
        r.allows("pier", "a1"),
        "no active account left: as before accounts"
    );
}

async fn idempotent(db: Db) {
    let t0 = datetime!(2026-11-24 03:00 UTC);
    let events: Vec<Envelope> = (0..6)
        .map(|i| count_event("pier", 2, t0 + time::Duration::minutes(20 * i)))
        .collect();
    let checked = |evs: &[Envelope]| -> Vec<Checked> {
        evs.iter()
            .map(|e| check(&topic_of(e), e.to_json().as_bytes(), 1 << 20).unwrap())
            .collect()
    };
    let f = store_batch(&db, &checked(&events), 7).await.unwrap();
    assert!(f.iter().all(|x| *x));
    // Redelivery of the whole batch (a hub killed before its acks): nothing changes.
    let f = store_batch(&db, &checked(&events), 7).await.unwrap();
    assert!(f.iter().all(|x| !*x));
    let rows = sqlx::query(
        "SELECT bucket, bucket_start_ms, entries, exits FROM counts WHERE site = 'pier' ORDER BY bucket, bucket_start_ms",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            use sqlx::Row;
            (
                r.get::<String, _>("bucket"),
                r.get::<i64, _>("entries"),
                r.get::<i64, _>("exits"),
            )
        })
        .collect();
    // 6 intervals of 2 entries 20 minutes apart: hours 03, 04 (3 each... 03:00, 03:20, 03:40 | 04:00..)
    assert_eq!(
        got,
        vec![
            ("day".into(), 12, 6),
            ("hour".into(), 6, 3),
            ("hour".into(), 6, 3)
        ]
    );

    let mut m = Envelope::new(
        "pier",
        "a1",
        t0,
        EventKind::WatchlistMatch(WatchlistMatch {
            camera: "gate".into(),
            track_id: 4,
            list: ListKind::Wanted,
            entry_id: "W1".into(),
            watchlist_version: 3,
            similarity: 0.61,
            threshold: 0.43,
            votes: 2,
            rank: 1,
            faces_used: 3,
            snapshot_jpeg_b64: base64::engine::general_purpose::STANDARD
                .encode([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]),
            stream_time_s: 12.5,
            models: vec!["sface.onnx".into()],
            evidence: None,
        }),
    );
    let c = check(&topic_of(&m), m.to_json().as_bytes(), 1 << 20).unwrap();
    assert!(!c.stored_json.contains("/9j/") && c.snapshot.is_some());
    store_batch(&db, &[c], 7).await.unwrap();
    use sqlx::Row;
    let r = sqlx::query("SELECT status, snapshot, entry_id FROM alerts WHERE id = $1")
        .bind(m.id.to_string())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(r.get::<String, _>("status"), "candidate");
    assert_eq!(r.get::<Vec<u8>, _>("snapshot")[..2], [0xFF, 0xD8]);
    // The same alert again (QoS 1 redelivery) is not a second alert.
    m.ts = t0;
    let c = check(&topic_of(&m), m.to_json().as_bytes(), 1 << 20).unwrap();
    assert_eq!(store_batch(&db, &[c], 7).await.unwrap(), vec![false]);
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM alerts")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 1);
    // It waits for review: the gauge the dashboard shows reads it.
    let waiting = crate::alerts::awaiting_review(&db).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].0.as_str(), waiting[0].1), ("candidate", 1));
    assert!(waiting[0].2 > 0);
}

fn status(
    camera: &str,
    ts: time::OffsetDateTime,
    degraded: Option<bool>,
    fps: Option<f64>,
) -> Checked {
    use checkpoint_protocol::{CameraStatus, DegradedReason};
    let on = degraded == Some(true);
    let e = Envelope::new(
        "pier",
        "a1",
        ts,
        EventKind::CameraStatus(CameraStatus {
            camera: camera.into(),
            state: CameraState::Up,
            fps,
            effective_fps: fps,
            sampling_fps: fps,
            reliable_fps: degraded.map(|_| 2.0),
            degraded,
            degraded_reason: on.then_some(DegradedReason::Overload),
            degraded_since: on.then(|| ts - time::Duration::seconds(3)),
            ..Default::default()
        }),
    );
    check(&topic_of(&e), e.to_json().as_bytes(), 1 << 20).unwrap()
}

async fn degraded_periods(db: Db) {
    use sqlx::Row;
    let t0 = datetime!(2026-11-24 03:50 UTC);
    let at = |s: i64| t0 + time::Duration::seconds(s);
    // An agent of 1.2 (no `degraded`), then a 1.3 camera that degrades, stays so with a lower rate,
    // recovers, degrades again and is stopped with its agent.
    let batch = vec![
        status("old", at(0), None, Some(5.0)),
        status("gate", at(0), Some(false), Some(5.0)),
        status("gate", at(10), Some(true), Some(1.6)),
        status("gate", at(20), Some(true), Some(1.2)),
        // Without a rate (the meter restarted): the lowest stays.
        status("gate", at(25), Some(true), None),
        status("gate", at(30), Some(false), Some(2.4)),
        status("gate", at(600), Some(true), Some(1.5)),
    ];
    store_batch(&db, &batch, 7).await.unwrap();
    let periods = |db: &Db| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(
                "SELECT camera, start_ms, end_ms, reason, min_fps FROM camera_degraded ORDER BY start_ms",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>("camera"),
                    r.get::<i64, _>("start_ms"),
                    r.try_get::<Option<i64>, _>("end_ms").ok().flatten(),
                    r.get::<String, _>("reason"),
                    r.get::<f64, _>("min_fps"),
                )
            })
            .collect::<Vec<_>>()
        }
    };
    let got = periods(&db).await;
    assert_eq!(
        got,
        vec![
            (
                "gate".into(),
                ms(at(7)),
                Some(ms(at(30))),
                "overload".into(),
                1.2
            ),
            ("gate".into(), ms(at(597)), None, "overload".into(), 1.5),
        ]
    );
    let cam = sqlx::query(
        "SELECT degraded, degraded_reason, degraded_since_ms, effective_fps, reliable_fps FROM cameras \
         WHERE camera = 'gate'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(cam.get::<i64, _>("degraded"), 1);
    assert_eq!(cam.get::<String, _>("degraded_reason"), "overload");
    assert_eq!(cam.get::<i64, _>("degraded_since_ms"), ms(at(597)));
    assert_eq!(cam.get::<f64, _>("effective_fps"), 1.5);
    let old = sqlx::query("SELECT degraded, effective_fps, fps FROM cameras WHERE camera = 'old'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(old.get::<i64, _>("degraded"), 0);
    assert_eq!(
        old.try_get::<Option<f64>, _>("effective_fps")
            .ok()
            .flatten(),
        Some(5.0)
    );
    // The agent stops: its open period ends, its cameras are no longer degraded.
    let off = Envelope::new(
        "pier",
        "a1",
        at(700),
        EventKind::AgentStatus(checkpoint_protocol::AgentStatus {
            state: AgentState::Offline,
            version: "t".into(),
            cameras: vec!["gate".into()],
        }),
    );
    let off = check(&topic_of(&off), off.to_json().as_bytes(), 1 << 20).unwrap();
    store_batch(&db, &[off], 7).await.unwrap();
    assert_eq!(periods(&db).await[1].2, Some(ms(at(700))));
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM cameras WHERE degraded = 1")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn degraded_periods_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    degraded_periods(db).await;
}

#[tokio::test]
async fn degraded_periods_on_postgres() {
    if let Some(db) = testing::postgres().await {
        degraded_periods(db).await;
    }
}

#[tokio::test]
async fn storing_is_idempotent_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    idempotent(db).await;
}

#[tokio::test]
async fn storing_is_idempotent_on_postgres() {
    if let Some(db) = testing::postgres().await {
        idempotent(db).await;
    }
}

/// A batch with what makes set-based writes tricky: repeated buckets and lines, several reports of one
/// camera (plain, reconnecting, down, and a camera whose period opens and closes within the batch),
/// crossings on boundary and non-boundary lines, a redelivered event, two agents at two sites.
fn mixed_batch() -> Vec<Checked> {
    use checkpoint_protocol::{CameraStatus, Direction, LineCrossing};
    let t0 = datetime!(2026-11-24 03:58 UTC);
    let mut envs = Vec::new();
    for i in 0..40i64 {
        let t = t0 + time::Duration::seconds(i * 7);
        let site = if i % 3 == 0 { "dock" } else { "pier" };
        let agent = if i % 2 == 0 { "a1" } else { "a2" };
        let mut c = count_event(site, (i % 5) as u64, t);
        c.agent = agent.into();
        if let EventKind::Count(cnt) = &mut c.event {
            cnt.camera = format!("cam{}", i % 2);
            cnt.total_entries = 100 + i as u64;
        }
        envs.push(c);
        let cross = LineCrossing {
            camera: "cam0".into(),
            line: if i % 4 == 0 {
                "inner".into()
            } else {
                "gate".into()
            },
            direction: if i % 3 == 0 {
                Direction::Out
            } else {
                Direction::In
            },
            track_id: i as u64,
            stream_time_s: i as f64,
            site_boundary: match i % 4 {
                0 => Some(false),
                1 => None,
                _ => Some(true),
            },
        };
        envs.push(Envelope::new(
            site,
            agent,
            t,
            EventKind::LineCrossing(cross),
        ));
        let state = match i % 7 {
            3 => CameraState::Reconnecting,
            5 => CameraState::Down,
            _ => CameraState::Up,
        };
        let plain = CameraStatus {
            camera: format!("cam{}", i % 2),
            state,
            fps: Some(9.5),
            degraded: (i % 2 == 0).then_some(false),
            ..Default::default()
        };
        envs.push(Envelope::new(
            site,
            agent,
            t,
            EventKind::CameraStatus(plain),
        ));
    }
    let mut checked: Vec<Checked> = envs
        .iter()
        .map(|e| check(&topic_of(e), e.to_json().as_bytes(), 1 << 20).unwrap())
        .collect();
    // A camera whose degraded period opens, goes on and closes inside the batch.
    checked.push(status("slow", t0, Some(true), Some(1.0)));
    checked.push(status(
        "slow",
        t0 + time::Duration::seconds(10),
        Some(true),
        Some(0.5),
    ));
    checked.push(status(
        "slow",
        t0 + time::Duration::seconds(20),
        Some(false),
        Some(5.0),
    ));
    // A redelivery inside the same batch.
    let again = checked[4].env.clone();
    checked.push(check(&topic_of(&again), again.to_json().as_bytes(), 1 << 20).unwrap());
    checked
}

/// The rows of the tables ingest writes, as text, in key order (times of receipt left out).
async fn tables(db: &Db) -> Vec<String> {
    use sqlx::Row;
    let queries = [
        "SELECT site || '|' || camera || '|' || line || '|' || bucket || '|' || bucket_start_ms || '|' || entries || '|' || exits FROM counts",
        "SELECT site || '|' || agent || '|' || camera || '|' || line || '|' || total_entries || '|' || total_exits || '|' || occupancy || '|' || ts_ms FROM line_state",
        "SELECT site || '|' || agent || '|' || camera || '|' || state || '|' || COALESCE(CAST(fps AS TEXT), '-') || '|' || reconnects || '|' || updated_ms || '|' || degraded FROM cameras",
        "SELECT site || '|' || agent || '|' || camera || '|' || start_ms || '|' || COALESCE(CAST(end_ms AS TEXT), 'open') || '|' || reason FROM camera_degraded",
        "SELECT site || '|' || agent || '|' || camera || '|' || line || '|' || flag_missing || '|' || hour_ms || '|' || entries || '|' || exits FROM occupancy_hours",
        "SELECT event_id FROM occupancy_crossings",
        "SELECT site || '|' || agent || '|' || state FROM agents",
        "SELECT id FROM events",
    ];
    let mut out = Vec::new();
    for q in queries {
        let mut rows: Vec<String> = sqlx::query(q)
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        rows.sort();
        out.push(format!("{q}\n{}", rows.join("\n")));
    }
    out
}

async fn batch_equals_one_by_one(batched: Db, singly: Db) {
    let events = mixed_batch();
    let fresh = store_batch(&batched, &events, 7).await.unwrap();
    assert_eq!(
        fresh.iter().filter(|f| !**f).count(),
        1,
        "the redelivery is not new"
    );
    assert!(!fresh.last().unwrap());
    for e in &events {
        store_batch(&singly, std::slice::from_ref(e), 7)
            .await
            .unwrap();
    }
    let (a, b) = (tables(&batched).await, tables(&singly).await);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    // And the same batch again is a no-op.
    assert!(store_batch(&batched, &events, 7)
        .await
        .unwrap()
        .iter()
        .all(|f| !f));
    assert_eq!(tables(&batched).await, a);
}

#[tokio::test]
async fn a_batch_gives_the_same_tables_as_one_event_at_a_time_on_sqlite() {
    let (a, _d1) = testing::sqlite().await;
    let (b, _d2) = testing::sqlite().await;
    batch_equals_one_by_one(a, b).await;
}

#[tokio::test]
async fn a_batch_gives_the_same_tables_as_one_event_at_a_time_on_postgres() {
    let (Some(a), Some(b)) = (testing::postgres().await, testing::postgres().await) else {
        return;
    };
    batch_equals_one_by_one(a, b).await;
}

/// Several hubs store one agent's reports side by side, so an older report may commit after a newer one:
/// the newer state stays, and every reconnect still counts.
async fn camera_reports_out_of_order(db: Db) {
    use checkpoint_protocol::CameraStatus;
    let t0 = datetime!(2026-11-24 03:00 UTC);
    let report = |secs: i64, state: CameraState| {
        let e = Envelope::new(
            "pier",
            "a1",
            t0 + time::Duration::seconds(secs),
            EventKind::CameraStatus(CameraStatus {
                camera: "gate".into(),
                state,
                ..Default::default()
            }),
        );
        check(&topic_of(&e), e.to_json().as_bytes(), 1 << 20).unwrap()
    };
    store_batch(&db, &[report(20, CameraState::Down)], 7)
        .await
        .unwrap();
    store_batch(&db, &[report(10, CameraState::Reconnecting)], 7)
        .await
        .unwrap();
    let (state, reconnects, updated): (String, i64, i64) = sqlx::query_as(
        "SELECT state, reconnects, updated_ms FROM cameras WHERE site = 'pier' AND camera = 'gate'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(state, "down");
    assert_eq!(reconnects, 1);
    assert_eq!(updated, ms(t0 + time::Duration::seconds(20)));
}

#[tokio::test]
async fn camera_reports_out_of_order_on_sqlite() {
    let (db, _d) = testing::sqlite().await;
    camera_reports_out_of_order(db).await;
}

#[tokio::test]
async fn camera_reports_out_of_order_on_postgres() {
    if let Some(db) = testing::postgres().await {
        camera_reports_out_of_order(db).await;
    }
}
