//! Test-pattern and file sources against real GStreamer.

mod common;

use std::time::Duration;

use checkpoint_media::rtsp_server::write_test_clip;
use checkpoint_media::{
    frame_channel, CameraSource, DropPolicy, FileSource, MediaError, SourceConfig, SourceKind,
    SourceState, TestSource,
};
use common::{take_frames, wait_state};

fn test_source(width: u32, height: u32, fps: u32) -> SourceConfig {
    SourceConfig::new(SourceKind::Test(TestSource {
        pattern: "ball".into(),
        width,
        height,
        fps,
    }))
}

fn file_source(path: &std::path::Path, looping: bool) -> SourceConfig {
    SourceConfig::new(SourceKind::File(FileSource {
        path: path.into(),
        realtime: false,
        looping,
    }))
}

#[test]
fn test_pattern_gives_scaled_frames_at_analysis_fps() {
    common::init_logs();
    let (tx, rx) = frame_channel();
    let mut cfg = test_source(320, 240, 30);
    cfg.analysis_fps = Some(10.0);
    cfg.max_width = Some(160);
    cfg.max_height = Some(160);
    let mut cam = CameraSource::spawn("pattern", cfg, tx).expect("spawn");
    assert_eq!(cam.drop_policy(), DropPolicy::DropOldest);

    let frames = take_frames(&rx, 16, Duration::from_secs(10));
    assert_eq!(frames.len(), 16, "state {:?}", cam.state());
    for f in &frames {
        assert_eq!(&*f.camera_id, "pattern");
        assert_eq!(
            (f.image.width, f.image.height),
            (160, 120),
            "scaled keeping 4:3"
        );
        assert_eq!(f.image.data.len(), 160 * 120 * 3);
    }
    assert!(
        frames.iter().any(|f| f.image.data.iter().any(|&b| b != 0)),
        "frames carry picture data"
    );
    // Rate by stream time, not wall clock: 15 intervals of 0.1 s.
    let span = frames[15].pts_s - frames[0].pts_s;
    let rate = 15.0 / span;
    assert!(
        (8.5..=11.5).contains(&rate),
        "sampled rate {rate:.2} fps over {span:.3} s"
    );
    assert!(frames
        .windows(2)
        .all(|w| w[1].pts_s > w[0].pts_s && w[1].seq > w[0].seq));

    match cam.state() {
        SourceState::Up { width, height, fps } => {
            assert_eq!((width, height), (160, 120));
            assert_eq!(fps, Some(30.0));
        }
        s => panic!("expected Up, got {s:?}"),
    }
    cam.stop();
    let s = cam.stats().snapshot();
    assert_eq!(s.state, SourceState::Stopped);
    assert!(s.frames_dropped_sampling >= s.frames_sampled, "{s:?}");
    assert!(
        s.frames_decoded >= s.frames_sampled + s.frames_dropped_sampling - 1,
        "{s:?}"
    );
    assert!(cam.is_finished());
    let states: Vec<SourceState> = cam.events().try_iter().map(|e| e.state).collect();
    assert_eq!(states.first(), Some(&SourceState::Starting));
    assert!(states.iter().any(|s| matches!(s, SourceState::Up { .. })));
    assert_eq!(states.last(), Some(&SourceState::Stopped));
}

#[test]
fn file_with_block_policy_delivers_every_sampled_frame_then_ends() {
    common::init_logs();
    // Spaces, '!' and quotes in the path must not break (or inject into) the pipeline.
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("clips ! fakesink name=x");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let path = sub.join("gate \"1\".mp4");
    write_test_clip(&path, 320, 240, 30, 60).expect("clip");

    let (tx, rx) = frame_channel();
    let mut cfg = file_source(&path, false);
    cfg.analysis_fps = Some(10.0);
    cfg.queue_frames = 1;
    let cam = CameraSource::spawn("file", cfg, tx).expect("spawn");
    assert_eq!(cam.drop_policy(), DropPolicy::Block);

    // A slow consumer: Block must stall decoding instead of dropping. The receiver
    // disconnects once the file has ended and its frames are drained.
    let mut frames = Vec::new();
    while let Ok(f) = rx.recv_timeout(Duration::from_secs(10)) {
        std::thread::sleep(Duration::from_millis(15));
        frames.push(f);
        if frames.len() > 100 {
            break;
        }
    }
    assert!(rx.is_empty());
    // 60 frames at 30 fps sampled to 10 fps: PTS 0.0, 0.1, ... 1.9.
    assert_eq!(frames.len(), 20, "state {:?}", cam.state());
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "no frame lost");
    for (i, f) in frames.iter().enumerate() {
        assert!(
            (f.pts_s - i as f64 * 0.1).abs() < 0.02,
            "frame {i} at {}",
            f.pts_s
        );
        assert_eq!((f.image.width, f.image.height), (320, 240));
    }
    assert_eq!(
        wait_state(&cam, Duration::from_secs(5), |s| *s == SourceState::Ended),
        Ok(SourceState::Ended)
    );
    let s = cam.stats().snapshot();
    assert_eq!(s.frames_decoded, 60, "{s:?}");
    assert_eq!(s.frames_sampled, 20);
    assert_eq!(s.frames_delivered, 20);
    assert_eq!(s.frames_dropped_sampling, 40);
    assert_eq!(s.frames_dropped_backpressure, 0);
    assert_eq!(s.queue_high_water, 1);
    assert!(cam.is_finished());
}

#[test]
fn looping_file_keeps_stream_time_monotonic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short.mp4");
    write_test_clip(&path, 160, 120, 30, 15).expect("clip");
    let (tx, rx) = frame_channel();
    let cam = CameraSource::spawn("loop", file_source(&path, true), tx).expect("spawn");
    let frames = take_frames(&rx, 40, Duration::from_secs(10));
    assert_eq!(frames.len(), 40, "state {:?}", cam.state());
    assert!(
        frames.windows(2).all(|w| w[1].pts_s > w[0].pts_s),
        "pts must grow across loops"
    );
    // Nearly three passes of a 0.5 s clip.
    assert!(frames[39].pts_s > 1.2, "{}", frames[39].pts_s);
    assert!(
        matches!(cam.state(), SourceState::Up { .. }),
        "{:?}",
        cam.state()
    );
}

#[test]
fn missing_file_goes_down_with_clear_reason() {
    let (tx, _rx) = frame_channel();
    let cam = CameraSource::spawn(
        "missing",
        file_source("/nonexistent/clip.mp4".as_ref(), false),
        tx,
    )
    .expect("runtime problems are states, not spawn errors");
    let state = wait_state(&cam, Duration::from_secs(5), |s| {
        matches!(s, SourceState::Down { .. })
    });
    let Ok(SourceState::Down { reason }) = state else {
        panic!("expected Down, got {state:?}")
    };
    assert!(
        reason.contains("/nonexistent/clip.mp4") && reason.contains("No such file"),
        "{reason}"
    );
}

#[test]
fn garbage_and_non_video_files_go_down_with_gstreamer_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.mp4");
    let mut bytes = Vec::with_capacity(64 * 1024);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..64 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push((x >> 24) as u8);
    }
    std::fs::write(&garbage, &bytes).expect("write");
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(200)).expect("write");

    let (tx, _rx) = frame_channel();
    for (name, path) in [("garbage", &garbage), ("text", &text)] {
        let cam = CameraSource::spawn(name, file_source(path, false), tx.clone()).expect("spawn");
        let state = wait_state(&cam, Duration::from_secs(10), |s| {
            matches!(s, SourceState::Down { .. })
        });
        let Ok(SourceState::Down { reason }) = state else {
            panic!("{name}: expected Down, got {state:?}")
        };
        assert!(
            reason.contains(path.to_str().unwrap_or_default()),
            "{name}: {reason}"
        );
        assert!(
            reason.contains("debug:")
                || reason.contains("no video stream")
                || reason.contains("not a media file"),
            "{name}: reason should carry GStreamer's text: {reason}"
        );
    }
}

#[test]
fn drop_oldest_with_slow_consumer_counts_drops_and_stays_bounded() {
    let (tx, rx) = frame_channel();
    let mut cfg = test_source(160, 120, 30);
    cfg.queue_frames = 2;
    let cam = CameraSource::spawn("slow", cfg, tx).expect("spawn");
    let stats = cam.stats();
    let mut got = Vec::new();
    while got.len() < 8 {
        assert!(rx.len() <= 2, "queue exceeded its cap: {}", rx.len());
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(f) => got.push(f.seq),
            Err(e) => panic!("no frame: {e} (state {:?})", cam.state()),
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let s = stats.snapshot();
    assert!(s.frames_dropped_backpressure > 0, "{s:?}");
    assert!(s.queue_high_water <= 2, "{s:?}");
    assert!(rx.len() <= 2);
    // Evicted frames show up as gaps in the sequence.
    assert!(got.windows(2).any(|w| w[1] > w[0] + 1), "{got:?}");
    // Every sampled frame was delivered, evicted or is still waiting (or being pushed).
    assert!(
        s.frames_sampled >= s.frames_delivered + s.frames_dropped_backpressure,
        "{s:?}"
    );
    assert!(
        s.frames_sampled <= s.frames_delivered + s.frames_dropped_backpressure + 3,
        "{s:?}"
    );
}

#[test]
fn custom_pipelines_are_checked_at_spawn() {
    let (tx, rx) = frame_channel();
    let mut cfg = test_source(64, 48, 10);
    cfg.pipeline = Some(
        "# comment lines are allowed\n\
         videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=96,height=64,framerate=20/1 \
         ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink"
            .into(),
    );
    let cam = CameraSource::spawn("custom", cfg.clone(), tx.clone()).expect("custom pipeline");
    let frames = take_frames(&rx, 3, Duration::from_secs(5));
    assert_eq!(frames.len(), 3, "state {:?}", cam.state());
    assert_eq!((frames[0].image.width, frames[0].image.height), (96, 64));
    drop(cam);

    cfg.pipeline = Some("videotestsrc ! fakesink name=sink".into());
    assert!(matches!(
        CameraSource::spawn("c2", cfg.clone(), tx.clone()),
        Err(MediaError::Pipeline { .. })
    ));
    cfg.pipeline = Some("videotestsrc ! nosuchelement ! appsink name=sink".into());
    match CameraSource::spawn("c3", cfg.clone(), tx.clone()) {
        Err(MediaError::MissingPlugin { element, .. }) => assert_eq!(element, "nosuchelement"),
        other => panic!("expected MissingPlugin, got {:?}", other.map(|_| ())),
    }
    cfg.pipeline = Some("videotestsrc ! {nope} ! appsink name=sink".into());
    assert!(matches!(
        CameraSource::spawn("c4", cfg, tx),
        Err(MediaError::Config(_))
    ));
}

#[test]
fn realtime_file_is_paced_like_a_camera_and_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rt.mp4");
    write_test_clip(&path, 160, 120, 30, 15).expect("clip");
    let (tx, rx) = frame_channel();
    let mut cfg = file_source(&path, false);
    if let SourceKind::File(f) = &mut cfg.source {
        f.realtime = true;
    }
    let started = std::time::Instant::now();
    let cam = CameraSource::spawn("rt", cfg, tx).expect("spawn");
    assert_eq!(cam.drop_policy(), DropPolicy::DropOldest);
    let mut frames = Vec::new();
    while let Ok(f) = rx.recv_timeout(Duration::from_secs(10)) {
        frames.push(f);
    }
    assert_eq!(frames.len(), 15, "a prompt consumer loses nothing");
    // Paced to the file clock: 15 frames at 30 fps cannot all arrive in much less than 0.47 s.
    // (A lower bound on elapsed time is a functional property, not a speed requirement.)
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cam.state(), SourceState::Ended);
}

#[test]
fn watchdog_reconnects_a_live_source_that_stalls() {
    let (tx, rx) = frame_channel();
    let mut cfg = test_source(64, 48, 10);
    // One frame every 2 s: the 500 ms watchdog fires after each frame without any error.
    cfg.pipeline = Some(
        "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=1/2 \
         ! videoconvert ! video/x-raw,format=BGR ! appsink name=sink"
            .into(),
    );
    cfg.watchdog_ms = 500;
    cfg.reconnect.initial_backoff_ms = 100;
    let cam = CameraSource::spawn("stall", cfg, tx).expect("spawn");
    let reconnecting = wait_state(&cam, Duration::from_secs(5), |s| {
        matches!(s, SourceState::Reconnecting { .. })
    });
    assert!(reconnecting.is_ok(), "{reconnecting:?}");
    // The rebuilt pipeline delivers again.
    let frames = take_frames(&rx, 2, Duration::from_secs(5));
    assert_eq!(frames.len(), 2);
    assert!(cam.stats().snapshot().reconnects >= 1);
    assert!(frames[1].pts_s > frames[0].pts_s);
}
