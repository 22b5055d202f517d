//! The hub killed with SIGKILL in the middle of ingesting a burst of events, then started again: with a broker
//! that keeps the hub's session (Mosquitto), every event ends up stored exactly once and the rollups count each
//! one once. (The embedded broker keeps its state in the hub's memory and cannot give this guarantee; see the
//! README.)

use std::time::Duration;

use checkpoint_e2e::hub::Hub;
use checkpoint_e2e::mqtt::{free_port, publish_all, unique_site, BrokerKind, BrokerProcess};
use checkpoint_e2e::{metric, wait_until};
use checkpoint_protocol::{Count, Envelope, EventKind};

const EVENTS: usize = 20_000;

#[test]
fn hub_killed_mid_ingest_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A persistent session's queue must hold the whole burst while the hub is down.
    let _broker = BrokerProcess::start_with(
        BrokerKind::Mosquitto,
        port,
        "allow_anonymous true\nmax_queued_messages 1000000",
    );
    let mqtt = format!(
        "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"hub-crash-{}\"",
        std::process::id()
    );
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(dir.path(), &mqtt, &db);
    let admin = hub.bootstrap_admin();
    hub.add_users(&admin, &[("op1", "operator")]);

    let site = unique_site("crash");
    let t0 = time::OffsetDateTime::now_utc();
    let payloads: Vec<Vec<u8>> = (0..EVENTS)
        .map(|i| {
            let start = t0 + time::Duration::milliseconds(i as i64);
            Envelope::new(
                &site,
                "a1",
                start,
                EventKind::Count(Count {
                    camera: "gate".into(),
                    line: "l1".into(),
                    interval_start: start,
                    interval_end: start + time::Duration::seconds(10),
                    entries: 1,
                    exits: 0,
                    total_entries: i as u64 + 1,
                    total_exits: 0,
                    occupancy: i as i64 + 1,
                }),
            )
            .to_json()
            .into_bytes()
        })
        .collect();
    let topic = format!("checkpoint/{site}/a1/count");
    let sender = std::thread::spawn(move || publish_all(port, &topic, payloads));

    // Kill the hub once it has stored part of the burst.
    let stored = |h: &Hub| {
        let (_, m) = h.get("/metrics", None);
        metric(
            &m,
            "checkpoint_hub_events_total{kind=\"count\",outcome=\"new\"}",
        )
        .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || stored(&hub) >= 300.0),
        "ingest started; log:\n{}",
        hub.log_text()
    );
    let before_kill = stored(&hub);
    drop(hub); // SIGKILL, then reap
    sender.join().unwrap();

    let hub = Hub::start(dir.path(), &mqtt, &db);
    let op = hub.login("op1", "password op1");
    let total = |h: &Hub| -> i64 {
        let (_, body) = h.get(
            &format!("/api/sites/{site}/counts?bucket=day&from_ms=0"),
            Some(&op),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["entries"].as_i64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    let done = wait_until(Duration::from_secs(120), || total(&hub) >= EVENTS as i64);
    let got = total(&hub);
    eprintln!(
        "{before_kill} events stored before the kill; {got} entries counted after the restart"
    );
    assert!(
        done,
        "every event stored after the restart: {got} of {EVENTS}; log:\n{}",
        hub.log_text()
    );
    // Let any redelivery arrive, then check nothing was counted twice.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        total(&hub),
        EVENTS as i64,
        "each event counted exactly once"
    );
    assert!(before_kill < EVENTS as f64, "the kill happened mid-burst");
}
