//! A camera's loop driven directly, without threads: real models, frames made from a real photo, the events
//! caught from the sink.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use checkpoint_media::{Frame, SourceState};
use checkpoint_protocol::{CameraState, Direction, Envelope, EventKind};
use checkpoint_vision::{BgrImage, Runtime};
use parking_lot::Mutex;
use time::OffsetDateTime;

use super::camera::{CameraLoop, Ctx, Rates};
use super::setup::load_models;
use crate::analysis::{CameraAnalyzer, CameraSetup, LineConfig, Mode, Models};
use crate::config::Config;
use crate::count::Side;
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::tally::SiteTally;

/// The sink's output, kept for the test to read.
#[derive(Clone, Default)]
struct Caught(Arc<Mutex<Vec<u8>>>);

impl Write for Caught {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Caught {
    fn events(&self) -> Vec<EventKind> {
        let bytes = self.0.lock().clone();
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                Envelope::from_json(l)
                    .expect("the sink writes valid envelopes")
                    .event
            })
            .collect()
    }
}

struct Rig {
    camera: CameraLoop,
    ctx: Ctx,
    models: Models,
    caught: Caught,
}

/// A faces-mode camera with one vertical line in the middle of the frame; walking left to right is "in".
fn rig() -> Rig {
    let caught = Caught::default();
    let metrics = Arc::new(Metrics::new());
    let line = LineConfig {
        id: "door".into(),
        a: [0.5, 0.0],
        b: [0.5, 1.0],
        coords: Default::default(),
        // Looking down the line (from a at the top to b at the bottom), "left" is the right half of the frame.
        in_side: Side::Left,
        band: None,
        site_boundary: true,
    };
    let mut tally = SiteTally::new(OffsetDateTime::now_utc());
    tally.add_line("cam", "door", true);
    let ctx = Ctx {
        sink: EventSink::with_writer("site", "agent", Box::new(caught.clone())),
        tally: Arc::new(Mutex::new(tally)),
        metrics: metrics.clone(),
        status_every: Duration::from_secs(3600),
    };
    let cfg: Config = checkpoint_config::parse(
        "[site]\nid = \"site\"\n[agent]\nid = \"agent\"\n[[cameras]]\nid = \"cam\"\n[cameras.stream]\nsource = { kind = \"file\", path = \"x.mp4\" }\n",
    )
    .expect("a minimal config");
    let rt = Runtime::get_or_default().expect("ONNX Runtime (scripts/setup)");
    let models = load_models(&cfg, false, rt).expect("the models (scripts/setup)");
    let analyzer = CameraAnalyzer::new(
        CameraSetup::new("cam", Mode::Faces, vec![line]),
        metrics.clone(),
    );
    let (_tx, events) = crossbeam_channel::unbounded();
    let camera = CameraLoop::new(
        "cam".into(),
        metrics.camera("cam"),
        analyzer,
        None,
        events,
        Rates {
            paced: true,
            analysis_fps: Some(10.0),
            reliable_fps: 5.0,
        },
    );
    Rig {
        camera,
        ctx,
        models,
        caught,
    }
}

fn face_photo() -> BgrImage {
    let shared = std::env::var_os("CHECKPOINT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    BgrImage::open(&shared.join("datasets/faces/ageitgey/biden.jpg")).expect("the face photo")
}

/// The photo on a grey canvas three times its width, `x` pixels from the left.
fn frame_at(photo: &BgrImage, x: u32, seq: u64) -> Frame {
    let (w, h) = (photo.width * 3, photo.height);
    let mut data = vec![128u8; (w * h * 3) as usize];
    for row in 0..h as usize {
        let src = &photo.data[row * photo.width as usize * 3..][..photo.width as usize * 3];
        let at = (row * w as usize + x as usize) * 3;
        data[at..at + src.len()].copy_from_slice(src);
    }
    Frame {
        camera_id: "cam".into(),
        seq,
        pts_s: seq as f64 * 0.1,
        wall: SystemTime::now(),
        image: BgrImage::new(w, h, data).unwrap(),
    }
}

fn up() -> SourceState {
    SourceState::Up {
        width: 1920,
        height: 1080,
        fps: Some(25.0),
    }
}

fn statuses(events: &[EventKind]) -> Vec<CameraState> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::CameraStatus(s) => Some(s.state),
            _ => None,
        })
        .collect()
}

/// The directions of the crossings of the line `door`, in order.
fn crossings(events: &[EventKind]) -> Vec<Direction> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::LineCrossing(c) if c.line == "door" => Some(c.direction),
            _ => None,
        })
        .collect()
}

#[test]
fn a_face_walking_across_the_line_is_counted_once_as_in() {
    let mut r = rig();
    let photo = face_photo();
    r.camera.on_state(&r.ctx, &up());
    let steps = 40u64;
    for i in 0..=steps {
        let x = (2 * photo.width) as u64 * i / steps;
        r.camera
            .on_frame(&mut r.models, &frame_at(&photo, x as u32, i), &r.ctx);
    }
    assert_eq!(crossings(&r.caught.events()), [Direction::In]);
    assert_eq!(
        r.ctx.tally.lock().occupancy(),
        1,
        "the crossing is in the site's tally"
    );
}

#[test]
fn a_lost_camera_reports_at_once_and_ends_its_tracks() {
    let mut r = rig();
    let photo = face_photo();
    r.camera.on_state(&r.ctx, &up());
    for i in 0..5 {
        r.camera
            .on_frame(&mut r.models, &frame_at(&photo, photo.width, i), &r.ctx);
    }
    assert_eq!(r.camera.tracks_with_faces(), 1, "the still face is tracked");
    r.camera.on_state(
        &r.ctx,
        &SourceState::Reconnecting {
            attempt: 1,
            backoff: Duration::from_secs(1),
        },
    );
    assert_eq!(
        r.camera.tracks_with_faces(),
        0,
        "people before an outage are not the ones after it"
    );
    r.camera.on_state(&r.ctx, &up());
    assert_eq!(
        statuses(&r.caught.events()),
        [CameraState::Up, CameraState::Reconnecting, CameraState::Up],
        "every state change is reported as it happens"
    );
}

#[test]
fn odd_frames_in_the_stream_neither_stop_the_camera_nor_break_its_count() {
    let mut r = rig();
    let photo = face_photo();
    r.camera.on_state(&r.ctx, &up());
    let steps = 40u64;
    for i in 0..=steps {
        if i == 12 || i == 25 {
            // A sliver (a decoder glitch) and a frame of another size (a camera renegotiating) mid-walk.
            for (w, h) in [(4, 1), (64, 48)] {
                let odd = Frame {
                    image: BgrImage::new(w, h, vec![0; (w * h * 3) as usize]).unwrap(),
                    ..frame_at(&photo, 0, i)
                };
                r.camera.on_frame(&mut r.models, &odd, &r.ctx);
            }
        }
        let x = (2 * photo.width) as u64 * i / steps;
        r.camera
            .on_frame(&mut r.models, &frame_at(&photo, x as u32, i), &r.ctx);
    }
    assert_eq!(crossings(&r.caught.events()), [Direction::In]);
}
