//! Watchlists end to end, against rumqttd (in this process) and the machine's Mosquitto on 127.0.0.1:1883:
//!
//! - alerts: a generated scene of real LFW faces. Some of the people in it are enrolled, each from a
//!   *different* photo of the same person than the one walking in the scene, plus one enrolled person who is
//!   not in the scene. The list reaches the agent as a full sync over MQTT and survives an agent restart.
//!   Every enrolled person who passes raises exactly one alert for their own entry; nobody else raises any.
//! - malformed sync: 10,000 bad payloads on the sync topics; the agent keeps running, counts every one of
//!   them, and still applies the valid sync that follows.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use checkpoint_e2e::mqtt::{
    publish_all, rumqttd_in_process, system_mosquitto, unique_site, Collector,
};
use checkpoint_e2e::{
    http_get, metric, read_events, shared_dir, signed_sync, wait_until, workspace_bin, Agent,
};
use checkpoint_protocol::watchlist::{SyncMessage, Thresholds, WatchlistEntry};
use checkpoint_protocol::{watchlist_sync_topic, EventKind, ListKind, WatchlistStatus};
use checkpoint_scenegen::{SceneSpec, Truth};
use time::OffsetDateTime;

fn faces_dir() -> PathBuf {
    shared_dir().join("datasets/faces/lfw_fold1")
}

/// The scene, generated once per test binary (both brokers' tests use it).
fn scene() -> &'static (tempfile::TempDir, Truth) {
    static SCENE: OnceLock<(tempfile::TempDir, Truth)> = OnceLock::new();
    SCENE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let spec = SceneSpec {
            duration_s: Some(60.0),
            seed: 7,
            ..Default::default()
        };
        let truth = checkpoint_scenegen::generate(&spec, dir.path()).expect("scene generated");
        (dir, truth)
    })
}

#[derive(serde::Deserialize)]
struct FacesLine {
    faces: Option<Vec<FaceLine>>,
}

#[derive(serde::Deserialize)]
struct FaceLine {
    #[serde(rename = "box")]
    bbox: [f32; 4],
    embedding: Vec<f32>,
}

/// Templates by photo through the agent's own `faces --json`: only photos with exactly one face of a usable
/// size, as an enrolment desk would accept.
fn templates(photos: &[PathBuf]) -> BTreeMap<PathBuf, Vec<f32>> {
    let out = Command::new(workspace_bin("edge-agent"))
        .args(["faces", "--json"])
        .args(photos)
        .output()
        .expect("edge-agent faces");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = BTreeMap::new();
    for (line, photo) in text.lines().zip(photos) {
        let l: FacesLine = serde_json::from_str(line).expect("faces --json line");
        let faces = l.faces.unwrap_or_default();
        if let [f] = faces.as_slice() {
            if f.bbox[2].min(f.bbox[3]) >= 40.0 {
                map.insert(photo.clone(), f.embedding.clone());
            }
        }
    }
    map
}

fn photos_of(identity: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(faces_dir().join(identity))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn entry(id: &str, list: ListKind, label: &str, template: Vec<f32>) -> WatchlistEntry {
    WatchlistEntry {
        id: id.into(),
        list,
        label: label.into(),
        case_ref: format!("CASE-{id}"),
        legal_basis: "Test warrant 1/2026".into(),
        issued_by: "E2E test".into(),
        expires_at: OffsetDateTime::now_utc() + time::Duration::days(30),
        templates: vec![template],
    }
}

/// The list: every scene person who has another usable photo, alternating wanted and missing, plus one
/// person from the photo set who is not in the scene. Returns the sync message and, per entry id, the
/// identity it is.
fn watchlist(truth: &Truth) -> (SyncMessage, BTreeMap<String, String>) {
    let in_scene: HashSet<&str> = truth.actors.iter().map(|a| a.identity.as_str()).collect();
    let mut wanted: Vec<(String, PathBuf)> = Vec::new();
    for a in &truth.actors {
        let walking = faces_dir().join(&a.photo);
        for p in photos_of(&a.identity) {
            if p != walking {
                wanted.push((a.identity.clone(), p));
            }
        }
    }
    // A distractor: the first identity not in the scene with more than one photo.
    let mut others: Vec<String> = std::fs::read_dir(faces_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !in_scene.contains(n.as_str()))
        .collect();
    others.sort();
    for o in others.iter().filter(|o| photos_of(o).len() > 1).take(3) {
        wanted.push((o.clone(), photos_of(o)[0].clone()));
    }
    let all: Vec<PathBuf> = wanted.iter().map(|(_, p)| p.clone()).collect();
    let t = templates(&all);
    let mut entries = Vec::new();
    let mut who = BTreeMap::new();
    let mut distractors = 0;
    for (identity, photo) in wanted {
        if who.values().any(|w| w == &identity) {
            continue; // one entry per person
        }
        let Some(tpl) = t.get(&photo) else { continue };
        let is_distractor = !in_scene.contains(identity.as_str());
        if is_distractor {
            if distractors == 1 {
                continue;
            }
            distractors += 1;
        }
        let n = entries.len();
        let list = if n % 2 == 0 {
            ListKind::Wanted
        } else {
            ListKind::Missing
        };
        let id = format!("E{n:02}");
        entries.push(entry(&id, list, &identity.replace('_', " "), tpl.clone()));
        who.insert(id, identity);
    }
    assert!(distractors == 1, "a distractor entry was enrolled");
    assert!(
        entries.len() >= 4,
        "at least 3 scene people enrolled: {who:?}"
    );
    let msg = SyncMessage::Full {
        version: 1_000,
        entries,
        thresholds: Thresholds::default(),
        policies: None,
    };
    (msg, who)
}

/// The agent's config; it trusts the key the tests sign syncs with (they play the hub here).
fn write_config(dir: &Path, site: &str, port: u16, source: &str) -> PathBuf {
    let cfg = checkpoint_e2e::gate_agent_config(dir, site, port, source, "127.0.0.1:0", 5.0);
    checkpoint_e2e::trust_hub_key(&cfg, &checkpoint_e2e::test_hub_signer().public_key());
    cfg
}

const TEST_PATTERN: &str =
    r#"{ kind = "test", pattern = "ball", width = 160, height = 120, fps = 10 }"#;

fn statuses(events: &[checkpoint_protocol::Envelope]) -> Vec<WatchlistStatus> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::WatchlistStatus(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn alerts_for_exactly_the_watchlisted(port: u16) {
    let (scene_dir, truth) = scene();
    let (sync, who) = watchlist(truth);
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("wl");
    let got = Collector::start(port, &site);

    // 1. The agent starts with no list and asks for one; the "hub" sends a full sync over MQTT.
    let cfg = write_config(dir.path(), &site, port, TEST_PATTERN);
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        wait_until(Duration::from_secs(30), || statuses(&got.events())
            .iter()
            .any(|s| s.needs_full_sync && s.version == 0)),
        "the agent reports it needs a full sync; log:\n{}",
        agent.log_text()
    );
    publish_all(
        port,
        &watchlist_sync_topic(&site, "a1"),
        vec![signed_sync(&site, "a1", &sync)],
    );
    let n = who.len() as u64;
    assert!(
        wait_until(Duration::from_secs(30), || statuses(&got.events())
            .iter()
            .any(|s| s.version == 1_000
                && s.wanted + s.missing == n
                && !s.needs_full_sync)),
        "the agent applies the sync and reports version 1000; log:\n{}",
        agent.log_text()
    );
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());

    // 2. Restarted on the scene: the list comes from disk.
    let source = format!(
        r#"{{ kind = "file", path = "{}" }}"#,
        scene_dir.path().join(&truth.video).display()
    );
    let cfg = write_config(dir.path(), &site, port, &source);
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        agent.wait(Duration::from_secs(300)).success(),
        "{}",
        agent.log_text()
    );
    let produced = read_events(&agent.events);
    assert!(
        got.wait_for_all(&produced, Duration::from_secs(30)),
        "every event reached the broker"
    );

    let mut raised: BTreeMap<String, Vec<checkpoint_protocol::WatchlistMatch>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for e in got.events() {
        if let EventKind::WatchlistMatch(m) = e.event {
            if seen.insert(e.id) {
                raised.entry(m.entry_id.clone()).or_default().push(m);
            }
        }
    }
    let in_scene: BTreeSet<&str> = truth.actors.iter().map(|a| a.identity.as_str()).collect();
    let expected: BTreeSet<&str> = who
        .iter()
        .filter(|(_, identity)| in_scene.contains(identity.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    let got_ids: BTreeSet<&str> = raised.keys().map(String::as_str).collect();
    eprintln!(
        "enrolled {:?}; expected alerts {:?}; raised {:?}",
        who,
        expected,
        raised
            .iter()
            .map(|(k, v)| (k, v.iter().map(|m| m.similarity).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        got_ids, expected,
        "alerts for exactly the enrolled people in the scene"
    );
    for (id, ms) in &raised {
        assert_eq!(
            ms.len(),
            1,
            "one alert per person per pass for {id}: {ms:?}"
        );
        let m = &ms[0];
        assert!(m.similarity >= m.threshold && m.votes >= 2 && m.faces_used >= 2);
        assert_eq!(m.watchlist_version, 1_000);
        let jpg = checkpoint_e2e::hub::b64_decode(&m.snapshot_jpeg_b64);
        assert!(
            jpg.starts_with(&[0xFF, 0xD8]) && jpg.len() < 64 << 10,
            "snapshot is a small JPEG ({} bytes)",
            jpg.len()
        );
        assert!(m.models.iter().any(|f| f.contains("sface")));
    }
    // Privacy: no other event carries a picture or an embedding.
    for e in &produced {
        if !matches!(e.event, EventKind::WatchlistMatch(_)) {
            let j = e.to_json();
            assert!(j.len() < 4096, "a {} event is {} bytes", e.kind(), j.len());
        }
    }
}

#[test]
fn rumqttd_alerts_for_exactly_the_watchlisted_people() {
    alerts_for_exactly_the_watchlisted(rumqttd_in_process());
}

#[test]
fn mosquitto_alerts_for_exactly_the_watchlisted_people() {
    alerts_for_exactly_the_watchlisted(system_mosquitto());
}

/// 10,000 payloads that must all be refused: garbage, wrong shapes, invalid entries, version games.
/// Garbage, and messages the hub's key signed whose content is wrong: the signature is no licence to skip
/// validation.
fn malformed_payloads(site: &str) -> Vec<Vec<u8>> {
    let good = entry("ok", ListKind::Wanted, "x", {
        let mut v = vec![0.0f32; 128];
        v[0] = 1.0;
        v
    });
    let bad_entries: Vec<WatchlistEntry> = vec![
        WatchlistEntry {
            legal_basis: String::new(),
            ..good.clone()
        },
        WatchlistEntry {
            templates: vec![vec![0.5; 127]],
            ..good.clone()
        },
        WatchlistEntry {
            templates: vec![],
            ..good.clone()
        },
        WatchlistEntry {
            id: String::new(),
            ..good.clone()
        },
    ];
    let mut out = Vec::with_capacity(10_000);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..10_000usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let p: Vec<u8> = match i % 8 {
            0 => (0..(state % 300) as usize)
                .map(|k| (state >> (k % 56)) as u8)
                .collect(),
            1 => b"{\"type\":\"full\"".to_vec(),
            2 => format!("{{\"type\":\"bogus\",\"version\":{i}}}").into_bytes(),
            3 => serde_json::to_vec(&SyncMessage::Full {
                version: i as u64 + 1,
                entries: vec![bad_entries[i % bad_entries.len()].clone()],
                thresholds: Thresholds::default(),
                policies: None,
            })
            .unwrap(),
            4 => serde_json::to_vec(&SyncMessage::Delta {
                base_version: 5,
                version: 5,
                add: vec![],
                remove: vec![],
                expire: vec![],
                policies: None,
                thresholds: None,
            })
            .unwrap(),
            5 => serde_json::to_vec(&SyncMessage::Full {
                version: 9,
                entries: vec![good.clone(), good.clone()],
                thresholds: Thresholds::default(),
                policies: None,
            })
            .unwrap(),
            6 => br#"{"type":"full","version":3,"entries":[],"thresholds":{"wanted":0.01,"missing":0.4}}"#
                .to_vec(),
            _ => "[".repeat(200 + i % 50).into_bytes(),
        };
        // Half of the well-formed JSON goes out signed, as the hub would send it.
        let p = if (1..=6).contains(&(i % 8)) && i % 16 < 8 {
            checkpoint_e2e::test_hub_signer().sign(site, "a1", String::from_utf8_lossy(&p).into())
        } else {
            p
        };
        out.push(p);
    }
    out
}

fn malformed_sync_is_counted_and_survived(port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let site = unique_site("wlbad");
    let got = Collector::start(port, &site);
    let cfg = write_config(dir.path(), &site, port, TEST_PATTERN);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("exit_when_done = true", "exit_when_done = false");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        wait_until(Duration::from_secs(30), || !statuses(&got.events())
            .is_empty()),
        "{}",
        agent.log_text()
    );
    let topic = watchlist_sync_topic(&site, "a1");
    // In chunks, each sent once the agent has counted the previous ones: a broker drops QoS 1 messages for a
    // subscriber whose queue is full (Mosquitto keeps 1000 by default), and this test is about the agent.
    let addr = agent.metrics_addr().expect("metrics address in the log");
    let refused_so_far = || -> f64 {
        http_get(&addr, "/metrics")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("checkpoint_watchlist_sync_messages_total{"))
            .filter(|l| !l.contains("outcome=\"applied\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let mut sent = 0usize;
    for chunk in malformed_payloads(&site).chunks(500) {
        sent += chunk.len();
        publish_all(port, &topic, chunk.to_vec());
        assert!(
            wait_until(Duration::from_secs(30), || refused_so_far() >= sent as f64),
            "the agent counted {} of the {sent} refused messages sent so far",
            refused_so_far()
        );
    }
    // A valid message after the flood still applies.
    let mut v = vec![0.0f32; 128];
    v[3] = 1.0;
    let valid = SyncMessage::Full {
        version: 42,
        entries: vec![entry("W1", ListKind::Wanted, "valid", v)],
        thresholds: Thresholds::default(),
        policies: None,
    };
    publish_all(port, &topic, vec![signed_sync(&site, "a1", &valid)]);
    let ok = wait_until(Duration::from_secs(60), || {
        statuses(&got.events())
            .iter()
            .any(|s| s.version == 42 && s.rejected == 10_000)
    });
    assert!(
        ok,
        "the agent applied the valid sync after refusing 10,000: {:?}; log tail:\n{}",
        statuses(&got.events()).last(),
        agent
            .log_text()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent is still running"
    );
    let m = http_get(&addr, "/metrics").unwrap();
    let refused: f64 = m
        .lines()
        .filter(|l| l.starts_with("checkpoint_watchlist_sync_messages_total{"))
        .filter(|l| !l.contains("outcome=\"applied\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 10_000.0, "{m}");
    assert_eq!(
        metric(
            &m,
            "checkpoint_watchlist_sync_messages_total{outcome=\"applied\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric(&m, "checkpoint_watchlist_version"), Some(42.0));
    // Camera analysis went on throughout.
    assert!(metric(&m, "checkpoint_frames_analysed_total{camera=\"gate\"}").unwrap_or(0.0) > 0.0);
    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());
}

#[test]
fn rumqttd_10000_malformed_sync_payloads_are_counted_and_survived() {
    malformed_sync_is_counted_and_survived(rumqttd_in_process());
}

#[test]
fn mosquitto_10000_malformed_sync_payloads_are_counted_and_survived() {
    malformed_sync_is_counted_and_survived(system_mosquitto());
}
