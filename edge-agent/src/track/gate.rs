//! Which detection may continue which track, and at what cost.
//!
//! ByteTrack gates on IoU with the predicted box only. That fails as soon as people move further than their
//! own box between two analysed frames: a face 64 px high walking 170 px/s moves 85 px between frames at
//! 2 fps, so consecutive boxes do not overlap at all, and a new track (whose velocity is still unknown) can
//! never be confirmed. Trackers built for large displacements gate on distance instead: DeepSORT gates on the
//! Mahalanobis distance of the Kalman prediction (chi-square 95%), C-BIoU widens the boxes by a buffer
//! proportional to their size before computing IoU, OC-SORT re-finds lost tracks by their last observation,
//! re-fits the velocity across the gap from observations and penalises candidates that contradict the
//! track's direction of motion.
//!
//! Here a pair passes the gate when either
//! * the detection overlaps the predicted box (IoU at least the stage's threshold, ByteTrack's rule, kept so
//!   that nothing that matched before stops matching at high frame rates), or
//! * its centre lies within a *motion envelope* around where the track was last seen, `from`:
//!   - the segment from `from` to the Kalman prediction (kept walking at the estimated velocity, or
//!     stopped anywhere on the way: people stop on counting lines),
//!   - the segment from `from` along the track's direction of travel, `max_speed` per second long (walked
//!     on faster, or walked on after standing still: the direction is the *cruise* velocity's, the last
//!     one the track had before it slowed down by more than half),
//!   - widened on every side by `gate_radius + s * elapsed` box heights, with `s` the larger of
//!     `speed_change` and the filter's own uncertainty about the speed (capped at `max_speed`): a track
//!     seen once, whose velocity is unknown, may have gone `max_speed` in any direction; a track with a
//!     known direction may only stray from its path by `speed_change` per second. People walking beside
//!     each other are separated across their direction of travel, where the envelope is narrow.
//!
//! The Kalman covariance itself is not used as the gate: a white-noise-acceleration model's position
//! variance grows with the cube of the gap, which after two seconds admits half the picture, and it does not
//! model stopping or walking on.
//!
//! Sizes must agree too (within `max_size_ratio`), so a near person's box is not continued by a far one's.
//! The cost of a pair is `(1 - IoU) + d_envelope + d_prediction / 2`, each distance as a fraction of the
//! envelope's radius and capped at 1: overlap decides among close candidates as in ByteTrack, and when
//! nothing overlaps, the candidate inside the envelope nearest to the prediction wins. Costs lie in
//! `[0, 2.5]`.

use super::kalman::KalmanBox;
use super::BBox;

/// Largest cost of an admissible pair.
pub(crate) const MAX_COST: f64 = 2.5;

/// How far the motion envelope reaches, box heights and box heights per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GateParams {
    pub radius: f64,
    pub speed_change: f64,
    pub max_speed: f64,
    pub max_size_ratio: f64,
}

/// A track's predicted box and motion envelope for the current frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gate {
    pred: BBox,
    from: (f64, f64),
    /// The Kalman prediction's centre.
    to: (f64, f64),
    /// The far end of the walk-on segment.
    ahead: (f64, f64),
    radius_px: f64,
    max_size_ratio: f64,
}

impl Gate {
    /// The gate of a track whose filter `kf` has been predicted to now, last updated to `at_last` at a time
    /// `elapsed` seconds ago, with cruise velocity `cruise` (pixels per second). `None` when the prediction
    /// is not a usable box.
    pub(crate) fn new(
        kf: &KalmanBox,
        at_last: &KalmanBox,
        cruise: (f64, f64),
        elapsed: f64,
        p: &GateParams,
    ) -> Option<Gate> {
        let pred = kf.bbox()?;
        let h = f64::from(pred.h);
        let elapsed = elapsed.max(0.0);
        let speed_uncertainty = (at_last.speed_std() / h).min(p.max_speed);
        let spread = p.speed_change.max(speed_uncertainty);
        let radius_px = h * (p.radius + spread * elapsed);
        if !(radius_px.is_finite() && radius_px > 0.0) {
            return None;
        }
        let from = at_last.centre();
        let norm = cruise.0.hypot(cruise.1);
        let reach = (p.max_speed * h).max(norm) * elapsed;
        let ahead = if norm > 0.0 && norm.is_finite() {
            (
                from.0 + cruise.0 / norm * reach,
                from.1 + cruise.1 / norm * reach,
            )
        } else {
            from
        };
        Some(Gate {
            pred,
            from,
            to: kf.centre(),
            ahead,
            radius_px,
            max_size_ratio: p.max_size_ratio,
        })
    }

    /// The predicted box.
    #[cfg(test)]
    pub(crate) fn predicted(&self) -> BBox {
        self.pred
    }

    /// Cost of continuing the track with `det`, or `None` if the pair is outside the gate.
    pub(crate) fn cost(&self, det: &BBox, min_iou: f32) -> Option<f64> {
        let iou = self.pred.iou(det);
        let by_overlap = iou > 0.0 && iou >= min_iou;
        let (cx, cy) = det.center();
        let c = (f64::from(cx), f64::from(cy));
        let d = segment_distance(c, self.from, self.to)
            .min(segment_distance(c, self.from, self.ahead))
            / self.radius_px;

        let d_pred = (c.0 - self.to.0).hypot(c.1 - self.to.1) / self.radius_px;
        let ratio = f64::from(det.h) / f64::from(self.pred.h);
        let same_size =
            ratio.is_finite() && ratio <= self.max_size_ratio && ratio * self.max_size_ratio >= 1.0;
        let by_distance = same_size && d <= 1.0;
        if !(by_overlap || by_distance) || !d.is_finite() || !d_pred.is_finite() {
            return None;
        }
        Some((1.0 - f64::from(iou)) + d.min(1.0) + 0.5 * d_pred.min(1.0))
    }
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
    (p.0 - qx).hypot(p.1 - qy)
}

#[cfg(test)]
mod tests {
    use super::super::kalman::{measurement, MotionNoise};
    use super::*;

    const NOISE: MotionNoise = MotionNoise {
        new_speed_std: 4.0,
        accel_std: 2.0,
    };
    const PARAMS: GateParams = GateParams {
        radius: 0.3,
        speed_change: 1.5,
        max_speed: 4.0,
        max_size_ratio: 2.0,
    };

    fn face(cx: f32, cy: f32) -> BBox {
        BBox {
            x: cx - 30.0,
            y: cy - 40.0,
            w: 60.0,
            h: 80.0,
        }
    }

    fn filter_walking_down(fps: f64, speed: f64) -> (KalmanBox, KalmanBox) {
        let noise = NOISE;
        let dt = 1.0 / fps;
        let mut kf = KalmanBox::new(measurement(&face(300.0, 100.0)).unwrap(), noise);
        for i in 1..=8 {
            kf.predict(dt);
            let y = 100.0 + speed * dt * i as f64;
            assert!(kf.update(measurement(&face(300.0, y as f32)).unwrap()));
        }
        let last = kf.clone();
        (kf, last)
    }

    #[test]
    fn segment_distance_is_euclidean_to_the_nearest_point() {
        assert_eq!(segment_distance((0.0, 5.0), (0.0, 0.0), (0.0, 10.0)), 0.0);
        assert_eq!(segment_distance((3.0, 5.0), (0.0, 0.0), (0.0, 10.0)), 3.0);
        assert_eq!(segment_distance((0.0, 14.0), (0.0, 0.0), (0.0, 10.0)), 4.0);
        assert_eq!(segment_distance((3.0, 4.0), (0.0, 0.0), (0.0, 0.0)), 5.0);
    }

    #[test]
    fn large_steps_along_the_path_pass_and_neighbours_do_not() {
        // 2 fps, 170 px/s: 85 px between frames with an 80 px box, so no overlap with the last box.
        let (mut kf, last) = filter_walking_down(2.0, 170.0);
        kf.predict(0.5);
        let g = Gate::new(&kf, &last, kf.velocity(), 0.5, &PARAMS).unwrap();
        let (_, y) = last.centre();
        let ahead = face(300.0, (y + 85.0) as f32);
        assert!(g.cost(&ahead, 0.2).is_some(), "walked on");
        let stopped = face(300.0, y as f32);
        assert!(g.cost(&stopped, 0.2).is_some(), "stopped where last seen");
        // Someone walking beside them, two face heights to the side.
        let neighbour = face(300.0 + 160.0, (y + 85.0) as f32);
        assert!(g.cost(&neighbour, 0.2).is_none());
        // Turned back: not this track.
        let back = face(300.0, (y - 120.0) as f32);
        assert!(g.cost(&back, 0.2).is_none());
        // Twice as tall (someone much nearer the camera) on the path: refused.
        let big = BBox {
            x: 270.0,
            y: (y + 85.0 - 90.0) as f32,
            w: 130.0,
            h: 180.0,
        };
        assert!(g.cost(&big, 0.3).is_none());
        assert!(g.cost(&ahead, 0.2) < g.cost(&face(330.0, (y + 85.0) as f32), 0.2));
    }

    #[test]
    fn a_stopped_track_may_walk_on_in_its_direction_of_travel() {
        // Stood still long enough for the filter's velocity to fade, then missed for a second while
        // walking on at 170 px/s, the way it came.
        let z = measurement(&face(300.0, 300.0)).unwrap();
        let mut last = KalmanBox::new(z, NOISE);
        for _ in 0..20 {
            last.predict(0.5);
            assert!(last.update(z));
        }
        let mut kf = last.clone();
        kf.predict(1.0);
        let walked_on = face(300.0, 470.0);
        let g = Gate::new(&kf, &last, (0.0, 0.0), 1.0, &PARAMS).unwrap();
        assert!(
            g.cost(&walked_on, 0.2).is_none(),
            "no direction of travel known"
        );
        let g = Gate::new(&kf, &last, (0.0, 170.0), 1.0, &PARAMS).unwrap();
        assert!(g.cost(&walked_on, 0.2).is_some());
        assert!(g.cost(&face(300.0, 130.0), 0.2).is_none(), "not backwards");
    }

    #[test]
    fn at_high_frame_rates_the_gate_is_tight() {
        let (mut kf, last) = filter_walking_down(25.0, 170.0);
        kf.predict(0.04);
        let g = Gate::new(&kf, &last, kf.velocity(), 0.04, &PARAMS).unwrap();
        let (_, y) = kf.centre();
        assert!(g.cost(&face(300.0, y as f32), 0.2).is_some());
        // Half a face height beside the prediction: only IoU could let it in, and at 0.2 it does not.
        let aside = face(300.0 + 60.0, y as f32);
        assert!(g.cost(&aside, 0.2).is_none());
    }

    #[test]
    fn a_track_seen_once_may_have_gone_any_way_up_to_max_speed() {
        let z = measurement(&face(300.0, 300.0)).unwrap();
        let last = KalmanBox::new(z, NOISE);
        let mut kf = last.clone();
        kf.predict(0.5);
        let g = Gate::new(&kf, &last, (0.0, 0.0), 0.5, &PARAMS).unwrap();
        // 4 box heights per second for half a second, plus the base radius: 2.3 heights = 184 px.
        assert!(g.cost(&face(300.0, 300.0 + 180.0), 0.3).is_some());
        assert!(g.cost(&face(300.0 - 180.0, 300.0), 0.3).is_some());
        assert!(g.cost(&face(300.0, 300.0 + 190.0), 0.3).is_none());
        assert_eq!(g.predicted(), face(300.0, 300.0));
    }
}
