//! Frame timing on the streaming thread: which decoded frames to keep (`analysis_fps` and the
//! consumer's load cap, decided by PTS before any scaling) and the stream clock kept frames are
//! stamped with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gstreamer as gst;

/// Maps per-pipeline PTS onto one stream clock that never goes backwards across reconnects
/// and loops.
#[derive(Default)]
pub(super) struct Timeline {
    offset_s: Option<f64>,
    last_pts_s: Option<f64>,
    last_wall: Option<Instant>,
}

impl Timeline {
    /// The next frame starts a new PTS origin (new pipeline or a loop back to the start).
    pub(super) fn new_segment(&mut self) {
        self.offset_s = None;
    }

    pub(super) fn map(&mut self, raw: Option<gst::ClockTime>, live: bool) -> f64 {
        let now = Instant::now();
        // A live gap lasts as long as the outage did; a file loop is one frame long.
        let gap = match (live, self.last_wall) {
            (true, Some(w)) => now.duration_since(w).as_secs_f64(),
            _ => 1.0 / 30.0,
        }
        .max(1e-3);
        let pts = match raw.map(|t| t.nseconds() as f64 / 1e9) {
            Some(r) => {
                let offset = *self.offset_s.get_or_insert(match self.last_pts_s {
                    None => 0.0,
                    Some(last) => last + gap - r,
                });
                r + offset
            }
            None => self.last_pts_s.map_or(0.0, |l| l + gap),
        };
        let pts = self.last_pts_s.map_or(pts, |l| pts.max(l));
        self.last_pts_s = Some(pts);
        self.last_wall = Some(now);
        pts
    }
}

/// A ceiling on one camera's sampling rate, set by the consumer while analysis cannot keep up
/// and read by the sampling probe on every frame.
#[derive(Debug, Default)]
pub(super) struct RateCap {
    /// `f64` bits of the cap in frames per second; 0 when there is none.
    bits: AtomicU64,
}

impl RateCap {
    pub(super) fn get(&self) -> Option<f64> {
        let v = f64::from_bits(self.bits.load(Ordering::Relaxed));
        (v > 0.0 && v.is_finite()).then_some(v)
    }

    pub(super) fn set(&self, fps: Option<f64>) {
        let v = fps.filter(|f| *f > 0.0 && f.is_finite()).unwrap_or(0.0);
        self.bits.store(v.to_bits(), Ordering::Relaxed);
    }
}

fn interval_ns(fps: f64) -> Option<u64> {
    Some((1e9 / fps) as u64).filter(|i| *i > 0)
}

/// What the sampler decided for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sampled {
    Keep,
    /// Above `analysis_fps`.
    Skip,
    /// Within `analysis_fps` but above the load cap.
    Shed,
}

/// Keeps frames at most `analysis_fps` per second of PTS, and at most the load cap's rate while
/// one is set. The configured pace always runs, so a frame the cap sheds is told apart from one
/// sampling would have skipped anyway, and lifting the cap resumes the configured rate at once.
pub(super) struct Sampler {
    base: Pace,
    /// The pace under the cap while it is below `analysis_fps`.
    capped: Option<Pace>,
    cap: Arc<RateCap>,
    /// PTS of the last frame kept, so a new or changed cap continues from it without a burst or
    /// a gap.
    last_out: Option<u64>,
    /// Frames the cap kept that `analysis_fps` alone would have skipped. The cap picks the frames
    /// closest to its own even schedule, not a subset of the configured one, so each such frame
    /// stands in for one the configured schedule wanted: that one is not counted as shed.
    substitutes: u64,
}

impl Sampler {
    pub(super) fn new(fps: Option<f64>, cap: Arc<RateCap>) -> Self {
        Self {
            base: Pace::new(fps.and_then(interval_ns)),
            capped: None,
            cap,
            last_out: None,
            substitutes: 0,
        }
    }

    pub(super) fn keep(&mut self, pts: Option<gst::ClockTime>) -> Sampled {
        let base = self.base.keep(pts);
        let cap = self
            .cap
            .get()
            .and_then(interval_ns)
            .filter(|c| *c > self.base.interval_ns.unwrap_or(0));
        let Some(cap) = cap else {
            self.capped = None;
            self.substitutes = 0;
            if base {
                self.last_out = pts.map(|p| p.nseconds()).or(self.last_out);
                return Sampled::Keep;
            }
            return Sampled::Skip;
        };
        let last_out = self.last_out;
        let pace = self
            .capped
            .get_or_insert_with(|| Pace::continuing(cap, last_out));
        if pace.interval_ns != Some(cap) {
            *pace = Pace::continuing(cap, last_out);
        }
        if pace.keep(pts) {
            self.last_out = pts.map(|p| p.nseconds()).or(self.last_out);
            if !base {
                self.substitutes += 1;
            }
            Sampled::Keep
        } else if base && self.substitutes > 0 {
            self.substitutes -= 1;
            Sampled::Skip
        } else if base {
            Sampled::Shed
        } else {
            Sampled::Skip
        }
    }
}

/// Keeps frames at most one per `interval_ns` of PTS, evenly.
struct Pace {
    interval_ns: Option<u64>,
    next_due: Option<u64>,
    last_kept: Option<u64>,
}

impl Pace {
    fn new(interval_ns: Option<u64>) -> Self {
        Self {
            interval_ns,
            next_due: None,
            last_kept: None,
        }
    }

    /// A pace whose first frame is due one interval after `last` (the last frame kept).
    fn continuing(interval: u64, last: Option<u64>) -> Self {
        Self {
            interval_ns: Some(interval),
            next_due: last.map(|l| l + interval),
            last_kept: last,
        }
    }

    fn keep(&mut self, pts: Option<gst::ClockTime>) -> bool {
        let (Some(interval), Some(pts)) = (self.interval_ns, pts) else {
            return true;
        };
        let p = pts.nseconds();
        // Timestamps jitter a little (RTP clock conversion); without slack a frame a hair
        // early would be skipped and the rate would halve.
        let slack = interval / 8;
        match (self.next_due, self.last_kept) {
            (Some(due), Some(last)) if p >= last => {
                if p + slack < due {
                    return false;
                }
                // Step from the due time so the average rate is exact, but restart from this
                // frame after a gap so no burst is let through to "catch up".
                let next = due + interval;
                self.next_due = Some(if next <= p { p + interval } else { next });
            }
            // First frame, or timestamps went backwards (seek, loop): start over.
            _ => self.next_due = Some(p + interval),
        }
        self.last_kept = Some(p);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<gst::ClockTime> {
        Some(gst::ClockTime::from_mseconds(v))
    }

    fn sampler(fps: Option<f64>) -> (Sampler, Arc<RateCap>) {
        let cap = Arc::new(RateCap::default());
        (Sampler::new(fps, cap.clone()), cap)
    }

    fn kept(s: &mut Sampler, pts: Option<gst::ClockTime>) -> bool {
        s.keep(pts) == Sampled::Keep
    }

    #[test]
    fn sampler_keeps_target_rate() {
        let (mut s, _) = sampler(Some(10.0));
        // 30 fps source, 3 seconds.
        let n = (0..90)
            .filter(|i| kept(&mut s, Some(gst::ClockTime::from_nseconds(i * 33_333_333))))
            .count();
        assert_eq!(n, 30);
        // 25 fps source.
        let (mut s, _) = sampler(Some(10.0));
        let n = (0..100).filter(|i| kept(&mut s, ms(i * 40))).count();
        assert_eq!(n, 40);
        // Disabled keeps all, frames without PTS are kept.
        let (mut s, _) = sampler(None);
        assert!((0..10).all(|i| kept(&mut s, ms(i))));
        let (mut s, _) = sampler(Some(1.0));
        assert!(kept(&mut s, None));
    }

    #[test]
    fn sampler_restarts_after_timestamps_go_back() {
        let (mut s, _) = sampler(Some(2.0));
        assert!(kept(&mut s, ms(0)));
        assert!(!kept(&mut s, ms(100)));
        assert!(kept(&mut s, ms(500)));
        // Loop back to the start: keep at once.
        assert!(kept(&mut s, ms(0)));
        assert!(!kept(&mut s, ms(200)));
        assert!(kept(&mut s, ms(500)));
        // A gap: keep at once, then regular again.
        assert!(kept(&mut s, ms(10_000)));
        assert!(!kept(&mut s, ms(10_100)));
        assert!(kept(&mut s, ms(10_500)));
    }

    /// Runs a 25 fps source from `from_ms` for `n` frames; returns the kept PTS (ms) and the
    /// frames shed by the cap.
    fn run_25fps(s: &mut Sampler, from_ms: u64, n: u64) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut shed = 0;
        for i in 0..n {
            let t = from_ms + i * 40;
            match s.keep(ms(t)) {
                Sampled::Keep => out.push(t),
                Sampled::Shed => shed += 1,
                Sampled::Skip => {}
            }
        }
        (out, shed)
    }

    #[test]
    fn a_load_cap_lowers_the_rate_evenly_and_counts_what_it_sheds() {
        let (mut s, cap) = sampler(Some(10.0));
        cap.set(Some(4.0));
        let (kept, shed) = run_25fps(&mut s, 0, 250);
        // 10 s at 4 fps; the 10 fps schedule would have kept 100, so 60 were shed for load.
        assert_eq!(kept.len(), 40);
        assert_eq!(shed, 60);
        // Even: every gap is the 250 ms interval rounded to the 40 ms frame grid.
        for w in kept.windows(2) {
            assert!((240..=280).contains(&(w[1] - w[0])), "{kept:?}");
        }
        // A cap at or above analysis_fps sheds nothing; no cap at all restores 10 fps.
        cap.set(Some(12.0));
        let (kept, shed) = run_25fps(&mut s, 10_000, 100);
        assert_eq!((kept.len(), shed), (40, 0));
        cap.set(None);
        let (kept, shed) = run_25fps(&mut s, 14_000, 100);
        assert_eq!((kept.len(), shed), (40, 0));
    }

    #[test]
    fn changing_the_cap_continues_from_the_last_kept_frame() {
        let (mut s, cap) = sampler(None);
        cap.set(Some(5.0));
        let (a, shed) = run_25fps(&mut s, 0, 50);
        assert_eq!(a.len(), 10);
        assert_eq!(
            shed, 40,
            "without analysis_fps every frame above the cap is shed"
        );
        // Lower it mid-stream: the next frame comes one new interval after the last one kept,
        // neither at once (a burst) nor after a double gap.
        cap.set(Some(2.0));
        let (b, _) = run_25fps(&mut s, 2000, 100);
        let last = *a.last().unwrap_or(&0);
        assert!((440..=520).contains(&(b[0] - last)), "{a:?} then {b:?}");
        for w in b.windows(2) {
            assert!((480..=520).contains(&(w[1] - w[0])), "{b:?}");
        }
        // Raise it again.
        cap.set(Some(4.0));
        let (c, _) = run_25fps(&mut s, 6000, 100);
        assert!(c[0] - b[b.len() - 1] <= 280, "{b:?} then {c:?}");
        assert_eq!(c.len(), 16);
    }

    #[test]
    fn timeline_is_monotonic_across_new_segments() {
        let mut t = Timeline::default();
        assert_eq!(t.map(ms(1000), false), 1.0);
        assert_eq!(t.map(ms(2000), false), 2.0);
        t.new_segment();
        let a = t.map(ms(0), false);
        assert!(a > 2.0 && a < 2.1, "{a}");
        let b = t.map(ms(500), false);
        assert!((b - a - 0.5).abs() < 1e-9);
        t.new_segment();
        let c = t.map(ms(7), true);
        assert!(c > b);
    }
}
