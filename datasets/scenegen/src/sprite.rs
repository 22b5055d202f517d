//! A person cut-out: the photo scaled so the face has the wanted height, with a soft head-and-shoulders
//! alpha mask (two ellipses), premultiplied once so that blitting is an integer loop.

use std::path::Path;

use image::{imageops::FilterType, RgbImage};

use crate::SceneError;

// Mask in photo-relative coordinates (0..1). Keep in sync with tools/lfw_face_table.py, which measured the
// face boxes on photos masked exactly like this.
const HEAD_CX: f32 = 0.5;
const HEAD_CY: f32 = 0.488;
const HEAD_RX: f32 = 0.288;
const HEAD_RY: f32 = 0.384;
const SH_CX: f32 = 0.5;
const SH_CY: f32 = 1.14;
const SH_RX: f32 = 0.44;
const SH_RY: f32 = 0.42;
const FEATHER: f32 = 0.08;
const BOTTOM_FADE: f32 = 0.92;

/// Upscaling LFW's 250 px crops much further only blurs them.
pub(crate) const MAX_SCALE: f32 = 1.25;
pub(crate) const MIN_SCALE: f32 = 0.2;

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Mask value at photo-relative coordinates (u, v).
pub(crate) fn mask(u: f32, v: f32) -> f32 {
    let rh = (((u - HEAD_CX) / HEAD_RX).powi(2) + ((v - HEAD_CY) / HEAD_RY).powi(2)).sqrt();
    let rs = (((u - SH_CX) / SH_RX).powi(2) + ((v - SH_CY) / SH_RY).powi(2)).sqrt();
    let a = 1.0 - smoothstep(1.0, 1.0 + FEATHER, rh.min(rs));
    a * (1.0 - smoothstep(BOTTOM_FADE, 1.0, v))
}

pub(crate) struct Sprite {
    pub w: usize,
    pub h: usize,
    /// Premultiplied R, G, B and alpha, row-major.
    pub px: Vec<[u8; 4]>,
    /// Face box (x, y, w, h) in sprite pixels.
    pub face: [f64; 4],
}

impl Sprite {
    /// Face centre in sprite pixels.
    pub(crate) fn face_centre(&self) -> [f64; 2] {
        [
            self.face[0] + self.face[2] / 2.0,
            self.face[1] + self.face[3] / 2.0,
        ]
    }
}

pub(crate) fn load_photo(path: &Path) -> Result<RgbImage, SceneError> {
    let img = image::open(path).map_err(|e| SceneError::Image {
        path: path.to_path_buf(),
        err: e,
    })?;
    Ok(img.to_rgb8())
}

/// The scale that gives the face `target_face_h` pixels, within what the photo allows.
pub(crate) fn scale_for(photo_h: u32, face_frac_h: f32, target_face_h: f32) -> f32 {
    (target_face_h / (face_frac_h * photo_h as f32)).clamp(MIN_SCALE, MAX_SCALE)
}

/// Builds the cut-out. `face` is the face box (cx, cy, w, h) as fractions of the photo size.
pub(crate) fn build(photo: &RgbImage, face: [f32; 4], scale: f32) -> Sprite {
    let nw = ((photo.width() as f32 * scale).round() as u32).max(8);
    let nh = ((photo.height() as f32 * scale).round() as u32).max(8);
    let img = image::imageops::resize(photo, nw, nh, FilterType::CatmullRom);
    let (w, h) = (nw as usize, nh as usize);
    let mut alpha = vec![0u8; w * h];
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0usize, 0usize);
    for y in 0..h {
        let v = (y as f32 + 0.5) / h as f32;
        for x in 0..w {
            let u = (x as f32 + 0.5) / w as f32;
            let a = (mask(u, v) * 255.0).round() as u8;
            alpha[y * w + x] = a;
            if a > 0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let mut px = Vec::with_capacity(cw * ch);
    for y in y0..y1 {
        for x in x0..x1 {
            let a = alpha[y * w + x] as u32;
            let p = img.get_pixel(x as u32, y as u32).0;
            let pm = |c: u8| ((c as u32 * a + 127) / 255) as u8;
            px.push([pm(p[0]), pm(p[1]), pm(p[2]), a as u8]);
        }
    }
    let fw = face[2] as f64 * nw as f64;
    let fh = face[3] as f64 * nh as f64;
    let fx = face[0] as f64 * nw as f64 - fw / 2.0 - x0 as f64;
    let fy = face[1] as f64 * nh as f64 - fh / 2.0 - y0 as f64;
    Sprite {
        w: cw,
        h: ch,
        px,
        face: [fx, fy, fw, fh],
    }
}

/// Alpha-blends `s` onto an RGB frame (`stride` bytes per row) with its top-left corner at (x0, y0).
pub(crate) fn blit(
    frame: &mut [u8],
    fw: usize,
    fh: usize,
    stride: usize,
    s: &Sprite,
    x0: i32,
    y0: i32,
) {
    let xs = (-x0).max(0) as usize;
    let ys = (-y0).max(0) as usize;
    let xe = ((fw as i64 - x0 as i64).min(s.w as i64)).max(0) as usize;
    let ye = ((fh as i64 - y0 as i64).min(s.h as i64)).max(0) as usize;
    if xs >= xe || ys >= ye {
        return;
    }
    for sy in ys..ye {
        let row = &s.px[sy * s.w + xs..sy * s.w + xe];
        let fy = (y0 as i64 + sy as i64) as usize;
        let start = fy * stride + (x0 as i64 + xs as i64) as usize * 3;
        let dst = &mut frame[start..start + row.len() * 3];
        for (d, p) in dst.chunks_exact_mut(3).zip(row) {
            let a = p[3] as u32;
            if a == 0 {
                continue;
            }
            if a == 255 {
                d.copy_from_slice(&p[..3]);
                continue;
            }
            let inv = 255 - a;
            for c in 0..3 {
                let x = d[c] as u32 * inv + 128;
                d[c] = (p[c] as u32 + ((x + (x >> 8)) >> 8)).min(255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_face_itself_is_never_masked() {
        // The ellipse inscribed in the mean LFW face box, and in generous variants of it, is fully opaque.
        for (cx, cy, w, h) in [
            (0.5, 0.508, 0.386, 0.512),
            (0.56, 0.50, 0.43, 0.56),
            (0.44, 0.52, 0.43, 0.56),
            (0.5, 0.46, 0.40, 0.55),
        ] {
            for i in 0..64 {
                let t = i as f32 / 64.0 * std::f32::consts::TAU;
                let u = cx + 0.5 * w * 0.95 * t.cos();
                let v = cy + 0.5 * h * 0.95 * t.sin();
                assert_eq!(mask(u, v), 1.0, "({u},{v})");
            }
        }
        // The corners are cut away: a cut-out, not a square sticker.
        assert_eq!(mask(0.02, 0.02), 0.0);
        assert_eq!(mask(0.98, 0.02), 0.0);
        assert_eq!(mask(0.5, 0.999), mask(0.5, 0.999).min(0.1));
    }

    #[test]
    fn blit_clips_and_blends() {
        let photo = RgbImage::from_pixel(100, 100, image::Rgb([200, 100, 50]));
        let s = build(&photo, [0.5, 0.5, 0.4, 0.5], 0.5);
        assert!(s.w <= 50 && s.h <= 50);
        let (w, h) = (40usize, 30usize);
        let stride = w * 3;
        let mut f = vec![10u8; stride * h];
        blit(&mut f, w, h, stride, &s, -10, -12);
        blit(&mut f, w, h, stride, &s, 30, 20);
        blit(&mut f, w, h, stride, &s, 100, 100);
        assert!(f.chunks(3).any(|p| p == [200, 100, 50]));
    }
}
