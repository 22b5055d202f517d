//! Multi-object tracking of person and face detections, after ByteTrack (Zhang et al., 2022): a Kalman
//! filter per track and gated optimal assignments per frame, high-confidence detections first, so that
//! low-confidence detections (typically partially occluded people) extend existing tracks without ever
//! creating new ones.
//!
//! What differs from ByteTrack, so that tracking holds from 25 analysed frames per second down to 2:
//!
//! * **Time, not frames.** The motion model runs in seconds with noise per second ([`kalman`]), so a new
//!   track's velocity is learnt from its second sighting whatever the frame rate, and frames may be
//!   irregular or dropped.
//! * **Gating by motion, not only overlap** ([`gate`]): a detection continues a track if it overlaps the
//!   predicted box (ByteTrack's rule) *or* lies in a motion envelope around the path from the last sighting
//!   to the prediction, whose radius grows with the time since that sighting. People who walk further than
//!   their own box between frames, or stop, stay on their track.
//! * **Gaps bridged in time and in frames.** A lost track lives `max(lost_timeout_s, lost_min_frames`
//!   frame intervals`)`, so a person missed for a few analysed frames keeps one track at 2 fps as at 25. When
//!   it is found again, the filter is re-run along a straight path between the two sightings (OC-SORT's
//!   observation-centric re-update), so its velocity is what the person did during the gap, not what the
//!   filter extrapolated.
//! * **One assignment for confirmed and tentative tracks** (a tentative one at a fixed extra cost), rather
//!   than confirmed tracks first: at low rates a lost track would otherwise take the detection that plainly
//!   continues someone seen a moment ago.
//! * **Confirmation without losing the start.** A tentative track survives `tentative_misses` missed frames,
//!   and when it is confirmed its earlier sightings are reported with it ([`TrackState::earlier`]), so a
//!   counter sees where the person came from even when confirmation came after the line. A tentative
//!   track that died just before is joined to the new one when the new one's velocity, run backwards,
//!   lands on it (someone seen once, then missed for two frames at 2 fps).
//! * **Leaving the picture ends a track** when the frame size is known ([`Tracker::set_frame_size`]).
//! * **Speeds and distances in box heights, per kind of box** ([`BoxKind`]): a face moves several of its
//!   heights a second, a whole person about one.

pub mod assign;
mod gate;
mod kalman;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use assign::assign;
use gate::{Gate, GateParams, MAX_COST};
use kalman::{measurement, KalmanBox, MotionNoise};

/// Axis-aligned box in pixels (top-left corner plus size): the vision crate's detector box, so detections
/// flow into the tracker without conversion.
pub use checkpoint_vision::Rect as BBox;

/// One detector output for a frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Detected box; invalid boxes (see [`BBox::is_valid`]) are ignored.
    pub bbox: BBox,
    /// Detector confidence, expected in `[0, 1]`. Non-finite scores are ignored.
    pub score: f32,
}

/// White-noise acceleration of a walker's centre, box heights per second squared: the Kalman filter's
/// process noise. Walkers change speed by about a body height per second squared (a face height is a
/// seventh of that, but faces at gates are seen closer); larger values follow turns faster and smooth
/// velocity less.
const ACCEL_STD_H: f64 = 2.0;

/// Tracker thresholds. Every field has a default, so a config file only needs the fields it changes; unknown
/// fields are rejected to catch typos. Speeds and distances are in **box heights** (per second), so one
/// setting fits faces and whole people, near and far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Detections scoring at least this take part in the first association and may start tracks. Default
    /// `0.5`.
    pub high_score: f32,
    /// Detections in `[low_score, high_score)` may only extend existing tracks; below `low_score` they are
    /// discarded. Default `0.1`.
    pub low_score: f32,
    /// Minimum score for an unmatched detection to start a new track; must be `>= high_score`. Default
    /// `0.6`.
    pub new_track_score: f32,
    /// IoU with the predicted box that lets a high-score detection continue a confirmed track whatever the
    /// motion envelope says. Default `0.2`.
    pub match_iou: f32,
    /// The same for the second association (low-score detections with tracks still unmatched); stricter
    /// because low-score boxes are less trustworthy. Default `0.5`.
    pub low_match_iou: f32,
    /// The same for not-yet-confirmed tracks. Default `0.3`.
    pub unconfirmed_match_iou: f32,
    /// A track not matched for longer than this (seconds), and for more than `lost_min_frames` analysed
    /// frames, is removed, and its id reported in [`TrackUpdate::ended`] if it was confirmed. Default `1.5`.
    pub lost_timeout_s: f64,
    /// Analysed frames a lost track is kept at least, whatever `lost_timeout_s` says: the timeout is
    /// `max(lost_timeout_s, lost_min_frames x the recent frame interval)`, so at 2 fps a person missed by
    /// the detector for a few frames keeps their track (2.5 s), while at 25 fps the seconds decide. Default
    /// `5`.
    pub lost_min_frames: u32,
    /// Number of matched frames before a track is confirmed, gets an id and is reported. `1` reports tracks
    /// on their first frame. Default `2`.
    pub min_hits: u32,
    /// Consecutive analysed frames a not-yet-confirmed track may go unmatched before it is dropped.
    /// ByteTrack drops it at once (`0`); at low frame rates one missed detection would then cost the track's
    /// start. Default `1`.
    pub tentative_misses: u32,
    /// Radius of the motion envelope around the predicted path at no elapsed time, box heights: the
    /// detector's jitter and the filter's position error. Unset: `0.3` for faces, `0.15` for whole people
    /// (a person box is about 0.4 of its height wide, and people walking shoulder to shoulder are one width
    /// apart).
    pub gate_radius: Option<f32>,
    /// How much faster or slower than its estimated velocity a person may have moved since they were last
    /// seen, box heights per second: the envelope's radius grows by this per second of elapsed time (it
    /// already covers stopping anywhere along the predicted path). Unset: depends on what is tracked
    /// ([`BoxKind`]): `1.5` for faces, `0.6` for whole people.
    pub speed_change: Option<f32>,
    /// Fastest a person can move, box heights per second: how far a track seen only once (velocity still
    /// unknown) may have gone, in any direction. Unset: depends on what is tracked ([`BoxKind`]): `6.0` for
    /// faces (a brisk 1.4 m/s across the picture is six 0.22 m faces a second), `2.5` for whole people (a
    /// run; walking is 0.5 to 1).
    pub max_speed: Option<f32>,
    /// A detection continues a track by distance only if their heights differ by at most this factor.
    /// Default `2.0`.
    pub max_size_ratio: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            unconfirmed_match_iou: 0.3,
            lost_timeout_s: 1.5,
            lost_min_frames: 5,
            min_hits: 2,
            tentative_misses: 1,
            gate_radius: None,
            speed_change: None,
            max_speed: None,
            max_size_ratio: 2.0,
        }
    }
}

/// A [`TrackerConfig`] field outside its valid range.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("tracker config: `{field}` = {value} is invalid, {expected}")]
pub struct ConfigError {
    /// Name of the offending field, as spelled in the config file.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// What was expected instead.
    pub expected: &'static str,
}

/// Upper bounds that keep the motion envelope meaningful: beyond them it admits the whole picture.
const MAX_GATE_RADIUS: f32 = 5.0;
const MAX_SPEED_H: f32 = 50.0;
const MAX_SIZE_RATIO: f32 = 10.0;
/// More would keep ghosts of people long gone (and their faces) alive for minutes at low frame rates.
const MAX_LOST_MIN_FRAMES: u32 = 100;

impl TrackerConfig {
    /// Checks every field; call this when loading configuration so that mistakes are rejected loudly.
    /// [`Tracker::new`] does not fail: it replaces invalid fields with safe values (see [`Tracker::new`]).
    ///
    /// # Errors
    ///
    /// The first field found out of range: scores outside `[0, 1]`, `low_score > high_score`,
    /// `new_track_score < high_score`, an IoU threshold outside `(0, 1]`, a negative or non-finite
    /// `lost_timeout_s`, `min_hits == 0`, `lost_min_frames > 100`, a gate radius outside `(0, 5]`, speeds
    /// outside `[0, 50]` (`max_speed` must be positive), `max_size_ratio` outside `[1, 10]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, value: f64, expected| {
            Err(ConfigError {
                field,
                value,
                expected,
            })
        };
        let unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        let iou = |v: f32| v.is_finite() && v > 0.0 && v <= 1.0;
        if !unit(self.high_score) {
            return err("high_score", self.high_score.into(), "expected 0..=1");
        }
        if !unit(self.low_score) || self.low_score > self.high_score {
            return err(
                "low_score",
                self.low_score.into(),
                "expected 0..=high_score",
            );
        }
        if !unit(self.new_track_score) || self.new_track_score < self.high_score {
            return err(
                "new_track_score",
                self.new_track_score.into(),
                "expected high_score..=1",
            );
        }
        for (field, v) in [
            ("match_iou", self.match_iou),
            ("low_match_iou", self.low_match_iou),
            ("unconfirmed_match_iou", self.unconfirmed_match_iou),
        ] {
            if !iou(v) {
                return err(field, v.into(), "expected 0 < iou <= 1");
            }
        }
        if !(self.lost_timeout_s.is_finite() && self.lost_timeout_s >= 0.0) {
            return err(
                "lost_timeout_s",
                self.lost_timeout_s,
                "expected finite seconds >= 0",
            );
        }
        if self.lost_min_frames > MAX_LOST_MIN_FRAMES {
            return err(
                "lost_min_frames",
                self.lost_min_frames.into(),
                "expected 0..=100 frames",
            );
        }
        if self.min_hits == 0 {
            return err("min_hits", 0.0, "expected >= 1");
        }
        if self.tentative_misses > MAX_LOST_MIN_FRAMES {
            return err(
                "tentative_misses",
                self.tentative_misses.into(),
                "expected 0..=100 frames",
            );
        }
        if let Some(v) = self.gate_radius {
            if !(v.is_finite() && v > 0.0 && v <= MAX_GATE_RADIUS) {
                return err("gate_radius", v.into(), "expected 0 < box heights <= 5");
            }
        }
        if let Some(v) = self.speed_change {
            if !(v.is_finite() && (0.0..=MAX_SPEED_H).contains(&v)) {
                return err(
                    "speed_change",
                    v.into(),
                    "expected 0..=50 box heights per second",
                );
            }
        }
        if let Some(v) = self.max_speed {
            if !(v.is_finite() && v > 0.0 && v <= MAX_SPEED_H) {
                return err(
                    "max_speed",
                    v.into(),
                    "expected 0 < box heights per second <= 50",
                );
            }
        }
        if !(self.max_size_ratio.is_finite()
            && (1.0..=MAX_SIZE_RATIO).contains(&self.max_size_ratio))
        {
            return err(
                "max_size_ratio",
                self.max_size_ratio.into(),
                "expected 1..=10",
            );
        }
        Ok(())
    }

    /// Per-field fallback used by [`Tracker::new`]; the tracker must stay usable (and its memory bounded: a
    /// NaN timeout would never expire tracks) whatever a config file contains.
    fn sanitized(mut self) -> Self {
        let d = Self::default();
        let unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        let iou = |v: f32, fallback: f32| {
            if v.is_finite() && v > 0.0 && v <= 1.0 {
                v
            } else {
                fallback
            }
        };
        if !unit(self.high_score) {
            self.high_score = d.high_score;
        }
        if !unit(self.low_score) || self.low_score > self.high_score {
            self.low_score = d.low_score.min(self.high_score);
        }
        if !unit(self.new_track_score) || self.new_track_score < self.high_score {
            // New tracks only ever come from high-score detections, so this is what a lower value would
            // effectively mean anyway.
            self.new_track_score = self.high_score;
        }
        self.match_iou = iou(self.match_iou, d.match_iou);
        self.low_match_iou = iou(self.low_match_iou, d.low_match_iou);
        self.unconfirmed_match_iou = iou(self.unconfirmed_match_iou, d.unconfirmed_match_iou);
        if !(self.lost_timeout_s.is_finite() && self.lost_timeout_s >= 0.0) {
            self.lost_timeout_s = d.lost_timeout_s;
        }
        self.lost_min_frames = self.lost_min_frames.min(MAX_LOST_MIN_FRAMES);
        self.min_hits = self.min_hits.max(1);
        self.tentative_misses = self.tentative_misses.min(MAX_LOST_MIN_FRAMES);
        let within = |v: f32, lo: f32, hi: f32, fallback: f32| {
            if v.is_finite() && v >= lo && v <= hi {
                v
            } else {
                fallback
            }
        };
        let faces = BoxKind::Faces.motion();
        self.gate_radius = Some(within(
            self.gate_radius.unwrap_or(faces.gate_radius),
            f32::MIN_POSITIVE,
            MAX_GATE_RADIUS,
            faces.gate_radius,
        ));
        self.speed_change = Some(within(
            self.speed_change.unwrap_or(faces.speed_change),
            0.0,
            MAX_SPEED_H,
            faces.speed_change,
        ));
        self.max_speed = Some(within(
            self.max_speed.unwrap_or(faces.max_speed),
            f32::MIN_POSITIVE,
            MAX_SPEED_H,
            faces.max_speed,
        ));
        self.max_size_ratio = within(self.max_size_ratio, 1.0, MAX_SIZE_RATIO, d.max_size_ratio);
        self
    }

    /// This configuration with the speeds it leaves unset taken from `kind`'s defaults.
    pub fn for_boxes(mut self, kind: BoxKind) -> Self {
        let m = kind.motion();
        self.gate_radius.get_or_insert(m.gate_radius);
        self.speed_change.get_or_insert(m.speed_change);
        self.max_speed.get_or_insert(m.max_speed);
        self
    }

    // Only called on a sanitised config, where both speeds are set.
    fn gate_params(&self) -> GateParams {
        let faces = BoxKind::Faces.motion();
        GateParams {
            radius: f64::from(self.gate_radius.unwrap_or(faces.gate_radius)),
            speed_change: f64::from(self.speed_change.unwrap_or(faces.speed_change)),
            max_speed: f64::from(self.max_speed.unwrap_or(faces.max_speed)),
            max_size_ratio: f64::from(self.max_size_ratio),
        }
    }

    fn motion_noise(&self) -> MotionNoise {
        MotionNoise {
            new_speed_std: self.gate_params().max_speed,
            accel_std: ACCEL_STD_H,
        }
    }
}

/// What the boxes are, which sets how fast they can move relative to their own size: a face is a seventh
/// of a person's height, so the same walk is seven times as many face heights per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxKind {
    /// Face boxes (faces mode).
    Faces,
    /// Whole-person boxes (people mode).
    People,
}

struct KindMotion {
    gate_radius: f32,
    speed_change: f32,
    max_speed: f32,
}

impl BoxKind {
    fn motion(self) -> KindMotion {
        match self {
            BoxKind::Faces => KindMotion {
                gate_radius: 0.3,
                speed_change: 1.5,
                max_speed: 6.0,
            },
            BoxKind::People => KindMotion {
                gate_radius: 0.15,
                speed_change: 0.6,
                max_speed: 2.5,
            },
        }
    }
}

/// A sighting of a track: when, and the detection's box.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Observation {
    /// The `ts` passed to [`Tracker::update`].
    pub ts: f64,
    /// The matched detection's box.
    pub bbox: BBox,
}

/// A confirmed track that was matched to a detection in this frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackState {
    /// Unique, increasing, never reused within one [`Tracker`]; assigned when the track is confirmed, so ids
    /// of tentative tracks that died are not consumed.
    pub id: u64,
    /// The matched detection's box (not the filtered estimate).
    pub bbox: BBox,
    /// The matched detection's score.
    pub score: f32,
    /// Index of the matched detection in the `dets` slice passed to [`Tracker::update`].
    pub det_index: usize,
    /// Number of frames this track has been matched, including before confirmation.
    pub hits: u32,
    /// Timestamp of the track's first detection (before confirmation).
    pub first_seen: f64,
    /// On the update that confirms the track only: its sightings before this frame, oldest first (empty
    /// on every later update). A line counter must see them before `bbox`, or a person confirmed just
    /// after crossing a line (at 2 fps that is one frame) would never have been seen on the other side.
    pub earlier: Vec<Observation>,
}

/// Result of one [`Tracker::update`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TrackUpdate {
    /// Confirmed tracks matched in this frame, sorted by id. Confirmed tracks that are temporarily lost are
    /// not listed (but are still counted as active).
    pub tracks: Vec<TrackState>,
    /// Ids of confirmed tracks removed in this frame because they were unmatched for longer than the lost
    /// timeout, sorted. Each confirmed id appears here (or in [`Tracker::finish`]) exactly once.
    pub ended: Vec<u64>,
}

/// Multi-object tracker for one video stream.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    gate: GateParams,
    noise: MotionNoise,
    tracks: Vec<Track>,
    next_id: u64,
    clock: FrameClock,
    /// The picture's size, if known: lost tracks predicted to have left it end at once.
    frame: Option<(f64, f64)>,
    /// Tentative tracks dropped within the lost timeout.
    dropped: Vec<Dropped>,
}

/// A tentative track dropped after too many misses: its sightings.
#[derive(Debug)]
struct Dropped {
    history: Vec<Observation>,
}

impl Dropped {
    fn last_seen(&self) -> f64 {
        self.history.last().map_or(f64::NEG_INFINITY, |o| o.ts)
    }
}

/// The sightings of a dropped tentative track that a just-confirmed track `t` continues, if any: the
/// confirmed track's velocity, known well enough, run backwards from its first sighting to the dropped
/// track's last one, must land there (within the motion envelope's radius for that time), and the sizes
/// must agree. At 2 fps a
/// person seen once, then missed for two frames, leaves a tentative track that dies before they are seen
/// again; without this, the new track would start after the line and the crossing would be lost. Taken
/// from the list, so it is used once.
fn relink(
    dropped: &mut Vec<Dropped>,
    t: &Track,
    gate: &GateParams,
    timeout: f64,
) -> Option<Vec<Observation>> {
    let first = t.history.first().copied().or_else(|| {
        // History was just taken by the caller; the first sighting's time is still known.
        Some(Observation {
            ts: t.first_seen,
            bbox: t.first_box?,
        })
    })?;
    let (fx, fy) = first.bbox.center();
    let (vx, vy) = t.kf.velocity();
    let h = f64::from(first.bbox.h);
    // Two sightings a frame apart at 25 fps give a velocity that is mostly detector jitter; run back over
    // a second it lands anywhere. Only a velocity known to within `speed_change` is trusted.
    if t.kf.speed_std() > gate.speed_change * h {
        return None;
    }
    let mut best: Option<(f64, usize)> = None;
    for (i, d) in dropped.iter().enumerate() {
        let Some(last) = d.history.last() else {
            continue;
        };
        let gap = first.ts - last.ts;
        if !(gap > 0.0 && gap <= timeout) {
            continue;
        }
        let (px, py) = (f64::from(fx) - vx * gap, f64::from(fy) - vy * gap);
        let (lx, ly) = last.bbox.center();
        let dist = (f64::from(lx) - px).hypot(f64::from(ly) - py);
        let radius = h * (gate.radius + gate.speed_change * gap);
        let ratio = f64::from(last.bbox.h) / h;
        let same_size = ratio <= gate.max_size_ratio && ratio * gate.max_size_ratio >= 1.0;
        if same_size && dist <= radius && best.is_none_or(|(b, _)| dist / radius < b) {
            best = Some((dist / radius, i));
        }
    }
    best.map(|(_, i)| dropped.swap_remove(i).history)
}

/// Slowest motion taken as walking, box heights per second: a quarter of a slow walk for whole people,
/// far above what detector jitter makes a standing person's velocity estimate.
const CRUISE_MIN_SPEED_H: f64 = 0.25;

/// Extra cost of continuing a tentative track rather than a confirmed one (the cost scale is
/// `(1 - IoU) + distances`, up to 2.5): a confirmed track wins unless the tentative one is clearly nearer.
const TENTATIVE_PENALTY: f64 = 0.3;

/// Sightings kept for a tentative track; a track is confirmed or dropped long before this many.
const MAX_TENTATIVE_HISTORY: usize = 64;

#[derive(Debug)]
struct Track {
    /// `None` while tentative (fewer than `min_hits` matches).
    id: Option<u64>,
    kf: KalmanBox,
    /// The filter right after the last match, and that match's measurement: a track found again after a
    /// gap is re-run from here along the straight path between the two sightings.
    at_last: KalmanBox,
    last_z: [f64; 4],
    /// The velocity it last had before slowing down by more than half (pixels per second), counted only
    /// from a walking pace up: the direction someone who stopped will walk on in.
    cruise: (f64, f64),
    /// Analysed frames since the last match (0: matched in the previous frame).
    misses: u32,
    hits: u32,
    first_seen: f64,
    last_seen: f64,
    /// Detection index matched in the current update.
    matched: Option<usize>,
    /// Sightings while tentative, oldest first; handed out once, at confirmation.
    history: Vec<Observation>,
    /// The first sighting's box.
    first_box: Option<BBox>,
    /// The last sighting's box.
    last_box: BBox,
}

impl Tracker {
    /// Creates a tracker. Never fails: any field that [`TrackerConfig::validate`] would reject is replaced
    /// by its default (`low_score` is additionally capped at `high_score`, `new_track_score` raised to
    /// `high_score`, `min_hits` 0 → 1, frame counts capped at 100). Speeds left unset take the faces
    /// defaults: call [`TrackerConfig::for_boxes`] first when tracking whole people.
    pub fn new(cfg: TrackerConfig) -> Self {
        let cfg = cfg.sanitized();
        Self {
            gate: cfg.gate_params(),
            noise: cfg.motion_noise(),
            cfg,
            tracks: Vec::new(),
            next_id: 1,
            clock: FrameClock::default(),
            frame: None,
            dropped: Vec::new(),
        }
    }

    /// Tells the tracker the size of the frames its detections come from. A lost track whose predicted
    /// centre has then left the picture ends at once rather than waiting out the timeout: the person
    /// walked out, and a track kept alive off-screen would only pick up someone else (or a false
    /// detection) near the edge. Without a size, tracks end only by the timeout.
    pub fn set_frame_size(&mut self, width: u32, height: u32) {
        self.frame = (width > 0 && height > 0).then_some((f64::from(width), f64::from(height)));
    }

    /// The configuration in effect (after sanitising).
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// How long a track may now go unmatched before it ends, seconds: `lost_timeout_s`, or
    /// `lost_min_frames` recent frame intervals if that is longer.
    pub fn lost_timeout(&self) -> f64 {
        let frames = self
            .clock
            .interval()
            .map_or(0.0, |i| i * f64::from(self.cfg.lost_min_frames));
        self.cfg.lost_timeout_s.max(frames)
    }

    /// Processes one frame's detections taken at `ts` seconds.
    ///
    /// `ts` should be monotonic; frames may be irregularly spaced. A non-finite `ts`, or one earlier than the
    /// previous frame, is treated as equal to the previous frame's (no motion, no expiry) rather than
    /// corrupting the motion model. Detections with an invalid box or a non-finite score are ignored.
    ///
    /// Expiry happens only when `update` (or [`finish`](Self::finish)) is called: if frames stop arriving,
    /// ended ids are reported on the next call.
    pub fn update(&mut self, dets: &[Detection], ts: f64) -> TrackUpdate {
        let (now, dt) = self.clock.tick(ts);

        // Expire before associating: a track unmatched for longer than the timeout must not be revived by
        // this frame's detections (that would be a new person as far as counting is concerned).
        let mut ended = Vec::new();
        let timeout = self.lost_timeout();
        self.tracks.retain(|t| {
            let keep = now - t.last_seen <= timeout;
            if !keep {
                ended.extend(t.id);
            }
            keep
        });
        ended.sort_unstable();

        for t in &mut self.tracks {
            t.matched = None;
            if t.misses > 0 {
                t.kf.freeze_height_velocity();
            }
            t.kf.predict(dt);
        }
        if let Some(frame) = self.frame {
            let mut left = Vec::new();
            self.tracks.retain(|t| {
                let keep = t.misses == 0 || !t.walked_out(frame);
                if !keep {
                    left.extend(t.id);
                }
                keep
            });
            ended.extend(left);
            ended.sort_unstable();
        }
        let gates: Vec<Option<Gate>> = self
            .tracks
            .iter()
            .map(|t| Gate::new(&t.kf, &t.at_last, t.cruise, now - t.last_seen, &self.gate))
            .collect();

        let mut high = Vec::new();
        let mut low = Vec::new();
        for (i, d) in dets.iter().enumerate() {
            if !d.bbox.is_valid() || !d.score.is_finite() {
                continue;
            }
            if d.score >= self.cfg.high_score {
                high.push(i);
            } else if d.score >= self.cfg.low_score {
                low.push(i);
            }
        }

        // 1) Every track against the confident detections, in one assignment. ByteTrack matches confirmed
        //    tracks first and gives tentative ones what is left; at low frame rates that lets a lost track
        //    take a detection that plainly continues a tentative one (a person seen once a moment ago)
        //    just because it is older. Here tentative tracks compete, at a fixed extra cost and with their
        //    own (stricter) overlap threshold, so an established track still wins any close call.
        let (match_iou, unconfirmed_iou) = (self.cfg.match_iou, self.cfg.unconfirmed_match_iou);
        let all: Vec<usize> = (0..self.tracks.len()).collect();
        let tracks = &self.tracks;
        let first = associate(&all, &high, |t, d| {
            let g = gates[t].as_ref()?;
            if tracks[t].id.is_some() {
                g.cost(&dets[d].bbox, match_iou)
            } else {
                g.cost(&dets[d].bbox, unconfirmed_iou)
                    .map(|c| c + TENTATIVE_PENALTY)
            }
        });
        for &(t, d) in &first.matches {
            self.tracks[t].apply(d, &dets[d], now, self.noise);
        }

        // 2) Tracks that were being followed until now get a chance with the low-score detections
        //    (occlusion lowers scores). Lost and tentative tracks are excluded, as in ByteTrack: a weak box
        //    far in time, or continuing what may be a false detection, is too ambiguous.
        let still_tracked: Vec<usize> = first
            .unmatched_tracks
            .iter()
            .copied()
            .filter(|&t| self.tracks[t].misses == 0 && self.tracks[t].id.is_some())
            .collect();
        let low_iou = self.cfg.low_match_iou;
        let second = associate(&still_tracked, &low, |t, d| {
            gates[t].as_ref()?.cost(&dets[d].bbox, low_iou)
        });
        for &(t, d) in &second.matches {
            self.tracks[t].apply(d, &dets[d], now, self.noise);
        }
        let third = first;

        for t in &mut self.tracks {
            if t.matched.is_none() {
                t.misses = t.misses.saturating_add(1);
            }
        }
        // A tentative track that keeps missing is most likely a false positive.
        let tentative_misses = self.cfg.tentative_misses;
        let (kept, dropped): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| t.id.is_some() || t.misses <= tentative_misses);
        self.tracks = kept;
        // Remembered for a while: if a track confirmed later turns out to have come from one of them, its
        // sightings are that track's start (see `relink`).
        // Kept twice the timeout: a track confirmed now may have been first seen a timeout after them.
        self.dropped
            .retain(|d| now - d.last_seen() <= 2.0 * timeout);
        self.dropped
            .extend(dropped.into_iter().map(|t| Dropped { history: t.history }));

        // 4) New tentative tracks from what is left.
        for &d in &third.unmatched_dets {
            let det = &dets[d];
            if det.score < self.cfg.new_track_score {
                continue;
            }
            let Some(z) = measurement(&det.bbox) else {
                continue;
            };
            let kf = KalmanBox::new(z, self.noise);
            self.tracks.push(Track {
                id: None,
                at_last: kf.clone(),
                kf,
                last_z: z,
                cruise: (0.0, 0.0),
                misses: 0,
                hits: 1,
                first_seen: now,
                last_seen: now,
                matched: Some(d),
                history: vec![Observation {
                    ts: now,
                    bbox: det.bbox,
                }],
                first_box: Some(det.bbox),
                last_box: det.bbox,
            });
        }

        // Ids are handed out in track creation order, at confirmation.
        let mut confirmed_now = Vec::new();
        for (i, t) in self.tracks.iter_mut().enumerate() {
            if t.id.is_none() && t.hits >= self.cfg.min_hits {
                t.id = Some(self.next_id);
                self.next_id += 1;
                confirmed_now.push(i);
            }
        }

        let mut tracks: Vec<TrackState> = Vec::new();
        for (i, t) in self.tracks.iter_mut().enumerate() {
            let (Some(id), Some(d)) = (t.id, t.matched) else {
                continue;
            };
            let Some(det) = dets.get(d) else {
                continue;
            };
            let mut earlier = Vec::new();
            if confirmed_now.contains(&i) {
                earlier = std::mem::take(&mut t.history);
                // The last sighting is this frame's, reported as `bbox`.
                earlier.pop();
                if let Some(mut before) = relink(&mut self.dropped, t, &self.gate, timeout) {
                    before.append(&mut earlier);
                    earlier = before;
                }
            }
            tracks.push(TrackState {
                id,
                bbox: det.bbox,
                score: det.score,
                det_index: d,
                hits: t.hits,
                first_seen: t.first_seen,
                earlier,
            });
        }
        tracks.sort_unstable_by_key(|t| t.id);

        TrackUpdate { tracks, ended }
    }

    /// Number of confirmed tracks not yet ended (currently matched or lost). Equals the number of ids
    /// reported so far minus those reported as ended.
    pub fn active_count(&self) -> usize {
        self.tracks.iter().filter(|t| t.id.is_some()).count()
    }

    /// Ends every track (camera stop, end of file) and returns the ids of the confirmed ones, sorted. The
    /// tracker can then be reused for a new stream: timing state is reset (timestamps may restart from
    /// zero), ids keep increasing.
    pub fn finish(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.tracks.iter().filter_map(|t| t.id).collect();
        ids.sort_unstable();
        self.tracks.clear();
        self.clock = FrameClock::default();
        self.frame = None;
        self.dropped.clear();
        ids
    }
}

impl Track {
    /// Whether the track, lost, has walked out of a `frame` (width, height) picture: its prediction is
    /// outside, and it was last seen within one box height of the border it is heading for. Someone last seen
    /// in the middle whose prediction ran out of the picture has more likely stopped (on the line, say)
    /// while the detector missed them.
    fn walked_out(&self, frame: (f64, f64)) -> bool {
        let (w, h) = frame;
        let (cx, cy) = self.kf.centre();
        let b = self.last_box;
        let margin = f64::from(b.h);
        let (x0, y0) = (f64::from(b.x), f64::from(b.y));
        let (x1, y1) = (x0 + f64::from(b.w), y0 + f64::from(b.h));
        (cx < 0.0 && x0 < margin)
            || (cx > w && x1 > w - margin)
            || (cy < 0.0 && y0 < margin)
            || (cy > h && y1 > h - margin)
    }

    fn apply(&mut self, det_index: usize, det: &Detection, now: f64, noise: MotionNoise) {
        if let Some(z) = measurement(&det.bbox) {
            self.correct(z, now, noise);
            self.last_z = z;
            // Only a clear motion sets the direction of travel: a standing person's velocity estimate is
            // detector jitter pointing anywhere.
            let v = self.kf.velocity();
            let speed = v.0.hypot(v.1);
            let walking = CRUISE_MIN_SPEED_H * f64::from(det.bbox.h);
            if speed >= walking && speed >= 0.5 * self.cruise.0.hypot(self.cruise.1) {
                self.cruise = v;
            }
        }
        self.misses = 0;
        self.hits = self.hits.saturating_add(1);
        self.last_seen = now;
        self.last_box = det.bbox;
        self.matched = Some(det_index);
        if self.id.is_none() && self.history.len() < MAX_TENTATIVE_HISTORY {
            self.history.push(Observation {
                ts: now,
                bbox: det.bbox,
            });
        }
    }

    /// Updates the filter with `z`. After missed frames, OC-SORT's observation-centric re-update: the
    /// filter restarts from its state at the last sighting and is fed a straight, evenly timed path to
    /// `z` (one virtual sighting per missed frame), so that the velocity it leaves with is the one that
    /// explains the gap rather than the one extrapolated through it.
    fn correct(&mut self, z: [f64; 4], now: f64, noise: MotionNoise) {
        let gap = now - self.last_seen;
        let ok = if self.misses > 0 && gap > 0.0 {
            let mut kf = self.at_last.clone();
            let steps = self.misses + 1;
            let step = gap / f64::from(steps);
            let mut ok = true;
            for k in 1..=steps {
                let f = f64::from(k) / f64::from(steps);
                let zk: [f64; 4] =
                    std::array::from_fn(|i| self.last_z[i] + f * (z[i] - self.last_z[i]));
                kf.predict(step);
                ok &= kf.update(zk);
            }
            if ok {
                self.kf = kf;
            }
            ok
        } else {
            self.kf.update(z)
        };
        if !ok {
            self.kf = KalmanBox::new(z, noise);
        }
        self.at_last = self.kf.clone();
    }
}

/// Outcome of one association step, in tracker-wide track and detection indices.
struct Matching {
    matches: Vec<(usize, usize)>,
    unmatched_tracks: Vec<usize>,
    unmatched_dets: Vec<usize>,
}

/// Optimal assignment of `det_ids` to `tracks` under `cost(track, det)` (`None`: not allowed).
fn associate(
    tracks: &[usize],
    det_ids: &[usize],
    cost: impl Fn(usize, usize) -> Option<f64>,
) -> Matching {
    let mut matrix = Vec::with_capacity(tracks.len() * det_ids.len());
    for &t in tracks {
        for &d in det_ids {
            matrix.push(cost(t, d).unwrap_or(f64::INFINITY));
        }
    }
    let a = assign(
        &matrix,
        tracks.len(),
        det_ids.len(),
        MAX_COST + TENTATIVE_PENALTY,
    );
    Matching {
        matches: a
            .matches
            .iter()
            .map(|&(r, c)| (tracks[r], det_ids[c]))
            .collect(),
        unmatched_tracks: a.unmatched_rows.iter().map(|&r| tracks[r]).collect(),
        unmatched_dets: a.unmatched_cols.iter().map(|&c| det_ids[c]).collect(),
    }
}

/// Turns timestamps into elapsed seconds and tracks the recent frame interval.
///
/// The interval is the median of recent ones: robust to the odd dropped or late frame, and it follows a
/// durable frame-rate change within a window.
#[derive(Debug, Default)]
struct FrameClock {
    last_ts: Option<f64>,
    intervals: VecDeque<f64>,
}

impl FrameClock {
    const WINDOW: usize = 31;

    /// Returns the sanitised timestamp and the seconds elapsed since the previous frame.
    fn tick(&mut self, ts: f64) -> (f64, f64) {
        let Some(last) = self.last_ts else {
            let now = if ts.is_finite() { ts } else { 0.0 };
            self.last_ts = Some(now);
            return (now, 0.0);
        };
        let now = if ts.is_finite() && ts >= last {
            ts
        } else {
            last
        };
        let interval = now - last;
        self.last_ts = Some(now);
        if interval > 0.0 {
            if self.intervals.len() == Self::WINDOW {
                self.intervals.pop_front();
            }
            self.intervals.push_back(interval);
        }
        (now, interval)
    }

    /// Median of the recent frame intervals, seconds; `None` before the second frame.
    fn interval(&self) -> Option<f64> {
        if self.intervals.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = self.intervals.iter().copied().collect();
        sorted.sort_unstable_by(f64::total_cmp);
        Some(sorted[sorted.len() / 2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPS: f64 = 10.0;

    fn det(x: f32, y: f32, score: f32) -> Detection {
        Detection {
            bbox: BBox {
                x,
                y,
                w: 40.0,
                h: 100.0,
            },
            score,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default())
    }

    fn ids(update: &TrackUpdate) -> Vec<u64> {
        update.tracks.iter().map(|t| t.id).collect()
    }

    #[test]
    fn single_linear_object_keeps_one_id() {
        let mut tr = tracker();
        let mut seen = Vec::new();
        for f in 0..100 {
            let u = tr.update(&[det(10.0 + 8.0 * f as f32, 50.0, 0.9)], f as f64 / FPS);
            assert!(u.ended.is_empty());
            seen.extend(ids(&u));
            if f == 0 {
                assert!(u.tracks.is_empty(), "not confirmed on first hit");
            } else {
                assert_eq!(u.tracks.len(), 1, "frame {f}");
                assert_eq!(u.tracks[0].det_index, 0);
                assert_eq!(u.tracks[0].hits, f + 1);
                assert_eq!(u.tracks[0].first_seen, 0.0);
            }
        }
        assert!(seen.iter().all(|&id| id == 1));
        assert_eq!(tr.active_count(), 1);
        assert_eq!(tr.finish(), vec![1]);
        assert_eq!(tr.active_count(), 0);
    }

    #[test]
    fn crossing_objects_keep_their_ids() {
        let mut tr = tracker();
        // A walks right, B walks left on nearly the same row; they fully overlap
        // around frame 17. Only velocity can tell them apart there.
        let pos = |f: usize| {
            let t = f as f32;
            (10.0 + 12.0 * t, 410.0 - 12.0 * t)
        };
        let mut id_a = None;
        let mut id_b = None;
        for f in 0..40 {
            let (xa, xb) = pos(f);
            // Alternate the detection order so slice position carries no hint.
            let (dets, ia, ib) = if f % 2 == 0 {
                (vec![det(xa, 100.0, 0.9), det(xb, 104.0, 0.9)], 0, 1)
            } else {
                (vec![det(xb, 104.0, 0.9), det(xa, 100.0, 0.9)], 1, 0)
            };
            let u = tr.update(&dets, f as f64 / FPS);
            if f == 0 {
                continue;
            }
            assert_eq!(u.tracks.len(), 2, "frame {f}");
            let a = u
                .tracks
                .iter()
                .find(|t| t.det_index == ia)
                .expect("A tracked");
            let b = u
                .tracks
                .iter()
                .find(|t| t.det_index == ib)
                .expect("B tracked");
            assert_eq!(*id_a.get_or_insert(a.id), a.id, "A swapped at frame {f}");
            assert_eq!(*id_b.get_or_insert(b.id), b.id, "B swapped at frame {f}");
        }
        assert_ne!(id_a, id_b);
    }

    #[test]
    fn short_occlusion_keeps_id() {
        let mut tr = tracker();
        let mut all = Vec::new();
        let mut ended = Vec::new();
        for f in 0..60 {
            let ts = f as f64 / FPS;
            // Hidden for 1.0 s (< 1.5 s timeout) while it keeps walking.
            let dets = if (20..30).contains(&f) {
                vec![]
            } else {
                vec![det(10.0 + 6.0 * f as f32, 50.0, 0.9)]
            };
            let u = tr.update(&dets, ts);
            if (20..30).contains(&f) {
                assert!(u.tracks.is_empty());
                assert_eq!(tr.active_count(), 1, "lost but active");
            } else if f > 0 {
                assert_eq!(ids(&u), vec![1], "frame {f}");
            }
            all.extend(ids(&u));
            ended.extend(u.ended);
        }
        assert!(all.iter().all(|&id| id == 1), "{all:?}");
        assert_eq!(all.len(), 49, "every visible frame but the first");
        assert!(ended.is_empty());
    }

    #[test]
    fn long_occlusion_gets_new_id_and_old_one_ends_once() {
        let mut tr = tracker();
        let mut ended = Vec::new();
        let mut last_ids = Vec::new();
        for f in 0..80 {
            let ts = f as f64 / FPS;
            // Standing still, hidden for 2.5 s (> 1.5 s timeout).
            let dets = if (20..45).contains(&f) {
                vec![]
            } else {
                vec![det(200.0, 50.0, 0.9)]
            };
            let u = tr.update(&dets, ts);
            ended.extend(u.ended.iter().copied());
            if f >= 47 {
                last_ids = ids(&u);
            }
        }
        assert_eq!(ended, vec![1], "old id ended exactly once");
        assert_eq!(last_ids, vec![2]);
        assert_eq!(tr.finish(), vec![2]);
    }

    #[test]
    fn ended_is_reported_on_the_first_frame_past_the_timeout() {
        let mut tr = tracker();
        tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
        tr.update(&[det(0.0, 0.0, 0.9)], 0.1);
        assert_eq!(tr.update(&[], 1.59).ended, Vec::<u64>::new(), "not yet");
        assert_eq!(tr.update(&[], 1.7).ended, vec![1]);
        assert_eq!(tr.update(&[], 10.0).ended, Vec::<u64>::new());
        assert_eq!(tr.active_count(), 0);
    }

    #[test]
    fn low_score_detections_extend_but_never_start_tracks() {
        let mut tr = tracker();
        for f in 0..10 {
            let u = tr.update(&[det(100.0, 50.0, 0.3)], f as f64 / FPS);
            assert!(u.tracks.is_empty());
        }
        assert_eq!(tr.active_count(), 0);

        let mut tr = tracker();
        for f in 0..5 {
            tr.update(&[det(100.0 + 4.0 * f as f32, 50.0, 0.9)], f as f64 / FPS);
        }
        for f in 5..40 {
            // Partially occluded: detector confidence drops below high_score.
            let u = tr.update(&[det(100.0 + 4.0 * f as f32, 50.0, 0.3)], f as f64 / FPS);
            assert_eq!(ids(&u), vec![1], "frame {f}");
            assert_eq!(u.tracks[0].score, 0.3);
            assert!(u.ended.is_empty());
        }
        // Scores between high_score and new_track_score extend tracks too.
        let u = tr.update(&[det(100.0 + 4.0 * 40.0, 50.0, 0.55)], 4.0);
        assert_eq!(ids(&u), vec![1]);
        // Below low_score: ignored entirely, so the track goes lost.
        let u = tr.update(&[det(100.0 + 4.0 * 41.0, 50.0, 0.05)], 4.1);
        assert!(u.tracks.is_empty());
        assert_eq!(tr.active_count(), 1);
    }

    #[test]
    fn tentative_track_needs_min_hits_and_dies_on_misses() {
        // ByteTrack's rule (tentative_misses = 0): one miss and a tentative track is gone.
        let mut tr = Tracker::new(TrackerConfig {
            tentative_misses: 0,
            ..TrackerConfig::default()
        });
        assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.0).tracks.is_empty());
        assert!(tr.update(&[], 0.1).tracks.is_empty());
        // The tentative track is gone; this starts over and does not consume id 1.
        assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.2).tracks.is_empty());
        let u = tr.update(&[det(1.0, 0.0, 0.9)], 0.3);
        assert_eq!(ids(&u), vec![1]);
        assert_eq!(u.tracks[0].hits, 2);
        assert!((u.tracks[0].first_seen - 0.2).abs() < 1e-12);

        // Default: one miss is survived, two are not.
        let mut tr = tracker();
        assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.0).tracks.is_empty());
        assert!(tr.update(&[], 0.1).tracks.is_empty());
        let u = tr.update(&[det(2.0, 0.0, 0.9)], 0.2);
        assert_eq!(ids(&u), vec![1], "survived one miss");
        assert_eq!(u.tracks[0].first_seen, 0.0);
        let mut tr = tracker();
        tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
        tr.update(&[], 0.1);
        tr.update(&[], 0.2);
        assert!(tr.update(&[det(2.0, 0.0, 0.9)], 0.3).tracks.is_empty());
        assert_eq!(ids(&tr.update(&[det(3.0, 0.0, 0.9)], 0.4)), vec![1]);

        // Between high_score and new_track_score: cannot start a track.
        let mut tr = tracker();
        for f in 0..5 {
            assert!(tr
                .update(&[det(0.0, 0.0, 0.55)], f as f64)
                .tracks
                .is_empty());
        }
    }

    #[test]
    fn min_hits_one_reports_immediately() {
        let mut tr = Tracker::new(TrackerConfig {
            min_hits: 1,
            ..TrackerConfig::default()
        });
        let u = tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
        assert_eq!(ids(&u), vec![1]);
    }

    #[test]
    fn irregular_timestamps_and_dropped_frames_keep_id() {
        let mut tr = tracker();
        // 15 px/frame at a nominal 10 fps (150 px/s) with a 40 px wide box: a gap
        // of several frames moves the object further than its own width, so only
        // a dt-aware prediction can re-associate it.
        let speed = 150.0;
        let times = [
            0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, // steady
            1.5, // 4 frames dropped
            1.6, 1.72, 1.79, 1.9, 2.0, // jittery
            2.6, // 5 frames dropped
            2.7, 2.8, 2.9, 3.0,
        ];
        let mut all = Vec::new();
        for &ts in &times {
            let u = tr.update(&[det(speed * ts as f32, 50.0, 0.9)], ts);
            assert!(u.ended.is_empty());
            if ts > 0.0 {
                assert_eq!(u.tracks.len(), 1, "ts {ts}");
            }
            all.extend(ids(&u));
        }
        assert!(all.iter().all(|&id| id == 1), "{all:?}");
    }

    #[test]
    fn empty_input_never_creates_or_panics() {
        let mut tr = tracker();
        for f in 0..20 {
            let u = tr.update(&[], f as f64 / FPS);
            assert_eq!(u, TrackUpdate::default());
        }
        assert_eq!(tr.active_count(), 0);
        assert!(tr.finish().is_empty());
    }

    #[test]
    fn invalid_boxes_and_scores_are_ignored() {
        let bad = |x, y, w, h, score| Detection {
            bbox: BBox { x, y, w, h },
            score,
        };
        let mut tr = tracker();
        for f in 0..10 {
            let dets = [
                bad(f32::NAN, 0.0, 10.0, 10.0, 0.9),
                bad(0.0, f32::INFINITY, 10.0, 10.0, 0.9),
                bad(0.0, 0.0, 0.0, 10.0, 0.9),
                bad(0.0, 0.0, 10.0, -5.0, 0.9),
                bad(0.0, 0.0, f32::NEG_INFINITY, 10.0, 0.9),
                bad(50.0, 50.0, 10.0, 10.0, f32::NAN),
                bad(50.0, 50.0, 10.0, 10.0, f32::INFINITY),
                det(300.0 + f as f32, 40.0, 0.9),
                bad(f32::MAX, f32::MAX, f32::MAX, f32::MAX, 0.9),
            ];
            let u = tr.update(&dets, f as f64 / FPS);
            if f > 0 {
                let valid: Vec<usize> = u.tracks.iter().map(|t| t.det_index).collect();
                assert!(valid.contains(&7), "frame {f}: {valid:?}");
            }
            for t in &u.tracks {
                assert!(t.bbox.is_valid());
            }
        }
    }

    #[test]
    fn bad_timestamps_do_not_panic_or_expire() {
        let mut tr = tracker();
        for (f, ts) in [
            0.0,
            0.1,
            f64::NAN,
            0.05,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.3,
        ]
        .into_iter()
        .enumerate()
        {
            let u = tr.update(&[det(100.0 + f as f32, 50.0, 0.9)], ts);
            assert!(u.ended.is_empty());
            if f > 0 {
                assert_eq!(ids(&u), vec![1]);
            }
        }
    }

    #[test]
    fn ids_are_unique_increasing_and_survive_finish() {
        let mut tr = tracker();
        let mut issued = Vec::new();
        for round in 0..3 {
            for f in 0..3 {
                let dets = [det(0.0, 0.0, 0.9), det(500.0, 0.0, 0.9)];
                let u = tr.update(&dets, f as f64 / FPS);
                for id in ids(&u) {
                    if !issued.contains(&id) {
                        issued.push(id);
                    }
                }
            }
            assert_eq!(tr.finish().len(), 2, "round {round}");
        }
        assert_eq!(issued, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn many_people_stay_distinct() {
        let mut tr = tracker();
        let n = 30;
        let mut first_ids: Option<Vec<u64>> = None;
        for f in 0..50 {
            let dets: Vec<Detection> = (0..n)
                .map(|i| {
                    let row = (i / 10) as f32;
                    let col = (i % 10) as f32;
                    det(col * 60.0 + 2.0 * f as f32, row * 120.0, 0.8)
                })
                .collect();
            let u = tr.update(&dets, f as f64 / FPS);
            if f > 0 {
                let mut by_det: Vec<(usize, u64)> =
                    u.tracks.iter().map(|t| (t.det_index, t.id)).collect();
                by_det.sort_unstable();
                let cur: Vec<u64> = by_det.into_iter().map(|(_, id)| id).collect();
                assert_eq!(cur.len(), n);
                assert_eq!(*first_ids.get_or_insert_with(|| cur.clone()), cur);
            }
        }
        assert_eq!(tr.active_count(), n);
    }

    /// A face 80 px high walking 170 px/s, seen at `fps` from `t0` for `secs` (x fixed at `x`).
    fn walker(x: f32, y0: f32, vy: f32, fps: f64, t0: f64, secs: f64) -> Vec<(f64, Detection)> {
        let n = (secs * fps).round() as usize;
        (0..=n)
            .map(|i| {
                let t = t0 + i as f64 / fps;
                let y = y0 + vy * (t - t0) as f32;
                (
                    t,
                    Detection {
                        bbox: BBox {
                            x,
                            y,
                            w: 60.0,
                            h: 80.0,
                        },
                        score: 0.9,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn walkers_moving_further_than_their_box_keep_one_id_at_two_fps() {
        // 85 px between frames with an 80 px box: consecutive boxes never overlap.
        for fps in [2.0, 2.5, 5.0, 10.0, 25.0] {
            let mut tr = tracker();
            let mut seen = Vec::new();
            for (t, d) in walker(300.0, 0.0, 170.0, fps, 0.0, 4.0) {
                let u = tr.update(&[d], t);
                assert!(u.ended.is_empty(), "{fps} fps");
                seen.extend(ids(&u));
            }
            assert!(
                !seen.is_empty() && seen.iter().all(|&id| id == 1),
                "{fps} fps: {seen:?}"
            );
            assert_eq!(
                seen.len() as f64,
                (4.0 * fps).round(),
                "{fps} fps: all but the first"
            );
        }
    }

    #[test]
    fn neighbours_side_by_side_stay_apart_at_every_rate() {
        // Two faces two heights apart, walking the same way at the same speed, and a third coming the
        // other way between them: no id may jump from one to another.
        for fps in [2.0, 2.5, 5.0, 10.0, 25.0] {
            let mut tr = tracker();
            let a = walker(300.0, 0.0, 150.0, fps, 0.0, 4.0);
            let b = walker(460.0, 10.0, 160.0, fps, 0.0, 4.0);
            let c = walker(380.0, 640.0, -150.0, fps, 0.0, 4.0);
            let mut owner: std::collections::HashMap<u64, usize> = Default::default();
            for i in 0..a.len() {
                let dets = [a[i].1, b[i].1, c[i].1];
                let u = tr.update(&dets, a[i].0);
                for t in &u.tracks {
                    let who = *owner.entry(t.id).or_insert(t.det_index);
                    assert_eq!(
                        who, t.det_index,
                        "{fps} fps: track {} jumped at {}",
                        t.id, a[i].0
                    );
                }
            }
            assert_eq!(owner.len(), 3, "{fps} fps");
        }
    }

    #[test]
    fn missed_frames_are_bridged_at_low_rates() {
        // At 2 fps, missed for 3 analysed frames (1.5 s) while walking on: one track, and the velocity
        // after the gap is the walker's (the next frames match without any overlap).
        let mut tr = tracker();
        let mut seen = Vec::new();
        for (i, (t, d)) in walker(300.0, 0.0, 120.0, 2.0, 0.0, 6.0)
            .into_iter()
            .enumerate()
        {
            let dets = if (4..7).contains(&i) { vec![] } else { vec![d] };
            let u = tr.update(&dets, t);
            assert!(u.ended.is_empty());
            seen.extend(ids(&u));
        }
        assert!(seen.iter().all(|&id| id == 1), "{seen:?}");
        assert_eq!(seen.len(), 13 - 3 - 1);

        // A person who stops while missed: found again where they stopped.
        let mut tr = tracker();
        let mut seen = Vec::new();
        for i in 0..16 {
            let t = i as f64 * 0.5;
            let y = (170.0 * t).min(510.0) as f32;
            let d = Detection {
                bbox: BBox {
                    x: 300.0,
                    y,
                    w: 60.0,
                    h: 80.0,
                },
                score: 0.9,
            };
            let dets = if (6..8).contains(&i) { vec![] } else { vec![d] };
            seen.extend(ids(&tr.update(&dets, t)));
        }
        assert!(seen.iter().all(|&id| id == 1), "{seen:?}");
    }

    #[test]
    fn lost_timeout_spans_seconds_and_frames() {
        // 10 fps: the seconds decide (1.5 s = 15 frames > 5).
        let mut tr = tracker();
        tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
        tr.update(&[det(0.0, 0.0, 0.9)], 0.1);
        for f in 2..=15 {
            assert!(
                tr.update(&[], f as f64 / 10.0).ended.is_empty(),
                "frame {f}"
            );
        }
        assert_eq!(tr.update(&[], 1.65).ended, vec![1]);
        // 2 fps: five frames decide (2.5 s), not 1.5 s.
        let mut tr = tracker();
        assert!(
            (tr.lost_timeout() - 1.5).abs() < 1e-9,
            "no frame interval known yet"
        );
        tr.update(&[det(0.0, 0.0, 0.9)], 0.0);
        tr.update(&[det(0.0, 0.0, 0.9)], 0.5);
        assert!((tr.lost_timeout() - 2.5).abs() < 1e-9);
        for f in 2..=6 {
            assert!(tr.update(&[], f as f64 * 0.5).ended.is_empty(), "frame {f}");
        }
        assert_eq!(tr.update(&[], 3.5).ended, vec![1]);
    }

    #[test]
    fn a_lost_track_that_walked_out_of_the_picture_ends_at_once() {
        let mut tr = tracker();
        tr.set_frame_size(640, 480);
        let walk = walker(300.0, 200.0, 170.0, 10.0, 0.0, 1.0);
        for (t, d) in &walk {
            tr.update(&[*d], *t);
        }
        // Last seen with its centre at y = 410, walking down 17 px a frame: out after 5 missed frames.
        let mut ended_at = None;
        for f in 1..=10 {
            let u = tr.update(&[], 1.0 + f as f64 / 10.0);
            if !u.ended.is_empty() {
                assert_eq!(u.ended, vec![1]);
                ended_at = Some(f);
                break;
            }
        }
        assert_eq!(ended_at, Some(5), "long before the 1.5 s timeout");
        // A track that is matched is never ended that way, wherever it is.
        let mut tr = tracker();
        tr.set_frame_size(640, 480);
        for f in 0..5 {
            let u = tr.update(&[det(700.0, 50.0, 0.9)], f as f64 / 10.0);
            assert!(u.ended.is_empty());
        }
    }

    #[test]
    fn confirmation_reports_the_earlier_sightings_once() {
        let mut tr = tracker();
        let walk = walker(300.0, 0.0, 170.0, 2.0, 0.0, 2.0);
        let u = tr.update(&[walk[0].1], walk[0].0);
        assert!(u.tracks.is_empty());
        let u = tr.update(&[], 0.5);
        assert!(u.tracks.is_empty());
        let u = tr.update(&[walk[2].1], walk[2].0);
        assert_eq!(ids(&u), vec![1]);
        assert_eq!(
            u.tracks[0].earlier,
            vec![Observation {
                ts: 0.0,
                bbox: walk[0].1.bbox
            }]
        );
        let u = tr.update(&[walk[3].1], walk[3].0);
        assert!(u.tracks[0].earlier.is_empty(), "only on confirmation");
    }

    #[test]
    fn iou_and_geometry_helpers() {
        let a = BBox {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = BBox { x: 5.0, ..a };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox { x: 10.0, ..a }), 0.0, "touching edges");
        assert_eq!(a.iou(&BBox { w: 0.0, ..a }), 0.0);
        assert_eq!(a.iou(&BBox { x: f32::NAN, ..a }), 0.0);
        assert_eq!(a.center(), (5.0, 5.0));
        assert_eq!(a.bottom_center(), (5.0, 10.0));
        assert_eq!(a.area(), 100.0);
    }

    #[test]
    fn config_defaults_validation_and_unknown_fields() {
        use serde::de::value::{Error as DeError, MapDeserializer};

        assert_eq!(TrackerConfig::default().validate(), Ok(()));
        let partial: TrackerConfig =
            TrackerConfig::deserialize(MapDeserializer::<_, DeError>::new(
                [("high_score", 0.7f64), ("new_track_score", 0.8)].into_iter(),
            ))
            .expect("partial config");
        assert_eq!(partial.high_score, 0.7);
        assert_eq!(partial.lost_timeout_s, 1.5, "defaults fill the rest");
        let typo = TrackerConfig::deserialize(MapDeserializer::<_, DeError>::new(
            [("hihg_score", 0.7f64)].into_iter(),
        ));
        assert!(typo.is_err());

        let bad = TrackerConfig {
            low_score: 0.9,
            ..TrackerConfig::default()
        };
        assert_eq!(bad.validate().map_err(|e| e.field), Err("low_score"));
        let bad = TrackerConfig {
            lost_timeout_s: f64::NAN,
            match_iou: 0.0,
            min_hits: 0,
            ..TrackerConfig::default()
        };
        assert!(bad.validate().is_err());
        let tr = Tracker::new(bad);
        assert_eq!(tr.config().lost_timeout_s, 1.5);
        assert_eq!(tr.config().match_iou, 0.2);
        assert_eq!(tr.config().min_hits, 1);
        assert_eq!(tr.config().validate(), Ok(()));
    }
}
