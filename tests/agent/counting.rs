//! The counting test: a generated scene with known truth (real face photos crossing a line both ways, some
//! pausing or jittering on it, several at once), served over RTSP by an in-process GStreamer RTSP server,
//! analysed by the real `edge-agent` binary in faces mode, by two cameras on the same stream: one at
//! `analysis_fps = 10`, one at 2 (the lowest rate the tracker is built for; the second camera costs a fifth
//! of the first). For each, every crossing must be counted in the right direction (>= 98% per direction)
//! and nothing counted twice or counted for people who never crossed.

use std::time::Duration;

use checkpoint_e2e::{wait_until, Agent, KeptOrTemp};
use checkpoint_media::rtsp_server::RtspTestServer;
use checkpoint_protocol::{Direction, Envelope, EventKind, LineCrossing};
use checkpoint_scenegen::{Direction as TruthDirection, SceneSpec, TruthActor};

/// The cameras: id and analysis rate.
const CAMERAS: [(&str, f64); 2] = [("gate", 10.0), ("gate-2fps", 2.0)];

#[test]
fn rtsp_scene_crossings_are_counted_once_each_in_the_right_direction() {
    let dir = tempfile::tempdir().unwrap();
    // CHECKPOINT_KEEP_TEST_DIR=DIR keeps the scene, config, events and agent log for a look afterwards.
    let dir = match std::env::var_os("CHECKPOINT_KEEP_TEST_DIR") {
        Some(p) => {
            std::fs::create_dir_all(&p).unwrap();
            tempfile::Builder::new()
                .prefix("counting-")
                .tempdir_in(p)
                .unwrap()
                .keep()
                .into()
        }
        None => KeptOrTemp::Temp(dir),
    };
    let spec = SceneSpec {
        duration_s: Some(60.0),
        actors: 20,
        non_crossers: 2,
        max_concurrent: 5,
        seed: 2026,
        ..Default::default()
    };
    let truth = checkpoint_scenegen::generate(&spec, dir.path()).expect("scene generated");
    let crossers: Vec<_> = truth
        .actors
        .iter()
        .filter(|a| a.direction != TruthDirection::None)
        .collect();
    let truth_in = crossers
        .iter()
        .filter(|a| a.direction == TruthDirection::In)
        .count();
    let truth_out = crossers
        .iter()
        .filter(|a| a.direction == TruthDirection::Out)
        .count();
    assert!(
        truth_in >= 5 && truth_out >= 5,
        "scene should cross both ways: {truth_in} in, {truth_out} out"
    );
    assert!(
        crossers.iter().any(|a| a.paused) && crossers.iter().any(|a| a.jitter),
        "scene needs pausers and jitterers"
    );

    let server = RtspTestServer::start("127.0.0.1", 0).expect("RTSP server");
    server
        .mount_file(&dir.path().join("scene.mp4"), "/gate", false)
        .unwrap();
    let url = server.url("/gate");

    let [ax, ay] = truth.line.a;
    let [bx, by] = truth.line.b;
    // The truth's "in" normal is the right-hand side of a->b in image coordinates, the agent's `in_side = "right"`.
    let mut config = format!(
        r#"
[site]
id = "test-site"
[agent]
events = "{events}"
metrics_listen = "127.0.0.1:0"
exit_when_done = false
count_interval_s = 5
"#,
        events = dir.path().join("events.jsonl").display()
    );
    for (id, fps) in CAMERAS {
        config.push_str(&format!(
            r#"
[[cameras]]
id = "{id}"
mode = "faces"
[cameras.stream]
analysis_fps = {fps}
source = {{ kind = "rtsp", url = "{url}" }}
[[cameras.lines]]
id = "gate-line"
coords = "pixels"
a = [{ax}, {ay}]
b = [{bx}, {by}]
in_side = "right"
"#
        ));
    }
    let cfg_path = dir.path().join("site.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let mut agent = Agent::start(&cfg_path, dir.path());

    // Wait for the whole scene to play (real time), then stop the agent the way an operator would.
    let duration = truth.frames as f64 / truth.fps as f64;
    let camera_is = |e: &Envelope, cam: &str, up: bool| {
        matches!(&e.event, EventKind::CameraStatus(s) if s.camera == cam && if up {
            s.state == checkpoint_protocol::CameraState::Up
        } else {
            matches!(s.state, checkpoint_protocol::CameraState::Reconnecting | checkpoint_protocol::CameraState::Down)
        })
    };
    let started = wait_until(Duration::from_secs(30), || {
        let ev = agent.events();
        CAMERAS
            .iter()
            .all(|(cam, _)| ev.iter().any(|e| camera_is(e, cam, true)))
    });
    assert!(started, "cameras never came up; log:\n{}", agent.log_text());
    // The end of the stream shows as a camera going to `reconnecting`. Stop the server as soon as the first
    // one does, so that its reconnect cannot replay the scene; the other camera's stream is at most a
    // moment behind, in the scene's last 0.3 s, when everyone has long crossed and left.
    let ended = wait_until(Duration::from_secs_f64(duration + 30.0), || {
        let ev = agent.events();
        CAMERAS
            .iter()
            .any(|(cam, _)| ev.iter().any(|e| camera_is(e, cam, false)))
    });
    server.stop();
    assert!(ended, "the stream did not end; log:\n{}", agent.log_text());
    let all_ended = wait_until(Duration::from_secs(15), || {
        let ev = agent.events();
        CAMERAS
            .iter()
            .all(|(cam, _)| ev.iter().any(|e| camera_is(e, cam, false)))
    });
    assert!(
        all_ended,
        "a camera did not end; log:\n{}",
        agent.log_text()
    );
    agent.interrupt();
    let status = agent.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "agent exit {status}; log:\n{}",
        agent.log_text()
    );

    let events = agent.events();
    for (cam, fps) in CAMERAS {
        check_camera(&events, cam, fps, &crossers, truth_in, truth_out);
    }
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert!(
        !text.contains("embedding") && !text.contains("landmarks"),
        "face data must never leave the agent"
    );
}

/// Every crossing of the truth counted once on `cam`, in the right direction, and the camera's last count
/// event agreeing with its crossings.
fn check_camera(
    events: &[Envelope],
    cam: &str,
    fps: f64,
    crossers: &[&TruthActor],
    truth_in: usize,
    truth_out: usize,
) {
    let crossings: Vec<LineCrossing> = events
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::LineCrossing(c) if c.camera == cam => Some(c.clone()),
            _ => None,
        })
        .collect();

    // Match each truth crossing to one counted crossing of the same direction close in stream time.
    let mut used = vec![false; crossings.len()];
    let (mut hit_in, mut hit_out) = (0, 0);
    let mut missed = Vec::new();
    for a in crossers {
        let want = match a.direction {
            TruthDirection::In => Direction::In,
            _ => Direction::Out,
        };
        let t = a.crossing_time_s.unwrap_or(-100.0);
        let best = crossings
            .iter()
            .enumerate()
            .filter(|(i, c)| !used[*i] && c.direction == want && (c.stream_time_s - t).abs() <= 2.5)
            .min_by(|x, y| {
                (x.1.stream_time_s - t)
                    .abs()
                    .total_cmp(&(y.1.stream_time_s - t).abs())
            });
        match best {
            Some((i, _)) => {
                used[i] = true;
                if want == Direction::In {
                    hit_in += 1
                } else {
                    hit_out += 1
                }
            }
            None => missed.push(format!(
                "{} {:?} at {t:.1}s (paused {}, jitter {})",
                a.identity, a.direction, a.paused, a.jitter
            )),
        }
    }
    let extra: Vec<_> = crossings
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(c, _)| c)
        .collect();
    eprintln!(
        "counting {cam} at {fps} fps: in {hit_in}/{truth_in}, out {hit_out}/{truth_out}, {} counted in total, {} extra; missed: {missed:?}",
        crossings.len(),
        extra.len()
    );
    assert!(
        hit_in as f64 >= 0.98 * truth_in as f64,
        "{cam}: entries counted {hit_in}/{truth_in}; missed {missed:?}"
    );
    assert!(
        hit_out as f64 >= 0.98 * truth_out as f64,
        "{cam}: exits counted {hit_out}/{truth_out}; missed {missed:?}"
    );
    assert!(extra.is_empty(), "{cam}: double or false counts: {extra:?}");

    // The final count event agrees with the crossings.
    let last = events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            EventKind::Count(c) if c.camera == cam => Some(c.clone()),
            _ => None,
        })
        .expect("a final count event");
    let n_in = crossings
        .iter()
        .filter(|c| c.direction == Direction::In)
        .count() as u64;
    let n_out = crossings.len() as u64 - n_in;
    assert_eq!((last.total_entries, last.total_exits), (n_in, n_out));
    assert_eq!(last.occupancy, n_in as i64 - n_out as i64);
}
