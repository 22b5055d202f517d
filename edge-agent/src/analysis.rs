//! Per-camera analysis: detect, track, count, and keep each track's best face.
//!
//! One [`CameraAnalyzer`] per camera, driven by that camera's frames on its own thread. Face data lives only
//! in `track_faces` and is dropped the moment its track ends: nothing here leaves the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use checkpoint_vision::quality::face_quality;
use checkpoint_vision::{BgrImage, Embedding, Face, FaceDetector, FaceEmbedder, PersonDetector};
use serde::{Deserialize, Serialize};

use crate::count::{CameraCounter, Crossing, Direction, LineGeometry, Side};
use crate::metrics::Metrics;
use crate::track::{BBox, Detection, TrackerConfig};

/// What a camera tracks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Whole people (NanoDet); faces are attached to the person that contains them. Plazas, piers, platforms.
    #[default]
    People,
    /// Faces directly (YuNet). Gates and halls where the camera faces the walkers.
    Faces,
}

/// Which point of a tracked box is tested against the counting lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anchor {
    /// Bottom centre: where a person stands. The usual choice for people.
    Feet,
    /// Box centre. The usual choice for faces.
    Center,
}

impl Anchor {
    /// The point of `b` tested against the counting lines.
    pub fn point(self, b: &BBox) -> (f32, f32) {
        match self {
            Anchor::Feet => b.bottom_center(),
            Anchor::Center => b.center(),
        }
    }
}

/// Counting line as configured; coordinates are pixels or fractions of the frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub id: String,
    pub a: [f32; 2],
    pub b: [f32; 2],
    /// `normalized` (0..1 of width and height, the default) or `pixels`.
    #[serde(default)]
    pub coords: Coords,
    /// Side an entering person walks into, standing at `a` looking at `b` (image y grows downwards): for a
    /// line drawn left to right, `right` is below it.
    pub in_side: Side,
    /// Half-width of the hysteresis band, same units as the coordinates (normalised: fraction of the frame
    /// diagonal; default 0.02, or 24 px). Jitter inside the band never counts.
    #[serde(default)]
    pub band: Option<f32>,
    /// Whether the line bounds the site, so its crossings change site occupancy.
    #[serde(default = "yes")]
    pub site_boundary: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coords {
    #[default]
    Normalized,
    Pixels,
}

impl LineConfig {
    /// The line in pixels for a frame of this size.
    pub fn geometry(&self, width: u32, height: u32) -> LineGeometry {
        let (w, h) = (width as f32, height as f32);
        let (a, b, band) = match self.coords {
            Coords::Pixels => (
                (self.a[0], self.a[1]),
                (self.b[0], self.b[1]),
                self.band.unwrap_or(24.0),
            ),
            Coords::Normalized => {
                let diag = (w * w + h * h).sqrt();
                (
                    (self.a[0] * w, self.a[1] * h),
                    (self.b[0] * w, self.b[1] * h),
                    self.band.map(|b| b * diag).unwrap_or(0.02 * diag),
                )
            }
        };
        LineGeometry {
            a,
            b,
            in_side: self.in_side,
            band_px: band,
        }
    }
}

/// Tunables of the analysis.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisOptions {
    /// Longer side of the image the face detector sees (0 = the frame as it is).
    pub face_detect_max_side: u32,
    /// Faces smaller than this (shorter box side, pixels) are not embedded: SFace is unreliable below it.
    pub min_face_px: f32,
    /// Face size at which quality stops improving with size.
    pub good_face_px: f32,
    /// Faces embedded per track at most (the best ones by quality are kept).
    pub faces_per_track: usize,
    /// Re-embed a track's face only if quality beats the worst kept one by this factor.
    pub quality_gain: f32,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            face_detect_max_side: 960,
            min_face_px: 32.0,
            good_face_px: 96.0,
            faces_per_track: 3,
            quality_gain: 1.1,
        }
    }
}

/// A face kept for a track while the track lives.
#[derive(Clone, Debug)]
pub struct FaceSample {
    pub quality: f32,
    pub embedding: Embedding,
    pub face: Face,
    pub stream_time_s: f64,
}

/// The models the analysis runs. ONNX Runtime sessions need `&mut` to run, so each analysis worker owns one set
/// and lends it to whichever camera's frame it analyses: two workers on eight cameras hold two sets, not eight
/// (each set is ~100 MB of weights and activation buffers).
pub struct Models {
    pub faces: FaceDetector,
    pub embedder: Option<FaceEmbedder>,
    pub people: Option<PersonDetector>,
}

/// What one frame produced.
#[derive(Debug, Default)]
pub struct FrameOutcome {
    pub crossings: Vec<(Crossing, bool)>,
    pub ended: Vec<u64>,
    /// Tracks that kept a new face this frame, with that face: their watchlist decision may change.
    pub face_updates: Vec<(u64, Face)>,
    pub tracks: usize,
    pub faces: usize,
    pub people: usize,
    pub embedded: usize,
    /// Where this frame's time went (benchmarks plot it per stage).
    pub timings: StageTimings,
}

/// Wall time of one frame's analysis, per stage, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    /// Face detector: scaling the frame into its input tensor.
    pub face_prepare_ms: f64,
    /// Face detector: the network.
    pub face_network_ms: f64,
    /// Face detector: decoding its outputs and NMS.
    pub face_post_ms: f64,
    /// Person detector (people mode), all of it.
    pub people_ms: f64,
    /// Tracking and line counting.
    pub track_ms: f64,
    /// Aligning the faces worth embedding and running the embedder on them.
    pub embed_ms: f64,
}

/// What a camera analyses and how.
#[derive(Clone, Debug)]
pub struct CameraSetup {
    pub camera: String,
    pub mode: Mode,
    /// Defaults to feet for people, centre for faces.
    pub anchor: Option<Anchor>,
    pub lines: Vec<LineConfig>,
    pub tracker: TrackerConfig,
    pub options: AnalysisOptions,
}

impl CameraSetup {
    /// A camera with default tracking and analysis options.
    pub fn new(camera: &str, mode: Mode, lines: Vec<LineConfig>) -> Self {
        Self {
            camera: camera.to_string(),
            mode,
            anchor: None,
            lines,
            tracker: TrackerConfig::default(),
            options: AnalysisOptions::default(),
        }
    }
}

pub struct CameraAnalyzer {
    camera: String,
    mode: Mode,
    opts: AnalysisOptions,
    counting: CameraCounter,
    track_faces: HashMap<u64, Vec<FaceSample>>,
    metrics: Arc<Metrics>,
}

impl CameraAnalyzer {
    pub fn new(setup: CameraSetup, metrics: Arc<Metrics>) -> Self {
        Self {
            camera: setup.camera,
            mode: setup.mode,
            opts: setup.options,
            counting: CameraCounter::new(setup.lines, setup.mode, setup.anchor, setup.tracker),
            track_faces: HashMap::new(),
            metrics,
        }
    }

    /// Faces kept for a live track, best first. Empty once the track has ended.
    pub fn track_faces(&self, track: u64) -> &[FaceSample] {
        self.track_faces
            .get(&track)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// How many tracks currently hold face data (for tests of the privacy rule).
    pub fn tracks_with_faces(&self) -> usize {
        self.track_faces.len()
    }

    /// Analyses one frame of this camera with `models` (people mode needs `models.people`).
    pub fn process(
        &mut self,
        models: &mut Models,
        img: &BgrImage,
        ts: f64,
    ) -> Result<FrameOutcome, checkpoint_vision::VisionError> {
        let started = Instant::now();
        let t = Instant::now();
        let faces = models
            .faces
            .detect_fit(img, self.opts.face_detect_max_side)?;
        self.metrics
            .observe_inference("yunet", t.elapsed().as_secs_f64());
        let face_stages = models.faces.last_timings();

        let mut out = FrameOutcome {
            faces: faces.len(),
            ..Default::default()
        };
        out.timings.face_prepare_ms = face_stages.prepare_ms;
        out.timings.face_network_ms = face_stages.infer_ms;
        out.timings.face_post_ms = face_stages.post_ms;
        // Per detection index, the face that belongs to it.
        let (dets, face_of_det): (Vec<Detection>, Vec<Option<usize>>) = match self.mode {
            Mode::Faces => (
                faces
                    .iter()
                    .map(|f| Detection {
                        bbox: f.bbox,
                        score: f.score,
                    })
                    .collect(),
                (0..faces.len()).map(Some).collect(),
            ),
            Mode::People => {
                let people = match models.people.as_mut() {
                    Some(p) => {
                        let t = Instant::now();
                        let r = p.detect(img)?;
                        self.metrics
                            .observe_inference("nanodet", t.elapsed().as_secs_f64());
                        out.timings.people_ms = ms(t);
                        r
                    }
                    None => Vec::new(),
                };
                out.people = people.len();
                let dets: Vec<Detection> = people
                    .iter()
                    .map(|p| Detection {
                        bbox: p.bbox,
                        score: p.score,
                    })
                    .collect();
                let owners = attach_faces(&faces, &dets);
                (dets, owners)
            }
        };

        let t = Instant::now();
        let step = self.counting.step(&dets, ts, img.width, img.height);
        out.timings.track_ms = ms(t);
        let update = step.update;
        out.tracks = update.tracks.len();
        out.crossings = step.crossings;

        // Best faces per track, embedded in one batch.
        if models.embedder.is_some() {
            let mut todo: Vec<(u64, Face, f32)> = Vec::new();
            for tr in &update.tracks {
                let Some(Some(fi)) = face_of_det.get(tr.det_index) else {
                    continue;
                };
                let face = &faces[*fi];
                if face.bbox.w.min(face.bbox.h) < self.opts.min_face_px {
                    continue;
                }
                let q = face_quality(face, self.opts.good_face_px);
                let kept = self
                    .track_faces
                    .get(&tr.id)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let worth = kept.len() < self.opts.faces_per_track
                    || kept
                        .last()
                        .is_some_and(|w| q > w.quality * self.opts.quality_gain);
                if worth {
                    todo.push((tr.id, face.clone(), q));
                }
            }
            if !todo.is_empty() {
                let aligning = Instant::now();
                let crops: Vec<BgrImage> = todo
                    .iter()
                    .map(|(_, f, _)| FaceEmbedder::align(img, &f.landmarks))
                    .collect();
                let t = Instant::now();
                let embs = models
                    .embedder
                    .as_mut()
                    .map(|e| e.embed_aligned_fused(&crops))
                    .transpose()?
                    .unwrap_or_default();
                self.metrics
                    .observe_inference("sface", t.elapsed().as_secs_f64());
                out.timings.embed_ms = ms(aligning);
                out.embedded = embs.len();
                self.metrics
                    .faces_embedded
                    .get_or_create(&self.metrics.camera(&self.camera))
                    .inc_by(embs.len() as u64);
                for ((id, face, quality), embedding) in todo.into_iter().zip(embs) {
                    out.face_updates.push((id, face.clone()));
                    let kept = self.track_faces.entry(id).or_default();
                    kept.push(FaceSample {
                        quality,
                        embedding,
                        face,
                        stream_time_s: ts,
                    });
                    kept.sort_by(|a, b| b.quality.total_cmp(&a.quality));
                    kept.truncate(self.opts.faces_per_track);
                }
            }
        }

        for id in &update.ended {
            self.end_track(*id);
        }
        out.ended = update.ended;
        self.report(&out, started);
        Ok(out)
    }

    /// Ends every track (camera stopped or file finished) and returns their ids.
    pub fn finish(&mut self) -> Vec<u64> {
        let ended = self.counting.finish();
        for id in &ended {
            self.end_track(*id);
        }
        self.metrics
            .tracks_active
            .get_or_create(&self.metrics.camera(&self.camera))
            .set(0);
        ended
    }

    fn end_track(&mut self, id: u64) {
        // The lines forgot the track in `CameraCounter`. Privacy: a track's faces exist only while the track does.
        self.track_faces.remove(&id);
    }

    fn report(&self, out: &FrameOutcome, started: Instant) {
        let cam = self.metrics.camera(&self.camera);
        self.metrics.frames_analysed.get_or_create(&cam).inc();
        self.metrics
            .frame_seconds
            .get_or_create(&cam)
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .tracks_active
            .get_or_create(&cam)
            .set(self.counting.active_tracks() as i64);
        for (c, _) in &out.crossings {
            let dir = match c.direction {
                Direction::In => "in",
                Direction::Out => "out",
            };
            self.metrics
                .crossings
                .get_or_create(&crate::metrics::LineLabel {
                    camera: self.camera.clone(),
                    line: c.line_id.clone(),
                    direction: dir.to_string(),
                })
                .inc();
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Gives each person detection at most one face: the largest face whose centre lies in the upper half of the
/// person's box. A face belongs to one person only (the smallest box that holds it, so a near person does not
/// steal the face of a far one standing in front).
fn attach_faces(faces: &[Face], people: &[Detection]) -> Vec<Option<usize>> {
    let mut owner_of_face: Vec<Option<usize>> = vec![None; faces.len()];
    for (fi, f) in faces.iter().enumerate() {
        let (cx, cy) = f.bbox.center();
        owner_of_face[fi] = people
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                let b = p.bbox;
                cx >= b.x && cx <= b.x + b.w && cy >= b.y && cy <= b.y + b.h * 0.5
            })
            .min_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
            .map(|(pi, _)| pi);
    }
    let mut face_of_person: Vec<Option<usize>> = vec![None; people.len()];
    for (fi, owner) in owner_of_face.iter().enumerate() {
        if let Some(pi) = owner {
            let better = match face_of_person[*pi] {
                None => true,
                Some(prev) => faces[fi].bbox.area() > faces[prev].bbox.area(),
            };
            if better {
                face_of_person[*pi] = Some(fi);
            }
        }
    }
    face_of_person
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoint_vision::Rect;

    fn face(x: f32, y: f32, s: f32) -> Face {
        Face {
            bbox: Rect { x, y, w: s, h: s },
            score: 0.9,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn faces_attach_to_the_person_whose_upper_half_holds_them() {
        let people = vec![
            Detection {
                bbox: BBox {
                    x: 0.0,
                    y: 0.0,
                    w: 100.0,
                    h: 300.0,
                },
                score: 0.9,
            },
            Detection {
                bbox: BBox {
                    x: 200.0,
                    y: 0.0,
                    w: 100.0,
                    h: 300.0,
                },
                score: 0.9,
            },
        ];
        let faces = vec![face(230.0, 20.0, 40.0), face(30.0, 250.0, 40.0)];
        let owners = attach_faces(&faces, &people);
        assert_eq!(owners, vec![None, Some(0)]);
    }

    #[test]
    fn normalised_line_scales_with_frame() {
        let l = LineConfig {
            id: "l".into(),
            a: [0.0, 0.5],
            b: [1.0, 0.5],
            coords: Coords::Normalized,
            in_side: Side::Right,
            band: Some(0.01),
            site_boundary: true,
        };
        let g = l.geometry(1280, 720);
        assert_eq!(g.a, (0.0, 360.0));
        assert_eq!(g.b, (1280.0, 360.0));
        assert!((g.band_px - 14.686).abs() < 0.01);
    }
}
