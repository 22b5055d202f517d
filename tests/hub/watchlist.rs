//! From enrolment to a confirmed alert, end to end: a supervisor enrols a person on the wanted list at the
//! hub from a photo; the hub pushes the list to the site's agent over MQTT; the agent, on a generated scene in
//! which that person walks past (from a different photo), raises a candidate; the hub stores it with its
//! snapshot; two different operators must confirm it before it is final; everything is in the audit chain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use checkpoint_e2e::hub::{b64, AgentLogin, Hub};
use checkpoint_e2e::mqtt::{free_port, unique_site};
use checkpoint_e2e::{shared_dir, wait_until, Agent};

fn agent_config(dir: &Path, site: &str, port: u16, source: &str, login: &AgentLogin) -> PathBuf {
    let cfg = checkpoint_e2e::gate_agent_config(dir, site, port, source, "", 2.0);
    login.provision(&cfg);
    cfg
}

#[test]
fn enrolled_at_the_hub_seen_at_the_edge_confirmed_by_two_people() {
    let dir = tempfile::tempdir().unwrap();
    let scene_video = checkpoint_e2e::zico_gate_scene(&dir.path().join("scene"));
    let enrol_photo =
        std::fs::read(shared_dir().join("datasets/faces/lfw_fold1/Zico/Zico_0001.jpg")).unwrap();

    let port = free_port();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let hub = Hub::start(
        dir.path(),
        &format!("[mqtt]\nembedded = true\nlisten = \"127.0.0.1:{port}\""),
        &db,
    );
    let admin = hub.bootstrap_admin();
    let [sup, op1, op2] = hub
        .add_users(
            &admin,
            &[
                ("sup1", "supervisor"),
                ("op1", "operator"),
                ("op2", "operator"),
            ],
        )
        .try_into()
        .unwrap();
    let site = unique_site("wlhub");

    // Enrolment.
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 30 * 86_400_000;
    let entry = |photo: &[u8]| {
        format!(
            r#"{{"list":"wanted","label":"Zico","case_ref":"HP-2026-017","legal_basis":"Lệnh truy nã 17/2026",
                "issued_by":"PC02 Hải Phòng","expires_ms":{expires},"sites":["{site}"],"photos_jpeg_b64":["{}"]}}"#,
            b64(photo)
        )
    };
    // A photo of several people is refused with the reason.
    let group = std::fs::read(
        shared_dir().join("datasets/faces/lfw_fold1/Robert_Evans/Robert_Evans_0002.jpg"),
    )
    .unwrap();
    let (st, body) = hub.request(
        "POST",
        "/api/watchlists/entries",
        Some(&sup),
        Some(&entry(&group)),
    );
    assert_eq!(st, 422, "{body}");
    assert!(body.contains("photo 0") && body.contains("faces"), "{body}");
    // What the UI translates: the code, and which photo and how many faces.
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "several_faces", "{body}");
    assert_eq!(v["details"]["index"], 0, "{body}");
    assert!(
        v["details"]["faces"].as_u64().is_some_and(|n| n >= 2),
        "{body}"
    );
    let (st, _) = hub.request(
        "POST",
        "/api/watchlists/entries",
        Some(&op1),
        Some(&entry(&enrol_photo)),
    );
    assert_eq!(st, 403, "operators cannot enrol");
    let (st, body) = hub.request(
        "POST",
        "/api/watchlists/entries",
        Some(&sup),
        Some(&entry(&enrol_photo)),
    );
    assert_eq!(st, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entry_id = created["id"].as_str().unwrap().to_string();
    let photo_id = created["photo_ids"][0].as_str().unwrap().to_string();

    // The agent comes up with no list; the hub sends it one.
    let adir = tempfile::tempdir().unwrap();
    let pattern = r#"{ kind = "test", pattern = "ball", width = 160, height = 120, fps = 10 }"#;
    let login = hub.agent_login(&site, "a1");
    let cfg = agent_config(adir.path(), &site, port, pattern, &login);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("exit_when_done = true", "exit_when_done = false");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg, adir.path());
    let synced = wait_until(Duration::from_secs(60), || {
        let (_, body) = hub.get("/api/watchlists/status", Some(&sup));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["agents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .any(|x| x["site"] == site.as_str() && x["in_sync"] == true)
            })
            .unwrap_or(false)
    });
    assert!(
        synced,
        "agent in sync; hub log:\n{}\nagent log:\n{}",
        hub.log_text(),
        agent.log_text()
    );
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());

    // The person walks past the gate.
    let source = format!(r#"{{ kind = "file", path = "{}" }}"#, scene_video.display());
    let mut agent = Agent::start(
        &agent_config(adir.path(), &site, port, &source, &login),
        adir.path(),
    );
    assert!(
        agent.wait(Duration::from_secs(300)).success(),
        "{}",
        agent.log_text()
    );
    let mut alert_id = String::new();
    let arrived = wait_until(Duration::from_secs(30), || {
        let (_, body) = hub.get(
            &format!("/api/alerts?status=candidate&site={site}"),
            Some(&op1),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if let Some(a) = v.as_array().and_then(|a| a.first()) {
            alert_id = a["id"].as_str().unwrap_or_default().to_string();
        }
        !alert_id.is_empty()
    });
    assert!(
        arrived,
        "a candidate alert reached the hub; hub log:\n{}",
        hub.log_text()
    );
    let (_, body) = hub.get(&format!("/api/alerts?site={site}"), Some(&op1));
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "one alert for one pass: {body}"
    );
    assert_eq!(all[0]["entry_id"], entry_id.as_str());
    // The calibrated evidence travels with the candidate: one entry on a list held to 1 false candidate
    // per 1,000 passers-by, with the quality of the faces fused.
    let ev = &all[0]["evidence"];
    assert_eq!(ev["list_entries"], 1, "{body}");
    assert_eq!(ev["target_fpir"], 0.001, "{body}");
    assert!(ev["expected_fpir"].as_f64().unwrap() <= 0.001, "{body}");
    let q = ev["face_quality"].as_f64().unwrap();
    assert!(q > 0.0 && q <= 1.0, "{body}");
    assert!(
        ev["score_fmr"].as_f64().unwrap() < 1e-4,
        "a true match is rarer than 1 in 10,000 strangers: {body}"
    );

    // The reviewer sees the snapshot beside the enrolled photo.
    let (st, snap) = hub.get(&format!("/api/alerts/{alert_id}/snapshot"), Some(&op1));
    assert_eq!(st, 200);
    assert!(!snap.is_empty());
    let (st, _) = hub.get(
        &format!("/api/watchlists/entries/{entry_id}/photos/{photo_id}"),
        Some(&op1),
    );
    assert_eq!(st, 200);

    // Two different people confirm.
    let review = |token: &str, decision: &str, note: &str| {
        hub.request(
            "POST",
            &format!("/api/alerts/{alert_id}/review"),
            Some(token),
            Some(&format!(r#"{{"decision":"{decision}","note":"{note}"}}"#)),
        )
    };
    let (st, body) = review(&op1, "confirm", "");
    assert_eq!(st, 400, "a note is required: {body}");
    let (st, body) = review(&op1, "confirm", "Same face shape, ears and hairline");
    assert_eq!((st, body.contains("confirmed_once")), (200, true), "{body}");
    let (st, body) = review(&op1, "confirm", "again");
    assert_eq!(st, 409, "the same person cannot confirm twice: {body}");
    let (st, body) = review(&admin, "confirm", "admin");
    assert_eq!(st, 403, "admins do not review: {body}");
    let (st, body) = review(&op2, "confirm", "Agree, same person");
    assert_eq!((st, body.contains("\"confirmed\"")), (200, true), "{body}");
    let (st, body) = review(&op2, "dismiss", "too late");
    assert_eq!(st, 409, "final: {body}");

    // Audited, chain intact.
    let (_, body) = hub.get("/api/audit?action=alert.", Some(&sup));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reviews = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "alert.review")
        .count();
    assert_eq!(reviews, 2, "{body}");
    assert!(body.contains("alert.snapshot"));
    let (_, body) = hub.get("/api/audit/verify", Some(&sup));
    assert!(body.contains("\"ok\":true"), "{body}");

    // The list's policy: what it costs at its size; only an administrator changes it, and the change is a new
    // revision every agent must fetch.
    let (st, body) = hub.get("/api/watchlists/policies", Some(&op1));
    assert_eq!(st, 200, "{body}");
    let lists: serde_json::Value = serde_json::from_str(&body).unwrap();
    let wanted = &lists[0];
    assert_eq!(
        (wanted["list"].as_str(), wanted["entries"].as_u64()),
        (Some("wanted"), Some(1))
    );
    assert_eq!(
        wanted["threshold"].as_f64().unwrap() as f32,
        0.43f32,
        "the floor holds for one entry"
    );
    assert!(wanted["false_per_1000"].as_f64().unwrap() <= 1.0, "{body}");
    assert_eq!(wanted["over_target"], false);
    assert!(wanted["capacity"].as_u64().unwrap() > 100, "{body}");
    let change = r#"{"target_fpir":0.000001,"max_fnir":0.2}"#;
    let (st, _) = hub.request(
        "PUT",
        "/api/watchlists/policies/wanted",
        Some(&sup),
        Some(change),
    );
    assert_eq!(st, 403, "supervisors do not set policies");
    let (st, body) = hub.request(
        "PUT",
        "/api/watchlists/policies/wanted",
        Some(&admin),
        Some(r#"{"target_fpir":0.5,"max_fnir":0.2}"#),
    );
    assert_eq!(st, 400, "{body}");
    let (st, body) = hub.request(
        "PUT",
        "/api/watchlists/policies/wanted",
        Some(&admin),
        Some(change),
    );
    assert_eq!(st, 200, "{body}");
    let lists: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(lists[0]["target_fpir"], 0.000001);
    assert!(lists[0]["threshold"].as_f64().unwrap() > 0.43, "{body}");
    let (_, body) = hub.get("/api/watchlists/status", Some(&sup));
    assert!(
        body.contains("\"in_sync\":false"),
        "the policy is a new version: {body}"
    );
    let (_, body) = hub.get("/api/audit?action=watchlist.policy", Some(&sup));
    assert!(body.contains("target_fpir=0.000001"), "{body}");

    // Withdrawing the entry reaches the agent too (its next status shows the new version).
    let (st, _) = hub.request(
        "POST",
        &format!("/api/watchlists/entries/{entry_id}/withdraw"),
        Some(&sup),
        Some(r#"{"reason":"arrested 2026-11-24"}"#),
    );
    assert_eq!(st, 200);
}
