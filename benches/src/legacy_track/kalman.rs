//! Constant-velocity Kalman filter in ByteTrack's `(cx, cy, a, h)` box space.
//!
//! State is `[cx, cy, a, h, vcx, vcy, va, vh]` with `a = w / h`. Velocities are in
//! units per *nominal frame*; the caller passes `dt` in nominal frames so that
//! dropped or irregularly sampled frames extrapolate by the right amount while the
//! ByteTrack/DeepSORT noise weights (tuned per frame) keep their meaning.
//!
//! Computation is done in `f64`: the covariance is inverted every frame and `f32`
//! loses positive-definiteness quickly once the aspect-velocity variance is ~1e-10.

// Index loops mirror the matrix formulas they implement; iterator chains over
// several arrays at once would hide which element of which matrix is meant.
#![allow(clippy::needless_range_loop)]

use super::BBox;

/// Position noise, as a fraction of box height per frame (ByteTrack/DeepSORT value).
const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
/// Velocity noise, as a fraction of box height per frame (ByteTrack/DeepSORT value).
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;
/// Noise is proportional to height; a predicted height that collapses towards zero
/// would make the covariance singular, so the scale never goes below one pixel.
const MIN_NOISE_HEIGHT: f64 = 1.0;

const DIM: usize = 8;
const MEAS: usize = 4;

type Mat8 = [[f64; DIM]; DIM];

/// Measurement vector `(cx, cy, a, h)`; `None` for boxes the filter cannot represent.
pub(crate) fn measurement(b: &BBox) -> Option<[f64; MEAS]> {
    if !b.is_valid() {
        return None;
    }
    let (cx, cy) = b.center();
    let h = f64::from(b.h);
    Some([f64::from(cx), f64::from(cy), f64::from(b.w) / h, h])
}

/// Gaussian estimate of one track's box and its velocity.
#[derive(Clone, Debug)]
pub(crate) struct KalmanBox {
    mean: [f64; DIM],
    cov: Mat8,
}

impl KalmanBox {
    /// New state from a first measurement, with zero velocity and wide velocity
    /// uncertainty (ByteTrack's `initiate`).
    pub(crate) fn new(z: [f64; MEAS]) -> Self {
        let h = noise_height(z[3]);
        let p = 2.0 * STD_WEIGHT_POSITION * h;
        let v = 10.0 * STD_WEIGHT_VELOCITY * h;
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];
        let mut cov = [[0.0; DIM]; DIM];
        for (i, s) in std.iter().enumerate() {
            cov[i][i] = s * s;
        }
        let mut mean = [0.0; DIM];
        mean[..MEAS].copy_from_slice(&z);
        Self { mean, cov }
    }

    /// Stops height growth/shrink extrapolation; ByteTrack does this for lost tracks
    /// because an occluded box's height velocity is usually an occlusion artefact.
    pub(crate) fn freeze_height_velocity(&mut self) {
        self.mean[7] = 0.0;
    }

    /// Advances the state by `dt` nominal frames (`dt >= 0`).
    pub(crate) fn predict(&mut self, dt: f64) {
        if !(dt.is_finite() && dt > 0.0) {
            return;
        }
        let h = noise_height(self.mean[3]);
        let p = STD_WEIGHT_POSITION * h;
        let v = STD_WEIGHT_VELOCITY * h;
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];

        for i in 0..MEAS {
            self.mean[i] += dt * self.mean[i + MEAS];
        }

        // P' = F P F^T with F = [[I, dt I], [0, I]], written out instead of two dense
        // 8x8 products: row i (< 4) of F P is P[i] + dt * P[i + 4].
        let mut fp = self.cov;
        for i in 0..MEAS {
            for j in 0..DIM {
                fp[i][j] += dt * self.cov[i + MEAS][j];
            }
        }
        let mut fpf = fp;
        for row in fpf.iter_mut() {
            for j in 0..MEAS {
                row[j] += dt * row[j + MEAS];
            }
        }
        // Process noise is a random walk, so its variance grows linearly with time.
        for (i, s) in std.iter().enumerate() {
            fpf[i][i] += s * s * dt;
        }
        self.cov = fpf;
    }

    /// Corrects the state with a measurement. Returns `false` (state unchanged) if the
    /// innovation covariance is not positive definite or the result is not finite;
    /// the caller then re-initialises from the measurement rather than carry a
    /// poisoned filter.
    pub(crate) fn update(&mut self, z: [f64; MEAS]) -> bool {
        let h = noise_height(self.mean[3]);
        let p = STD_WEIGHT_POSITION * h;
        let r = [p, p, 1e-1, p];

        // H selects the first four state components, so P H^T is the left 8x4 block
        // and H P H^T the top-left 4x4 block.
        let mut s = [[0.0; MEAS]; MEAS];
        for i in 0..MEAS {
            s[i][..MEAS].copy_from_slice(&self.cov[i][..MEAS]);
            s[i][i] += r[i] * r[i];
        }
        let Some(l) = cholesky4(&s) else {
            return false;
        };

        // K = P H^T S^-1, solved row by row (S is symmetric).
        let mut k = [[0.0; MEAS]; DIM];
        for (i, k_row) in k.iter_mut().enumerate() {
            let mut pht = [0.0; MEAS];
            pht.copy_from_slice(&self.cov[i][..MEAS]);
            *k_row = cholesky4_solve(&l, pht);
        }

        let mut innovation = [0.0; MEAS];
        for (i, y) in innovation.iter_mut().enumerate() {
            *y = z[i] - self.mean[i];
        }

        let mut mean = self.mean;
        for (m, k_row) in mean.iter_mut().zip(&k) {
            *m += dot4(k_row, &innovation);
        }
        // P' = P - K S K^T = P - K (P H^T)^T, since K S = P H^T.
        let mut cov = self.cov;
        for i in 0..DIM {
            for j in 0..DIM {
                let mut pht_j = [0.0; MEAS];
                pht_j.copy_from_slice(&self.cov[j][..MEAS]);
                cov[i][j] -= dot4(&k[i], &pht_j);
            }
        }
        // Rounding makes P drift from symmetric; re-symmetrise so Cholesky keeps working.
        for i in 0..DIM {
            for j in (i + 1)..DIM {
                let avg = 0.5 * (cov[i][j] + cov[j][i]);
                cov[i][j] = avg;
                cov[j][i] = avg;
            }
        }

        let finite =
            mean.iter().all(|v| v.is_finite()) && cov.iter().flatten().all(|v| v.is_finite());
        if !finite {
            return false;
        }
        self.mean = mean;
        self.cov = cov;
        true
    }

    /// Current box estimate, or `None` when the state no longer describes a real box
    /// (e.g. extrapolated to non-positive height during a long occlusion).
    pub(crate) fn bbox(&self) -> Option<BBox> {
        let [cx, cy, a, h, ..] = self.mean;
        let w = a * h;
        let b = BBox {
            x: (cx - w / 2.0) as f32,
            y: (cy - h / 2.0) as f32,
            w: w as f32,
            h: h as f32,
        };
        b.is_valid().then_some(b)
    }
}

fn noise_height(h: f64) -> f64 {
    if h.is_finite() {
        h.max(MIN_NOISE_HEIGHT)
    } else {
        MIN_NOISE_HEIGHT
    }
}

fn dot4(a: &[f64; MEAS], b: &[f64; MEAS]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lower-triangular `L` with `L L^T = s`, or `None` if `s` is not positive definite.
fn cholesky4(s: &[[f64; MEAS]; MEAS]) -> Option<[[f64; MEAS]; MEAS]> {
    let mut l = [[0.0; MEAS]; MEAS];
    for i in 0..MEAS {
        for j in 0..=i {
            let mut sum = s[i][j];
            for k in 0..j {
                sum -= l[i][k] * l[j][k];
            }
            if i == j {
                if !(sum.is_finite() && sum > 0.0) {
                    return None;
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves `L L^T x = b` by forward then backward substitution.
fn cholesky4_solve(l: &[[f64; MEAS]; MEAS], b: [f64; MEAS]) -> [f64; MEAS] {
    let mut y = [0.0; MEAS];
    for i in 0..MEAS {
        let mut sum = b[i];
        for k in 0..i {
            sum -= l[i][k] * y[k];
        }
        y[i] = sum / l[i][i];
    }
    let mut x = [0.0; MEAS];
    for i in (0..MEAS).rev() {
        let mut sum = y[i];
        for k in (i + 1)..MEAS {
            sum -= l[k][i] * x[k];
        }
        x[i] = sum / l[i][i];
    }
    x
}
