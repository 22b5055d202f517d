//! The central hub end to end: the real `central-hub` binary with its own broker (or Mosquitto) and SQLite
//! (or PostgreSQL on 127.0.0.1:5432), the real agent publishing to it, and the HTTP API checked as a client
//! would: sign-in, roles, agents and counts, audit chain and tamper detection, malformed events refused.

use std::process::Command;
use std::time::Duration;

use checkpoint_e2e::hub::{pg_schema, Hub};
use checkpoint_e2e::mqtt::{free_port, publish_all_as, system_mosquitto, unique_site};
use checkpoint_e2e::{pattern_agent_config, wait_until, Agent, AgentExtra};

fn scenario(mqtt_section: &str, mqtt_port: u16, database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("hub");
    let hub = Hub::start(dir.path(), mqtt_section, database_url);

    // Users from the command line (as an installer would create the first admin), then over the API.
    let admin = hub.bootstrap_admin();
    let [op, sup, desk] = hub
        .add_users(
            &admin,
            &[
                ("op1", "operator"),
                ("sup1", "supervisor"),
                ("desk1", "lodging_staff"),
            ],
        )
        .try_into()
        .unwrap();

    // Every protected route: 401 without a token, 403 for a role that may not use it.
    for path in [
        "/api/agents",
        &format!("/api/sites/{site}/counts"),
        &format!("/api/sites/{site}/lines"),
        "/api/alerts",
        "/api/system-alerts",
        "/api/audit",
        "/api/audit/verify",
        "/api/users",
        "/api/live",
        "/api/me",
    ] {
        assert_eq!(hub.get(path, None).0, 401, "{path} without a session");
        assert_eq!(
            hub.get(path, Some("not-a-token")).0,
            401,
            "{path} with a forged token"
        );
        if path != "/api/me" {
            assert_eq!(hub.get(path, Some(&desk)).0, 403, "{path} as lodging staff");
        }
    }
    assert_eq!(hub.get("/api/users", Some(&op)).0, 403);
    assert_eq!(hub.get("/api/audit", Some(&op)).0, 403);
    // User administration: admins only, and an admin cannot lock themselves out.
    let demote = r#"{"role":"operator"}"#;
    assert_eq!(
        hub.request("PATCH", "/api/users/sup1", None, Some(demote))
            .0,
        401
    );
    assert_eq!(
        hub.request("PATCH", "/api/users/sup1", Some(&sup), Some(demote))
            .0,
        403
    );
    assert_eq!(
        hub.request("PATCH", "/api/users/admin", Some(&admin), Some(demote))
            .0,
        400
    );
    assert_eq!(
        hub.request("PATCH", "/api/users/nobody", Some(&admin), Some(demote))
            .0,
        404
    );
    let (st, body) = hub.request(
        "PATCH",
        "/api/users/desk1",
        Some(&admin),
        Some(r#"{"active":false}"#),
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"active\":false"), "{body}");
    assert_eq!(
        hub.get("/api/me", Some(&desk)).0,
        401,
        "a deactivated user's session ends"
    );
    // What a client needs to show the hub's days: public, nothing private in it.
    let (st, body) = hub.get("/api/settings", None);
    assert_eq!(st, 200);
    assert!(body.contains("\"utc_offset_hours\":7"), "{body}");

    // The web UI's live stream: open before the agent starts, it must tell of the agent and its counts.
    let live = hub.live_stream(&op);
    assert!(
        wait_until(Duration::from_secs(10), || live
            .lock()
            .unwrap()
            .contains("event: hello")),
        "live stream opened: {}",
        live.lock().unwrap()
    );

    // An agent publishes to the hub's broker with its own login.
    let login = hub.agent_login(&site, "a1");
    let adir = tempfile::tempdir().unwrap();
    let config = pattern_agent_config(
        adir.path(),
        &site,
        "a1",
        mqtt_port,
        AgentExtra {
            agent: "status_interval_s = 1",
            ..Default::default()
        },
    );
    login.provision(&config);
    let mut agent = Agent::start(&config, adir.path());
    let ok = wait_until(Duration::from_secs(60), || {
        let (_, body) = hub.get("/api/agents", Some(&op));
        body.contains(&site) && body.contains("\"state\":\"online\"")
    });
    assert!(
        ok,
        "agent online at the hub; hub log:\n{}\nagent log:\n{}",
        hub.log_text(),
        agent.log_text()
    );
    let ok = wait_until(Duration::from_secs(30), || {
        let (_, body) = hub.get(&format!("/api/sites/{site}/lines"), Some(&op));
        body.contains("\"line\":\"gate\"")
    });
    assert!(ok, "line totals at the hub");
    let text = live.lock().unwrap().clone();
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        text.contains("event: agent") || text.contains("event: camera"),
        "{text}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || live
            .lock()
            .unwrap()
            .contains("event: count")),
        "count events on the live stream: {}",
        live.lock().unwrap()
    );
    assert!(live
        .lock()
        .unwrap()
        .contains(&format!("\"site\":\"{site}\"")));
    let (st, body) = hub.get(&format!("/api/sites/{site}/counts?bucket=day"), Some(&op));
    assert_eq!(st, 200);
    assert!(body.contains("\"line\":\"gate\""), "{body}");
    // A running camera reports its analysis rate again and again, not only when its state changes.
    let ok = wait_until(Duration::from_secs(30), || {
        let (_, body) = hub.get("/api/agents", Some(&op));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array().into_iter().flatten().any(|a| {
            a["site"] == site.as_str() && a["cameras"][0]["fps"].as_f64().is_some_and(|f| f > 0.0)
        })
    });
    assert!(
        ok,
        "camera fps at the hub: {}",
        hub.get("/api/agents", Some(&op)).1
    );
    let (st, _) = hub.get(&format!("/api/sites/{site}/counts?bucket=week"), Some(&op));
    assert_eq!(st, 400);

    // Malformed and oversized events are refused with a reason and do not stop ingest.
    publish_all_as(
        mqtt_port,
        login.creds(),
        &format!("checkpoint/{site}/a1/count"),
        vec![
            b"{not json".to_vec(),
            vec![b'x'; 2 << 20],
            br#"{"id":"x"}"#.to_vec(),
        ],
    );
    let ok = wait_until(Duration::from_secs(30), || {
        let (_, m) = hub.get("/metrics", None);
        let refused: f64 = m
            .lines()
            .filter(|l| l.starts_with("checkpoint_hub_events_rejected_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        refused >= 3.0
    });
    assert!(ok, "refusals counted; log:\n{}", hub.log_text());
    let log = hub.log_text();
    assert!(log.contains("over the 1048576-byte limit"), "{log}");

    // The agent stops cleanly: offline at the hub.
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());
    let ok = wait_until(Duration::from_secs(30), || {
        let (_, body) = hub.get("/api/agents", Some(&sup));
        body.contains("\"state\":\"offline\"")
    });
    assert!(ok, "agent offline at the hub");

    // OpenAPI lists the routes; health and metrics answer without a session.
    let (st, api) = hub.get("/api/openapi.json", None);
    assert_eq!(st, 200);
    for p in [
        "/api/auth/login",
        "/api/alerts/{id}/snapshot",
        "/api/audit/verify",
        "/api/sites/{site}/counts",
    ] {
        assert!(api.contains(p), "OpenAPI lists {p}");
    }

    // The audit chain verifies, and a tampered row is found.
    let (st, body) = hub.get("/api/audit/verify", Some(&sup));
    assert_eq!(st, 200);
    assert!(body.contains("\"ok\":true"), "{body}");
    let out = hub.cli(&["audit", "verify"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    tamper_audit(database_url, &hub);
    let out = hub.cli(&["audit", "verify"], "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN at entry 2"));
}

/// Changes the second audit row behind the hub's back, as someone with database access might.
fn tamper_audit(database_url: &str, hub: &Hub) {
    let sql = "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2";
    let status = if database_url.starts_with("postgres") {
        let (base, schema) = database_url
            .split_once("?options=-c%20search_path%3D")
            .unwrap();
        Command::new("psql")
            .arg(base)
            .arg("-c")
            .arg(format!("SET search_path = {schema}; {sql}"))
            .status()
    } else {
        let path = database_url.trim_start_matches("sqlite://");
        let path = path.split('?').next().unwrap();
        Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
            .arg(path)
            .arg(sql)
            .status()
    };
    assert!(
        status.unwrap().success(),
        "tampering with the audit log; hub log:\n{}",
        hub.log_text()
    );
}

#[test]
fn hub_with_embedded_broker_and_sqlite() {
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
fn hub_with_mosquitto_and_postgres() {
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

/// Bulk import from the command line: a CSV with a photo column and a folder of photos. Good rows are stored
/// and their photos enrolled; a missing photo or a bad row is reported with its line, and the rest still go in.
#[test]
fn records_import_with_photos_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!("[mqtt]\nlisten = \"127.0.0.1:{}\"", free_port()),
        &db,
    );
    let admin = hub.bootstrap_admin();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(
        checkpoint_e2e::shared_dir().join("datasets/faces/lfw_fold1/Zico/Zico_0001.jpg"),
        photos.join("an.jpg"),
    )
    .unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "cccd;full_name;date_of_birth;gender;address;photo\n\
         001085012345;Nguyễn Văn An;02/03/1985;Nam;Số 1 Tràng Tiền, Hà Nội;an.jpg\n\
         079185000001;Trần Thị Bình;1985-07-09;Nữ;12 Lê Lợi, TP. Hồ Chí Minh;binh.jpg\n\
         079185000002;Lê Văn Cường;1985-01-01;Nam;1 Hai Bà Trưng;\n",
    )
    .unwrap();
    let out = hub.cli(
        &[
            "person",
            "import",
            "--csv",
            csv.to_str().unwrap(),
            "--photos",
            photos.to_str().unwrap(),
        ],
        "",
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("2 imported, 0 updated, 1 photos enrolled, 2 refused"),
        "{text}"
    );
    assert!(
        text.contains("line 3: 079185000001: record stored without photo: photo binh.jpg"),
        "{text}"
    );
    // 079 + 1 means a woman born in the 1900s: the man on line 4 is refused.
    assert!(text.contains("line 4:"), "{text}");
    let (status, body) = hub.get("/api/persons/001085012345", Some(&admin));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"has_photo\":true"), "{body}");
    let (_, body) = hub.get("/api/persons/079185000001", Some(&admin));
    assert!(body.contains("\"has_photo\":false"), "{body}");
    let (status, _) = hub.get("/api/persons/079185000002", Some(&admin));
    assert_eq!(status, 404);
    let (_, audit) = hub.get("/api/audit?action=person.import", Some(&admin));
    assert!(audit.contains("1 photos"), "{audit}");
}
