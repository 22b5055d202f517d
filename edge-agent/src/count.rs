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
mod tests {
    use super::*;

    /// Horizontal line y = 300 from x = 100 to 500; walking down (into `Right`,
    /// below the line) is entering.
    fn geom() -> LineGeometry {
        LineGeometry {
            a: (100.0, 300.0),
            b: (500.0, 300.0),
            in_side: Side::Right,
            band_px: 20.0,
        }
    }

    fn counter() -> LineCounter {
        LineCounter::new("door", geom())
    }

    /// Feeds a track along `points` (one per frame from `t0`), returning crossings.
    fn walk(c: &mut LineCounter, id: u64, t0: f64, points: &[(f32, f32)]) -> Vec<Crossing> {
        points
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| c.observe(id, p, t0 + i as f64 * 0.1))
            .collect()
    }

    /// Straight vertical walk at `x` from `y0` to `y1` in 5 px steps.
    fn vertical(x: f32, y0: f32, y1: f32) -> Vec<(f32, f32)> {
        let n = ((y1 - y0).abs() / 5.0) as usize;
        let step = (y1 - y0).signum() * 5.0;
        (0..=n).map(|i| (x, y0 + step * i as f32)).collect()
    }

    #[test]
    fn side_convention() {
        let (a, b) = ((0.0, 300.0), (640.0, 300.0));
        assert_eq!(side_of(a, b, (10.0, 400.0)), Some(Side::Right), "below");
        assert_eq!(side_of(a, b, (10.0, 200.0)), Some(Side::Left), "above");
        assert_eq!(side_of(a, b, (10.0, 300.0)), None, "on the line");
        assert_eq!(side_of(b, a, (10.0, 400.0)), Some(Side::Left), "reversed");
        // Drawn top to bottom: Right is the left half of the image.
        let (a, b) = ((320.0, 0.0), (320.0, 480.0));
        assert_eq!(side_of(a, b, (100.0, 240.0)), Some(Side::Right));
        assert_eq!(signed_distance(a, b, (100.0, 240.0)), Some(220.0));
        assert_eq!(signed_distance(a, b, (f32::NAN, 240.0)), None);
        assert_eq!(side_of(a, a, (100.0, 240.0)), None, "degenerate line");
        assert_eq!(Side::Left.opposite(), Side::Right);
    }

    #[test]
    fn straight_crossing_both_directions() {
        let mut c = counter();
        let down = walk(&mut c, 1, 0.0, &vertical(300.0, 200.0, 400.0));
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].direction, Direction::In);
        assert_eq!(down[0].track_id, 1);
        assert_eq!(down[0].line_id, "door");
        // Counted on the first point beyond the band: y = 325 is point 25.
        assert!((down[0].ts - 2.5).abs() < 1e-9, "ts = {}", down[0].ts);

        let up = walk(&mut c, 2, 0.0, &vertical(250.0, 400.0, 200.0));
        assert_eq!(up.len(), 1);
        assert_eq!(up[0].direction, Direction::Out);
        assert_eq!((c.entries(), c.exits()), (1, 1));

        // in_side flips the meaning.
        let mut c = LineCounter::new(
            "door",
            LineGeometry {
                in_side: Side::Left,
                ..geom()
            },
        );
        let down = walk(&mut c, 1, 0.0, &vertical(300.0, 200.0, 400.0));
        assert_eq!(down[0].direction, Direction::Out);
    }

    #[test]
    fn sparse_samples_still_count() {
        let mut c = counter();
        assert!(c.observe(1, (300.0, 100.0), 0.0).is_none());
        let x = c.observe(1, (300.0, 500.0), 1.0).expect("jumped across");
        assert_eq!(x.direction, Direction::In);
    }

    #[test]
    fn jitter_inside_band_then_continue_counts_once() {
        let mut c = counter();
        let mut path = vertical(300.0, 200.0, 300.0);
        // 100 frames of +-19 px jitter (band is 20) straddling the line.
        path.extend((0..100).map(|i| (300.0, 300.0 + 19.0 * if i % 2 == 0 { 1.0 } else { -1.0 })));
        path.extend(vertical(300.0, 300.0, 400.0));
        let xs = walk(&mut c, 7, 0.0, &path);
        assert_eq!(xs.len(), 1);
        assert_eq!((c.entries(), c.exits()), (1, 0));
    }

    #[test]
    fn jitter_smaller_than_band_never_counts_wherever_it_is() {
        // Peak-to-peak below 2 * band can never reach both sides, whatever its
        // centre: that is the guarantee the band gives.
        let mut c = counter();
        for (id, centre) in [-35.0f32, -20.0, -5.0, 0.0, 5.0, 20.0, 35.0]
            .into_iter()
            .enumerate()
        {
            let path: Vec<(f32, f32)> = (0..200)
                .map(|i| {
                    let phase = i as f32 * 0.7;
                    (
                        300.0 + phase.cos() * 3.0,
                        300.0 + centre + 19.9 * phase.sin(),
                    )
                })
                .collect();
            assert!(
                walk(&mut c, id as u64, 0.0, &path).is_empty(),
                "centre {centre}"
            );
        }
        assert_eq!((c.entries(), c.exits()), (0, 0));
    }

    #[test]
    fn pause_on_the_line_does_not_count() {
        let mut c = counter();
        let mut path = vertical(300.0, 200.0, 295.0);
        path.extend(std::iter::repeat_n((300.0, 305.0), 200));
        path.extend(vertical(300.0, 305.0, 200.0));
        assert!(walk(&mut c, 1, 0.0, &path).is_empty(), "turned back");

        let mut path = vertical(300.0, 200.0, 300.0);
        path.extend(std::iter::repeat_n((300.0, 300.0), 200));
        path.extend(vertical(300.0, 300.0, 400.0));
        assert_eq!(walk(&mut c, 2, 0.0, &path).len(), 1, "paused then went on");
        assert_eq!((c.entries(), c.exits()), (1, 0));
    }

    #[test]
    fn start_inside_band_gets_side_without_counting() {
        let mut c = counter();
        let xs = walk(&mut c, 1, 0.0, &vertical(300.0, 300.0, 400.0));
        assert!(xs.is_empty(), "first side is not a crossing");
        assert_eq!(c.tracked_count(), 1);
        // Having come from below, going up is a real exit.
        let xs = walk(&mut c, 1, 10.0, &vertical(300.0, 400.0, 200.0));
        assert_eq!(xs.len(), 1);
        assert_eq!(xs[0].direction, Direction::Out);
    }

    #[test]
    fn crossing_beyond_segment_ends_not_counted() {
        let mut c = counter();
        // The segment spans x in [100, 500], extended by the 20 px band.
        assert!(walk(&mut c, 1, 0.0, &vertical(50.0, 200.0, 400.0)).is_empty());
        assert!(walk(&mut c, 2, 0.0, &vertical(530.0, 200.0, 400.0)).is_empty());
        assert_eq!(walk(&mut c, 3, 0.0, &vertical(85.0, 200.0, 400.0)).len(), 1);
        assert_eq!(
            walk(&mut c, 4, 0.0, &vertical(515.0, 200.0, 400.0)).len(),
            1
        );

        // Walking around the end of the line: above, left past the end, down,
        // back right below it.
        let mut path: Vec<(f32, f32)> = (0..=50).map(|i| (300.0 - 5.0 * i as f32, 200.0)).collect();
        path.extend(vertical(50.0, 200.0, 400.0));
        path.extend((0..=50).map(|i| (50.0 + 5.0 * i as f32, 400.0)));
        assert!(walk(&mut c, 5, 0.0, &path).is_empty());
        assert_eq!((c.entries(), c.exits()), (2, 0));
    }

    #[test]
    fn in_then_out_counts_one_entry_and_one_exit() {
        let mut c = counter();
        let mut path = vertical(300.0, 200.0, 400.0);
        path.extend(vertical(310.0, 400.0, 200.0));
        let xs = walk(&mut c, 9, 0.0, &path);
        let dirs: Vec<Direction> = xs.iter().map(|x| x.direction).collect();
        assert_eq!(dirs, vec![Direction::In, Direction::Out]);
        assert_eq!((c.entries(), c.exits()), (1, 1));
    }

    #[test]
    fn many_tracks_interleaved() {
        let mut c = counter();
        let n = 50u64;
        // Even ids walk down (in), odd ids walk up (out), each starting at its own
        // frame offset so observations of different tracks interleave.
        let paths: Vec<Vec<(f32, f32)>> = (0..n)
            .map(|id| {
                let x = 110.0 + 7.0 * id as f32;
                if id % 2 == 0 {
                    vertical(x, 150.0, 450.0)
                } else {
                    vertical(x, 450.0, 150.0)
                }
            })
            .collect();
        let mut crossings = Vec::new();
        for frame in 0..200usize {
            for id in 0..n {
                let offset = (id as usize * 3) % 40;
                if let Some(&p) = frame
                    .checked_sub(offset)
                    .and_then(|i| paths[id as usize].get(i))
                {
                    crossings.extend(c.observe(id, p, frame as f64));
                }
            }
        }
        assert_eq!((c.entries(), c.exits()), (n / 2, n / 2));
        assert_eq!(crossings.len(), n as usize);
        for x in &crossings {
            let want = if x.track_id % 2 == 0 {
                Direction::In
            } else {
                Direction::Out
            };
            assert_eq!(x.direction, want, "track {}", x.track_id);
        }
    }

    #[test]
    fn track_ended_frees_state() {
        let mut c = counter();
        for id in 0..1000u64 {
            walk(&mut c, id, 0.0, &vertical(300.0, 200.0, 400.0));
        }
        // A track only ever seen inside the band holds no state at all.
        c.observe(5000, (300.0, 305.0), 0.0);
        assert_eq!(c.tracked_count(), 1000);
        for id in 0..1000u64 {
            c.track_ended(id);
        }
        c.track_ended(5000);
        c.track_ended(123_456); // unknown id: no-op
        assert_eq!(c.tracked_count(), 0);
        assert_eq!(c.entries(), 1000, "counts survive track removal");
        // A reused id (e.g. after a tracker restart) starts fresh.
        assert!(c.observe(3, (300.0, 400.0), 0.0).is_none());
    }

    #[test]
    fn invalid_input_is_ignored() {
        let mut c = counter();
        assert!(c.observe(1, (f32::NAN, 200.0), 0.0).is_none());
        assert!(c.observe(1, (300.0, f32::INFINITY), 0.0).is_none());
        assert_eq!(c.tracked_count(), 0);

        let bad = LineGeometry {
            b: (100.0, 300.0),
            ..geom()
        };
        assert!(matches!(
            bad.validate(),
            Err(GeometryError::TooShort { .. })
        ));
        let mut c = LineCounter::new("x", bad);
        assert!(walk(&mut c, 1, 0.0, &vertical(100.0, 200.0, 400.0)).is_empty());
        assert_eq!(c.tracked_count(), 0);

        let nan = LineGeometry {
            a: (f32::NAN, 0.0),
            ..geom()
        };
        assert!(matches!(
            nan.validate(),
            Err(GeometryError::NonFinite { .. })
        ));
        assert!(walk(
            &mut LineCounter::new("x", nan),
            1,
            0.0,
            &vertical(300.0, 200.0, 400.0)
        )
        .is_empty());

        // A negative or NaN band acts as no band: still counts real crossings.
        for band_px in [-5.0, f32::NAN] {
            let g = LineGeometry { band_px, ..geom() };
            assert!(matches!(g.validate(), Err(GeometryError::Band(_))));
            let mut c = LineCounter::new("x", g);
            assert_eq!(
                walk(&mut c, 1, 0.0, &vertical(300.0, 200.0, 400.0)).len(),
                1
            );
        }
        assert_eq!(geom().validate(), Ok(()));
    }

    fn camera_counter(tracker: TrackerConfig) -> CameraCounter {
        let line = LineConfig {
            id: "door".into(),
            a: [100.0, 300.0],
            b: [500.0, 300.0],
            coords: crate::analysis::Coords::Pixels,
            in_side: Side::Right,
            band: Some(20.0),
            site_boundary: true,
        };
        CameraCounter::new(vec![line], Mode::Faces, None, tracker)
    }

    fn face_at(cx: f32, cy: f32) -> Detection {
        Detection {
            bbox: crate::track::BBox {
                x: cx - 30.0,
                y: cy - 40.0,
                w: 60.0,
                h: 80.0,
            },
            score: 0.9,
        }
    }

    #[test]
    fn a_track_confirmed_after_the_line_still_counts_with_the_crossing_time() {
        // 2 fps, confirmation needs 3 sightings: the first is above the line, the next two below it.
        let mut c = camera_counter(TrackerConfig {
            min_hits: 3,
            ..TrackerConfig::default()
        });
        let mut got = Vec::new();
        for (i, y) in [220.0, 380.0, 460.0, 540.0].into_iter().enumerate() {
            let step = c.step(&[face_at(300.0, y)], i as f64 * 0.5, 640, 720);
            got.extend(step.crossings);
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0.direction, Direction::In);
        assert_eq!(
            got[0].0.ts, 0.5,
            "the sighting that completed it, not the confirmation"
        );
        assert!(got[0].1, "site boundary");
        assert_eq!(c.totals("door"), Some((1, 0)));
        assert_eq!(c.totals("nope"), None);
    }

    #[test]
    fn a_gap_across_the_line_counts_once() {
        // Missed for three analysed frames while crossing at 2 fps: one track, one crossing.
        let mut c = camera_counter(TrackerConfig::default());
        let mut got = Vec::new();
        for i in 0..10 {
            let y = 80.0 + 60.0 * i as f32;
            let dets = if (3..6).contains(&i) {
                vec![]
            } else {
                vec![face_at(300.0, y)]
            };
            got.extend(c.step(&dets, i as f64 * 0.5, 640, 720).crossings);
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(c.active_tracks(), 1);
        assert_eq!(c.finish(), vec![1]);
        assert_eq!(c.active_tracks(), 0);
    }

    #[test]
    fn serde_names_are_lowercase() {
        use serde::de::value::{Error as DeError, StrDeserializer};
        let de = |s| StrDeserializer::<DeError>::new(s);
        assert_eq!(Direction::deserialize(de("in")), Ok(Direction::In));
        assert_eq!(Direction::deserialize(de("out")), Ok(Direction::Out));
        assert_eq!(Side::deserialize(de("left")), Ok(Side::Left));
        assert_eq!(Side::deserialize(de("right")), Ok(Side::Right));
        assert!(Side::deserialize(de("Right")).is_err());
    }
}
