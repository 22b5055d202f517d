//! Site occupancy at the real hub (issue 13, item 5), with its own broker and SQLite and with Mosquitto and
//! PostgreSQL: two agents of one island publish crossings of their boundary lines; a supervisor sets the
//! starting occupancy and a daily reset a minute or so ahead; the figure counts every boundary line of both
//! agents once (a duplicated event, an inner line and a crossing from before the setting change nothing),
//! goes back to the starting occupancy at the reset, and a count that comes out negative is reported as a
//! fault naming the line whose exits exceeded its entries, in the API and on /metrics, never as a number.

use std::time::Duration;

use checkpoint_e2e::hub::{pg_schema, AgentLogin, Hub};
use checkpoint_e2e::mqtt::{free_port, publish_all_as, system_mosquitto, unique_site};
use checkpoint_e2e::{metric, wait_until};
use checkpoint_protocol::{Direction, Envelope, EventKind, LineCrossing};
use serde_json::Value;
use time::OffsetDateTime;

const VN_OFFSET_S: i64 = 7 * 3600;

fn crossing(
    site: &str,
    agent: &str,
    camera: &str,
    line: &str,
    direction: Direction,
    at: OffsetDateTime,
    boundary: bool,
) -> Envelope {
    Envelope::new(
        site,
        agent,
        at,
        EventKind::LineCrossing(LineCrossing {
            camera: camera.into(),
            line: line.into(),
            direction,
            track_id: 1,
            stream_time_s: 0.0,
            site_boundary: Some(boundary),
        }),
    )
}

/// Whether the broker takes this login now (the hub's own broker reads new agent accounts every few seconds).
fn broker_takes(port: u16, login: &AgentLogin) -> bool {
    let mut opts = rumqttc::MqttOptions::new(unique_site("probe"), "127.0.0.1", port);
    if let Some((user, password)) = login.creds() {
        opts.set_credentials(user, password);
    }
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(opts, 10);
    let ok = matches!(
        conn.iter().next(),
        Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))))
            if a.code == rumqttc::ConnectReturnCode::Success
    );
    let _ = client.disconnect();
    ok
}

/// Publishes events as the agent whose login this is (each on its own topic).
fn publish(port: u16, login: &AgentLogin, events: &[Envelope]) {
    for e in events {
        publish_all_as(
            port,
            login.creds(),
            &checkpoint_protocol::topic(&e.site, &e.agent, e.kind()),
            vec![e.to_json().into_bytes()],
        );
    }
}

fn occupancy(hub: &Hub, site: &str, token: &str) -> Value {
    let (st, body) = hub.get(&format!("/api/sites/{site}/occupancy"), Some(token));
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// (entries, exits) of one line in a figure's `lines`.
fn line_of(v: &Value, agent: &str, line: &str) -> Option<(i64, i64)> {
    v["lines"].as_array()?.iter().find_map(|l| {
        (l["agent"] == agent && l["line"] == line)
            .then(|| (l["entries"].as_i64().unwrap(), l["exits"].as_i64().unwrap()))
    })
}

fn scenario(mqtt_section: &str, port: u16, database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), mqtt_section, database_url);
    let admin = hub.bootstrap_admin();
    let [op, sup] = hub
        .add_users(&admin, &[("op1", "operator"), ("sup1", "supervisor")])
        .try_into()
        .unwrap();
    let site = unique_site("isl");
    let a1 = hub.agent_login(&site, "a1");
    let a2 = hub.agent_login(&site, "a2");
    for login in [&a1, &a2] {
        assert!(
            wait_until(Duration::from_secs(30), || broker_takes(port, login)),
            "the broker never took {}",
            login.username
        );
    }
    let settings_path = format!("/api/sites/{site}/occupancy/settings");

    // Nobody has set the site up: no figure.
    let v = occupancy(&hub, &site, &op);
    assert!(v["settings"].is_null() && v["occupancy"].is_null(), "{v}");

    // Who may set it, and what is refused, with stable codes.
    let body = r#"{"starting_occupancy": 10}"#;
    assert_eq!(hub.request("PUT", &settings_path, None, Some(body)).0, 401);
    assert_eq!(
        hub.request("PUT", &settings_path, Some(&op), Some(body)).0,
        403,
        "operators watch, they do not set"
    );
    for (bad, code) in [
        (r#"{"starting_occupancy": -1}"#, "bad_starting_occupancy"),
        (
            r#"{"starting_occupancy": 1, "reset_time": "25:00"}"#,
            "bad_reset_time",
        ),
        (
            r#"{"starting_occupancy": 1, "utc_offset": "+7"}"#,
            "bad_utc_offset",
        ),
    ] {
        let (st, b) = hub.request("PUT", &settings_path, Some(&sup), Some(bad));
        assert_eq!(st, 400, "{bad}: {b}");
        assert!(b.contains(&format!("\"code\":\"{code}\"")), "{bad}: {b}");
    }
    let (st, b) = hub.request(
        "PUT",
        "/api/sites/no-such-site/occupancy/settings",
        Some(&admin),
        Some(body),
    );
    assert_eq!(st, 404, "{b}");
    assert!(b.contains("\"code\":\"unknown_site\""), "{b}");

    // A daily reset on the next whole minute at least 40 s away, in Vietnam's local time.
    let now = OffsetDateTime::now_utc();
    let reset_s = (now.unix_timestamp() + 40).div_euclid(60) * 60 + 60;
    let reset = OffsetDateTime::from_unix_timestamp(reset_s).unwrap();
    let local = (reset_s + VN_OFFSET_S).rem_euclid(86_400);
    let reset_time = format!("{:02}:{:02}", local / 3600, local % 3600 / 60);
    let (st, b) = hub.request(
        "PUT",
        &settings_path,
        Some(&sup),
        Some(&format!(
            r#"{{"starting_occupancy": 10, "reset_time": "{reset_time}", "utc_offset": "+07:00"}}"#
        )),
    );
    assert_eq!(st, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["occupancy"], 10, "{v}");
    assert_eq!(v["next_reset_ms"], reset_s * 1000, "{v}");
    assert_eq!(v["settings"]["reset_time"], reset_time.as_str());
    assert_eq!(v["settings"]["set_by"], "sup1");

    // Before the reset: three entries at a1's gate (one of them delivered twice), one exit at a2's quay,
    // an inner line of a1 (not a boundary), a crossing stamped before the setting, and one at a2 stamped
    // after the reset (it belongs to the next period).
    use Direction::{In, Out};
    let t = OffsetDateTime::now_utc();
    let dup = crossing(&site, "a1", "gate", "g", In, t, true);
    publish(
        port,
        &a1,
        &[
            dup.clone(),
            crossing(&site, "a1", "gate", "g", In, t, true),
            crossing(&site, "a1", "gate", "g", In, t, true),
            crossing(&site, "a1", "hall", "inner", In, t, false),
            crossing(&site, "a1", "hall", "inner", In, t, false),
            crossing(
                &site,
                "a1",
                "gate",
                "g",
                In,
                t - time::Duration::hours(1),
                true,
            ),
            dup,
        ],
    );
    publish(
        port,
        &a2,
        &[
            crossing(&site, "a2", "quay", "q", Out, t, true),
            crossing(
                &site,
                "a2",
                "quay",
                "q",
                In,
                reset + time::Duration::seconds(1),
                true,
            ),
        ],
    );
    let ok = wait_until(Duration::from_secs(30), || {
        let v = occupancy(&hub, &site, &op);
        v["occupancy"] == 12 && v["entries"] == 3 && v["exits"] == 1
    });
    assert!(
        ok,
        "10 + 3 - 1 before the reset: {}\nhub log:\n{}",
        occupancy(&hub, &site, &op),
        hub.log_text()
    );
    assert!(
        OffsetDateTime::now_utc() < reset,
        "the checks before the reset took too long"
    );
    let v = occupancy(&hub, &site, &op);
    assert_eq!(line_of(&v, "a1", "g"), Some((3, 0)), "{v}");
    assert_eq!(line_of(&v, "a2", "q"), Some((0, 1)), "{v}");
    assert_eq!(line_of(&v, "a1", "inner"), None, "{v}");
    let (_, m) = hub.get("/metrics", None);
    assert!(
        metric(
            &m,
            "checkpoint_hub_events_total{kind=\"line_crossing\",outcome=\"duplicate\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the duplicate was seen and ignored:\n{m}"
    );
    let gauge = format!("checkpoint_hub_site_occupancy{{site=\"{site}\"}}");
    assert!(
        wait_until(Duration::from_secs(20), || metric(
            &hub.get("/metrics", None).1,
            &gauge
        ) == Some(12.0)),
        "{gauge} on /metrics"
    );

    // After the reset: back to 10, plus what is stamped after it.
    let wait = (reset - OffsetDateTime::now_utc())
        .whole_milliseconds()
        .max(0) as u64
        + 500;
    std::thread::sleep(Duration::from_millis(wait));
    let v = occupancy(&hub, &site, &op);
    assert_eq!(v["period_start_ms"], reset_s * 1000, "{v}");
    assert_eq!(v["next_reset_ms"], (reset_s + 86_400) * 1000, "{v}");
    assert_eq!(v["occupancy"], 11, "{v}");
    assert_eq!(line_of(&v, "a2", "q"), Some((1, 0)), "{v}");

    // More exits at a2's quay than there were people: a fault naming that line, not a number.
    let t = OffsetDateTime::now_utc();
    publish(
        port,
        &a1,
        &[
            crossing(&site, "a1", "gate", "g", In, t, true),
            crossing(&site, "a1", "gate", "g", In, t, true),
        ],
    );
    publish(
        port,
        &a2,
        &(0..14)
            .map(|_| crossing(&site, "a2", "quay", "q", Out, t, true))
            .collect::<Vec<_>>(),
    );
    let ok = wait_until(Duration::from_secs(30), || {
        !occupancy(&hub, &site, &op)["fault"].is_null()
            && occupancy(&hub, &site, &op)["exits"] == 14
    });
    let v = occupancy(&hub, &site, &op);
    assert!(ok, "a fault: {v}");
    assert!(v["occupancy"].is_null(), "{v}");
    assert_eq!(v["fault"]["code"], "negative_occupancy", "{v}");
    assert_eq!(v["fault"]["value"], 10 + 3 - 14, "{v}");
    let lines = v["fault"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{v}");
    assert_eq!(
        (&lines[0]["agent"], &lines[0]["camera"], &lines[0]["line"]),
        (&Value::from("a2"), &Value::from("quay"), &Value::from("q"))
    );
    assert_eq!(
        (&lines[0]["entries"], &lines[0]["exits"]),
        (&Value::from(1), &Value::from(14))
    );
    // Every site at once, as the list route gives it.
    let (st, b) = hub.get("/api/occupancy", Some(&op));
    assert_eq!(st, 200);
    let all: Value = serde_json::from_str(&b).unwrap();
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == site.as_str())
        .unwrap_or_else(|| panic!("{site} in {b}"));
    assert_eq!(mine["fault"]["code"], "negative_occupancy");
    // On /metrics: the fault gauge, and no occupancy figure for the site.
    let fault_gauge = format!("checkpoint_hub_site_occupancy_fault{{site=\"{site}\"}}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let m = hub.get("/metrics", None).1;
            metric(&m, &fault_gauge) == Some(1.0) && metric(&m, &gauge).is_none()
        }),
        "{fault_gauge} = 1 and no {gauge}:\n{}",
        hub.get("/metrics", None).1
    );

    // The change is in the audit log, and the routes in the OpenAPI document.
    let (_, audit) = hub.get("/api/audit?action=occupancy.", Some(&admin));
    assert!(
        audit.contains("occupancy.settings") && audit.contains(&site),
        "{audit}"
    );
    assert!(
        audit.contains(&format!("reset_time={reset_time}")),
        "{audit}"
    );
    let (_, api) = hub.get("/api/openapi.json", None);
    for p in [
        "/api/occupancy",
        "/api/sites/{site}/occupancy",
        "/api/sites/{site}/occupancy/settings",
    ] {
        assert!(api.contains(p), "OpenAPI lists {p}");
    }
}

#[test]
fn occupancy_with_embedded_broker_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    scenario(
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\""),
        port,
        &db,
    );
}

#[test]
fn occupancy_with_mosquitto_and_postgres() {
    let port = system_mosquitto();
    scenario(
        &format!(
            "[mqtt]\nembedded = false\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"{}\"",
            unique_site("hub")
        ),
        port,
        &pg_schema(),
    );
}
