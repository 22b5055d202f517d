//! Boxes, non-maximum suppression and resizing shared by the detectors.

use crate::BgrImage;

/// An axis-aligned box, top-left corner plus size, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Rect {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Intersection over union in `[0, 1]`; `0` if either box is not [valid](Self::is_valid).
    pub fn iou(&self, o: &Rect) -> f32 {
        if !self.is_valid() || !o.is_valid() {
            return 0.0;
        }
        // f64 so that large (but finite) inputs cannot overflow areas to infinity.
        let (ax, ay, aw, ah) = (self.x as f64, self.y as f64, self.w as f64, self.h as f64);
        let (bx, by, bw, bh) = (o.x as f64, o.y as f64, o.w as f64, o.h as f64);
        let iw = (ax + aw).min(bx + bw) - ax.max(bx);
        let ih = (ay + ah).min(by + bh) - ay.max(by);
        if iw <= 0.0 || ih <= 0.0 {
            return 0.0;
        }
        let inter = iw * ih;
        let union = aw * ah + bw * bh - inter;
        if union > 0.0 {
            (inter / union).clamp(0.0, 1.0) as f32
        } else {
            0.0
        }
    }

    /// All fields finite and a strictly positive size.
    pub fn is_valid(&self) -> bool {
        [self.x, self.y, self.w, self.h]
            .iter()
            .all(|v| v.is_finite())
            && self.w > 0.0
            && self.h > 0.0
    }

    /// Middle of the bottom edge (image y grows downward): the feet of a standing person.
    pub fn bottom_center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h)
    }

    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// True when the point lies inside the box.
    pub fn contains(&self, p: (f32, f32)) -> bool {
        p.0 >= self.x && p.0 <= self.x + self.w && p.1 >= self.y && p.1 <= self.y + self.h
    }
}

/// Greedy NMS as OpenCV's `NMSBoxes` does it: candidates sorted by score (stable), a box is kept unless it
/// overlaps an already kept one by more than `iou`. Returns kept indices, best first.
pub fn nms(boxes: &[Rect], scores: &[f32], iou: f32, top_k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .partial_cmp(&scores[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.iter().all(|&k| boxes[k].iou(&boxes[i]) <= iou) {
            keep.push(i);
            if top_k > 0 && keep.len() >= top_k {
                break;
            }
        }
    }
    keep
}

/// Bilinear resize with OpenCV's `INTER_LINEAR` sampling (pixel centres aligned, edges clamped) and its
/// arithmetic for 8-bit images (11-bit fixed-point weights).
pub fn resize_bilinear(src: &BgrImage, w: u32, h: u32) -> BgrImage {
    if src.width == w && src.height == h {
        return src.clone();
    }
    let row_len = w as usize * 3;
    let mut out = vec![0u8; row_len * h as usize];
    resize_rows(src, w, h, |y, row| {
        out[y * row_len..(y + 1) * row_len].copy_from_slice(row);
    });
    BgrImage {
        width: w,
        height: h,
        data: out,
    }
}

/// The bilinear resize of [`resize_bilinear`], handing each output row (`y`, BGR bytes) to `put`, so a
/// detector can write it straight into its input tensor without an intermediate image.
///
/// Each output row is blended vertically from its two source rows first (contiguous, vectorised), then
/// sampled horizontally. A float version with a rounding per channel took 15 ms for a 720p frame to
/// 960x540, twice the detector's own inference time (`perf`, issue 14).
pub fn resize_rows(src: &BgrImage, w: u32, h: u32, mut put: impl FnMut(usize, &[u8])) {
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (w as usize, h as usize);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 || src.data.len() < sw * sh * 3 {
        return;
    }
    let xs: Vec<(usize, usize, i32, i32)> = taps(sw, dw)
        .into_iter()
        .map(|(x0, f)| (x0 * 3, (x0 + 1).min(sw - 1) * 3, ONE - f, f))
        .collect();
    let ys = taps(sh, dh);
    let mut blended = vec![0i32; sw * 3];
    let mut row = vec![0u8; dw * 3];
    for (y, &(y0, fy)) in ys.iter().enumerate() {
        let y1 = (y0 + 1).min(sh - 1);
        let r0 = &src.data[y0 * sw * 3..(y0 + 1) * sw * 3];
        let r1 = &src.data[y1 * sw * 3..(y1 + 1) * sw * 3];
        let (b0, b1) = (ONE - fy, fy);
        for ((o, &a), &b) in blended.iter_mut().zip(r0).zip(r1) {
            *o = i32::from(a) * b0 + i32::from(b) * b1;
        }
        for (px, &(o0, o1, w0, w1)) in row.chunks_exact_mut(3).zip(&xs) {
            let (a, b) = (&blended[o0..o0 + 3], &blended[o1..o1 + 3]);
            for c in 0..3 {
                // Both terms < 256 * ONE * ONE = 2^30 and w0 + w1 = ONE, so the sum is below 2^31 and the
                // result within 0..=255.
                px[c] = ((a[c] * w0 + b[c] * w1 + HALF2) >> (2 * BITS)) as u8;
            }
        }
        put(y, &row);
    }
}

/// Where [`resize_into_planes`] writes: three planes (B, G, R) of `stride` columns, the image placed at
/// (`left`, `top`), each value stored as `(v - mean[c]) * scale[c]`.
pub struct Planes<'a> {
    pub planes: [&'a mut [f32]; 3],
    pub stride: usize,
    pub left: usize,
    pub top: usize,
    pub mean: [f32; 3],
    pub scale: [f32; 3],
}

/// The bilinear resize of [`resize_bilinear`] (same values), written straight into a detector's planar float
/// input: no intermediate image and one pass over the output.
///
/// Each output row is blended vertically from its two source rows (contiguous, vectorised), then sampled
/// horizontally into the three planes. Compiled twice and picked at run time: with AVX2 where the CPU has it
/// (8-lane 32-bit multiplies; the x86-64 baseline has none), otherwise the portable build.
pub fn resize_into_planes(src: &BgrImage, w: u32, h: u32, out: &mut Planes<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { avx2::resize_into_planes(src, w, h, out) };
        return;
    }
    resize_into_planes_portable(src, w, h, out);
}

fn resize_into_planes_portable(src: &BgrImage, w: u32, h: u32, out: &mut Planes<'_>) {
    resize_into_planes_with(src, w, h, out, |row, cols, mean, scale, dst| {
        sample_row(
            row,
            &cols.offsets,
            &cols.left,
            &cols.right,
            mean,
            scale,
            dst,
        )
    });
}

/// Per output column: its left source pixel and the two weights. At the right edge the right weight is 0 (see
/// `taps`) and the right value is read from the zero padding after the row.
struct Columns {
    offsets: Vec<i32>,
    left: Vec<i32>,
    right: Vec<i32>,
}

/// Zero values after each blended row: the right edge's second tap, and the AVX2 build's 16-value loads.
const ROW_PADDING: usize = 16;

/// The resize around `sample`, which writes one output row of one channel from that channel's blended row:
/// `dst[x] = (row sampled at column x, rounded, - mean) * scale`. Inlined into each caller so that the AVX2 build
/// vectorises the vertical blend too.
#[inline(always)]
fn resize_into_planes_with(
    src: &BgrImage,
    w: u32,
    h: u32,
    out: &mut Planes<'_>,
    sample: impl Fn(&[i32], &Columns, f32, f32, &mut [f32]),
) {
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (w as usize, h as usize);
    let need = (out.top + dh.saturating_sub(1)) * out.stride + out.left + dw;
    if sw == 0
        || sh == 0
        || dw == 0
        || dh == 0
        || src.data.len() < sw * sh * 3
        || out.left + dw > out.stride
        || out.planes.iter().any(|p| p.len() < need)
        || sw + ROW_PADDING > i32::MAX as usize
    {
        return;
    }
    let taps_x = taps(sw, dw);
    let cols = Columns {
        offsets: taps_x.iter().map(|&(x0, _)| x0 as i32).collect(),
        left: taps_x.iter().map(|&(_, f)| ONE - f).collect(),
        right: taps_x.iter().map(|&(_, f)| f).collect(),
    };
    let ys = taps(sh, dh);
    let row_len = sw * 3;
    // One blended row per channel: the horizontal pass then reads each channel contiguously.
    let mut blended = [(); 3].map(|_| vec![0i32; sw + ROW_PADDING]);
    for (y, &(y0, fy)) in ys.iter().enumerate() {
        let y1 = (y0 + 1).min(sh - 1);
        let r0 = &src.data[y0 * row_len..(y0 + 1) * row_len];
        let r1 = &src.data[y1 * row_len..(y1 + 1) * row_len];
        let (b0, b1) = (ONE - fy, fy);
        let [bb, bg, br] = &mut blended;
        let rows = bb[..sw].iter_mut().zip(&mut bg[..sw]).zip(&mut br[..sw]);
        for (((b, g), r), (p0, p1)) in rows.zip(r0.chunks_exact(3).zip(r1.chunks_exact(3))) {
            *b = i32::from(p0[0]) * b0 + i32::from(p1[0]) * b1;
            *g = i32::from(p0[1]) * b0 + i32::from(p1[1]) * b1;
            *r = i32::from(p0[2]) * b0 + i32::from(p1[2]) * b1;
        }
        let o = (y + out.top) * out.stride + out.left;
        for (c, plane) in out.planes.iter_mut().enumerate() {
            sample(
                &blended[c],
                &cols,
                out.mean[c],
                out.scale[c],
                &mut plane[o..o + dw],
            );
        }
    }
}

fn sample_row(
    row: &[i32],
    offsets: &[i32],
    left: &[i32],
    right: &[i32],
    mean: f32,
    scale: f32,
    dst: &mut [f32],
) {
    let taps = offsets.iter().zip(left).zip(right);
    for (d, ((&o, &w0), &w1)) in dst.iter_mut().zip(taps) {
        let i = o as usize;
        // As in `resize_rows`: below 2^31, and within 0..=255 after the shift.
        let v = (row[i] * w0 + row[i + 1] * w1 + HALF2) >> (2 * BITS);
        *d = (v as f32 - mean) * scale;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{resize_into_planes_with, BgrImage, Columns, Planes, BITS, HALF2, ROW_PADDING};

    /// [`super::resize_into_planes`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn resize_into_planes(src: &BgrImage, w: u32, h: u32, out: &mut Planes<'_>) {
        resize_into_planes_with(src, w, h, out, |row, cols, mean, scale, dst| {
            // SAFETY: AVX2 is there (this function's contract); rows and offsets come from
            // `resize_into_planes_with`, as `sample_row` requires.
            unsafe { sample_row(row, cols, mean, scale, dst) }
        });
    }

    /// [`super::sample_row`] eight columns at a time. The sixteen values from the block's first left pixel are
    /// loaded and each column's two are picked by lane permutes, which covers every downscale down to one half
    /// (eight columns then span at most fifteen pixels); steeper blocks gather their values instead.
    ///
    /// # Safety
    /// The CPU must have AVX2. Every offset must index a pixel of `row`, and `row` must carry `ROW_PADDING` values
    /// after its pixels, which `resize_into_planes_with` guarantees.
    #[target_feature(enable = "avx2")]
    unsafe fn sample_row(row: &[i32], cols: &Columns, mean: f32, scale: f32, dst: &mut [f32]) {
        let n = dst.len().min(cols.offsets.len());
        let lanes = n / 8 * 8;
        let (half, vmean, vscale) = (
            _mm256_set1_epi32(HALF2),
            _mm256_set1_ps(mean),
            _mm256_set1_ps(scale),
        );
        let (one, seven) = (_mm256_set1_epi32(1), _mm256_set1_epi32(7));
        let pixels = row.len() - ROW_PADDING;
        let mut x = 0;
        while x < lanes {
            let idx = _mm256_loadu_si256(cols.offsets.as_ptr().add(x).cast());
            let base = cols.offsets[x] as usize;
            let span = cols.offsets[x + 7] as usize + 1 - base;
            let (a, b) = if span < 16 && base + 16 <= pixels + ROW_PADDING {
                let lo = _mm256_loadu_si256(row.as_ptr().add(base).cast());
                let hi = _mm256_loadu_si256(row.as_ptr().add(base + 8).cast());
                let rel = _mm256_sub_epi32(idx, _mm256_set1_epi32(base as i32));
                let pick = |r: __m256i| {
                    // Lanes whose index is past 7 come from `hi` (the permute uses the low three bits).
                    let from_hi = _mm256_cmpgt_epi32(r, seven);
                    _mm256_blendv_epi8(
                        _mm256_permutevar8x32_epi32(lo, r),
                        _mm256_permutevar8x32_epi32(hi, r),
                        from_hi,
                    )
                };
                (pick(rel), pick(_mm256_add_epi32(rel, one)))
            } else {
                (
                    _mm256_i32gather_epi32::<4>(row.as_ptr(), idx),
                    _mm256_i32gather_epi32::<4>(row.as_ptr().add(1), idx),
                )
            };
            let w0 = _mm256_loadu_si256(cols.left.as_ptr().add(x).cast());
            let w1 = _mm256_loadu_si256(cols.right.as_ptr().add(x).cast());
            let sum = _mm256_add_epi32(
                _mm256_add_epi32(_mm256_mullo_epi32(a, w0), _mm256_mullo_epi32(b, w1)),
                half,
            );
            let v = _mm256_cvtepi32_ps(_mm256_srai_epi32::<{ 2 * BITS as i32 }>(sum));
            let v = _mm256_mul_ps(_mm256_sub_ps(v, vmean), vscale);
            _mm256_storeu_ps(dst.as_mut_ptr().add(x), v);
            x += 8;
        }
        super::sample_row(
            row,
            &cols.offsets[lanes..n],
            &cols.left[lanes..n],
            &cols.right[lanes..n],
            mean,
            scale,
            &mut dst[lanes..n],
        );
    }
}

/// Fixed-point precision of the interpolation weights (OpenCV's `INTER_RESIZE_COEF_BITS`).
const BITS: u32 = 11;
const ONE: i32 = 1 << BITS;
const HALF2: i32 = 1 << (2 * BITS - 1);

/// For each output index, the first source index and the weight of the next one (in `0..=ONE`).
fn taps(src: usize, dst: usize) -> Vec<(usize, i32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let f = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (f.floor() as usize).min(src - 1);
            let frac = if i0 + 1 < src { f - i0 as f64 } else { 0.0 };
            (i0, (frac * f64::from(ONE)).round() as i32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_and_disjoint_boxes() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        let b = Rect { x: 20.0, ..a };
        assert_eq!(a.iou(&b), 0.0);
        let c = Rect { x: 5.0, ..a };
        assert!((a.iou(&c) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn nms_keeps_best_of_overlapping() {
        let a = Rect {
            x: 0.0,
            y: 0.0,
            w: 10.0,
            h: 10.0,
        };
        let b = Rect { x: 1.0, ..a };
        let c = Rect { x: 50.0, ..a };
        let keep = nms(&[a, b, c], &[0.8, 0.9, 0.5], 0.3, 0);
        assert_eq!(keep, vec![1, 2]);
    }

    /// The textbook float formula, per output pixel: what the fixed-point version must reproduce.
    fn reference(src: &BgrImage, w: u32, h: u32) -> Vec<u8> {
        let (sw, sh) = (src.width as usize, src.height as usize);
        let (sx, sy) = (sw as f64 / w as f64, sh as f64 / h as f64);
        let mut out = Vec::new();
        for y in 0..h as usize {
            let fy = ((y as f64 + 0.5) * sy - 0.5).max(0.0);
            let y0 = (fy.floor() as usize).min(sh - 1);
            let (y1, wy) = ((y0 + 1).min(sh - 1), fy - y0 as f64);
            for x in 0..w as usize {
                let fx = ((x as f64 + 0.5) * sx - 0.5).max(0.0);
                let x0 = (fx.floor() as usize).min(sw - 1);
                let (x1, wx) = ((x0 + 1).min(sw - 1), fx - x0 as f64);
                for c in 0..3 {
                    let p = |yy: usize, xx: usize| f64::from(src.data[(yy * sw + xx) * 3 + c]);
                    let top = p(y0, x0) * (1.0 - wx) + p(y0, x1) * wx;
                    let bottom = p(y1, x0) * (1.0 - wx) + p(y1, x1) * wx;
                    out.push((top * (1.0 - wy) + bottom * wy).round() as u8);
                }
            }
        }
        out
    }

    /// A deterministic noisy 97x61 picture: the worst case for interpolation.
    fn noisy_picture() -> BgrImage {
        let (w, h) = (97u32, 61u32);
        let data: Vec<u8> = (0..w * h * 3)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        BgrImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn resize_matches_the_float_formula_within_one_level() {
        let img = noisy_picture();
        for (dw, dh) in [(48, 30), (73, 46), (97, 61), (150, 100), (1, 1), (13, 61)] {
            let got = resize_bilinear(&img, dw, dh);
            assert_eq!((got.width, got.height), (dw, dh));
            let want = reference(&img, dw, dh);
            let worst = got
                .data
                .iter()
                .zip(&want)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max()
                .unwrap_or(0);
            assert!(worst <= 1, "{dw}x{dh}: off by {worst}");
        }
    }

    #[test]
    fn resize_into_planes_gives_the_values_of_resize_bilinear_placed_and_normalised() {
        let img = noisy_picture();
        let (mean, scale) = ([1.0, 2.0, 3.0], [0.5, 0.25, 2.0]);
        // The dispatched build (AVX2 where the CPU has it) and the portable one.
        type Resize = fn(&BgrImage, u32, u32, &mut Planes<'_>);
        let builds: [Resize; 2] = [resize_into_planes, resize_into_planes_portable];
        for ((dw, dh), resize) in [(48, 30), (73, 46), (97, 61), (150, 100), (1, 1), (13, 61)]
            .into_iter()
            .flat_map(|size| builds.iter().map(move |b| (size, b)))
        {
            let want = resize_bilinear(&img, dw, dh);
            let (stride, left, top) = (dw as usize + 5, 3usize, 2usize);
            let rows = dh as usize + top + 1;
            let mut bufs = vec![vec![-7.0f32; stride * rows]; 3];
            let [b, g, r] = &mut bufs[..] else {
                unreachable!()
            };
            let mut planes = Planes {
                planes: [b, g, r],
                stride,
                left,
                top,
                mean,
                scale,
            };
            resize(&img, dw, dh, &mut planes);
            for (c, plane) in bufs.iter().enumerate() {
                for y in 0..rows {
                    for x in 0..stride {
                        let got = plane[y * stride + x];
                        let inside = (top..top + dh as usize).contains(&y)
                            && (left..left + dw as usize).contains(&x);
                        let expect = if inside {
                            let v = want.data[((y - top) * dw as usize + x - left) * 3 + c];
                            (f32::from(v) - mean[c]) * scale[c]
                        } else {
                            -7.0 // untouched
                        };
                        assert_eq!(got, expect, "{dw}x{dh} plane {c} at ({x}, {y})");
                    }
                }
            }
        }
    }

    #[test]
    fn resize_into_planes_refuses_a_target_too_small_instead_of_panicking() {
        let img = BgrImage::new(8, 6, vec![9; 8 * 6 * 3]).unwrap();
        let mut bufs = vec![vec![0.0f32; 10]; 3];
        let [b, g, r] = &mut bufs[..] else {
            unreachable!()
        };
        let mut planes = Planes {
            planes: [b, g, r],
            stride: 4,
            left: 0,
            top: 0,
            mean: [0.0; 3],
            scale: [1.0; 3],
        };
        resize_into_planes(&img, 4, 3, &mut planes);
        assert!(bufs.iter().all(|p| p.iter().all(|v| *v == 0.0)));
    }

    #[test]
    fn resize_keeps_flat_colour() {
        let img = BgrImage::new(8, 6, [10u8, 20, 30].repeat(48)).unwrap();
        let r = resize_bilinear(&img, 4, 3);
        assert_eq!(r.data, [10u8, 20, 30].repeat(12));
    }
}
