//! Analysis under load: what the machine sustains, the share of it every camera gets, and whether a
//! camera's counts can be trusted at the rate it is really analysed at.
//!
//! The agent's analysis workers serve the cameras round-robin. When the cameras' sampled frames cost more
//! analysis time than the workers have, frames pile up in the lanes and are evicted after decoding: the
//! tracker then sees irregular gaps and loses people. Instead the [`Governor`] measures what one frame of each
//! camera costs a worker and lowers every camera's sampling rate to the same share of what the workers
//! sustain (water-filling: a camera that wants less than the share keeps its rate, the others split the rest
//! evenly), so frames are skipped evenly at the sampler, before they are scaled and converted. It raises the
//! share again only after the load has stayed lower for several periods, in bounded steps, so the rates do
//! not oscillate.
//!
//! [`RateMeter`] measures the rate a camera is really analysed at (frames per second of stream time) and the
//! gaps between its analysed frames; [`Reliability`] turns that rate into the `degraded` state reported in
//! `camera_status`, with hysteresis in both value and time so the state changes seldom.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use checkpoint_protocol::DegradedReason;

/// The analysis rate (frames per second of stream time) below which a faces-mode camera's counts are reported
/// as degraded, unless the config says otherwise (`[load] reliable_fps`, `cameras[].reliable_fps`).
///
/// 2.0 is the lowest rate at which faces mode counts every crossing of the generated scenes (issue 13, item 2);
/// the frame-rate sweep in `benches/RESULTS.md` is what this number rests on.
pub const DEFAULT_RELIABLE_FPS: f64 = 2.0;

/// The same for people mode. On real footage (the TUD sequences, `checkpoint-bench counting-rates`) people
/// mode counts 75-92% of the crossings at 5 fps and above and about 55% on one of them below it; the
/// generated scenes cannot measure it (their people are face cut-outs).
pub const DEFAULT_RELIABLE_FPS_PEOPLE: f64 = 5.0;

/// How often the governor re-divides the analysis time.
pub const CONTROL_PERIOD: Duration = Duration::from_secs(2);

/// One camera as the governor sees it over one control period.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand {
    /// Frames per second the camera would be analysed at without a cap: its `analysis_fps`, or the rate it
    /// delivers if lower. `f64::INFINITY` for a source that waits for analysis (a file read as fast as it
    /// is analysed): it takes whatever the other cameras leave.
    pub want_fps: f64,
    /// Wall time one of its frames keeps a worker busy, when measured.
    pub cost_s: Option<f64>,
    /// Frames it lost from its lane this period because analysis was behind.
    pub overrun: bool,
}

/// What the governor changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ShareChange {
    /// Every camera that wants more is now capped at `to` frames per second.
    Lowered { from: Option<f64>, to: f64 },
    /// The cap rose (`None`: lifted, every camera back at its own rate).
    Raised { from: f64, to: Option<f64> },
}

/// Divides the workers' time evenly between the cameras, by frame rate.
#[derive(Debug)]
pub struct Governor {
    workers: usize,
    share: Option<f64>,
    /// Consecutive periods in which the measured load left room for a higher share.
    calm_periods: u32,
    capacity_fps: Option<f64>,
}

impl Governor {
    /// Share of the workers' time the cameras are planned to fill: the rest absorbs bursts (more people in
    /// view cost more per frame) so the lanes do not overflow before the next period.
    pub const TARGET_UTILISATION: f64 = 0.85;
    /// The share is lowered as soon as the measured fair share is this much below it (the workers are busy
    /// more than 94% of the time)...
    pub const LOWER_BELOW: f64 = 0.90;
    /// ...and raised only when it is this much above it (busy less than 71%) for [`Self::RAISE_AFTER`]
    /// periods in a row. The band between is wide because a frame costs more when more frames are analysed
    /// at once (cores, caches and memory bandwidth are shared): a narrow band turns that into a sawtooth.
    pub const RAISE_ABOVE: f64 = 1.20;
    pub const RAISE_AFTER: u32 = 3;
    /// A raise multiplies the share by at most this (then waits again), so it lands inside the band even
    /// when the cost per frame grows with the rate.
    pub const RAISE_STEP: f64 = 1.25;
    /// Cut applied when lanes overflowed although the estimate said the share fits.
    pub const OVERRUN_CUT: f64 = 0.85;
    /// No camera is ever sampled slower than this: it keeps being seen (and reported degraded).
    pub const MIN_SHARE: f64 = 0.25;

    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            share: None,
            calm_periods: 0,
            capacity_fps: None,
        }
    }

    /// The cap every camera is sampled at now, `None` when analysis keeps up with every camera.
    pub fn share(&self) -> Option<f64> {
        self.share
    }

    /// Frames per second the workers sustain at the cameras' mean cost per frame (last estimate).
    pub fn capacity_fps(&self) -> Option<f64> {
        self.capacity_fps
    }

    /// One control period: re-estimates the fair share from the active cameras and applies the hysteresis.
    pub fn update(&mut self, cams: &[Demand]) -> Option<ShareChange> {
        let known: Vec<f64> = cams
            .iter()
            .filter_map(|c| c.cost_s)
            .filter(|c| c.is_finite() && *c > 0.0)
            .collect();
        if known.is_empty() {
            // Nothing analysed yet (starting, or every camera down): no evidence either way.
            self.calm_periods = 0;
            return None;
        }
        let mean_cost = known.iter().sum::<f64>() / known.len() as f64;
        let plan: Vec<(f64, f64)> = cams
            .iter()
            .filter(|c| c.want_fps > 0.0)
            .map(|c| {
                let cost = c
                    .cost_s
                    .filter(|c| c.is_finite() && *c > 0.0)
                    .unwrap_or(mean_cost)
                    .max(1e-4);
                (c.want_fps, cost)
            })
            .collect();
        let workers = self.workers.min(plan.len().max(1)) as f64;
        let capacity = workers * Self::TARGET_UTILISATION;
        self.capacity_fps = Some(capacity / mean_cost);
        let max_want = plan
            .iter()
            .map(|(w, _)| *w)
            .filter(|w| w.is_finite())
            .fold(0.0, f64::max);
        let even = fair_share(&plan, capacity).unwrap_or(f64::INFINITY);
        // One camera's frames are analysed one at a time, so it can never use more than one worker: a camera
        // that wants more than one worker gives it holds the share down to what it can have.
        let single = plan
            .iter()
            .map(|(w, c)| (*w, Self::TARGET_UTILISATION / c))
            .filter(|(w, ceiling)| w.is_finite() && w > ceiling)
            .map(|(_, ceiling)| ceiling)
            .fold(f64::INFINITY, f64::min);
        // A share no camera is held back by is no share at all.
        let target = Some(even.min(single))
            .filter(|r| r.is_finite())
            .map(|r| r.max(Self::MIN_SHARE))
            .filter(|r| *r < max_want);
        let overrun = cams.iter().any(|c| c.overrun);
        let before = self.share;
        match (self.share, target) {
            (cur, Some(t)) if cur.is_none_or(|c| t < c * Self::LOWER_BELOW) => {
                self.share = Some(t);
                self.calm_periods = 0;
            }
            (Some(c), _) if overrun => {
                self.share = Some((c * Self::OVERRUN_CUT).max(Self::MIN_SHARE));
                self.calm_periods = 0;
            }
            (None, None) if overrun => {
                // The estimate says everything fits, the lanes say otherwise: start from what the busiest
                // camera wants and let the next periods correct it.
                self.share = Some((max_want * Self::OVERRUN_CUT).max(Self::MIN_SHARE));
                self.calm_periods = 0;
            }
            (Some(c), t) if t.is_none_or(|t| t > c * Self::RAISE_ABOVE) => {
                self.calm_periods += 1;
                if self.calm_periods >= Self::RAISE_AFTER {
                    self.calm_periods = 0;
                    let step = c * Self::RAISE_STEP;
                    self.share = match t {
                        Some(t) => Some(t.min(step)),
                        None if step >= max_want => None,
                        None => Some(step),
                    };
                }
            }
            _ => self.calm_periods = 0,
        }
        match (before, self.share) {
            (from, Some(to)) if from.is_none_or(|f| to < f) => {
                Some(ShareChange::Lowered { from, to })
            }
            (Some(from), to) if to.is_none_or(|t| t > from) => {
                Some(ShareChange::Raised { from, to })
            }
            _ => None,
        }
    }
}

/// The common rate every camera that wants more gets when `capacity` worker-seconds per second are split
/// evenly by frame rate (`cams` holds each camera's wanted rate and cost per frame); `None` when every camera
/// gets what it wants.
pub fn fair_share(cams: &[(f64, f64)], capacity: f64) -> Option<f64> {
    let total: f64 = cams.iter().map(|(w, c)| w * c).sum();
    if total <= capacity {
        return None;
    }
    let mut sorted = cams.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut left = capacity;
    let mut cost_left: f64 = sorted.iter().map(|(_, c)| c).sum();
    for (want, cost) in sorted {
        let level = left / cost_left;
        if want > level {
            return Some(level.max(0.0));
        }
        left -= want * cost;
        cost_left -= cost;
    }
    None
}

/// The rate one camera is really analysed at, over the last few seconds of its stream, and the gaps between
/// its analysed frames.
#[derive(Debug, Default)]
pub struct RateMeter {
    /// Stream time and arrival of the analysed frames in the window.
    frames: VecDeque<(f64, Instant)>,
    /// Longest gap (stream seconds) since [`Self::take_max_gap`] was last called.
    max_gap: Option<f64>,
}

impl RateMeter {
    /// Stream seconds the rate is measured over.
    pub const WINDOW_S: f64 = 5.0;
    /// Less than this much stream time gives no rate yet.
    pub const MIN_SPAN_S: f64 = 2.0;

    /// Notes an analysed frame; returns the gap to the previous one (stream seconds).
    pub fn record(&mut self, pts_s: f64, at: Instant) -> Option<f64> {
        let gap = self
            .frames
            .back()
            .map(|(p, _)| (pts_s - p).max(0.0))
            .filter(|g| g.is_finite());
        self.frames.push_back((pts_s, at));
        while self
            .frames
            .front()
            .is_some_and(|(p, _)| pts_s - p > Self::WINDOW_S)
        {
            self.frames.pop_front();
        }
        if let Some(g) = gap {
            self.max_gap = Some(self.max_gap.map_or(g, |m| m.max(g)));
        }
        gap
    }

    /// Frames per second of stream time over the window, `None` until it spans [`Self::MIN_SPAN_S`].
    ///
    /// For a `paced` source (live, or a file played in real time) the time since the last frame counts too
    /// once it exceeds the mean interval: analysis that stalls lowers the rate even before the next frame.
    pub fn effective_fps(&self, now: Instant, paced: bool) -> Option<f64> {
        let (first, _) = *self.frames.front()?;
        let (last, last_at) = *self.frames.back()?;
        let intervals = (self.frames.len() - 1) as f64;
        let mut span = last - first;
        if paced {
            let idle = now.saturating_duration_since(last_at).as_secs_f64();
            let mean = if intervals > 0.0 {
                span / intervals
            } else {
                0.0
            };
            span += (idle - mean).max(0.0);
        }
        if span < Self::MIN_SPAN_S || !span.is_finite() {
            return None;
        }
        Some(intervals / span)
    }

    /// The longest gap since the last call.
    pub fn take_max_gap(&mut self) -> Option<f64> {
        self.max_gap.take()
    }

    /// Forgets everything: a reconnect starts a new stream.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.max_gap = None;
    }
}

/// A change of a camera's `degraded` state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Transition {
    /// The rate stayed below the reliable rate for [`Reliability::ENTER_AFTER`].
    Degraded { fps: f64 },
    /// The rate stayed at or above it for [`Reliability::LEAVE_AFTER`].
    Recovered { fps: f64 },
}

/// Whether a camera's counts can be trusted at the rate it is analysed at.
#[derive(Debug)]
pub struct Reliability {
    threshold: f64,
    degraded: Option<Degradation>,
    below_since: Option<(Instant, SystemTime)>,
    above_since: Option<Instant>,
}

/// An ongoing degraded period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Degradation {
    /// When the rate first fell below the threshold.
    pub since: SystemTime,
    pub reason: DegradedReason,
    /// The lowest effective rate seen in the period.
    pub min_fps: f64,
}

impl Reliability {
    /// Sampling jitter: a camera analysed at exactly the reliable rate measures a hair below or above it.
    /// Only a rate under this fraction of the threshold counts as below.
    pub const TOLERANCE: f64 = 0.95;
    pub const ENTER_AFTER: Duration = Duration::from_secs(2);
    pub const LEAVE_AFTER: Duration = Duration::from_secs(5);

    pub fn new(threshold: f64) -> Self {
        Self {
            threshold,
            degraded: None,
            below_since: None,
            above_since: None,
        }
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The degraded period in progress, if any.
    pub fn degraded(&self) -> Option<Degradation> {
        self.degraded
    }

    /// Feeds the current effective rate (`None`: not enough frames to tell, which changes nothing);
    /// `reason` says why the rate is low, should it start a degraded period now.
    pub fn update(
        &mut self,
        fps: Option<f64>,
        reason: DegradedReason,
        now: Instant,
        wall: SystemTime,
    ) -> Option<Transition> {
        let Some(fps) = fps else {
            self.below_since = None;
            self.above_since = None;
            return None;
        };
        match self.degraded.as_mut() {
            None => {
                if fps >= self.threshold * Self::TOLERANCE {
                    self.below_since = None;
                    return None;
                }
                let (at, since) = *self.below_since.get_or_insert((now, wall));
                if now.duration_since(at) < Self::ENTER_AFTER {
                    return None;
                }
                self.degraded = Some(Degradation {
                    since,
                    reason,
                    min_fps: fps,
                });
                self.below_since = None;
                Some(Transition::Degraded { fps })
            }
            Some(d) => {
                if fps < self.threshold {
                    d.min_fps = d.min_fps.min(fps);
                    // The cause may change while it lasts (the operator lowered the load, the camera slowed).
                    d.reason = reason;
                    self.above_since = None;
                    return None;
                }
                let at = *self.above_since.get_or_insert(now);
                if now.duration_since(at) < Self::LEAVE_AFTER {
                    return None;
                }
                self.degraded = None;
                self.above_since = None;
                Some(Transition::Recovered { fps })
            }
        }
    }

    /// Ends any degraded period without a verdict (the camera went down: its counts are missing, not
    /// unreliable). Returns whether one was in progress.
    pub fn clear(&mut self) -> bool {
        self.below_since = None;
        self.above_since = None;
        self.degraded.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(want: f64, cost: f64) -> Demand {
        Demand {
            want_fps: want,
            cost_s: Some(cost),
            overrun: false,
        }
    }

    #[test]
    fn fair_share_splits_evenly_and_lets_small_wants_keep_their_rate() {
        // 4 cameras at 0.1 s a frame, one worker at 85%: 8.5 frames/s in all, 2.125 each.
        let four = [(25.0, 0.1); 4];
        let r = fair_share(&four, 0.85).unwrap();
        assert!((r - 2.125).abs() < 1e-9, "{r}");
        // One camera wants only 1 fps: it keeps it, the other three split the rest (7.5 frames/s).
        let mixed = [(1.0, 0.1), (25.0, 0.1), (25.0, 0.1), (25.0, 0.1)];
        let r = fair_share(&mixed, 0.85).unwrap();
        assert!((r - 2.5).abs() < 1e-9, "{r}");
        // Everything fits: no share.
        assert_eq!(fair_share(&[(5.0, 0.01); 4], 0.85), None);
        // A file that waits for analysis wants everything, and gets an even share too.
        let r = fair_share(&[(f64::INFINITY, 0.1), (25.0, 0.1)], 0.85).unwrap();
        assert!((r - 4.25).abs() < 1e-9, "{r}");
    }

    #[test]
    fn the_governor_lowers_at_once_and_raises_slowly_without_oscillating() {
        let mut g = Governor::new(1);
        // Eight cameras wanting 5 fps at 50 ms a frame: 40 frames/s wanted, 17 sustained.
        let busy = vec![cam(5.0, 0.05); 8];
        let change = g.update(&busy);
        let share = g.share().unwrap();
        assert!((share - 0.85 / 0.05 / 8.0).abs() < 1e-9, "{share}");
        assert_eq!(
            change,
            Some(ShareChange::Lowered {
                from: None,
                to: share
            })
        );
        assert!((g.capacity_fps().unwrap() - 17.0).abs() < 1e-9);
        // Measurements that wobble by a few percent change nothing.
        for cost in [0.051, 0.049, 0.0505, 0.05, 0.048] {
            assert_eq!(g.update(&vec![cam(5.0, cost); 8]), None);
        }
        // Frames get cheaper (fewer people in view): the share rises only after RAISE_AFTER periods, by at
        // most RAISE_STEP at a time, up to the new fair share.
        let cheap = vec![cam(5.0, 0.03); 8];
        for _ in 1..Governor::RAISE_AFTER {
            assert_eq!(g.update(&cheap), None);
        }
        let Some(ShareChange::Raised { from, to: Some(to) }) = g.update(&cheap) else {
            panic!("expected a raise, share {:?}", g.share());
        };
        assert!(to > from && to <= from * Governor::RAISE_STEP + 1e-9);
        assert!(to <= 0.85 / 0.03 / 8.0 + 1e-9);
        // The load falls away (two cameras left): the cap is lifted in steps, then gone.
        let light = vec![cam(5.0, 0.03); 2];
        let mut lifted = false;
        for _ in 0..20 {
            if let Some(ShareChange::Raised { to: None, .. }) = g.update(&light) {
                lifted = true;
                break;
            }
        }
        assert!(lifted && g.share().is_none());
        // A sudden heavy load lowers at once again.
        assert!(matches!(
            g.update(&busy),
            Some(ShareChange::Lowered { from: None, .. })
        ));
    }

    #[test]
    fn lanes_overflowing_lower_the_share_even_when_the_estimate_says_it_fits() {
        let mut g = Governor::new(2);
        let mut cams = vec![cam(10.0, 0.01); 3];
        assert_eq!(g.update(&cams), None);
        cams[1].overrun = true;
        assert!(matches!(
            g.update(&cams),
            Some(ShareChange::Lowered { from: None, to }) if (to - 8.5).abs() < 1e-9
        ));
        assert!(matches!(
            g.update(&cams),
            Some(ShareChange::Lowered { from: Some(_), .. })
        ));
    }

    #[test]
    fn one_camera_cannot_use_more_than_one_worker_and_unknown_costs_take_the_mean() {
        let mut g = Governor::new(4);
        // One camera at 0.2 s a frame wants 10 fps: one worker gives it 4.25 at most.
        g.update(&[cam(10.0, 0.2)]);
        assert!((g.share().unwrap() - 4.25).abs() < 1e-9);
        // A camera whose cost is not measured yet counts at the others' mean.
        let mut g = Governor::new(1);
        let unknown = Demand {
            want_fps: 5.0,
            cost_s: None,
            overrun: false,
        };
        g.update(&[cam(5.0, 0.1), unknown]);
        assert!((g.share().unwrap() - 4.25).abs() < 1e-9);
        // Nothing measured at all: no decision.
        let mut g = Governor::new(1);
        assert_eq!(
            g.update(&[Demand {
                want_fps: 5.0,
                cost_s: None,
                overrun: true
            }]),
            None
        );
    }

    #[test]
    fn the_meter_measures_stream_time_and_sees_stalls_of_paced_sources() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 2.5 fps for 6 s of stream.
        for i in 0..16 {
            let gap = m.record(i as f64 * 0.4, t0 + Duration::from_millis(i * 400));
            assert_eq!(gap.is_some(), i > 0);
        }
        let at = t0 + Duration::from_millis(6000);
        let r = m.effective_fps(at, true).unwrap();
        assert!((r - 2.5).abs() < 1e-9, "{r}");
        assert!((m.take_max_gap().unwrap() - 0.4).abs() < 1e-9);
        assert_eq!(m.take_max_gap(), None);
        // Five seconds without a frame: a paced camera's rate falls, a file's does not.
        let later = t0 + Duration::from_millis(11_000);
        assert!(m.effective_fps(later, true).unwrap() < 1.4);
        assert!((m.effective_fps(later, false).unwrap() - 2.5).abs() < 1e-9);
        // Too little stream time gives no rate.
        let mut m = RateMeter::default();
        m.record(0.0, t0);
        m.record(0.5, t0);
        assert_eq!(m.effective_fps(t0, false), None);
    }

    #[test]
    fn degraded_needs_a_sustained_low_rate_and_recovery_a_sustained_good_one() {
        let t0 = Instant::now();
        let wall = SystemTime::UNIX_EPOCH;
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = Reliability::new(2.0);
        let o = DegradedReason::Overload;
        // Exactly at the threshold, give or take sampling jitter: never degraded.
        for i in 0..100 {
            let fps = if i % 2 == 0 { 1.96 } else { 2.04 };
            assert_eq!(r.update(Some(fps), o, at(i * 100), wall), None);
        }
        // Below for less than ENTER_AFTER: nothing; sustained: degraded once.
        assert_eq!(r.update(Some(1.5), o, at(20_000), wall), None);
        assert_eq!(r.update(Some(2.5), o, at(20_500), wall), None);
        assert_eq!(r.update(Some(1.5), o, at(21_000), wall), None);
        assert_eq!(r.update(Some(1.4), o, at(22_000), wall), None);
        assert_eq!(
            r.update(Some(1.3), o, at(23_000), wall),
            Some(Transition::Degraded { fps: 1.3 })
        );
        assert_eq!(r.update(Some(1.1), o, at(23_500), wall), None);
        assert_eq!(r.degraded().map(|d| d.min_fps), Some(1.1));
        // Back above the threshold: recovered only after LEAVE_AFTER of it, a dip restarts the wait.
        assert_eq!(r.update(Some(2.2), o, at(24_000), wall), None);
        assert_eq!(r.update(Some(1.9), o, at(27_000), wall), None);
        assert_eq!(r.update(Some(2.2), o, at(28_000), wall), None);
        assert_eq!(r.update(Some(2.2), o, at(32_000), wall), None);
        assert_eq!(
            r.update(Some(2.3), o, at(33_000), wall),
            Some(Transition::Recovered { fps: 2.3 })
        );
        assert!(r.degraded().is_none());
        // A camera that goes down ends the period without a verdict.
        for ms in [40_000, 43_000] {
            r.update(Some(1.0), o, at(ms), wall);
        }
        assert!(r.clear());
        assert!(!r.clear());
    }
}
