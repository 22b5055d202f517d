//! Multi-object tracking of person detections, following ByteTrack
//! (Zhang et al., 2022): a constant-velocity Kalman filter per track and three
//! IoU-gated optimal assignments per frame, so that low-confidence detections
//! (typically partially occluded people) extend existing tracks without ever
//! creating new ones.
//!
//! Timing is driven by caller timestamps, not frame counts: frames may be sampled
//! irregularly or dropped, and a "frame" for the motion model is the median recent
//! frame interval.

mod assign;
mod kalman;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use assign::assign;
use kalman::{measurement, KalmanBox};

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

/// Tracker thresholds. Every field has a default, so a config file only needs the
/// fields it changes; unknown fields are rejected to catch typos.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

impl TrackerConfig {
    /// Checks every field; call this when loading configuration so that mistakes
    /// are rejected loudly. [`Tracker::new`] does not fail: it replaces invalid
    /// fields with safe values (see [`Tracker::new`]).
    ///
    /// # Errors
    ///
    /// The first field found out of range: scores outside `[0, 1]`,
    /// `low_score > high_score`, `new_track_score < high_score`, an IoU threshold
    /// outside `(0, 1]`, a negative or non-finite `lost_timeout_s`, `min_hits == 0`.
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
        if self.min_hits == 0 {
            return err("min_hits", 0.0, "expected >= 1");
        }
        Ok(())
    }

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
#[derive(Clone, Debug, PartialEq, Serialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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

    /// The configuration in effect (after sanitising).
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
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

    /// Number of confirmed tracks not yet ended (currently matched or lost).
    /// Equals the number of ids reported so far minus those reported as ended.
    pub fn active_count(&self) -> usize {
        self.tracks.iter().filter(|t| t.id.is_some()).count()
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
    fn tentative_track_needs_min_hits_and_dies_on_a_miss() {
        let mut tr = tracker();
        assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.0).tracks.is_empty());
        assert!(tr.update(&[], 0.1).tracks.is_empty());
        // The tentative track is gone; this starts over and does not consume id 1.
        assert!(tr.update(&[det(0.0, 0.0, 0.9)], 0.2).tracks.is_empty());
        let u = tr.update(&[det(1.0, 0.0, 0.9)], 0.3);
        assert_eq!(ids(&u), vec![1]);
        assert_eq!(u.tracks[0].hits, 2);
        assert!((u.tracks[0].first_seen - 0.2).abs() < 1e-12);
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
