//! A procedural scene: a wall with panels above a tiled floor in perspective, low-frequency value noise
//! and fine grain (so that the encoder has real texture to code, like on camera footage), optionally a
//! painted stripe on the counting line; plus per-frame sensor noise.

use crate::plan::Geom;
use crate::rng::{hash2, Rng};

fn unit_hash(seed: u64, x: i64, y: i64) -> f32 {
    (hash2(seed, x, y) >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [-1, 1] with lattice spacing `cell` pixels.
fn value_noise(seed: u64, x: f32, y: f32, cell: f32) -> f32 {
    let (gx, gy) = (x / cell, y / cell);
    let (ix, iy) = (gx.floor(), gy.floor());
    let (fx, fy) = (gx - ix, gy - iy);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (ix as i64, iy as i64);
    let v00 = unit_hash(seed, ix, iy);
    let v10 = unit_hash(seed, ix + 1, iy);
    let v01 = unit_hash(seed, ix, iy + 1);
    let v11 = unit_hash(seed, ix + 1, iy + 1);
    let top = v00 + (v10 - v00) * sx;
    let bot = v01 + (v11 - v01) * sx;
    (top + (bot - top) * sy) * 2.0 - 1.0
}

const PALETTES: [([f32; 3], [f32; 3], [f32; 3]); 4] = [
    // wall, floor tile A, floor tile B
    (
        [196.0, 188.0, 170.0],
        [128.0, 122.0, 112.0],
        [146.0, 140.0, 128.0],
    ),
    (
        [170.0, 180.0, 188.0],
        [110.0, 112.0, 118.0],
        [132.0, 134.0, 140.0],
    ),
    (
        [205.0, 196.0, 182.0],
        [150.0, 118.0, 92.0],
        [166.0, 134.0, 104.0],
    ),
    (
        [180.0, 186.0, 172.0],
        [96.0, 104.0, 100.0],
        [116.0, 124.0, 118.0],
    ),
];

/// Renders the static background as RGB rows of `stride` bytes.
pub(crate) fn render(
    w: usize,
    h: usize,
    stride: usize,
    seed: u64,
    geom: &Geom,
    draw_line: bool,
) -> Vec<u8> {
    let mut rng = Rng::stream(seed, 0xB6, 0);
    let (wall, tile_a, tile_b) = PALETTES[rng.below(PALETTES.len())];
    let horizon = (h as f32 * rng.range(0.22, 0.3) as f32).round();
    let panel = (w as f32 / rng.range(5.0, 8.0) as f32).max(24.0);
    let tiles_across = rng.range(7.0, 11.0) as f32;
    let nseed = rng.next_u64();
    let gseed = rng.next_u64();
    let mut out = vec![0u8; stride * h];
    let (wf, hf) = (w as f32, h as f32);
    for y in 0..h {
        let yf = y as f32 + 0.5;
        let row = &mut out[y * stride..y * stride + w * 3];
        for x in 0..w {
            let xf = x as f32 + 0.5;
            let low =
                value_noise(nseed, xf, yf, 96.0) * 0.7 + value_noise(nseed ^ 1, xf, yf, 29.0) * 0.3;
            let grain = unit_hash(gseed, x as i64, y as i64) * 2.0 - 1.0;
            let mut c;
            if yf < horizon {
                // Wall: lighter at the top, panels with dark seams, a skirting band at the floor.
                let g = 1.0 - 0.18 * (yf / horizon);
                c = wall.map(|v| v * g);
                let seam = (xf % panel).min(panel - xf % panel);
                if seam < 1.5 {
                    c = c.map(|v| v * 0.72);
                }
                if horizon - yf < (hf * 0.018).max(3.0) {
                    c = c.map(|v| v * 0.55);
                }
                let k = 9.0 * low + 4.0 * grain;
                c = c.map(|v| v + k);
            } else {
                // Floor: tiles in perspective (rows converge towards the horizon), darker grout.
                let fh = hf - horizon;
                let p = (yf - horizon) / fh;
                let c0 = 0.35;
                let z = 1.0 / (p + c0);
                let rows = 3.2;
                let tz = z * rows;
                let kx = tiles_across * (1.0 + c0) * z / wf;
                let tx = (xf - wf / 2.0) * kx;
                let (fz, fx) = (tz - tz.floor(), tx - tx.floor());
                let checker = (tz.floor() as i64 + tx.floor() as i64).rem_euclid(2) == 0;
                c = if checker { tile_a } else { tile_b };
                // About 2 px of grout on screen in both directions.
                let gx = 2.0 * kx;
                let gz = 2.0 * rows * z * z / fh;
                if fx < gx || fz < gz {
                    c = c.map(|v| v * 0.62);
                }
                let light = 0.82 + 0.25 * p;
                let k = 11.0 * low + 6.0 * grain;
                c = c.map(|v| v * light + k);
            }
            // Mild vignette.
            let dx = (xf / wf - 0.5) * 2.0;
            let dy = (yf / hf - 0.5) * 2.0;
            let vig = 1.0 - 0.12 * (dx * dx + dy * dy);
            let px = &mut row[x * 3..x * 3 + 3];
            for i in 0..3 {
                px[i] = (c[i] * vig).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    if draw_line {
        paint_line(&mut out, w, h, stride, geom);
    }
    out
}

/// A worn yellow stripe, 6 px wide, along the counting segment.
fn paint_line(out: &mut [u8], w: usize, h: usize, stride: usize, geom: &Geom) {
    let half = 3.0f64;
    for y in 0..h {
        for x in 0..w {
            let p = [x as f64 + 0.5, y as f64 + 0.5];
            let v = geom.side(p).abs();
            let u = geom.along(p);
            if v > half + 1.0 || u < 0.0 || u > geom.len {
                continue;
            }
            let cov = (half + 1.0 - v).clamp(0.0, 1.0) * 0.8;
            let px = &mut out[y * stride + x * 3..y * stride + x * 3 + 3];
            for (i, t) in [222.0f64, 188.0, 46.0].into_iter().enumerate() {
                px[i] = (px[i] as f64 * (1.0 - cov) + t * cov).round() as u8;
            }
        }
    }
}

/// Per-frame sensor noise: a few copies of the background with independent noise, one picked at random
/// for each frame, so that a frame costs one copy instead of a pass of per-pixel arithmetic.
pub(crate) struct NoisyBackgrounds {
    variants: Vec<Vec<u8>>,
    rng: Rng,
}

impl NoisyBackgrounds {
    pub(crate) fn new(bg: Vec<u8>, amplitude: u8, seed: u64) -> Self {
        let mut rng = Rng::stream(seed, 0x5E, 0);
        if amplitude == 0 {
            return Self {
                variants: vec![bg],
                rng,
            };
        }
        // Up to 16 variants within about 64 MB.
        let count = (64_000_000 / bg.len().max(1)).clamp(4, 16);
        let a = amplitude as i64;
        let variants = (0..count)
            .map(|_| {
                bg.iter()
                    .map(|&p| {
                        // Triangular distribution in [-a, a].
                        let r = rng.next_u64();
                        let x = (r & 0xFFFF) as i64 % (a + 1)
                            + ((r >> 16) & 0xFFFF) as i64 % (a + 1)
                            - a;
                        (p as i64 + x).clamp(0, 255) as u8
                    })
                    .collect()
            })
            .collect();
        Self { variants, rng }
    }

    /// The background for the next frame.
    pub(crate) fn next(&mut self) -> &[u8] {
        let i = self.rng.below(self.variants.len());
        &self.variants[i]
    }
}
