//! Every recording and stream a site may have opens in the real agent, or fails at once naming
//! the missing element and its Debian package (issue 13, item 1).
//!
//! The recordings are made here with GStreamer (`checkpoint_media::clips::corpus`: MP4 with
//! `moov` first and last, fragmented MP4, MOV, MKV, AVI with MJPEG and MPEG-4 Part 2, MPEG-TS,
//! raw H.264, H.265, AAC/Opus/PCM audio tracks, two video tracks, odd sizes, a 90° rotation,
//! variable frame rate, a resolution change part-way) and the streams come from the in-process
//! RTSP server with an audio stream, over TCP and UDP. One agent runs every entry as its own
//! camera; the table of every entry is printed and every failing entry reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use checkpoint_e2e::{http_get, metric, read_events, wait_until, workspace_bin, Agent};
use checkpoint_media::clips::{corpus, plugin_file, Clip};
use checkpoint_media::rtsp_server::{RtspAudio, RtspTestServer};
use checkpoint_protocol::{CameraState, CameraStatus, Envelope, EventKind};

/// What the agent's events say about one camera.
#[derive(Debug, Default)]
struct Seen {
    /// The first `up` report's detail, e.g. `240x320 @ 25.0 fps`.
    up_detail: Option<String>,
    /// Seconds from `starting` to `up` (first frame out of the pipeline, handed to analysis).
    to_up_s: Option<f64>,
    /// Seconds from `starting` to `down`.
    to_down_s: Option<f64>,
    last: Option<CameraStatus>,
}

fn seen_by_camera(events: &[Envelope]) -> BTreeMap<String, Seen> {
    let mut out: BTreeMap<String, Seen> = BTreeMap::new();
    let mut started: BTreeMap<String, time::OffsetDateTime> = BTreeMap::new();
    for e in events {
        let EventKind::CameraStatus(s) = &e.event else {
            continue;
        };
        let seen = out.entry(s.camera.clone()).or_default();
        let since = |t0: Option<&time::OffsetDateTime>| t0.map(|t0| (e.ts - *t0).as_seconds_f64());
        match s.state {
            CameraState::Starting => {
                started.entry(s.camera.clone()).or_insert(e.ts);
            }
            CameraState::Up if seen.up_detail.is_none() => {
                seen.up_detail = s.detail.clone();
                seen.to_up_s = since(started.get(&s.camera));
            }
            CameraState::Down if seen.to_down_s.is_none() => {
                seen.to_down_s = since(started.get(&s.camera));
            }
            _ => {}
        }
        seen.last = Some(s.clone());
    }
    out
}

fn analysed(metrics: &str, camera: &str) -> f64 {
    metric(
        metrics,
        &format!("checkpoint_frames_analysed_total{{camera=\"{camera}\"}}"),
    )
    .unwrap_or(0.0)
}

fn camera_toml(id: &str, mode: &str, source: &str) -> String {
    format!(
        "[[cameras]]\nid = \"{id}\"\nmode = \"{mode}\"\n[cameras.stream]\nanalysis_fps = 5\nsource = {source}\n"
    )
}

fn file_source(path: &Path) -> String {
    format!("{{ kind = \"file\", path = \"{}\" }}", path.display())
}

fn agent_toml(dir: &Path, exit_when_done: bool, cameras: &str) -> PathBuf {
    let text = format!(
        "[site]\nid = \"corpus\"\n[agent]\nevents = \"{}\"\nmetrics_listen = \"127.0.0.1:0\"\n\
         exit_when_done = {exit_when_done}\n[detection]\nembed_faces = false\n{cameras}",
        dir.join("events.jsonl").display()
    );
    let path = dir.join("site.toml");
    std::fs::write(&path, text).expect("write agent config");
    path
}

/// An RTSP entry: the camera id, the server mount, the audio beside the video, the transport.
const STREAMS: [(&str, &str, RtspAudio, &str); 3] = [
    ("rtsp-h264-aac-tcp", "/aac", RtspAudio::Aac, "tcp"),
    ("rtsp-h264-aac-udp", "/aac", RtspAudio::Aac, "udp"),
    ("rtsp-h264-pcmu-udp", "/pcmu", RtspAudio::Pcmu, "udp"),
];

/// What an entry must show in the agent: analysed frames at the expected size.
fn check_entry(
    id: &str,
    seen: Option<&Seen>,
    frames: f64,
    size: (u32, u32),
    min_frames: f64,
    ended: bool,
) -> Result<(), String> {
    let seen = seen.ok_or("no camera_status event at all")?;
    let last = seen.last.as_ref().ok_or("no state")?;
    if last.state == CameraState::Down {
        return Err(format!("down: {}", last.detail.clone().unwrap_or_default()));
    }
    if ended && last.state != CameraState::Ended {
        return Err(format!("last state {:?}, expected ended", last.state));
    }
    let detail = seen.up_detail.as_deref().ok_or("never up")?;
    let want = format!("{}x{}", size.0, size.1);
    if detail.split(' ').next() != Some(want.as_str()) {
        return Err(format!("{id}: up at {detail}, expected {want}"));
    }
    if frames < min_frames {
        return Err(format!(
            "{frames} frames analysed, expected >= {min_frames}"
        ));
    }
    Ok(())
}

#[test]
fn every_recording_and_stream_opens_in_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clips: Vec<(Clip, PathBuf)> = corpus()
        .into_iter()
        .map(|c| {
            let p = c
                .write(dir.path())
                .unwrap_or_else(|e| panic!("{}: cannot write the clip: {e}", c.name));
            (c, p)
        })
        .collect();
    let server = RtspTestServer::start("127.0.0.1", 0).expect("rtsp server");
    server
        .mount_test_pattern_with_audio("/aac", 320, 240, 15, RtspAudio::Aac)
        .expect("mount");
    server
        .mount_test_pattern_with_audio("/pcmu", 320, 240, 15, RtspAudio::Pcmu)
        .expect("mount");

    let mut cameras = String::new();
    for (i, (clip, path)) in clips.iter().enumerate() {
        // The recordings failed in people mode: one entry runs the person detector too.
        let mode = if i == 0 { "people" } else { "faces" };
        cameras += &camera_toml(clip.name, mode, &file_source(path));
    }
    for (id, mount, _, transport) in STREAMS {
        let source = format!(
            "{{ kind = \"rtsp\", url = \"{}\", transport = \"{transport}\" }}",
            server.url(mount)
        );
        cameras += &camera_toml(id, "faces", &source);
    }
    let config = agent_toml(dir.path(), false, &cameras);
    let mut agent = Agent::start(&config, dir.path());
    assert!(
        wait_until(Duration::from_secs(60), || agent.metrics_addr().is_some()),
        "{}",
        agent.log_text()
    );
    let addr = agent.metrics_addr().expect("metrics address");
    let scrape = || http_get(&addr, "/metrics").unwrap_or_default();
    // Files end on their own; streams run until each has been analysed for a while.
    let finished = wait_until(Duration::from_secs(240), || {
        let seen = seen_by_camera(&agent.events());
        let m = scrape();
        let files_done = clips.iter().all(|(c, _)| {
            seen.get(c.name)
                .and_then(|s| s.last.as_ref())
                .is_some_and(|s| matches!(s.state, CameraState::Ended | CameraState::Down))
        });
        files_done && STREAMS.iter().all(|(id, ..)| analysed(&m, id) >= 10.0)
    });
    let metrics = scrape();
    // Streams never end by themselves: judge them as they were while the agent ran, since stopping the agent
    // reports every camera as stopped.
    let seen_running = seen_by_camera(&agent.events());
    agent.interrupt();
    let exit = agent.wait(Duration::from_secs(60));
    let seen = seen_by_camera(&agent.events());

    let mut failures = Vec::new();
    let mut table = vec![format!(
        "{:<36} {:<8} {:>9} {:>14}  {}",
        "input", "opens", "analysed", "first frame s", "delivered / error"
    )];
    let mut row = |id: &str, result: Result<(), String>, frames: f64| {
        let s = seen.get(id);
        let detail = match &result {
            Ok(()) => s.and_then(|s| s.up_detail.clone()).unwrap_or_default(),
            Err(e) => e.clone(),
        };
        table.push(format!(
            "{:<36} {:<8} {:>9} {:>14}  {}",
            id,
            if result.is_ok() { "yes" } else { "NO" },
            frames,
            s.and_then(|s| s.to_up_s)
                .map(|t| format!("{t:.2}"))
                .unwrap_or_else(|| "-".into()),
            detail
        ));
        if let Err(e) = result {
            failures.push(format!("{id}: {e}"));
        }
    };
    for (clip, _) in &clips {
        let frames = analysed(&metrics, clip.name);
        // Two seconds at 5 fps is about 10 frames; a resolution change doubles the clip, and
        // stopping at the change would leave about 10.
        let min = if clip.size_after.is_some() { 15.0 } else { 1.0 };
        let result = check_entry(clip.name, seen.get(clip.name), frames, clip.size, min, true);
        row(clip.name, result, frames);
    }
    for (id, ..) in STREAMS {
        let frames = analysed(&metrics, id);
        row(
            id,
            check_entry(id, seen_running.get(id), frames, (320, 240), 10.0, false),
            frames,
        );
    }
    eprintln!("{}", table.join("\n"));
    assert!(
        finished && exit.success(),
        "agent did not finish the corpus (exit {exit}); log:\n{}",
        agent.log_text()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Links every plugin of this GStreamer installation into `dir` except the listed ones: the
/// agent started with this plugin path runs as on a machine without those Debian packages.
fn plugins_without(dir: &Path, missing: &[&str]) {
    let drop: Vec<PathBuf> = missing
        .iter()
        .map(|e| plugin_file(e).unwrap_or_else(|| panic!("{e} not installed here")))
        .collect();
    let system = plugin_file("filesrc")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("plugin directory");
    std::fs::create_dir_all(dir).expect("plugin dir");
    for entry in std::fs::read_dir(&system)
        .expect("read plugin dir")
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "so") && !drop.contains(&p) {
            std::os::unix::fs::symlink(&p, dir.join(entry.file_name())).expect("symlink");
        }
    }
}

/// On a machine without gstreamer1.0-libav (H.264, MPEG-4 Part 2 decoders) and without the MP4
/// demuxer, each recording goes down at once with a reason naming the element and package, and
/// the agent, having nothing left to run, exits.
#[test]
fn missing_codecs_fail_at_once_naming_element_and_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let by_name = |name: &str| {
        corpus()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} in corpus"))
    };
    let cases = [
        ("mkv-h264-opus", "`avdec_h264`", "gstreamer1.0-libav"),
        ("avi-mpeg4-part2-aac", "`avdec_mpeg4`", "gstreamer1.0-libav"),
        (
            "mp4-h264-aac-moov-end",
            "`qtdemux`",
            "gstreamer1.0-plugins-good",
        ),
    ];
    let mut cameras = String::new();
    for (name, ..) in cases {
        let path = by_name(name).write(dir.path()).expect("clip");
        cameras += &camera_toml(name, "faces", &file_source(&path));
    }
    let plugins = dir.path().join("plugins");
    plugins_without(&plugins, &["avdec_h264", "qtdemux"]);
    let config = agent_toml(dir.path(), true, &cameras);
    let log = dir.path().join("agent.log");
    let child = Command::new(workspace_bin("edge-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", &plugins)
        .env("GST_PLUGIN_PATH_1_0", "")
        .env_remove("GST_PLUGIN_PATH")
        .env("GST_REGISTRY_1_0", dir.path().join("registry.bin"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start edge-agent");
    let mut agent = Agent {
        child,
        events: dir.path().join("events.jsonl"),
        log,
    };
    let exit = agent.wait(Duration::from_secs(120));
    let events = read_events(&agent.events);
    let seen = seen_by_camera(&events);
    let mut failures = Vec::new();
    for (name, element, package) in cases {
        let s = seen.get(name);
        let last = s.and_then(|s| s.last.as_ref());
        let reason = last.and_then(|l| l.detail.clone()).unwrap_or_default();
        eprintln!(
            "{name:<24} {:?} after {:.2} s: {reason}",
            last.map(|l| l.state),
            s.and_then(|s| s.to_down_s).unwrap_or(f64::NAN)
        );
        let down = last.is_some_and(|l| l.state == CameraState::Down);
        if !(down && reason.contains(element) && reason.contains(package)) {
            failures.push(format!(
                "{name}: expected down naming {element} and {package}, got {last:?}"
            ));
        }
        if s.is_some_and(|s| s.up_detail.is_some()) {
            failures.push(format!("{name}: came up without its decoder"));
        }
    }
    assert!(
        exit.success(),
        "agent exit {exit}; log:\n{}",
        agent.log_text()
    );
    assert!(
        failures.is_empty(),
        "\n{}\nlog:\n{}",
        failures.join("\n"),
        agent.log_text()
    );
}
