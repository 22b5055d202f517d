//! The agent binary as users and tools call it: `faces --json`, `check`, and `run` on the sample videos.

use std::process::Command;
use std::time::Duration;

use checkpoint_e2e::{shared_dir, workspace_bin, Agent};
use checkpoint_protocol::EventKind;

#[test]
fn faces_json_prints_one_line_per_image_and_an_error_line_for_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"\xFF\xD8 this is not a jpeg").unwrap();
    let photo = shared_dir().join("datasets/faces/ageitgey/two_people.jpg");
    let out = Command::new(workspace_bin("edge-agent"))
        .args(["faces", "--json"])
        .arg(&photo)
        .arg(&junk)
        .arg(dir.path().join("missing.png"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "exit 1 when an image failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let first = &lines[0];
    assert_eq!(first["image"], photo.display().to_string());
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(1126), Some(661))
    );
    let faces = first["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 2, "two people in two_people.jpg");
    for f in faces {
        assert_eq!(f["box"].as_array().unwrap().len(), 4);
        assert_eq!(f["landmarks"].as_array().unwrap().len(), 5);
        let e: Vec<f64> = f["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), 128);
        let norm = e.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-3,
            "embedding L2-normalised, norm {norm}"
        );
    }
    for bad in &lines[1..] {
        assert!(
            bad["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
        assert!(bad.get("faces").is_none());
    }
}

#[test]
fn check_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.toml");
    std::fs::write(
        &cfg,
        "[site]\nid = \"x\"\n[[cameras]]\nid = \"c\"\n[cameras.stream]\nsource = { kind = \"test\", pattern = \"ball\", width = 64, height = 64, fps = 5 }\n[[cameras.lines]]\nid = \"l\"\na = [0.0, 0.5]\nb = [1.0, 0.5]\nin_side = \"sideways\"\n",
    )
    .unwrap();
    let out = Command::new(workspace_bin("edge-agent"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cameras[0].lines[0].in_side"), "{err}");
}

fn run_file(video: &str, mode: &str, seconds: f64) -> Vec<checkpoint_protocol::Envelope> {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let cfg = dir.path().join("site.toml");
    let video = shared_dir().join("datasets/videos").join(video);
    std::fs::write(
        &cfg,
        format!(
            r#"
[site]
id = "smoke"
[agent]
events = "{}"
metrics_listen = "127.0.0.1:0"
[[cameras]]
id = "cam"
mode = "{mode}"
[cameras.stream]
analysis_fps = 5
max_width = 640
source = {{ kind = "file", path = "{}" }}
[[cameras.lines]]
id = "middle"
a = [0.5, 0.0]
b = [0.5, 1.0]
in_side = "right"
"#,
            events.display(),
            video.display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    let status = agent.wait(Duration::from_secs_f64(seconds));
    assert!(
        status.success(),
        "agent failed on {}: {}",
        video.display(),
        agent.log_text()
    );
    agent.events()
}

/// Smoke test on real footage: pedestrians crossing a plaza (OpenCV's vtest.avi), people mode.
#[test]
fn vtest_people_mode_runs_to_the_end_and_counts() {
    let events = run_file("vtest.avi", "people", 400.0);
    let crossings = events
        .iter()
        .filter(|e| matches!(e.event, EventKind::LineCrossing(_)))
        .count();
    assert!(
        crossings >= 5,
        "people cross the middle of the plaza in vtest.avi; counted {crossings}"
    );
    assert!(events.iter().any(|e| matches!(&e.event, EventKind::CameraStatus(s) if s.state == checkpoint_protocol::CameraState::Ended)));
}

/// Smoke test: people walking through a room one at a time (Intel sample video), people mode.
#[test]
fn one_by_one_people_mode_counts_walkers() {
    let events = run_file("one-by-one-person-detection.mp4", "people", 400.0);
    let crossings = events
        .iter()
        .filter(|e| matches!(e.event, EventKind::LineCrossing(_)))
        .count();
    assert!(
        crossings >= 1,
        "walkers cross the middle of the room; counted {crossings}"
    );
}

/// Corrupt frames: bytes overwritten in the middle of an H.264 file. The decoder conceals or skips what it
/// cannot decode; the agent logs, keeps going to the end of the file and exits cleanly.
#[test]
fn corrupt_video_is_analysed_to_the_end_without_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = checkpoint_scenegen::SceneSpec {
        duration_s: None,
        actors: 3,
        non_crossers: 0,
        seed: 5,
        ..Default::default()
    };
    checkpoint_scenegen::generate(&spec, dir.path()).unwrap();
    let video = dir.path().join("scene.mp4");
    let mut bytes = std::fs::read(&video).unwrap();
    let (from, to) = (bytes.len() * 3 / 10, bytes.len() * 7 / 10);
    for i in (from..to).step_by(997) {
        bytes[i] ^= 0x5A;
    }
    std::fs::write(&video, &bytes).unwrap();
    let events = dir.path().join("events.jsonl");
    let cfg = dir.path().join("site.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nid = \"corrupt\"\n[agent]\nevents = \"{}\"\nmetrics_listen = \"\"\n[[cameras]]\nid = \"cam\"\nmode = \"faces\"\n[cameras.stream]\nanalysis_fps = 10\nsource = {{ kind = \"file\", path = \"{}\" }}\n[[cameras.lines]]\nid = \"l\"\na = [0.0, 0.5]\nb = [1.0, 0.5]\nin_side = \"right\"\n",
            events.display(),
            video.display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    let status = agent.wait(Duration::from_secs(300));
    let log = agent.log_text();
    assert!(status.success(), "agent exit {status}; log:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let events = agent.events();
    let last_state = events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            EventKind::CameraStatus(s) => Some(s.state),
            _ => None,
        })
        .expect("camera status events");
    assert!(
        matches!(
            last_state,
            checkpoint_protocol::CameraState::Ended | checkpoint_protocol::CameraState::Down
        ),
        "file camera finished: {last_state:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.event, EventKind::Count(_))),
        "final counts still reported"
    );
}

#[test]
fn watchlist_match_decides_each_face_of_still_images_by_the_agents_rule() {
    let dir = tempfile::tempdir().unwrap();
    let source = r#"{ kind = "test", pattern = "ball", width = 160, height = 120, fps = 10 }"#;
    let cfg = checkpoint_e2e::gate_agent_config(dir.path(), "cli-site", 1, source, "", 10.0);
    let faces = shared_dir().join("datasets/faces/ageitgey");
    let enrol = |id: &str, list: &str, photo: &str| {
        let out = Command::new(workspace_bin("edge-agent"))
            .args(["watchlist", "enrol", "--config"])
            .arg(&cfg)
            .args([
                "--id",
                id,
                "--list",
                list,
                "--label",
                id,
                "--case-ref",
                "CLI-1",
            ])
            .args([
                "--legal-basis",
                "test order",
                "--issued-by",
                "test",
                "--days",
                "30",
            ])
            .arg(faces.join(photo))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    enrol("W-obama", "wanted", "obama.jpg");
    enrol("M-biden", "missing", "biden.jpg");

    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"\xFF\xD8 not a jpeg").unwrap();
    let stranger = shared_dir().join("datasets/faces/lfw_nopair/AJ_Cook/AJ_Cook_0001.jpg");
    let images = [
        faces.join("obama2.jpg"),
        faces.join("train__biden__biden2.jpg"),
        stranger.clone(),
        junk.clone(),
    ];
    let out = Command::new(workspace_bin("edge-agent"))
        .args(["watchlist", "match", "--json", "--config"])
        .arg(&cfg)
        .args(&images)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit 1 when an image failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one line per image: {text}");
    for (line, image) in lines.iter().zip(&images) {
        assert_eq!(line["image"], image.display().to_string());
    }
    let only_face = |i: usize| {
        let faces = lines[i]["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{}", lines[i]);
        assert_eq!(faces[0]["box"].as_array().unwrap().len(), 4);
        faces[0]["match"].clone()
    };
    let m = only_face(0);
    assert_eq!(
        (m["entry_id"].as_str(), m["list"].as_str()),
        (Some("W-obama"), Some("wanted")),
        "{text}"
    );
    // The wanted list's floor (0.43) holds for two entries.
    assert!(m["score"].as_f64().unwrap() >= 0.43, "{m}");
    let m = only_face(1);
    assert_eq!(
        (m["entry_id"].as_str(), m["list"].as_str()),
        (Some("M-biden"), Some("missing")),
        "{text}"
    );
    assert!(m["score"].as_f64().unwrap() >= 0.37, "{m}");
    assert!(only_face(2).is_null(), "a stranger matches nothing: {text}");
    assert!(
        lines[3]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        lines[3]
    );
    assert!(lines[3].get("faces").is_none());
}

/// A sync carried by hand (`central-hub watchlist export` writes it signed): `edge-agent watchlist import`
/// checks the signature against the agent's hub keys, refuses a plain or foreign file, and takes a plain one
/// only with `--unsigned` (and says so in its log). Issue 12, finding 2.
#[test]
fn watchlist_import_checks_the_hubs_signature() {
    use checkpoint_protocol::watchlist::{SyncMessage, Thresholds};
    let dir = tempfile::tempdir().unwrap();
    let source = r#"{ kind = "test", pattern = "ball", width = 160, height = 120, fps = 10 }"#;
    let cfg = checkpoint_e2e::gate_agent_config(dir.path(), "cli-site", 1, source, "", 10.0);
    checkpoint_e2e::trust_hub_key(&cfg, &checkpoint_e2e::test_hub_signer().public_key());
    let full = |version: u64| SyncMessage::Full {
        version,
        entries: vec![],
        thresholds: Thresholds::default(),
        policies: None,
    };
    let import = |bytes: Vec<u8>, extra: &[&str]| {
        let file = dir.path().join("carried.json");
        std::fs::write(&file, bytes).unwrap();
        Command::new(workspace_bin("edge-agent"))
            .args(["watchlist", "import", "--config"])
            .arg(&cfg)
            .args(extra)
            .arg(&file)
            .output()
            .unwrap()
    };
    let signed = checkpoint_e2e::signed_sync("cli-site", "a1", &full(1_800_000_000_000));
    let out = import(signed, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The forged message of the finding: unsigned, empty, version u64::MAX.
    let forged = br#"{"type":"full","version":18446744073709551615,"entries":[],"thresholds":{"wanted":0.43,"missing":0.37}}"#;
    let out = import(forged.to_vec(), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not signed") && err.contains("--unsigned"),
        "{err}"
    );
    // Signed by the hub, but for another agent.
    let out = import(
        checkpoint_e2e::signed_sync("cli-site", "a2", &full(1_800_000_000_001)),
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not for this agent"));
    // Another key.
    let stranger = checkpoint_protocol::signed::SyncSigner::from_secret(&[1; 32]);
    let out = import(
        stranger.sign(
            "cli-site",
            "a1",
            serde_json::to_string(&full(1_800_000_000_002)).unwrap(),
        ),
        &[],
    );
    assert!(!out.status.success());
    // Even with --unsigned, an impossible version is refused.
    let out = import(forged.to_vec(), &["--unsigned"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("impossible"));
    // A plain, sane file with --unsigned: applied, and logged as unsigned.
    let out = import(
        serde_json::to_vec(&full(1_800_000_000_003)).unwrap(),
        &["--unsigned"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNSIGNED"));
    let show = Command::new(workspace_bin("edge-agent"))
        .args(["watchlist", "show", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("1800000000003"),
        "{}",
        String::from_utf8_lossy(&show.stdout)
    );
}
