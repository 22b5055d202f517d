//! RTSP sources against the in-process test server, over 127.0.0.1 only.

mod common;

use std::time::{Duration, Instant};

use checkpoint_media::rtsp_server::{write_test_clip, RtspTestServer};
use checkpoint_media::{
    frame_channel, CameraHandle, CameraSource, CodecHint, RtspSource, SourceConfig, SourceKind,
    SourceState,
};
use common::{count, drain, take_frames, wait_state};

fn rtsp(url: String) -> SourceConfig {
    SourceConfig::new(SourceKind::Rtsp(RtspSource::new(url)))
}

#[test]
fn rtsp_source_receives_frames() {
    common::init_logs();
    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    server
        .mount_test_pattern("/cam", 320, 240, 15)
        .expect("mount");
    assert_ne!(server.port(), 0);
    let (tx, rx) = frame_channel();
    let mut cfg = rtsp(server.url("/cam"));
    cfg.max_width = Some(160);
    let cam = CameraSource::spawn("rtsp", cfg, tx).expect("spawn");
    let frames = take_frames(&rx, 10, Duration::from_secs(10));
    assert_eq!(frames.len(), 10, "state {:?}", cam.state());
    assert!(frames
        .iter()
        .all(|f| (f.image.width, f.image.height) == (160, 120)));
    assert!(frames.windows(2).all(|w| w[1].pts_s >= w[0].pts_s));
    assert!(
        matches!(
            cam.state(),
            SourceState::Up {
                width: 160,
                height: 120,
                ..
            }
        ),
        "{:?}",
        cam.state()
    );
    assert_eq!(cam.stats().snapshot().reconnects, 0);
}

#[test]
fn camera_reconnects_after_server_restart_while_other_camera_keeps_running() {
    common::init_logs();
    let flaky = RtspTestServer::start("127.0.0.1", 0).expect("server a");
    flaky
        .mount_test_pattern("/a", 160, 120, 15)
        .expect("mount a");
    let steady = RtspTestServer::start("127.0.0.1", 0).expect("server b");
    steady
        .mount_test_pattern("/b", 160, 120, 15)
        .expect("mount b");
    let port = flaky.port();

    let (tx, rx) = frame_channel();
    let cam_a = CameraSource::spawn("a", rtsp(flaky.url("/a")), tx.clone()).expect("spawn a");
    let cam_b = CameraSource::spawn("b", rtsp(steady.url("/b")), tx).expect("spawn b");
    let (seen, consumer) = drain(rx);
    let up = |s: &SourceState| matches!(s, SourceState::Up { .. });
    wait_state(&cam_a, Duration::from_secs(10), up).expect("a up");
    wait_state(&cam_b, Duration::from_secs(10), up).expect("b up");

    // The camera vanishes.
    flaky.stop();
    assert!(!flaky.is_running());
    let lost = wait_state(&cam_a, Duration::from_secs(8), |s| {
        matches!(
            s,
            SourceState::Reconnecting { .. } | SourceState::Down { .. }
        )
    });
    assert!(
        matches!(lost, Ok(SourceState::Reconnecting { .. })),
        "a after stop: {lost:?}"
    );
    // Nothing listens on the port any more.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "listening socket still open"
    );

    // While it is gone, the other camera keeps delivering.
    let b_before = count(&seen, "b");
    std::thread::sleep(Duration::from_millis(1500));
    let b_after = count(&seen, "b");
    assert!(
        b_after >= b_before + 10,
        "b delivered only {} frames during the outage",
        b_after - b_before
    );
    assert!(matches!(cam_b.state(), SourceState::Up { .. }));
    let a_frames_before = count(&seen, "a");

    // The camera returns on the same port: frames resume within 5 s.
    flaky.restart().expect("restart");
    assert_eq!(flaky.port(), port);
    let restarted = Instant::now();
    let resumed = loop {
        if count(&seen, "a") > a_frames_before {
            break Some(restarted.elapsed());
        }
        if restarted.elapsed() > Duration::from_secs(5) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("frames resumed {resumed:?} after the server restart");
    assert!(
        resumed.is_some(),
        "no frame within 5 s of restart; state {:?}",
        cam_a.state()
    );
    assert!(cam_a.stats().snapshot().reconnects >= 1);
    assert_eq!(cam_b.stats().snapshot().reconnects, 0);

    // Stream time stays monotonic across the reconnect.
    let a_pts: Vec<f64> = seen
        .lock()
        .iter()
        .filter(|s| s.camera == "a")
        .map(|s| s.pts_s)
        .collect();
    assert!(
        a_pts.windows(2).all(|w| w[1] >= w[0]),
        "pts went backwards: {a_pts:?}"
    );

    let events: Vec<SourceState> = cam_a.events().try_iter().map(|e| e.state).collect();
    assert!(
        events
            .iter()
            .any(|s| matches!(s, SourceState::Reconnecting { attempt: 1, .. })),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(SourceState::Up { .. })),
        "{events:?}"
    );

    drop((cam_a, cam_b));
    consumer.join().expect("consumer");
}

#[test]
fn mounted_h264_file_loops_seamlessly() {
    common::init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("clip.mp4");
    // 0.6 s of video: looping is needed to deliver more than 18 frames.
    write_test_clip(&clip, 160, 120, 30, 18).expect("clip");
    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    server.mount_file(&clip, "/clip", true).expect("mount file");
    let (tx, rx) = frame_channel();
    let cam = CameraSource::spawn("clip", rtsp(server.url("/clip")), tx).expect("spawn");
    let frames = take_frames(&rx, 45, Duration::from_secs(10));
    assert_eq!(frames.len(), 45, "state {:?}", cam.state());
    assert!(frames
        .iter()
        .all(|f| (f.image.width, f.image.height) == (160, 120)));
    assert_eq!(
        cam.stats().snapshot().reconnects,
        0,
        "looping must not drop the client"
    );
    assert!(frames.windows(2).all(|w| w[1].pts_s >= w[0].pts_s));
}

#[test]
fn udp_transport_receives_frames() {
    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    server
        .mount_test_pattern("/udp", 160, 120, 10)
        .expect("mount");
    let (tx, rx) = frame_channel();
    let mut src = RtspSource::new(server.url("/udp"));
    src.transport = checkpoint_media::RtspTransport::Udp;
    let cam =
        CameraSource::spawn("udp", SourceConfig::new(SourceKind::Rtsp(src)), tx).expect("spawn");
    let frames = take_frames(&rx, 3, Duration::from_secs(10));
    assert_eq!(frames.len(), 3, "state {:?}", cam.state());
}

#[test]
fn wrong_pinned_codec_goes_down_with_clear_reason() {
    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    server
        .mount_test_pattern("/cam", 160, 120, 10)
        .expect("mount");
    let (tx, _rx) = frame_channel();
    let mut src = RtspSource::new(server.url("/cam"));
    src.codec = CodecHint::H265;
    let cam =
        CameraSource::spawn("h265", SourceConfig::new(SourceKind::Rtsp(src)), tx).expect("spawn");
    let state = wait_state(&cam, Duration::from_secs(10), |s| {
        matches!(s, SourceState::Down { .. })
    });
    let Ok(SourceState::Down { reason }) = state else {
        panic!("expected Down, got {state:?}")
    };
    assert!(
        reason.contains("H264") && reason.contains("auto"),
        "{reason}"
    );
}

#[test]
fn auto_codec_detects_h265_camera() {
    common::init_logs();
    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    server
        .mount_test_pattern_with_codec("/hevc", 160, 120, 10, checkpoint_media::VideoCodec::H265)
        .expect("mount");
    let (tx, rx) = frame_channel();
    let cam = CameraSource::spawn("hevc", rtsp(server.url("/hevc")), tx).expect("spawn");
    let frames = take_frames(&rx, 3, Duration::from_secs(10));
    assert_eq!(frames.len(), 3, "state {:?}", cam.state());
    assert_eq!((frames[0].image.width, frames[0].image.height), (160, 120));
    // Learning the codec rebuilds the pipeline at once; it is not a reconnect.
    assert_eq!(cam.stats().snapshot().reconnects, 0);
}

#[test]
fn unreachable_camera_keeps_reconnecting_and_stops_promptly() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let (tx, _rx) = frame_channel();
    let mut cfg = rtsp(format!("rtsp://127.0.0.1:{port}/none"));
    cfg.reconnect.initial_backoff_ms = 100;
    cfg.reconnect.max_backoff_ms = 200;
    let mut cam = CameraSource::spawn("gone", cfg, tx).expect("spawn");
    let state = wait_state(&cam, Duration::from_secs(5), |s| {
        matches!(s, SourceState::Reconnecting { attempt: 3.., .. })
    });
    assert!(state.is_ok(), "{state:?}");
    let t = Instant::now();
    cam.stop();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop hung for {:?}",
        t.elapsed()
    );
    assert_eq!(cam.state(), SourceState::Stopped);
}

#[test]
fn mounted_non_h264_file_is_reencoded_and_ends_like_a_camera_that_hangs_up() {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    checkpoint_media::init().expect("gst");
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = dir.path().join("mjpeg.avi");
    let description = format!(
        "videotestsrc num-buffers=20 ! video/x-raw,width=160,height=120,framerate=20/1 ! jpegenc ! avimux ! filesink location=\"{}\"",
        clip.display()
    );
    let p = gst::parse::launch(&description).expect("writer");
    p.set_state(gst::State::Playing).expect("play");
    let bus = p.bus().expect("bus");
    let done = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(10),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(
        matches!(
            done.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ),
        "{done:?}"
    );
    p.set_state(gst::State::Null).expect("null");

    let probe = checkpoint_media::probe_file(&clip).expect("probe");
    assert_eq!(probe.codec, None);
    assert_eq!(probe.video_caps, "image/jpeg");

    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    server.mount_file(&clip, "/mjpeg", false).expect("mount");
    let (tx, rx) = frame_channel();
    let cam = CameraSource::spawn("mjpeg", rtsp(server.url("/mjpeg")), tx).expect("spawn");
    let frames = take_frames(&rx, 5, Duration::from_secs(10));
    assert_eq!(frames.len(), 5, "state {:?}", cam.state());
    assert_eq!((frames[0].image.width, frames[0].image.height), (160, 120));
    // The 1 s clip ends; for a live source that is a lost camera, not the end.
    let state = wait_state(&cam, Duration::from_secs(10), |s| {
        matches!(s, SourceState::Reconnecting { .. })
    });
    assert!(state.is_ok(), "{state:?}");
}

/// IP cameras with a microphone: the audio stream comes first in the SDP; the camera takes the
/// video stream over TCP and over UDP, whatever the audio codec.
#[test]
fn camera_with_audio_stream_delivers_video_over_tcp_and_udp() {
    use checkpoint_media::rtsp_server::RtspAudio;
    use checkpoint_media::RtspTransport;
    let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
    let audios = [
        ("/aac", RtspAudio::Aac),
        ("/pcmu", RtspAudio::Pcmu),
        ("/opus", RtspAudio::Opus),
    ];
    for (mount, audio) in audios {
        server
            .mount_test_pattern_with_audio(mount, 160, 120, 15, audio)
            .expect("mount");
    }
    let (tx, rx) = frame_channel();
    let mut cams = Vec::new();
    for (mount, _) in audios {
        for transport in [RtspTransport::Tcp, RtspTransport::Udp] {
            let mut r = RtspSource::new(server.url(mount));
            r.transport = transport;
            let id = format!("{mount}-{transport:?}");
            let cfg = SourceConfig::new(SourceKind::Rtsp(r));
            cams.push((
                id.clone(),
                CameraSource::spawn(&id, cfg, tx.clone()).expect("spawn"),
            ));
        }
    }
    drop(tx);
    let (seen, _t) = drain(rx);
    let all_flowing = (0..150).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        cams.iter().all(|(id, _)| count(&seen, id) >= 5)
    });
    for (id, cam) in &cams {
        eprintln!("{id}: {} frames, {:?}", count(&seen, id), cam.state());
    }
    assert!(all_flowing, "every camera delivered frames");
    for (id, cam) in &cams {
        assert!(
            matches!(
                cam.state(),
                SourceState::Up {
                    width: 160,
                    height: 120,
                    ..
                }
            ),
            "{id}: {:?}",
            cam.state()
        );
        assert_eq!(cam.stats().snapshot().reconnects, 0, "{id}");
    }
}

/// Soak for the teardown hang (run by hand, with load beside it: `cargo test -p checkpoint-media --test rtsp
/// -- --ignored --nocapture hangup_soak`). Two cameras on one server; the server hangs up as the clip ends,
/// with the second camera a moment behind. About one round in 40-60 on two loaded cores used to leave a
/// camera `Up` for good, its supervisor stuck in rtspsrc's teardown; now it reports the loss within the
/// watchdog plus the teardown limit and the stuck pipeline is counted.
#[test]
#[ignore]
fn hangup_soak_every_camera_notices_the_server_going() {
    common::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    write_test_clip(&clip, 1280, 720, 25, 100).expect("clip");
    let gone = |s: &SourceState| {
        matches!(
            s,
            SourceState::Reconnecting { .. } | SourceState::Down { .. }
        )
    };
    let mut abandoned = 0;
    for round in 0..60u64 {
        let server = RtspTestServer::start("127.0.0.1", 0).expect("server");
        server.mount_file(&clip, "/gate", false).expect("mount");
        let (tx, rx) = frame_channel();
        let cameras: Vec<CameraHandle> = [("a", 10.0), ("b", 2.0)]
            .into_iter()
            .map(|(id, fps)| {
                let mut cfg = rtsp(server.url("/gate"));
                cfg.analysis_fps = Some(fps);
                CameraSource::spawn(id, cfg, tx.clone()).expect("spawn")
            })
            .collect();
        drop(tx);
        let (_seen, consumer) = drain(rx);
        wait_state(&cameras[0], Duration::from_secs(20), gone).expect("the clip ends");
        server.stop();
        let stopped = Instant::now();
        let late = wait_state(&cameras[1], Duration::from_secs(15), gone);
        assert!(
            late.is_ok(),
            "round {round}: camera b still {:?} 15 s after the server went",
            cameras[1].state()
        );
        abandoned += cameras
            .iter()
            .map(|c| c.stats().snapshot().abandoned_teardowns)
            .sum::<u64>();
        eprintln!(
            "round {round}: b noticed after {:?}, {abandoned} abandoned teardowns so far",
            stopped.elapsed()
        );
        drop(cameras);
        consumer.join().expect("consumer");
    }
}
