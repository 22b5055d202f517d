//! Face alignment: the standard 5-point similarity transform onto SFace's 112x112 template.
//!
//! The warp reproduces OpenCV's `warpAffine(INTER_LINEAR, BORDER_CONSTANT)` arithmetic (1/32-pixel source
//! coordinates, 15-bit fixed-point weights) so embeddings match OpenCV's `FaceRecognizerSF::alignCrop`.

use crate::BgrImage;

/// The 112x112 ArcFace/SFace landmark template: right eye, left eye, nose, right and left mouth corner.
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

pub const ALIGNED_SIZE: u32 = 112;

/// A 2x3 affine matrix mapping source to destination coordinates.
pub type Affine = [[f64; 3]; 2];

/// Least-squares similarity transform (rotation, uniform scale, translation) taking `src` onto `dst`.
/// In 2-D this closed form is exactly Umeyama's solution without reflection.
pub fn similarity_transform(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Affine {
    let n = src.len() as f64;
    let (mut sx, mut sy, mut dx, mut dy) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..5 {
        sx += src[i][0] as f64;
        sy += src[i][1] as f64;
        dx += dst[i][0] as f64;
        dy += dst[i][1] as f64;
    }
    let (sx, sy, dx, dy) = (sx / n, sy / n, dx / n, dy / n);
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for i in 0..5 {
        let (px, py) = (src[i][0] as f64 - sx, src[i][1] as f64 - sy);
        let (qx, qy) = (dst[i][0] as f64 - dx, dst[i][1] as f64 - dy);
        num_a += px * qx + py * qy;
        num_b += px * qy - py * qx;
        den += px * px + py * py;
    }
    if den <= f64::EPSILON {
        return [[1.0, 0.0, dx - sx], [0.0, 1.0, dy - sy]];
    }
    let a = num_a / den;
    let b = num_b / den;
    [
        [a, -b, dx - (a * sx - b * sy)],
        [b, a, dy - (b * sx + a * sy)],
    ]
}

fn invert(m: &Affine) -> Option<Affine> {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if det.abs() < 1e-12 {
        return None;
    }
    let (a, b, c, d) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
    Some([
        [a, b, -(a * m[0][2] + b * m[1][2])],
        [c, d, -(c * m[0][2] + d * m[1][2])],
    ])
}

/// Warps `src` by `m` (source to destination) into a `w`x`h` image, zero outside the source.
pub fn warp_affine(src: &BgrImage, m: &Affine, w: u32, h: u32) -> BgrImage {
    const INTER_BITS: i64 = 5;
    const TAB: i64 = 1 << INTER_BITS;
    const AB_BITS: i64 = 10;
    const AB_SCALE: f64 = (1 << AB_BITS) as f64;
    const COEF_SCALE: f32 = 32768.0;
    let mut out = vec![0u8; (w * h * 3) as usize];
    let Some(inv) = invert(m) else {
        return BgrImage {
            width: w,
            height: h,
            data: out,
        };
    };
    let (sw, sh) = (src.width as i64, src.height as i64);
    let round_delta = (AB_SCALE as i64) / TAB / 2;
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let fx = inv[0][0] * x as f64 + inv[0][1] * y as f64 + inv[0][2];
            let fy = inv[1][0] * x as f64 + inv[1][1] * y as f64 + inv[1][2];
            let xi = ((fx * AB_SCALE).round() as i64 + round_delta) >> (AB_BITS - INTER_BITS);
            let yi = ((fy * AB_SCALE).round() as i64 + round_delta) >> (AB_BITS - INTER_BITS);
            let (x0, y0) = (xi >> INTER_BITS, yi >> INTER_BITS);
            let (ax, ay) = (
                (xi & (TAB - 1)) as f32 / TAB as f32,
                (yi & (TAB - 1)) as f32 / TAB as f32,
            );
            // Fixed-point weights whose sum is exactly 1.0, as OpenCV's interpolation table stores them.
            let mut wts = [
                ((1.0 - ay) * (1.0 - ax) * COEF_SCALE).round() as i32,
                ((1.0 - ay) * ax * COEF_SCALE).round() as i32,
                (ay * (1.0 - ax) * COEF_SCALE).round() as i32,
                (ay * ax * COEF_SCALE).round() as i32,
            ];
            let sum: i32 = wts.iter().sum();
            if sum != 32768 {
                let (imax, _) = wts
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| **v)
                    .unwrap_or((0, &0));
                wts[imax] += 32768 - sum;
            }
            if x0 < -1 || y0 < -1 || x0 >= sw || y0 >= sh {
                continue;
            }
            let o = ((y * w as i64 + x) * 3) as usize;
            for c in 0..3 {
                let px = |xx: i64, yy: i64| -> i32 {
                    if xx < 0 || yy < 0 || xx >= sw || yy >= sh {
                        0
                    } else {
                        src.data[((yy * sw + xx) * 3) as usize + c] as i32
                    }
                };
                let v = px(x0, y0) * wts[0]
                    + px(x0 + 1, y0) * wts[1]
                    + px(x0, y0 + 1) * wts[2]
                    + px(x0 + 1, y0 + 1) * wts[3];
                out[o + c] = ((v + (1 << 14)) >> 15).clamp(0, 255) as u8;
            }
        }
    }
    BgrImage {
        width: w,
        height: h,
        data: out,
    }
}

/// Crops and aligns a face to 112x112 BGR from its five landmarks.
pub fn align_face(img: &BgrImage, landmarks: &[[f32; 2]; 5]) -> BgrImage {
    let m = similarity_transform(landmarks, &TEMPLATE);
    warp_affine(img, &m, ALIGNED_SIZE, ALIGNED_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_of_template_onto_itself_is_identity() {
        let m = similarity_transform(&TEMPLATE, &TEMPLATE);
        assert!((m[0][0] - 1.0).abs() < 1e-9 && m[0][1].abs() < 1e-9 && m[0][2].abs() < 1e-6);
        assert!((m[1][1] - 1.0).abs() < 1e-9 && m[1][0].abs() < 1e-9 && m[1][2].abs() < 1e-6);
    }

    #[test]
    fn transform_recovers_scale_rotation_and_shift() {
        let (s, t) = (2.0f32, 0.3f32);
        let src: [[f32; 2]; 5] = TEMPLATE.map(|[x, y]| {
            [
                s * (x * t.cos() - y * t.sin()) + 100.0,
                s * (x * t.sin() + y * t.cos()) + 50.0,
            ]
        });
        let m = similarity_transform(&src, &TEMPLATE);
        for i in 0..5 {
            let (x, y) = (src[i][0] as f64, src[i][1] as f64);
            let u = m[0][0] * x + m[0][1] * y + m[0][2];
            let v = m[1][0] * x + m[1][1] * y + m[1][2];
            assert!(
                (u - TEMPLATE[i][0] as f64).abs() < 1e-3
                    && (v - TEMPLATE[i][1] as f64).abs() < 1e-3
            );
        }
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let data: Vec<u8> = (0..16 * 16 * 3).map(|i| (i % 251) as u8).collect();
        let img = BgrImage::new(16, 16, data).unwrap();
        let m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert_eq!(warp_affine(&img, &m, 16, 16).data, img.data);
    }
}
