//! A camera that vanishes never stops the others, and its analysis resumes within 5 s after it returns.
//! Two RTSP cameras from two in-process servers; one server is stopped and restarted while the agent runs.

use std::time::{Duration, Instant};

use checkpoint_e2e::{http_get, metric, wait_until, Agent};
use checkpoint_media::rtsp_server::RtspTestServer;
use checkpoint_protocol::{CameraState, EventKind};

fn analysed(addr: &str, camera: &str) -> f64 {
    let text = http_get(addr, "/metrics").unwrap_or_default();
    metric(
        &text,
        &format!("checkpoint_frames_analysed_total{{camera=\"{camera}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn one_camera_dropping_out_does_not_stop_the_other_and_comes_back_within_5s() {
    let dir = tempfile::tempdir().unwrap();
    let a = RtspTestServer::start("127.0.0.1", 0).unwrap();
    a.mount_test_pattern("/a", 320, 240, 10).unwrap();
    let b = RtspTestServer::start("127.0.0.1", 0).unwrap();
    b.mount_test_pattern("/b", 320, 240, 10).unwrap();
    let config = format!(
        r#"
[site]
id = "dropout"
[agent]
events = "{events}"
metrics_listen = "127.0.0.1:0"
exit_when_done = false
[detection]
embed_faces = false
[[cameras]]
id = "cam-a"
mode = "faces"
[cameras.stream]
analysis_fps = 5
source = {{ kind = "rtsp", url = "{ua}" }}
[[cameras]]
id = "cam-b"
mode = "faces"
[cameras.stream]
analysis_fps = 5
source = {{ kind = "rtsp", url = "{ub}" }}
"#,
        events = dir.path().join("events.jsonl").display(),
        ua = a.url("/a"),
        ub = b.url("/b"),
    );
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut agent = Agent::start(&cfg, dir.path());
    assert!(
        wait_until(Duration::from_secs(20), || agent.metrics_addr().is_some()),
        "{}",
        agent.log_text()
    );
    let addr = agent.metrics_addr().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || analysed(&addr, "cam-a") > 3.0
            && analysed(&addr, "cam-b") > 3.0),
        "both cameras analysed; log:\n{}",
        agent.log_text()
    );

    // Camera A vanishes.
    a.stop();
    let lost = wait_until(Duration::from_secs(15), || {
        agent.events().iter().any(|e| matches!(&e.event, EventKind::CameraStatus(s) if s.camera == "cam-a" && s.state == CameraState::Reconnecting))
    });
    assert!(lost, "cam-a reported lost; log:\n{}", agent.log_text());
    let (a0, b0) = (analysed(&addr, "cam-a"), analysed(&addr, "cam-b"));
    std::thread::sleep(Duration::from_secs(4));
    let (a1, b1) = (analysed(&addr, "cam-a"), analysed(&addr, "cam-b"));
    assert!(
        b1 >= b0 + 8.0,
        "cam-b kept going while cam-a was away: {b0} -> {b1}"
    );
    assert!(
        a1 <= a0 + 1.0,
        "cam-a had no frames while away: {a0} -> {a1}"
    );

    // Camera A returns: analysis resumes within 5 s.
    a.restart().unwrap();
    let back = Instant::now();
    let resumed = wait_until(Duration::from_secs(5), || {
        analysed(&addr, "cam-a") > a1 + 1.0
    });
    assert!(
        resumed,
        "cam-a analysis did not resume within 5 s; log:\n{}",
        agent.log_text()
    );
    eprintln!(
        "cam-a analysis resumed {:.1} s after the camera came back",
        back.elapsed().as_secs_f64()
    );

    agent.interrupt();
    assert!(agent.wait(Duration::from_secs(30)).success());
    let events = agent.events();
    assert!(events.iter().any(|e| matches!(&e.event, EventKind::CameraStatus(s) if s.camera == "cam-a" && s.state == CameraState::Up)));
}
