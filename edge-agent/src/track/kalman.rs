//! Constant-velocity Kalman filter of a box in continuous time.
//!
//! The box is `(cx, cy, a, h)` with `a = w / h` (ByteTrack's measurement space), each with a rate of change.
//! Time is in **seconds**, not frames: ByteTrack and DeepSORT tune their noise per frame at 30 fps, which at
//! 2 fps makes the filter fifteen times too stiff (a new track's velocity prior of h/16 per frame is a tenth
//! of a walker's real motion between two frames, so the second sighting is never associated). Here the
//! noise is a white-noise acceleration with a spectral density per second, scaled by the box height as in
//! ByteTrack, so the same settings hold at 25 fps and at 2 fps and across gaps.
//!
//! The four axes never couple: the transition, process noise, measurement and measurement noise are all
//! block-diagonal per axis, and so is the initial covariance, hence the covariance stays block-diagonal and
//! the 8-state filter is exactly four independent 2-state filters. Written that way it has no matrix
//! inversion to lose positive-definiteness in.

use super::BBox;

/// Measurement noise of the centre and height, as a fraction of the box height (ByteTrack/DeepSORT value).
const MEAS_STD_POSITION: f64 = 1.0 / 20.0;
/// Measurement noise of the aspect ratio (ByteTrack/DeepSORT value; aspect ratios of detections of walking
/// people flicker, so the filter averages them).
const MEAS_STD_ASPECT: f64 = 0.1;
/// A new track's position uncertainty, in measurement standard deviations (ByteTrack: 2).
const INIT_POSITION_STDS: f64 = 2.0;
/// A new track's height growth rate uncertainty, box heights per second (someone walking towards the camera
/// at 1.5 m/s from 4 m away grows by about a third of their height per second).
const INIT_SIZE_RATE_STD: f64 = 0.5;
/// White-noise "acceleration" of the height, box heights per second squared.
const SIZE_ACCEL_STD: f64 = 0.5;
/// The aspect ratio is nearly constant: its drift per square root of a second.
const ASPECT_DRIFT_STD: f64 = 0.02;
/// Noise is proportional to height; a predicted height that collapses towards zero would make the covariance
/// singular, so the scale never goes below one pixel.
const MIN_NOISE_HEIGHT: f64 = 1.0;

/// Measurement vector `(cx, cy, a, h)`; `None` for boxes the filter cannot represent.
pub(crate) fn measurement(b: &BBox) -> Option<[f64; 4]> {
    if !b.is_valid() {
        return None;
    }
    let (cx, cy) = b.center();
    let h = f64::from(b.h);
    Some([f64::from(cx), f64::from(cy), f64::from(b.w) / h, h])
}

/// How people move, in box heights (so one setting fits faces and whole people at any distance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MotionNoise {
    /// Standard deviation of a new track's speed, box heights per second: the velocity is unknown until the
    /// second sighting, and may be anything up to a brisk walk.
    pub new_speed_std: f64,
    /// Spectral density (square root) of the white-noise acceleration of the centre, box heights per second
    /// squared: how quickly a walker changes speed or direction.
    pub accel_std: f64,
}

/// One axis: a value, its rate, and their 2x2 covariance.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Axis {
    x: f64,
    v: f64,
    /// `[[var x, cov], [cov, var v]]`.
    p: [[f64; 2]; 2],
}

impl Axis {
    fn new(x: f64, x_std: f64, v_std: f64) -> Self {
        Self {
            x,
            v: 0.0,
            p: [[x_std * x_std, 0.0], [0.0, v_std * v_std]],
        }
    }

    /// `x += v dt`; `P = F P F^T + Q` with the white-noise-acceleration `Q` of spectral density `q`.
    fn predict(&mut self, dt: f64, q: f64) {
        let [[p00, p01], [_, p11]] = self.p;
        self.x += self.v * dt;
        let n00 = p00 + 2.0 * dt * p01 + dt * dt * p11 + q * dt * dt * dt / 3.0;
        let n01 = p01 + dt * p11 + q * dt * dt / 2.0;
        let n11 = p11 + q * dt;
        self.p = [[n00, n01], [n01, n11]];
    }

    /// Corrects with a measurement `z` of variance `r`; `false` (state unchanged) if the result is not finite.
    fn update(&mut self, z: f64, r: f64) -> bool {
        let [[p00, p01], [_, p11]] = self.p;
        let s = p00 + r;
        if !(s.is_finite() && s > 0.0) {
            return false;
        }
        let (k0, k1) = (p00 / s, p01 / s);
        let y = z - self.x;
        let x = self.x + k0 * y;
        let v = self.v + k1 * y;
        let n00 = (1.0 - k0) * p00;
        let n01 = (1.0 - k0) * p01;
        // Joseph-free form; guard against rounding taking the variance below zero.
        let n11 = (p11 - k1 * p01).max(0.0);
        let out = Self {
            x,
            v,
            p: [[n00.max(0.0), n01], [n01, n11]],
        };
        let finite = [out.x, out.v, n00, n01, n11].iter().all(|f| f.is_finite());
        if finite {
            *self = out;
        }
        finite
    }
}

const CX: usize = 0;
const CY: usize = 1;
const A: usize = 2;
const H: usize = 3;

/// Gaussian estimate of one track's box and its rate of change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KalmanBox {
    axes: [Axis; 4],
    noise: MotionNoise,
}

impl KalmanBox {
    /// New state from a first measurement: the box as measured, zero velocity with a wide uncertainty.
    pub(crate) fn new(z: [f64; 4], noise: MotionNoise) -> Self {
        let h = noise_height(z[H]);
        let p = INIT_POSITION_STDS * MEAS_STD_POSITION * h;
        let v = noise.new_speed_std * h;
        Self {
            axes: [
                Axis::new(z[CX], p, v),
                Axis::new(z[CY], p, v),
                Axis::new(z[A], INIT_POSITION_STDS * MEAS_STD_ASPECT, ASPECT_DRIFT_STD),
                Axis::new(z[H], p, INIT_SIZE_RATE_STD * h),
            ],
            noise,
        }
    }

    /// Stops height growth/shrink extrapolation; ByteTrack does this for lost tracks because an occluded
    /// box's height velocity is usually an occlusion artefact.
    pub(crate) fn freeze_height_velocity(&mut self) {
        self.axes[H].v = 0.0;
    }

    /// Advances the state by `dt` seconds (`dt >= 0`; anything else is a no-op).
    pub(crate) fn predict(&mut self, dt: f64) {
        if !(dt.is_finite() && dt > 0.0) {
            return;
        }
        let h = noise_height(self.axes[H].x);
        let q_pos = (self.noise.accel_std * h).powi(2);
        self.axes[CX].predict(dt, q_pos);
        self.axes[CY].predict(dt, q_pos);
        // The aspect ratio drifts as a random walk of its value: no rate noise, value noise grows with time.
        let a = &mut self.axes[A];
        a.predict(dt, 0.0);
        a.p[0][0] += ASPECT_DRIFT_STD * ASPECT_DRIFT_STD * dt;
        self.axes[H].predict(dt, (SIZE_ACCEL_STD * h).powi(2));
    }

    /// Corrects the state with a measurement. Returns `false` (state unchanged) if the result is not finite;
    /// the caller then re-initialises from the measurement rather than carry a poisoned filter.
    pub(crate) fn update(&mut self, z: [f64; 4]) -> bool {
        let h = noise_height(self.axes[H].x);
        let rp = (MEAS_STD_POSITION * h).powi(2);
        let r = [rp, rp, MEAS_STD_ASPECT * MEAS_STD_ASPECT, rp];
        let mut next = self.axes;
        for (axis, (zi, ri)) in next.iter_mut().zip(z.iter().zip(r)) {
            if !axis.update(*zi, ri) {
                return false;
            }
        }
        self.axes = next;
        true
    }

    /// Current box estimate, or `None` when the state no longer describes a real box (e.g. extrapolated to
    /// non-positive height during a long occlusion).
    pub(crate) fn bbox(&self) -> Option<BBox> {
        let (cx, cy, a, h) = (
            self.axes[CX].x,
            self.axes[CY].x,
            self.axes[A].x,
            self.axes[H].x,
        );
        let w = a * h;
        let b = BBox {
            x: (cx - w / 2.0) as f32,
            y: (cy - h / 2.0) as f32,
            w: w as f32,
            h: h as f32,
        };
        b.is_valid().then_some(b)
    }

    /// Estimated centre velocity, pixels per second.
    pub(crate) fn velocity(&self) -> (f64, f64) {
        (self.axes[CX].v, self.axes[CY].v)
    }

    /// Standard deviation of the centre speed estimate (the larger axis), pixels per second: large until a
    /// track has been seen twice, small once its motion is known.
    pub(crate) fn speed_std(&self) -> f64 {
        self.axes[CX].p[1][1].max(self.axes[CY].p[1][1]).sqrt()
    }

    /// Estimated centre.
    pub(crate) fn centre(&self) -> (f64, f64) {
        (self.axes[CX].x, self.axes[CY].x)
    }
}

fn noise_height(h: f64) -> f64 {
    if h.is_finite() {
        h.max(MIN_NOISE_HEIGHT)
    } else {
        MIN_NOISE_HEIGHT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOISE: MotionNoise = MotionNoise {
        new_speed_std: 4.0,
        accel_std: 2.0,
    };

    fn bb(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    fn z(x: f32, y: f32) -> [f64; 4] {
        measurement(&bb(x, y, 40.0, 100.0)).expect("valid box")
    }

    #[test]
    fn learns_constant_velocity_at_any_frame_rate() {
        // 150 px/s to the right, 60 px/s down, sampled at 25, 5 and 2 frames per second.
        for fps in [25.0, 5.0, 2.0] {
            let dt = 1.0 / fps;
            let mut kf = KalmanBox::new(z(0.0, 0.0), NOISE);
            let n = (4.0 * fps) as usize;
            for i in 1..=n {
                kf.predict(dt);
                let t = i as f64 * dt;
                assert!(kf.update(z((150.0 * t) as f32, (60.0 * t) as f32)));
            }
            let (vx, vy) = kf.velocity();
            assert!((vx - 150.0).abs() < 3.0, "{fps} fps: vx = {vx}");
            assert!((vy - 60.0).abs() < 3.0, "{fps} fps: vy = {vy}");
            // Half a second ahead lands where the object will be.
            kf.predict(0.5);
            let b = kf.bbox().expect("valid prediction");
            let want = 150.0 * (4.0 + 0.5);
            assert!((b.x - want as f32).abs() < 3.0, "{fps} fps: x = {}", b.x);
        }
    }

    #[test]
    fn second_sighting_gives_the_velocity_even_at_two_fps() {
        // A walker 85 px away half a second later: the filter must take nearly all of that as velocity,
        // not a tenth of it as a per-frame-tuned filter would.
        let mut kf = KalmanBox::new(z(0.0, 0.0), NOISE);
        kf.predict(0.5);
        assert!(kf.update(z(0.0, 85.0)));
        let (_, vy) = kf.velocity();
        assert!(vy > 0.8 * 170.0, "vy = {vy}");
    }

    #[test]
    fn zero_or_invalid_dt_is_a_no_op() {
        let mut kf = KalmanBox::new(z(10.0, 10.0), NOISE);
        let before = kf.clone();
        kf.predict(0.0);
        kf.predict(f64::NAN);
        kf.predict(-1.0);
        assert_eq!(before, kf);
    }

    #[test]
    fn invalid_boxes_have_no_measurement() {
        assert!(measurement(&bb(0.0, 0.0, 0.0, 10.0)).is_none());
        assert!(measurement(&bb(0.0, 0.0, 10.0, -1.0)).is_none());
        assert!(measurement(&bb(f32::NAN, 0.0, 10.0, 10.0)).is_none());
        assert!(measurement(&bb(0.0, 0.0, f32::INFINITY, 10.0)).is_none());
    }

    #[test]
    fn non_finite_measurement_leaves_the_state_alone() {
        let mut kf = KalmanBox::new(z(10.0, 10.0), NOISE);
        kf.predict(0.1);
        let before = kf.clone();
        assert!(!kf.update([f64::NAN, 0.0, 0.4, 100.0]));
        assert_eq!(before, kf);
    }

    #[test]
    fn covariance_stays_a_covariance() {
        let mut kf = KalmanBox::new(z(0.0, 0.0), NOISE);
        for i in 0..2000 {
            kf.predict(if i % 7 == 0 { 1.3 } else { 0.04 });
            let jitter = if i % 2 == 0 { 3.0 } else { -3.0 };
            assert!(kf.update(z(jitter, 2.0 * i as f32)));
        }
        for a in &kf.axes {
            let [[p00, p01], [p10, p11]] = a.p;
            assert!(
                p00 > 0.0 && p11 >= 0.0 && p00 * p11 >= p01 * p10 - 1e-9,
                "{a:?}"
            );
        }
    }
}
