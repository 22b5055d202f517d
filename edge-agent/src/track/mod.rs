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
mod config;
mod gate;
mod kalman;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use assign::assign;
use gate::{Gate, GateParams, MAX_COST};
use kalman::{measurement, KalmanBox, MotionNoise};

pub use config::{BoxKind, ConfigError, TrackerConfig};

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
mod tests;
