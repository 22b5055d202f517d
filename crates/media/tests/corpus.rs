//! Every recording of the corpus (`checkpoint_media::clips::corpus`) opens as a file camera and
//! delivers frames of the right size, with the right stream picked; rotated footage arrives
//! upright; a file whose codec has no decoder fails at once, naming the element and package.

mod common;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use checkpoint_media::clips::{corpus, Clip};
use checkpoint_media::{
    frame_channel, probe_file, require_decoder, CameraSource, FileProbe, FileSource, Frame,
    MediaError, SourceConfig, SourceKind, SourceState,
};

fn file_source(path: &Path) -> SourceConfig {
    SourceConfig::new(SourceKind::File(FileSource {
        path: path.into(),
        realtime: false,
        looping: false,
    }))
}

/// Runs a file camera to its end and returns every frame and the final state.
fn play(path: &Path) -> (Vec<Frame>, SourceState) {
    let (tx, rx) = frame_channel();
    let cam = CameraSource::spawn("corpus", file_source(path), tx).expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut frames = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(f) => frames.push(f),
            Err(_) => {
                let s = cam.state();
                let done = matches!(s, SourceState::Ended | SourceState::Down { .. });
                if (done && rx.is_empty()) || Instant::now() > deadline {
                    return (frames, s);
                }
            }
        }
    }
}

fn check(clip: &Clip, dir: &Path) -> Result<String, String> {
    let path = clip
        .write(dir)
        .map_err(|e| format!("cannot write the clip: {e}"))?;
    let probe = probe_file(&path).map_err(|e| format!("probe: {e}"))?;
    if probe.video_stream != clip.video_stream {
        return Err(format!(
            "probe took stream {} ({:?}), expected {}",
            probe.video_stream, probe.streams, clip.video_stream
        ));
    }
    let t = Instant::now();
    let (frames, state) = play(&path);
    let first = frames
        .first()
        .ok_or_else(|| format!("no frame; final state {state:?}"))?;
    if state != SourceState::Ended {
        return Err(format!("final state {state:?}, expected Ended"));
    }
    let size = |f: &Frame| (f.image.width, f.image.height);
    if size(first) != clip.size {
        return Err(format!(
            "first frame {:?}, expected {:?}",
            size(first),
            clip.size
        ));
    }
    if let Some(after) = clip.size_after {
        if !frames.iter().any(|f| size(f) == after) {
            return Err(format!(
                "no frame at {after:?} after the change; sizes seen: {:?}",
                frames
                    .iter()
                    .map(size)
                    .collect::<std::collections::BTreeSet<_>>()
            ));
        }
    }
    if frames.windows(2).any(|w| w[1].pts_s < w[0].pts_s) {
        return Err("stream time went backwards".into());
    }
    Ok(format!(
        "{} frames in {:.2} s, streams {:?}",
        frames.len(),
        t.elapsed().as_secs_f64(),
        probe.streams
    ))
}

/// One table, every failing entry reported at once.
#[test]
fn every_corpus_recording_opens_with_the_right_stream_and_size() {
    common::init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for clip in corpus() {
        match check(&clip, dir.path()) {
            Ok(summary) => eprintln!("{:<36} ok: {summary}", clip.name),
            Err(e) => {
                eprintln!("{:<36} FAILED: {e}", clip.name);
                failures.push(format!("{}: {e}", clip.name));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The picture, not only its size: a frame stored on its side (bright left half) with a 90°
/// display rotation must arrive portrait with the bright half on top, as a player shows it.
#[test]
fn rotated_recording_is_delivered_upright() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = Clip {
        name: "sideways",
        file: "sideways.mp4",
        segments: vec!["videotestsrc num-buffers=10 pattern=white \
               ! video/x-raw,format=I420,width=160,height=240,framerate=10/1 \
               ! videobox right=-160 fill=black \
               ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux ! filesink location={out}"
            .into()],
        rotation: Some(90),
        size: (240, 320),
        size_after: None,
        video_stream: 0,
        needs: vec!["videobox", "x264enc", "mp4mux"],
    };
    let path = clip.write(dir.path()).expect("clip");
    let (frames, state) = play(&path);
    assert_eq!(state, SourceState::Ended);
    let f = frames.first().expect("a frame");
    assert_eq!((f.image.width, f.image.height), (240, 320));
    let mean = |rows: std::ops::Range<u32>| {
        let row_bytes = f.image.width as usize * 3;
        let (a, b) = (
            rows.start as usize * row_bytes,
            rows.end as usize * row_bytes,
        );
        f.image.data[a..b].iter().map(|&v| v as f64).sum::<f64>() / (b - a) as f64
    };
    let (top, bottom) = (mean(0..150), mean(170..320));
    assert!(
        top > 200.0 && bottom < 50.0,
        "top half bright, bottom dark: {top:.0} / {bottom:.0}"
    );
}

/// A codec no installed decoder handles is refused before any pipeline runs, naming what to
/// install. (The agent-level test in `tests/media_corpus.rs` removes real plugins.)
#[test]
fn codec_without_decoder_is_refused_naming_element_and_package() {
    checkpoint_media::init().expect("gst");
    let path = Path::new("/recordings/odd.mkv");
    let probe = |caps: &str| FileProbe {
        codec: None,
        video_caps: gstreamer::Caps::from_str(caps)
            .ok()
            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_default(),
        video_caps_full: caps.into(),
        video_stream: 0,
        streams: vec![],
    };
    match require_decoder(&probe("video/x-nonexistent-codec"), path) {
        Err(e @ MediaError::MissingCodec { .. }) => {
            let text = e.to_string();
            assert!(text.contains("video/x-nonexistent-codec"), "{text}");
            assert!(text.contains("/recordings/odd.mkv"), "{text}");
            assert!(text.contains("install the Debian package"), "{text}");
        }
        other => panic!("expected MissingCodec, got {other:?}"),
    }
    // Codecs this machine decodes pass.
    for caps in [
        "video/x-divx, divxversion=(int)5",
        "image/jpeg",
        "video/mpeg, mpegversion=(int)4, systemstream=(boolean)false",
    ] {
        require_decoder(&probe(caps), path).unwrap_or_else(|e| panic!("{caps}: {e}"));
    }
}
