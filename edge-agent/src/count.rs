//! Counting people crossing a line, with hysteresis.
//!
//! Each line is a segment `a -> b` in image pixels with a band of `band_px` on each
//! side. A track only has a *confirmed side* once its anchor point is farther than
//! `band_px` from the (infinite) line; a crossing is a change of confirmed side
//! whose path passes through the segment (extended by `band_px` at both ends).
//! Detector jitter and people pausing on the line therefore never count, while a
//! real "in, then back out" counts once each way.
//!
//! Crossings are decided on the trajectory, not on consecutive frames: the segment
//! from the last point outside the band to the next one, however far apart in time.
//! At 2 analysed frames per second a person may be seen once before the line and once
//! after it, or be missed for a few frames in between (the tracker bridges the gap and
//! keeps the id); either way that one segment crosses the line and counts once.
//! [`CameraCounter`] puts a camera's tracker and lines together, and walks a newly
//! confirmed track through its sightings from before confirmation, so a person
//! confirmed only after the line is still seen coming from the other side.
//!
//! # Side convention
//!
//! Image coordinates: x to the right, y **down**. Stand at `a` and look towards
//! `b`, with the image displayed normally: [`Side::Right`] is on your right hand,
//! [`Side::Left`] on your left. Equivalently, `Right` is where
//! `(b - a) x (p - a) = (bx-ax)(py-ay) - (by-ay)(px-ax) > 0`. Examples:
//!
//! * `a = (0, 300)`, `b = (640, 300)` (drawn left to right): `Right` is **below**
//!   the line.
//! * `a = (320, 0)`, `b = (320, 480)` (drawn top to bottom): `Right` is the
//!   **left** half of the image.
//!
//! Reversing `a` and `b` swaps the sides.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::analysis::{Anchor, LineConfig, Mode};
use crate::track::{BoxKind, Detection, TrackUpdate, Tracker, TrackerConfig};

/// Lines shorter than this (pixels) are degenerate: their direction, and hence
/// which side is which, is dominated by rounding.
pub const MIN_LINE_LEN_PX: f32 = 1.0;

/// Side of a directed line; see the [module docs](self#side-convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Negative signed distance: on your left looking from `a` to `b`.
    Left,
    /// Positive signed distance: on your right looking from `a` to `b`.
    Right,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Self {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// Direction of a counted crossing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Moved onto [`LineGeometry::in_side`].
    In,
    /// Moved off [`LineGeometry::in_side`].
    Out,
}

/// Where a counting line is and which way is "in".
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineGeometry {
    /// Segment start, pixels.
    pub a: (f32, f32),
    /// Segment end, pixels.
    pub b: (f32, f32),
    /// The side an *entering* person walks into (see the
    /// [side convention](self#side-convention)): reaching it counts as
    /// [`Direction::In`], leaving it as [`Direction::Out`].
    pub in_side: Side,
    /// Hysteresis half-width in pixels: points within this distance of the line
    /// never change a track's side. Also how far past each end of the segment a
    /// crossing still counts. Should exceed the anchor point's jitter amplitude.
    pub band_px: f32,
}

/// Why a [`LineGeometry`] is unusable.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GeometryError {
    /// An endpoint coordinate is NaN or infinite.
    #[error("line endpoints must be finite, got a={a:?} b={b:?}")]
    NonFinite {
        /// The configured start.
        a: (f32, f32),
        /// The configured end.
        b: (f32, f32),
    },
    /// Endpoints (nearly) coincide, so the line has no direction.
    #[error("line endpoints are {len} px apart, need at least 1 px")]
    TooShort {
        /// Distance between the endpoints, pixels.
        len: f32,
    },
    /// `band_px` is negative or not finite.
    #[error("band_px must be finite and >= 0, got {0}")]
    Band(f32),
}

impl LineGeometry {
    /// Checks the geometry; call when loading configuration. [`LineCounter::new`]
    /// accepts any geometry, but a counter with an invalid line never counts and
    /// an invalid band is treated as `0`.
    ///
    /// # Errors
    ///
    /// Non-finite endpoints, endpoints closer than [`MIN_LINE_LEN_PX`], or a
    /// negative or non-finite `band_px`.
    pub fn validate(&self) -> Result<(), GeometryError> {
        let finite = [self.a.0, self.a.1, self.b.0, self.b.1]
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err(GeometryError::NonFinite {
                a: self.a,
                b: self.b,
            });
        }
        if LineFrame::new(self.a, self.b).is_none() {
            let len = (self.b.0 - self.a.0).hypot(self.b.1 - self.a.1);
            return Err(GeometryError::TooShort { len });
        }
        if !(self.band_px.is_finite() && self.band_px >= 0.0) {
            return Err(GeometryError::Band(self.band_px));
        }
        Ok(())
    }
}

/// Signed distance in pixels from `p` to the infinite line through `a` and `b`:
/// positive on [`Side::Right`], negative on [`Side::Left`]. `None` if any input is
/// non-finite or the line is shorter than [`MIN_LINE_LEN_PX`].
pub fn signed_distance(a: (f32, f32), b: (f32, f32), p: (f32, f32)) -> Option<f32> {
    let (_, d) = LineFrame::new(a, b)?.coords(p)?;
    Some(d as f32)
}

/// Which side of the directed line `a -> b` the point `p` is on (no hysteresis).
/// `None` exactly on the line, or when [`signed_distance`] is `None`.
pub fn side_of(a: (f32, f32), b: (f32, f32), p: (f32, f32)) -> Option<Side> {
    let (_, d) = LineFrame::new(a, b)?.coords(p)?;
    side_from_distance(d)
}

fn side_from_distance(d: f64) -> Option<Side> {
    if d > 0.0 {
        Some(Side::Right)
    } else if d < 0.0 {
        Some(Side::Left)
    } else {
        None
    }
}

/// One counted crossing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// Id of the [`LineCounter`] that counted it.
    pub line_id: String,
    /// Tracker id of the person.
    pub track_id: u64,
    /// Whether the person entered or left.
    pub direction: Direction,
    /// The `ts` of the observation that completed the crossing (the first one
    /// outside the band on the new side).
    pub ts: f64,
}

/// Counts crossings of one line by many tracks.
#[derive(Clone, Debug)]
pub struct LineCounter {
    id: String,
    geom: LineGeometry,
    /// `None` for a degenerate line: such a counter never counts.
    frame: Option<LineFrame>,
    band: f64,
    /// Per track: the last observation outside the band. Tracks never seen outside
    /// the band have no entry; nothing about them is needed yet.
    tracks: HashMap<u64, Outside>,
    entries: u64,
    exits: u64,
}

/// A point outside the band, in line coordinates.
#[derive(Clone, Copy, Debug)]
struct Outside {
    side: Side,
    /// Position along the line from `a`, pixels.
    along: f64,
    /// Signed distance, pixels; `|d| > band`.
    d: f64,
}

impl LineCounter {
    /// Creates a counter for line `id`. Never fails; see [`LineGeometry::validate`]
    /// for what happens with an invalid geometry.
    pub fn new(id: impl Into<String>, geom: LineGeometry) -> Self {
        let band = if geom.band_px.is_finite() && geom.band_px > 0.0 {
            f64::from(geom.band_px)
        } else {
            0.0
        };
        Self {
            id: id.into(),
            frame: LineFrame::new(geom.a, geom.b),
            geom,
            band,
            tracks: HashMap::new(),
            entries: 0,
            exits: 0,
        }
    }

    /// The line id given at construction.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The geometry given at construction.
    pub fn geometry(&self) -> &LineGeometry {
        &self.geom
    }

    /// Feeds the track's anchor point (e.g. feet or face centre) for this frame and
    /// returns the crossing it completes, if any. Non-finite points are ignored.
    ///
    /// Observations of one track must be fed in time order; different tracks may be
    /// interleaved freely. `ts` is only copied into the [`Crossing`].
    pub fn observe(&mut self, track_id: u64, p: (f32, f32), ts: f64) -> Option<Crossing> {
        let frame = self.frame?;
        let (along, d) = frame.coords(p)?;
        if d.abs() <= self.band {
            return None;
        }
        let side = side_from_distance(d)?;
        let here = Outside { side, along, d };

        let prev = match self.tracks.entry(track_id) {
            // First confirmed side of this track: that is where it came from, not a
            // crossing.
            Entry::Vacant(e) => {
                e.insert(here);
                return None;
            }
            Entry::Occupied(mut e) => std::mem::replace(e.get_mut(), here),
        };
        if prev.side == side {
            return None;
        }

        // The two points are strictly on opposite sides, so the straight path
        // between them meets the line exactly once; it counts only if that is on
        // the (extended) segment, not around its ends.
        let t = prev.d / (prev.d - d);
        let at = prev.along + t * (along - prev.along);
        if at < -self.band || at > frame.len + self.band {
            return None;
        }

        let direction = if side == self.geom.in_side {
            self.entries = self.entries.saturating_add(1);
            Direction::In
        } else {
            self.exits = self.exits.saturating_add(1);
            Direction::Out
        };
        Some(Crossing {
            line_id: self.id.clone(),
            track_id,
            direction,
            ts,
        })
    }

    /// Forgets a track. Call for every id the tracker reports as ended (including
    /// those returned by `Tracker::finish`); otherwise per-track state is kept
    /// forever.
    pub fn track_ended(&mut self, track_id: u64) {
        self.tracks.remove(&track_id);
    }

    /// Number of [`Direction::In`] crossings counted so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Number of [`Direction::Out`] crossings counted so far.
    pub fn exits(&self) -> u64 {
        self.exits
    }

    /// Number of tracks for which per-track state is held (for memory monitoring).
    pub fn tracked_count(&self) -> usize {
        self.tracks.len()
    }
}

/// A camera's tracker and counting lines together: what the agent runs on every analysed frame, and what
/// `checkpoint-bench counting-rates` replays on cached detections, so both measure the same thing.
#[derive(Debug)]
pub struct CameraCounter {
    tracker: Tracker,
    anchor: Anchor,
    lines: Vec<CameraLine>,
}

#[derive(Debug)]
struct CameraLine {
    cfg: LineConfig,
    /// Built for the first frame's size and rebuilt when the size changes (lines may be normalised).
    counter: Option<LineCounter>,
    size: (u32, u32),
}

/// What one frame did to the tracks and the lines.
#[derive(Debug, Default)]
pub struct CountStep {
    /// The tracker's output for the frame.
    pub update: TrackUpdate,
    /// Crossings completed in this frame, each with its line's `site_boundary`.
    pub crossings: Vec<(Crossing, bool)>,
}

impl CameraCounter {
    /// Lines as configured, what the camera tracks, the point of a box tested against the lines (default:
    /// feet for people, centre for faces), and the tracker settings (speeds left unset take the mode's
    /// defaults).
    pub fn new(
        lines: Vec<LineConfig>,
        mode: Mode,
        anchor: Option<Anchor>,
        tracker: TrackerConfig,
    ) -> Self {
        let (kind, default_anchor) = match mode {
            Mode::People => (BoxKind::People, Anchor::Feet),
            Mode::Faces => (BoxKind::Faces, Anchor::Center),
        };
        Self {
            tracker: Tracker::new(tracker.for_boxes(kind)),
            anchor: anchor.unwrap_or(default_anchor),
            lines: lines
                .into_iter()
                .map(|cfg| CameraLine {
                    cfg,
                    counter: None,
                    size: (0, 0),
                })
                .collect(),
        }
    }

    /// Tracks `dets` (found in a `width` x `height` frame taken at `ts` seconds) and counts the crossings
    /// they complete. Tracks confirmed in this frame are walked through their earlier sightings first, so
    /// a crossing made before confirmation counts, with the time it was made. State of ended tracks is
    /// dropped from the lines.
    pub fn step(&mut self, dets: &[Detection], ts: f64, width: u32, height: u32) -> CountStep {
        self.tracker.set_frame_size(width, height);
        let update = self.tracker.update(dets, ts);
        for line in &mut self.lines {
            if line.counter.is_none() || line.size != (width, height) {
                line.counter = Some(LineCounter::new(
                    line.cfg.id.clone(),
                    line.cfg.geometry(width, height),
                ));
                line.size = (width, height);
            }
        }
        let mut crossings = Vec::new();
        for tr in &update.tracks {
            let path = tr
                .earlier
                .iter()
                .map(|o| (o.ts, o.bbox))
                .chain(std::iter::once((ts, tr.bbox)));
            for (t, b) in path {
                let p = self.anchor.point(&b);
                for line in &mut self.lines {
                    if let Some(c) = line.counter.as_mut().and_then(|c| c.observe(tr.id, p, t)) {
                        crossings.push((c, line.cfg.site_boundary));
                    }
                }
            }
        }
        for id in &update.ended {
            self.forget(*id);
        }
        CountStep { update, crossings }
    }

    /// Ends every track (camera stopped, file finished) and returns their ids.
    pub fn finish(&mut self) -> Vec<u64> {
        let ended = self.tracker.finish();
        for id in &ended {
            self.forget(*id);
        }
        ended
    }

    /// Confirmed tracks not yet ended.
    pub fn active_tracks(&self) -> usize {
        self.tracker.active_count()
    }

    /// Entries and exits counted so far on line `id`.
    pub fn totals(&self, id: &str) -> Option<(u64, u64)> {
        self.lines.iter().find(|l| l.cfg.id == id).map(|l| {
            l.counter
                .as_ref()
                .map_or((0, 0), |c| (c.entries(), c.exits()))
        })
    }

    fn forget(&mut self, id: u64) {
        for line in &mut self.lines {
            if let Some(c) = line.counter.as_mut() {
                c.track_ended(id);
            }
        }
    }
}

/// The line as origin plus unit direction, in `f64` so that distances of far-away
/// points are not dominated by rounding.
#[derive(Clone, Copy, Debug)]
struct LineFrame {
    ax: f64,
    ay: f64,
    ux: f64,
    uy: f64,
    len: f64,
}

impl LineFrame {
    fn new(a: (f32, f32), b: (f32, f32)) -> Option<Self> {
        let (ax, ay) = (f64::from(a.0), f64::from(a.1));
        let (dx, dy) = (f64::from(b.0) - ax, f64::from(b.1) - ay);
        let len = dx.hypot(dy);
        if !(len.is_finite() && ax.is_finite() && ay.is_finite())
            || len < f64::from(MIN_LINE_LEN_PX)
        {
            return None;
        }
        Some(Self {
            ax,
            ay,
            ux: dx / len,
            uy: dy / len,
            len,
        })
    }

    /// `(along, d)`: position along `a -> b` from `a`, and signed distance
    /// (positive = right, y down). `None` for non-finite points.
    fn coords(&self, p: (f32, f32)) -> Option<(f64, f64)> {
        if !(p.0.is_finite() && p.1.is_finite()) {
            return None;
        }
        let dx = f64::from(p.0) - self.ax;
        let dy = f64::from(p.1) - self.ay;
        Some((dx * self.ux + dy * self.uy, self.ux * dy - self.uy * dx))
    }
}

#[cfg(test)]
mod tests;
