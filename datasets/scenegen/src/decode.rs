//! Decoding a generated scene back: frame counts for tests, PNG snapshots with the truth drawn on them.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use image::{Rgb, RgbImage};

use crate::encode::{check_elements, package_of};
use crate::truth::{Direction, Truth};
use crate::SceneError;

/// What a decoded video holds.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoProbe {
    pub width: u32,
    pub height: u32,
    /// Frames decoded (every frame, counted one by one).
    pub frames: u64,
    /// Frame rate from the caps (numerator, denominator).
    pub fps: (i32, i32),
    /// Presentation time of the last frame plus its duration, seconds.
    pub duration_s: f64,
}

/// Decodes `path`, handing the frames for which `want(k)` holds to `sink` as RGB images.
pub fn decode_frames(
    path: &Path,
    want: &dyn Fn(u64) -> bool,
    sink: &mut dyn FnMut(u64, RgbImage),
) -> Result<VideoProbe, SceneError> {
    if !path.is_file() {
        return Err(SceneError::Io {
            path: path.to_path_buf(),
            err: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    check_elements(&["filesrc", "decodebin", "videoconvert", "appsink"])?;
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false max-buffers=4",
    )
    .map_err(|e| SceneError::Gst(format!("cannot build the decoder: {e}")))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| SceneError::Gst("not a pipeline".into()))?;
    let src = pipeline.by_name("src").expect("named src");
    src.set_property("location", path.to_string_lossy().as_ref());
    let appsink = pipeline
        .by_name("sink")
        .expect("named sink")
        .downcast::<gst_app::AppSink>()
        .map_err(|_| SceneError::Gst("not an appsink".into()))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = (|| {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| SceneError::Gst(format!("cannot start the decoder: {e}")))?;
        let mut probe = VideoProbe {
            width: 0,
            height: 0,
            frames: 0,
            fps: (0, 1),
            duration_s: 0.0,
        };
        while let Ok(sample) = appsink.pull_sample() {
            let caps = sample
                .caps()
                .ok_or_else(|| SceneError::Gst("sample without caps".into()))?;
            let info = gst_video::VideoInfo::from_caps(caps)
                .map_err(|e| SceneError::Gst(e.to_string()))?;
            probe.width = info.width();
            probe.height = info.height();
            probe.fps = (info.fps().numer(), info.fps().denom());
            let buffer = sample
                .buffer()
                .ok_or_else(|| SceneError::Gst("sample without buffer".into()))?;
            if let Some(pts) = buffer.pts() {
                let end = pts + buffer.duration().unwrap_or_default();
                probe.duration_s = probe.duration_s.max(end.nseconds() as f64 / 1e9);
            }
            let k = probe.frames;
            probe.frames += 1;
            if want(k) {
                let map = buffer
                    .map_readable()
                    .map_err(|e| SceneError::Gst(e.to_string()))?;
                let stride = info.stride()[0] as usize;
                let (w, h) = (info.width() as usize, info.height() as usize);
                let mut img = RgbImage::new(w as u32, h as u32);
                for (y, row) in img.as_mut().chunks_exact_mut(w * 3).enumerate() {
                    row.copy_from_slice(&map[y * stride..y * stride + w * 3]);
                }
                sink(k, img);
            }
        }
        // The appsink stops at EOS or on error: tell them apart.
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                let text = e.error().to_string();
                if text.contains("No decoder") || text.contains("missing") {
                    return Err(SceneError::MissingElement {
                        element: "avdec_h264".into(),
                        package: package_of("avdec_h264"),
                    });
                }
                return Err(SceneError::Gst(format!(
                    "decoding {}: {text}{}",
                    path.display(),
                    e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
                )));
            }
        }
        Ok(probe)
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Decodes the whole video and reports its size and frame count.
pub fn probe_video(path: &Path) -> Result<VideoProbe, SceneError> {
    decode_frames(path, &|_| false, &mut |_, _| {})
}

fn draw_rect(img: &mut RgbImage, b: [f32; 4], c: Rgb<u8>, t: i32) {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let (x0, y0) = (b[0].round() as i32, b[1].round() as i32);
    let (x1, y1) = ((b[0] + b[2]).round() as i32, (b[1] + b[3]).round() as i32);
    let mut put = |x: i32, y: i32| {
        if x >= 0 && y >= 0 && x < w && y < h {
            img.put_pixel(x as u32, y as u32, c);
        }
    };
    for i in 0..t {
        for x in x0..=x1 {
            put(x, y0 + i);
            put(x, y1 - i);
        }
        for y in y0..=y1 {
            put(x0 + i, y);
            put(x1 - i, y);
        }
    }
}

/// Writes `frame_NNNNNN.png` for each requested frame into `out_dir`; with a truth, the line (red), face
/// boxes (green: in, orange: out, blue: non-crosser) and cut-out boxes (thin grey) are drawn on them.
pub fn snapshot(
    video: &Path,
    frames: &[u64],
    truth: Option<&Truth>,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, SceneError> {
    std::fs::create_dir_all(out_dir).map_err(|e| SceneError::Io {
        path: out_dir.to_path_buf(),
        err: e,
    })?;
    let mut written = Vec::new();
    let mut err = None;
    decode_frames(video, &|k| frames.contains(&k), &mut |k, mut img| {
        if let Some(t) = truth {
            let (a, b) = (t.line.a, t.line.b);
            let n = 2000;
            for i in 0..=n {
                let f = i as f32 / n as f32;
                let (x, y) = (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f);
                for dy in -1..=0 {
                    let (xi, yi) = (x.round() as i64, y.round() as i64 + dy);
                    if xi >= 0 && yi >= 0 && (xi as u32) < img.width() && (yi as u32) < img.height()
                    {
                        img.put_pixel(xi as u32, yi as u32, Rgb([230, 30, 30]));
                    }
                }
            }
            for (actor, bx) in t.faces_at(k) {
                let c = match actor.direction {
                    Direction::In => Rgb([40, 220, 60]),
                    Direction::Out => Rgb([255, 150, 20]),
                    Direction::None => Rgb([40, 120, 255]),
                };
                if let Some(cut) = actor.cutout_at(k) {
                    draw_rect(&mut img, cut, Rgb([150, 150, 150]), 1);
                }
                draw_rect(&mut img, bx, c, 2);
            }
        }
        let p = out_dir.join(format!("frame_{k:06}.png"));
        match img.save(&p) {
            Ok(()) => written.push(p),
            Err(e) => {
                err.get_or_insert(SceneError::Image { path: p, err: e });
            }
        }
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(written),
    }
}
