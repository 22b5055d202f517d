//! The tracker's settings ([`TrackerConfig`]: defaults, validation, the fallback for invalid values)
//! and the motion defaults per kind of box ([`BoxKind`]).

use serde::{Deserialize, Serialize};

use super::gate::GateParams;
use super::kalman::MotionNoise;
#[cfg(doc)]
use super::{TrackUpdate, Tracker};

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
    pub(super) fn sanitized(mut self) -> Self {
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
    pub(super) fn gate_params(&self) -> GateParams {
        let faces = BoxKind::Faces.motion();
        GateParams {
            radius: f64::from(self.gate_radius.unwrap_or(faces.gate_radius)),
            speed_change: f64::from(self.speed_change.unwrap_or(faces.speed_change)),
            max_speed: f64::from(self.max_speed.unwrap_or(faces.max_speed)),
            max_size_ratio: f64::from(self.max_size_ratio),
        }
    }

    pub(super) fn motion_noise(&self) -> MotionNoise {
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
