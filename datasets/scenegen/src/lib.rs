//! Test videos with known ground truth for the people counter.
//!
//! Real face photos (LFW head-and-shoulders crops, soft-masked into person cut-outs) walk across a
//! procedural background and cross a counting line in both directions, some pausing on it, some stepping
//! back and forth across it, several at once in separate lanes, plus a few who walk parallel to the line
//! and never cross. [`generate`] encodes the scene to H.264 in MP4 with GStreamer and writes the
//! [`Truth`]: who crossed, which way, when, and where each face is in every frame.
//!
//! ```no_run
//! use checkpoint_scenegen::{generate, SceneSpec};
//! let spec = SceneSpec { seed: 7, actors: 16, ..SceneSpec::default() };
//! let truth = generate(&spec, std::path::Path::new("/tmp/scene"))?;
//! println!("{} in, {} out", truth.totals.in_, truth.totals.out);
//! # Ok::<(), checkpoint_scenegen::SceneError>(())
//! ```
//!
//! Direction convention: the line runs from `a` to `b`; `in_normal = (-(b-a).y, (b-a).x)/|b-a|` points to
//! the "in" side. With the default line `a = (0, H/2)`, `b = (W, H/2)` that is `(0, 1)`: **"in" = moving
//! down the picture (top half to bottom half), "out" = moving up**.

mod background;
mod decode;
mod encode;
mod eval;
mod faces;
mod plan;
mod rng;
mod sprite;
mod truth;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use decode::{decode_frames, probe_video, snapshot, VideoProbe};
pub use eval::{
    analysed_frames, observable_crossers, score_crossings, synthetic_detections, CountScore,
    Counted, DetectorNoise, IdAudit, SyntheticDetection, Target,
};
pub use faces::usable_photo;
pub use truth::{box_centre, Direction, Totals, Truth, TruthActor, TruthLine, TRUTH_VERSION};

use plan::{Cast, Draw, Geom, Role};
use rng::Rng;

/// File name of the video inside the output directory.
pub const VIDEO_FILE: &str = "scene.mp4";
/// File name of the truth inside the output directory.
pub const TRUTH_FILE: &str = "truth.json";
/// The faces directory below `$CHECKPOINT_ASSETS` or `<repo>/../shared`.
pub const FACES_SUBDIR: &str = "datasets/faces/lfw_fold1";

/// Errors; none of them panics.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error(
        "faces directory {path} not found: pass --faces DIR, set CHECKPOINT_ASSETS, or check out shared/ \
         beside the repository (expected LFW layout <dir>/<Person_Name>/<Person_Name>_0001.jpg)"
    )]
    FacesDirMissing { path: PathBuf },
    #[error(
        "no usable face photos in {path}: expected LFW layout <dir>/<Person_Name>/<Person_Name>_0001.jpg"
    )]
    NoPhotos { path: PathBuf },
    #[error(
        "the scene needs {needed} distinct identities but {path} has only {found} usable ones"
    )]
    NotEnoughIdentities {
        needed: usize,
        found: usize,
        path: PathBuf,
    },
    #[error("invalid scene spec: {0}")]
    InvalidSpec(String),
    #[error("the scene does not fit: {0}")]
    DoesNotFit(String),
    #[error("GStreamer element '{element}' is missing: install the Debian package {package}")]
    MissingElement {
        element: String,
        package: &'static str,
    },
    #[error("GStreamer: {0}")]
    Gst(String),
    #[error("cannot read image {path}: {err}")]
    Image {
        path: PathBuf,
        err: image::ImageError,
    },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("truth JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A counting line from `a` to `b` in pixels. See the crate docs for which side is "in".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub a: [f32; 2],
    pub b: [f32; 2],
}

impl Line {
    /// Horizontal, across the middle, from left to right: "in" = moving down.
    pub fn horizontal(width: u32, height: u32) -> Line {
        let y = (height / 2) as f32;
        Line {
            a: [0.0, y],
            b: [width as f32, y],
        }
    }
}

/// The procedural background (a wall above a tiled floor, textured; colours drawn from the seed).
#[derive(Clone, Debug, PartialEq)]
pub struct Background {
    /// Amplitude of per-frame sensor noise in 8-bit levels (0 = none).
    pub sensor_noise: u8,
    /// Paint a yellow stripe along the counting line.
    pub draw_line: bool,
}

impl Default for Background {
    fn default() -> Self {
        Self {
            sensor_noise: 2,
            draw_line: true,
        }
    }
}

/// What to generate. `SceneSpec::default()` is the standard scene: 1280x720 at 25 fps, 60 s, seed 7,
/// 16 crossers and 2 non-crossers, a fifth of the crossers pausing and a fifth jittering.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Length in seconds; `None`: just long enough for everyone (actors enter as soon as there is room).
    pub duration_s: Option<f64>,
    pub seed: u64,
    /// People who cross the line (about half each way).
    pub actors: usize,
    /// People who walk parallel to the line, halfway between it and the picture's edge, and never cross.
    pub non_crossers: usize,
    /// The counting line; `None` = [`Line::horizontal`].
    pub line: Option<Line>,
    /// Fraction of crossers who stop on the line (face centre 2-6 px from it) for `pause_s`.
    pub pause_fraction: f64,
    /// How long those stop, seconds (min, max; drawn uniformly). Default 1-3 s.
    pub pause_s: (f32, f32),
    /// Fraction of crossers who step back and forth across the line (amplitude 5-13 px) before going on.
    pub jitter_fraction: f64,
    /// At most this many people in the picture at once.
    pub max_concurrent: usize,
    /// Face box height range in pixels (YuNet's box on the photo); photos are not upscaled beyond 1.25x,
    /// so a few faces may come out smaller than asked.
    pub face_height_px: (f32, f32),
    /// Walking speed range in pixels per second (plus about ±10 % step wobble). At 170 px/s a face moves
    /// at most about 21 px between frames analysed at 10 fps.
    pub speed_px_s: (f32, f32),
    /// LFW-layout photo directory, see [`default_faces_dir`].
    pub faces_dir: PathBuf,
    pub background: Background,
    /// H.264 bitrate; `None`: 0.1 bit per pixel (2.3 Mbit/s at 720p25).
    pub bitrate_kbps: Option<u32>,
    /// x264 threads. 1 (default) makes the encoded stream reproducible; the MP4 header still carries the
    /// creation time, so files differ in a few bytes between runs.
    pub encoder_threads: u32,
    /// Write per-frame face boxes into the truth.
    pub write_boxes: bool,
}

impl Default for SceneSpec {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 25,
            duration_s: Some(60.0),
            seed: 7,
            actors: 16,
            non_crossers: 2,
            line: None,
            pause_fraction: 0.2,
            pause_s: (1.0, 3.0),
            jitter_fraction: 0.2,
            max_concurrent: 4,
            face_height_px: (64.0, 110.0),
            speed_px_s: (100.0, 170.0),
            faces_dir: default_faces_dir(),
            background: Background::default(),
            bitrate_kbps: None,
            encoder_threads: 1,
            write_boxes: true,
        }
    }
}

impl SceneSpec {
    /// The names [`SceneSpec::preset`] knows.
    pub const PRESETS: [&'static str; 4] = ["standard", "fast", "crowd", "stop"];

    /// The scenes of the frame-rate sweep (`checkpoint-bench counting-rates`), each 60 s of 720p at 25 fps:
    ///
    /// * `standard`: the default scene (16 crossers, 2 non-crossers, seed 7).
    /// * `fast`: everyone walks twice as fast (200-340 px/s): at 2 fps a face moves 100-170 px, one and a
    ///   half to three of its heights, between analysed frames.
    /// * `crowd`: 1920x1080, 60 crossers and 4 non-crossers with faces of 48-72 px: up to 16 people in the
    ///   picture at once and 10 or more for three quarters of the scene, side by side in nine lanes.
    /// * `stop`: 80% of the crossers stop on the line for 1-6 s, the rest step back and forth across it.
    pub fn preset(name: &str) -> Option<SceneSpec> {
        let base = SceneSpec::default();
        Some(match name {
            "standard" => base,
            "fast" => SceneSpec {
                seed: 8,
                speed_px_s: (200.0, 340.0),
                ..base
            },
            "crowd" => SceneSpec {
                seed: 9,
                width: 1920,
                height: 1080,
                actors: 60,
                non_crossers: 4,
                max_concurrent: 20,
                face_height_px: (48.0, 72.0),
                ..base
            },
            "stop" => SceneSpec {
                seed: 10,
                pause_fraction: 0.8,
                jitter_fraction: 0.2,
                pause_s: (1.0, 6.0),
                ..base
            },
            _ => return None,
        })
    }

    /// The line actually used.
    pub fn effective_line(&self) -> Line {
        self.line
            .unwrap_or_else(|| Line::horizontal(self.width, self.height))
    }

    /// The bitrate actually used, kbit/s.
    pub fn effective_bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps.unwrap_or_else(|| {
            let bits = self.width as f64 * self.height as f64 * self.fps as f64 * 0.1;
            ((bits / 1000.0).round() as u32).clamp(300, 20_000)
        })
    }

    fn validate(&self) -> Result<(), SceneError> {
        let bad = |m: String| Err(SceneError::InvalidSpec(m));
        if self.width < 128 || self.height < 128 || self.width > 7680 || self.height > 4320 {
            return bad(format!(
                "size {}x{} outside 128x128..7680x4320",
                self.width, self.height
            ));
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return bad("width and height must be even (H.264 4:2:0)".into());
        }
        if self.fps == 0 || self.fps > 240 {
            return bad(format!("fps {} outside 1..=240", self.fps));
        }
        if let Some(d) = self.duration_s {
            if !(d.is_finite() && d >= 1.0) {
                return bad(format!("duration {d} s: must be at least 1 s"));
            }
        }
        let frac = |f: f64| (0.0..=1.0).contains(&f);
        if !frac(self.pause_fraction)
            || !frac(self.jitter_fraction)
            || self.pause_fraction + self.jitter_fraction > 1.0 + 1e-9
        {
            return bad(
                "pause_fraction and jitter_fraction must be in 0..=1 and add up to at most 1"
                    .into(),
            );
        }
        let (p0, p1) = self.pause_s;
        if !(0.1..=60.0).contains(&p0) || !(p0..=60.0).contains(&p1) {
            return bad(format!(
                "pause length {p0}..{p1} s: need 0.1 <= min <= max <= 60"
            ));
        }
        if self.max_concurrent == 0 {
            return bad("max_concurrent must be at least 1".into());
        }
        let (f0, f1) = self.face_height_px;
        if !(10.0..=400.0).contains(&f0) || !(f0..=400.0).contains(&f1) {
            return bad(format!(
                "face height range {f0}..{f1} px: need 10 <= min <= max <= 400"
            ));
        }
        let (v0, v1) = self.speed_px_s;
        if !(10.0..=2000.0).contains(&v0) || !(v0..=2000.0).contains(&v1) {
            return bad(format!(
                "speed range {v0}..{v1} px/s: need 10 <= min <= max <= 2000"
            ));
        }
        if self.encoder_threads > 64 {
            return bad("encoder_threads must be at most 64 (0 = automatic)".into());
        }
        if let Some(b) = self.bitrate_kbps {
            if !(100..=100_000).contains(&b) {
                return bad(format!("bitrate {b} kbit/s outside 100..=100000"));
            }
        }
        let l = self.effective_line();
        let inside = |p: [f32; 2]| {
            p[0] >= 0.0 && p[1] >= 0.0 && p[0] <= self.width as f32 && p[1] <= self.height as f32
        };
        let len = ((l.b[0] - l.a[0]).powi(2) + (l.b[1] - l.a[1]).powi(2)).sqrt();
        if !inside(l.a) || !inside(l.b) || !len.is_finite() || len < 32.0 {
            return bad(format!(
                "line {:?}-{:?} must lie inside the picture and be at least 32 px long",
                l.a, l.b
            ));
        }
        Ok(())
    }
}

/// The faces directory used by default: `$CHECKPOINT_ASSETS/datasets/faces/lfw_fold1` when that variable
/// is set, else `<repo>/../shared/datasets/faces/lfw_fold1` for the repository containing the current
/// directory (or this crate's sources), else the relative path `../shared/datasets/faces/lfw_fold1`.
pub fn default_faces_dir() -> PathBuf {
    if let Some(a) = std::env::var_os("CHECKPOINT_ASSETS") {
        return PathBuf::from(a).join(FACES_SUBDIR);
    }
    let under = |root: &Path| root.join("..").join("shared").join(FACES_SUBDIR);
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let c = under(dir);
            if c.is_dir() {
                return c.canonicalize().unwrap_or(c);
            }
        }
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let c = under(&repo);
    if c.is_dir() {
        return c.canonicalize().unwrap_or(c);
    }
    Path::new("../shared").join(FACES_SUBDIR)
}

struct Prepared {
    line: Line,
    geom: Geom,
    casts: Vec<Cast>,
}

fn prepare(spec: &SceneSpec) -> Result<Prepared, SceneError> {
    spec.validate()?;
    let line = spec.effective_line();
    let geom = Geom::new(&line, spec.width, spec.height);
    let ids = faces::catalogue(&spec.faces_dir)?;
    let total = spec.actors + spec.non_crossers;
    if ids.len() < total {
        return Err(SceneError::NotEnoughIdentities {
            needed: total,
            found: ids.len(),
            path: spec.faces_dir.clone(),
        });
    }
    let mut rng = Rng::stream(spec.seed, 0x1D, 0);
    let mut order: Vec<usize> = (0..ids.len()).collect();
    rng.shuffle(&mut order);
    // About half each way; an odd one out goes either way.
    let n_in = spec.actors / 2 + usize::from(!spec.actors.is_multiple_of(2) && rng.chance(0.5));
    let mut dirs: Vec<f64> = (0..spec.actors)
        .map(|i| if i < n_in { 1.0 } else { -1.0 })
        .collect();
    rng.shuffle(&mut dirs);
    let n_pause = ((spec.actors as f64 * spec.pause_fraction).round() as usize).min(spec.actors);
    let n_jitter =
        ((spec.actors as f64 * spec.jitter_fraction).round() as usize).min(spec.actors - n_pause);
    let mut who: Vec<usize> = (0..spec.actors).collect();
    rng.shuffle(&mut who);
    let mut pause = vec![false; spec.actors];
    let mut jitter = vec![false; spec.actors];
    for &i in &who[..n_pause] {
        pause[i] = true;
    }
    for &i in &who[n_pause..n_pause + n_jitter] {
        jitter[i] = true;
    }
    let mut casts = Vec::with_capacity(total);
    for i in 0..total {
        let mut arng = Rng::stream(spec.seed, 0xAC, i as u64);
        let id = &ids[order[i]];
        let photo = &id.photos[arng.below(id.photos.len())];
        let target = arng.range(spec.face_height_px.0 as f64, spec.face_height_px.1 as f64) as f32;
        let role = if i < spec.actors {
            Role::Cross { dir: dirs[i] }
        } else {
            Role::Parallel {
                band_sign: arng.sign(),
                forward: arng.sign(),
            }
        };
        let img = sprite::load_photo(&photo.path)?;
        let scale = sprite::scale_for(img.height(), photo.face[3], target);
        let sprite = sprite::build(&img, photo.face, scale);
        if !photo.measured {
            tracing::debug!(photo = %photo.rel_path, "no measured face box; using the LFW mean");
        }
        let (p, j) = if i < spec.actors {
            (pause[i], jitter[i])
        } else {
            (false, false)
        };
        let draw = Draw::new(
            &mut arng,
            role,
            spec.speed_px_s,
            p.then_some(spec.pause_s),
            j,
        );
        casts.push(Cast {
            identity: id.name.clone(),
            photo: photo.rel_path.clone(),
            sprite,
            draw,
        });
    }
    Ok(Prepared { line, geom, casts })
}

/// Plans the scene and returns its truth without rendering or encoding anything (fast: loads and scales
/// the photos only). [`generate`] with the same spec returns exactly this truth.
pub fn plan(spec: &SceneSpec) -> Result<Truth, SceneError> {
    let p = prepare(spec)?;
    let (placed, frames) = plan::schedule(spec, &p.geom, &p.casts)?;
    Ok(plan::truth(
        spec, &p.line, &p.geom, &p.casts, &placed, frames,
    ))
}

/// Renders the scene into `<out_dir>/scene.mp4` (H.264, MP4) and writes `<out_dir>/truth.json`.
pub fn generate(spec: &SceneSpec, out_dir: &Path) -> Result<Truth, SceneError> {
    encode::check_elements(&encode::ENCODER_ELEMENTS)?;
    let p = prepare(spec)?;
    let (placed, frames) = plan::schedule(spec, &p.geom, &p.casts)?;
    let truth = plan::truth(spec, &p.line, &p.geom, &p.casts, &placed, frames);
    std::fs::create_dir_all(out_dir).map_err(|e| SceneError::Io {
        path: out_dir.to_path_buf(),
        err: e,
    })?;
    // A truth from an earlier run must not survive next to a video that failed to render.
    let truth_path = out_dir.join(TRUTH_FILE);
    if truth_path.exists() {
        std::fs::remove_file(&truth_path).map_err(|e| SceneError::Io {
            path: truth_path.clone(),
            err: e,
        })?;
    }
    let video = out_dir.join(VIDEO_FILE);
    let started = std::time::Instant::now();
    let enc = encode::Encoder::open(
        &video,
        &encode::EncoderSettings {
            width: spec.width,
            height: spec.height,
            fps: spec.fps,
            bitrate_kbps: spec.effective_bitrate_kbps(),
            threads: spec.encoder_threads,
        },
    )?;
    let (w, h, stride) = (spec.width as usize, spec.height as usize, enc.stride);
    let bg = background::render(w, h, stride, spec.seed, &p.geom, spec.background.draw_line);
    if bg.len() != enc.frame_bytes() {
        return Err(SceneError::Gst(format!(
            "unexpected RGB frame size {} (expected {})",
            enc.frame_bytes(),
            bg.len()
        )));
    }
    let mut backgrounds =
        background::NoisyBackgrounds::new(bg, spec.background.sensor_noise, spec.seed);
    for k in 0..frames {
        let mut f = backgrounds.next().to_vec();
        for pl in &placed {
            if let Some(pos) = pl.track.at(k) {
                sprite::blit(
                    &mut f,
                    w,
                    h,
                    stride,
                    &p.casts[pl.cast].sprite,
                    pos[0],
                    pos[1],
                );
            }
        }
        enc.push(k, f)?;
    }
    enc.finish()?;
    tracing::info!(
        frames,
        seconds = started.elapsed().as_secs_f64(),
        "encoded {}",
        video.display()
    );
    truth.save(&truth_path)?;
    Ok(truth)
}
