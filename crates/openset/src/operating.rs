//! From a list's policy and size to the threshold the agents apply.

use serde::{Deserialize, Serialize};

use crate::Calibration;

/// What an administrator sets per list.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPolicy {
    /// Share of passers-by who are not on the list but raise a candidate on it, at most (0.001 = one false
    /// candidate per 1,000 passers-by).
    pub target_fpir: f64,
    /// Share of listed people the list may miss before the hub warns that it has grown past what the model
    /// can hold at `target_fpir`.
    pub max_fnir: f64,
}

impl ListPolicy {
    /// The lowest and highest target an administrator may set. Below 1e-6 no calibration set of public faces
    /// can say what a threshold does; above 0.1 reviewers would see one stranger in ten.
    pub const FPIR_RANGE: (f64, f64) = (1e-6, 0.1);

    pub fn validate(&self) -> Result<(), PolicyError> {
        let (lo, hi) = Self::FPIR_RANGE;
        if !(self.target_fpir >= lo && self.target_fpir <= hi) {
            return Err(PolicyError::TargetFpir(self.target_fpir));
        }
        if !(self.max_fnir > 0.0 && self.max_fnir < 1.0) {
            return Err(PolicyError::MaxFnir(self.max_fnir));
        }
        Ok(())
    }

    /// The operating point of a list holding `entries` entries.
    pub fn operating_point(&self, cal: &Calibration, entries: usize, floor: f32) -> OperatingPoint {
        OperatingPoint::compute(cal, self, entries, floor)
    }

    /// How many entries the list can hold before the expected miss rate exceeds `max_fnir` (`None`: more
    /// than a million).
    pub fn capacity(&self, cal: &Calibration, floor: f32) -> Option<usize> {
        let fits = |n: usize| self.operating_point(cal, n, floor).expected_fnir <= self.max_fnir;
        if !fits(1) {
            return Some(0);
        }
        const MAX: usize = 1 << 20;
        if fits(MAX) {
            return None;
        }
        let (mut lo, mut hi) = (1usize, MAX);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("target_fpir {0} must lie in [1e-6, 0.1]")]
    TargetFpir(f64),
    #[error("max_fnir {0} must lie in (0, 1)")]
    MaxFnir(f64),
}

/// The threshold that holds a list's target at its current size, with what it is expected to cost.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub entries: usize,
    pub target_fpir: f64,
    /// Similarity a comparison must reach.
    pub threshold: f32,
    /// Expected share of non-listed passers-by raising a candidate (at most the target unless `floored`
    /// could not go higher).
    pub expected_fpir: f64,
    /// Expected share of listed people missed, per single face (a track that fuses several faces misses
    /// fewer).
    pub expected_fnir: f64,
    /// The threshold lies beyond the lowest FMR the calibration measured: its FPIR rests on the
    /// extrapolated tail.
    pub extrapolated: bool,
    /// The threshold was raised to the floor the deployment set (it is stricter than the target needs).
    pub floored: bool,
}

impl OperatingPoint {
    /// `entries` counts comparisons: templates, when an entry has several (it matches by its best one).
    pub fn compute(cal: &Calibration, policy: &ListPolicy, entries: usize, floor: f32) -> Self {
        let n = entries.max(1) as f64;
        // Per-comparison FMR whose n-fold union is the target: 1 - (1 - f)^n = target.
        let per_comparison = -((-policy.target_fpir).ln_1p() / n).exp_m1();
        let calibrated = cal.score_at_fmr(per_comparison);
        let threshold = calibrated.max(floor);
        let fmr = cal.fmr(threshold);
        Self {
            entries,
            target_fpir: policy.target_fpir,
            threshold,
            expected_fpir: if entries == 0 {
                0.0
            } else {
                -(n * (-fmr).ln_1p()).exp_m1()
            },
            expected_fnir: cal.fnmr(threshold),
            extrapolated: fmr < cal.lowest_measured_fmr(),
            floored: floor > calibrated,
        }
    }

    /// Expected false candidates per 1,000 passers-by.
    pub fn false_per_1000(&self) -> f64 {
        self.expected_fpir * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::tests::sample;

    const WANTED: ListPolicy = ListPolicy {
        target_fpir: 1e-3,
        max_fnir: 0.1,
    };

    #[test]
    fn the_threshold_rises_with_the_list_so_the_false_alert_rate_holds() {
        let cal = sample();
        let mut last = 0.0;
        for n in [1, 10, 100, 1_000, 10_000] {
            let op = WANTED.operating_point(&cal, n, 0.3);
            assert!(op.threshold > last, "{n}: {op:?}");
            assert!(
                (op.expected_fpir - 1e-3).abs() < 1e-5,
                "{n}: FPIR {}",
                op.expected_fpir
            );
            assert!(op.expected_fnir >= cal.fnmr(last));
            last = op.threshold;
        }
        // 1e-3 over 100 entries needs about 1e-5 per comparison: the last measured point.
        let op = WANTED.operating_point(&cal, 100, 0.3);
        assert!((op.threshold - 0.46).abs() < 0.002, "{op:?}");
        assert!(!WANTED.operating_point(&cal, 10, 0.3).extrapolated);
        assert!(WANTED.operating_point(&cal, 10_000, 0.3).extrapolated);
    }

    #[test]
    fn a_floor_only_ever_makes_it_stricter() {
        let cal = sample();
        let loose = ListPolicy {
            target_fpir: 0.1,
            max_fnir: 0.1,
        };
        let op = loose.operating_point(&cal, 1, 0.40);
        assert_eq!(op.threshold, 0.40);
        assert!(op.floored && op.expected_fpir < 0.1);
        let empty = WANTED.operating_point(&cal, 0, 0.3);
        assert_eq!(empty.expected_fpir, 0.0);
    }

    #[test]
    fn capacity_is_the_largest_list_within_the_miss_rate() {
        let cal = sample();
        let cap = WANTED.capacity(&cal, 0.3).expect("finite");
        assert!(WANTED.operating_point(&cal, cap, 0.3).expected_fnir <= 0.1);
        assert!(WANTED.operating_point(&cal, cap + 1, 0.3).expected_fnir > 0.1);
        let strict = ListPolicy {
            target_fpir: 1e-6,
            max_fnir: 0.001,
        };
        assert_eq!(strict.capacity(&cal, 0.3), Some(0));
    }

    #[test]
    fn policies_outside_the_range_are_refused() {
        for (fpir, fnir) in [
            (0.0, 0.1),
            (0.2, 0.1),
            (f64::NAN, 0.1),
            (1e-3, 1.0),
            (1e-3, 0.0),
        ] {
            let p = ListPolicy {
                target_fpir: fpir,
                max_fnir: fnir,
            };
            assert!(p.validate().is_err(), "{p:?}");
        }
        WANTED.validate().unwrap();
    }
}
