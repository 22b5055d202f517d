//! The tracker as it was before issue 13 (main at 80345cc, tests removed), kept only so that
//! `counting-rates` can show the old and new association side by side on the same detections.
//!
//! Multi-object tracking of person detections, following ByteTrack
//! (Zhang et al., 2022): a constant-velocity Kalman filter per track and three
//! IoU-gated optimal assignments per frame, so that low-confidence detections
//! (typically partially occluded people) extend existing tracks without ever
//! creating new ones.
//!
//! Timing is driven by caller timestamps, not frame counts: frames may be sampled
//! irregularly or dropped, and a "frame" for the motion model is the median recent
//! frame interval.

mod kalman;

use std::collections::VecDeque;

// The assignment solver did not change in issue 13: the agent's own is used.
use edge_agent::track::assign::assign;
use kalman::{measurement, KalmanBox};

/// Axis-aligned box in pixels (top-left corner plus size): the vision crate's detector box, so detections
/// flow into the tracker without conversion.
pub use checkpoint_vision::Rect as BBox;
pub use edge_agent::track::Detection;

/// Tracker thresholds. Every field has a default, so a config file only needs the
/// fields it changes; unknown fields are rejected to catch typos.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Detections scoring at least this take part in the first association and may
    /// start tracks. Default `0.5`.
    pub high_score: f32,
    /// Detections in `[low_score, high_score)` may only extend existing tracks;
    /// below `low_score` they are discarded. Default `0.1`.
    pub low_score: f32,
    /// Minimum score for an unmatched detection to start a new track; must be
    /// `>= high_score`. Default `0.6`.
    pub new_track_score: f32,
    /// Minimum IoU between a predicted track box and a high-score detection in the
    /// first association. Default `0.2`.
    pub match_iou: f32,
    /// Minimum IoU for the second association (low-score detections with tracks
    /// still unmatched). Stricter than `match_iou` because low-score boxes are
    /// less trustworthy. Default `0.5`.
    pub low_match_iou: f32,
    /// Minimum IoU for matching not-yet-confirmed tracks. Default `0.3`.
    pub unconfirmed_match_iou: f32,
    /// A track not matched for longer than this (seconds) is removed, and its id
    /// reported in [`TrackUpdate::ended`] if it was confirmed. Default `1.5`.
    pub lost_timeout_s: f64,
    /// Number of matched frames before a track is confirmed, gets an id and is
    /// reported. `1` reports tracks on their first frame. Default `2`.
    pub min_hits: u32,
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
            min_hits: 2,
        }
    }
}

impl TrackerConfig {
    /// Per-field fallback used by [`Tracker::new`]; the tracker must stay usable
    /// (and its memory bounded: a NaN timeout would never expire tracks) whatever
    /// a config file contains.
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
            // New tracks only ever come from high-score detections, so this is
            // what a lower value would effectively mean anyway.
            self.new_track_score = self.high_score;
        }
        self.match_iou = iou(self.match_iou, d.match_iou);
        self.low_match_iou = iou(self.low_match_iou, d.low_match_iou);
        self.unconfirmed_match_iou = iou(self.unconfirmed_match_iou, d.unconfirmed_match_iou);
        if !(self.lost_timeout_s.is_finite() && self.lost_timeout_s >= 0.0) {
            self.lost_timeout_s = d.lost_timeout_s;
        }
        self.min_hits = self.min_hits.max(1);
        self
    }
}

/// A confirmed track that was matched to a detection in this frame.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackState {
    /// Unique, increasing, never reused within one [`Tracker`]; assigned when the
    /// track is confirmed, so ids of tentative tracks that died are not consumed.
    pub id: u64,
    /// The matched detection's box (not the filtered estimate).
    pub bbox: BBox,
    /// The matched detection's score.
    pub score: f32,
    /// Index of the matched detection in the `dets` slice passed to
    /// [`Tracker::update`].
    pub det_index: usize,
    /// Number of frames this track has been matched, including before confirmation.
    pub hits: u32,
    /// Timestamp of the track's first detection (before confirmation).
    pub first_seen: f64,
}

/// Result of one [`Tracker::update`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrackUpdate {
    /// Confirmed tracks matched in this frame, sorted by id. Confirmed tracks that
    /// are temporarily lost are not listed (but are still counted as active).
    pub tracks: Vec<TrackState>,
    /// Ids of confirmed tracks removed in this frame because they were unmatched for
    /// longer than `lost_timeout_s`, sorted. Each confirmed id appears here (or in
    /// [`Tracker::finish`]) exactly once.
    pub ended: Vec<u64>,
}

/// ByteTrack-style multi-object tracker for one video stream.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    clock: FrameClock,
}

#[derive(Debug)]
struct Track {
    /// `None` while tentative (fewer than `min_hits` matches).
    id: Option<u64>,
    kf: KalmanBox,
    lost: bool,
    hits: u32,
    first_seen: f64,
    last_seen: f64,
    /// Detection index matched in the current update.
    matched: Option<usize>,
}

impl Tracker {
    /// Creates a tracker. Never fails: any field that [`TrackerConfig::validate`]
    /// would reject is replaced by its default (`low_score` is additionally capped
    /// at `high_score`, `new_track_score` raised to `high_score`, `min_hits` 0 → 1).
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg: cfg.sanitized(),
            tracks: Vec::new(),
            next_id: 1,
            clock: FrameClock::default(),
        }
    }

    /// Processes one frame's detections taken at `ts` seconds.
    ///
    /// `ts` should be monotonic; frames may be irregularly spaced. A non-finite
    /// `ts`, or one earlier than the previous frame, is treated as equal to the
    /// previous frame's (no motion, no expiry) rather than corrupting the motion
    /// model. Detections with an invalid box or a non-finite score are ignored.
    ///
    /// Expiry happens only when `update` (or [`finish`](Self::finish)) is called:
    /// if frames stop arriving, ended ids are reported on the next call.
    pub fn update(&mut self, dets: &[Detection], ts: f64) -> TrackUpdate {
        let (now, dt) = self.clock.tick(ts);

        // Expire before associating: a track unmatched for longer than the timeout
        // must not be revived by this frame's detections (that would be a new
        // person as far as counting is concerned).
        let mut ended = Vec::new();
        let timeout = self.cfg.lost_timeout_s;
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
            if t.lost {
                t.kf.freeze_height_velocity();
            }
            t.kf.predict(dt);
        }
        let predicted: Vec<Option<BBox>> = self.tracks.iter().map(|t| t.kf.bbox()).collect();

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

        let (confirmed, tentative): (Vec<usize>, Vec<usize>) =
            (0..self.tracks.len()).partition(|&i| self.tracks[i].id.is_some());

        // 1) Confirmed tracks, tracked or lost, against confident detections.
        let first = associate(&confirmed, &high, &predicted, dets, self.cfg.match_iou);
        for &(t, d) in &first.matches {
            self.tracks[t].apply(d, &dets[d], now);
        }

        // 2) Tracks that were being followed until now get a chance with the
        //    low-score detections (occlusion lowers scores). Lost tracks are
        //    excluded, as in ByteTrack: a weak box far in time is too ambiguous.
        let still_tracked: Vec<usize> = first
            .unmatched_tracks
            .iter()
            .copied()
            .filter(|&t| !self.tracks[t].lost)
            .collect();
        let second = associate(
            &still_tracked,
            &low,
            &predicted,
            dets,
            self.cfg.low_match_iou,
        );
        for &(t, d) in &second.matches {
            self.tracks[t].apply(d, &dets[d], now);
        }
        for &t in &second.unmatched_tracks {
            self.tracks[t].lost = true;
        }

        // 3) Tentative tracks only with confident detections, stricter IoU.
        let third = associate(
            &tentative,
            &first.unmatched_dets,
            &predicted,
            dets,
            self.cfg.unconfirmed_match_iou,
        );
        for &(t, d) in &third.matches {
            self.tracks[t].apply(d, &dets[d], now);
        }

        // A tentative track that misses a frame is dropped (ByteTrack): it is
        // most likely a false positive.
        self.tracks
            .retain(|t| t.id.is_some() || t.matched.is_some());

        // 4) New tentative tracks from what is left.
        for &d in &third.unmatched_dets {
            let det = &dets[d];
            if det.score < self.cfg.new_track_score {
                continue;
            }
            let Some(z) = measurement(&det.bbox) else {
                continue;
            };
            self.tracks.push(Track {
                id: None,
                kf: KalmanBox::new(z),
                lost: false,
                hits: 1,
                first_seen: now,
                last_seen: now,
                matched: Some(d),
            });
        }

        // Ids are handed out in track creation order, at confirmation.
        for t in &mut self.tracks {
            if t.id.is_none() && t.hits >= self.cfg.min_hits {
                t.id = Some(self.next_id);
                self.next_id += 1;
            }
        }

        let mut tracks: Vec<TrackState> = self
            .tracks
            .iter()
            .filter_map(|t| {
                let id = t.id?;
                let d = t.matched?;
                let det = dets.get(d)?;
                Some(TrackState {
                    id,
                    bbox: det.bbox,
                    score: det.score,
                    det_index: d,
                    hits: t.hits,
                    first_seen: t.first_seen,
                })
            })
            .collect();
        tracks.sort_unstable_by_key(|t| t.id);

        TrackUpdate { tracks, ended }
    }

    /// Ends every track (camera stop, end of file) and returns the ids of the
    /// confirmed ones, sorted. The tracker can then be reused for a new stream:
    /// timing state is reset (timestamps may restart from zero), ids keep
    /// increasing.
    pub fn finish(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.tracks.iter().filter_map(|t| t.id).collect();
        ids.sort_unstable();
        self.tracks.clear();
        self.clock = FrameClock::default();
        ids
    }
}

impl Track {
    fn apply(&mut self, det_index: usize, det: &Detection, now: f64) {
        if let Some(z) = measurement(&det.bbox) {
            if !self.kf.update(z) {
                self.kf = KalmanBox::new(z);
            }
        }
        self.lost = false;
        self.hits = self.hits.saturating_add(1);
        self.last_seen = now;
        self.matched = Some(det_index);
    }
}

/// Outcome of one association step, in tracker-wide track and detection indices.
struct Matching {
    matches: Vec<(usize, usize)>,
    unmatched_tracks: Vec<usize>,
    unmatched_dets: Vec<usize>,
}

fn associate(
    tracks: &[usize],
    det_ids: &[usize],
    predicted: &[Option<BBox>],
    dets: &[Detection],
    min_iou: f32,
) -> Matching {
    let mut cost = Vec::with_capacity(tracks.len() * det_ids.len());
    for &t in tracks {
        for &d in det_ids {
            let iou = predicted[t].map_or(0.0, |p| p.iou(&dets[d].bbox));
            cost.push(if iou > 0.0 && iou >= min_iou {
                1.0 - f64::from(iou)
            } else {
                f64::INFINITY
            });
        }
    }
    // Exact in f64 for any f32 IoU, so the gate agrees with the check above.
    let limit = 1.0 - f64::from(min_iou);
    let a = assign(&cost, tracks.len(), det_ids.len(), limit);
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

/// Converts timestamps into motion-model steps.
///
/// One step is the median of recent frame intervals: robust to the odd dropped or
/// late frame, and it follows a durable frame-rate change within a window.
#[derive(Debug, Default)]
struct FrameClock {
    last_ts: Option<f64>,
    intervals: VecDeque<f64>,
}

impl FrameClock {
    const WINDOW: usize = 31;
    /// Caps extrapolation across a huge gap; long gaps expire tracks anyway.
    const MAX_STEP_FRAMES: f64 = 1000.0;

    /// Returns the sanitised timestamp and the elapsed time in nominal frames.
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
        if interval <= 0.0 {
            return (now, 0.0);
        }
        if self.intervals.len() == Self::WINDOW {
            self.intervals.pop_front();
        }
        self.intervals.push_back(interval);
        let mut sorted: Vec<f64> = self.intervals.iter().copied().collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        (now, (interval / median).min(Self::MAX_STEP_FRAMES))
    }
}
