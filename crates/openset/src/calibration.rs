//! A face model's measured score curves.

use serde::{Deserialize, Serialize};

/// One measured threshold: the share of impostor comparisons (different people) and of genuine
/// comparisons (same person) that land on the wrong side of it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    /// Similarity threshold (a comparison matches when its score is at least this).
    pub score: f32,
    /// Impostor comparisons scoring at least `score`.
    pub fmr: f64,
    /// Genuine comparisons scoring below `score`.
    pub fnmr: f64,
}

/// FMR and FNMR of one comparison as functions of the score, from measured points (ascending scores) and an
/// exponential tail beyond the last one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// What the score is (which embedding, how fused), so a calibration is never applied to another score.
    pub score: String,
    /// Where the points were measured (data set, faces, pairs).
    pub measured_on: String,
    /// `[score, fmr, fnmr]` rows, scores strictly ascending, FMR falling, FNMR rising.
    pub points: Vec<[f64; 3]>,
    /// d ln(FMR) / d score beyond the last point (negative): the measured tail's slope.
    pub tail_log_slope: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalibrationError {
    #[error("a calibration needs at least two points")]
    TooFewPoints,
    #[error("point {0}: scores must rise, FMR must fall and stay in (0, 1], FNMR must rise and stay in [0, 1]")]
    NotMonotone(usize),
    #[error("tail_log_slope must be negative and finite")]
    BadTail,
}

impl Calibration {
    pub fn validate(&self) -> Result<(), CalibrationError> {
        if self.points.len() < 2 {
            return Err(CalibrationError::TooFewPoints);
        }
        for (i, p) in self.points.iter().enumerate() {
            let [s, fmr, fnmr] = *p;
            let in_range = s.is_finite() && fmr > 0.0 && fmr <= 1.0 && (0.0..=1.0).contains(&fnmr);
            let ordered = i == 0 || {
                let [ps, pfmr, pfnmr] = self.points[i - 1];
                s > ps && fmr <= pfmr && fnmr >= pfnmr
            };
            if !in_range || !ordered {
                return Err(CalibrationError::NotMonotone(i));
            }
        }
        if !(self.tail_log_slope < 0.0 && self.tail_log_slope.is_finite()) {
            return Err(CalibrationError::BadTail);
        }
        Ok(())
    }

    pub fn point(&self, i: usize) -> Option<CalibrationPoint> {
        self.points.get(i).map(|[s, fmr, fnmr]| CalibrationPoint {
            score: *s as f32,
            fmr: *fmr,
            fnmr: *fnmr,
        })
    }

    /// The lowest FMR the points measure; below it [`Self::fmr`] is extrapolated.
    pub fn lowest_measured_fmr(&self) -> f64 {
        self.points.last().map_or(1.0, |p| p[1])
    }

    /// Share of impostor comparisons scoring at least `score`: log-linear between points, the tail slope
    /// beyond the last, and the first point's value (a ceiling, capped at 1) below the first.
    pub fn fmr(&self, score: f32) -> f64 {
        let s = f64::from(score);
        let (first, last) = match (self.points.first(), self.points.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return 1.0,
        };
        if s <= first[0] {
            return first[1].min(1.0);
        }
        if s >= last[0] {
            return last[1] * (self.tail_log_slope * (s - last[0])).exp();
        }
        let i = self.points.partition_point(|p| p[0] <= s);
        let (a, b) = (self.points[i - 1], self.points[i]);
        let w = (s - a[0]) / (b[0] - a[0]);
        (a[1].ln() * (1.0 - w) + b[1].ln() * w).exp()
    }

    /// Share of genuine comparisons scoring below `score`: linear between points, flat beyond the ends (a
    /// floor below the first point; above the last, the last slope continued, capped at 1).
    pub fn fnmr(&self, score: f32) -> f64 {
        let s = f64::from(score);
        let n = self.points.len();
        if n < 2 {
            return 0.0;
        }
        if s <= self.points[0][0] {
            return self.points[0][2];
        }
        let (a, b) = if s >= self.points[n - 1][0] {
            (self.points[n - 2], self.points[n - 1])
        } else {
            let i = self.points.partition_point(|p| p[0] <= s);
            (self.points[i - 1], self.points[i])
        };
        let w = (s - a[0]) / (b[0] - a[0]);
        (a[2] + (b[2] - a[2]) * w).clamp(0.0, 1.0)
    }

    /// The lowest score whose FMR is at most `fmr` (bisection on the monotone curve), capped at 1.
    pub fn score_at_fmr(&self, fmr: f64) -> f32 {
        if self.fmr(-1.0) <= fmr {
            return self.points.first().map_or(0.0, |p| p[0] as f32);
        }
        let (mut lo, mut hi) = (-1.0f32, 1.0f32);
        if self.fmr(hi) > fmr {
            return 1.0;
        }
        for _ in 0..40 {
            let mid = (lo + hi) / 2.0;
            if self.fmr(mid) <= fmr {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SFace-like: FMR 1e-2 at 0.3, 1e-4 at 0.42, 1e-5 at 0.46.
    pub fn sample() -> Calibration {
        Calibration {
            score: "test".into(),
            measured_on: "test".into(),
            points: vec![[0.30, 1e-2, 0.003], [0.42, 1e-4, 0.02], [0.46, 1e-5, 0.035]],
            tail_log_slope: -40.0,
        }
    }

    #[test]
    fn fmr_interpolates_in_log_space_and_extends_the_tail() {
        let c = sample();
        c.validate().unwrap();
        assert!((c.fmr(0.36) / 1e-3 - 1.0).abs() < 1e-5, "{}", c.fmr(0.36));
        assert!((c.fmr(0.42) / 1e-4 - 1.0).abs() < 1e-5);
        assert_eq!(c.fmr(0.1), 1e-2);
        let beyond = c.fmr(0.46 + 0.1);
        assert!((beyond / (1e-5 * (-4.0f64).exp()) - 1.0).abs() < 1e-4);
        assert!(c.fmr(0.9) < c.fmr(0.8));
    }

    #[test]
    fn score_at_fmr_inverts_fmr() {
        let c = sample();
        for target in [5e-3, 1e-4, 3e-6, 1e-9] {
            let s = c.score_at_fmr(target);
            assert!(c.fmr(s) <= target * 1.000_001, "{target}: {s}");
            assert!(c.fmr(s - 1e-4) > target, "{target}: {s} is not the lowest");
        }
        assert_eq!(c.score_at_fmr(0.5), 0.30);
    }

    #[test]
    fn fnmr_rises_with_the_score() {
        let c = sample();
        assert_eq!(c.fnmr(0.0), 0.003);
        assert!((c.fnmr(0.36) - 0.0115).abs() < 1e-6);
        assert!(c.fnmr(0.50) > c.fnmr(0.46));
        assert_eq!(c.fnmr(5.0), 1.0);
    }

    #[test]
    fn bad_curves_are_refused() {
        let mut c = sample();
        c.points[1][1] = 0.5;
        assert_eq!(c.validate(), Err(CalibrationError::NotMonotone(1)));
        let mut c = sample();
        c.points.truncate(1);
        assert_eq!(c.validate(), Err(CalibrationError::TooFewPoints));
        let mut c = sample();
        c.tail_log_slope = 0.0;
        assert_eq!(c.validate(), Err(CalibrationError::BadTail));
        let mut c = sample();
        c.points[2][0] = 0.41;
        assert_eq!(c.validate(), Err(CalibrationError::NotMonotone(2)));
    }
}
